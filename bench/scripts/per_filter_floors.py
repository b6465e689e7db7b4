"""Per-filter floors: a floor on each of many small groups, as "keep at least one weight of
every filter" makes (``python bench/scripts/per_filter_floors.py [D ...]``, default 1e6 1e7).

Two float32 scores, groups of 100 consecutive elements, k = D/20, a floor of f per group
(1, and 2 on one problem). "slack": uniform scores, gamma 0.9 (top-k already leaves about
1 group in 17,000 short). "binding": the secondary score scaled per group by 10^U(-1, 1),
gamma 0.75 (top-k leaves 60% of the groups without a member). Prints, per problem, the
median of 3 solves with the floors and without, their ratio, and the solve's survivors and
rounds. Run it with ``PYTHONPATH`` set to another checkout to compare two commits.
"""

import sys
import time

import numpy as np

import copslp

SIZE = 100


def problem(d: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.arange(d) // SIZE
    scores = rng.random((2, d)).astype(np.float32)
    if spread:
        scores[1] *= (10.0 ** rng.uniform(-spread, spread, groups[-1] + 1))[groups].astype(np.float32)
    return scores, groups


def median_ms(call, repeats: int = 3):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3, result


for d in [int(float(arg)) for arg in sys.argv[1:]] or [10**6, 10**7]:
    for name, spread, gamma, floor in (("slack", 0.0, 0.9, 1), ("binding", 1.0, 0.75, 1), ("binding", 1.0, 0.75, 2)):
        scores, groups = problem(d, spread)
        k = d // 20
        plain_ms, plain = median_ms(lambda: copslp.solve(scores, k, gamma=gamma))
        floors_ms, result = median_ms(lambda: copslp.solve(scores, k, gamma=gamma, groups=groups, floors=floor))
        short = int((np.bincount(groups[plain.mask], minlength=groups[-1] + 1) < floor).sum())
        print(f"D = {d:.0e}, {name}, floor {floor} per group of {SIZE}: with floors {floors_ms:.0f} ms, without "
              f"{plain_ms:.0f} ms: {floors_ms / plain_ms:.1f}x; groups short without floors {short} of "
              f"{groups[-1] + 1}; survivors {result.info.get('survivors')}, rounds {result.info.get('rounds')}, "
              f"objective {result.objective!r}", flush=True)
