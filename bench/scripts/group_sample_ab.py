"""The estimate's subsample of whole groups against the element subsample, alternated solve by
solve in one process (``python bench/scripts/group_sample_ab.py [D ...]``, default 1e6 1e7):
the problems of ``per_filter_floors.py`` (filters of 100, float32, k = D/20), the element
subsample restored by making ``_Run.draw_group_sample`` draw nothing. Medians of 5 (ms), the
rounds of each, and whether the masks are equal."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common  # noqa: E402

import copslp  # noqa: E402
from copslp._analytic import driver  # noqa: E402

drawn = driver._Run.draw_group_sample


for d in [int(float(arg)) for arg in sys.argv[1:]] or [10**6, 10**7]:
    for name, spread, gamma, floor in (("slack", 0.0, 0.9, 1), ("binding", 1.0, 0.75, 1), ("binding", 1.0, 0.75, 2)):
        scores, groups = common.per_filter_problem(d, spread)
        floored = lambda: copslp.solve(scores, d // 20, gamma=gamma, groups=groups, floors=floor)  # noqa: E731
        med, results = common.alternated({"whole groups": common.patched(driver._Run, "draw_group_sample", drawn, floored),
                                          "elements": common.patched(driver._Run, "draw_group_sample",
                                                                     lambda self, outline: None, floored)}, 5)
        driver._Run.draw_group_sample = drawn
        same = np.array_equal(results["whole groups"].mask, results["elements"].mask)
        print(f"D = {d:.0e}, {name}, floor {floor}: " + ", ".join(
            f"{variant} {ms:.0f} ms ({results[variant].info.get('rounds')} rounds)" for variant, ms in med.items())
            + f"; masks equal: {same}", flush=True)
