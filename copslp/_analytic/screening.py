r"""Safe screening for the analytic method (docs/maths.md §4): what a box of multipliers decides.

For every lambda in a box [lo, hi], an element whose smallest value
:math:`v_j(\lambda) = s_{0j} + \sum_i \lambda_i s_{ij}` over the box exceeds the level of
the k-th largest of the largest values is in every optimal set (fixed to 1); one whose
largest value lies below the level of the k-th largest of the smallest values is in none
(fixed to 0). The rest, the survivors, make a reduced problem (:class:`InnerProblem`) with the
budget and bounds left over.

Here: the compiled pass over a block (:func:`screen_piece`, the loop of
:meth:`copslp._analytic.passes.ArrayPasses.screen`; the driver in :mod:`copslp._analytic.driver` sets its
levels from the subsample and verifies them by its counts), the box's extremes of v
(:func:`box_extremes`), the exact screening by selection that the finishes on the survivors
use as their bracket narrows (:func:`screen_exact`: with floors, the elements among their
group's forced best throughout the box are fixed too), and the reduced problem.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._blocks import BLOCK
from .._inner import InnerProblem
from .._kernels_numpy import kernels_name, load_kernels
from .._selection import group_starts, kth_largest, kth_largest_in_groups, take_columns

#: The screening passes: the compiled copslp._kernels, or where it is not built (or with
#: COPSLP_KERNELS=numpy) the same passes in numpy, copslp._kernels_numpy (same answers, slower).
_kernels = load_kernels()


def kernels_in_use() -> str:
    """``"compiled"`` or ``"numpy"``: which screening passes :data:`_kernels` is."""
    return kernels_name(_kernels)

__all__ = ["ExactScreen", "ScreenRecord", "ReducedProblemInfeasible", "MinimumOutsideBox", "RESCREEN_MIN_SIZE",
           "RESCREEN_SHRINK",
           "box_extremes", "screen_piece", "screen_exact", "reduce_problem",
           "Tally", "Collected"]

#: A problem is screened again once the bracket (or box) of its multipliers is this many
#: times narrower than the one it was screened with, if it still has this many elements.
RESCREEN_SHRINK = 4.0
RESCREEN_MIN_SIZE = 1 << 14
#: The margin (standard deviations, offset) of the sampled group levels: a group whose
#: level turns out unsafe is read once more, so it is narrower than that of the global levels.
_GROUP_MARGIN = (2.0, 2)
#: A group's sampled level is used only if its rank is at most this many times the expected one.
_GROUP_RANK_FACTOR = 3.0
#: Elements per block of the compiled screening pass (``copslp._kernels.screen``) at most: it
#: reads a block once, so the block need not fit in cache, and each block costs a few Python
#: calls; but the room it needs free in its outputs (up to 32 bytes per element of a block)
#: stays within 1/64 of the length.
KERNEL_BLOCK = 1 << 18


def kernel_block(size: int) -> int:
    """The block of a compiled pass over ``size`` elements: ``size // 64`` within
    [``BLOCK``, ``KERNEL_BLOCK``]."""
    return min(KERNEL_BLOCK, max(BLOCK, size // 64))


class ExactScreen(NamedTuple):
    """What a box decided: the problem left on the ``survivors`` (increasing indices) once
    ``ones`` are kept, the scores summed over ``ones`` (``taken``, every row of the problem),
    and the levels that decided it, ``(one_levels, zero_levels)``, one of each per group
    (one for all without floors): every element of group g fixed to 1 has its smallest v
    over the box above ``one_levels[g]``, every one dropped its largest below
    ``zero_levels[g]``."""

    reduced: InnerProblem
    ones: np.ndarray
    survivors: np.ndarray
    taken: np.ndarray
    levels: tuple | None = None


class ScreenRecord(NamedTuple):
    """What one screening pass proved, for every lambda in its box ``[lo, hi]``, per segment
    (one per group of the floors; one without floors): each of the ``fixed[g]`` elements of
    segment g it fixed to 1 has ``v_j(lambda) > one_levels[g]`` (its smallest v over the box
    is above it), each of the ``dropped[g]`` it dropped ``v_j(lambda) < zero_levels[g]``;
    ``taken`` holds the scores (every row) summed over all the elements fixed to 1. A level
    holds whether or not the pass fixed or dropped anything by it (``+inf`` / ``-inf`` where
    it had no level). The products in v are float64 whatever the dtype of the scores, as in
    the certificate."""

    lo: np.ndarray
    hi: np.ndarray
    one_levels: np.ndarray
    zero_levels: np.ndarray
    fixed: np.ndarray
    dropped: np.ndarray
    taken: np.ndarray

    def holds_at(self, multipliers: np.ndarray) -> bool:
        """Whether the levels bound v at ``multipliers``: they lie in the box."""
        return bool(np.all(self.lo <= multipliers) and np.all(multipliers <= self.hi))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per segment, ``(largest v dropped, smallest v kept)`` as bounded by the levels; a
        level that dropped (fixed) nothing in a segment says nothing there (-inf, +inf)."""
        return (np.where(self.dropped > 0, self.zero_levels, -np.inf),
                np.where(self.fixed > 0, self.one_levels, np.inf))


class ReducedProblemInfeasible(Exception):
    """The problem on the survivors is infeasible: the box was wrong, or the bounds are."""


class MinimumOutsideBox(Exception):
    """The minimiser of the reduced dual lies outside the box it was screened with; it is
    carried in ``multipliers`` (a better centre for the next box)."""

    def __init__(self, multipliers: np.ndarray):
        super().__init__()
        self.multipliers = multipliers


def box_extremes(scores: np.ndarray, lo: np.ndarray, hi: np.ndarray, out=None):
    """``(low, high)``: the smallest and largest ``v_j(lambda)`` over the box [lo, hi] for the
    columns of ``scores`` (row 0 = s_0, then one row per multiplier).

    With one multiplier they are v at the two corners (``s_0 + min(a, b) = min(s_0 + a, s_0 + b)``
    in floats too). With several: v at the corners lo and hi when every s_i >= 0 (lo >= 0
    always), else v at the centre -/+ ``sum_i (hi_i - lo_i) / 2 |s_i|``; one matrix-vector
    product each. float64 whatever the dtype of ``scores``; written into ``out`` (two float64
    buffers of the right length) when given. Without multipliers the box is the point
    ``v = s_0``: ``low = high = scores[0]``.
    """
    if lo.shape[0] == 0:
        return scores[0], scores[0]
    if lo.shape[0] == 1:  # float64 products whatever the dtype of the scores (numpy < 2 would round in float32)
        at_lo, at_hi = (np.empty(scores.shape[1]), np.empty(scores.shape[1])) if out is None else out
        np.multiply(scores[1], lo[0], out=at_lo, dtype=np.float64)
        at_lo += scores[0]
        np.multiply(scores[1], hi[0], out=at_hi, dtype=np.float64)
        at_hi += scores[0]
        if lo[0] >= 0 and scores.shape[1] and scores[1].min() >= 0:
            return at_lo, at_hi  # rounding is monotone: lo s_1 <= hi s_1 stays so
        low = np.minimum(at_lo, at_hi)
        return low, np.maximum(at_lo, at_hi, out=at_hi)
    low, high = (np.empty(scores.shape[1]), np.empty(scores.shape[1])) if out is None else out
    secondary = scores[1:]
    if scores.shape[1] and secondary.min() >= 0:  # lo >= 0: v is least at lo, largest at hi
        np.einsum("i,ij->j", lo, secondary, out=low)  # einsum, not BLAS: its threads stall on a busy machine
        low += scores[0]
        np.einsum("i,ij->j", hi, secondary, out=high)
        high += scores[0]
        return low, high
    np.einsum("i,ij->j", (lo + hi) / 2.0, secondary, out=low)  # v at the centre, -/+ the half-widths times |s_i|
    low += scores[0]
    spread = np.einsum("i,ij->j", (hi - lo) / 2.0, np.abs(secondary))
    np.add(low, spread, out=high)
    low -= spread
    return low, high


def screen_exact(inner: InnerProblem, lo: np.ndarray, hi: np.ndarray):
    """:func:`screen` with the exact levels, by selection over the whole of ``inner``."""
    low, high = box_extremes(inner.scores, lo, hi, out=(inner.scratch("low"), inner.scratch("high")))
    one_rank, zero_rank = _level_ranks(inner)
    ordered = inner.scratch("ordered")
    one_level = kth_largest(high, one_rank, ordered) if one_rank > 0 else np.inf
    zero_level = kth_largest(low, zero_rank, ordered) if zero_rank > 0 else -np.inf
    ones, zeros = low > one_level, high < zero_level
    levels = (np.array([one_level]), np.array([zero_level]))
    if inner.floors is not None:
        forced_high, forced_low = _group_floor_levels(inner, high), _group_floor_levels(inner, low)
        ones |= low > forced_high[inner.groups]  # among its group's forced best throughout
        zeros &= high < forced_low[inner.groups]
        levels = (np.minimum(one_level, forced_high), np.minimum(zero_level, forced_low))
    survivors = np.flatnonzero(~(ones | zeros))
    return reduce_problem(inner, np.flatnonzero(ones), survivors)._replace(levels=levels)


def _level_ranks(inner: InnerProblem):
    """Ranks of the safe one- and zero-levels (see :func:`screen`); 0 means none."""
    k = inner.budget
    if inner.floors is None:
        return k, k
    return k - int(inner.floors.sum()), (k + 1 if k < inner.size else 0)


def _sample_rank(rank, m, size, direction: int, spread: float = 4.0, offset: int = 8):
    """The rank among m sampled of ``size`` elements whose value bounds the ``rank``-th
    largest of all from above (``direction`` -1) or below (+1) with a margin of ``spread``
    standard deviations plus ``offset`` (0 where m is 0); integers, or arrays of them (one
    per group), alike."""
    r = np.rint(np.asarray(rank) * np.asarray(m) / np.asarray(size)).astype(np.int64)  # half to even, as round()
    margin = np.ceil(spread * np.sqrt(np.maximum(r, 1))).astype(np.int64) + offset
    ranks = np.minimum(np.maximum(1, r + direction * margin), m)
    return int(ranks) if ranks.ndim == 0 else ranks


def _placed_by_sample(floors, counts, sizes):
    """Per group, the sampled rank of its level with the margin :data:`_GROUP_MARGIN` (0
    where no member was sampled), and whether the subsample places the level: that rank
    among the sampled members, at most :data:`_GROUP_RANK_FACTOR` times the expected one."""
    spread, offset = _GROUP_MARGIN
    rank = _sample_rank(floors, counts, sizes, +1, spread, offset)
    return rank, (0 < rank) & (rank < counts) & (rank <= _GROUP_RANK_FACTOR * floors * counts / sizes)


def unplaced_share(outline, counts) -> float:
    """The share of all elements in groups with a floor whose level a subsample with
    ``counts`` members in each group (sampled, or expected) cannot place
    (:func:`_placed_by_sample`): a floor of 1 in a group of 100 with 1 member in 150 sampled.
    Their members would all survive a screening at the sampled levels, and the subsample's
    problem would not hold their floors."""
    floors, sizes = outline.floors, np.maximum(outline.group_sizes, 1)
    _, placed = _placed_by_sample(floors, counts, sizes)
    return float(outline.group_sizes[(floors > 0) & ~placed].sum()) / max(outline.size, 1)


def _group_sample_levels(outline, low, sample_groups, wide=None):
    """Per group g, an estimate from below of the floors[g]-th largest ``low`` of g from the
    subsample's members of g; +inf where floors[g] = 0. Where the members are too few to
    say (the margin more than doubles the expected rank), and for the groups flagged
    ``wide`` (their level failed its count once), the level is taken with a margin four
    times wider however few the members are (the lowest of them at most; -inf where there
    are none)."""
    floors, sizes = outline.floors, outline.group_sizes
    wide = np.zeros(floors.shape[0], dtype=bool) if wide is None else wide
    by_group = np.argsort(sample_groups, kind="stable")
    counts = np.bincount(sample_groups, minlength=floors.shape[0])
    floored, sampled = floors > 0, counts > 0
    safe_sizes = np.maximum(sizes, 1)
    rank, placed = _placed_by_sample(floors, counts, safe_sizes)
    narrow = ~wide & placed
    # too few members to say, or the level failed once: a margin four times wider
    spread, offset = _GROUP_MARGIN
    wider = _sample_rank(floors, counts, safe_sizes, +1, 4 * spread, 4 * offset)
    ranks = np.where(floored, np.where(narrow, rank, wider), 0)
    levels = kth_largest_in_groups(low, by_group, group_starts(counts), ranks)
    levels[floored & ~sampled] = -np.inf
    return levels


def screen_piece(scores, lo, hi, level, candidate_levels, one_level, zero_level, offset, groups, support, positions,
                  columns, high, ones, candidates, taken):
    """One piece of :func:`_screen_streamed` in its compiled loop: ``(n_ones, n_survivors,
    above_one, at_or_above_zero, candidate counts (one per secondary row), total)``; the scores
    fixed to 1 are added to the running compensated sums ``taken`` (each row's sum, then each
    one's error). ``candidate_levels`` and ``candidates`` (the free part of each secondary
    row's array) are None without a tally."""
    scores = [_in_kernel_dtype(row) for row in scores]
    if lo.shape[0] == 1:
        candidate_level = np.inf if candidate_levels is None else float(candidate_levels[0])
        *counts, found, total = _kernels.screen(
            scores[0], scores[1], float(lo[0]), float(hi[0]), level, candidate_level, one_level, zero_level, offset,
            groups, support, positions, *columns, high, ones, None if candidates is None else candidates[0], taken)
        return (*counts, (found,), total)
    return _kernels.screen_several(
        tuple(scores), np.ascontiguousarray(lo, dtype=np.float64), np.ascontiguousarray(hi, dtype=np.float64), level,
        None if candidate_levels is None else np.ascontiguousarray(candidate_levels, dtype=np.float64), one_level,
        zero_level, offset, groups, support, positions, tuple(columns), high, ones,
        None if candidates is None else tuple(candidates), taken)


class Tally:
    r"""What validation needs of a pass that reads the scores anyway (the analytic method's
    first screening, :func:`copslp._analytic.driver.first_pass`): a sum that is finite only if every
    entry is (``totals``: a non-finite one sends validation to a closer look,
    :func:`copslp._problem.check_finite`), and for each secondary row i the entries at or
    above ``levels[i - 1]``, the candidates of its k largest, in order, as
    :func:`copslp._selection.top_k_sum` gathers them.

    The sum is that of ``high``, the largest :math:`v_j = s_{0j} + \sum_i \lambda_i s_{ij}` over
    the box, which the pass computes for every element anyway (float64, with lo >= 0 and
    hi > 0 finite): a NaN or an infinity in any row makes some v NaN or infinite, and a finite
    sum has none. A sum that overflows with finite entries only costs the closer look."""

    def __init__(self, levels: np.ndarray):
        self.levels = levels
        self.totals = None
        self.candidates = None

    def count(self, total: float, candidates: list) -> None:
        """What the pass found (:func:`_screen_streamed`): the sum of ``high`` over every
        element and the candidates of each secondary row (one array each, in order)."""
        self.totals = np.array([total])
        self.candidates = candidates


#: :meth:`Collected.arrays` copies at most this many entries to let go of the room beyond them.
_TRIM_BELOW = 1 << 16


class Collected:
    """Arrays that a compiled pass fills block after block at their common count, grown when a
    block may not fit: one per field, a dtype (length the capacity) or ``(rows, dtype)``.
    :meth:`room` gives the free part of each (a view the pass writes into), :meth:`add` counts
    what it wrote, :meth:`arrays` the filled part."""

    def __init__(self, fields: list, capacity: int):
        self.count = 0
        self._arrays = [np.empty(field[:1] + (capacity,), dtype=field[1]) if isinstance(field, tuple)
                        else np.empty(capacity, dtype=field) for field in fields]

    def room(self, needed: int, read: int | None = None, size: int | None = None) -> list:
        """Views of the free part of each array, at least ``needed`` long. Where it must grow
        and the pass has read ``read`` of ``size`` elements, the capacity becomes what the
        same rate would fill over all of them, with a quarter more (at least twice the old)."""
        capacity = self._arrays[0].shape[-1]
        if self.count + needed > capacity:
            expected = self.count * size // read if read else 0
            capacity = max(2 * capacity, self.count + needed, expected + expected // 4 + needed)
            self._arrays = [self._grown(array, capacity) for array in self._arrays]
        return [array[..., self.count:] for array in self._arrays]

    def _grown(self, array, capacity):
        grown = np.empty(array.shape[:-1] + (capacity,), dtype=array.dtype)
        grown[..., :self.count] = array[..., :self.count]
        return grown

    def add(self, count: int) -> None:
        self.count += count

    def arrays(self) -> list:
        """The filled part of each array: views, or copies where more than half of the
        capacity is unused and the copy is short (the room kept for one more block, which a
        view would hold, weighs most on small passes)."""
        capacity = self._arrays[0].shape[-1]
        trim = capacity > 2 * self.count and self.count < _TRIM_BELOW
        return [array[..., :self.count].copy() if trim else array[..., :self.count] for array in self._arrays]


def _in_kernel_dtype(scores: np.ndarray) -> np.ndarray:
    """The rows of a block as the compiled passes read them: float32 or float64 as they are,
    any other dtype as float64."""
    if scores.dtype != np.float64 and scores.dtype != np.float32:
        return scores.astype(np.float64)
    return scores


def reduce_problem(inner: InnerProblem, ones: np.ndarray, survivors: np.ndarray, taken=None,
                   survivor_scores=None) -> ExactScreen:
    """The problem left on ``survivors`` (increasing indices) once ``ones`` are kept, as a
    :class:`ExactScreen` without levels.

    ``taken`` (the scores summed over ``ones``) and ``survivor_scores`` are gathered here
    unless given. Groups contiguous in ``inner`` stay so among the survivors: their offsets
    there are found by binary search."""
    s = inner.scores
    if taken is None:
        taken = take_columns(s, ones).sum(axis=1)
    if survivor_scores is None:
        survivor_scores = take_columns(s, survivors)
    groups = floors = layout = None
    if inner.floors is not None:
        groups = inner.groups[survivors]
        kept = np.bincount(inner.groups[ones], minlength=inner.floors.shape[0])
        floors = np.maximum(inner.floors - kept, 0)
        order, starts = inner._group_layout
        if order is None:
            layout = _fixed_layout(None, np.searchsorted(survivors, starts))
    reduced = InnerProblem(survivor_scores, inner.budget - ones.shape[0], inner.thresholds - taken[1:], groups, floors,
                           layout, inner.slack + 1e-12 * np.abs(taken[1:]))
    return ExactScreen(reduced, ones, survivors, taken)


def _fixed_layout(order, starts):
    return lambda: (order, starts)


def _group_floor_levels(inner: InnerProblem, values: np.ndarray) -> np.ndarray:
    """Per group g: the floors[g]-th largest of ``values`` in g (+inf where floors[g] = 0).

    An element whose largest value over the box is below that level of ``low`` is never
    among the forced best of its group; one whose smallest value is above that level of
    ``high`` always is (at most floors[g] - 1 members can reach above it), so it is in
    every best set.
    """
    order, starts = inner._group_layout
    return kth_largest_in_groups(values, order, starts, inner.floors)
