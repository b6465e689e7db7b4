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
from ._selection import take_columns

__all__ = ["PointScan", "scan_point", "segment_runs"]


@dataclass(frozen=True, eq=False)
class PointScan:
    """What :func:`scan_point` measured; the per-segment arrays have one entry per segment
    (``zeros_max`` and ``ones_min`` are NaN without multipliers)."""

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

    @property
    def x_sum(self) -> float:
        return float(self.segment_x.sum())


def scan_point(problem, x: np.ndarray, xtol: float, multipliers: np.ndarray | None = None) -> PointScan:
    """Scan ``x`` against ``problem.scores``, one segment per group of its floors (one
    segment without floors). ``multipliers`` (one lambda per secondary score) are needed for
    the levels ``zeros_max`` and ``ones_min``. A boolean ``x`` is an integral point (a mask):
    it is read as it is (no comparisons, no products with x), and ``PointScan.ones`` is ``x``
    itself."""
    scores = problem.scores
    n, size = scores.shape
    integral = x.dtype == np.bool_
    order = problem.group_order if problem.has_floors else None
    segments = problem.group_starts if problem.has_floors else np.array([0, size])
    n_segments = segments.shape[0] - 1
    values, ones_values = np.zeros(n), np.zeros(n)
    ones = x if integral else np.empty(size, dtype=bool)
    fractional = []
    x_min, x_max = np.inf, -np.inf
    segment_x, segment_ones = np.zeros(n_segments), np.zeros(n_segments, dtype=np.int64)
    zeros_max, ones_min = np.full(n_segments, -np.inf), np.full(n_segments, np.inf)
    if multipliers is not None:
        weights = np.concatenate([[1.0], multipliers])  # v = weights @ scores
        plain = not np.any(multipliers)  # v = s_0
    for block in blocks(size):
        if order is None:
            where = block
            s, xb = scores[:, block], x[block]
        else:  # groups in any order: gather the block through the permutation
            where = order[block]
            s, xb = take_columns(scores, where), x.take(where)
        runs, starts = segment_runs(segments, block)
        if integral:
            one = xb
        else:
            values += np.einsum("ij,j->i", s, xb)  # no BLAS threads: they stall on a busy machine
            x_min, x_max = min(x_min, float(xb.min())), max(x_max, float(xb.max()))
            segment_x[runs] += np.add.reduceat(xb, starts)
            one = ones[block] if order is None else np.empty(xb.shape[0], dtype=bool)
            np.greater_equal(xb, 1.0 - xtol, out=one)
            if order is not None:
                ones[where] = one
        at_one = np.flatnonzero(one)
        ones_in_run = np.diff(np.searchsorted(at_one, starts), append=at_one.shape[0])
        segment_ones[runs] += ones_in_run
        ones_values += take_columns(s, at_one).sum(axis=1)
        at_fraction = None
        if not integral:
            zero = xb <= xtol
            if at_one.shape[0] + int(np.count_nonzero(zero)) < xb.shape[0]:
                at_fraction = np.flatnonzero(~(one | zero))
                fractional.append(at_fraction + block.start if order is None else where[at_fraction])
        if multipliers is None:
            continue
        v = s[0].copy() if plain else np.einsum("i,ij->j", weights, s)
        if at_one.shape[0]:
            filled = ones_in_run > 0
            first = np.searchsorted(at_one, starts[filled])
            lowest = np.minimum.reduceat(v.take(at_one), first)
            ones_min[runs[filled]] = np.minimum(ones_min[runs[filled]], lowest)
        v[at_one] = -np.inf  # what is left are the entries counted as 0
        if at_fraction is not None:
            v[at_fraction] = -np.inf
        zeros_max[runs] = np.maximum(zeros_max[runs], np.maximum.reduceat(v, starts))
    if integral:
        values = ones_values.copy()
        segment_x = segment_ones.astype(np.float64)
        kept = int(segment_ones.sum())
        x_min, x_max = (0.0 if kept < size else 1.0), (1.0 if kept else 0.0)
    fractional = np.concatenate(fractional) if fractional else np.empty(0, dtype=np.intp)
    if multipliers is None:
        zeros_max = ones_min = np.full(n_segments, np.nan)
    return PointScan(values, x_min, x_max, ones, ones_values, fractional,
                     segment_x, segment_ones, zeros_max, ones_min)


def segment_runs(segments: np.ndarray, block: slice):
    """The segments that meet ``block`` and where each starts in it (block-local offsets)."""
    first = int(np.searchsorted(segments, block.start, side="right")) - 1
    last = int(np.searchsorted(segments, block.stop - 1, side="right")) - 1
    runs = np.arange(first, last + 1)
    begin = np.maximum(segments[runs], block.start)
    met = np.minimum(segments[runs + 1], block.stop) > begin  # empty segments have no run
    return runs[met], begin[met] - block.start
