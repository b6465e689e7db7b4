"""Per-filter floors: a floor on each of many small groups, as "keep at least one weight of
every filter" makes (``python bench/scripts/per_filter_floors.py [D ...]``, default 1e6 1e7).

Two float32 scores, groups of 100 consecutive elements, k = D/20, a floor of f per group
(1, and 2 on one problem; ``_common.per_filter_problem``). "slack": uniform scores, gamma 0.9
(top-k already leaves about 1 group in 190 short). "binding": the secondary score scaled per
group by 10^U(-1, 1), gamma 0.75 (top-k leaves 60% of the groups without a member). Prints,
per problem, the median of 3 solves with the floors and without (alternated in this
process), their ratio, and the solve's survivors and rounds. Run it with ``PYTHONPATH`` set to
another checkout to compare two commits.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common  # noqa: E402

import copslp  # noqa: E402

for d in [int(float(arg)) for arg in sys.argv[1:]] or [10**6, 10**7]:
    for name, spread, gamma, floor in (("slack", 0.0, 0.9, 1), ("binding", 1.0, 0.75, 1), ("binding", 1.0, 0.75, 2)):
        scores, groups = common.per_filter_problem(d, spread)
        k = d // 20
        med, results = common.alternated({
            "floors": lambda: copslp.solve(scores, k, gamma=gamma, groups=groups, floors=floor),
            "plain": lambda: copslp.solve(scores, k, gamma=gamma)}, 3)
        result, plain = results["floors"], results["plain"]
        short = int((np.bincount(groups[plain.mask], minlength=groups[-1] + 1) < floor).sum())
        print(f"D = {d:.0e}, {name}, floor {floor} per group of 100: with floors {med['floors']:.0f} ms, without "
              f"{med['plain']:.0f} ms: {med['floors'] / med['plain']:.1f}x; groups short without floors {short} of "
              f"{groups[-1] + 1}; survivors {result.info.get('survivors')}, rounds {result.info.get('rounds')}, "
              f"objective {result.objective!r}", flush=True)
