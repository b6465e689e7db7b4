"""One analytic solve timed in a fresh process: the median of 5 solves after one warm-up.

``python bench/scripts/alternation.py N DIV GAMMA``: uniform scores (seed 0), n = N rows,
D = 1e7, k = D / DIV; prints the median in ms. Run it in two checkouts in turn (with
``PYTHONPATH`` set to each) to compare them within one run.
"""

import sys
import time

import numpy as np

import copslp

rng = np.random.default_rng(0)
D = 10**7
n, div, gamma = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
scores = rng.random((n, D))
k = D // div
copslp.solve(scores, k, gamma=gamma)
times = []
for _ in range(5):
    start = time.perf_counter()
    copslp.solve(scores, k, gamma=gamma)
    times.append(time.perf_counter() - start)
print(f"{np.median(times) * 1e3:.0f}")
