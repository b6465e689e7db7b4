r"""One streamed pass over an LP point: everything the certificate and the rounding read.

For a point ``x`` (length D) and a tolerance ``xtol``, an entry *counts as 1* when
``x_j >= 1 - xtol``, *as 0* when ``x_j <= xtol``, and is *fractional* otherwise. The pass reads
the scores and x once, block by block, and returns a :class:`PointScan`: ``scores @ x``, the
extremes and sum of x, the entries counted as 1 (a mask, and ``scores`` summed over it) and
the fractional ones (indices). Given multipliers ``lambda`` it also measures, with
``v = s_0 + sum_i lambda_i s_i``, the largest v_j among the entries counted as 0 and the
smallest among those counted as 1; the certificate derives the budget dual and the duality
gap from these numbers (see :mod:`copslp._certificate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._blocks import blocks
from ._selection import take_columns

__all__ = ["PointScan", "scan_point"]


@dataclass(frozen=True, eq=False)
class PointScan:
    """What :func:`scan_point` measured (the levels are NaN without multipliers)."""

    values: np.ndarray
    x_sum: float
    x_min: float
    x_max: float
    ones: np.ndarray
    ones_values: np.ndarray
    fractional: np.ndarray
    zeros_max: float
    ones_min: float


def scan_point(scores: np.ndarray, x: np.ndarray, xtol: float, multipliers: np.ndarray | None = None) -> PointScan:
    """Scan ``x`` against ``scores`` (shape (n, D)); the levels need ``multipliers`` (one
    lambda per secondary score)."""
    n, size = scores.shape
    values, ones_values = np.zeros(n), np.zeros(n)
    ones = np.empty(size, dtype=bool)
    fractional = []
    x_sum, x_min, x_max = 0.0, np.inf, -np.inf
    zeros_max = ones_min = float("nan")
    if multipliers is not None:
        weights = np.concatenate([[1.0], multipliers])  # v = weights @ scores
        zeros_max, ones_min = -np.inf, np.inf
    for block in blocks(size):
        s, xb, one = scores[:, block], x[block], ones[block]
        values += s @ xb
        x_sum += float(xb.sum())
        x_min, x_max = min(x_min, float(xb.min())), max(x_max, float(xb.max()))
        np.greater_equal(xb, 1.0 - xtol, out=one)
        at_one = np.flatnonzero(one)
        zero = xb <= xtol
        ones_values += take_columns(s, at_one).sum(axis=1)
        at_fraction = None
        if at_one.shape[0] + int(np.count_nonzero(zero)) < xb.shape[0]:
            at_fraction = np.flatnonzero(~(one | zero))
            fractional.append(at_fraction + block.start)
        if multipliers is None:
            continue
        v = weights @ s
        if at_one.shape[0]:
            ones_min = min(ones_min, float(v.take(at_one).min()))
        v[at_one] = -np.inf  # what is left are the entries counted as 0
        if at_fraction is not None:
            v[at_fraction] = -np.inf
        zeros_max = max(zeros_max, float(v.max()))
    fractional = np.concatenate(fractional) if fractional else np.empty(0, dtype=np.intp)
    return PointScan(values, x_sum, x_min, x_max, ones, ones_values, fractional, zeros_max, ones_min)
