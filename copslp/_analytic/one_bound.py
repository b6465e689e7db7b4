r"""The exact finish for one bound (r = 1): a walk over the linear pieces of the dual.

:math:`\phi(\lambda) = T_k(s_0 + \lambda s_1) - \lambda b` is the upper envelope of the lines
:math:`L_X(\lambda) = \langle s_0, X\rangle + \lambda(\langle s_1, X\rangle - b)` of the
k-sets X. The walk keeps two ends, best sets whose slopes have opposite signs, evaluates
:math:`\phi` where their lines cross, and replaces the end whose slope has the sign of the new
line's, until no line lies higher there: that crossing is :math:`\lambda^*`. Once the bracket is
:data:`RESCREEN_SHRINK` times narrower than the box the elements were screened with, it is
screened again and the walk goes on among fewer elements. The bound is then made tight by
swapping entering for leaving elements, the last one partially (see the analytic module's
docstring for the details).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._errors import SolverError
from .._inner import InnerProblem, mix_to_bound, reaches, sum_reaches
from .screening import RESCREEN_MIN_SIZE, RESCREEN_SHRINK, ReducedProblemInfeasible, screen_exact

__all__ = ["solve_one_bound", "estimate_one_bound"]

_EPS = np.finfo(np.float64).eps
#: An update of a sum whose terms are this many times the result has lost a quarter of its digits.
_CANCELLED = 2.0 ** 13
_NEWTON_LIMIT = 500
#: :func:`estimate_one_bound` stops once its bracket is this fraction of the one it was given.
ESTIMATE_NARROWING = 1e-3
_ESTIMATE_LIMIT = 60


class _End(NamedTuple):
    """One end of the walk: a multiplier, a best set there (boolean mask) and its s_1 value."""

    lam: float
    members: np.ndarray
    value: float


def solve_one_bound(inner: InnerProblem, bracket=None):
    """The walk of the module docstring. ``bracket`` = (lo, hi, guess) is an interval that
    probably holds lambda* and a guess inside it; the walk starts from best sets there when
    they do bracket lambda*."""
    s0, s1 = inner.scores[0], inner.scores[1]
    b = float(inner.thresholds[0])
    if bracket is not None and bracket[0] > 0:
        ends = _bracketing_sets(inner, b, *bracket)
        if ends is not None:
            return _walk(inner, *ends, screened_width=bracket[1] - bracket[0])
    slack = float(inner.slack[0])
    chosen = inner.select_lexicographic(s0, s1)
    terms = s1.take(chosen)
    low = _End(0.0, inner.mask_of(chosen), float(terms.sum()))
    if sum_reaches(terms, b, slack):
        return low.members.astype(np.float64), np.zeros(1), {"newton_iterations": 0}
    chosen = inner.select_lexicographic(s1, s0)
    terms = s1.take(chosen)
    high = _End(np.inf, inner.mask_of(chosen), float(terms.sum()))
    if not sum_reaches(terms, b, slack):
        raise ReducedProblemInfeasible()
    return _walk(inner, low, high)


def estimate_one_bound(inner: InnerProblem, bracket) -> float | None:
    r"""lambda* of the one-bound problem ``inner`` (no floors) approximately, for a
    subsample's estimate: the middle of a bracket of it narrowed to :data:`ESTIMATE_NARROWING`
    of ``bracket`` = (lo, hi, guess) (the guess is not used), or less narrowed where a step
    lands where g meets b exactly or after :data:`_ESTIMATE_LIMIT` steps; ``None`` when
    [lo, hi] does not bracket it (lo = 0 included) and with floors.

    :math:`g(\lambda) = \langle s_1, X(\lambda)\rangle`, with :math:`X(\lambda)` a best set of
    :math:`v = s_0 + \lambda s_1`, is non-decreasing, and :math:`\lambda^*` is where it crosses
    the bound b (the slopes of :math:`\phi` change sign there). Regula falsi (the Illinois
    rule) on :math:`g - b` finds it in a few selections, without the bookkeeping of the exact
    walk: a subsample's :math:`\lambda^*` is itself an estimate, whose error (about
    ``1 / sqrt(k_m)`` relative, a twelfth of the bracket a sixteenth of the subsample gives)
    dwarfs the narrowing."""
    s0, s1 = inner.scores[0], inner.scores[1]
    b = float(inner.thresholds[0])
    low, high = (float(np.asarray(end).reshape(-1)[0]) for end in bracket[:2])
    if not low > 0 or inner.floors is not None:
        return None

    def excess(lam):
        return float(s1.take(inner.select(s0 + lam * s1)).sum()) - b

    f_low, f_high = excess(low), excess(high)
    if not f_low < 0 <= f_high:
        return None
    stop = ESTIMATE_NARROWING * (high - low)
    kept = 0  # which end the last step kept: -1 low, +1 high
    for _ in range(_ESTIMATE_LIMIT):
        if high - low <= stop or f_high == 0:
            break
        lam = (low * f_high - high * f_low) / (f_high - f_low)
        if not low < lam < high:
            break
        f = excess(lam)
        if f >= 0:
            high, f_high = lam, f
            if kept == -1:
                f_low /= 2
            kept = -1
        else:
            low, f_low = lam, f
            if kept == +1:
                f_high /= 2
            kept = +1
    return (low + high) / 2


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
        return _End(lam, inner.mask_of(chosen), float(s1.take(chosen).sum()))

    step = (hi - lo) / 8
    if lo < guess - step and guess + step < hi:
        left = best(guess - step)
        if left.value >= b:
            low, high = best(lo), left
        else:
            right = best(guess + step)
            low, high = left, (right if right.value >= b else None)
            if high is None:
                low, high = right, best(hi)
    else:
        low, high = best(lo), best(hi)
    if not low.value < b <= high.value:
        return None
    return low, high


def _walk(inner: InnerProblem, low_end: _End, high_end: _End, screened_width=None):
    """The walk from two ends: ``low_end``, whose s_1 value is below the bound, and
    ``high_end``, which meets it.

    Once the bracket [lam_low, lam_high] is ``RESCREEN_SHRINK`` times narrower than when
    the problem was last screened (``screened_width``), the elements it decides are fixed
    (:func:`screen_exact` on the bracket) and the walk goes on among the others: the later
    selections cost a fraction of the first ones.
    """
    s0, s1 = inner.scores[0], inner.scores[1]
    (lam_low, low, g_low), (lam_high, high, g_high) = low_end, high_end
    b = min(float(inner.thresholds[0]), g_high)
    for iteration in range(1, _NEWTON_LIMIT + 1):
        width = lam_high - lam_low
        if screened_width is None:
            screened_width = width if np.isfinite(width) else None
        elif inner.size >= RESCREEN_MIN_SIZE and width * RESCREEN_SHRINK <= screened_width:
            return _rescreened_walk(inner, _End(lam_low, low, g_low), _End(lam_high, high, g_high), iteration - 1)
        # The two lines cross where sum_{high \ low} v = sum_{low \ high} v: differences are
        # taken element by element over the few elements that differ, never of large sums.
        entering, leaving = high & ~low, low & ~high
        if not (entering.any() or leaving.any()):
            # one set at both ends, its two s_1 sums apart by round-off only: it is best all
            # through the bracket and meets the bound, so phi is flat there (g = b)
            return high.astype(np.float64), np.array([lam_high]), {"newton_iterations": iteration - 1}
        lam = (s0[leaving].sum() - s0[entering].sum()) / (s1[entering].sum() - s1[leaving].sum())
        v = s0 + lam * s1
        chosen = inner.mask_of(inner.select(v))
        up, down = chosen & ~low, low & ~chosen
        rise = v[up].sum() - v[down].sum()  # how far chosen's line lies above low's at lam
        magnitude = np.abs(s0[up]).sum() + np.abs(s0[down]).sum() + lam * (np.abs(s1[up]).sum() + np.abs(s1[down]).sum())
        if rise <= 64 * _EPS * magnitude:
            break
        g = _updated_sum(s1, chosen, g_low, up, down)
        if g >= b:
            high, g_high, lam_high = chosen, g, lam
        else:
            low, g_low, lam_low = chosen, g, lam
    else:
        raise SolverError(f"analytic: the walk over the pieces of phi did not settle in {_NEWTON_LIMIT} steps")
    x = _tight_mix(inner, low, high, g_low, b)
    return x, np.array([lam]), {"newton_iterations": iteration}


def _updated_sum(s1: np.ndarray, chosen: np.ndarray, g_low: float, up: np.ndarray, down: np.ndarray) -> float:
    """<s_1, chosen> from <s_1, low> = ``g_low`` and the elements that differ (``up`` entered,
    ``down`` left), or summed anew where that update cancels more than a quarter of the
    digits: beside a leaving entry of -1e12 an entering -1e-5 is below the ulp of the terms
    (1.2e-4), and a set 1e-5 short of its bound would be taken for one that meets it."""
    entered, left = s1[up], s1[down]
    g = g_low + (float(entered.sum()) - float(left.sum()))
    terms = abs(g_low) + float(np.abs(entered).sum()) + float(np.abs(left).sum())
    if terms > _CANCELLED * abs(g):
        return float(s1[chosen].sum())
    return g


def _rescreened_walk(inner, low_end, high_end, iterations):
    """Fix what the bracket decides and walk on among the rest (see :func:`_walk`).

    An element fixed by the screening is in every best set (or in none) for every lambda in
    the bracket, so the ends' sets restricted to the survivors are best sets of the reduced
    problem at the same lambdas, and the walk stays inside the bracket.
    """
    lam_low, lam_high = low_end.lam, high_end.lam
    reduced, ones, survivors, *_ = screen_exact(inner, np.array([lam_low]), np.array([lam_high]))
    s1 = reduced.scores[1]

    def restricted(end):
        chosen = end.members[survivors]
        return _End(end.lam, chosen, float(np.einsum("j,j->", s1, chosen)))  # a dense mask gathers slowly; no BLAS

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
    entries). The last pair is found by running sums, then checked on the point itself: a pair
    that falls short whole (the running sums lost its gain beside a huge entry) is swapped
    whole and the next one taken. With floors a swap could break a floor midway, so x is the
    convex combination of the two sets (fractional on their symmetric difference, usually one
    pair as well).
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
    x[entering[:p]] = 1.0
    x[leaving[:p]] = 0.0
    while True:
        e, l = entering[p], leaving[p]
        x[e] = x[l] = 0.0
        # s1_e t + s1_l (1 - t) = b - (the rest): each weight from its own difference, so that
        # neither is 1 minus a number close to 1 (no cancellation against a large g_low)
        rest = b - float(np.einsum("j,j->", s1, x))
        gain = s1[e] - s1[l]
        if s1[e] < rest - 1e-12 * max(abs(b), abs(rest)) and p + 1 < gains.shape[0]:
            # the whole pair falls short: the running sums chose it too early (beside an entry
            # of -1e12, a gain of 1e-5 is below their ulp): swap it and go on to the next
            x[e], x[l] = 1.0, 0.0
            p += 1
            continue
        if gain > 0:
            x[e] = min(max((rest - s1[l]) / gain, 0.0), 1.0)
            x[l] = min(max((s1[e] - rest) / gain, 0.0), 1.0)
        else:
            x[e] = 1.0
        return x
