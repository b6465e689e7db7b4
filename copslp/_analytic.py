r"""The analytic method: the exact LP optimum from the dual characterisation (COPS.md §3-4).

The dual of the COPS LP is :math:`\min_{\lambda\ge 0}\phi(\lambda)` with
:math:`\phi(\lambda) = T_k(s_0 + \sum_i \lambda_i s_i) - \langle\lambda, b\rangle` (with floors,
:math:`T_k` becomes the value of the greedy of COPS.md §6). The method

1. estimates :math:`\lambda^*` on a random subsample (budget and bounds scaled to it),
2. puts a box around the estimate and screens safely: with :math:`m_j, M_j` the smallest and
   largest :math:`v_j(\lambda)` over the box, an element with :math:`m_j` above the k-th largest
   M is in every optimal set for every :math:`\lambda` in the box (fixed to 1), one with
   :math:`M_j` below the k-th largest m in none (fixed to 0),
3. solves the problem left on the survivors exactly, and accepts it when its
   :math:`\lambda` lies strictly inside the box (then :math:`\phi` of the full problem equals
   that of the reduced one plus a constant near :math:`\lambda`, so the local minimum is the
   global one); otherwise it re-centres the box there, widens it and repeats.

The exact finish on the survivors:

* one bound (r = 1): a Newton / cutting-plane walk over the linear pieces of :math:`\phi`.
  :math:`\phi` is the upper envelope of the lines
  :math:`L_X(\lambda) = \langle s_0, X\rangle + \lambda(\langle s_1, X\rangle - b)` of the
  k-sets X. Start from two best sets whose slopes :math:`\langle s_1, X\rangle - b` have
  opposite signs: after screening, at the estimate :math:`\pm` an eighth of the box (the
  box's ends on the side where that fails); otherwise the best set at :math:`\lambda = 0`
  (ties broken by s_1) and the best at :math:`\lambda = \infty` (top-k of s_1, ties broken by
  s_0). Evaluate :math:`\phi` where their lines cross; a set whose line lies higher there
  replaces the end whose slope has its sign. Only lines are ever compared, so a tie at an
  evaluation point cannot mislead: any best set there gives a valid supporting line. It stops
  when no line lies higher at the crossing: that crossing is :math:`\lambda^*` and both sets
  are optimal there. The ends' lambdas always bracket :math:`\lambda^*`, so once that bracket
  is four times narrower than the box the survivors were screened with, it is a box of its
  own: the walk screens again (exactly, by selection) and goes on among fewer elements.
  The bound is then made tight by swapping entering for leaving elements one at a time, the
  last one partially: at most two fractional entries.
* several bounds (r > 1): the dual is minimised over the box with an oracle that is one
  selection on the survivors (:math:`\phi(\lambda)` and its subgradient
  :math:`g_i = \langle s_i, x(\lambda)\rangle - b_i`): projected Newton steps with the
  curvature of the elements at the k-th level, the survivors screened again on a box a few
  steps wide around the point reached, until a few thousand remain; their LP is then solved
  by HiGHS (a vertex) and polished: the multipliers and the fractional entries are
  recomputed from the linear systems that define the vertex, to floating-point accuracy.
  Should the Newton phase stall, the ellipsoid method (a localisation that cannot fail)
  takes over. See :func:`_several_bounds_finish`.

Infeasibility: a bound that cannot be met alone is found by its :math:`T_k`; bounds that
conflict only together are proved so by a Farkas ray of the dual, found by the same method
with one bound fewer (:func:`_infeasibility_proof`): an infeasible problem costs about what
a feasible one does.

Costs: validation computes :math:`T_k(s_i)` (one selection per bound); screening is one
streamed pass (the box's corners, two counts, the survivors gathered block by block) and
selections on the subsample; everything else runs on the survivors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._errors import InfeasibleError, SolverError
from ._blocks import BLOCK, blocks
from ._ellipsoid import Ellipsoid
from ._infeasibility import conflict_error, single_bound_error
from ._inner import InnerProblem, mix_to_bound, reaches
from ._problem import Problem, make_problem
from ._registry import get_method
from ._result import LPSolution
from ._selection import kth_largest, take_columns, top_k_sum

__all__ = ["solve_analytic"]

_EPS = np.finfo(np.float64).eps
_NEWTON_LIMIT = 500
_RESCREEN_MIN_SIZE = 1 << 14
_RESCREEN_SHRINK = 4.0
_MIN_SAMPLE_BUDGET = 64
#: Several bounds: the survivors are handed to the exact LP once at most this many remain.
_FINAL_LP_SIZE = 2048
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
#: Several bounds: the subsample is this many times ``sample_size``, and the first box
#: ``lambda_est (1 +/- width / sqrt(k_sample))`` (one bound: 3).
_SEVERAL_BOUNDS_SAMPLE_FACTOR = 4
_SEVERAL_BOUNDS_WIDTH = 6.0


class _ReducedProblemInfeasible(Exception):
    """The problem on the survivors is infeasible: the box was wrong, or the bounds are."""


class _MinimumOutsideBox(Exception):
    """The minimiser of the reduced dual lies outside the box it was screened with; it is
    carried in ``multipliers`` (a better centre for the next box)."""

    def __init__(self, multipliers: np.ndarray):
        super().__init__()
        self.multipliers = multipliers


class _Settings(NamedTuple):
    """The options of :func:`solve_analytic`, passed on to the solves it starts itself."""

    rtol: float
    sample_size: int
    seed: int
    max_rounds: int


class _SampleEstimate(NamedTuple):
    """What the subsample says about lambda*."""

    multipliers: np.ndarray  # lambda* of the subsample's problem (zeros if it had none)
    reference: np.ndarray  # a natural scale per multiplier: mean |s_0| / mean |s_i|
    infeasible: bool  # the subsample's problem (bounds scaled to it) was infeasible


def solve_analytic(problem: Problem, *, rtol: float, sample_size: int, seed: int, max_rounds: int) -> LPSolution:
    """Exact LP optimum of COPS by the dual characterisation; see the module docstring.

    Options
    -------
    rtol : float
        Relative accuracy at which the certificate is checked (float64 round-off is ~1e-15).
    sample_size : int
        Size of the subsample that estimates lambda*; problems with D <= 4 * sample_size,
        or whose budget scaled to the sample is below 64, are solved without screening.
        With several bounds the subsample has ``min(4 * sample_size, D // 4)`` elements:
        their multipliers are harder to estimate, and problems of a few ten thousand elements
        are screened too.
    seed : int
        Seed of the subsample (the answer does not depend on it, only the time does).
    max_rounds : int
        Box re-centrings before giving up with a SolverError.

    Raises
    ------
    InfeasibleError
        No point meets the bounds: a bound that cannot be met alone, else the bounds that
        conflict with the Farkas ray that proves it (see :func:`_infeasibility_proof`).
    """
    settings = _Settings(rtol, sample_size, seed, max_rounds)
    inner = _full_inner(problem)
    r = inner.thresholds.shape[0]
    info = {"rounds": 0, "survivors": problem.size}
    if r == 0:  # the top-k of s_0 (with floors, the greedy): an integral point, given as a mask
        mask = inner.mask_of(inner.select(inner.scores[0]))
        return LPSolution(mask, np.zeros(problem.n_scores - 1), rtol, info)
    if r > 1 and not problem.has_floors:
        _raise_if_a_bound_alone_fails(problem)  # T_k(s_i) >= b_i: known from validation, free
        at_best = [row for row, i in enumerate(problem.active)
                   if problem.thresholds[i] >= problem.best_reachable[i] - 1e-12 * abs(problem.best_reachable[i])]
        if at_best:
            x, lam, details = _solve_on_best_face(problem, inner, at_best[0], settings)
            info.update(details)
            multipliers = np.zeros(problem.n_scores - 1)
            multipliers[problem.active] = lam
            return LPSolution(x, multipliers, details.pop("tolerance", rtol), info)

    d = problem.size
    if r > 1:
        sample_size = min(_SEVERAL_BOUNDS_SAMPLE_FACTOR * sample_size, d // 4)
    k_sample = int(round(problem.budget * sample_size / d))
    screen = d > 4 * sample_size or (r > 1 and sample_size > _FINAL_LP_SIZE)
    screen = screen and _MIN_SAMPLE_BUDGET <= k_sample <= sample_size - _MIN_SAMPLE_BUDGET
    if screen:
        x, lam, details = _solve_screened(problem, inner, settings, sample_size)
    else:
        try:
            x, lam, details = _solve_exact(inner, rtol)
        except _ReducedProblemInfeasible:
            raise _infeasibility_or_failure(problem, inner, settings) from None
    info.update(details)
    multipliers = np.zeros(problem.n_scores - 1)
    multipliers[problem.active] = lam
    return LPSolution(x, multipliers, details.pop("tolerance", rtol), info)


def _solve_on_best_face(problem: Problem, inner: InnerProblem, row: int, settings: _Settings):
    r"""Several bounds, one of which (active ``row``, score i) asks for the best value its
    score reaches (gamma_i = 1, no floors): every feasible x lies on the face
    :math:`\langle s_i, x\rangle = T_k(s_i)`, which keeps every element with :math:`s_{ij}`
    above the k-th largest value L of s_i, drops every one below it, and leaves the c
    missing slots to the elements tied at L (often one). The problem left on the tied
    elements, without bound i (their s_i are all L), is solved by :func:`solve_analytic`;
    its multipliers hold for the other bounds. :math:`\lambda_i`, which may have to be large
    (it is unbounded when the face is a single point), is the least that keeps every kept
    element at or above the level and every dropped one at or below it: with
    :math:`w = s_0 + \sum_{l \ne i}\lambda_l s_l` and :math:`\mu_T` the level of the tied
    elements, :math:`\lambda_i = \max(0, \max_{s_{ij} > L} (\mu_T - w_j)/(s_{ij} - L),
    \max_{s_{ij} < L} (w_j - \mu_T)/(L - s_{ij}))`; then v = w + lambda_i s_i has the level
    :math:`\mu_T + \lambda_i L` and the certificate holds."""
    s_i = inner.scores[row + 1]
    k = problem.budget
    level = kth_largest(s_i, k)
    above, tied = np.flatnonzero(s_i > level), np.flatnonzero(s_i == level)
    others = [other for other in range(inner.thresholds.shape[0]) if other != row]
    rows = np.array([0] + [other + 1 for other in others])
    taken = take_columns(inner.scores[rows], above).sum(axis=1)
    face = Problem(take_columns(inner.scores[rows], tied), k - above.shape[0], inner.thresholds[others] - taken[1:],
                   None, np.array([top_k_sum(row_scores, k - above.shape[0])
                                   for row_scores in take_columns(inner.scores[rows[1:]], tied)]))
    try:
        solution = solve_analytic(face, **settings._asdict())
    except InfeasibleError:
        raise _infeasibility_or_failure(problem, inner, settings) from None
    x = np.zeros(problem.size)
    x[above] = 1.0
    x[tied] = solution.x
    lam_others = np.asarray(solution.multipliers)
    w = inner.combine(np.insert(lam_others, row, 0.0))
    w_tied = w[tied]
    kept = solution.x > 0
    tied_level = float(w_tied[kept].min()) if kept.any() else float(w_tied.max())
    below = np.flatnonzero(s_i < level)
    need = [0.0]
    if above.shape[0]:
        need.append(float(np.max((tied_level - w[above]) / (s_i[above] - level))))
    if below.shape[0]:
        need.append(float(np.max((w[below] - tied_level) / (level - s_i[below]))))
    lam = np.insert(lam_others, row, max(need))
    return x, lam, {"best_face_of": int(problem.active[row]) + 1, "face_size": int(tied.shape[0]),
                    **{key: value for key, value in solution.info.items() if key in ("oracle_calls", "final_lp_size")}}


def _full_inner(problem: Problem) -> InnerProblem:
    rows = problem.active + 1
    if rows.shape[0] == problem.n_scores - 1:
        scores = problem.scores  # every bound is on: no copy
    else:
        scores = problem.scores[np.concatenate([[0], rows])]
    layout = (lambda: (problem.group_order, problem.group_starts)) if problem.has_floors else None
    return InnerProblem(scores, problem.budget, problem.thresholds[problem.active], problem.groups,
                        problem.floors, layout)


# --------------------------------------------------------------------------------------------
# infeasibility: the Farkas ray of the dual


def _infeasibility_proof(problem: Problem, inner: InnerProblem, settings: _Settings) -> InfeasibleError | None:
    r"""The :class:`InfeasibleError` of an infeasible problem, or ``None`` when a point meets
    every bound (then a reduced problem found infeasible only had a wrong box).

    A bound that cannot be met alone raises at once (:func:`copslp._infeasibility.single_bound_error`). For the
    bounds together, COPS.md section 3: they cannot all hold on the polytope P (budget and
    floors) iff a ray :math:`\lambda \ge 0` has :math:`T^P_k(\sum_i \lambda_i s_i) <
    \langle\lambda, b\rangle`. The ray is found by the same machinery, one bound fewer: with
    the first active bound h as the objective,

    .. math::

        M_h = \max_{x \in P} \langle s_h, x\rangle \ \text{s.t.}\
        \langle s_i, x\rangle \ge b_i \ (i \ne h)
            = \min_{\lambda' \ge 0} T^P_k(s_h + \textstyle\sum_{i \ne h} \lambda'_i s_i)
              - \langle\lambda', b'\rangle

    (strong duality). If :math:`M_h \ge b_h` its optimal point meets every bound. Otherwise
    :math:`\lambda = (1, \lambda'^*)` is the ray: :math:`T^P_k(\sum_i \lambda_i s_i) -
    \langle\lambda, b\rangle = M_h - b_h < 0`, checked here by one more selection on the full
    problem. If the bounds other than h already conflict, the ray of that smaller problem
    (recursively) is the answer, with :math:`\lambda_h = 0`. The bounds that conflict are
    those with :math:`\lambda_i > 0`; the message gives how far :math:`M_h` falls short of b_h.
    """
    _raise_if_a_bound_alone_fails(problem)
    active = problem.active
    if active.shape[0] < 2:
        return None
    head, rest = int(active[0]), active[1:]
    rows = np.concatenate([[head + 1], rest + 1])
    contiguous = np.array_equal(rows, np.arange(head + 1, head + 1 + rows.shape[0]))
    scores = problem.scores[head + 1:head + 1 + rows.shape[0]] if contiguous else problem.scores[rows]
    thresholds = problem.thresholds[rest]
    sub = Problem(scores, problem.budget, thresholds, None, problem.best_reachable[rest],
                  problem.groups, problem.floors, problem.group_sizes)
    try:
        solution = solve_analytic(sub, **settings._asdict())
    except InfeasibleError as error:  # the other bounds conflict already: sub row j is rows[j]
        conflict = tuple(int(rows[i]) for i in error.conflicting_scores)
        return conflict_error(problem, conflict, error.farkas_multipliers, error.best_reachable)
    best = float(scores[0] @ solution.x)
    b = float(problem.thresholds[head])
    if reaches(best, b):
        return None
    ray = np.concatenate([[1.0], solution.multipliers])
    combined = InnerProblem(scores, problem.budget, thresholds, problem.groups, problem.floors,
                            (lambda: (problem.group_order, problem.group_starts)) if problem.has_floors else None)
    v = combined.combine(ray[1:])
    reach = float(v.take(combined.select(v)).sum()) - float(ray[1:] @ thresholds)  # T^P_k(...) - <lambda', b'>
    if reaches(reach, b):
        return None  # the shortfall is within round-off: not a proof
    keep = np.flatnonzero(ray > 0)
    return conflict_error(problem, tuple(int(rows[i]) for i in keep), ray[keep], best)


def _raise_if_a_bound_alone_fails(problem: Problem) -> None:
    error = single_bound_error(problem)
    if error is not None:
        raise error


def _infeasibility_or_failure(problem, inner, settings):
    """The error for a problem whose every element was kept and still found infeasible."""
    error = _infeasibility_proof(problem, inner, settings)
    if error is not None:
        return error
    return SolverError("analytic: the LP on the survivors was found infeasible although a point meeting "
                       "every bound exists (a numerical failure)")


# --------------------------------------------------------------------------------------------
# screening


def _solve_screened(problem, inner, settings: _Settings, sample_size: int):
    """Screen around the subsample's estimate, solve the survivors exactly, and accept the
    answer when its multipliers lie inside the box (else re-centre, widen and repeat; with
    several bounds, boxes that keep missing end in the exact LP on every element)."""
    rng = np.random.default_rng(settings.seed)
    d = problem.size
    sample = rng.integers(0, d, sample_size)
    sample_scores = take_columns(inner.scores, sample)
    estimate = _sample_estimate(problem, inner, sample, sample_scores, settings.rtol)
    feasible = False  # proven so
    if estimate.infeasible and inner.thresholds.shape[0] > 1:
        error = _infeasibility_proof(problem, inner, settings)
        if error is not None:
            raise error
        feasible = True
    k_sample = max(1, int(round(problem.budget * sample_size / d)))
    r = inner.thresholds.shape[0]
    width = (3.0 if r == 1 else _SEVERAL_BOUNDS_WIDTH) / np.sqrt(k_sample)
    widen = 4.0 if r == 1 else 2.0
    centre = estimate.multipliers
    outside_rounds = 0
    for rounds in range(1, settings.max_rounds + 1):
        scale = np.where(centre > 0, centre, estimate.reference)
        lo = np.maximum(centre - width * scale, 0.0)
        hi = centre + width * scale
        reduced, ones, survivors = _screen(inner, lo, hi, sample_scores)
        try:
            x_red, lam, details = _solve_exact(reduced, settings.rtol, (lo, hi, centre))
        except _ReducedProblemInfeasible:
            if not feasible:
                error = _infeasibility_proof(problem, inner, settings)  # raises at once if one bound alone fails
                if error is not None:
                    raise error from None
                feasible = True
            if survivors.shape[0] == d:
                if r == 1:
                    raise _infeasibility_or_failure(problem, inner, settings) from None
                return _whole_problem_lp(problem, inner, settings, rounds)
            width *= 4.0
            continue
        except _MinimumOutsideBox as outside:
            if survivors.shape[0] == d:
                return _whole_problem_lp(problem, inner, settings, rounds)
            centre = outside.multipliers
            outside_rounds += 1
            width *= widen ** outside_rounds  # lambda* far out (a bound at gamma = 1): reach it fast
            if outside_rounds >= 2 and not feasible:  # lambda keeps growing: are the bounds infeasible?
                error = _infeasibility_proof(problem, inner, settings)
                if error is not None:
                    raise error from None
                feasible = True
            continue
        inside = np.all(((lam > lo) | (lo == 0)) & (lam < hi))
        if inside or survivors.shape[0] == d:
            x = np.zeros(d)
            x[ones] = 1.0
            x[survivors] = x_red
            details.update(rounds=rounds, survivors=int(survivors.shape[0]), fixed_ones=int(ones.shape[0]),
                           box=[lo.tolist(), hi.tolist()], sample_estimate=estimate.multipliers.tolist())
            return x, lam, details
        centre = lam
        width *= 4.0
    if not feasible:
        error = _infeasibility_proof(problem, inner, settings)
        if error is not None:
            raise error
    if r > 1:
        return _whole_problem_lp(problem, inner, settings, settings.max_rounds)
    raise SolverError(f"analytic: lambda* not bracketed after {settings.max_rounds} rounds of screening")


def _whole_problem_lp(problem, inner, settings: _Settings, rounds: int):
    """Several bounds whose boxes kept missing lambda* (it can be very large when a bound
    asks for the best value its score reaches, gamma = 1): the exact LP on every element."""
    try:
        x, lam, details = _final_lp(inner, settings.rtol)
    except _ReducedProblemInfeasible:
        raise _infeasibility_or_failure(problem, inner, settings) from None
    details.update(rounds=rounds, survivors=problem.size, oracle_calls=0, final_lp_size=problem.size)
    return x, lam, details


def _sample_estimate(problem, inner, sample, scores, rtol) -> _SampleEstimate:
    """lambda* of the problem on a subsample (indices ``sample``, their ``scores``) with
    budget and bounds scaled to it.

    One bound: the walk on the subsample starts from a bracket around the estimate of a
    sixteenth of it (recursively), so that it need not start from lambda = 0 and infinity.
    Several bounds: the localisation of :func:`_several_bounds_finish` on the subsample,
    from the box [0, 4 lambda_ref] (lambda_ref = mean |s_0| / mean |s_i|, the scale at which
    s_i weighs as much as s_0), widened fourfold while the minimum lies outside it; its
    Newton steps start from the estimate of a sixteenth of the subsample (recursively), but
    the box stays wide: smaller subsamples of heavy-tailed scores misplace lambda* by
    factors, not percents."""
    d = problem.size
    r = inner.thresholds.shape[0]
    k = max(1, int(round(problem.budget * sample.shape[0] / d)))
    magnitude = np.abs(scores).mean(axis=1)
    reference = np.where(magnitude[1:] > 0, magnitude[0] / np.maximum(magnitude[1:], 1e-300), 1.0)
    reference = np.where(reference > 0, reference, 1.0)
    bracket = guess = None
    part = sample.shape[0] // 16
    if round(problem.budget * part / d) >= _MIN_SAMPLE_BUDGET and (r == 1 or part >= _FINAL_LP_SIZE):
        estimate = _sample_estimate(problem, inner, sample[:part], scores[:, :part], rtol)
        guess = None if estimate.infeasible else estimate.multipliers
    if r == 1 and guess is not None:
        width = 3.0 / np.sqrt(problem.budget * part / d)
        bracket = (guess * (1 - width), guess * (1 + width), guess)
    thresholds = []
    for row, b in enumerate(inner.thresholds):
        s = scores[row + 1]
        best_sample = float(np.partition(s, s.shape[0] - k)[s.shape[0] - k:].sum())
        best_full = problem.best_reachable[problem.active[row]]
        scaled = b / best_full * best_sample if best_full > 0 else b * sample.shape[0] / d
        thresholds.append(min(scaled, best_sample))
    groups = floors = None
    if inner.floors is not None:  # floors scaled to each group's share of the sample
        groups = inner.groups[sample]
        in_sample = np.bincount(groups, minlength=inner.floors.shape[0])
        floors = inner.floors * in_sample // np.maximum(problem.group_sizes, 1)
        while floors.sum() > k:
            floors[np.argmax(floors)] -= 1
    sampled = InnerProblem(scores, k, np.array(thresholds), groups, floors)
    try:
        if r == 1:
            _, lam, _ = _solve_exact(sampled, rtol, bracket)
        else:
            lam = _localised_sample_minimum(sampled, reference, rtol, guess)
    except _ReducedProblemInfeasible:
        return _SampleEstimate(np.zeros(r), reference, True)
    except SolverError:
        lam = np.zeros(r)
    return _SampleEstimate(np.asarray(lam, dtype=np.float64), reference, False)


def _localised_sample_minimum(sampled: InnerProblem, reference: np.ndarray, rtol: float, guess=None,
                              tries: int = 3):
    """lambda* of the subsample's problem with several bounds, from boxes [0, 4^t 4 lambda_ref]
    (at least twice the ``guess`` of a smaller subsample, where the Newton steps start).

    A minimum beyond every box means that phi keeps decreasing as lambda grows: the bounds
    are (nearly) infeasible together, reported as such (:class:`_ReducedProblemInfeasible`)."""
    start = reference if guess is None else guess
    hi = np.maximum(4.0 * reference, 2.0 * start)
    for _ in range(tries):
        try:
            return _solve_exact(sampled, rtol, (np.zeros_like(hi), hi, np.minimum(start, hi)))[1]
        except _MinimumOutsideBox as outside:
            hi = np.maximum(4.0 * hi, 2.0 * outside.multipliers)
            start = outside.multipliers
    raise _ReducedProblemInfeasible()


def _box_extremes(scores: np.ndarray, lo: np.ndarray, hi: np.ndarray, out=None):
    """``(low, high)``: the smallest and largest ``v_j(lambda)`` over the box [lo, hi] for the
    columns of ``scores`` (row 0 = s_0, then one row per multiplier).

    With one multiplier they are v at the two corners (``s_0 + min(a, b) = min(s_0 + a, s_0 + b)``
    in floats too). With several: v at the corners lo and hi when every s_i >= 0 (lo >= 0
    always), else v at the centre -/+ ``sum_i (hi_i - lo_i) / 2 |s_i|``; one matrix-vector
    product each. Written into ``out`` (two buffers of the right length) when given.
    """
    if lo.shape[0] == 1:
        at_lo, at_hi = (np.empty(scores.shape[1]), np.empty(scores.shape[1])) if out is None else out
        np.multiply(scores[1], lo[0], out=at_lo)
        at_lo += scores[0]
        np.multiply(scores[1], hi[0], out=at_hi)
        at_hi += scores[0]
        if lo[0] >= 0 and scores.shape[1] and scores[1].min() >= 0:
            return at_lo, at_hi  # rounding is monotone: lo s_1 <= hi s_1 stays so
        low = np.minimum(at_lo, at_hi)
        return low, np.maximum(at_lo, at_hi, out=at_hi)
    low, high = (np.empty(scores.shape[1]), np.empty(scores.shape[1])) if out is None else out
    secondary = scores[1:]
    if scores.shape[1] and secondary.min() >= 0:  # lo >= 0: v is least at lo, largest at hi
        np.dot(lo, secondary, out=low)
        low += scores[0]
        np.dot(hi, secondary, out=high)
        high += scores[0]
        return low, high
    np.dot((lo + hi) / 2.0, secondary, out=low)  # v at the centre, -/+ the half-widths times |s_i|
    low += scores[0]
    spread = ((hi - lo) / 2.0) @ np.abs(secondary)
    np.add(low, spread, out=high)
    low -= spread
    return low, high


def _screen(inner: InnerProblem, lo: np.ndarray, hi: np.ndarray, sample_scores: np.ndarray):
    """Fix what is decided for every lambda in the box [lo, hi]; return the reduced problem.

    An element is fixed to 1 when its smallest value over the box exceeds ``one_level``, to 0
    when its largest value is below ``zero_level``. Safe levels: ``one_level`` at least the
    (k - F)-th largest of ``high`` (F = sum of floors) and ``zero_level`` at most the k-th
    largest of ``low`` (with floors the (k+1)-th); with floors, an element among the
    floors[g] best of its group g for some lambda in the box is never dropped. The levels are
    estimated on the subsample and verified by counting in the same streamed pass
    (``#{high > one_level} < k - F``, ``#{low >= zero_level} >= k (+1)``); when a count
    fails, the exact levels are computed by selection over full-length arrays.
    """
    streamed = _screen_streamed(inner, lo, hi, *_sample_levels(inner, lo, hi, sample_scores))
    if streamed is not None:
        return streamed
    return _screen_exact(inner, lo, hi)


def _screen_exact(inner: InnerProblem, lo: np.ndarray, hi: np.ndarray):
    """:func:`_screen` with the exact levels, by selection over the whole of ``inner``."""
    k = inner.budget
    low, high = _box_extremes(inner.scores, lo, hi)
    if inner.floors is None:
        ones = low > kth_largest(high, k)
        zeros = high < kth_largest(low, k)
    else:
        total_floor = int(inner.floors.sum())
        ones = low > kth_largest(high, k - total_floor) if k > total_floor else np.zeros(inner.size, bool)
        ones |= low > _group_floor_levels(inner, high)  # among its group's forced best throughout
        zeros = high < (kth_largest(low, k + 1) if k < inner.size else -np.inf)
        zeros &= high < _group_floor_levels(inner, low)
    survivors = np.flatnonzero(~(ones | zeros))
    return _reduce(inner, np.flatnonzero(ones), survivors)


def _level_ranks(inner: InnerProblem):
    """Ranks of the safe one- and zero-levels (see :func:`_screen`); 0 means none."""
    k = inner.budget
    if inner.floors is None:
        return k, k
    return k - int(inner.floors.sum()), (k + 1 if k < inner.size else 0)


def _sample_levels(inner, lo, hi, sample_scores):
    """Conservative estimates of the one- and zero-levels from the subsample's scores."""
    low, high = _box_extremes(sample_scores, lo, hi)
    m = sample_scores.shape[1]
    one_rank, zero_rank = _level_ranks(inner)

    def scaled(rank, direction):
        r = int(round(rank * m / inner.size))
        margin = int(np.ceil(4.0 * np.sqrt(max(r, 1)))) + 8
        return min(max(1, r + direction * margin), m)

    one_level = kth_largest(high, scaled(one_rank, -1)) if one_rank > 0 else np.inf
    zero_level = kth_largest(low, scaled(zero_rank, +1)) if zero_rank > 0 else -np.inf
    return one_level, zero_level


def _screen_streamed(inner, lo, hi, one_level, zero_level):
    """One streamed pass with given levels; ``None`` if a count shows a level is unsafe.

    With floors, a group with at least floors[g] elements whose ``low`` reaches the zero
    level has its floors[g]-th best above every element below that level, so the group rule
    holds without a per-group selection; the elements of the other groups all survive.
    """
    one_rank, zero_rank = _level_ranks(inner)
    floors = inner.floors
    above_one = at_or_above_zero = 0
    support = None if floors is None else np.zeros(floors.shape[0], dtype=np.int64)
    taken = np.zeros(inner.scores.shape[0])
    ones, survivors, survivor_scores = [], [], []
    buffers = (np.empty(BLOCK), np.empty(BLOCK))
    for block in blocks(inner.size):
        scores = inner.scores[:, block]
        width = scores.shape[1]
        low, high = _box_extremes(scores, lo, hi, (buffers[0][:width], buffers[1][:width]))
        above_one += int(np.count_nonzero(high > one_level))
        reaching = low >= zero_level
        at_or_above_zero += int(np.count_nonzero(reaching))
        if support is not None:
            support += np.bincount(inner.groups[block][reaching], minlength=floors.shape[0])
        fixed_one = np.flatnonzero(low > one_level)
        survivor = np.flatnonzero((high >= zero_level) & (low <= one_level))
        taken += take_columns(scores, fixed_one).sum(axis=1)
        ones.append(fixed_one + block.start)
        survivors.append(survivor + block.start)
        survivor_scores.append(take_columns(scores, survivor))  # gathered while the block is in cache
    if (one_rank > 0 and above_one >= one_rank) or at_or_above_zero < zero_rank:
        return None
    ones, survivors = np.concatenate(ones), np.concatenate(survivors)
    survivor_scores = np.concatenate(survivor_scores, axis=1)
    if support is not None and np.any(support < floors):
        forced = _forced_candidates(inner, lo, hi, support < floors, zero_level)
        survivors = np.concatenate([survivors, forced])
        survivor_scores = np.concatenate([survivor_scores, take_columns(inner.scores, forced)], axis=1)
    return _reduce(inner, ones, survivors, taken, survivor_scores)


def _forced_candidates(inner, lo, hi, short, zero_level):
    """Members of the ``short`` groups below the zero level that may still be among the
    floors[g] best of their group g for some lambda in the box: ``high_j`` at least the
    floors[g]-th largest ``low`` of the group (a selection within each short group). They
    are disjoint from the survivors of the streamed pass, which reach the zero level."""
    order, starts = inner._group_layout
    found = []
    for g in np.flatnonzero(short):
        if order is None:
            members = slice(starts[g], starts[g + 1])
            low, high = _box_extremes(inner.scores[:, members], lo, hi)
        else:
            members = order[starts[g]:starts[g + 1]]
            low, high = _box_extremes(take_columns(inner.scores, members), lo, hi)
        level = kth_largest(low, int(inner.floors[g]))
        keep = np.flatnonzero((high < zero_level) & (high >= level))
        found.append(keep + starts[g] if order is None else members[keep])
    return np.concatenate(found)


def _reduce(inner: InnerProblem, ones: np.ndarray, survivors: np.ndarray, taken=None, survivor_scores=None):
    """The problem left on ``survivors`` once ``ones`` are kept; returns (reduced, ones, survivors).

    ``taken`` (the scores summed over ``ones``) and ``survivor_scores`` are gathered here
    unless given."""
    s = inner.scores
    if taken is None:
        taken = take_columns(s, ones).sum(axis=1)
    if survivor_scores is None:
        survivor_scores = take_columns(s, survivors)
    groups = floors = None
    if inner.floors is not None:
        groups = inner.groups[survivors]
        kept = np.bincount(inner.groups[ones], minlength=inner.floors.shape[0])
        floors = np.maximum(inner.floors - kept, 0)
    reduced = InnerProblem(survivor_scores, inner.budget - ones.shape[0], inner.thresholds - taken[1:], groups, floors)
    return reduced, ones, survivors


def _group_floor_levels(inner: InnerProblem, values: np.ndarray) -> np.ndarray:
    """Per element: the floors[g]-th largest of ``values`` in its group g (+inf where
    floors[g] = 0).

    An element whose largest value over the box is below that level of ``low`` is never
    among the forced best of its group; one whose smallest value is above that level of
    ``high`` always is (at most floors[g] - 1 members can reach above it), so it is in
    every best set.
    """
    levels = np.full(inner.floors.shape[0], np.inf)
    order, starts = inner._group_layout
    ordered = values if order is None else values[order]
    for g in np.flatnonzero(inner.floors > 0):
        levels[g] = kth_largest(ordered[starts[g]:starts[g + 1]], int(inner.floors[g]))
    return levels[inner.groups]


# --------------------------------------------------------------------------------------------
# exact finish on a (small) problem


def _solve_exact(inner: InnerProblem, rtol: float, bracket=None):
    """x, lambda (active bounds only) and details of the LP on ``inner``, exactly.

    ``bracket`` = (lo, hi, centre), arrays of one value per bound: where lambda* is expected,
    and the best guess of it. One bound: the walk; several: the localisation of
    :func:`_several_bounds_finish` when a bracket is known and more than ``_FINAL_LP_SIZE``
    elements are left, else the exact LP at once (:func:`_final_lp`)."""
    if inner.budget == 0:
        taken = np.zeros(inner.thresholds.shape[0])
        if np.any(taken < inner.thresholds):
            raise _ReducedProblemInfeasible()
        return np.zeros(inner.size), np.zeros(inner.thresholds.shape[0]), {}
    if inner.thresholds.shape[0] == 1:
        return _newton_one_bound(inner, None if bracket is None else tuple(float(end[0]) for end in bracket))
    if bracket is None or inner.size <= _FINAL_LP_SIZE:
        x, lam, details = _final_lp(inner, rtol)
        details.update(oracle_calls=0, final_lp_size=inner.size)
        return x, lam, details
    return _several_bounds_finish(inner, _Box(*bracket), rtol)


def _newton_one_bound(inner: InnerProblem, bracket=None):
    """The walk of the module docstring. ``bracket`` = (lo, hi, guess) is an interval that
    probably holds lambda* and a guess inside it; the walk starts from best sets there when
    they do bracket lambda*."""
    s0, s1 = inner.scores[0], inner.scores[1]
    b = float(inner.thresholds[0])
    if bracket is not None and bracket[0] > 0:
        ends = _bracketing_sets(inner, b, *bracket)
        if ends is not None:
            return _walk(inner, *ends, screened_width=bracket[1] - bracket[0])
    chosen = inner.select_lexicographic(s0, s1)
    low = (0.0, inner.mask_of(chosen), float(s1.take(chosen).sum()))
    if reaches(low[2], b):
        return low[1].astype(np.float64), np.zeros(1), {"newton_iterations": 0}
    chosen = inner.select_lexicographic(s1, s0)
    high = (np.inf, inner.mask_of(chosen), float(s1.take(chosen).sum()))
    if not reaches(high[2], b):
        raise _ReducedProblemInfeasible()
    return _walk(inner, low, high)


def _bracketing_sets(inner: InnerProblem, b: float, lo: float, hi: float, guess: float):
    """``(low, high)``, each ``(lambda, best set there as a mask, its s_1 value)``, at two
    lambdas in [lo, hi], the first below the bound b, the second meeting it; ``None`` if
    even lo and hi do not bracket.

    The two lambdas are tried first at ``guess`` -/+ an eighth of the interval (the guess is
    usually that close), and the ends of the interval only on the side that needs them.
    """
    s0, s1 = inner.scores[0], inner.scores[1]

    def best(lam):
        chosen = inner.select(s0 + lam * s1)
        return lam, inner.mask_of(chosen), float(s1.take(chosen).sum())

    step = (hi - lo) / 8
    if lo < guess - step and guess + step < hi:
        left = best(guess - step)
        if left[2] >= b:
            low, high = best(lo), left
        else:
            right = best(guess + step)
            low, high = left, (right if right[2] >= b else None)
            if high is None:
                low, high = right, best(hi)
    else:
        low, high = best(lo), best(hi)
    if not low[2] < b <= high[2]:
        return None
    return low, high


def _walk(inner: InnerProblem, low_end, high_end, screened_width=None):
    """The walk from two ends ``(lambda, best set there as a boolean mask, its s_1 value)``:
    ``low_end``, whose s_1 value is below the bound, and ``high_end``, which meets it.

    Once the bracket [lam_low, lam_high] is ``_RESCREEN_SHRINK`` times narrower than when
    the problem was last screened (``screened_width``), the elements it decides are fixed
    (:func:`_screen_exact` on the bracket) and the walk goes on among the others: the later
    selections cost a fraction of the first ones.
    """
    s0, s1 = inner.scores[0], inner.scores[1]
    (lam_low, low, g_low), (lam_high, high, g_high) = low_end, high_end
    b = min(float(inner.thresholds[0]), g_high)
    for iteration in range(1, _NEWTON_LIMIT + 1):
        width = lam_high - lam_low
        if screened_width is None:
            screened_width = width if np.isfinite(width) else None
        elif inner.size >= _RESCREEN_MIN_SIZE and width * _RESCREEN_SHRINK <= screened_width:
            return _rescreened_walk(inner, (lam_low, low, g_low), (lam_high, high, g_high), iteration - 1)
        # The two lines cross where sum_{high \ low} v = sum_{low \ high} v: differences are
        # taken element by element over the few elements that differ, never of large sums.
        entering, leaving = high & ~low, low & ~high
        lam = (s0[leaving].sum() - s0[entering].sum()) / (s1[entering].sum() - s1[leaving].sum())
        v = s0 + lam * s1
        chosen = inner.mask_of(inner.select(v))
        up, down = chosen & ~low, low & ~chosen
        rise = v[up].sum() - v[down].sum()  # how far chosen's line lies above low's at lam
        magnitude = np.abs(s0[up]).sum() + np.abs(s0[down]).sum() + lam * (np.abs(s1[up]).sum() + np.abs(s1[down]).sum())
        if rise <= 64 * _EPS * magnitude:
            break
        g = g_low + (s1[up].sum() - s1[down].sum())
        if g >= b:
            high, g_high, lam_high = chosen, g, lam
        else:
            low, g_low, lam_low = chosen, g, lam
    else:
        raise SolverError(f"analytic: the walk over the pieces of phi did not settle in {_NEWTON_LIMIT} steps")
    x = _tight_mix(inner, low, high, g_low, b)
    return x, np.array([lam]), {"newton_iterations": iteration}


def _rescreened_walk(inner, low_end, high_end, iterations):
    """Fix what the bracket decides and walk on among the rest (see :func:`_walk`).

    An element fixed by the screening is in every best set (or in none) for every lambda in
    the bracket, so the ends' sets restricted to the survivors are best sets of the reduced
    problem at the same lambdas, and the walk stays inside the bracket.
    """
    lam_low, lam_high = low_end[0], high_end[0]
    reduced, ones, survivors = _screen_exact(inner, np.array([lam_low]), np.array([lam_high]))
    s1 = reduced.scores[1]

    def restricted(end):
        chosen = end[1][survivors]
        return end[0], chosen, float(s1 @ chosen)  # a dot product: a dense mask gathers slowly

    x_red, lam, details = _walk(reduced, restricted(low_end), restricted(high_end), lam_high - lam_low)
    x = np.zeros(inner.size)
    x[ones] = 1.0
    x[survivors] = x_red
    details["newton_iterations"] += iterations
    details["rescreens"] = details.get("rescreens", 0) + 1
    return x, lam, details


def _tight_mix(inner: InnerProblem, low, high, g_low, b) -> np.ndarray:
    """Move from set ``low`` towards set ``high`` (boolean masks) until <s_1, x> = b.

    Without floors: swap the entering element with the largest s_1 for the leaving one with
    the smallest, one pair at a time, the last pair partially (at most two fractional
    entries). With floors a swap could break a floor midway, so x is the convex combination
    of the two sets (fractional on their symmetric difference, usually one pair as well).
    """
    s1 = inner.scores[1]
    if inner.floors is not None:
        return mix_to_bound(s1, low, high, b)
    entering = np.flatnonzero(high & ~low)
    leaving = np.flatnonzero(low & ~high)
    x = low.astype(np.float64)
    entering = entering[np.argsort(-s1[entering], kind="stable")]
    leaving = leaving[np.argsort(s1[leaving], kind="stable")]
    gains = s1[entering] - s1[leaving]
    reached = np.cumsum(gains)
    p = min(int(np.searchsorted(reached, b - g_low)), gains.shape[0] - 1)
    e, l = entering[p], leaving[p]
    x[entering[:p]] = 1.0
    x[leaving[:p]] = 0.0
    x[e] = x[l] = 0.0
    # s1_e t + s1_l (1 - t) = b - (the rest): each weight from its own difference, so that
    # neither is 1 minus a number close to 1 (no cancellation against a large g_low)
    rest = b - float(s1 @ x)
    gain = s1[e] - s1[l]
    if gain > 0:
        x[e] = min(max((rest - s1[l]) / gain, 0.0), 1.0)
        x[l] = min(max((s1[e] - rest) / gain, 0.0), 1.0)
    else:
        x[e] = 1.0
    return x


# --------------------------------------------------------------------------------------------
# several bounds: localisation by cutting planes, then the exact LP on the few left


class _Box(NamedTuple):
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
    curvature: np.ndarray | None  # the estimate H of :func:`_dual_point`, when asked for
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
    ``2 _CURVATURE_WINDOW`` elements ranked around the level (one multi-pivot selection);
    with one, the elements inside it (one pass), and the next width is scaled towards
    ``2 _CURVATURE_WINDOW`` elements.
    """
    v = inner.combine(multipliers)
    m, k = inner.size, inner.budget
    half = min(_CURVATURE_WINDOW, k, m - k)
    hessian = width = next_window = None
    if not curvature or half <= multipliers.shape[0]:
        chosen = inner.select(v)
    elif window is None or inner.floors is not None:
        order = np.argpartition(v, (m - k - half, m - k, m - k + half - 1))
        chosen = order[m - k:] if inner.floors is None else inner.select(v)
        near = order[m - k - half:m - k + half]
        width = float(v[order[m - k + half - 1]] - v[order[m - k - half]])
        next_window = width
    else:
        order = np.argpartition(v, m - k)
        chosen = order[m - k:]
        near = np.flatnonzero(np.abs(v - v[order[m - k]]) <= window / 2.0)
        width = window
        next_window = window * float(np.clip(2.0 * half / max(near.shape[0], 1), 0.25, 4.0))
    if width is not None and width > 0 and near.shape[0] > multipliers.shape[0] + 1:
        around = take_columns(inner.scores[1:], near)
        around -= around.mean(axis=1, keepdims=True)
        hessian = around @ around.T / width
    if 8 * chosen.shape[0] > inner.size:  # many chosen: a product with the indicator, not a gather
        sums = inner.scores @ inner.indicator(chosen)  # <s_i, x(lambda)> for every row
    else:
        sums = take_columns(inner.scores, chosen).sum(axis=1)
    slope = sums[1:] - inner.thresholds
    value = float(sums[0] + multipliers @ slope)
    magnitude = abs(float(sums[0])) + float(multipliers @ (np.abs(sums[1:]) + np.abs(inner.thresholds)))
    return _DualPoint(multipliers, value, slope, 1e-12 * magnitude, hessian, next_window)


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


def _several_bounds_finish(inner: InnerProblem, box: _Box, rtol: float):
    r"""The exact optimum of the LP on ``inner`` with r >= 2 bounds, knowing that lambda* is
    probably in ``box``: minimise the dual

    .. math::

        \phi(\lambda) = T_k\bigl(s_0 + \textstyle\sum_i \lambda_i s_i\bigr) - \langle\lambda, b\rangle,
        \qquad \partial\phi(\lambda) \ni g(\lambda) = \bigl(\langle s_i, x(\lambda)\rangle - b_i\bigr)_i,

    over the box with an oracle that is one selection on the current survivors
    (:func:`_dual_point`), screen the survivors again on a box around the minimum, and solve
    the LP of the few that are left exactly (:func:`_final_lp`).

    1. Newton phase (:func:`_newton_finish`): projected Newton steps with the curvature of
       the elements at the k-th level, then a narrow box around the point reached.
    2. If that stalls, the ellipsoid method (:func:`_ellipsoid_finish`): a localisation that
       cannot fail, only take more oracle calls.

    Why the answer is exact: on a box B, the dual of the problem left after screening on B
    equals :math:`\phi` plus a constant (the fixed elements are in every best set, or in none,
    for every lambda in B). The multipliers :math:`\hat\lambda` of the final LP minimise the
    survivors' dual; if they lie inside the last box (or on its faces at 0), they are a local,
    hence global, minimum of the convex :math:`\phi`, and x (the survivors' answer with the
    fixed ones) is optimal. A minimum found on a face of ``box`` (other than lambda_i = 0)
    means that lambda* is probably outside: :class:`_MinimumOutsideBox` hands the point to the
    caller, which screens again around it. Round-off in any of these steps can only cost a
    retry, never a wrong answer: the inside test and the certificate decide.
    """
    counter = _Counter()
    stage = _Stage(inner, np.arange(inner.size), [], box.lo, box.hi)
    try:
        x_stage, lam, details, stage = _newton_finish(stage, box, rtol, counter)
        method = "newton"
    except _Stalled as stalled:
        x_stage, lam, details, stage = _ellipsoid_finish(stalled.stage, box, rtol, stalled.multipliers, counter)
        method = "ellipsoid"
    details.update(oracle_calls=counter.calls, localisation=method, final_lp_size=stage.problem.size)
    return _assemble(inner.size, stage, x_stage), lam, details


def _assemble(size: int, stage: _Stage, x_stage: np.ndarray) -> np.ndarray:
    """x on the elements the finish started from: the stage's answer and its fixed ones."""
    x = np.zeros(size)
    if stage.ones:
        x[np.concatenate(stage.ones)] = 1.0
    x[stage.index] = x_stage
    return x


def _inside(multipliers: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """lambda strictly inside [lo, hi], except on faces at lambda_i = 0."""
    return bool(np.all(((multipliers > lo) | (lo == 0)) & (multipliers < hi)))


def _on_outer_face(multipliers: np.ndarray, box: _Box) -> bool:
    return bool(np.any(((multipliers <= box.lo) & (box.lo > 0)) | (multipliers >= box.hi)))


def _newton_finish(stage: _Stage, box: _Box, rtol: float, counter: _Counter):
    """Newton steps to the minimum over the stage's box (:func:`_newton_steps`), an exact
    re-screening on a box a few last steps wide around it, and the exact LP once at most
    ``_FINAL_LP_SIZE`` survivors remain; a box that misses the LP's multipliers is widened
    fourfold around them (``_NARROW_TRIES`` times), and so is one whose survivors' LP is
    infeasible (the box fixed elements that lambda* does not). Raises :class:`_Stalled` when
    more than ``_SLOW_RESCREENS`` re-screenings did not halve the survivors or the tries run
    out."""
    lam = np.clip(box.centre, stage.lo, stage.hi)
    slow = 0  # re-screenings that did not halve the survivors
    while True:
        lam, half = _newton_steps(stage, lam, counter)
        if _on_outer_face(lam, box):
            raise _MinimumOutsideBox(lam)
        for _ in range(_NARROW_TRIES):
            narrow = _rescreen_stage(stage, np.maximum(lam - half, stage.lo), np.minimum(lam + half, stage.hi))
            if narrow.problem.size > _FINAL_LP_SIZE:
                slow += 2 * narrow.problem.size > stage.problem.size
                if slow > _SLOW_RESCREENS:
                    raise _Stalled(stage, lam)
                stage = narrow
                break  # Newton again, on fewer elements
            try:
                x_narrow, lam_hat, details = _final_lp(narrow.problem, rtol)
            except _ReducedProblemInfeasible:  # the narrow box fixed too much: widen it
                half = 4.0 * half
                continue
            if _inside(lam_hat, narrow.lo, narrow.hi):
                return x_narrow, lam_hat, details, narrow
            lam = np.clip(lam_hat, stage.lo, stage.hi)
            half = 4.0 * np.maximum(half, np.abs(lam_hat - lam))
        else:
            raise _Stalled(stage, lam)


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
        for damping in range(4):
            trial = np.clip(point.multipliers + step, lo, hi)
            candidate = counter.point(stage.problem, trial, curvature=True, window=point.window)
            if candidate.value <= point.value + candidate.round_off + point.round_off:
                break
            step = step / 4.0
        else:
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
    hessian = point.curvature[np.ix_(free, free)]
    ridge = 1e-12 * float(np.trace(hessian)) + 1e-300
    step[free] = -np.linalg.lstsq(hessian + ridge * np.eye(hessian.shape[0]), point.slope[free], rcond=None)[0]
    return step


def _ellipsoid_finish(stage: _Stage, box: _Box, rtol: float, start: np.ndarray, counter: _Counter):
    r"""Localisation by the ellipsoid method (:class:`copslp._ellipsoid.Ellipsoid`) over the
    stage's box, first query at ``start``, then at the ellipsoid's centres.

    With U the least value of :math:`\phi` seen, every minimiser over the box satisfies
    :math:`\phi(\lambda_t) + \langle g_t, \lambda - \lambda_t\rangle \le \phi(\lambda) \le U`:
    the cut :math:`\langle g_t, \lambda\rangle \le \langle g_t, \lambda_t\rangle + U - \phi(\lambda_t)`
    (deep except at the best point). A centre outside the box is cut back by the face it
    crosses. Once the ellipsoid's bounding box is ``_RESCREEN_SHRINK`` times narrower in every
    multiplier than the box the survivors were screened with, they are screened again on it:
    on the smaller box the dual of the smaller problem is :math:`\phi` plus a constant, so the
    cuts stay valid and the ellipsoid goes on. A localisation that has shrunk and still
    reaches a face of ``box`` (other than lambda_i = 0) raises :class:`_MinimumOutsideBox`.
    The exact LP ends it once at most ``_FINAL_LP_SIZE`` survivors remain (or a stage takes
    ``_CUTS_PER_STAGE`` cuts per bound without shrinking).
    """
    r = box.lo.shape[0]
    ellipsoid = Ellipsoid(stage.lo, stage.hi)
    best = None
    stage_cuts = 0
    query = np.clip(start, stage.lo, stage.hi)
    while stage.problem.size > _FINAL_LP_SIZE and stage_cuts < _CUTS_PER_STAGE * r and not ellipsoid.empty:
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
        if np.all(hi >= lo) and np.all((hi - lo) * _RESCREEN_SHRINK <= stage.hi - stage.lo):
            if best is not None and np.any(((lo <= box.lo) & (box.lo > 0)) | (hi >= box.hi)):
                raise _MinimumOutsideBox(best.multipliers)  # the minimum is on (or near) a face of the box
            stage = _rescreen_stage(stage, lo, hi)
            best, stage_cuts = None, 0  # values of the smaller problem differ by a constant
        query = ellipsoid.centre
    x_stage, lam, details = _final_lp(stage.problem, rtol)
    if not _inside(lam, stage.lo, stage.hi):
        raise _MinimumOutsideBox(lam)
    return x_stage, lam, details, stage


def _rescreen_stage(stage: _Stage, lo: np.ndarray, hi: np.ndarray) -> _Stage:
    """The stage screened again on the box [lo, hi] inside its own."""
    reduced, ones, survivors = _screen_exact(stage.problem, lo, hi)
    return _Stage(reduced, stage.index[survivors], stage.ones + [stage.index[ones]], lo, hi)


def _final_lp(inner: InnerProblem, rtol: float):
    """The LP on ``inner`` by HiGHS (dual simplex for a few thousand elements, interior point
    with crossover above or when the simplex ends without a verdict, as it can on degenerate
    problems: a vertex either way), the vertex then polished from its defining equations
    (:func:`_polish_vertex`)."""
    from ._highs import solve_highs

    solvers = ["simplex", "ipm"] if inner.size <= 2 * _FINAL_LP_SIZE else ["ipm"]
    try:
        reduced = make_problem(inner.scores, inner.budget, bounds=inner.thresholds,
                               groups=inner.groups, floors=inner.floors)
        for solver in solvers:
            try:
                solution = solve_highs(reduced, **get_method("highs").settings({"solver": solver, "tolerance": rtol}))
                break
            except SolverError:  # e.g. 'Unknown' on a degenerate problem: interior point next
                if solver == solvers[-1]:
                    raise
    except (InfeasibleError, ValueError):
        raise _ReducedProblemInfeasible() from None
    x, lam = np.array(solution.x), np.array(solution.multipliers)
    polished = _polish_vertex(inner, x, lam, rtol)
    details = {"reduced_solver": f"highs {solver}", "polished": polished is not None}
    if polished is None:
        details["tolerance"] = solution.tolerance
        return x, lam, details
    return polished[0], polished[1], details


def _polish_vertex(inner: InnerProblem, x, lam, rtol):
    """Recompute a simplex vertex exactly from the equations that define it.

    At a vertex with fractional set F and positive multipliers A:
    ``s_0j + sum_{i in A} lambda_i s_ij = mu`` for j in F (the dual), and
    ``sum_F x_j = k - #ones``, ``sum_F s_ij x_j = b_i - sum_ones s_ij`` for i in A (the primal).
    Returns None if the vertex is degenerate or has floors (then the simplex answer stands).
    """
    if inner.floors is not None:
        return None
    tol = 1e-12  # at a vertex from crossover the non-basic entries sit exactly on 0 or 1
    ones = x >= 1.0 - tol
    frac = np.flatnonzero((x > tol) & ~ones)
    tight = np.flatnonzero(lam > 0)
    if frac.shape[0] != tight.shape[0] + 1:
        if frac.shape[0] == 0 and tight.shape[0] == 0:
            return np.where(ones, 1.0, 0.0), np.zeros_like(lam)
        return None
    s = inner.scores
    dual_matrix = np.column_stack([s[tight + 1][:, frac].T, -np.ones(frac.shape[0])])
    primal_matrix = np.vstack([np.ones(frac.shape[0]), s[tight + 1][:, frac]])
    base = s[:, ones].sum(axis=1)
    primal_rhs = np.concatenate([[inner.budget - ones.sum()], inner.thresholds[tight] - base[tight + 1]])
    try:
        dual = np.linalg.solve(dual_matrix, -s[0, frac])
        x_frac = np.linalg.solve(primal_matrix, primal_rhs)
    except np.linalg.LinAlgError:
        return None
    if np.any(dual[:-1] < 0) or np.any(x_frac < -rtol) or np.any(x_frac > 1 + rtol):
        return None
    polished_x = np.where(ones, 1.0, 0.0)
    polished_x[frac] = np.clip(x_frac, 0.0, 1.0)  # within rtol of the box (checked above)
    values = s @ polished_x
    if not all(reaches(value, b) for value, b in zip(values[1:], inner.thresholds)):
        return None
    polished_lam = np.zeros_like(lam)
    polished_lam[tight] = dual[:-1]
    return polished_x, polished_lam
