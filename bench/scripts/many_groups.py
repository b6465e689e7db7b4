"""Floors on many small groups, as per-filter or per-neuron floors make them
(``python bench/scripts/many_groups.py``): ``copslp.solve`` (analytic) and ``method="highs"``
on the same problems, one solve each (s).

1. D = 1e6, two uniform scores, floors on contiguous groups of 2 (a floor of 0 or 1,
   alternating) and of 16 (a floor of 1), gamma 0.9;
2. three lognormal scores, floors of 1-2 on 2,000 groups of 1-29 elements, gamma 0.6.
"""

import time
import warnings

import numpy as np

import copslp


def timed(*args, **kwargs):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copslp.CopsWarning)
        result = copslp.solve(*args, **kwargs)
    return time.perf_counter() - start, result


rng = np.random.default_rng(0)
D = 1_000_000
for size in (2, 16):
    n_groups = D // size
    groups = np.repeat(np.arange(n_groups), size)
    scores = rng.random((2, D))
    floors = np.arange(n_groups) % 2 if size == 2 else np.ones(n_groups, dtype=np.int64)
    k = D // 2 if size == 2 else D // 8
    seconds, result = timed(scores, k, gamma=0.9, groups=groups, floors=floors)
    print(f"D = 1e6, {n_groups} groups of {size}: analytic {seconds:.2f} s, survivors {result.info['survivors']}")

rng = np.random.default_rng(3)
sizes = rng.integers(1, 30, 2000)
groups = np.repeat(np.arange(sizes.shape[0]), sizes)
scores = rng.lognormal(size=(3, groups.shape[0]))
floors = np.minimum(sizes, rng.integers(1, 3, sizes.shape[0]))
k = int(floors.sum()) + groups.shape[0] // 10
ours, mine = timed(scores, k, gamma=0.6, groups=groups, floors=floors)
highs, theirs = timed(scores, k, gamma=0.6, groups=groups, floors=floors, method="highs")
print(f"three scores, 2,000 groups (D = {groups.shape[0]}): analytic {ours:.2f} s, highs {highs:.2f} s, "
      f"objectives {mine.objective:.12g} and {theirs.objective:.12g}")
