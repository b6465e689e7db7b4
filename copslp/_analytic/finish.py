r"""The exact LP on a (small) problem: the finish on the survivors of a box, or on every
element of a problem solved without one (docs/maths.md §4).

One bound: the walk over the pieces of phi (:mod:`copslp._analytic.one_bound`). Several:
the simplex on the distinct columns (:mod:`copslp._analytic.simplex`) when they are few,
else the localisation of :mod:`copslp._analytic.several_bounds` first, in the box of the
screening or, without one, in boxes from 0 that widen (:func:`localise_everywhere`).
"""

from __future__ import annotations

import numpy as np

from .._inner import InnerProblem
from .one_bound import solve_one_bound
from .screening import MinimumOutsideBox, ReducedProblemInfeasible
from .several_bounds import Box, few_enough, newton_start, several_bounds_finish
from .simplex import solve_small_lp

__all__ = ["solve_exact", "localise_everywhere", "natural_scale"]

#: Boxes [0, hi] tried by :func:`localise_everywhere`, each 16 times wider than the last.
_WIDENINGS = 6
#: Survivors beyond which the simplex starts from Newton steps in the box
#: (:func:`copslp._analytic.several_bounds.newton_start`), not from its centre.
_NEWTON_START_ABOVE = 256


def localise_everywhere(inner: InnerProblem, rtol: float, centre=None):
    """The several-bounds finish (:func:`several_bounds_finish`) on every element of
    ``inner``, with no estimate to start from: boxes [0, hi] from ``hi = 4 lambda_ref``
    (lambda_ref = mean |s_0| / mean |s_i|, the scale at which s_i weighs as much as s_0),
    widened sixteenfold while the minimum lies on their outer face (or a re-screening inside
    one left an infeasible problem, so that box did not hold lambda*). Each oracle call is one
    selection over the elements, each re-screening one pass. A minimum beyond every box (a
    bound at the best value its score reaches, lambda* unbounded) is left to the simplex on
    the distinct columns (:func:`copslp._analytic.simplex.solve_small_lp`), which needs no box."""
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
    weighs as much as s_0 (1 where either mean is 0); the means over at most 65,536 evenly
    spaced columns (a scale, not a value any answer depends on)."""
    magnitude = np.abs(scores[:, ::max(1, scores.shape[1] // 65536)]).mean(axis=1)
    reference = np.where(magnitude[1:] > 0, magnitude[0] / np.maximum(magnitude[1:], 1e-300), 1.0)
    return np.where(reference > 0, reference, 1.0)


def solve_exact(inner: InnerProblem, rtol: float, bracket=None):
    """x, lambda (active bounds only) and details of the LP on ``inner``, exactly.

    ``bracket`` = (lo, hi, centre), arrays of one value per bound: where lambda* is expected,
    and the best guess of it. One bound: the walk; several: the simplex of
    :func:`copslp._analytic.simplex.solve_small_lp` at once on at most ``FINAL_LP_SIZE`` elements
    (from a few Newton steps in the bracket, :func:`newton_start`, beyond 256 of them),
    else the localisation of :func:`several_bounds_finish` in the bracket (without one, in
    boxes from 0 that widen, :func:`localise_everywhere`) first."""
    if inner.budget == 0:
        taken = np.zeros(inner.thresholds.shape[0])
        if np.any(taken < inner.thresholds):
            raise ReducedProblemInfeasible()
        return np.zeros(inner.size), np.zeros(inner.thresholds.shape[0]), {}
    if inner.thresholds.shape[0] == 1:
        return solve_one_bound(inner, None if bracket is None else tuple(float(end[0]) for end in bracket))
    if few_enough(inner):
        start, calls = (None if bracket is None else bracket[2]), 0
        if bracket is not None and inner.size > _NEWTON_START_ABOVE:
            start, calls = newton_start(inner, Box(*bracket))
        x, lam, details = solve_small_lp(inner, start)
        details.update(oracle_calls=calls, final_lp_size=inner.size)
        return x, lam, details
    if bracket is None:
        return localise_everywhere(inner, rtol)
    return several_bounds_finish(inner, Box(*bracket), rtol)
