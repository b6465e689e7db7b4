r"""The numeric two-score algorithm: bisection on the multiplier of the one bound.

For n = 2 scores, :math:`g(\lambda) = \langle s_1, x(\lambda)\rangle` with
:math:`x(\lambda)` a best k-set of :math:`v = s_0 + \lambda s_1` is non-decreasing, and
:math:`\lambda^*` is the smallest :math:`\lambda` with :math:`g(\lambda) \ge b`. Bisection
keeps :math:`g(\lambda_{lo}) < b \le g(\lambda_{hi})` and halves the bracket until
:math:`\lambda_{hi} - \lambda_{lo} \le \text{tol}\cdot\lambda_{hi}`. At
:math:`\lambda = 0` ties of s_0 go to the larger s_1, so :math:`g(0) < b` proves
:math:`\lambda^* > 0` and the relative test is reached; each step is one selection
over all D elements. The LP point returned mixes the two bracketing sets so that the bound is
tight; it is optimal up to the width of the final bracket, which is the tolerance this
method promises (the certificate is checked at ``max(100 tol, 1e-9)``).
"""

from __future__ import annotations

import numpy as np

from ._errors import SolverError
from ._infeasibility import single_bound_error
from ._inner import InnerProblem, mix_to_bound, sum_reaches
from ._problem import Problem
from ._result import LPSolution

__all__ = ["solve_two_score"]


def solve_two_score(problem: Problem, *, tol: float, max_iter: int) -> LPSolution:
    """Bisection on lambda for exactly two scores; see the module docstring.

    Options
    -------
    tol : float
        Relative width of the final bracket on lambda.
    max_iter : int
        Limit on bisection (and bracket-growing) steps.
    """
    if problem.n_scores != 2:
        raise ValueError(f"method 'two_score' needs exactly 2 scores (n = 2), got n = {problem.n_scores}; use 'analytic'")
    scores = problem.scores_float64()  # each step is a selection over all of v = s_0 + lambda s_1, in float64
    inner = InnerProblem(scores, problem.budget, problem.thresholds, problem.groups, problem.floors)
    s0, s1 = scores
    tolerance = max(100 * tol, 1e-9)
    if problem.active.size == 0:
        return LPSolution(inner.indicator(inner.select(s0)), np.zeros(1), tolerance, {"iterations": 0})
    error = single_bound_error(problem)
    if error is not None:
        raise error
    b = float(problem.thresholds[0])

    def evaluate(lam):
        chosen = inner.select(s0 + lam * s1)
        terms = s1[chosen]
        return chosen, float(terms.sum()), sum_reaches(terms, b)

    lo, hi = 0.0, float(np.abs(s0).max() / max(np.abs(s1).max(), 1e-300)) or 1.0
    set_lo = inner.select_lexicographic(s0, s1)  # at lambda = 0 ties go to the larger s_1
    if sum_reaches(s1[set_lo], b):
        return LPSolution(inner.indicator(set_lo), np.zeros(1), tolerance, {"iterations": 0})
    set_hi, g_hi, met = evaluate(hi)
    iterations = 0
    while not met:
        iterations += 1
        if iterations > max_iter:
            # the bound is reachable (checked above): only round-off can keep it out of reach
            raise SolverError(f"two_score: bound {b!r} not reached for lambda up to {hi:.3g} in {max_iter} steps")
        lo, set_lo = hi, set_hi
        hi *= 4.0
        set_hi, g_hi, met = evaluate(hi)
    while hi - lo > tol * hi:
        iterations += 1
        if iterations > max_iter:
            raise SolverError(f"two_score: bracket [{lo!r}, {hi!r}] not within tol={tol} after {max_iter} steps")
        mid = 0.5 * (lo + hi)
        chosen, g, met = evaluate(mid)
        if met:
            hi, set_hi, g_hi = mid, chosen, g
        else:
            lo, set_lo = mid, chosen
    x = mix_to_bound(s1, inner.mask_of(set_lo), inner.mask_of(set_hi), min(b, g_hi))
    return LPSolution(x, np.array([hi]), tolerance, {"iterations": iterations, "bracket": [lo, hi]})
