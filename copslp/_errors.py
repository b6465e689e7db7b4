"""The small error hierarchy of copslp.

Caller mistakes stay ``ValueError`` / ``TypeError``; an infeasible problem is an
:class:`InfeasibleError` (a ``ValueError``: the request cannot be met); a backend that fails
or returns an answer that does not pass the optimality certificate is a :class:`SolverError`.
"""

from __future__ import annotations

__all__ = ["InfeasibleError", "SolverError", "CopsWarning"]


class InfeasibleError(ValueError):
    """No mask (and no fractional LP point) meets the bounds.

    Attributes
    ----------
    score_index : int or None
        Row of ``scores`` whose bound cannot be met (1-based among all rows, i.e. the index
        into ``scores``), or ``None`` when only the bounds taken together are infeasible.
    threshold : float or None
        The bound that was asked for.
    best_reachable : float or None
        The largest value ``<s_i, x>`` can reach under the budget (and floors).
    """

    def __init__(self, message, *, score_index=None, threshold=None, best_reachable=None):
        super().__init__(message)
        self.score_index = score_index
        self.threshold = threshold
        self.best_reachable = best_reachable

    def __reduce__(self):  # keep the attributes when sent between processes
        return _rebuild_infeasible, (str(self), self.score_index, self.threshold, self.best_reachable)


def _rebuild_infeasible(message, score_index, threshold, best_reachable):
    return InfeasibleError(message, score_index=score_index, threshold=threshold, best_reachable=best_reachable)


class SolverError(RuntimeError):
    """A method failed, or its answer failed the optimality certificate."""


class CopsWarning(UserWarning):
    """Something the caller should know: an ignored option, a bound the mask misses, ..."""
