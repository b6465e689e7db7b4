r"""The optimality certificate of docs/maths.md §3.

Given an LP point ``x`` and multipliers ``lambda`` (and, for a screened answer, the record of
its screening; nothing else from the method), form
``v = s_0 + sum_i lambda_i s_i``. ``(x, lambda)`` is optimal iff

* x is feasible: ``sum(x) = k``, ``0 <= x <= 1``, ``<s_i, x> >= b_i``, floors met;
* ``lambda >= 0``, and ``lambda_i > 0`` only on tight rows;
* there are a level mu and floor multipliers ``nu >= 0`` (positive only on tight floors) with
  ``x_j = 1`` where ``w_j = v_j + nu_{g(j)} > mu`` and ``x_j = 0`` where ``w_j < mu``.

mu and nu are derived here, not taken from the method: mu must lie between the largest
``v_j`` with ``x_j < 1`` and the smallest ``v_j`` with ``x_j > 0`` outside tight-floor groups;
a tight-floor group additionally needs its kept elements to be at least its dropped ones,
and then ``nu_l = max(mu - min{v_j : x_j > 0, j in G_l}, 0)``.

The duality gap closes the argument: for any lambda, nu >= 0 and any mu,
``k mu - <lambda, b> - <nu, f> + sum_j max(w_j - mu, 0)`` bounds the LP optimum from above
(weak duality), and it equals ``<s_0, x>`` exactly when the conditions above hold.

The whole check reads one :class:`copslp._scan.PointScan` (a single streamed pass over the
scores and x, one segment per group of the floors): mu lies between the largest v_j among the
entries counted as 0 and the smallest among those counted as 1 (or equals the v_j of
fractional entries), so ``sum_j max(w_j - mu, 0)`` is the sum of ``w_j - mu`` over the
entries counted as 1 plus the fractional entries' terms, group by group with
``w_j = v_j + nu_g``. Only when the levels cross (a violation) is that sum taken in a second
pass.

A screened answer of the analytic method is scanned on its innermost survivors alone (see
:mod:`copslp._scan`): for the elements its screening passes decided, the levels those passes
compared them with stand in for the largest v_j counted as 0 and the smallest counted as 1.
v_j is linear in lambda, so an element whose smallest v over a box exceeds a level exceeds it
at every lambda in the box; the scan takes the levels only when lambda lies in every box.
They bound the extremes, so the interval left for mu is narrower and a point that passes
this way passes the full check too (:func:`copslp.solve` makes the full check when it does
not).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._blocks import blocks
from ._problem import Problem
from ._result import Certificate
from ._scan import PointScan

__all__ = ["certify", "certify_binary"]

_TINY = np.finfo(np.float64).tiny
_EPS = np.finfo(np.float64).eps


class ArrayMeasures:
    """What the certificate reads of the scores beyond the scan, for a :class:`Problem` whose
    scores are in memory and a point ``x`` (and its ``fractional`` entries). Scores held
    elsewhere (:mod:`copslp._analytic.driver`) provide the same five numbers from their passes."""

    def __init__(self, problem: Problem, x: np.ndarray, fractional: np.ndarray):
        self.problem, self.x, self.fractional = problem, x, fractional

    def magnitude(self, row: int) -> float:
        """``max_j |s_row,j|``."""
        return _largest_magnitude(self.problem.scores[row])

    def abs_value(self, row: int) -> float:
        """``sum_j |s_row,j| |x_j|``."""
        return float(np.abs(self.problem.scores[row]) @ np.abs(self.x))

    def fractional_values(self, lam: np.ndarray) -> np.ndarray:
        """``v`` at the fractional entries of x."""
        return _combined(self.problem, lam, self.fractional)

    def fractional_segments(self) -> np.ndarray:
        """The segment (group; 0 without floors) of each fractional entry."""
        if self.problem.floors is None:
            return np.zeros(self.fractional.shape[0], dtype=np.intp)
        return self.problem.groups[self.fractional]

    def positive_part(self, lam: np.ndarray, mu: float, nu: np.ndarray | None) -> float:
        """``sum_j max(v_j + nu_{g(j)} - mu, 0)`` over every element."""
        return _positive_part_streamed(self.problem, lam, mu, nu)


def certify(problem: Problem, x: np.ndarray, multipliers: np.ndarray, *, rtol: float, scan: PointScan,
            measures=None) -> Certificate:
    """Check optimality of ``(x, multipliers)`` for ``problem``; see the module docstring.

    ``rtol`` bounds every relative violation and is also how far from 0 or 1 an entry of x
    may be and still count as 0 or 1; ``scan`` is :func:`copslp._scan.scan_point` of x at
    that tolerance, with the multipliers. ``measures`` reads the scores where the scan does
    not (:class:`ArrayMeasures` of ``problem`` and ``x`` unless given); with it, ``problem``
    needs only its sizes, budget, bounds and floors, and ``x`` is not read.
    """
    if measures is None:
        measures = ArrayMeasures(problem, x, scan.fractional)
    k = problem.budget
    lam = np.asarray(multipliers, dtype=np.float64)
    values = scan.values
    objective = float(values[0])
    bound_values = values[1:]

    # primal feasibility
    primal = max(abs(scan.x_sum - k) / k, -scan.x_min, scan.x_max - 1.0)
    slack = bound_values - problem.thresholds
    for i in problem.active:
        if slack[i] < 0:
            # against the size of what the score can reach, not of the bound alone (a bound
            # of 1e-9 of the best value is met to a solver's tolerance on the score's scale)
            scale = max(abs(problem.thresholds[i]), abs(bound_values[i]), abs(problem.best_reachable[i]))
            if -slack[i] > rtol * scale:  # signed scores cancel: measure against the terms summed
                scale = max(scale, measures.abs_value(i + 1))
            primal = max(primal, -slack[i] / max(scale, _TINY))

    # dual feasibility
    off = np.ones(lam.shape[0], dtype=bool)
    off[problem.active] = False
    dual = max(0.0, float(-lam.min())) if lam.size else 0.0
    if off.any():
        dual = max(dual, float(np.abs(lam[off]).max()))
    if dual > 0:
        dual /= _multiplier_scale(problem, lam, measures)

    finite_thresholds = np.where(np.isfinite(problem.thresholds), problem.thresholds, 0.0)
    levels = _levels_from_scan(problem, lam, rtol, scan, measures)
    mu, nu = levels.mu, levels.floor_multipliers
    primal = max(primal, levels.floor_shortfall / k)
    dual_bound = k * mu - float(lam @ finite_thresholds) + levels.positive_part
    if nu is not None:
        dual_bound -= float(nu @ problem.floors)
    gap = dual_bound - objective
    complementarity = max(levels.mu_low - levels.mu_high, levels.inversion, 0.0)
    if complementarity > 0:
        # against |mu| first (a crossing by a few ulps of v), else against the scores' scale
        ends = (levels.mu_low, levels.mu_high)
        local = max(map(abs, ends)) if all(map(np.isfinite, ends)) else 0.0
        if complementarity <= rtol * local:
            complementarity /= local
        else:
            complementarity /= max(local, _score_scale(problem, lam, measures))

    # The gap is a difference of sums whose terms can be far larger than the result (lambda b
    # cancelling k mu, or an objective of 0): measure it against the largest of them, and
    # against the scores' scale if that still leaves it above the tolerance.
    lam_b = float(np.abs(lam) @ np.abs(finite_thresholds))
    gap_scale = max(abs(objective), abs(dual_bound), abs(k * mu), lam_b, _TINY)
    relative_gap = gap / gap_scale
    if abs(relative_gap) > rtol:
        relative_gap = gap / max(gap_scale, _score_scale(problem, lam, measures))
    worst = max(primal, dual, complementarity, abs(relative_gap))
    measured = (objective, dual_bound, primal, dual, complementarity, relative_gap, *bound_values)
    return Certificate(
        passed=bool(worst <= rtol) and _all_finite(measured),  # max() passes a NaN over
        budget_dual=mu,
        floor_multipliers=nu,
        primal_violation=float(primal),
        dual_violation=float(dual),
        complementarity_violation=float(complementarity),
        duality_gap=float(relative_gap),
        dual_bound=float(dual_bound),
        tolerance=rtol,
        screened=scan.screened,
    )


def _all_finite(numbers) -> bool:
    """Every number is finite: a sum that overflowed certifies nothing."""
    return bool(np.isfinite(np.asarray(numbers, dtype=np.float64)).all())


class _Levels(NamedTuple):
    """The dual levels derived from a point, and what they say about it.

    ``mu`` lies between ``mu_low`` (the largest w_j with x_j < 1) and ``mu_high`` (the
    smallest v_j with x_j > 0 outside tight-floor groups) when x is optimal;
    ``floor_multipliers`` is nu (None without floors); ``positive_part`` is
    ``sum_j max(w_j - mu, 0)``; ``floor_shortfall`` the worst floor missed; ``inversion`` the
    worst "dropped above kept" inside a tight-floor group.
    """

    mu: float
    mu_low: float
    mu_high: float
    floor_multipliers: np.ndarray | None
    positive_part: float
    floor_shortfall: float
    inversion: float


def _pick_level(mu_low: float, mu_high: float) -> float:
    """A level between the two bounds; the midpoint when they cross (a violation)."""
    if np.isfinite(mu_low) and np.isfinite(mu_high):
        return mu_high if mu_low <= mu_high else 0.5 * (mu_low + mu_high)
    if np.isfinite(mu_high):
        return mu_high
    if np.isfinite(mu_low):
        return mu_low
    return 0.0


def _multiplier_scale(problem: Problem, lam: np.ndarray, measures) -> float:
    """Scale for lambda: the size of s_0 relative to the secondary scores it is traded against."""
    s0 = measures.magnitude(0)
    si = max((measures.magnitude(i + 1) for i in problem.active), default=0.0)
    if s0 == 0 or si == 0:
        return max(1.0, float(np.abs(lam).max(initial=0.0)))
    return s0 / si


def _largest_magnitude(values: np.ndarray) -> float:
    return max(abs(float(values.max())), abs(float(values.min())))


def _positive_part_streamed(problem, lam, mu, nu=None) -> float:
    """``sum_j max(w_j - mu, 0)`` with ``w = v + nu[group]`` (``v`` without floors)."""
    total = 0.0
    for block in blocks(problem.size):
        w = _combined(problem, lam, block)
        if nu is not None and nu.any():
            w += nu[problem.groups[block]]
        w -= mu
        total += float(np.maximum(w, 0.0, out=w).sum())
    return total


def _combined(problem, lam, index):
    """``v`` on the elements ``index`` (a slice or an index array)."""
    v = problem.primary[index].astype(np.float64)
    for i in np.flatnonzero(lam):
        v += lam[i] * problem.scores[i + 1, index].astype(np.float64)
    return v


def _score_scale(problem, lam, measures) -> float:
    """The magnitude of ``v``'s terms: ``max|s_0| + sum_i lambda_i max|s_i|``.

    Complementarity is measured against it: the generic solvers work on scores divided by
    their largest magnitude, so their tolerances are relative to this scale, and a level that
    lies among entries far below it (underflowed scores) is then judged by the same yardstick.
    """
    scale = measures.magnitude(0)
    for i in problem.active:
        if lam[i] != 0.0:
            scale += abs(lam[i]) * measures.magnitude(i + 1)
    return max(scale, _TINY)


def _levels_from_scan(problem, lam, xtol, scan, measures) -> _Levels:
    """The levels of :class:`_Levels` from the per-segment numbers of ``scan`` (one segment
    per group; one segment without floors).

    mu lies between the largest v_j with x_j < 1 and the smallest v_j with x_j > 0 outside
    tight groups; a tight group's kept elements must be at least its dropped ones, and
    ``nu_l = max(mu - min{v_j : x_j > 0, j in G_l}, 0)``. When every entry counted as 1 has
    ``w_j = v_j + nu >= mu`` and every entry counted as 0 has ``w_j <= mu``, the sum of
    positive parts is the sum of ``w_j - mu`` over the entries counted as 1 plus the
    fractional entries' terms; otherwise it takes a streamed pass.
    """
    floors = problem.floors
    if floors is None:
        tight, shortfall = np.zeros(1, dtype=bool), 0.0
    else:
        slack = scan.segment_x - floors
        tight = (floors > 0) & (slack <= xtol * np.maximum(floors, 1))
        shortfall = float(np.maximum(-slack, 0.0).max(initial=0.0))
    v_frac = measures.fractional_values(lam)
    segment_frac = measures.fractional_segments()
    kept_min, dropped_max = scan.ones_min.copy(), scan.zeros_max.copy()
    np.minimum.at(kept_min, segment_frac, v_frac)  # fractional entries are both kept and dropped
    np.maximum.at(dropped_max, segment_frac, v_frac)
    mu_low = float(dropped_max.max(initial=-np.inf))
    mu_high = float(kept_min[~tight].min(initial=np.inf))
    mu = _pick_level(mu_low, mu_high)
    nu = np.where(tight & np.isfinite(kept_min), np.maximum(mu - kept_min, 0.0), 0.0)
    within = float(np.where(tight, dropped_max - kept_min, -np.inf).max(initial=-np.inf))
    rounding = 8 * _EPS * (abs(mu) + nu)  # mu - kept_min + kept_min need not give back mu exactly
    if np.all(scan.zeros_max + nu <= mu + rounding) and np.all(scan.ones_min + nu >= mu - rounding):
        ones_v = float(scan.ones_values[0] + lam @ scan.ones_values[1:])
        positive_part = (ones_v + float(nu @ scan.segment_ones) - mu * int(scan.segment_ones.sum())
                         + float(np.maximum(v_frac + nu[segment_frac] - mu, 0.0).sum()))
    else:
        positive_part = measures.positive_part(lam, mu, None if floors is None else nu)
    return _Levels(mu, mu_low, mu_high, None if floors is None else nu, positive_part, shortfall, within)


def certify_binary(problem: Problem, x: np.ndarray, solution, *, rtol: float) -> Certificate:
    """Certificate for a binary answer (method ``milp``): x is a feasible mask, and the gap is
    the mask's distance below the solver's bound ``solution.info["mip_dual_bound"]`` (relative
    to the larger of the two and k max|s_0|; the solver's reported ``mip_gap`` where it gives no
    bound), which must be <= rtol.

    Feasibility is recomputed here; optimality of a binary point rests on the solver's bound.
    """
    k = problem.budget
    values = problem.scores @ x
    integrality = float(np.abs(x - np.round(x)).max())
    primal = max(abs(float(x.sum()) - k) / k, integrality)
    for i in problem.active:
        # the yardstick of certify: the bound, the best value, the terms summed
        scale = max(abs(problem.thresholds[i]), abs(problem.best_reachable[i]), float(np.abs(problem.scores[i + 1]) @ x),
                    _TINY)
        primal = max(primal, (problem.thresholds[i] - values[i + 1]) / scale)
    if problem.has_floors:
        counts = np.bincount(problem.groups, weights=x, minlength=problem.floors.shape[0])
        primal = max(primal, float(np.max(problem.floors - counts, initial=0.0)))
    bound = float(solution.info.get("mip_dual_bound", np.nan))
    # the gap measured from the solver's bound and the mask's own objective, against k times the
    # largest |s_0| as well (an objective of 2e-16 beside a bound of 3e-16 is round-off, which
    # HiGHS reports as a gap of 1); its own report only where it gives no bound. HiGHS has also
    # reported 0 for a mask 2.3e-8 below its bound
    terms = k * float(np.abs(problem.scores[0]).max(initial=0.0))
    measured = (bound - float(values[0])) / max(abs(float(values[0])), abs(bound), terms, _TINY)
    gap = float(measured) if np.isfinite(measured) else float(solution.info.get("mip_gap", np.inf))
    primal = max(primal, 0.0)
    return Certificate(
        passed=bool(primal <= rtol and gap <= rtol) and _all_finite((primal, *values)),
        budget_dual=float("nan"),
        floor_multipliers=None,
        primal_violation=primal,
        dual_violation=0.0,
        complementarity_violation=0.0,
        duality_gap=gap,
        dual_bound=bound,
        tolerance=rtol,
    )
