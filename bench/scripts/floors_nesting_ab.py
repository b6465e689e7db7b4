"""Floors that the elements fixed to 1 already meet, solved a level down (as without floors)
against in place, alternated solve by solve in one process
(``python bench/scripts/floors_nesting_ab.py``): D = 1e7, two scores, 50 layer-like groups,
floors 1%, the two problems of ``bench/targets.py``'s floors target, and each against the solve
without floors; medians of 7 (ms). The masks of both variants must be equal."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common  # noqa: E402

import copslp  # noqa: E402
from copslp._analytic import driver  # noqa: E402

below = driver._nests


def in_place(run, outline, screened, rows, depth):
    """The rule before: in one process, floors are always finished in place."""
    finished_here = run.comm.world_size == 1 and (rows.shape[0] > 2 or outline.has_floors)
    return driver._GATHER_LIMIT < screened.n_survivors < outline.size and depth < driver._MAX_DEPTH and not finished_here


D = 10**7
for spread, gamma, scores, groups, floors, k in common.layered_floors_problems(D):
    floored = lambda: copslp.solve(scores, k, gamma=gamma, groups=groups, floors=floors)  # noqa: E731
    med, results = common.alternated({"a level down": common.patched(driver, "_nests", below, floored),
                                      "in place": common.patched(driver, "_nests", in_place, floored),
                                      "no floors": common.patched(driver, "_nests", below,
                                                                  lambda: copslp.solve(scores, k, gamma=gamma))}, 7)
    driver._nests = below
    same = np.array_equal(results["a level down"].mask, results["in place"].mask)
    print(f"spread {spread}: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in med.items())
          + f"; with floors / without: {med['a level down'] / med['no floors']:.2f}x a level down, "
          f"{med['in place'] / med['no floors']:.2f}x in place; nested: "
          f"{'nested' in results['a level down'].info}; masks equal: {same}; objectives "
          f"{results['a level down'].objective!r} {results['in place'].objective!r}", flush=True)
