r"""One streamed pass over an LP point: everything the certificate and the rounding read.

For a point ``x`` (length D) and a tolerance ``xtol``, an entry *counts as 1* when
``x_j >= 1 - xtol``, *as 0* when ``x_j <= xtol``, and is *fractional* otherwise. The pass reads
the scores and x once, block by block, and returns a :class:`PointScan`: ``scores @ x``, the
extremes and sum of x, the entries counted as 1 (a mask, and ``scores`` summed over it) and
the fractional ones (indices). Given multipliers ``lambda`` it also measures, with
``v = s_0 + sum_i lambda_i s_i``,

.. math::

    \max\{v_j : x_j \text{ counts as } 0\}, \qquad \min\{v_j : x_j \text{ counts as } 1\},
    \qquad \sum_j r_j, \qquad \sum_j r_j v_j,

the sums over the entries counted as 0 or 1, with :math:`r_j = x_j - [x_j \text{ counts as } 1]`
(how far x_j is from the 0 or 1 it counts as). The certificate derives the budget dual and
the duality gap from these numbers (see :mod:`copslp._certificate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._blocks import BLOCK, blocks

__all__ = ["PointScan", "scan_point"]


@dataclass(frozen=True, eq=False)
class PointScan:
    """What :func:`scan_point` measured (the last four are NaN without multipliers)."""

    values: np.ndarray
    x_sum: float
    x_min: float
    x_max: float
    ones: np.ndarray
    ones_values: np.ndarray
    fractional: np.ndarray
    zeros_max: float
    ones_min: float
    residual_sum: float
    residual_dot: float


def scan_point(scores: np.ndarray, x: np.ndarray, xtol: float, multipliers: np.ndarray | None = None) -> PointScan:
    """Scan ``x`` against ``scores`` (shape (n, D)); the levels and residuals need
    ``multipliers`` (one lambda per secondary score)."""
    n, size = scores.shape
    values, ones_values = np.zeros(n), np.zeros(n)
    ones = np.empty(size, dtype=bool)
    fractional = []
    x_sum, x_min, x_max = 0.0, np.inf, -np.inf
    nan = float("nan")
    zeros_max = ones_min = residual_sum = residual_dot = nan
    if multipliers is not None:
        terms = [(i + 1, float(lam)) for i, lam in enumerate(multipliers) if lam != 0.0]
        v, work = np.empty(min(size, BLOCK)), np.empty(min(size, BLOCK))
        zeros_max, ones_min, residual_sum, residual_dot = -np.inf, np.inf, 0.0, 0.0
    for block in blocks(size):
        s, xb, one = scores[:, block], x[block], ones[block]
        values += s @ xb
        x_sum += float(xb.sum())
        x_min, x_max = min(x_min, float(xb.min())), max(x_max, float(xb.max()))
        np.greater_equal(xb, 1.0 - xtol, out=one)
        zero = xb <= xtol
        n_one = int(np.count_nonzero(one))
        if n_one:
            ones_values += s @ one
        local_fractional = None
        if n_one + int(np.count_nonzero(zero)) < xb.shape[0]:
            local_fractional = np.flatnonzero(~(one | zero))
            fractional.append(local_fractional + block.start)
        if multipliers is None:
            continue
        vb, wb = v[:xb.shape[0]], work[:xb.shape[0]]
        np.copyto(vb, s[0])
        for row, lam in terms:
            vb += lam * s[row]
        residual = np.subtract(xb, one, out=wb)
        if local_fractional is not None:
            residual[local_fractional] = 0.0
        residual_sum += float(residual.sum())
        residual_dot += float(residual @ vb)
        wb.fill(-np.inf)
        np.copyto(wb, vb, where=zero)
        zeros_max = max(zeros_max, float(wb.max()))
        wb.fill(np.inf)
        np.copyto(wb, vb, where=one)
        ones_min = min(ones_min, float(wb.min()))
    fractional = np.concatenate(fractional) if fractional else np.empty(0, dtype=np.intp)
    return PointScan(values, x_sum, x_min, x_max, ones, ones_values, fractional,
                     zeros_max, ones_min, residual_sum, residual_dot)
