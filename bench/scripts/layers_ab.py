"""Layers screened run by run against a level per element, alternated solve by solve in one
process (``python bench/scripts/layers_ab.py``): D = 1e7, two scores, 50 layer-like groups,
floors 1%, the two problems of ``bench/targets.py``'s floors target; medians of 7 (ms), and
each against the solve without floors. The masks of both variants must be equal."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common  # noqa: E402

import copslp  # noqa: E402
from copslp._analytic import passes  # noqa: E402
from copslp._blocks import blocks  # noqa: E402

by_runs = passes.ArrayPasses._pieces


def per_element(self, width, grouped):
    for block in blocks(self.size, width):
        yield block, None


D = 10**7
for spread, gamma, scores, groups, floors, k in common.layered_floors_problems(D):
    floored = lambda: copslp.solve(scores, k, gamma=gamma, groups=groups, floors=floors)  # noqa: E731
    med, results = common.alternated({"runs": common.patched(passes.ArrayPasses, "_pieces", by_runs, floored),
                                      "per element": common.patched(passes.ArrayPasses, "_pieces", per_element,
                                                                    floored),
                                      "no floors": lambda: copslp.solve(scores, k, gamma=gamma)}, 7)
    passes.ArrayPasses._pieces = by_runs
    assert np.array_equal(results["runs"].mask, results["per element"].mask)
    print(f"spread {spread}: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in med.items())
          + f"; with floors / without: {med['runs'] / med['no floors']:.2f}x by runs, "
          f"{med['per element'] / med['no floors']:.2f}x per element")
