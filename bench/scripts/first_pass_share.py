"""Where one analytic solve's time goes: the fused first pass (validation's T_k inside the
first screening) against the rest, five solves at D = 1e7, two uniform scores, k = D/20,
gamma 0.9 (``python bench/scripts/first_pass_share.py``; ms)."""

import time

import numpy as np

import copslp
import copslp._registry as registry

rng = np.random.default_rng(0)
D = 10**7
scores = rng.random((2, D))
k = D // 20
spent = {}
first_pass = registry.MethodSpec.run_first_pass


def timed_first_pass(*args, **kwargs):
    start = time.perf_counter()
    try:
        return first_pass(*args, **kwargs)
    finally:
        spent["first"] = time.perf_counter() - start


registry.MethodSpec.run_first_pass = timed_first_pass
copslp.solve(scores, k, gamma=0.9)
for _ in range(5):
    start = time.perf_counter()
    copslp.solve(scores, k, gamma=0.9)
    total = time.perf_counter() - start
    print(f"total {total * 1e3:.0f} first pass {spent['first'] * 1e3:.0f} rest {(total - spent['first']) * 1e3:.0f}")
