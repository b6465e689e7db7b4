r"""Safe screening for the analytic method (docs/maths.md §4): what a box of multipliers decides.

For every lambda in a box [lo, hi], an element whose smallest value
:math:`v_j(\lambda) = s_{0j} + \sum_i \lambda_i s_{ij}` over the box exceeds the level of
the k-th largest of the largest values is in every optimal set (fixed to 1); one whose
largest value lies below the level of the k-th largest of the smallest values is in none
(fixed to 0). The rest, the survivors, make a reduced problem (:class:`InnerProblem`) with the
budget and bounds left over. The levels are estimated on the subsample and verified by
counting in one streamed pass; exact selection is the fallback. With floors, elements that
are among their group's forced best throughout the box are fixed too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._blocks import BLOCK, blocks
from ._inner import InnerProblem
from ._kernels_numpy import kernels_name, load_kernels
from ._scan import segment_runs
from ._selection import group_starts, kth_largest, take_columns

#: The screening passes: the compiled copslp._kernels, or where it is not built (or with
#: COPSLP_KERNELS=numpy) the same passes in numpy, copslp._kernels_numpy (same answers, slower).
_kernels = load_kernels()


def kernels_in_use() -> str:
    """``"compiled"`` or ``"numpy"``: which screening passes :data:`_kernels` is."""
    return kernels_name(_kernels)

__all__ = ["Screening", "ReducedProblemInfeasible", "MinimumOutsideBox", "RESCREEN_MIN_SIZE", "RESCREEN_SHRINK",
           "box_extremes", "ReachBuffers", "reaching_extremes", "screen", "screen_exact", "reduce_problem", "Tally", "screen_and_tally"]

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


class Screening(NamedTuple):
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


def screen(inner: InnerProblem, lo: np.ndarray, hi: np.ndarray, sample_scores: np.ndarray, sample_groups=None):
    """Fix what is decided for every lambda in the box [lo, hi]; return the
    :class:`Screening`.

    An element is fixed to 1 when its smallest value over the box exceeds ``one_level``, to 0
    when its largest value is below ``zero_level``. Safe levels: ``one_level`` at least the
    (k - F)-th largest of ``high`` (F = sum of floors) and ``zero_level`` at most the k-th
    largest of ``low`` (with floors the (k+1)-th); with floors, an element among the
    floors[g] best of its group g for some lambda in the box is never dropped. The levels are
    estimated on the subsample and verified by counting in the same streamed pass
    (``#{high > one_level} < k - F``, ``#{low >= zero_level} >= k (+1)``); when a count
    fails, the exact levels are computed by selection over full-length arrays. With floors
    and ``sample_groups`` (the groups of the subsample), each group's level (its floors[g]-th
    largest ``low``) is estimated on the subsample in the same way and verified by its count
    in the pass; a group whose count fails is read again for its exact level.
    """
    streamed = _screen_streamed(inner, lo, hi, *_sample_levels(inner, lo, hi, sample_scores, sample_groups))
    if streamed is not None:
        return streamed
    return screen_exact(inner, lo, hi)


def screen_exact(inner: InnerProblem, lo: np.ndarray, hi: np.ndarray):
    """:func:`screen` with the exact levels, by selection over the whole of ``inner``."""
    low, high = box_extremes(inner.scores, lo, hi)
    one_rank, zero_rank = _level_ranks(inner)
    one_level = kth_largest(high, one_rank) if one_rank > 0 else np.inf
    zero_level = kth_largest(low, zero_rank) if zero_rank > 0 else -np.inf
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


def _sample_levels(inner, lo, hi, sample_scores, sample_groups=None):
    """Conservative estimates of the one- and zero-levels from the subsample's scores, and
    with floors the levels of the groups (see :func:`_group_sample_levels`)."""
    low, high = box_extremes(sample_scores, lo, hi)
    m = sample_scores.shape[1]
    one_rank, zero_rank = _level_ranks(inner)
    one_level = kth_largest(high, _sample_rank(one_rank, m, inner.size, -1)) if one_rank > 0 else np.inf
    zero_level = kth_largest(low, _sample_rank(zero_rank, m, inner.size, +1)) if zero_rank > 0 else -np.inf
    group_levels = None
    if inner.floors is not None:
        group_levels = np.full(inner.floors.shape[0], zero_level)
        if sample_groups is not None:
            np.minimum(group_levels, _group_sample_levels(inner, low, sample_groups), out=group_levels)
    return one_level, zero_level, group_levels


def _sample_rank(rank: int, m: int, size: int, direction: int, spread: float = 4.0, offset: int = 8) -> int:
    """The rank among m sampled of ``size`` elements whose value bounds the ``rank``-th
    largest of all from above (``direction`` -1) or below (+1) with a margin of ``spread``
    standard deviations plus ``offset``."""
    r = int(round(rank * m / size))
    margin = int(np.ceil(spread * np.sqrt(max(r, 1)))) + offset
    return min(max(1, r + direction * margin), m)


def _group_sample_levels(inner, low, sample_groups):
    """Per group g, an estimate from below of the floors[g]-th largest ``low`` of g from the
    subsample's members of g; +inf where floors[g] = 0, and where they are too few to say
    (the margin more than doubles the expected rank): such a group, if short, is read again
    for its exact level (cheaper than the many survivors a loose level leaves)."""
    floors = inner.floors
    _, starts = inner._group_layout
    sizes = np.diff(starts)
    by_group = np.argsort(sample_groups, kind="stable")
    sample_starts = group_starts(np.bincount(sample_groups, minlength=floors.shape[0]))
    levels = np.full(floors.shape[0], np.inf)
    for g in np.flatnonzero(floors > 0):
        members = low[by_group[sample_starts[g]:sample_starts[g + 1]]]
        m = members.shape[0]
        expected = floors[g] * m / sizes[g]
        rank = _sample_rank(int(floors[g]), m, int(sizes[g]), +1, *_GROUP_MARGIN) if m else 0
        if 0 < rank < m and rank <= _GROUP_RANK_FACTOR * expected:
            levels[g] = kth_largest(members, rank)
    return levels


def _screen_streamed(inner, lo, hi, one_level, zero_level, group_levels=None, tally=None):
    """One streamed pass with given levels; ``None`` if a count shows a level is unsafe.

    Each block is one compiled loop (``copslp._kernels.screen`` for one multiplier,
    ``screen_several`` for more), which reads every element once. Only the elements whose
    ``high`` (the largest v over the box) reaches their level (the zero level; with floors
    their group's level, at most the zero level) are counted, fixed or kept: the others are
    dropped, and since ``low <= high`` none of them could be fixed to 1, count as reaching the
    zero level or their group's level, or lie above the one level. That needs ``one_level >=
    zero_level``, which the counts imply: with ``one_level < zero_level`` every element
    counted as reaching the zero level would lie above the one level, and both counts cannot
    hold. With one multiplier both extremes are the numbers :func:`box_extremes` gives; with
    several they are the same bounds on v, summed row by row and chosen per element (see
    ``_kernels.c``). The scores fixed to 1 are summed with compensation (Neumaier), so that
    many small scores after a large one still count.

    With floors, an element whose ``high`` is below its group's level is dropped. A group with
    at least floors[g] elements whose ``low`` reaches its level has its floors[g]-th best
    above every element below that level, so the group rule holds without a per-group
    selection; in the other groups the elements below the level are found by selection
    (:func:`_forced_candidates`). With a ``tally`` (:class:`Tally`) the pass reads every
    element whatever the levels, sums ``high`` and gathers each secondary row's candidates.
    """
    one_rank, zero_rank = _level_ranks(inner)
    if one_level < zero_level and tally is None:
        return None
    floors = inner.floors
    support = None if floors is None else np.zeros(floors.shape[0], dtype=np.int64)
    above_one = at_or_above_zero = 0
    n_rows = inner.scores.shape[0]
    taken = np.zeros(2 * n_rows)  # running compensated sums of the scores fixed to 1, and their errors
    width = kernel_block(inner.size)
    high = np.empty(width)  # scratch of the kernel
    survivors = Collected([np.int64, (n_rows, np.float64)], width)
    ones = Collected([np.int64], min(inner.size, max(inner.budget, 0) + width))
    candidates = [] if tally is None else [Collected([inner.scores.dtype], width) for _ in range(n_rows - 1)]
    totals = 0.0  # of high: a Python float, whose sums overflow without a warning
    for piece, groups, level in _pieces_with_levels(inner, width, zero_level, group_levels):
        n = piece.stop - piece.start
        (positions, columns), (fixed,) = survivors.room(n, piece.start, inner.size), ones.room(n)
        found_room = None if tally is None else [row.room(n, piece.start, inner.size)[0] for row in candidates]
        n_ones, n_survivors, high_above_one, low_at_zero, found, total = _screen_piece(
            inner.scores[:, piece], lo, hi, level, None if tally is None else tally.levels, one_level, zero_level,
            piece.start, groups, support, positions, columns, high, fixed, found_room, taken)
        above_one += high_above_one
        at_or_above_zero += low_at_zero
        totals += total
        ones.add(n_ones)
        survivors.add(n_survivors)
        for row, count in zip(candidates, found):
            row.add(count)
    if tally is not None:
        tally.count(totals, [row.arrays()[0] for row in candidates])
    if (one_rank > 0 and above_one >= one_rank) or at_or_above_zero < zero_rank or one_level < zero_level:
        return None
    (fixed,), (kept, kept_scores) = ones.arrays(), survivors.arrays()
    with np.errstate(invalid="ignore"):  # non-finite scores: validation says so
        taken = taken[:n_rows] + taken[n_rows:]
    return _reduced_with_forced(inner, lo, hi, group_levels, support, fixed, kept, taken, kept_scores,
                                (one_level, zero_level))


def _screen_piece(scores, lo, hi, level, candidate_levels, one_level, zero_level, offset, groups, support, positions,
                  columns, high, ones, candidates, taken):
    """One piece of :func:`_screen_streamed` in its compiled loop: ``(n_ones, n_survivors,
    above_one, at_or_above_zero, candidate counts (one per secondary row), total)``; the scores
    fixed to 1 are added to the running compensated sums ``taken`` (each row's sum, then each
    one's error). ``candidate_levels`` and ``candidates`` (the free part of each secondary
    row's array) are None without a tally."""
    scores = _in_kernel_dtype(scores)
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


def _reduced_with_forced(inner, lo, hi, group_levels, support, ones, survivors, taken, survivor_scores, levels):
    """The :class:`Screening` of a streamed pass, with the forced candidates of the groups whose
    count fell short of their floor merged into the survivors."""
    one_level, zero_level = levels
    if inner.floors is None:
        levels = (np.array([one_level]), np.array([zero_level]))
    else:  # an element below its group's level is dropped; in a short group, also below its forced level
        zero_levels = np.minimum(zero_level, group_levels)
        if support is not None and np.any(support < inner.floors):
            forced, forced_levels = _forced_candidates(inner, lo, hi, support < inner.floors, group_levels)
            forced = np.sort(forced)
            at = np.searchsorted(survivors, forced)  # disjoint from the survivors: inserted in order
            survivors = np.insert(survivors, at, forced)
            survivor_scores = np.insert(survivor_scores, at, take_columns(inner.scores, forced), axis=1)
            np.minimum(zero_levels, forced_levels, out=zero_levels)
        levels = (np.full(inner.floors.shape[0], one_level), zero_levels)
    return reduce_problem(inner, ones, survivors, taken, survivor_scores)._replace(levels=levels)


class Tally:
    r"""What validation needs of a pass that reads the scores anyway (the analytic method's
    first screening, :func:`copslp._analytic.first_pass`): a sum that is finite only if every
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


def screen_and_tally(inner: InnerProblem, lo: np.ndarray, hi: np.ndarray, sample_scores: np.ndarray, tally: Tally,
                     sample_groups=None):
    """:func:`screen`, the same pass counting ``tally``; ``None`` where a count says a level
    is unsafe (the pass has read every element all the same)."""
    return _screen_streamed(inner, lo, hi, *_sample_levels(inner, lo, hi, sample_scores, sample_groups), tally)


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
        return [array[..., :self.count] for array in self._arrays]


def _pieces_with_levels(inner, width: int, zero_level: float, group_levels):
    """``(piece, groups, level)`` over the elements in order, in blocks of ``width``: without
    floors the blocks with no groups and the zero level; with floors on contiguous groups
    (layers) each block cut where a group starts, with its group and the group's level (one
    number each, so the compiled loop reads one level); on other groups the blocks with one
    group and one level per element."""
    order, starts = (None, None) if inner.floors is None else inner._group_layout
    for block in blocks(inner.size, width):
        if inner.floors is None:
            yield block, None, zero_level
        elif order is not None:
            yield (block, *_block_groups_and_levels(inner, block, group_levels))
        else:
            runs, offsets = segment_runs(starts, block)
            ends = np.append(offsets[1:], block.stop - block.start) + block.start
            for group, begin, end in zip(runs.tolist(), (offsets + block.start).tolist(), ends.tolist()):
                yield slice(begin, end), group, float(group_levels[group])


def _block_groups_and_levels(inner, block, group_levels):
    """The group of each element of ``block`` and its group's level, one per element (groups
    that are not contiguous)."""
    groups = np.asarray(inner.groups[block], dtype=np.intp)
    return groups, group_levels.take(groups)


class ReachBuffers:
    """The outputs of ``copslp._kernels.reach`` (:func:`reaching_extremes`) for blocks of up
    to ``block`` elements, reused block after block (what reaches is copied out of them): the
    positions of the elements that reach, their two rows of float64 scores and their ``high``."""

    def __init__(self, block: int):
        self.positions = np.empty(block, dtype=np.int64)
        self.columns = np.empty((2, block))
        self.high = np.empty(block)


def _in_kernel_dtype(scores: np.ndarray) -> np.ndarray:
    """The rows of a block as the compiled passes read them: float32 or float64 as they are,
    any other dtype as float64."""
    if scores.dtype != np.float64 and scores.dtype != np.float32:
        return scores.astype(np.float64)
    return scores


def reaching_extremes(scores, lo: np.ndarray, hi: np.ndarray, level, buffers: ReachBuffers):
    r"""One multiplier or none (a point box, ``v = s_0``): ``(reaching, columns, low, high)``:
    the positions of the columns of ``scores`` whose ``high`` (the largest v over the box)
    reaches ``level`` (a number, or one per column), those columns (float64) and their
    ``low`` and ``high`` as :func:`box_extremes` gives them; ``low`` is computed only for the
    columns that reach: a column below its level is dropped whatever its ``low``, which is
    smaller.

    With one multiplier, ``high`` of every column, the comparison and the gather are one
    compiled loop over the block (``copslp._kernels.reach``): numpy would spend an operation,
    and a pass over the block, on each. It computes
    :math:`\max(s_0 + \lambda_{lo} s_1,\ s_0 + \lambda_{hi} s_1)` in numpy's floating-point
    operations (v at hi where :math:`s_1 \ge 0` and :math:`\lambda_{lo} \ge 0`), so every
    finite number is the one :func:`box_extremes` gives."""
    if lo.shape[0] == 0:
        reaching = np.flatnonzero(scores[0] >= level)
        columns = take_columns(scores, reaching)
        return reaching, columns, columns[0], columns[0]
    level = float(level) if np.ndim(level) == 0 else np.asarray(level, dtype=np.float64)
    count, _, _, monotone = _kernels.reach(*_in_kernel_dtype(scores), float(lo[0]), float(hi[0]), level, np.inf,
                                           buffers.positions, *buffers.columns, buffers.high, None)
    reaching = buffers.positions[:count].copy()
    columns = buffers.columns[:, :count].copy()
    if monotone:  # v at lo, in the operations of box_extremes
        low = np.multiply(columns[1], lo[0])
        low += columns[0]
    else:  # where s_1 has negative entries: both corners
        low = box_extremes(columns, lo, hi)[0]
    return reaching, columns, low, buffers.high[:count].copy()


def _forced_candidates(inner, lo, hi, short, group_levels):
    """Members of the ``short`` groups g below their level ``group_levels[g]`` that may
    still be among the floors[g] best of g for some lambda in the box: ``high_j`` at least
    the floors[g]-th largest ``low`` of the group (a selection within each short group).
    They are disjoint from the survivors of the streamed pass, which reach the level.
    Returns them and, per group, that floors[g]-th largest ``low`` (+inf in the others)."""
    order, starts = inner._group_layout
    found = []
    forced_levels = np.full(inner.floors.shape[0], np.inf)
    for g in np.flatnonzero(short):
        if order is None:
            members = slice(starts[g], starts[g + 1])
            low, high = box_extremes(inner.scores[:, members], lo, hi)
        else:
            members = order[starts[g]:starts[g + 1]]
            low, high = box_extremes(take_columns(inner.scores, members), lo, hi)
        level = forced_levels[g] = kth_largest(low, int(inner.floors[g]))
        keep = np.flatnonzero((high < group_levels[g]) & (high >= level))
        found.append(keep + starts[g] if order is None else members[keep])
    return np.concatenate(found), forced_levels


def reduce_problem(inner: InnerProblem, ones: np.ndarray, survivors: np.ndarray, taken=None,
                   survivor_scores=None) -> Screening:
    """The problem left on ``survivors`` (increasing indices) once ``ones`` are kept, as a
    :class:`Screening` without levels.

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
    return Screening(reduced, ones, survivors, taken)


def _fixed_layout(order, starts):
    return lambda: (order, starts)


def _group_floor_levels(inner: InnerProblem, values: np.ndarray) -> np.ndarray:
    """Per group g: the floors[g]-th largest of ``values`` in g (+inf where floors[g] = 0).

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
    return levels
