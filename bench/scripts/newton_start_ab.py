"""The survivors' simplex started from Newton steps in the box against from its centre,
alternated solve by solve in one process (``python bench/scripts/newton_start_ab.py``): three
bounds, gamma 0.75, the small problems of ``bench/several_bounds.py``; medians of 9 (ms), and
the best of two ``method="highs"`` (simplex) solves. The objectives of both must be equal."""

import sys, time, numpy as np, copslp
sys.path.insert(0, "bench"); import _common as common
from copslp._analytic import finish
for fam, D, div in (("lognormal", 10_000, 20), ("uniform", 10_000, 20), ("lognormal", 100_000, 20), ("uniform", 100_000, 20), ("uniform", 10_000, 100), ("lognormal", 40_000, 20)):
    s = common.make_scores(fam, 4, D, seed=0); k = D // div
    times = {"newton": [], "centre": []}; objs = {}
    for rep in range(9):
        for name, above in (("newton", 256), ("centre", 10**9)):
            finish._NEWTON_START_ABOVE = above
            t = time.perf_counter(); r = copslp.solve(s, k, gamma=0.75); times[name].append(time.perf_counter() - t); objs[name] = r.objective
    h = []
    for _ in range(2):
        t = time.perf_counter(); copslp.solve(s, k, gamma=0.75, method="highs", options={"solver": "simplex"}); h.append(time.perf_counter() - t)
    med = {n: np.median(v) * 1e3 for n, v in times.items()}
    print(f"{fam} D={D} k=D/{div}: newton {med['newton']:.1f} ms, centre {med['centre']:.1f} ms, highs {min(h)*1e3:.0f} ms -> {med['newton']/(min(h)*1e3):.3f} vs {med['centre']/(min(h)*1e3):.3f}; same objective: {objs['newton'] == objs['centre']} ({r.info.get('final_lp_size')} cols)")
