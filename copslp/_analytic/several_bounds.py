r"""The exact finish for several bounds (r >= 2): localise lambda*, then the exact LP on a few.

The dual :math:`\phi(\lambda) = T_k(s_0 + \sum_i \lambda_i s_i) - \langle\lambda, b\rangle` is
minimised over the box by projected Newton steps (the curvature read at the k-th level) or,
when they stall, by the ellipsoid method (:mod:`copslp._analytic.ellipsoid`); the oracle is one
selection among the current survivors, which are screened again whenever the box has shrunk
enough, until at most ``FINAL_LP_SIZE`` remain. The LP on those is solved exactly (the
simplex of :mod:`copslp._analytic.simplex`, started at the point the localisation reached) and
accepted when its multipliers lie inside the box.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._inner import InnerProblem
from .._selection import take_columns
from .ellipsoid import Ellipsoid
from .screening import RESCREEN_SHRINK, MinimumOutsideBox, ReducedProblemInfeasible, screen_exact
from .simplex import solve_small_lp

__all__ = ["Box", "several_bounds_finish", "approximate_minimum", "newton_start", "inside", "FINAL_LP_SIZE"]

#: Several bounds: the survivors are handed to the exact LP once at most this many remain.
FINAL_LP_SIZE = 2048
#: Survivors beyond this many are not searched for equal columns (:func:`few_enough`).
_DISTINCT_CHECK_LIMIT = 64 * FINAL_LP_SIZE
#: Several bounds: ellipsoid cuts allowed per stage (times the number of bounds) before
#: the stage ends without having shrunk its box.
_CUTS_PER_STAGE = 40
#: Several bounds: Newton steps per phase, elements on either side of the k-th level that
#: estimate the curvature, and boxes tried around the Newton point before the ellipsoid.
_NEWTON_STEPS = 12
_CURVATURE_WINDOW = 512
_NARROW_TRIES = 4
_NEWTON_SHRINK = 16.0
_SLOW_RESCREENS = 2


class Box(NamedTuple):
    """A box [lo, hi] of multipliers and a point in it (the best guess of lambda*)."""

    lo: np.ndarray
    hi: np.ndarray
    centre: np.ndarray


class _DualPoint(NamedTuple):
    r"""One call of the oracle: :math:`\phi`, a subgradient and the curvature at ``multipliers``."""

    multipliers: np.ndarray
    value: float  # phi(lambda) = <v, x(lambda)> - <lambda, b>
    slope: np.ndarray  # <s_i, x(lambda)> - b_i: a subgradient of phi
    round_off: float  # a bound on the round-off of ``value``
    curvature: np.ndarray | None  # the estimate H of :func:`_dual_point` as S^-1 H S^-1, when asked for
    curvature_scale: np.ndarray | None  # S: the largest |s_i| of each secondary row near the level
    window: float | None  # the width in v of the elements that estimated it


def _dual_point(inner: InnerProblem, multipliers: np.ndarray, curvature: bool = False,
                window: float | None = None) -> _DualPoint:
    r"""Evaluate :math:`\phi(\lambda) = T_k(v) - \langle\lambda, b\rangle` (the greedy of the
    floors in place of :math:`T_k` with floors) and its subgradient by one selection.

    ``curvature``: also estimate the Hessian of the smoothed :math:`\phi`. Moving lambda by
    :math:`d\lambda` moves :math:`v_j` by :math:`\langle s_j, d\lambda\rangle` (s_j: the
    secondary scores of element j) and the k-th level mu by :math:`\langle\bar s, d\lambda\rangle`
    (:math:`\bar s`: their mean at the level), so the elements crossing the level change the
    subgradient by :math:`H\,d\lambda` with
    :math:`H = \sum_j \delta(v_j - \mu)(s_j - \bar s)(s_j - \bar s)^\top`, estimated as the
    scatter matrix of the elements with v in a window of width w around mu, divided by w.
    Without a ``window`` (the width of the previous call) it is the range of the
    ``2 _CURVATURE_WINDOW`` elements ranked around the level (partitions at three ranks);
    with one, the elements inside it (one pass), and the next width is scaled towards
    ``2 _CURVATURE_WINDOW`` elements. Without floors the window holds every element whose v
    lies in it (elements tied there included: beyond ``4 _CURVATURE_WINDOW`` of them, every
    so many, their scatter scaled back up).
    """
    m, k, r = inner.size, inner.budget, multipliers.shape[0]
    half = min(_CURVATURE_WINDOW, k, m - k)
    wants_curvature = curvature and half > r
    hessian = width = next_window = near = None
    if inner.floors is None:
        v = inner.combine(multipliers, out=inner.scratch("v"))
        ranks = (m - k - half, m - k, m - k + half - 1) if wants_curvature and window is None else (m - k,)
        x, at_ranks = _top_k_indicator(inner, v, ranks)
        if wants_curvature and window is None:
            near = _within(inner, v, at_ranks[0], at_ranks[2])
            width = next_window = float(at_ranks[2] - at_ranks[0])
        elif wants_curvature:
            near = _within(inner, v, at_ranks[0] - window / 2.0, at_ranks[0] + window / 2.0)
        sums = np.einsum("ij,j->i", inner.scores, x)  # <s_i, x(lambda)> for every row; no BLAS
    else:
        v = inner.combine(multipliers)
        chosen = inner.select(v)
        if wants_curvature:  # the window by ranks each time: the greedy's level is not v's k-th
            order = np.argpartition(v, (m - k - half, m - k + half - 1))
            near = order[m - k - half:m - k + half]
            width = next_window = float(v[order[m - k + half - 1]] - v[order[m - k - half]])
        if 8 * chosen.shape[0] > inner.size:  # many chosen: a product with the indicator, not a gather
            sums = np.einsum("ij,j->i", inner.scores, inner.indicator(chosen))
        else:
            sums = take_columns(inner.scores, chosen).sum(axis=1)
    if wants_curvature and window is not None and inner.floors is None:
        width = window
        next_window = window * float(np.clip(2.0 * half / max(near.shape[0], 1), 0.25, 4.0))
    scale = None
    if width is not None and width > 0 and near.shape[0] > r + 1:
        thinned = max(1, near.shape[0] // (4 * half))  # elements tied at the level: every thinned-th
        around = take_columns(inner.scores[1:], near[::thinned])
        around -= around.mean(axis=1, keepdims=True)
        scale = np.abs(around).max(axis=1)
        scale = np.where(scale > 0, scale, 1.0)
        around /= scale[:, None]  # scores near 1e200 would square to inf
        hessian = around @ (around.T * (near.shape[0] / around.shape[1] / width))
    slope = sums[1:] - inner.thresholds
    value = float(sums[0] + multipliers @ slope)
    magnitude = abs(float(sums[0])) + float(multipliers @ (np.abs(sums[1:]) + np.abs(inner.thresholds)))
    return _DualPoint(multipliers, value, slope, 1e-12 * magnitude, hessian, scale, next_window)


def _top_k_indicator(inner: InnerProblem, v: np.ndarray, ranks: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The indicator of a best budget-set by ``v`` (no floors; ties at the k-th level taken in
    order) and the values of v at the positions ``ranks`` of its ascending order (one of them
    m - k, the k-th largest), by partitions of a copy; in the problem's own buffers
    (:meth:`InnerProblem.scratch`), which the next call overwrites."""
    m, k = inner.size, inner.budget
    x = inner.scratch("x")
    if k == 0 or k == m:
        x.fill(1.0 if k else 0.0)
        return x, np.full(len(ranks), -np.inf if k else np.inf)
    ordered = inner.scratch("ordered")
    np.copyto(ordered, v)
    ordered.partition(m - k)  # then the ranks below and above it in their own parts (numpy's
    for rank in ranks:         # partition at several ranks at once takes twice as long)
        if rank < m - k:
            ordered[:m - k].partition(rank)
        elif rank > m - k:
            ordered[m - k + 1:].partition(rank - (m - k + 1))
    at_ranks = ordered[list(ranks)]
    level = ordered[m - k]
    above = np.greater(v, level, out=inner.scratch("above", bool))
    np.copyto(x, above)
    missing = k - int(np.count_nonzero(above))
    if missing:
        x[np.flatnonzero(v == level)[:missing]] = 1.0
    return x, at_ranks


def _within(inner: InnerProblem, v: np.ndarray, low: float, high: float) -> np.ndarray:
    """Indices of the entries of v in [low, high], in the problem's buffers (no temporaries of
    its size)."""
    inside_ = np.greater_equal(v, low, out=inner.scratch("above", bool))
    return np.flatnonzero(np.logical_and(inside_, np.less_equal(v, high, out=inner.scratch("below", bool)),
                                         out=inside_))


class _Stage(NamedTuple):
    """The problem left after the screenings so far: ``problem`` holds the elements
    ``index`` of the problem the finish started from, ``ones`` (indices there) are fixed to 1,
    and every fixing holds for the multipliers in [lo, hi]."""

    problem: InnerProblem
    index: np.ndarray
    ones: list
    lo: np.ndarray
    hi: np.ndarray


class _Counter:
    """Oracle calls made by one finish (every stage and method together)."""

    def __init__(self):
        self.calls = 0

    def point(self, inner: InnerProblem, multipliers: np.ndarray, curvature: bool = False,
              window: float | None = None) -> _DualPoint:
        self.calls += 1
        return _dual_point(inner, multipliers, curvature, window)


class _Stalled(Exception):
    """The Newton phase stopped helping: the ellipsoid goes on from ``stage`` and ``multipliers``."""

    def __init__(self, stage: _Stage, multipliers: np.ndarray):
        super().__init__()
        self.stage = stage
        self.multipliers = multipliers


def several_bounds_finish(inner: InnerProblem, box: Box, rtol: float):
    r"""The exact optimum of the LP on ``inner`` with r >= 2 bounds, knowing that lambda* is
    probably in ``box``: minimise the dual

    .. math::

        \phi(\lambda) = T_k\bigl(s_0 + \textstyle\sum_i \lambda_i s_i\bigr) - \langle\lambda, b\rangle,
        \qquad \partial\phi(\lambda) \ni g(\lambda) = \bigl(\langle s_i, x(\lambda)\rangle - b_i\bigr)_i,

    over the box with an oracle that is one selection on the current survivors
    (:func:`_dual_point`), screen the survivors again on a box around the minimum, and solve
    the LP of the few that are left exactly (:func:`copslp._analytic.simplex.solve_small_lp`).

    1. Newton phase (:func:`_newton_finish`): projected Newton steps with the curvature of
       the elements at the k-th level, then a narrow box around the point reached.
    2. If that stalls, the ellipsoid method (:func:`_ellipsoid_finish`): a localisation that
       cannot fail, only take more oracle calls. It starts on the stage the Newton phase
       narrowed to, and again on the whole box when that stage proves not to hold lambda*
       (its problem is infeasible).

    Why the answer is exact: on a box B, the dual of the problem left after screening on B
    equals :math:`\phi` plus a constant (the fixed elements are in every best set, or in none,
    for every lambda in B). The multipliers :math:`\hat\lambda` of the final LP minimise the
    survivors' dual; if they lie inside the last box (or on its faces at 0), they are a local,
    hence global, minimum of the convex :math:`\phi`, and x (the survivors' answer with the
    fixed ones) is optimal. A minimum found on a face of ``box`` (other than lambda_i = 0)
    means that lambda* is probably outside: :class:`MinimumOutsideBox` hands the point to the
    caller, which screens again around it. Round-off in any of these steps can only cost a
    retry, never a wrong answer: the inside test and the certificate decide.
    """
    counter = _Counter()
    stage = _Stage(inner, np.arange(inner.size), [], box.lo, box.hi)
    try:
        x_stage, lam, details, stage = _newton_finish(stage, box, rtol, counter)
        method = "newton"
    except _Stalled as stalled:
        method = "ellipsoid"
        try:
            x_stage, lam, details, stage = _ellipsoid_finish(stalled.stage, box, rtol, stalled.multipliers, counter)
        except ReducedProblemInfeasible:
            if stalled.stage is stage:
                raise
            # the Newton phase narrowed the stage around its own point, which need not hold
            # lambda*: a problem left infeasible there says it did not; the whole box again
            x_stage, lam, details, stage = _ellipsoid_finish(stage, box, rtol, stalled.multipliers, counter)
    details.update(oracle_calls=counter.calls, localisation=method, final_lp_size=stage.problem.size)
    return _assemble(inner.size, stage, x_stage), lam, details


def _assemble(size: int, stage: _Stage, x_stage: np.ndarray) -> np.ndarray:
    """x on the elements the finish started from: the stage's answer and its fixed ones."""
    x = np.zeros(size)
    if stage.ones:
        x[np.concatenate(stage.ones)] = 1.0
    x[stage.index] = x_stage
    return x


def few_enough(inner: InnerProblem) -> bool:
    """Whether the simplex finishes ``inner`` now: at most ``FINAL_LP_SIZE`` elements, or
    that many distinct columns (elements equal in every score and group are one column of
    the simplex: the exact zeros of a pruned model never leave the survivors, however narrow
    the box, since their v is 0 for every lambda)."""
    if inner.size <= FINAL_LP_SIZE:
        return True
    if inner.size > _DISTINCT_CHECK_LIMIT:
        return False
    # equal columns have equal weighted sums: more distinct sums among the first 2F + 1 than F
    # means more distinct columns than F, at the cost of one small sort instead of a lexsort of all
    head = inner.scores[:, :2 * FINAL_LP_SIZE + 1]
    weights = np.random.default_rng(0).random(head.shape[0]) + 0.5
    if np.unique(weights @ head).shape[0] > FINAL_LP_SIZE:
        return False
    return inner.distinct_columns <= FINAL_LP_SIZE


def inside(multipliers: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """lambda strictly inside [lo, hi], except on faces at lambda_i = 0."""
    return bool(np.all(((multipliers > lo) | (lo == 0)) & (multipliers < hi)))


def _on_outer_face(multipliers: np.ndarray, box: Box) -> bool:
    return bool(np.any(((multipliers <= box.lo) & (box.lo > 0)) | (multipliers >= box.hi)))


def _newton_finish(stage: _Stage, box: Box, rtol: float, counter: _Counter, precision=None):
    """Newton steps to the minimum over the stage's box (:func:`_newton_steps`), an exact
    re-screening on a box a few last steps wide around it, and the exact LP once at most
    ``FINAL_LP_SIZE`` survivors remain; a box that misses the LP's multipliers is widened
    fourfold around them (``_NARROW_TRIES`` times), and so is one whose survivors' LP is
    infeasible (the box fixed elements that lambda* does not). Multipliers beyond the
    stage's own box say that the Newton steps narrowed it around a point short of lambda*:
    the steps go on from them on the narrowest of the wider stages that holds them (the
    reduced dual agrees with phi only inside its box, whose minimum then lies on a face).
    Raises
    :class:`_Stalled` when more than ``_SLOW_RESCREENS`` re-screenings did not halve the
    survivors, or the tries (or the returns to a wider stage, ``_NARROW_TRIES`` of each) run
    out. ``precision`` (lambda -> half-widths): stop as soon as the Newton steps leave a box
    that narrow around their point, which is returned with x None (an estimate, not the LP's
    answer: :func:`approximate_minimum`)."""
    lam = np.clip(box.centre, stage.lo, stage.hi)
    wider = []  # the stages this one was narrowed from, widest first
    slow = returns = 0  # re-screenings that did not halve the survivors; returns to a wider stage
    while True:
        lam, half = _newton_steps(stage, lam, counter)
        if _on_outer_face(lam, box):
            raise MinimumOutsideBox(lam)
        if precision is not None and np.all(half <= precision(lam)):
            return None, lam, {}, stage
        for _ in range(_NARROW_TRIES):
            narrow = _rescreen_stage(stage, np.maximum(lam - half, stage.lo), np.minimum(lam + half, stage.hi))
            if not few_enough(narrow.problem):
                slow += 2 * narrow.problem.size > stage.problem.size
                if slow > _SLOW_RESCREENS:
                    raise _Stalled(stage, lam)
                wider.append(stage)
                stage = narrow
                break  # Newton again, on fewer elements
            try:
                x_narrow, lam_hat, details = solve_small_lp(narrow.problem, lam)
            except ReducedProblemInfeasible:  # the narrow box fixed too much: widen it
                half = 4.0 * half
                continue
            if inside(lam_hat, narrow.lo, narrow.hi):
                return x_narrow, lam_hat, details, narrow
            if wider and not inside(lam_hat, stage.lo, stage.hi):
                returns += 1
                if returns > _NARROW_TRIES:
                    raise _Stalled(stage, lam)
                while wider and not inside(lam_hat, stage.lo, stage.hi):
                    stage = wider.pop()
                lam = np.clip(lam_hat, stage.lo, stage.hi)
                break  # Newton again from lam_hat, on the stage that holds it
            lam = np.clip(lam_hat, stage.lo, stage.hi)  # beyond the first stage: on its face
            half = 4.0 * np.maximum(half, np.abs(lam_hat - lam))
        else:
            raise _Stalled(stage, lam)


def approximate_minimum(inner: InnerProblem, box: Box, relative: float, floor: np.ndarray,
                        rtol: float) -> tuple[np.ndarray, int]:
    """A point within about ``relative`` of itself (at least ``floor``, per multiplier) of the
    minimum of phi over ``box``, and the oracle calls it took: the Newton phase of
    :func:`_newton_finish`, stopped once its steps leave a box that narrow around their point
    (or with the LP of the few survivors left, which is exact), without the rest. For an
    estimate whose own error is larger than that (a subsample's lambda*), the exact answer
    costs more than it is worth. A minimum on the outer face raises
    :class:`MinimumOutsideBox`; steps that stall (ties at the level) hand over to the exact
    finish (:func:`several_bounds_finish`) from the point reached."""
    counter = _Counter()
    stage = _Stage(inner, np.arange(inner.size), [], box.lo, box.hi)
    try:
        lam = _newton_finish(stage, box, rtol, counter, precision=lambda at: relative * np.maximum(np.abs(at), floor))[1]
    except _Stalled as stalled:
        _, lam, details = several_bounds_finish(inner, Box(box.lo, box.hi, stalled.multipliers), rtol)
        return lam, counter.calls + details["oracle_calls"]
    return lam, counter.calls


def newton_start(inner: InnerProblem, box: Box) -> tuple[np.ndarray, int]:
    """A first point for the simplex on ``inner``: the Newton steps of :func:`_newton_steps`
    from the box's centre, within the box, and the oracle calls they took. From the
    subsample's estimate the best budget-set of v misplaces many columns near the k-th level
    (each a pivot or a bound flip); from here far fewer (lognormal scores at D = 1e4, three
    bounds, 1,523 survivors: 28 + 72 iterations became 2 + 42). The simplex is exact from any
    start: this point only saves iterations, so where the steps stop on a face of the box
    (other than lambda_i = 0: the survivors' own minimum lies beyond it, where a box that
    missed lambda* leaves it) they go on in a box four times as wide around their point, twice
    at most (lognormal scores at D = 1e4, a box that missed one multiplier by a factor of 4:
    137 iterations became 19)."""
    counter = _Counter()
    lo, hi = box.lo, box.hi
    lam = np.clip(box.centre, lo, hi)
    for _ in range(3):
        lam, _ = _newton_steps(_Stage(inner, np.arange(inner.size), [], lo, hi), lam, counter)
        if not _on_outer_face(lam, Box(lo, hi, lam)):
            break
        width = hi - lo
        lo, hi = np.maximum(lam - 2.0 * width, 0.0), lam + 2.0 * width
    return lam, counter.calls


def _newton_steps(stage: _Stage, lam: np.ndarray, counter: _Counter):
    r"""Projected Newton steps :math:`\lambda \leftarrow \lambda - H^{-1} g` inside the stage's
    box, each damped (quartered) until :math:`\phi` does not increase; returns the last point
    and a half-width for the box around it (four times the last move, at least a relative
    1e-9).

    It stops after the first full (undamped) step shorter than 1/``_NEWTON_SHRINK`` of the
    box in every multiplier: the box four such steps wide around the point is at least
    twice narrower, its re-screening leaves fewer elements, and the next steps cost less.
    Near lambda* the steps reach the size of the pieces of the piecewise linear phi and stop
    shrinking; the boxes then shrink by halves and the exact LP takes over.
    """
    lo, hi = stage.lo, stage.hi
    point = counter.point(stage.problem, lam, curvature=True)
    move = (hi - lo) / 8.0
    for _ in range(_NEWTON_STEPS):
        step = _newton_step(point, lo)
        if step is None or not np.any(step):
            break
        full = np.abs(np.clip(point.multipliers + step, lo, hi) - point.multipliers)
        for damping in range(4):
            trial = np.clip(point.multipliers + step, lo, hi)
            candidate = counter.point(stage.problem, trial, curvature=True, window=point.window)
            if candidate.value <= point.value + candidate.round_off + point.round_off:
                break
            step = step / 4.0
        else:  # no step along the Newton direction lowers phi: the point is near the minimum
            move = full / 4.0
            break
        move = np.abs(trial - point.multipliers)
        point = candidate
        if damping == 0 and np.all(_NEWTON_SHRINK * move <= hi - lo):
            break
    magnitude = np.abs(point.multipliers) + (hi - lo)
    return point.multipliers, np.maximum(4.0 * move, 1e-9 * magnitude)


def _newton_step(point: _DualPoint, lo: np.ndarray):
    """The Newton step of ``point`` for the multipliers that are free: not held at their
    lower end by a subgradient that pushes them below it. ``None`` without curvature."""
    if point.curvature is None:
        return None
    free = ~((point.multipliers <= lo) & (point.slope > 0))
    step = np.zeros_like(point.multipliers)
    if not free.any():
        return step
    hessian = point.curvature[np.ix_(free, free)]  # S^-1 H S^-1: H d = -g is (S^-1 H S^-1)(S d) = -S^-1 g
    scale = point.curvature_scale[free]
    ridge = 1e-12 * float(np.trace(hessian)) + 1e-300
    scaled_step = np.linalg.lstsq(hessian + ridge * np.eye(hessian.shape[0]), -point.slope[free] / scale, rcond=None)[0]
    step[free] = scaled_step / scale
    return step


def _ellipsoid_finish(stage: _Stage, box: Box, rtol: float, start: np.ndarray, counter: _Counter):
    r"""Localisation by the ellipsoid method (:class:`copslp._analytic.ellipsoid.Ellipsoid`) over the
    stage's box, first query at ``start``, then at the ellipsoid's centres.

    With U the least value of :math:`\phi` seen, every minimiser over the box satisfies
    :math:`\phi(\lambda_t) + \langle g_t, \lambda - \lambda_t\rangle \le \phi(\lambda) \le U`:
    the cut :math:`\langle g_t, \lambda\rangle \le \langle g_t, \lambda_t\rangle + U - \phi(\lambda_t)`
    (deep except at the best point). A centre outside the box is cut back by the face it
    crosses. Once the ellipsoid's bounding box is ``RESCREEN_SHRINK`` times narrower in every
    multiplier than the box the survivors were screened with, they are screened again on it:
    on the smaller box the dual of the smaller problem is :math:`\phi` plus a constant, so the
    cuts stay valid and the ellipsoid goes on. A localisation that has shrunk and still
    reaches a face of ``box`` (other than lambda_i = 0) raises :class:`MinimumOutsideBox`.
    The exact LP ends it once at most ``FINAL_LP_SIZE`` survivors remain (or a stage takes
    ``_CUTS_PER_STAGE`` cuts per bound without shrinking, or more than ``_SLOW_RESCREENS``
    re-screenings did not halve the survivors: elements tied at the level, which no box
    decides, are the simplex's to place).
    """
    r = box.lo.shape[0]
    ellipsoid = Ellipsoid(stage.lo, stage.hi)
    best = None
    stage_cuts = slow = 0
    query = np.clip(start, stage.lo, stage.hi)
    while not few_enough(stage.problem) and stage_cuts < _CUTS_PER_STAGE * r and not ellipsoid.empty:
        below, above = query < stage.lo, query > stage.hi
        if below.any() or above.any():  # a cut by the face of the box the centre crosses
            i = int(np.argmax(np.maximum(stage.lo - query, query - stage.hi)))
            normal = np.zeros(r)
            normal[i] = -1.0 if below[i] else 1.0
            ellipsoid.cut(normal, float(normal[i] * (stage.lo[i] if below[i] else stage.hi[i])))
        else:
            point = counter.point(stage.problem, query)
            if best is None or point.value < best.value:
                best = point
            if not np.any(point.slope):
                break  # a zero subgradient: query minimises phi
            ellipsoid.cut(point.slope, float(point.slope @ query) + best.value - point.value + point.round_off)
        stage_cuts += 1
        lo, hi = ellipsoid.bounding_box()
        lo, hi = np.maximum(lo, stage.lo), np.minimum(hi, stage.hi)
        if np.all(hi >= lo) and np.all((hi - lo) * RESCREEN_SHRINK <= stage.hi - stage.lo):
            if best is not None and np.any(((lo <= box.lo) & (box.lo > 0)) | (hi >= box.hi)):
                raise MinimumOutsideBox(best.multipliers)  # the minimum is on (or near) a face of the box
            narrow = _rescreen_stage(stage, lo, hi)
            slow += 2 * narrow.problem.size > stage.problem.size
            stage, best, stage_cuts = narrow, None, 0  # values of the smaller problem differ by a constant
            if slow > _SLOW_RESCREENS:  # ties at the level: narrower boxes decide no more of them
                break
        query = ellipsoid.centre
    x_stage, lam, details = solve_small_lp(stage.problem, query if best is None else best.multipliers)
    if not inside(lam, stage.lo, stage.hi):
        raise MinimumOutsideBox(lam)
    return x_stage, lam, details, stage


def _rescreen_stage(stage: _Stage, lo: np.ndarray, hi: np.ndarray) -> _Stage:
    """The stage screened again on the box [lo, hi] inside its own."""
    reduced, ones, survivors, *_ = screen_exact(stage.problem, lo, hi)
    return _Stage(reduced, stage.index[survivors], stage.ones + [stage.index[ones]], lo, hi)
