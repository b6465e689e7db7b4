"""Validation of the caller's input into one frozen :class:`Problem` record.

Everything a method may rely on is checked here, once: float64 scores of shape (n, D), all
finite; an integer budget 1 <= k <= D; one absolute threshold per secondary score (``-inf``
for a switched-off bound); optional groups and floors that are feasible on their own.
Methods trust this record and never re-validate it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._selection import group_order, group_starts, top_k_sum

__all__ = ["Problem", "make_problem", "DEFAULT_GAMMA"]

#: Relative bound used for every secondary score when neither ``gamma`` nor ``bounds`` is given.
DEFAULT_GAMMA = 0.9


@dataclass(frozen=True, eq=False)
class Problem:
    r"""A validated COPS instance.

    .. math::

        \max_x \; \langle s_0, x\rangle \quad\text{s.t.}\quad \textstyle\sum_j x_j = k,\;
        \langle s_i, x\rangle \ge b_i \;(i = 1..r),\;
        \textstyle\sum_{j \in G_l} x_j \ge f_l,\; 0 \le x \le 1.

    Attributes
    ----------
    scores : ndarray, shape (n, D), float64, read-only
        Row 0 is the primary score ``s_0``; rows 1..n-1 are the secondary scores.
    budget : int
        ``k``, the number of elements kept.
    thresholds : ndarray, shape (n - 1,)
        ``b_i`` for each secondary score; ``-inf`` where the bound is switched off
        (``gamma_i = 0``).
    gamma : ndarray of shape (n - 1,) or None
        The relative bounds, when the thresholds were given that way.
    best_reachable : ndarray, shape (n - 1,)
        ``M_i = T_k(s_i)``, the largest value of ``<s_i, m>`` over k-masks, ignoring floors.
    groups : ndarray of shape (D,) or None
        Group index (0..G-1) of each element.
    floors : ndarray of shape (G,) or None
        Minimum number kept in each group.
    group_sizes : ndarray of shape (G,) or None
        Number of elements in each group.
    """

    scores: np.ndarray
    budget: int
    thresholds: np.ndarray
    gamma: np.ndarray | None
    best_reachable: np.ndarray
    groups: np.ndarray | None = None
    floors: np.ndarray | None = None
    group_sizes: np.ndarray | None = None

    @property
    def n_scores(self) -> int:
        return self.scores.shape[0]

    @property
    def size(self) -> int:
        """D, the number of elements."""
        return self.scores.shape[1]

    @property
    def primary(self) -> np.ndarray:
        return self.scores[0]

    @cached_property
    def active(self) -> np.ndarray:
        """Indices (into the secondary rows, 0-based) of the bounds that are switched on."""
        return np.flatnonzero(np.isfinite(self.thresholds))

    @property
    def has_floors(self) -> bool:
        return self.floors is not None

    @cached_property
    def group_order(self) -> np.ndarray | None:
        """A permutation that makes ``groups`` non-decreasing, or ``None`` if it already is."""
        return group_order(self.groups)

    @cached_property
    def group_starts(self) -> np.ndarray:
        """Offsets of each group in group order (length G + 1)."""
        return group_starts(self.group_sizes)


def make_problem(scores, budget, *, gamma=None, bounds=None, groups=None, floors=None) -> Problem:
    """Validate the arguments of :func:`copslp.solve` into a :class:`Problem`."""
    scores = _as_score_matrix(scores)
    n, size = scores.shape
    k = _as_budget(budget, size)
    n_secondary = n - 1

    if gamma is not None and bounds is not None:
        raise ValueError("give either gamma (relative bounds) or bounds (absolute), not both")
    best = np.array([top_k_sum(scores[i], k) for i in range(1, n)], dtype=np.float64)
    if bounds is not None:
        thresholds = _as_vector("bounds", bounds, n_secondary)
        if np.isnan(thresholds).any() or np.isposinf(thresholds).any():
            raise ValueError(f"bounds must be finite or -inf (switched off), got {thresholds.tolist()}")
        gamma_vec = None
    elif gamma is None and n_secondary == 0:
        thresholds, gamma_vec = np.empty(0), None
    else:
        if gamma is None:
            gamma = DEFAULT_GAMMA
        gamma_vec = _as_vector("gamma", gamma, n_secondary)
        bad = np.flatnonzero(~((gamma_vec >= 0) & (gamma_vec <= 1)))
        if bad.size:
            raise ValueError(f"gamma must lie in [0, 1], got gamma[{bad[0]}] = {float(gamma_vec[bad[0]])!r}")
        thresholds = np.where(gamma_vec > 0, gamma_vec * best, -np.inf)
        for i in np.flatnonzero((gamma_vec > 0) & (best <= 0)):
            raise ValueError(
                f"a relative bound needs a positive best value, but the sum of the {k} largest "
                f"entries of scores[{i + 1}] is {float(best[i])!r}; give an absolute bound with bounds=..."
            )

    groups_vec, floors_vec, sizes = _as_groups_and_floors(groups, floors, size, k)
    scores.setflags(write=False)
    return Problem(scores, k, thresholds, gamma_vec, best, groups_vec, floors_vec, sizes)


def _as_score_matrix(scores) -> np.ndarray:
    if isinstance(scores, np.ndarray):
        arr = scores
    elif isinstance(scores, (list, tuple)):
        if len(scores) == 0:
            raise ValueError("scores is empty: give at least one score vector")
        rows = [np.asarray(s) for s in scores]
        if all(row.ndim == 0 for row in rows):  # a flat list of numbers is one score vector
            rows = [np.asarray(scores)]
        for i, row in enumerate(rows):
            _check_dtype(f"scores[{i}]", row)
            if row.ndim != 1:
                raise ValueError(f"scores[{i}] must be 1-D, got shape {row.shape}")
        lengths = {row.shape[0] for row in rows}
        if len(lengths) > 1:
            raise ValueError(
                f"all score vectors must have the same length, got lengths {[r.shape[0] for r in rows]}"
            )
        arr = np.stack([r.astype(np.float64, copy=False) for r in rows])
    else:
        hint = type(scores).__name__
        if hasattr(scores, "detach") and hasattr(scores, "cpu"):
            hint += " (convert torch tensors with .detach().cpu().numpy(), or use torch_adapter)"
        raise TypeError(f"scores must be a numpy array or a sequence of 1-D arrays, got {hint}")
    _check_dtype("scores", arr)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, D) or a sequence of 1-D arrays, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"scores must have at least one row and one column, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr is scores:
        arr = arr.view()  # our read-only flag must not touch the caller's array
    with np.errstate(over="ignore", invalid="ignore"):
        row_sums = arr.sum(axis=1)
    if not np.isfinite(row_sums).all():
        for i in range(arr.shape[0]):
            bad = np.flatnonzero(~np.isfinite(arr[i]))
            if bad.size:
                raise ValueError(
                    f"scores[{i}] has {bad.size} non-finite entries "
                    f"(first at index {bad[0]}: {float(arr[i, bad[0]])!r})"
                )
        raise ValueError("scores are so large that their sums overflow float64; rescale them")
    return arr


def _check_dtype(name, arr):
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers (float32, float64 or integers), got dtype {arr.dtype}")


def _as_budget(budget, size: int) -> int:
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, numbers.Real):
        raise TypeError(f"budget must be an int k or a float fraction in (0, 1], got {budget!r}")
    if isinstance(budget, numbers.Integral):
        k = int(budget)
        if not 1 <= k <= size:
            raise ValueError(f"budget must satisfy 1 <= k <= D = {size}, got k = {k}")
        return k
    fraction = float(budget)
    if not 0 < fraction <= 1:
        raise ValueError(f"a float budget is the kept fraction and must lie in (0, 1], got {budget!r}")
    return max(1, int(round(fraction * size)))


def _as_vector(name: str, value, length: int) -> np.ndarray:
    if length == 0:
        raise ValueError(f"{name} was given but there are no secondary scores (scores has one row)")
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be a number or one number per secondary score, got {value!r}")
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be a number or one number per secondary score, got {value!r}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.shape != (length,):
        raise ValueError(f"{name} needs one value per secondary score ({length}), got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN: {arr.tolist()}")
    return arr


def _as_groups_and_floors(groups, floors, size: int, k: int):
    if groups is None and floors is None:
        return None, None, None
    if groups is None:
        raise ValueError("floors were given without groups: pass groups=... (a group index per element)")
    if floors is None:
        raise ValueError("groups were given without floors: pass floors=... (an int or one per group)")
    g = np.asarray(groups)
    if g.dtype == np.bool_ or not np.issubdtype(g.dtype, np.integer):
        raise TypeError(f"groups must be an integer array (a group index per element), got dtype {g.dtype}")
    if g.shape != (size,):
        raise ValueError(f"groups must have shape (D,) = ({size},), got {g.shape}")
    if g.dtype.itemsize > np.dtype(np.intp).itemsize or g.dtype == np.uint64:
        g = g.astype(np.intp)
    g = np.ascontiguousarray(g)  # any integer dtype indexes; no widening copy of int32 layers
    if g is groups:
        g = g.view()  # the read-only flag below must not touch the caller's array
    try:
        sizes = np.bincount(g)  # also finds the largest index
    except ValueError:
        raise ValueError(f"groups must be non-negative group indices, got minimum {int(g.min())}") from None
    n_groups = sizes.shape[0]
    if isinstance(floors, (bool, np.bool_)) or isinstance(floors, (str, bytes)):
        raise TypeError(f"floors must be an int or one int per group, got {floors!r}")
    f = np.asarray(floors)
    if f.dtype == np.bool_ or not np.issubdtype(f.dtype, np.integer):
        raise TypeError(f"floors must be an int or one int per group, got {floors!r}")
    if f.ndim == 0:
        f = np.full(n_groups, int(f), dtype=np.int64)
    if f.shape[0] < n_groups or f.ndim != 1:
        raise ValueError(f"floors needs one entry per group ({n_groups}), got shape {f.shape}")
    f = f.astype(np.int64)
    if (f < 0).any():
        i = int(np.flatnonzero(f < 0)[0])
        raise ValueError(f"floors must be >= 0, got floors[{i}] = {int(f[i])}")
    sizes = np.concatenate([sizes, np.zeros(f.shape[0] - n_groups, dtype=sizes.dtype)])
    over = np.flatnonzero(f > sizes)
    if over.size:
        i = int(over[0])
        raise ValueError(f"floors[{i}] = {int(f[i])} exceeds the size of group {i} ({int(sizes[i])} elements)")
    if int(f.sum()) > k:
        raise ValueError(f"floors sum to {int(f.sum())}, more than the budget k = {k}")
    g.setflags(write=False)
    f.setflags(write=False)
    return g, f, sizes
