r"""One streamed pass over an LP point: everything the certificate and the rounding read.

For a point ``x`` (length D) and a tolerance ``xtol``, an entry *counts as 1* when
``x_j >= 1 - xtol``, *as 0* when ``x_j <= xtol``, and is *fractional* otherwise. The pass reads
the scores and x once, block by block, and returns a :class:`PointScan`: ``scores @ x``, the
extremes and sum of x, the entries counted as 1 (a mask, and ``scores`` summed over it) and
the fractional ones (indices).

The segments of the pass are the groups of the problem's floors (one segment without them),
read in the problem's group order (:attr:`copslp.Problem.group_order`: the storage order when
the groups are contiguous, as layers are; otherwise the elements are gathered block by block
through that permutation). Per segment the pass counts the entries counted as 1 and sums x,
and, given multipliers ``lambda`` and ``v = s_0 + sum_i lambda_i s_i``, measures the largest
v_j among the entries counted as 0 and the smallest among those counted as 1. The certificate
derives the budget dual, the floor multipliers and the duality gap from these numbers, and
the rounding reads the counts (see :mod:`copslp._certificate`, :mod:`copslp._rounding`).

"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._blocks import blocks
from ._point import IndexedPoint, MaskPoint
from ._selection import take_columns

__all__ = ["PointScan", "scan_point", "segment_runs"]


@dataclass(frozen=True, eq=False)
class PointScan:
    """What :func:`scan_point` measured; the per-segment arrays have one entry per segment
    (``zeros_max`` and ``ones_min`` are NaN without multipliers). ``screened`` counts the
    elements decided by screening levels without being read (0 when every one was): for
    them ``zeros_max`` and ``ones_min`` hold the levels, bounds on their extremes.
    ``segment_ones`` counts the entries of ``ones`` in each segment (:attr:`n_ones` all of
    them, without a pass over the mask)."""

    values: np.ndarray
    x_min: float
    x_max: float
    ones: np.ndarray
    ones_values: np.ndarray
    fractional: np.ndarray
    segment_x: np.ndarray
    segment_ones: np.ndarray
    zeros_max: np.ndarray
    ones_min: np.ndarray
    screened: int = 0

    @property
    def x_sum(self) -> float:
        return float(self.segment_x.sum())

    @property
    def n_ones(self) -> int:
        return int(self.segment_ones.sum())


def scan_point(problem, x, xtol: float, multipliers: np.ndarray | None = None) -> PointScan:
    """Scan ``x`` against ``problem.scores``, one segment per group of its floors (one
    segment without floors). ``multipliers`` (one lambda per secondary score) are needed for
    the levels ``zeros_max`` and ``ones_min``.

    ``x`` is a float array, a boolean mask (an integral point), a
    :class:`copslp._point.MaskPoint` or an :class:`copslp._point.IndexedPoint`. The last
    three are read as they are: their mask of ones gives ``PointScan.ones``, no comparisons
    or products with x are made over the mask, and the listed entries are added on their own.
    Sums are
    float64 whatever the dtype of the scores. ``PointScan.ones`` is the scan's own array,
    never ``x``'s: the rounding writes the mask into it."""
    if x.dtype == np.bool_:
        x = MaskPoint(x, np.empty(0, dtype=np.intp), np.empty(0))
    if isinstance(x, (MaskPoint, IndexedPoint)):
        return _scan_mask_point(problem, x, xtol, multipliers)
    order, segments = _layout(problem)
    return _scan_dense(problem.scores, order, segments, x, xtol, multipliers)


def _layout(problem):
    """(order, segments): the group order (None when the storage order is it) and the
    segment offsets in that order."""
    if problem.has_floors:
        return problem.group_order, problem.group_starts
    return None, np.array([0, problem.size])


def _block_columns(scores, order, block):
    """(where, scores of the block): ``where`` is the block itself, or the elements the block
    covers in group order."""
    if order is None:
        return block, scores[:, block]
    where = order[block]
    return where, take_columns(scores, where)


def _scan_dense(scores, order, segments, x: np.ndarray, xtol: float, multipliers) -> PointScan:
    """The scan of a float array ``x`` against the columns of ``scores``, in the layout
    ``(order, segments)`` of :func:`_layout`."""
    n, size = scores.shape
    n_segments = segments.shape[0] - 1
    values, ones_values = np.zeros(n), np.zeros(n)
    ones = np.empty(size, dtype=bool)
    fractional = []
    x_min, x_max = np.inf, -np.inf
    segment_x, segment_ones = np.zeros(n_segments), np.zeros(n_segments, dtype=np.int64)
    zeros_max, ones_min = np.full(n_segments, -np.inf), np.full(n_segments, np.inf)
    weights = None if multipliers is None else np.concatenate([[1.0], multipliers])  # v = weights @ scores
    for block in blocks(size):
        where, s = _block_columns(scores, order, block)
        xb = x[block] if order is None else x.take(where)
        runs, starts = segment_runs(segments, block)
        values += np.einsum("ij,j->i", s, xb)  # no BLAS threads: they stall on a busy machine
        x_min, x_max = min(x_min, float(xb.min())), max(x_max, float(xb.max()))
        segment_x[runs] += np.add.reduceat(xb, starts)
        one = ones[block] if order is None else np.empty(xb.shape[0], dtype=bool)
        np.greater_equal(xb, 1.0 - xtol, out=one)
        if order is not None:
            ones[where] = one
        at_one = np.flatnonzero(one)
        ones_in_run = _count_in_runs(at_one, starts, runs, segment_ones)
        ones_values += take_columns(s, at_one).sum(axis=1)
        zero = xb <= xtol
        at_fraction = None
        if at_one.shape[0] + int(np.count_nonzero(zero)) < xb.shape[0]:
            at_fraction = np.flatnonzero(~(one | zero))
            fractional.append(at_fraction + block.start if order is None else where[at_fraction])
        if weights is not None:
            _levels_of_block(s, weights, at_one, at_fraction, ones_in_run, runs, starts, ones_min, zeros_max)
    fractional = np.concatenate(fractional) if fractional else np.empty(0, dtype=np.intp)
    if multipliers is None:
        zeros_max = ones_min = np.full(n_segments, np.nan)
    return PointScan(values, x_min, x_max, ones, ones_values, fractional,
                     segment_x, segment_ones, zeros_max, ones_min)


def _scan_mask_point(problem, x, xtol: float, multipliers) -> PointScan:
    """:func:`scan_point` of a mask and a few listed entries: the pass reads the mask and the
    scores; the listed entries are added after it (those within ``xtol`` of 1 join the
    entries counted as 1, those within ``xtol`` of 0 the ones counted as 0)."""
    scores = problem.scores
    n, size = scores.shape
    order, segments = _layout(problem)
    n_segments = segments.shape[0] - 1
    listed, listed_x = x.index, x.values
    as_one = listed_x >= 1.0 - xtol
    as_fraction = ~as_one & (listed_x > xtol)
    ones = x.own_mask()
    ones[listed[as_one]] = True
    fractional = listed[as_fraction]
    ones_values = np.zeros(n)
    segment_ones = np.zeros(n_segments, dtype=np.int64)
    zeros_max, ones_min = np.full(n_segments, -np.inf), np.full(n_segments, np.inf)
    weights = None if multipliers is None else np.concatenate([[1.0], multipliers])
    for block in blocks(size):
        where, s = _block_columns(scores, order, block)
        runs, starts = segment_runs(segments, block)
        at_one = np.flatnonzero(ones[block] if order is None else ones.take(where))
        ones_in_run = _count_in_runs(at_one, starts, runs, segment_ones)
        if weights is not None:  # first: v streams the block into cache, the gather below finds it there
            at_fraction = _fractional_in_block(fractional, order, block, where)
            _levels_of_block(s, weights, at_one, at_fraction, ones_in_run, runs, starts, ones_min, zeros_max)
        ones_values += take_columns(s, at_one).sum(axis=1)
    listed_scores = take_columns(scores, listed)
    # <s, x>: ones_values counted the listed entries near 1 as 1; they count with x_j itself
    values = ones_values - listed_scores[:, as_one].sum(axis=1) + np.einsum("ij,j->i", listed_scores, listed_x)
    listed_segments = problem.groups[listed] if problem.has_floors else np.zeros(listed.shape[0], dtype=np.intp)
    segment_x = segment_ones.astype(np.float64)
    np.add.at(segment_x, listed_segments, listed_x - as_one)
    at_one_exactly = int(segment_ones.sum()) - int(np.count_nonzero(as_one))  # the entries of the mask
    x_min = 0.0 if at_one_exactly + listed.shape[0] < size else 1.0
    x_max = 1.0 if at_one_exactly else 0.0
    if listed.shape[0]:
        x_min, x_max = min(x_min, float(listed_x.min())), max(x_max, float(listed_x.max()))
    if multipliers is None:
        zeros_max = ones_min = np.full(n_segments, np.nan)
    return PointScan(values, x_min, x_max, ones, ones_values, fractional,
                     segment_x, segment_ones, zeros_max, ones_min)


def _fractional_in_block(fractional: np.ndarray, order, block: slice, where):
    """Positions in the block of the ``fractional`` elements it holds (None if none)."""
    if not fractional.shape[0]:
        return None
    if order is None:
        inside = fractional[(fractional >= block.start) & (fractional < block.stop)]
        return inside - block.start if inside.shape[0] else None
    inside = np.flatnonzero(np.isin(where, fractional))
    return inside if inside.shape[0] else None


def _count_in_runs(at_one, starts, runs, segment_ones):
    """Add the entries of ``at_one`` (block positions) in each run to ``segment_ones``; return
    the counts per run."""
    if runs.shape[0] == 1:
        ones_in_run = np.array([at_one.shape[0]])
    else:
        ones_in_run = np.diff(np.searchsorted(at_one, starts), append=at_one.shape[0])
    segment_ones[runs] += ones_in_run
    return ones_in_run


def _levels_of_block(s, weights, at_one, at_fraction, ones_in_run, runs, starts, ones_min, zeros_max):
    """Update the smallest v among the entries counted as 1 and the largest among those
    counted as 0, per segment, with one block (``s``, its scores; positions in the block)."""
    v = s[0].copy() if not np.any(weights[1:]) else np.einsum("i,ij->j", weights, s)
    if at_one.shape[0]:
        kept = v.take(at_one)
        if runs.shape[0] == 1:
            ones_min[runs[0]] = min(ones_min[runs[0]], kept.min())
        else:
            filled = ones_in_run > 0
            lowest = np.minimum.reduceat(kept, np.searchsorted(at_one, starts[filled]))
            ones_min[runs[filled]] = np.minimum(ones_min[runs[filled]], lowest)
    v[at_one] = -np.inf  # what is left are the entries counted as 0
    if at_fraction is not None:
        v[at_fraction] = -np.inf
    if runs.shape[0] == 1:
        zeros_max[runs[0]] = max(zeros_max[runs[0]], v.max())
    else:
        zeros_max[runs] = np.maximum(zeros_max[runs], np.maximum.reduceat(v, starts))


def segment_runs(segments: np.ndarray, block: slice):
    """The segments that meet ``block`` and where each starts in it (block-local offsets)."""
    first = int(np.searchsorted(segments, block.start, side="right")) - 1
    last = int(np.searchsorted(segments, block.stop - 1, side="right")) - 1
    runs = np.arange(first, last + 1)
    begin = np.maximum(segments[runs], block.start)
    met = np.minimum(segments[runs + 1], block.stop) > begin  # empty segments have no run
    return runs[met], begin[met] - block.start
