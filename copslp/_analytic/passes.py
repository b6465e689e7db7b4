r"""The O(D) passes of the analytic method, for scores that live where the caller keeps them.

The analytic method (docs/maths.md §3-4) touches all D elements only in a few passes: a
subsample, the screening of a box of multipliers, the levels of ``v = s_0 + sum_i lambda_i s_i``
over what screening fixed, and the mask. Everything else runs on the subsample or on the
survivors, a few thousand elements, as numpy arrays. :func:`copslp._analytic.driver.solve_streamed`
drives the method through two small interfaces, so that the scores need never be copied:

* :class:`ScorePasses`: the passes over the scores one process holds (its *shard*: all D
  elements in one process, or a contiguous part of them when the scores are spread over
  processes). :class:`ArrayPasses` reads numpy arrays; ``torch_adapter`` reads torch tensors
  on their own device and in their own dtype.
* :class:`Collectives`: what the processes exchange (sums, maxima, the subsample and the
  survivors gathered on one process, the decisions broadcast from it). :class:`OneProcess`
  is the trivial case; ``torch_adapter`` implements it with ``torch.distributed``.

Conventions shared by every implementation:

* The shard holds n score rows of equal length (row 0 is s_0); positions are local
  (0 .. ``size`` - 1); the global position of a local one is ``offset + position``, the
  shards lying in rank order.
* Everything returned is numpy, float64 for values (sums taken in float64, whatever the
  dtype of the scores), int64 for counts.
* A *box* ``[lo, hi]`` of multipliers for the score rows ``rows`` (the objective first, then
  one multiplier per further row) defines ``low_j`` and ``high_j``, the smallest and largest
  ``v_j(lambda) = s_{rows[0] j} + sum_i lambda_i s_{rows[i] j}`` over the box
  (:func:`copslp._analytic.screening.box_extremes`). With ``lo = hi`` (or no multiplier at all) the
  box is a point and ``low = high = v``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np

from .._blocks import blocks
from .._selection import (every_row, group_members, group_order, group_starts, is_non_decreasing, kth_largest_in_groups,
                          take_columns)
from .screening import Collected, box_extremes, kernel_block, screen_piece

__all__ = ["ScorePasses", "Collectives", "LocalScreen", "LevelsOutside", "ArrayPasses", "OneProcess"]


@dataclass(frozen=True, eq=False)
class LocalScreen:
    """What one shard's screening pass (:meth:`ScorePasses.screen`) found.

    Attributes
    ----------
    above_one : int
        ``#{j : high_j > one_level}`` (verifies the one-level).
    reaching : int
        ``#{j : low_j >= zero_level}`` (verifies the zero-level).
    support : ndarray of int64, shape (G,), or None
        With groups: per group g, ``#{j in g : low_j >= group_levels[g]}``.
    fixed_ones : int
        Number of elements fixed to 1: ``low_j > one_level``.
    taken : ndarray, shape (n,)
        Every score row summed over the elements fixed to 1.
    fixed_per_group : ndarray of int64, shape (G,), or None
        With groups: elements fixed to 1 per group.
    n_survivors : int
        m, the survivors: neither fixed to 1 nor dropped (``low_j <= one_level`` and
        ``high_j >= level_j``, level_j being ``group_levels[g(j)]`` with groups and
        ``zero_level`` without).
    handle : Any
        Whatever the implementation needs to find the fixed ones and the survivors again
        (:meth:`ScorePasses.extremes`, :meth:`ScorePasses.mask`,
        :meth:`ScorePasses.survivor_passes`); opaque to the driver.
    fetch : callable
        ``fetch()`` returns the survivors' values and groups (see :attr:`survivors`): they are
        moved where the caller reads them (the host, float64) only when asked for.
    """

    above_one: int
    reaching: int
    support: np.ndarray | None
    fixed_ones: int
    taken: np.ndarray
    fixed_per_group: np.ndarray | None
    n_survivors: int
    handle: Any
    fetch: Callable[[], tuple]

    @cached_property
    def _fetched(self) -> tuple:
        return self.fetch()

    @property
    def survivors(self) -> np.ndarray:
        """Every score row at the survivors, float64 of shape (n, m), in increasing position."""
        return self._fetched[0]

    @property
    def survivor_groups(self) -> np.ndarray | None:
        """Their groups (int64), None without groups."""
        return self._fetched[1]


@dataclass(frozen=True, eq=False)
class LevelsOutside:
    """What one shard's :meth:`ScorePasses.extremes` pass measured, per segment (one segment
    per group with groups, a single one without).

    Attributes
    ----------
    zeros_max : ndarray, shape (segments,)
        Largest ``v_j`` over the elements screening dropped (-inf where none).
    ones_min : ndarray, shape (segments,)
        Smallest ``v_j`` over the elements screening fixed to 1 (+inf where none).
    magnitudes : ndarray, shape (n,)
        ``max_j |s_ij|`` per score row over the whole shard.
    abs_taken : ndarray, shape (n,)
        ``sum_j |s_ij|`` over the elements fixed to 1.
    """

    zeros_max: np.ndarray
    ones_min: np.ndarray
    magnitudes: np.ndarray
    abs_taken: np.ndarray


class ScorePasses(ABC):
    """The passes over the scores one process holds (see the module docstring).

    Attributes
    ----------
    n_scores : int
        n, the number of score rows (the same on every process).
    size : int
        Elements in this shard (may be 0 on some processes).
    n_groups : int
        G, the number of groups of the floors (0 without groups); group ids lie in [0, G).
    """

    n_scores: int
    size: int
    n_groups: int

    @abstractmethod
    def non_finite(self) -> np.ndarray:
        """Per score row, the number of entries that are NaN or infinite (int64, shape (n,))."""

    @abstractmethod
    def group_counts(self) -> np.ndarray:
        """Elements per group in this shard (int64, shape (G,)); empty without groups."""

    @abstractmethod
    def take(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Every score row at the local ``positions`` (increasing), as float64 of shape
        (n, len(positions)), and their groups (None without groups)."""

    @abstractmethod
    def screen(self, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, one_level: float, zero_level: float,
               group_levels: np.ndarray | None) -> LocalScreen:
        """One pass over the box ``[lo, hi]`` of multipliers of ``rows``: counts that verify
        the levels, the elements fixed to 1 summed, the survivors gathered (see
        :class:`LocalScreen`). ``group_levels`` (with groups, at most ``zero_level``) replaces
        the zero level group by group; ``-inf`` keeps a whole group. With ``group_levels``
        None the groups play no part (``support`` and ``fixed_per_group`` are None; the
        survivors' groups are still returned)."""

    @abstractmethod
    def members(self, chosen: np.ndarray) -> np.ndarray:
        """The local positions (int64, increasing) of the elements whose group is ``chosen``
        (bool, one per group): the whole groups of a subsample of groups."""

    @abstractmethod
    def group_levels(self, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, floors: np.ndarray) -> np.ndarray:
        """Per group g, a value that at least ``floors[g]`` members of g in this shard reach
        with their ``low_j`` over the box ``[lo, hi]`` of ``rows``: the ``floors[g]``-th
        largest of them, or (where the shard reads a group in parts) the largest such value
        of one part; -inf where no part holds ``floors[g]`` members, +inf where ``floors[g]``
        is 0 (float64, shape (G,)). The maximum over the shards is such a value for the
        whole group: the screening's exact group levels when the subsample cannot place
        them (per-filter floors)."""

    @abstractmethod
    def extremes(self, screened: LocalScreen, rows: np.ndarray, multipliers: np.ndarray) -> LevelsOutside:
        """The levels of ``v`` (``rows``, ``multipliers``) over what ``screened`` fixed, and the
        magnitudes the certificate measures against (see :class:`LevelsOutside`)."""

    @abstractmethod
    def positive_part(self, rows: np.ndarray, multipliers: np.ndarray, level: float,
                      floor_multipliers: np.ndarray | None) -> float:
        """``sum_j max(v_j + nu_{g(j)} - level, 0)`` over the shard (nu = ``floor_multipliers``,
        per group; none without groups)."""

    @abstractmethod
    def survivor_passes(self, screened: LocalScreen) -> "ScorePasses":
        """The passes over the survivors of ``screened`` alone (in their order, with their
        groups), where the scores live and in their dtype: the shard of the problem left on
        them, solved a level down when they are too many to gather."""

    @abstractmethod
    def mask(self, screened: LocalScreen, kept_survivors: np.ndarray) -> Any:
        """The shard's mask (in the caller's array type): True on the elements fixed to 1
        and on the survivors where ``kept_survivors`` (bool, one per survivor of this shard,
        in their order) is True."""


class Collectives(ABC):
    """What the processes exchange; every method is called by every process, in the same
    order (as collectives are). Results that decide the road the driver takes are identical,
    bit for bit, on every process.

    Attributes
    ----------
    rank, world_size : int
        This process and the number of processes; rank 0 runs the exact finish.
    """

    rank: int
    world_size: int

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @abstractmethod
    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum over processes (float64 or int64), the same on every process."""

    @abstractmethod
    def maximum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise maximum over processes (float64)."""

    @abstractmethod
    def gather_columns(self, columns: np.ndarray) -> np.ndarray | None:
        """The (rows, m_p) float64 or int64 arrays of every process p, concatenated along the
        last axis in rank order, on rank 0 (None elsewhere). 1-D arrays are one row. The
        driver only reads what it gets (in one process it may be the array given)."""

    @abstractmethod
    def broadcast(self, value: Any) -> Any:
        """``value`` of rank 0 (a picklable object), on every process."""

    @abstractmethod
    def scatter(self, parts: list | None) -> Any:
        """Rank 0's ``parts[p]`` on process p (``parts`` is ignored elsewhere)."""

    def offset(self, size: int) -> int:
        """The global position of this process's first element: the sizes of the lower ranks."""
        sizes = self.sizes(size)
        return int(sizes[:self.rank].sum())

    def sizes(self, size: int) -> np.ndarray:
        """Every process's ``size`` (int64, rank order), on every process."""
        one_hot = np.zeros(self.world_size, dtype=np.int64)
        one_hot[self.rank] = size
        return self.sum(one_hot)


class OneProcess(Collectives):
    """All the data in this process: every collective is the identity."""

    rank, world_size = 0, 1

    def sum(self, values):
        return np.array(values, copy=True)

    def maximum(self, values):
        return np.array(values, dtype=np.float64, copy=True)

    def gather_columns(self, columns):
        gathered = np.asarray(columns).view()  # the same memory: the driver only reads it
        gathered.flags.writeable = False
        return gathered

    def broadcast(self, value):
        return value

    def scatter(self, parts):
        return parts[0]


def _group_extreme(ufunc, out: np.ndarray, groups: np.ndarray, values: np.ndarray) -> None:
    """``out[g] = ufunc(out[g], values over the elements of group g)`` for one block: over
    runs of equal ids (``ufunc.reduceat``, then one update per run) when the block has few of
    them, as layers do, else element by element (``ufunc.at``)."""
    starts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    if starts.shape[0] < groups.shape[0] // 64:
        starts = np.concatenate([[0], starts])
        ufunc.at(out, groups[starts], ufunc.reduceat(values, starts))
    else:
        ufunc.at(out, groups, values)


_UNKNOWN = object()  # groups not yet looked at
#: Group runs in one block above which the block is screened with a level per element.
_RUNS_PER_BLOCK = 8


class ArrayPasses(ScorePasses):
    """:class:`ScorePasses` over numpy arrays: ``scores`` of shape (n, D_local) in any real
    dtype (read as they are, summed in float64), ``groups`` (int, one per element) and the
    number of groups with floors. Blocks of :data:`copslp._blocks.BLOCK` elements keep every
    temporary small. ``layers``: the offsets of the groups (length G + 1) when each is one
    contiguous run in the order of its id, as layers are (validation knows); when not given,
    the first screening with groups finds out (one comparison pass over ``groups``, kept:
    ``groups`` must not change while the instance is used). A screening reads a block that
    holds at most :data:`_RUNS_PER_BLOCK` such runs run by run, at one level each, without a
    level per element; blocks of many small groups keep a level per element (a call of the
    compiled loop per run would cost more than it saves)."""

    def __init__(self, scores: np.ndarray, groups: np.ndarray | None = None, n_groups: int = 0, *,
                 layers: np.ndarray | None = None):
        self.scores = scores
        self.groups = groups
        self.n_scores, self.size = scores.shape
        self.n_groups = n_groups if groups is not None else 0
        self._layers = layers if layers is not None else _UNKNOWN

    def _layer_starts(self) -> np.ndarray | None:
        """The offsets of the groups if each is one run in the order of its id, else None."""
        if self._layers is _UNKNOWN:
            contiguous = is_non_decreasing(self.groups)
            self._layers = group_starts(np.bincount(self.groups, minlength=self.n_groups)) if contiguous else None
        return self._layers

    def _pieces(self, width: int, grouped: bool):
        """``(slice, group)`` covering the elements in order, at most ``width`` long: blocks
        (group None), or with groups that are runs, each block of at most
        :data:`_RUNS_PER_BLOCK` of them cut where a group ends."""
        starts = self._layer_starts() if grouped else None
        for block in blocks(self.size, width):
            if starts is None:
                yield block, None
                continue
            position = block.start
            group, last = (int(at) - 1 for at in np.searchsorted(starts, [position, block.stop - 1], side="right"))
            if last - group >= _RUNS_PER_BLOCK:
                yield block, None
                continue
            while position < block.stop:
                while starts[group + 1] <= position:  # empty groups
                    group += 1
                stop = min(block.stop, int(starts[group + 1]))
                yield slice(position, stop), group
                position = stop

    def non_finite(self):
        counts = np.zeros(self.n_scores, dtype=np.int64)
        for block in blocks(self.size):
            scores = self.scores[:, block]
            with np.errstate(over="ignore", invalid="ignore"):
                sums = scores.sum(axis=1)  # finite sums: every entry is (one pass instead of two)
            if not np.isfinite(sums).all():
                counts += np.count_nonzero(~np.isfinite(scores), axis=1)
        return counts

    def group_counts(self):
        if self.groups is None:
            return np.zeros(0, dtype=np.int64)
        return np.bincount(self.groups, minlength=self.n_groups).astype(np.int64)

    def take(self, positions):
        values = take_columns(self.scores, positions).astype(np.float64, copy=False)
        return values, None if self.groups is None else self.groups[positions].astype(np.int64)

    def _rows(self, rows, block):
        """The scores of ``rows`` on ``block``: a view when ``rows`` are all the rows in order."""
        if every_row(rows, self.n_scores):
            return self.scores[:, block]
        return self.scores[rows, block]

    def _extremes(self, rows, lo, hi, block):
        return box_extremes(self._rows(rows, block).astype(np.float64, copy=False), lo, hi)

    def screen(self, rows, lo, hi, one_level, zero_level, group_levels, tally=None):
        """The screening pass, block after block in the compiled loop of
        :func:`copslp._analytic.screening.screen_piece` (``one_level >= zero_level``: the driver
        asks for no other). The handle is ``(ones, survivors)``: the positions fixed to 1 and
        those that survive, both increasing. With a ``tally``
        (:class:`copslp._analytic.screening.Tally`, every row screened) the pass also reads what
        validation needs of every element: the sum of ``high`` and each secondary row's
        candidates for its k largest."""
        grouped = self.groups is not None and group_levels is not None
        support = np.zeros(self.n_groups, dtype=np.int64) if grouped else None
        all_rows = every_row(rows, self.n_scores) and rows.shape[0] > 1
        scores = [self.scores[row] for row in rows]  # views
        if rows.shape[0] == 1:  # a point box on one row: v = s + 0 s, the pass of one multiplier
            scores, lo, hi = scores * 2, np.zeros(1), np.zeros(1)
        n_rows = len(scores)
        taken = np.zeros(2 * n_rows)  # compensated sums of the scores fixed to 1, and their errors
        width = kernel_block(self.size)
        high = np.empty(width)
        survivors = Collected([np.int64, (n_rows, np.float64)], width)
        ones = Collected([np.int64], width)
        above_one = reaching = 0
        candidates = [] if tally is None else [Collected([self.scores.dtype], width) for _ in range(n_rows - 1)]
        total = 0.0  # of high: a Python float, whose sums overflow without a warning
        for block, group in self._pieces(width, grouped):
            count = block.stop - block.start
            (positions, columns), (fixed,) = survivors.room(count, block.start, self.size), ones.room(count, block.start, self.size)
            found_room = None if tally is None else [row.room(count, block.start, self.size)[0] for row in candidates]
            groups, level = None, zero_level
            if grouped and group is None:  # groups in any order: a level per element
                groups = np.asarray(self.groups[block], dtype=np.intp)
                level = group_levels.take(groups)
            elif grouped:
                groups, level = group, float(group_levels[group])
            n_ones, n_survivors, high_above_one, low_at_zero, found, block_total = screen_piece(
                [row[block] for row in scores], lo, hi, level, None if tally is None else tally.levels, one_level,
                zero_level, block.start, groups, support, positions, columns, high, fixed, found_room, taken)
            above_one += high_above_one
            reaching += low_at_zero
            total += block_total
            ones.add(n_ones)
            survivors.add(n_survivors)
            for row, found_count in zip(candidates, found):
                row.add(found_count)
        if tally is not None:
            tally.count(total, [row.arrays()[0] for row in candidates])
        (at_one,), (kept, kept_scores) = ones.arrays(), survivors.arrays()
        with np.errstate(invalid="ignore"):  # non-finite scores: validation says so
            taken = taken[:n_rows] + taken[n_rows:]
        if not all_rows:  # every row summed over the ones, and gathered at the survivors
            taken = take_columns(self.scores, at_one).sum(axis=1)
            kept_scores = None
        fixed_per_group = np.bincount(self.groups[at_one], minlength=self.n_groups) if grouped else None

        def fetch():
            values = kept_scores if kept_scores is not None else self.take(kept)[0]
            return values, None if self.groups is None else self.groups[kept].astype(np.int64)

        return LocalScreen(above_one, reaching, support, int(at_one.shape[0]), taken, fixed_per_group,
                           int(kept.shape[0]), (at_one, kept), fetch)

    def positions(self, screened):
        """``(ones, survivors)`` of a screening: the positions it fixed to 1 and those that
        survived, increasing."""
        return screened.handle

    def members(self, chosen):
        starts = self._layer_starts()
        if starts is None:
            return np.flatnonzero(chosen[self.groups]).astype(np.int64)
        return group_members(None, starts, np.flatnonzero(chosen))[0]  # layers: their runs, no pass

    def group_levels(self, rows, lo, hi, floors):
        """Block by block (each block's part of a group is a part): the largest ``low`` per
        group for the floors of 1 (over runs of equal ids where the groups are layers, see
        :func:`_group_extreme`), the selection of :func:`kth_largest_in_groups` for larger ones."""
        top = np.full(self.n_groups, -np.inf)
        levels = np.full(self.n_groups, -np.inf)
        several = floors > 1
        for block in blocks(self.size):
            low = self._extremes(rows, lo, hi, block)[0]
            groups = self.groups[block]
            _group_extreme(np.maximum, top, groups, low)
            if several.any():
                members = np.flatnonzero(several[groups])
                member_groups = groups[members]
                counts = np.bincount(member_groups, minlength=self.n_groups)
                ranks = np.where(several & (counts >= floors), floors, 0)
                part = kth_largest_in_groups(low[members], group_order(member_groups), group_starts(counts), ranks)
                np.maximum(levels, np.where(ranks > 0, part, -np.inf), out=levels)
        levels[floors == 1] = top[floors == 1]
        levels[floors == 0] = np.inf
        return levels

    def survivor_passes(self, screened):
        return ArrayPasses(screened.survivors, screened.survivor_groups, self.n_groups)  # gathered by the pass

    def extremes(self, screened, rows, multipliers):
        ones, survivors = screened.handle
        segments = max(self.n_groups, 1)
        zeros_max, ones_min = np.full(segments, -np.inf), np.full(segments, np.inf)
        magnitudes, abs_taken = np.zeros(self.n_scores), np.zeros(self.n_scores)
        starts = [block.start for block in blocks(self.size)]
        survivor_bounds = np.searchsorted(survivors, starts + [self.size])
        one_bounds = np.searchsorted(ones, starts + [self.size])
        for index, block in enumerate(blocks(self.size)):
            v = self._extremes(rows, multipliers, multipliers, block)[0]  # first: it streams the block into cache
            if np.may_share_memory(v, self.scores):
                v = v.astype(np.float64)  # a copy: the levels below write into it
            scores = self.scores[:, block]
            magnitudes = np.maximum(magnitudes, np.abs(scores).max(axis=1, initial=0.0))
            at_one = ones[one_bounds[index]:one_bounds[index + 1]] - block.start
            abs_taken += np.abs(take_columns(scores, at_one)).sum(axis=1)
            kept = v.take(at_one)
            v[at_one] = -np.inf  # what is left are the dropped elements
            v[survivors[survivor_bounds[index]:survivor_bounds[index + 1]] - block.start] = -np.inf
            if self.groups is None:
                zeros_max[0] = max(zeros_max[0], float(v.max(initial=-np.inf)))
                ones_min[0] = min(ones_min[0], float(kept.min(initial=np.inf)))
            else:
                groups = self.groups[block]
                _group_extreme(np.maximum, zeros_max, groups, v)
                if at_one.shape[0]:
                    _group_extreme(np.minimum, ones_min, groups[at_one], kept)
        return LevelsOutside(zeros_max, ones_min, magnitudes, abs_taken)

    def positive_part(self, rows, multipliers, level, floor_multipliers):
        total = 0.0
        for block in blocks(self.size):
            v = self._extremes(rows, multipliers, multipliers, block)[0]
            if floor_multipliers is not None:  # not in place: without multipliers v is the scores' own row
                v = v + floor_multipliers[self.groups[block]]
            total += float(np.maximum(v - level, 0.0).sum())
        return total

    def mask(self, screened, kept_survivors):
        ones, survivors = screened.handle
        mask = np.zeros(self.size, dtype=bool)
        mask[ones] = True
        mask[survivors[kept_survivors]] = True
        return mask

