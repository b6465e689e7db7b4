"""The small error hierarchy of copslp.

Caller mistakes stay ``ValueError`` / ``TypeError``; an infeasible problem is an
:class:`InfeasibleError` (a ``ValueError``: the request cannot be met); a backend that fails
or returns an answer that does not pass the optimality certificate is a :class:`SolverError`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["InfeasibleError", "SolverError", "CopsWarning", "quiet_arithmetic"]


def quiet_arithmetic() -> np.errstate:
    """numpy's floating-point warnings off inside a method: on extreme inputs (entries near
    1e300 or 1e-310) its intermediate numbers may overflow, and what that means reaches the
    caller as an exception naming the cause or as a certificate that does not pass, never as
    a RuntimeWarning from inside the method."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


class InfeasibleError(ValueError):
    """No mask (and no fractional LP point) meets the bounds.

    Attributes
    ----------
    score_index : int or None
        Row of ``scores`` whose bound cannot be met (1-based among all rows, i.e. the index
        into ``scores``), or ``None`` when only the bounds taken together are infeasible.
    threshold : float or None
        The bound that was asked for (bounds that conflict together: that of the first row
        of ``conflicting_scores``).
    best_reachable : float or None
        The largest value ``<s_i, x>`` can reach under the budget (and floors); bounds that
        conflict together: the largest value of the first row of ``conflicting_scores``
        while the other bounds of that tuple hold.
    conflicting_scores : tuple of int or None
        Rows of ``scores`` whose bounds cannot hold together (one row for a single bound),
        when the method that raised knows them.
    farkas_multipliers : ndarray or None
        A ray ``lambda >= 0`` (one entry per row of ``conflicting_scores``) that proves it:
        ``T_k^P(sum_i lambda_i s_i) < sum_i lambda_i b_i``, with ``T_k^P`` the best value of
        ``<v, x>`` over the points within the budget (and floors); see docs/maths.md §3.
    """

    def __init__(self, message, *, score_index=None, threshold=None, best_reachable=None,
                 conflicting_scores=None, farkas_multipliers=None):
        super().__init__(message)
        self.score_index = score_index
        self.threshold = threshold
        self.best_reachable = best_reachable
        self.conflicting_scores = conflicting_scores
        self.farkas_multipliers = farkas_multipliers

    def __reduce__(self):  # keep the attributes when sent between processes
        return _rebuild_infeasible, (str(self), self.__dict__)


def _rebuild_infeasible(message, attributes):
    error = InfeasibleError(message)
    error.__dict__.update(attributes)
    return error


class SolverError(RuntimeError):
    """A method failed, or its answer failed the optimality certificate."""


class CopsWarning(UserWarning):
    """Something the caller should know: a bound the rounded mask misses, ..."""
