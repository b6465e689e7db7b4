"""Why a problem is infeasible, in one place: every method raises the errors made here.

Two cases (docs/maths.md §3). A bound that cannot be met on its own: the largest value of
``<s_i, x>`` over budget-k points meeting the floors is ``T_k(s_i)`` without floors and the
value of the floors greedy (docs/maths.md §6) with them; if that is below ``b_i`` the error names
the score, the bound and that value. Bounds that can each be met but not all at once: the
error names the conflicting bounds, the Farkas ray ``lambda >= 0`` that proves it
(``T^P_k(sum_i lambda_i s_i) < <lambda, b>``, found by the analytic method) and by how much
the bound misses; a generic backend's verdict lists the bounds with their best values.
"""

from __future__ import annotations

import numpy as np

from ._errors import InfeasibleError, SolverError
from ._inner import reaches
from ._problem import Problem
from ._selection import top_k_with_floors

__all__ = ["best_reachable", "single_bound_error", "joint_error", "conflict_error", "backend_infeasible_error"]


def best_reachable(problem: Problem, index: int) -> float:
    """Largest ``<s_i, x>`` over budget-k points meeting the floors (``index`` among the
    secondary scores, 0-based). Without floors this is ``problem.best_reachable[index]``."""
    if not problem.has_floors:
        return float(problem.best_reachable[index])
    score = problem.scores[index + 1]
    chosen = top_k_with_floors(score, problem.budget, problem.groups, problem.floors,
                               problem.group_order, problem.group_starts)
    return float(score[chosen].sum(dtype=np.float64))


def single_bound_error(problem: Problem) -> InfeasibleError | None:
    """The error for the first active bound that no point meets on its own, or None."""
    for i in problem.active:
        error = short_bound_error(int(i) + 1, float(problem.thresholds[i]), best_reachable(problem, int(i)),
                                  problem.budget, problem.has_floors)
        if error is not None:
            return error
    return None


def short_bound_error(row: int, wanted: float, reach: float, budget: int, floors: bool) -> InfeasibleError | None:
    """The error of the bound on ``scores[row]`` asking for ``wanted`` when the best point
    within the budget (and the floors, with ``floors``) reaches only ``reach``; None when it
    reaches it."""
    if reaches(reach, wanted):
        return None
    under = " and the floors" if floors else ""
    return InfeasibleError(
        f"the bound on scores[{row}] cannot be met: it asks for {wanted!r}, but the largest "
        f"value any point within the budget k = {budget}{under} reaches is {reach!r}",
        score_index=int(row), threshold=wanted, best_reachable=reach,
    )


def joint_error(problem: Problem, *, binary: bool = False) -> InfeasibleError:
    """The error for bounds that can each be met, but not all at once, when no Farkas ray is
    known (a generic backend's verdict). ``binary``: no 0/1 mask meets them all, although the
    LP may be feasible."""
    what = "no 0/1 mask meets" if binary else "no point meets"
    reach = {int(i) + 1: best_reachable(problem, int(i)) for i in problem.active}
    return InfeasibleError(
        f"{what} all bounds{' and floors' if problem.has_floors else ''} at once, although each bound "
        f"alone can be met (bounds {problem.thresholds[problem.active].tolist()} on scores "
        f"{list(reach)}, best reachable values {list(reach.values())}); lower gamma or the bounds")


def conflict_error(problem: Problem, rows: tuple, ray: np.ndarray, best: float) -> InfeasibleError:
    """The error for the bounds on ``rows`` (rows of scores, the first one with multiplier 1)
    proved to conflict by the Farkas ray ``ray`` (one multiplier per row): with the others
    met, scores[rows[0]] reaches at most ``best``, short of its bound."""
    head_row = rows[0]
    b = float(problem.thresholds[head_row - 1])
    others = [row for row in rows if row != head_row]
    names = ", ".join(f"scores[{row}]" for row in rows)
    floors = " and the floors" if problem.has_floors else ""
    return InfeasibleError(
        f"the bounds on {names} cannot all be met at once (each alone can): with the bounds on "
        f"{', '.join(f'scores[{row}]' for row in others)}{floors} met, <scores[{head_row}], x> reaches at "
        f"most {best!r} (budget k = {problem.budget}), short of its bound {b!r} by {b - best!r} "
        f"({(b - best) / max(abs(b), 1e-300):.3g} of the bound); Farkas multipliers "
        f"{dict(zip(rows, np.asarray(ray).tolist()))}; lower gamma or the bounds",
        threshold=b, best_reachable=best, conflicting_scores=rows,
        farkas_multipliers=np.asarray(ray, dtype=np.float64),
    )


def backend_infeasible_error(problem: Problem, *, binary: bool = False) -> InfeasibleError | SolverError:
    """The error to raise when a generic backend reports the problem infeasible.

    An :class:`InfeasibleError` for a bound that no point meets alone; a :class:`SolverError`
    when feasibility is provable (a single active bound that its score's best mask meets: the
    solver failed numerically); otherwise the joint :class:`InfeasibleError`.
    """
    error = single_bound_error(problem)
    if error is not None:
        return error
    if problem.active.size == 1:
        i = int(problem.active[0])
        return SolverError(
            f"the solver reports the problem infeasible, but the best {problem.budget}-mask for "
            f"scores[{i + 1}] meets its bound ({best_reachable(problem, i)!r} >= "
            f"{float(problem.thresholds[i])!r}): a numerical failure of the solver"
        )
    return joint_error(problem, binary=binary)
