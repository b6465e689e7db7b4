r"""The exact finish on the last survivors: a bounded-variable primal simplex written for the
shape of the COPS LP (docs/maths.md §4).

The LP left after screening has a few thousand columns and only :math:`p = 1 + r + G` rows
(the budget, the r bounds, the G floors that are not 0):

.. math::

    \max_x\ \langle s_0, x\rangle \quad\text{s.t.}\quad \textstyle\sum_j x_j = k,\quad
    \langle s_i, x\rangle - t_i = b_i,\quad \textstyle\sum_{j \in G_g} x_j - u_g = f_g,\quad
    0 \le x \le 1,\ t, u \ge 0.

A generic solver pays a fixed cost of tens of milliseconds per call for that; here every
iteration is one :math:`p \times p` inverse (with more than 32 rows, floors on many groups, an
update of the last one after each pivot, computed afresh every 32) and one product of the
:math:`p`-vector of duals with the :math:`p \times m` matrix (the pricing), in numpy. Columns that are equal in
every score and in their group (the exact zeros of a pruned model, ties) are one column with
the upper bound of their count, so ties cost nothing.

Start: the top-k (the greedy with floors) of :math:`v(\lambda_0)` at the multipliers the
localisation reached, every structural column at a bound; a row that this point violates
gets an artificial variable, and phase 1 drives their sum to 0 (the problem is infeasible
when it cannot). Pricing is Dantzig's largest reduced cost, Bland's smallest index after a
run of degenerate pivots (no cycling). The basic values are recomputed from the nonbasic
ones at every iteration, so round-off does not accumulate.

Duals, in the project's sign convention (docs/maths.md §3): with :math:`y` the simplex
multipliers of the scaled rows, :math:`\mu = \sigma_0 y_0`,
:math:`\lambda_i = -\sigma_0 y_i / \sigma_i` and :math:`\nu_g = -\sigma_0 y_g`, where
:math:`\sigma_0, \sigma_i` are the scales of :math:`s_0, s_i` (their largest magnitudes).
"""

from __future__ import annotations

import numpy as np

from .._errors import SolverError
from .._inner import InnerProblem
from .screening import ReducedProblemInfeasible

__all__ = ["solve_small_lp"]

#: Reduced costs below this (the scaled problem has entries of magnitude <= 1) do not enter.
_OPTIMALITY_TOL = 1e-11
#: Phase 1 ends feasible when the artificial variables sum to at most this (scaled rows); basic
#: values count as within their bounds up to this of each bound's size.
_FEASIBILITY_TOL = 1e-9
#: Pivot elements smaller than this are not taken in the ratio test.
_PIVOT_TOL = 1e-9
#: A basic value beyond its bound by more than this (of the bound's size) is not round-off.
_ROUND_OFF = 1e-12
#: Nonbasic columns examined for one batch of bound flips (:func:`_flip_many`).
_FLIP_BATCH = 512
#: Degenerate pivots in a row after which Bland's rule prices (and until a step moves).
_DEGENERATE_RUN = 30
#: Rows up to which the basis is inverted at every iteration (the budget and a few bounds);
#: beyond (floors on many groups: a row each), the inverse is updated after each pivot
#: (O(p^2), not O(p^3)) and computed afresh every ``_UPDATES_BEFORE_REFACTOR`` pivots.
_INVERTED_EVERY_PIVOT = 32
_UPDATES_BEFORE_REFACTOR = 32


def solve_small_lp(inner: InnerProblem, start: np.ndarray | None = None):
    r"""x, lambda (one per bound of ``inner``) and details of the LP on ``inner``, at a vertex.

    Both phases run on the bounds less the round-off of the sums behind them
    (``inner.slack``, what the certificate forgives): at a bound that is only just met (at
    gamma = 1, off its face), a basic surplus then has room of that round-off, not a value
    beyond its bound by round-off, which a small pivot would amplify (5e-13 over a pivot of
    2.7e-7: 2e-6) and carry into a basis infeasible in exact arithmetic.

    Parameters
    ----------
    inner : InnerProblem
        The survivors' problem (scores (r + 1, m), budget, thresholds, optional floors).
    start : ndarray, shape (r,), optional
        Multipliers near lambda*: the first point is the best budget-set of
        :math:`v = s_0 + \sum_i \lambda_i s_i` there (else at lambda = 0).

    Raises
    ------
    ReducedProblemInfeasible
        No x in [0, 1]^m meets the budget, the bounds (up to their round-off) and the floors.
    SolverError
        The iteration limit was reached (a defect: the pivot rules cannot cycle).
    """
    r = inner.thresholds.shape[0]
    # a row per group with a floor left: a floor of 0 holds at every x (after screening, most
    # of the groups of per-filter floors), and each row is one more of the p x p factorisation
    floored = np.zeros(0, dtype=np.int64) if inner.floors is None else np.flatnonzero(inner.floors > 0)
    n_groups = floored.shape[0]
    columns, inverse, counts = inner.equal_columns  # the same sort few_enough asked for
    columns = np.asarray(columns, dtype=np.float64)
    q = columns.shape[1]
    p = 1 + r + n_groups

    scale = _row_scales(columns, inner.thresholds)
    rows = np.empty((p, q))
    rows[0] = 1.0
    rows[1:1 + r] = columns[1:] / scale[1:, None]
    rhs = np.empty(p)
    rhs[0] = inner.budget
    rhs[1:1 + r] = inner.thresholds / scale[1:]
    if n_groups:
        column_groups = np.zeros(q, dtype=np.int64)
        column_groups[inverse] = inner.groups
        rows[1 + r:] = column_groups[None, :] == floored[:, None]
        rhs[1 + r:] = inner.floors[floored]
    # a column with an entry beyond 1 (a large cost to a bound, beside the entries that meet it)
    # is divided by it, its amount multiplied: the ratio test then sees its changes at scale
    spread = np.maximum(np.abs(rows).max(axis=0), 1.0)
    rows /= spread

    # the columns: structural (q), surplus of each inequality row (r + G), artificial (p)
    n_surplus = r + n_groups
    total = q + n_surplus + p
    matrix = np.zeros((p, total))
    matrix[:, :q] = rows
    matrix[1 + np.arange(n_surplus), q + np.arange(n_surplus)] = -1.0
    lower = np.zeros(total)
    upper = np.concatenate([counts * spread, np.full(n_surplus + p, np.inf)])
    artificial = q + n_surplus + np.arange(p)

    value = np.zeros(total)
    value[:q] = _first_point(inner, inverse, counts, start) * spread
    residual = rhs - rows @ value[:q]
    basis = np.empty(p, dtype=np.int64)
    for row in range(p):
        if row > 0 and residual[row] <= 0:  # an inequality the first point meets: its surplus
            basis[row] = q + row - 1
        else:
            basis[row] = artificial[row]
            matrix[row, artificial[row]] = 1.0 if residual[row] >= 0 else -1.0

    phase_one = np.zeros(total)
    phase_one[artificial] = -1.0
    relaxed = rhs.copy()  # a bound counts as met up to the round-off of its sums
    relaxed[1:1 + r] -= inner.slack / scale[1:]
    # a reduced cost counts per unit of the column's own amount: a divided column's is divided too
    optimality = np.full(total, _OPTIMALITY_TOL)
    optimality[:q] /= spread
    basis, value, _ = _iterate(matrix, relaxed, lower, upper, phase_one, basis, value, optimality)
    if value[artificial].sum() > _FEASIBILITY_TOL * max(1.0, float(np.abs(rhs).max())):
        raise ReducedProblemInfeasible()
    objective = np.zeros(total)
    objective[:q] = columns[0] / scale[0] / spread
    basis, value, duals = _phase_two(matrix, rhs, relaxed, lower, upper, objective, basis, value, optimality,
                                     artificial)

    amounts = np.clip(value[:q] / spread, 0.0, counts)
    x = _spread(amounts, inverse, counts)
    # a bound whose surplus is basic is slack: its dual is 0 (up to round-off, made exact); the
    # others' are >= 0 (round-off below 0 made 0). Not a threshold on the scaled duals: after
    # scaling, a real multiplier can be 1e-11 (s_0 of 1e7 beside a bound's entries of 1e-4)
    bound_duals = np.maximum(-duals[1:1 + r], 0.0)
    bound_duals[np.isin(q + np.arange(r), basis)] = 0.0
    multipliers = scale[0] * bound_duals / scale[1:]
    return x, multipliers, {"reduced_solver": "simplex", "distinct_columns": int(q)}


def _phase_two(matrix, rhs, relaxed, lower, upper, objective, basis, value, optimality, artificial):
    """Phase 2 from the end of phase 1, then the optimal basis moved onto the bounds as they
    are (:func:`_onto_bounds`): ``(basis, value, duals)``.

    Phase 1 may leave a nonbasic artificial below 0 by round-off. Its variable leaves the
    problem at 0; but where a basic value weighs 1e-11 in that artificial's (scaled) row, that
    round-off moves it by 0.1 on the way, and another basic value beyond its bound. Kept where
    it is (fixed there), it may instead end beyond a bound through a later pivot as small. So
    phase 2 runs with the artificials at 0 and, where that leaves a basic value beyond its
    bounds by more than round-off and some artificial was below 0, again from phase 1's end
    with those kept where they were; the answer whose basic values go less far beyond their
    bounds is taken (both are vertices of the LP within its round-off; the certificate judges
    the point)."""
    nonbasic = np.setdiff1d(artificial, basis)
    below = np.minimum(value[nonbasic], 0.0)
    answers = []
    for kept in ((np.zeros_like(below), below) if below.any() else (np.zeros_like(below),)):
        low, high, start, at = lower.copy(), upper.copy(), value.copy(), basis.copy()
        low[nonbasic] = high[nonbasic] = start[nonbasic] = kept
        basic = np.intersect1d(artificial, at)
        high[basic] = start[basic] = 0.0
        at, start, duals = _iterate(matrix, relaxed, low, high, objective, at, start, optimality)
        _onto_bounds(matrix, rhs, low, high, at, start)
        beyond = float(np.max(np.maximum(low[at] - start[at], start[at] - high[at]) / _sizes(low[at], high[at])))
        answers.append((beyond, at, start, duals))
        if beyond <= _ROUND_OFF:
            break
    _, basis, value, duals = min(answers, key=lambda answer: answer[0])
    return basis, value, duals


def _row_scales(columns: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """What each row is divided by: s_0 by its largest |entry|; a bound's row by the largest
    entry that helps meet it (positive), else by |b_i|, else by its largest |entry|; 1 for a
    row of zeros. Not by a larger negative entry: the certificate measures a bound's
    shortfall against what can meet it, and phase 1's tolerance, 1e-9 of the scaled row,
    would otherwise let the bound be missed by 1e-9 of an entry that only costs it."""
    largest = np.abs(columns).max(axis=1)
    scale = largest.copy()
    helps = np.maximum(columns[1:].max(axis=1), 0.0)
    scale[1:] = np.where(helps > 0, helps, np.where(thresholds != 0, np.abs(thresholds), largest[1:]))
    return np.where(scale > 0, scale, 1.0)


def _onto_bounds(matrix, rhs, lower, upper, basis, value) -> None:
    """Move the basic values of the optimal basis from the bounds less their round-off to the
    bounds as they are, where they stay within their own bounds there (the basis, whose
    reduced costs do not depend on the right-hand side, stays optimal): the objective is then
    the LP's on the bounds themselves, not up to lambda_i times their round-off above it."""
    nonbasic_value = value.copy()
    nonbasic_value[basis] = 0.0
    basic_value = np.linalg.solve(matrix[:, basis], rhs - matrix @ nonbasic_value)
    low, high = lower[basis], upper[basis]
    room = _FEASIBILITY_TOL * _sizes(low, high)
    if np.all((basic_value >= low - room) & (basic_value <= high + room)):
        value[basis] = basic_value


def _sizes(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The size of each variable's bounds that its tolerances scale with: |upper| where it is
    finite, else |lower|, at least 1."""
    return np.maximum(1.0, np.abs(np.where(np.isfinite(high), high, low)))


def _first_point(inner: InnerProblem, inverse, counts, start) -> np.ndarray:
    """Amounts of each distinct column in the best budget-set of v at ``start``, each put at
    the nearer of its bounds (a column the set takes only in part is taken whole or not at all)."""
    multipliers = np.zeros(inner.thresholds.shape[0]) if start is None else np.asarray(start, dtype=np.float64)
    chosen = inner.select(inner.combine(multipliers))
    taken = np.bincount(inverse[chosen], minlength=counts.shape[0])
    return np.where(2 * taken >= counts, counts, 0).astype(np.float64)


def _spread(amounts: np.ndarray, inverse: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """x per element: each column's amount given to its elements in order, ones first, then
    the fraction, then zeros (at most one fractional element per column)."""
    order = np.argsort(inverse, kind="stable")
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(inverse.shape[0], dtype=np.float64)
    rank[order] = np.arange(inverse.shape[0]) - np.repeat(first, counts)
    return np.clip(amounts[inverse] - rank, 0.0, 1.0)


def _iterate(matrix, rhs, lower, upper, cost, basis, value, optimality):
    """Primal simplex iterations from the basis ``basis`` with nonbasic ``value`` at their
    bounds, until no reduced cost improves: ``(basis, value, duals)``."""
    p, total = matrix.shape
    status = np.zeros(total, dtype=np.int8)  # 0 at lower, 1 at upper, 2 basic
    status[value >= upper] = 1
    status[basis] = 2
    degenerate = 0
    inverse, updates = None, 0
    for _ in range(50 * (total + p) + 100):
        if inverse is None or updates >= _UPDATES_BEFORE_REFACTOR or p <= _INVERTED_EVERY_PIVOT:
            try:
                inverse = np.linalg.inv(matrix[:, basis])
            except np.linalg.LinAlgError:
                raise SolverError("analytic: a singular basis in the survivors' simplex (a defect)") from None
            updates = 0
        nonbasic_value = np.where(status == 2, 0.0, value)
        value[basis] = inverse @ (rhs - matrix @ nonbasic_value)
        duals = cost[basis] @ inverse
        reduced = cost - duals @ matrix
        up = (status == 0) & (reduced > optimality) & (upper > lower)
        down = (status == 1) & (reduced < -optimality)
        eligible = up | down
        if not eligible.any():
            return basis, value, duals
        if degenerate >= _DEGENERATE_RUN:
            entering = int(np.flatnonzero(eligible)[0])
        else:
            entering = int(np.argmax(np.where(eligible, np.abs(reduced), -1.0)))
        direction = 1.0 if up[entering] else -1.0
        column = inverse @ matrix[:, entering]
        change = -direction * column  # d x_basis / d step
        step, leaving, to_upper = upper[entering] - lower[entering], -1, False
        basic_value, basic_lower, basic_upper = value[basis], lower[basis], upper[basis]
        with np.errstate(divide="ignore", invalid="ignore"):
            down_limit = np.where(change < -_PIVOT_TOL, np.maximum(basic_value - basic_lower, 0.0) / -change, np.inf)
            up_limit = np.where(change > _PIVOT_TOL, np.maximum(basic_upper - basic_value, 0.0) / change, np.inf)
        limits = np.minimum(down_limit, up_limit)
        if _limit_small_pivots(down_limit, up_limit, change, basic_value, basic_lower, basic_upper,
                               min(step, limits.min(initial=step))):
            limits = np.minimum(down_limit, up_limit)
        if limits.shape[0] and limits.min() < step:
            best = limits.min()
            near = np.flatnonzero(limits <= best * (1 + 1e-12) + 1e-15)
            leaving = int(near[np.argmax(np.abs(change[near]))])  # the largest pivot among the ties
            step = limits[leaving]
            to_upper = up_limit[leaving] <= down_limit[leaving]
        if not np.isfinite(step):
            raise SolverError("analytic: the survivors' LP is unbounded (a defect: x lies in a box)")
        degenerate = degenerate + 1 if step <= 0 else 0
        value[entering] += direction * step
        if leaving < 0:  # a bound flip: the basis stays, and more columns may follow it
            status[entering] = 1 - status[entering]
            if degenerate == 0:
                value[basis] += step * change
                eligible[entering] = False
                _flip_many(matrix, inverse, lower, upper, value, status, basis, reduced, eligible, up)
            continue
        out = basis[leaving]
        status[out] = 1 if to_upper else 0
        # at its bound; one already beyond it by round-off (its step was 0) stays where it is, as
        # if its bound were there: put on the bound, a small pivot would carry the round-off into
        # the entering value, amplified (2e-11 below 0 over a pivot of 3e-7: 8e-5 above 1)
        was = basic_value[leaving]
        value[out] = max(upper[out], was) if to_upper else min(lower[out], was)
        basis[leaving] = entering
        status[entering] = 2
        if p > _INVERTED_EVERY_PIVOT:  # the new basis's inverse from the old one (column l replaced)
            row = inverse[leaving] / column[leaving]
            inverse -= np.outer(column, row)
            inverse[leaving] = row
            updates += 1
    raise SolverError("analytic: the simplex on the survivors reached its iteration limit (a defect)")


def _limit_small_pivots(down_limit, up_limit, change, basic_value, basic_lower, basic_upper, step) -> bool:
    """Give the ratio test the limit of each basic value whose change per unit step is at
    most :data:`_PIVOT_TOL` (left out of it: so small a pivot makes a poor basis) but which
    ``step`` would still take beyond its bound by more than :data:`_FEASIBILITY_TOL` of the
    bound's size: a divided column's range is large (1e9 for an entry of 1e9), and a basic
    value it moves 1e-9 per unit moves by 1 over it. Returns whether any limit was given."""
    small = (np.abs(change) <= _PIVOT_TOL) & (change != 0.0)
    if not small.any() or not np.isfinite(step):
        return False
    falling = change < 0
    room = np.maximum(np.where(falling, basic_value - basic_lower, basic_upper - basic_value), 0.0)
    bound = np.abs(np.where(falling, basic_lower, basic_upper))
    over = small & (step * np.abs(change) - room > _FEASIBILITY_TOL * np.maximum(1.0, np.where(np.isfinite(bound),
                                                                                             bound, 0.0)))
    if not over.any():
        return False
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = room / np.abs(change)
    down_limit[over & falling] = ratio[over & falling]
    up_limit[over & ~falling] = ratio[over & ~falling]
    return True


def _flip_many(matrix, inverse, lower, upper, value, status, basis, reduced, eligible, up) -> bool:
    """After a bound flip, move more improving nonbasic columns to their other bound at once,
    where the basic values stay within their bounds: the longest such prefix of the eligible
    columns in order of their reduced cost (a bound flip changes no reduced cost, so each of
    them is an improving simplex step of its own). Returns whether any column moved. Phase 1
    from a point far from the bounds' optimum needs hundreds of flips: done one per
    iteration, each would pay the factorisation and the pricing again."""
    candidates = np.flatnonzero(eligible & np.isfinite(upper))
    if candidates.shape[0] == 0:
        return False
    candidates = candidates[np.argsort(-np.abs(reduced[candidates]), kind="stable")[:_FLIP_BATCH]]
    moves = np.where(up[candidates], upper[candidates] - lower[candidates], lower[candidates] - upper[candidates])
    effect = np.cumsum(-(inverse @ matrix[:, candidates]) * moves, axis=1)  # basic values' change, cumulative
    basic_value = value[basis][:, None]
    slack_low = np.minimum(basic_value - lower[basis][:, None], 0.0)  # round-off below a bound stays as it is
    slack_high = np.maximum(basic_value - upper[basis][:, None], 0.0)
    within = np.all((basic_value + effect - lower[basis][:, None] >= slack_low)
                    & (basic_value + effect - upper[basis][:, None] <= slack_high), axis=0)
    count = int(np.argmin(within)) if not within.all() else within.shape[0]
    if count == 0:
        return False
    moved = candidates[:count]
    value[moved] = np.where(up[moved], upper[moved], lower[moved])
    status[moved] = 1 - status[moved]
    return True
