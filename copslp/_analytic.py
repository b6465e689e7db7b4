r"""The analytic method: the exact LP optimum from the dual characterisation (docs/maths.md §3-4).

The dual of the COPS LP is :math:`\min_{\lambda\ge 0}\phi(\lambda)` with
:math:`\phi(\lambda) = T_k(s_0 + \sum_i \lambda_i s_i) - \langle\lambda, b\rangle` (with floors,
:math:`T_k` becomes the value of the greedy of docs/maths.md §6). The method

1. estimates :math:`\lambda^*` on a random subsample (budget and bounds scaled to it),
2. puts a box around the estimate and screens safely: with :math:`m_j, M_j` the smallest and
   largest :math:`v_j(\lambda)` over the box, an element with :math:`m_j` above the k-th largest
   M is in every optimal set for every :math:`\lambda` in the box (fixed to 1), one with
   :math:`M_j` below the k-th largest m in none (fixed to 0),
3. solves the problem left on the survivors exactly, and accepts it when its
   :math:`\lambda` lies strictly inside the box (then :math:`\phi` of the full problem equals
   that of the reduced one plus a constant near :math:`\lambda`, so the local minimum is the
   global one); otherwise it re-centres the box there, widens it and repeats.

The exact finish on the survivors is a step of its own, one module per case:

* one bound (r = 1), :mod:`copslp._one_bound`: a walk over the linear pieces of
  :math:`\phi`, which re-screens as its bracket narrows; the bound is then made tight by one
  partial swap (at most two fractional entries). When many survive the box, they are first
  screened once more from a subsample of their own, with a box within the box
  (:func:`_solve_survivors`);
* several bounds (r > 1), :mod:`copslp._several_bounds`: projected Newton steps (the ellipsoid
  method when they stall) with one selection on the survivors as the oracle, re-screening as
  the box shrinks, then the exact LP on the few thousand left (:mod:`copslp._simplex`).

Screening itself is :mod:`copslp._screening`. This module holds the road between them: the
subsample estimate, the boxes and their re-centring, the case gamma = 1 (solved on its face)
and the proofs of infeasibility.

Infeasibility: a bound that cannot be met alone is found by its :math:`T_k`; bounds that
conflict only together are proved so by a Farkas ray of the dual, found by the same method
with one bound fewer (:func:`_infeasibility_proof`): an infeasible problem costs about what
a feasible one does.

Costs: validation computes :math:`T_k(s_i)` (one selection per bound); screening is one
streamed pass (the box's corners, two counts, the survivors gathered block by block) and
selections on the subsample; everything else runs on the survivors.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from ._errors import InfeasibleError, SolverError
from ._infeasibility import conflict_error, single_bound_error
from ._inner import InnerProblem, reaches
from ._one_bound import estimate_one_bound, solve_one_bound
from ._point import Screened, ScreenLevel, mask_point, screened_point
from ._problem import Outline, PreparedProblem, Problem
from ._result import LPSolution
from ._screening import MinimumOutsideBox, ReducedProblemInfeasible, Screening, Tally, screen, screen_and_tally
from ._screening import kernels_in_use
from ._selection import (group_starts, kth_largest, prefilters, strided_candidate_level, take_columns, top_k_sum,
                         top_k_sum_by_partition)
from ._several_bounds import FINAL_LP_SIZE, Box, few_enough, inside, several_bounds_finish
from ._simplex import solve_small_lp

__all__ = ["solve_analytic", "first_pass", "FirstPass"]

_MIN_SAMPLE_BUDGET = 64
#: Several bounds: the subsample is this many times ``sample_size``, and the first box
#: ``lambda_est (1 +/- width / sqrt(k_sample))`` (one bound: 3).
_SEVERAL_BOUNDS_SAMPLE_FACTOR = 4
_SEVERAL_BOUNDS_WIDTH = 6.0
#: A box within a box: its relative half-width is this many times sqrt(k_sample) / m of the
#: box above (see :class:`BoxSchedule`).
_WITHIN_WIDTH = 48.0


class _Settings(NamedTuple):
    """The options of :func:`solve_analytic`, passed on to the solves it starts itself."""

    rtol: float
    sample_size: int
    seed: int
    max_rounds: int
    certificate_reads: str


class _SampleEstimate(NamedTuple):
    """What the subsample says about lambda*."""

    multipliers: np.ndarray  # lambda* of the subsample's problem (zeros if it had none)
    reference: np.ndarray  # a natural scale per multiplier: mean |s_0| / mean |s_i|
    infeasible: bool  # the subsample's problem (bounds scaled to it) was infeasible


def solve_analytic(problem: Problem, *, rtol: float, sample_size: int, seed: int, max_rounds: int,
                   certificate_reads: str = "survivors", first_pass: FirstPass | None = None) -> LPSolution:
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
    certificate_reads : {"survivors", "all"}
        What the certificate reads of a screened answer (every bound on):
        ``"survivors"`` hands it the record of the screening (a
        :class:`copslp._point.ScreenedPoint`), so that it reads only the innermost survivors
        and takes the elements fixed by a box from the levels its pass compared them with;
        ``"all"`` makes it read every element again, independent of the screening.
    first_pass : FirstPass, optional
        The first pass of :func:`first_pass`, made before ``problem`` was complete: its
        subsample, estimate and first screening are used as they are.

    Raises
    ------
    InfeasibleError
        No point meets the bounds: a bound that cannot be met alone, else the bounds that
        conflict with the Farkas ray that proves it (see :func:`_infeasibility_proof`).
    """
    settings = _Settings(rtol, sample_size, seed, max_rounds, certificate_reads)
    inner = _full_inner(problem)
    r = inner.thresholds.shape[0]
    info = {"rounds": 0, "survivors": problem.size, "kernels": kernels_in_use()}
    if r == 0:  # the top-k of s_0 (with floors, the greedy): an integral point, given as a mask
        mask = inner.mask_of(inner.select(inner.scores[0]))
        return LPSolution(mask, np.zeros(problem.n_scores - 1), rtol, info)
    if r > 1:
        if not problem.has_floors:
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
    if _screens(d, problem.budget, sample_size, r):
        x, lam, details = _solve_screened(problem, inner, settings, sample_size, first_pass)
    else:
        try:
            x, lam, details = _solve_exact(_in_float64(inner), rtol)
        except ReducedProblemInfeasible:
            raise _infeasibility_or_failure(problem, inner, settings) from None
    info.update(details)
    multipliers = np.zeros(problem.n_scores - 1)
    multipliers[problem.active] = lam
    return LPSolution(x, multipliers, details.pop("tolerance", rtol), info)


def _solve_on_best_face(problem: Problem, inner: InnerProblem, row: int, settings: _Settings):
    r"""Several bounds, one of which (active ``row``, score i) asks for the best value its
    score reaches (gamma_i = 1): every feasible x lies on the face
    :math:`\langle s_i, x\rangle = T_k(s_i)`, which keeps every element with :math:`s_{ij}`
    above the k-th largest value L of s_i, drops every one below it, and leaves the c
    missing slots to the elements tied at L (often one). The problem left on the tied
    elements, without bound i (their s_i are all L; with floors, each floor less the
    elements above L in its group), is solved by :func:`solve_analytic`; its multipliers
    hold for the other bounds. :math:`\lambda_i`, which may have to be large
    (it is unbounded when the face is a single point), is the least that keeps every kept
    element at or above the level and every dropped one at or below it: with
    :math:`w = s_0 + \sum_{l \ne i}\lambda_l s_l` and :math:`\mu_T` the level of the tied
    elements, :math:`\lambda_i = \max(0, \max_{s_{ij} > L} (\mu_T - w_j)/(s_{ij} - L),
    \max_{s_{ij} < L} (w_j - \mu_T)/(L - s_{ij}))`; then v = w + lambda_i s_i has the level
    :math:`\mu_T + \lambda_i L` and the certificate holds. With floors the levels differ per
    group, so :math:`\mu_T` is replaced by the largest w of a tied element for the elements
    above L and by the smallest for those below: every element above L then has a larger v
    than every tied one, which has a larger v than every element below, in every group."""
    s_i = inner.scores[row + 1]  # compared with its own k-th value; differences taken in float64
    k = problem.budget
    level = kth_largest(s_i, k)
    above, tied = np.flatnonzero(s_i > level), np.flatnonzero(s_i == level)
    others = [other for other in range(inner.thresholds.shape[0]) if other != row]
    rows = np.array([0] + [other + 1 for other in others])
    taken = take_columns(inner.scores[rows], above).sum(axis=1)
    groups = floors = sizes = None
    if problem.has_floors:  # the face keeps every element above L: the floors left for the tied ones
        groups = problem.groups[tied]
        sizes = np.bincount(groups, minlength=problem.floors.shape[0])
        floors = np.maximum(problem.floors - np.bincount(problem.groups[above], minlength=sizes.shape[0]), 0)
        if np.any(floors > sizes) or floors.sum() > k - above.shape[0]:  # no point of the face meets the floors
            raise _infeasibility_or_failure(problem, inner, settings)
    face = Problem(take_columns(inner.scores[rows], tied), k - above.shape[0], inner.thresholds[others] - taken[1:],
                   None, np.array([top_k_sum(row_scores, k - above.shape[0])
                                   for row_scores in take_columns(inner.scores[rows[1:]], tied)]),
                   groups, floors, sizes)
    try:
        solution = solve_analytic(face, **settings._asdict())
    except InfeasibleError:
        raise _infeasibility_or_failure(problem, inner, settings) from None
    x = np.zeros(problem.size)
    x[above] = 1.0
    x[tied] = np.asarray(solution.x)
    lam_others = np.asarray(solution.multipliers)
    w = inner.combine(np.insert(lam_others, row, 0.0))
    w_tied = w[tied]
    kept = np.asarray(solution.x) > 0
    if problem.has_floors:  # a level per group: every element above L over every tied one, every one below under
        lowest_kept, highest_dropped = float(w_tied.max()), float(w_tied.min())
    else:
        lowest_kept = highest_dropped = float(w_tied[kept].min()) if kept.any() else float(w_tied.max())
    below = np.flatnonzero(s_i < level)
    need = [0.0]
    if above.shape[0]:
        need.append(float(np.max((lowest_kept - w[above]) / (s_i[above].astype(np.float64) - level))))
    if below.shape[0]:
        need.append(float(np.max((w[below] - highest_dropped) / (level - s_i[below].astype(np.float64)))))
    lam = np.insert(lam_others, row, max(need))
    return x, lam, {"best_face_of": int(problem.active[row]) + 1, "face_size": int(tied.shape[0]),
                    **{key: value for key, value in solution.info.items() if key in ("oracle_calls", "final_lp_size")}}


def _in_float64(inner: InnerProblem) -> InnerProblem:
    """``inner`` with float64 scores: the exact finish computes v = s_0 + lambda s_1 and its
    sums in the dtype of the scores (a copy only for float32 scores left unscreened)."""
    if inner.scores.dtype == np.float64:
        return inner
    return replace(inner, scores=inner.scores.astype(np.float64))


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
    bounds together, docs/maths.md §3: they cannot all hold on the polytope P (budget and
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
    best = float(np.einsum("j,j->", scores[0], np.asarray(solution.x), dtype=np.float64))
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


def _screens(d: int, k: int, sample_size: int, r: int) -> bool:
    """Whether a problem of D = ``d``, budget k and r bounds is screened from a subsample of
    ``sample_size`` (else solved exactly on every element)."""
    k_sample = int(round(k * sample_size / d))
    screened = d > 4 * sample_size or (r > 1 and sample_size > FINAL_LP_SIZE)
    return screened and _MIN_SAMPLE_BUDGET <= k_sample <= sample_size - _MIN_SAMPLE_BUDGET


def _draw_sample(seed, size: int, count: int, sort: bool = False) -> np.ndarray:
    """``count`` positions drawn uniformly from ``size`` (seeded); increasing with ``sort``
    (contiguous groups stay contiguous in the subsample: selections within them are slices)."""
    sample = np.random.default_rng(seed).integers(0, size, count)
    if sort:
        sample.sort()
    return sample


class FirstPass(NamedTuple):
    """The analytic method's first pass over the scores, made by :func:`first_pass` before
    the problem was complete."""

    best: np.ndarray  # T_k(s_i) of each secondary row, for the relative bounds and the checks of validation
    totals: np.ndarray  # a sum that is finite only if every entry is (Tally)
    sample: np.ndarray
    sample_scores: np.ndarray
    estimate: _SampleEstimate
    boxes: BoxSchedule  # its first box is the one screened
    screening: Screening | None  # that box's, with the bounds counted as 0; None: its levels were unsafe


def first_pass(prepared: PreparedProblem, *, rtol: float, sample_size: int, seed: int, max_rounds: int,
               certificate_reads: str = "survivors"):
    r"""Validation fused with the first screening: relative bounds all in (0, 1), no floors or
    floors on contiguous groups (layers), a problem screened from a subsample (``None`` for
    any other problem, which is validated by its own pass).

    The subsample's estimate of :math:`\lambda^*` needs only the subsample: each bound
    :math:`\gamma_i T_k(s_i)` scales to :math:`\gamma_i T_{k_m}` of the subsample's own s_i.
    So the first box is known before the :math:`T_k(s_i)`, and the one pass that screens it
    also sums v at the box's top (the finiteness check, :class:`copslp._screening.Tally`) and
    gathers the entries of each s_i at or above the level validation's own pass would use
    (:func:`copslp._selection.strided_candidate_level`: the same candidates in the same order,
    so the same :math:`T_k(s_i)` to the last bit): the scores are read once for both, not
    once for validation and again for the screening. The pass does not depend on the
    bounds; the reduced problem gets them once they are known. Numbers the pass computes from
    non-finite entries raise no warnings: validation reports them.

    Left to validation's own pass: floors on groups that are not contiguous (their order, a
    sort of the groups, is made once, by the problem), absolute bounds (scaled to the subsample by m / D instead
    of by the subsample's share of :math:`T_k(s_i)`, their estimates are noisier and the boxes
    miss more often), a bound switched off (the screened rows would be a copy) or at
    gamma = 1 (solved on its face), and a subsample with a non-finite entry, or whose sums
    of |s| overflow float64 (its estimate would too, before validation says why)."""
    scores, k = prepared.scores, prepared.budget
    n, d = scores.shape
    gamma = prepared.gamma
    r = n - 1
    floors = prepared.floors
    if r < 1 or gamma is None or not np.all((gamma > 0) & (gamma < 1)):
        return None
    if floors is not None and not prepared.contiguous:
        return None
    if r > 1:
        sample_size = min(_SEVERAL_BOUNDS_SAMPLE_FACTOR * sample_size, d // 4)
    if not _screens(d, k, sample_size, r) or not prefilters(d, k):  # else validation's T_k selects among all
        return None
    sample = _draw_sample(seed, d, sample_size, sort=floors is not None)
    sample_scores = take_columns(scores, sample)
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isfinite(np.abs(sample_scores).sum(axis=1)).all():  # non-finite, or sums that overflow
            return None
    groups, sizes, layout = prepared.groups, prepared.group_sizes, None
    if floors is not None:
        starts = group_starts(sizes)
        layout = lambda: (None, starts)  # noqa: E731  (contiguous groups: no order)
    estimate = _sample_estimate(Outline(d, n, k, gamma, np.ones(r), floors, sizes),
                                InnerProblem(scores, k, gamma, groups, floors, layout), sample, sample_scores, rtol)
    boxes = BoxSchedule(estimate, r, max(1, int(round(k * sample_size / d))))
    tally = Tally(np.array([strided_candidate_level(row, k) for row in scores[1:]]))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        screening = screen_and_tally(InnerProblem(scores, k, np.zeros(r), groups, floors, layout), *boxes.box(),
                                     sample_scores, tally, None if floors is None else groups[sample])
        best = np.empty(r)
        for i, candidates in enumerate(tally.candidates):
            best[i] = top_k_sum_by_partition(candidates if candidates.shape[0] >= k else scores[i + 1], k)
    return FirstPass(best, tally.totals, sample, sample_scores, estimate, boxes, screening)


def _solve_screened(problem, inner, settings: _Settings, sample_size: int, first: FirstPass | None = None):
    """Screen around the subsample's estimate, solve the survivors exactly, and accept the
    answer when its multipliers lie inside the box (else re-centre, widen and repeat; with
    several bounds, boxes that keep missing end in the exact LP on every element). ``first``:
    the subsample, estimate and first screening made already (:func:`first_pass`)."""
    d = problem.size
    r = inner.thresholds.shape[0]
    if first is None:
        sample = _draw_sample(settings.seed, d, sample_size, sort=inner.floors is not None)
        sample_scores = take_columns(inner.scores, sample)
        estimate = _sample_estimate(problem, inner, sample, sample_scores, settings.rtol)
        boxes = BoxSchedule(estimate, r, max(1, int(round(problem.budget * sample_size / d))))
    else:
        sample, sample_scores, estimate, boxes = first.sample, first.sample_scores, first.estimate, first.boxes
    sample_groups = None if inner.floors is None else inner.groups[sample]
    feasible = False  # proven so
    if estimate.infeasible and inner.thresholds.shape[0] > 1:
        error = _infeasibility_proof(problem, inner, settings)
        if error is not None:
            raise error
        feasible = True
    for rounds in range(1, settings.max_rounds + 1):
        lo, hi = boxes.box()
        if rounds == 1 and first is not None and first.screening is not None:
            screening = first.screening  # screened before the bounds were known, as 0: add them
            screening = screening._replace(reduced=replace(screening.reduced, thresholds=inner.thresholds
                                                           + screening.reduced.thresholds))
        else:
            screening = screen(inner, lo, hi, sample_scores, sample_groups)
        reduced, ones, survivors = screening[:3]
        try:
            x_red, lam, details = _solve_survivors(reduced, settings, (lo, hi, boxes.centre))
        except ReducedProblemInfeasible:
            if not feasible:
                error = _infeasibility_proof(problem, inner, settings)  # raises at once if one bound alone fails
                if error is not None:
                    raise error from None
                feasible = True
            if survivors.shape[0] == d:
                if r == 1:
                    raise _infeasibility_or_failure(problem, inner, settings) from None
                return _whole_problem_lp(problem, inner, settings, rounds)
            boxes.after_infeasible()
            continue
        except MinimumOutsideBox as outside:
            if survivors.shape[0] == d:
                return _whole_problem_lp(problem, inner, settings, rounds)
            boxes.after_outside(outside.multipliers)
            if boxes.outside_rounds >= 2 and not feasible:  # lambda keeps growing: are the bounds infeasible?
                error = _infeasibility_proof(problem, inner, settings)
                if error is not None:
                    raise error from None
                feasible = True
            continue
        if inside(lam, lo, hi) or survivors.shape[0] == d:
            x = _point_of(problem, inner, settings, screening, lo, hi, x_red, inside(lam, lo, hi))
            details.update(rounds=rounds, survivors=int(survivors.shape[0]), fixed_ones=int(ones.shape[0]),
                           box=[lo.tolist(), hi.tolist()], sample_estimate=estimate.multipliers.tolist())
            return x, lam, details
        boxes.after_miss(lam)
    if not feasible:
        error = _infeasibility_proof(problem, inner, settings)
        if error is not None:
            raise error
    if r > 1:
        return _whole_problem_lp(problem, inner, settings, settings.max_rounds)
    raise SolverError(f"analytic: lambda* not bracketed after {settings.max_rounds} rounds of screening")


def _point_of(problem: Problem, inner: InnerProblem, settings: _Settings, screening, lo, hi, answer: Screened,
              in_box: bool):
    """The LP point of the whole problem from the ``answer`` on the survivors of
    ``screening`` (of the box [lo, hi]), in 1 byte per element, not a float64 array: a
    :class:`copslp._point.ScreenedPoint` that carries the record of the screening when the
    certificate may read it (lambda inside the box, every row of the problem screened), else
    a plain :class:`copslp._point.MaskPoint`."""
    recorded = (settings.certificate_reads == "survivors" and in_box and inner.scores.shape[0] == problem.n_scores)
    level = _level_of(inner, screening, lo, hi) if recorded else None
    whole = answer.below(level, screening.ones, screening.survivors)
    if recorded:
        return screened_point(problem.size, whole)
    return mask_point(problem.size, whole.ones, whole.survivors, whole.x)


def _level_of(inner: InnerProblem, screening, lo, hi) -> ScreenLevel:
    """The record of the screening of ``inner`` by the box [lo, hi], per segment (group)."""
    if inner.floors is None:
        fixed = np.array([screening.ones.shape[0]])
        dropped = inner.size - fixed - screening.survivors.shape[0]
    else:
        groups = inner.floors.shape[0]
        fixed = np.bincount(inner.groups[screening.ones], minlength=groups)
        sizes = np.diff(inner._group_layout[1])  # known: no pass over the groups of every element
        dropped = sizes - fixed - np.bincount(inner.groups[screening.survivors], minlength=groups)
    return ScreenLevel(lo, hi, *screening.levels, fixed, dropped, screening.taken)


#: One bound: survivors of a box beyond this many are screened once more, a level down
#: (:func:`_solve_survivors`), before the exact finish.
NEST_MIN_SIZE = 1 << 17
#: Levels of boxes within boxes at most.
NEST_DEPTH = 3


def _solve_survivors(reduced: InnerProblem, settings: _Settings, bracket, depth: int = 0):
    """The exact finish on the survivors of the box ``bracket = (lo, hi, centre)``:
    ``(answer, lambda, details)`` with the answer a :class:`copslp._point.Screened` (x on
    every survivor, or on those a box within the box left).

    With one bound, no floors and more than :data:`NEST_MIN_SIZE` survivors they are first
    screened once more, as the whole problem was (:func:`_solve_a_level_down`), at most
    :data:`NEST_DEPTH` levels deep; when that does not settle, the exact finish on every
    survivor decides (an infeasible problem there means the box above was wrong). With
    floors the box within keeps most survivors (every member of a group short of its floor
    that may still be among its floors[g] best), and its subsample's solve costs more than
    it saves: at D = 1e7 with 50 binding layer floors, 530 ms against 423 ms without it."""
    m = min(settings.sample_size, reduced.size // 4)
    k_sample = max(1, int(round(reduced.budget * m / max(reduced.size, 1))))
    if (reduced.thresholds.shape[0] == 1 and reduced.floors is None and reduced.size > NEST_MIN_SIZE
            and depth < NEST_DEPTH and _MIN_SAMPLE_BUDGET <= k_sample <= m - _MIN_SAMPLE_BUDGET):
        nested = _solve_a_level_down(reduced, settings, bracket, depth, m, k_sample)
        if nested is not None:
            return nested
    x, lam, details = _solve_exact(reduced, settings.rtol, bracket)
    return Screened.unscreened(reduced.scores, x), lam, details


def _solve_a_level_down(reduced: InnerProblem, settings: _Settings, bracket, depth: int, m: int, k_sample: int):
    """``(answer, lambda, details)`` of the survivors' problem by a box within the box, or ``None``.

    lambda* of their problem is estimated on a subsample of m of them; a box around it,
    sized from the box above (:class:`BoxSchedule` ``within``: the survivors all lie near the
    k-th level, so the estimate is far closer), fixes most of them, and the few left are
    solved by :func:`_solve_survivors`. The answer is accepted when its lambda lies strictly
    inside that box: then it is the optimum of the survivors' problem (the box need not lie
    inside the box above; the caller checks that lambda does). ``None`` when a second,
    re-centred box misses too, or when a box leaves an infeasible problem."""
    lo, hi, _ = bracket
    size = reduced.size
    sample = _draw_sample([settings.seed, depth + 1], size, m)  # not the box above's draws
    sample_scores = take_columns(reduced.scores, sample)
    outline = Outline(size, reduced.scores.shape[0], reduced.budget, reduced.thresholds,
                      estimated_best(sample_scores, reduced.budget, size))  # no floors here
    estimate = _sample_estimate(outline, reduced, sample, sample_scores, settings.rtol, bracket)
    if estimate.infeasible:
        return None
    boxes = BoxSchedule(estimate, 1, k_sample, within=((lo, hi), m))
    for attempt in range(2):
        lo_in, hi_in = boxes.box()
        screening = screen(reduced, lo_in, hi_in, sample_scores)
        below, ones, survivors = screening[:3]
        try:
            answer, lam, details = _solve_survivors(below, settings, (lo_in, hi_in, boxes.centre), depth + 1)
        except (ReducedProblemInfeasible, MinimumOutsideBox):
            return None
        if inside(lam, lo_in, hi_in):
            level = _level_of(reduced, screening, lo_in, hi_in)
            details["nested"] = [{"rounds": attempt + 1, "survivors": int(survivors.shape[0]),
                                  "fixed_ones": int(ones.shape[0])}] + details.get("nested", [])
            return answer.below(level, ones, survivors), lam, details
        boxes.after_miss(lam)
    return None


def estimated_best(sample_scores: np.ndarray, budget: int, size: int) -> np.ndarray:
    """``T_k(s_i)`` of each secondary row of a problem of ``size`` elements and budget k,
    estimated from the scores of a subsample of it (they only scale the subsample's bounds)."""
    m = sample_scores.shape[1]
    k = max(1, min(m, int(round(budget * m / size))))
    return np.array([top_k_sum(row, k) * size / m for row in sample_scores[1:]])


class BoxSchedule:
    """Where the boxes of multipliers go, round after round: around the subsample's estimate
    with a relative half-width ``3 / sqrt(k_sample)`` (one bound; ``6 / sqrt(k_sample)`` with
    several) of each multiplier (of its natural scale where the estimate is 0); re-centred on
    the reduced problem's lambda and widened fourfold when that lies outside the box; widened
    faster (by 4, 16, 64... with one bound, 2, 4, 8... with several) while the reduced dual's
    minimum keeps lying outside it (lambda* far out, e.g. a bound at gamma = 1); widened
    fourfold when the survivors' problem was infeasible.

    ``within`` (a box ``(lo, hi)`` and the subsample's size m) is for a subsample drawn from
    the survivors of that box: they all lie near the k-th level, and as lambda crosses the
    box a large share of them change sides, so a count off by ``c sqrt(k_sample)`` of m
    moves the estimate by a few ``c sqrt(k_sample) / m`` of the box's width. The first box
    has the relative half-width ``_WITHIN_WIDTH sqrt(k_sample) / m`` of the box above when
    that is narrower than the rule above. The constant is measured: at D = 1e7 (uniform,
    lognormal and signed scores, k = D/20) the estimate missed lambda* by up to 9.4 half-widths
    of the rule with 3, and by at most 0.66 of one with 48 (18 problems, none missed)."""

    def __init__(self, estimate: _SampleEstimate, n_bounds: int, k_sample: int, within=None):
        self.centre, self.reference = estimate.multipliers, estimate.reference
        self.width = (3.0 if n_bounds == 1 else _SEVERAL_BOUNDS_WIDTH) / np.sqrt(k_sample)
        if within is not None and n_bounds:
            (lo, hi), m = within
            spans = (hi - lo) / np.where(self.centre > 0, self.centre, self.reference)
            self.width = min(self.width, _WITHIN_WIDTH * np.sqrt(k_sample) / m * float(spans.max()))
        self.widen = 4.0 if n_bounds == 1 else 2.0
        self.outside_rounds = 0

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` of the next box."""
        scale = np.where(self.centre > 0, self.centre, self.reference)
        return np.maximum(self.centre - self.width * scale, 0.0), self.centre + self.width * scale

    def after_infeasible(self) -> None:
        self.width *= 4.0

    def after_outside(self, multipliers: np.ndarray) -> None:
        self.centre = multipliers
        self.outside_rounds += 1
        self.width *= self.widen ** self.outside_rounds

    def after_miss(self, multipliers: np.ndarray) -> None:
        self.centre = multipliers
        self.width *= 4.0


def _whole_problem_lp(problem, inner, settings: _Settings, rounds: int, centre=None):
    """Several bounds whose boxes kept missing lambda* (it can be very large when a bound
    asks for the best value its score reaches, gamma = 1): the localisation on every
    element (:func:`_localise_everywhere`)."""
    try:
        x, lam, details = _localise_everywhere(_in_float64(inner), settings.rtol, centre)
    except ReducedProblemInfeasible:
        raise _infeasibility_or_failure(problem, inner, settings) from None
    details.update(rounds=rounds, survivors=problem.size)
    return x, lam, details


#: Boxes [0, hi] tried by :func:`_localise_everywhere`, each 16 times wider than the last.
_WIDENINGS = 6


def _localise_everywhere(inner: InnerProblem, rtol: float, centre=None):
    """The several-bounds finish (:func:`several_bounds_finish`) on every element of
    ``inner``, with no estimate to start from: boxes [0, hi] from ``hi = 4 lambda_ref``
    (lambda_ref = mean |s_0| / mean |s_i|, the scale at which s_i weighs as much as s_0),
    widened sixteenfold while the minimum lies on their outer face (or a re-screening inside
    one left an infeasible problem, so that box did not hold lambda*). Each oracle call is one
    selection over the elements, each re-screening one pass. A minimum beyond every box (a
    bound at the best value its score reaches, lambda* unbounded) is left to the simplex on
    the distinct columns (:func:`copslp._simplex.solve_small_lp`), which needs no box."""
    reference = natural_scale(inner.scores)
    start = reference if centre is None else np.maximum(np.asarray(centre, dtype=np.float64), 0.0)
    hi = np.maximum(4.0 * reference, 2.0 * start)
    for _ in range(_WIDENINGS):
        try:
            return several_bounds_finish(inner, Box(np.zeros_like(hi), hi, np.minimum(start, hi)), rtol)
        except MinimumOutsideBox as outside:
            start = outside.multipliers
            hi = np.maximum(16.0 * hi, 2.0 * start)
        except ReducedProblemInfeasible:  # a stage fixed elements that lambda* does not: a wider box
            hi = 16.0 * hi
    x, lam, details = solve_small_lp(inner, start)
    details.update(oracle_calls=0, final_lp_size=inner.size)
    return x, lam, details


def natural_scale(scores: np.ndarray) -> np.ndarray:
    """lambda_ref per secondary row: mean |s_0| / mean |s_i|, the multiplier at which s_i
    weighs as much as s_0 (1 where either mean is 0)."""
    magnitude = np.abs(scores).mean(axis=1)
    reference = np.where(magnitude[1:] > 0, magnitude[0] / np.maximum(magnitude[1:], 1e-300), 1.0)
    return np.where(reference > 0, reference, 1.0)


def _sample_estimate(problem, inner, sample, scores, rtol, bracket=None) -> _SampleEstimate:
    """lambda* of the problem on a subsample (indices ``sample``, their ``scores``) with
    budget and bounds scaled to it.

    One bound: lambda* of the subsample is narrowed by regula falsi
    (:func:`copslp._one_bound.estimate_one_bound`) from a bracket around the estimate of a
    sixteenth of it (recursively); where there is no such bracket (the smallest subsample), or
    it does not hold lambda*, by the exact walk from lambda = 0 and infinity. A ``bracket``
    (lo, hi, guess) known already (the box whose survivors the subsample was drawn from) is
    tried first, without the smaller subsamples.
    Several bounds: the localisation of :func:`several_bounds_finish` on the subsample,
    from the box [0, 4 lambda_ref] (lambda_ref = mean |s_0| / mean |s_i|, the scale at which
    s_i weighs as much as s_0), widened fourfold while the minimum lies outside it; its
    Newton steps start from the estimate of a sixteenth of the subsample (recursively), but
    the box stays wide: smaller subsamples of heavy-tailed scores misplace lambda* by
    factors, not percents."""
    d = problem.size
    r = inner.thresholds.shape[0]
    k = max(1, int(round(problem.budget * sample.shape[0] / d)))
    reference = natural_scale(scores)
    sampled = _sampled_problem(problem, inner, sample, scores, k)
    if r == 1 and bracket is not None:
        approximate = estimate_one_bound(sampled, bracket)
        if approximate is not None:
            return _SampleEstimate(np.array([approximate]), reference, False)
    bracket = guess = None
    part = sample.shape[0] // 16
    if round(problem.budget * part / d) >= _MIN_SAMPLE_BUDGET and (r == 1 or part >= FINAL_LP_SIZE):
        smaller = slice(0, 16 * part, 16)  # every 16th: a random subsample, sorted or not
        estimate = _sample_estimate(problem, inner, sample[smaller], scores[:, smaller], rtol)
        guess = None if estimate.infeasible else estimate.multipliers
    if r == 1 and guess is not None:
        width = 3.0 / np.sqrt(problem.budget * part / d)
        bracket = (guess * (1 - width), guess * (1 + width), guess)
    try:
        if r == 1:
            approximate = None if bracket is None else estimate_one_bound(sampled, bracket)
            if approximate is None:
                _, lam, _ = _solve_exact(sampled, rtol, bracket)
            else:
                lam = np.array([approximate])
        else:
            lam = _localised_sample_minimum(sampled, reference, rtol, guess)
    except ReducedProblemInfeasible:
        return _SampleEstimate(np.zeros(r), reference, True)
    except SolverError:
        lam = np.zeros(r)
    return _SampleEstimate(np.asarray(lam, dtype=np.float64), reference, False)


def _sampled_problem(problem, inner, sample, scores, k: int) -> InnerProblem:
    """The problem on a subsample (indices ``sample``, their ``scores``) with budget k and
    the bounds scaled to it (by its own T_k of each secondary row, or by m / D where the best
    value of the whole row is not positive); with floors, the floors scaled to each group's
    share of the subsample."""
    d = problem.size
    thresholds = []
    for row, b in enumerate(inner.thresholds):
        best_sample = top_k_sum(scores[row + 1], k)
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
    return InnerProblem(np.ascontiguousarray(scores), k, np.array(thresholds), groups, floors)


def _localised_sample_minimum(sampled: InnerProblem, reference: np.ndarray, rtol: float, guess=None,
                              tries: int = 3):
    """lambda* of the subsample's problem with several bounds, from boxes [0, 4^t 4 lambda_ref]
    (at least twice the ``guess`` of a smaller subsample, where the Newton steps start).

    A minimum beyond every box means that phi keeps decreasing as lambda grows: the bounds
    are (nearly) infeasible together, reported as such (:class:`ReducedProblemInfeasible`)."""
    start = reference if guess is None else guess
    hi = np.maximum(4.0 * reference, 2.0 * start)
    for _ in range(tries):
        try:
            return _solve_exact(sampled, rtol, (np.zeros_like(hi), hi, np.minimum(start, hi)))[1]
        except MinimumOutsideBox as outside:
            hi = np.maximum(4.0 * hi, 2.0 * outside.multipliers)
            start = outside.multipliers
    raise ReducedProblemInfeasible()


# --------------------------------------------------------------------------------------------
# exact finish on a (small) problem


def _solve_exact(inner: InnerProblem, rtol: float, bracket=None):
    """x, lambda (active bounds only) and details of the LP on ``inner``, exactly.

    ``bracket`` = (lo, hi, centre), arrays of one value per bound: where lambda* is expected,
    and the best guess of it. One bound: the walk; several: the simplex of
    :func:`copslp._simplex.solve_small_lp` at once on at most ``FINAL_LP_SIZE`` elements,
    else the localisation of :func:`several_bounds_finish` in the bracket (without one, in
    boxes from 0 that widen, :func:`_localise_everywhere`) first."""
    if inner.budget == 0:
        taken = np.zeros(inner.thresholds.shape[0])
        if np.any(taken < inner.thresholds):
            raise ReducedProblemInfeasible()
        return np.zeros(inner.size), np.zeros(inner.thresholds.shape[0]), {}
    if inner.thresholds.shape[0] == 1:
        return solve_one_bound(inner, None if bracket is None else tuple(float(end[0]) for end in bracket))
    if few_enough(inner):
        x, lam, details = solve_small_lp(inner, None if bracket is None else bracket[2])
        details.update(oracle_calls=0, final_lp_size=inner.size)
        return x, lam, details
    if bracket is None:
        return _localise_everywhere(inner, rtol)
    return several_bounds_finish(inner, Box(*bracket), rtol)
