"""Validation of the caller's input into one frozen :class:`Problem` record.

Everything a method may rely on is checked here, once: scores of shape (n, D), all finite,
float32 or float64 (float32 input is kept as it is, without a float64 copy; every other real
dtype becomes float64); an integer budget 1 <= k <= D; one absolute threshold per secondary score (``-inf``
for a switched-off bound); optional groups and floors that are feasible on their own.
Methods trust this record and never re-validate it.

Validation takes two steps: :func:`prepare_problem` checks everything that needs no pass over
the scores; :meth:`PreparedProblem.complete` adds what does (every entry finite, the best
values ``T_k(s_i)`` that relative bounds scale), from its own pass or from the first pass of a
method that reads the scores anyway (the analytic method with one bound:
:func:`copslp._analytic.driver.first_pass`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._blocks import blocks
from ._selection import group_order, group_starts, is_non_decreasing, top_k_sum_and_total

__all__ = ["Problem", "PreparedProblem", "Outline", "make_problem", "prepare_problem", "DEFAULT_GAMMA"]

#: Relative bound used for every secondary score when neither ``gamma`` nor ``bounds`` is given.
DEFAULT_GAMMA = 0.9


class _BoundsAndFloors:
    """What :class:`Problem` and :class:`Outline` derive alike from ``thresholds`` and ``floors``."""

    @cached_property
    def active(self) -> np.ndarray:
        """Indices (into the secondary rows, 0-based) of the bounds that are switched on."""
        return np.flatnonzero(np.isfinite(self.thresholds))

    @property
    def has_floors(self) -> bool:
        return self.floors is not None


@dataclass(frozen=True, eq=False)
class Problem(_BoundsAndFloors):
    r"""A validated COPS instance.

    .. math::

        \max_x \; \langle s_0, x\rangle \quad\text{s.t.}\quad \textstyle\sum_j x_j = k,\;
        \langle s_i, x\rangle \ge b_i \;(i = 1..r),\;
        \textstyle\sum_{j \in G_l} x_j \ge f_l,\; 0 \le x \le 1.

    Attributes
    ----------
    scores : ndarray, shape (n, D), float32 or float64, read-only
        Row 0 is the primary score ``s_0``; rows 1..n-1 are the secondary scores. float32
        input stays float32 (the entries are exact float32 numbers); every sum, threshold and
        finish on them is computed in float64 (:meth:`scores_float64` for the methods that
        hand the whole matrix to a generic solver).
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

    def scores_float64(self) -> np.ndarray:
        """``scores`` as float64: the array itself when it is float64, else a converted copy
        (for the methods that hand the whole matrix to a generic solver, an O(D) copy
        beside their own O(D) model)."""
        return self.scores if self.scores.dtype == np.float64 else self.scores.astype(np.float64)

    @cached_property
    def group_order(self) -> np.ndarray | None:
        """A permutation that makes ``groups`` non-decreasing, or ``None`` if it already is."""
        return group_order(self.groups)

    @cached_property
    def group_starts(self) -> np.ndarray:
        """Offsets of each group in group order (length G + 1)."""
        return group_starts(self.group_sizes)


@dataclass(frozen=True, eq=False)
class Outline(_BoundsAndFloors):
    """A problem without its scores: what the shared pieces of the analytic method read of
    it (sizes, budget, bounds, best values, floors), for a problem whose scores are not one
    in-memory matrix: sharded ones, or the survivors of a box solved a level down. Duck-types
    :class:`Problem` for them."""

    size: int
    n_scores: int
    budget: int
    thresholds: np.ndarray
    best_reachable: np.ndarray
    floors: np.ndarray | None = None
    group_sizes: np.ndarray | None = None

    @property
    def _group_layout(self):
        return None, group_starts(self.group_sizes)


def make_problem(scores, budget, *, gamma=None, bounds=None, groups=None, floors=None) -> Problem:
    """Validate the arguments of :func:`copslp.solve` into a :class:`Problem`."""
    return prepare_problem(scores, budget, gamma=gamma, bounds=bounds, groups=groups, floors=floors).complete()


@dataclass(frozen=True, eq=False)
class PreparedProblem:
    """The arguments of :func:`copslp.solve` checked in everything but what takes a pass over
    the scores: that every entry is finite, and the best values ``T_k(s_i)`` that relative
    bounds scale (:meth:`complete` adds them). A method that reads the scores anyway may
    make that pass part of its own first one (:func:`copslp._analytic.driver.first_pass`)."""

    scores: np.ndarray
    budget: int
    gamma: np.ndarray | None  # relative bounds, checked (None: absolute ones, or no secondary score)
    bounds: np.ndarray | None  # absolute bounds, checked
    groups: np.ndarray | None
    floors: np.ndarray | None
    group_sizes: np.ndarray | None
    contiguous: bool

    def complete(self, best: np.ndarray | None = None, totals: np.ndarray | None = None) -> Problem:
        """The :class:`Problem`. ``best`` (``T_k`` of every secondary row, float64) and
        ``totals`` (sums that are finite only if every entry is: here the sum of every row in
        its dtype) come from the caller's pass when it made one; else they are computed here,
        one pass per row. Raises ValueError for non-finite entries, sums that overflow, and a
        relative bound on a score whose best value is not positive."""
        if best is None:
            best, totals = best_and_totals(self.scores, self.budget)
        check_finite(self.scores, totals, best)
        thresholds, gamma_vec = thresholds_of(self.gamma, self.bounds, best, self.budget)
        problem = Problem(self.scores, self.budget, thresholds, gamma_vec, best, self.groups, self.floors,
                          self.group_sizes)
        if self.contiguous:
            problem.__dict__["group_order"] = None  # the cached property, known from validation
        return problem


def prepare_problem(scores, budget, *, gamma=None, bounds=None, groups=None, floors=None) -> PreparedProblem:
    """Check the arguments of :func:`copslp.solve` up to the pass over the scores
    (:class:`PreparedProblem`)."""
    scores = _as_score_matrix(scores)
    n, size = scores.shape
    k = _as_budget(budget, size)
    gamma_vec, bounds_vec = bound_arguments(gamma, bounds, n - 1)
    groups_vec, floors_vec, sizes, contiguous = _as_groups_and_floors(groups, floors, size, k)
    scores.setflags(write=False)
    return PreparedProblem(scores, k, gamma_vec, bounds_vec, groups_vec, floors_vec, sizes, contiguous)


def thresholds_from(gamma, bounds, best: np.ndarray, k: int):
    """``(thresholds, gamma)`` from the caller's ``gamma`` or ``bounds`` and the best values
    ``best[i] = T_k(s_{i+1})``: ``b_i = gamma_i T_k(s_i)`` (``-inf`` where gamma_i = 0), or the
    absolute bounds as given (gamma None). Neither given: gamma = :data:`DEFAULT_GAMMA`."""
    return thresholds_of(*bound_arguments(gamma, bounds, best.shape[0]), best, k)


def bound_arguments(gamma, bounds, n_secondary: int):
    """``(gamma, bounds)`` checked: one of them a float vector of one entry per secondary
    score, the other None (both None without secondary scores). Neither given: gamma =
    :data:`DEFAULT_GAMMA`."""
    if gamma is not None and bounds is not None:
        raise ValueError("give either gamma (relative bounds) or bounds (absolute), not both")
    if bounds is not None:
        thresholds = _as_vector("bounds", bounds, n_secondary)
        if np.isnan(thresholds).any() or np.isposinf(thresholds).any():
            raise ValueError(f"bounds must be finite or -inf (switched off), got {thresholds.tolist()}")
        return None, thresholds
    if gamma is None and n_secondary == 0:
        return None, None
    if gamma is None:
        gamma = DEFAULT_GAMMA
    gamma_vec = _as_vector("gamma", gamma, n_secondary)
    bad = np.flatnonzero(~((gamma_vec >= 0) & (gamma_vec <= 1)))
    if bad.size:
        raise ValueError(f"gamma must lie in [0, 1], got gamma[{bad[0]}] = {float(gamma_vec[bad[0]])!r}")
    return gamma_vec, None


def thresholds_of(gamma: np.ndarray | None, bounds: np.ndarray | None, best: np.ndarray, k: int):
    """``(thresholds, gamma)`` from checked :func:`bound_arguments` and the best values."""
    if bounds is not None:
        return bounds, None
    if gamma is None:
        return np.empty(0), None
    for i in np.flatnonzero((gamma > 0) & (best <= 0)):
        raise ValueError(
            f"a relative bound needs a positive best value, but the sum of the {k} largest "
            f"entries of scores[{i + 1}] is {float(best[i])!r}; give an absolute bound with bounds=..."
        )
    return np.where(gamma > 0, gamma * best, -np.inf), gamma


def _as_score_matrix(scores) -> np.ndarray:
    refuse_foreign_array("scores", scores)
    if isinstance(scores, np.ndarray):
        arr = scores
    elif isinstance(scores, (list, tuple)):
        if len(scores) == 0:
            raise ValueError("scores is empty: give at least one score vector")
        for i, row in enumerate(scores):
            refuse_foreign_array(f"scores[{i}]", row)
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
        arr = _rows_of_one_matrix(rows)  # no stacking copy; converted (once) below if it must be
        if arr is None:  # stacked: one copy per row, in float32 only if every row is float32
            arr = np.empty((len(rows), rows[0].shape[0]), dtype=_common_score_dtype(row.dtype for row in rows))
            for row, target in zip(rows, arr):
                target[...] = row
    else:
        raise TypeError(f"scores must be a numpy array or a sequence of 1-D arrays, got {type(scores).__name__}")
    _check_dtype("scores", arr)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, D) or a sequence of 1-D arrays, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"scores must have at least one row and one column, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=_common_score_dtype([arr.dtype]))
    if arr is scores:
        arr = arr.view()  # our read-only flag must not touch the caller's array
    return arr


def _rows_of_one_matrix(rows: list) -> np.ndarray | None:
    """``rows`` as one (n, D) array without a copy, where they are the consecutive rows of one
    C-contiguous matrix (``list(matrix)``, ``[matrix[0], matrix[1]]``, one array alone): a view
    of that matrix; else None. Rows merely adjacent in memory are not taken for one matrix:
    they must be views of the same array, inside its buffer."""
    first = rows[0]
    if len(rows) == 1:
        return first[np.newaxis, :]
    base, dtype, size = first.base, first.dtype, first.shape[0]
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    if any(row.base is not base or row.dtype != dtype or not row.flags.c_contiguous for row in rows):
        return None
    start = first.__array_interface__["data"][0]
    step = size * dtype.itemsize
    if any(row.__array_interface__["data"][0] != start + i * step for i, row in enumerate(rows)):
        return None
    inside = base.__array_interface__["data"][0]
    if not (inside <= start and start + len(rows) * step <= inside + base.nbytes):
        return None
    return np.lib.stride_tricks.as_strided(first, shape=(len(rows), size), strides=(step, dtype.itemsize))


def best_and_totals(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(best, totals)``: ``T_k(s_i)`` of each secondary score (float64) and the sum of every
    row in its dtype, one pass per row reading it for both (:func:`top_k_sum_and_total`)."""
    n = scores.shape[0]
    best = np.empty(n - 1)
    totals = np.empty(n)
    with np.errstate(over="ignore", invalid="ignore"):
        totals[0] = scores[0].sum()
        for i in range(1, n):
            best[i - 1], totals[i] = top_k_sum_and_total(scores[i], k)
    return best, totals


def check_finite(scores: np.ndarray, totals: np.ndarray, best: np.ndarray) -> None:
    """Raise ValueError unless every entry of ``scores`` is finite and no sum overflows:
    only a non-finite entry of ``totals`` (sums that are finite only if every entry is, e.g.
    the row sums in the dtype of the scores) sends the rows to a closer look; ``best`` (the
    ``T_k``) must be finite too."""
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isfinite(totals).all():
            for i in range(scores.shape[0]):
                bad = np.flatnonzero(~np.isfinite(scores[i]))
                if bad.size:
                    raise ValueError(
                        f"scores[{i}] has {bad.size} non-finite entries "
                        f"(first at index {bad[0]}: {float(scores[i, bad[0]])!r})"
                    )
            raise_if_sums_overflow(scores)  # float32 sums may overflow alone
    if not np.isfinite(best).all():
        raise_if_sums_overflow(scores)  # T_k <= sum |s|: the sums overflow too, whatever totals said
        raise ValueError("scores are so large that the sum of the k largest overflows float64; rescale them")


def raise_if_sums_overflow(scores: np.ndarray) -> None:
    """Raise ValueError for scores that float64 cannot carry through a method (asked when a
    method failed, or its answer failed the certificate, to name a cause the caller can mend):

    * ``sum_j |s_ij|`` overflows float64 for some row: then some sum a method or the
      certificate forms may too, in whatever order it adds;
    * a secondary score so small next to the primary one that the multiplier of its bound,
      of the order of ``max|s_0| / max|s_i|`` or larger, may overflow float64 (a ratio within
      ``2^32`` of the largest float64, or a largest magnitude that is subnormal). The LP is the same with ``s_i`` and an absolute ``b_i`` multiplied by one
      positive number (a relative bound needs no change), and a power of 2 changes no digit.

    Summed block by block, without a copy of the scores."""
    with np.errstate(over="ignore", invalid="ignore"):
        magnitudes = sum(np.abs(scores[:, block]).sum(axis=1, dtype=np.float64) for block in blocks(scores.shape[1]))
    if not np.isfinite(magnitudes).all():
        raise ValueError("scores are so large that their sums overflow float64; rescale them")
    peaks = np.zeros(scores.shape[0])
    for block in blocks(scores.shape[1]):
        np.maximum(peaks, np.abs(scores[:, block]).max(axis=1).astype(np.float64), out=peaks)
    with np.errstate(over="ignore", divide="ignore"):
        ratios = peaks[0] / peaks[1:]
    for i in np.flatnonzero((peaks[1:] > 0) & ((peaks[1:] < _SMALLEST_NORMAL) | ~(ratios <= _LARGEST_RATIO))):
        raise ValueError(
            f"scores[{i + 1}] is so small next to scores[0] (largest magnitudes {float(peaks[i + 1])!r} and "
            f"{float(peaks[0])!r}) that the multiplier of its bound, their ratio or more, is at the end of float64: rescale "
            f"scores[{i + 1}] (multiply it, and an absolute bound on it, by a power of 2: "
            f"numpy.ldexp(scores[{i + 1}], {_power_to_one(peaks[i + 1])}); a relative bound gamma stays as it is)")


_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)
#: Ratios max|s_0| / max|s_i| above this leave a multiplier (the ratio times the trade-off
#: between the scores, unbounded at gamma = 1) less than 32 binary orders of magnitude of room.
_LARGEST_RATIO = float(np.finfo(np.float64).max) / 2.0**32


def _power_to_one(value: float) -> int:
    """p with ``value * 2**p`` in [0.5, 1)."""
    return -int(np.frexp(value)[1])


def _common_score_dtype(dtypes) -> np.dtype:
    """float32 when every dtype is float32 (kept without a float64 copy), else float64."""
    return np.dtype(np.float32) if all(dtype == np.float32 for dtype in dtypes) else np.dtype(np.float64)


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
    refuse_foreign_array(name, value)
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
    """Groups and floors, with memory and time O(D + len(floors)) whatever the ids.

    Group indices are not renumbered: ``floors[l]`` belongs to the group with index ``l``.
    They must lie below ``max(D, len(floors))`` (an index above both names a group that
    cannot have a floor of its own and would cost memory of its size): renumber such ids
    with ``np.unique(groups, return_inverse=True)[1]``.
    """
    if groups is None and floors is None:
        return None, None, None, False
    if groups is None:
        raise ValueError("floors were given without groups: pass groups=... (a group index per element)")
    if floors is None:
        raise ValueError("groups were given without floors: pass floors=... (an int or one per group)")
    refuse_foreign_array("groups", groups)
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
    f = as_floor_array(floors)
    contiguous = is_non_decreasing(g)  # layers: then no other pass reads g
    lowest, highest = (int(g[0]), int(g[-1])) if contiguous else (int(g.min()), int(g.max()))
    if lowest < 0:
        raise ValueError(f"groups must be non-negative group indices, got minimum {lowest} "
                         f"(groups[{int(np.argmin(g))}])")
    limit = size if f.ndim == 0 else max(size, f.shape[0])
    if highest >= limit:
        given = "one floor for all groups" if f.ndim == 0 else f"floors has {f.shape[0]} entries"
        raise ValueError(
            f"groups[{int(np.argmax(g))}] = {highest} is not a usable group index: D = {size} and {given}, "
            f"so indices must lie below {limit}; renumber the groups, e.g. "
            f"np.unique(groups, return_inverse=True)[1] (and give floors in the order of np.unique(groups))"
        )
    n_groups = highest + 1
    if f.ndim == 0:
        f = np.full(n_groups, int(f), dtype=np.int64)
    if f.shape[0] < n_groups:
        raise ValueError(f"floors needs one entry per group ({n_groups}), got shape {f.shape}")
    f = f.astype(np.int64)
    sizes = _group_sizes(g, contiguous, f.shape[0])
    check_floors(f, sizes, k)
    g.setflags(write=False)
    f.setflags(write=False)
    return g, f, sizes, contiguous


def as_floor_array(floors) -> np.ndarray:
    """``floors`` as an integer array (0-D for one floor for every group, else 1-D)."""
    refuse_foreign_array("floors", floors)
    if isinstance(floors, (bool, np.bool_)) or isinstance(floors, (str, bytes)):
        raise TypeError(f"floors must be an int or one int per group, got {floors!r}")
    f = np.asarray(floors)
    if f.dtype == np.bool_ or not np.issubdtype(f.dtype, np.integer):
        raise TypeError(f"floors must be an int or one int per group, got {floors!r}")
    if f.ndim > 1:
        raise ValueError(f"floors must be an int or a 1-D sequence of ints, got shape {f.shape}")
    return f


def check_floors(floors: np.ndarray, sizes: np.ndarray, k: int) -> None:
    """Floors (int64, one per group) that can hold on their own: ``0 <= f_l <= |G_l|`` and
    ``sum f <= k``."""
    if (floors < 0).any():
        i = int(np.flatnonzero(floors < 0)[0])
        raise ValueError(f"floors must be >= 0, got floors[{i}] = {int(floors[i])}")
    over = np.flatnonzero(floors > sizes)
    if over.size:
        i = int(over[0])
        raise ValueError(f"floors[{i}] = {int(floors[i])} exceeds the size of group {i} ({int(sizes[i])} elements)")
    if int(floors.sum()) > k:
        raise ValueError(f"floors sum to {int(floors.sum())}, more than the budget k = {k}")


def _group_sizes(groups: np.ndarray, contiguous: bool, n_groups: int) -> np.ndarray:
    """Elements per group index 0..n_groups-1 (int64): for ``contiguous`` (non-decreasing)
    ``groups`` the ends of the runs by binary search, else one ``np.bincount``."""
    if not contiguous:
        return np.bincount(groups, minlength=n_groups)
    ids = np.arange(int(groups[-1]) + 1).astype(groups.dtype)
    ends = np.searchsorted(groups, ids, side="right")
    sizes = np.zeros(n_groups, dtype=np.int64)
    sizes[:ids.shape[0]] = np.diff(ends, prepend=0)
    return sizes


def refuse_foreign_array(name: str, value) -> None:
    """Refuse array types that numpy converts with a silent loss or an obscure error.

    A numpy masked array's mask would be ignored; a torch tensor converts only on the CPU,
    without gradient and in a numpy dtype (bf16, meta and requires-grad tensors fail inside
    numpy). torch is recognised by the type's module, never imported.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy masked array, and copslp would ignore its mask: pass a plain array, "
            f"{name}.filled(value) with the value the masked entries should have, or leave those "
            f"elements out of every argument"
        )
    module = type(value).__module__ or ""
    if module == "torch" or module.startswith("torch."):
        what = "torch.Tensor" if hasattr(value, "detach") else f"{module}.{type(value).__qualname__}"
        detail = f" ({value.dtype}, device {value.device})" if hasattr(value, "device") else ""
        raise TypeError(
            f"{name} is a {what}{detail}; copslp takes numpy arrays: pass "
            f"{name}.detach().cpu().double().numpy() ({name}.cpu().numpy() for integer groups and "
            f"floors), or use torch_adapter, which does this for its Score objects"
        )
