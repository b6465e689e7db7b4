"""The estimate's subsample of whole groups against the element subsample, alternated solve by
solve in one process (``python bench/scripts/group_sample_ab.py [D ...]``, default 1e6 1e7):
the problems of ``per_filter_floors.py`` (filters of 100, float32, k = D/20), the element
subsample restored by making ``_Run.draw_group_sample`` draw nothing. Medians of 5 (ms), the
rounds of each, and whether the masks are equal."""

import sys
import time

import numpy as np

import copslp
from copslp._analytic import driver

drawn = driver._Run.draw_group_sample


def problem(d: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.arange(d) // 100
    scores = rng.random((2, d)).astype(np.float32)
    if spread:
        scores[1] *= (10.0 ** rng.uniform(-spread, spread, groups[-1] + 1))[groups].astype(np.float32)
    return scores, groups


for d in [int(float(arg)) for arg in sys.argv[1:]] or [10**6, 10**7]:
    for name, spread, gamma, floor in (("slack", 0.0, 0.9, 1), ("binding", 1.0, 0.75, 1), ("binding", 1.0, 0.75, 2)):
        scores, groups = problem(d, spread)
        times, results = {"whole groups": [], "elements": []}, {}
        for _ in range(5):
            for variant in times:
                driver._Run.draw_group_sample = drawn if variant == "whole groups" else (lambda self, outline: None)
                start = time.perf_counter()
                results[variant] = copslp.solve(scores, d // 20, gamma=gamma, groups=groups, floors=floor)
                times[variant].append(time.perf_counter() - start)
        driver._Run.draw_group_sample = drawn
        same = np.array_equal(results["whole groups"].mask, results["elements"].mask)
        print(f"D = {d:.0e}, {name}, floor {floor}: " + ", ".join(
            f"{variant} {np.median(values) * 1e3:.0f} ms ({results[variant].info.get('rounds')} rounds)"
            for variant, values in times.items()) + f"; masks equal: {same}", flush=True)
