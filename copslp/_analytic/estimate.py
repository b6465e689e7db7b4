r"""Where lambda* is estimated and where the boxes of the analytic method go (docs/maths.md §4).

* :func:`sample_estimate`: lambda* of the problem on a subsample, budget and bounds scaled to
  it (one bound: regula falsi from a bracket; several: the localisation of
  :func:`copslp._analytic.several_bounds.several_bounds_finish` in boxes that widen);
* :class:`BoxSchedule`: the boxes around the estimate, round after round;
* :func:`screens`: whether a subsample can say anything about a problem (else it is solved
  on every element at once);
* the exact finish itself is :mod:`copslp._analytic.finish`.

The road that uses them, from the subsample to the certificate, is :mod:`copslp._analytic.driver`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._errors import SolverError
from .._inner import InnerProblem
from .._selection import top_k_sum
from .finish import natural_scale, solve_exact
from .one_bound import estimate_one_bound
from .screening import MinimumOutsideBox, ReducedProblemInfeasible
from .several_bounds import FINAL_LP_SIZE, Box, approximate_minimum

__all__ = ["BoxSchedule", "SampleEstimate", "screens", "estimated_best", "sample_estimate"]

_MIN_SAMPLE_BUDGET = 64
#: Several bounds: the subsample is this many times ``sample_size``, and the first box
#: ``lambda_est (1 +/- width / sqrt(k_sample))`` (one bound: 3).
_SEVERAL_BOUNDS_SAMPLE_FACTOR = 4
_SEVERAL_BOUNDS_WIDTH = 6.0
#: Several bounds: the subsample's lambda* is located to this many 1 / sqrt(k_sample) of
#: itself (a tenth of the first box's half-width), not exactly.
_SEVERAL_BOUNDS_PRECISION = 0.6
#: A box within a box: its relative half-width is this many times sqrt(k_sample) / m of the
#: box above (see :class:`BoxSchedule`).
_WITHIN_WIDTH = 48.0


class SampleEstimate(NamedTuple):
    """What the subsample says about lambda*."""

    multipliers: np.ndarray  # lambda* of the subsample's problem (zeros if it had none)
    reference: np.ndarray  # a natural scale per multiplier: mean |s_0| / mean |s_i|
    infeasible: bool  # the subsample's problem (bounds scaled to it) was infeasible


def screens(d: int, k: int, sample_size: int, r: int) -> bool:
    """Whether a problem of D = ``d``, budget k and r bounds is screened from a subsample of
    ``sample_size`` (else solved exactly on every element)."""
    k_sample = int(round(k * sample_size / d))
    screened = d > 4 * sample_size or (r > 1 and sample_size > FINAL_LP_SIZE)
    return screened and _MIN_SAMPLE_BUDGET <= k_sample <= sample_size - _MIN_SAMPLE_BUDGET


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
    the reduced problem's lambda when that lies outside the box, with the same width the
    first time and four times wider after that (a box the estimate missed is missed by a
    little, and the reduced problem's lambda is then lambda* itself, up to the last screened
    element: uniform and lognormal scores at D = 2e6, k = D/20, D/100 and D/400, 40 seeds
    each, missed 12 times, by 1.01 to 1.61 half-widths, each with the reduced lambda equal
    to lambda* in 5 digits); widened
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

    def __init__(self, estimate: SampleEstimate, n_bounds: int, k_sample: int, within=None):
        self.centre, self.reference = estimate.multipliers, estimate.reference
        self.width = (3.0 if n_bounds == 1 else _SEVERAL_BOUNDS_WIDTH) / np.sqrt(k_sample)
        if within is not None and n_bounds:
            (lo, hi), m = within
            spans = (hi - lo) / np.where(self.centre > 0, self.centre, self.reference)
            self.width = min(self.width, _WITHIN_WIDTH * np.sqrt(k_sample) / m * float(spans.max()))
        self.widen = 4.0 if n_bounds == 1 else 2.0
        self.outside_rounds = 0
        self.misses = 0

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
        if self.misses:
            self.width *= 4.0
        self.misses += 1


def sample_estimate(problem, inner, sample, scores, rtol, bracket=None) -> SampleEstimate:
    """lambda* of the problem on a subsample (indices ``sample``, their ``scores``) with
    budget and bounds scaled to it.

    One bound: lambda* of the subsample is narrowed by regula falsi
    (:func:`copslp._analytic.one_bound.estimate_one_bound`) from a bracket around the estimate of a
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
            return SampleEstimate(np.array([approximate]), reference, False)
    bracket = guess = None
    part = sample.shape[0] // 16
    if round(problem.budget * part / d) >= _MIN_SAMPLE_BUDGET and (r == 1 or part >= FINAL_LP_SIZE):
        smaller = slice(0, 16 * part, 16)  # every 16th: a random subsample, sorted or not
        estimate = sample_estimate(problem, inner, sample[smaller], scores[:, smaller], rtol)
        guess = None if estimate.infeasible else estimate.multipliers
    if r == 1 and guess is not None:
        width = 3.0 / np.sqrt(problem.budget * part / d)
        bracket = (guess * (1 - width), guess * (1 + width), guess)
    try:
        if r == 1:
            approximate = None if bracket is None else estimate_one_bound(sampled, bracket)
            if approximate is None:
                _, lam, _ = solve_exact(sampled, rtol, bracket)
            else:
                lam = np.array([approximate])
        else:
            lam = _localised_sample_minimum(sampled, reference, rtol, guess)
    except ReducedProblemInfeasible:
        return SampleEstimate(np.zeros(r), reference, True)
    except SolverError:
        lam = np.zeros(r)
    return SampleEstimate(np.asarray(lam, dtype=np.float64), reference, False)


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
    """lambda* of the subsample's problem with several bounds, to a relative precision of
    ``_SEVERAL_BOUNDS_PRECISION / sqrt(k_sample)`` (a tenth of the first box's half-width
    :class:`BoxSchedule` puts around it; the exact lambda* of the subsample is no nearer the
    whole problem's), from boxes [0, 4^t 4 lambda_ref] (at least twice the ``guess`` of a
    smaller subsample, where the Newton steps start).

    A minimum beyond every box means that phi keeps decreasing as lambda grows: the bounds
    are (nearly) infeasible together, reported as such (:class:`ReducedProblemInfeasible`)."""
    start = reference if guess is None else guess
    hi = np.maximum(4.0 * reference, 2.0 * start)
    relative = _SEVERAL_BOUNDS_PRECISION / np.sqrt(sampled.budget)
    for _ in range(tries):
        try:
            box = Box(np.zeros_like(hi), hi, np.minimum(start, hi))
            return approximate_minimum(sampled, box, relative, 1e-3 * reference, rtol)[0]
        except MinimumOutsideBox as outside:
            hi = np.maximum(4.0 * hi, 2.0 * outside.multipliers)
            start = outside.multipliers
    raise ReducedProblemInfeasible()
