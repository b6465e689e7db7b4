"""The inner problem of the dual: for fixed multipliers, the best k-set of ``v``.

Without floors it is the top-k of v; with floors it is the greedy of docs/maths.md §6
(:func:`copslp._selection.top_k_with_floors`). :class:`InnerProblem` holds the data of one
(sub)problem, evaluates the dual function ``phi`` through these selections, and is shared by
the analytic and the bisection methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from functools import cached_property

import numpy as np

from ._blocks import BLOCK, blocks
from ._selection import (collapse_equal_columns, group_order, group_starts, lexicographic_top_k,
                         top_k_indices_of_long, top_k_with_floors)

__all__ = ["InnerProblem", "reaches", "sum_reaches", "mix_to_bound"]


def reaches(value: float, threshold: float) -> bool:
    """``value >= threshold`` up to the round-off of sums of many float64 terms.

    Sums of the same elements in another order differ by a few ulps times the number of
    terms; 1e-12 relative covers that for up to ~1e9 terms, so a bound of gamma = 1 is met
    by the set that attains it.
    """
    return value >= threshold - 1e-12 * max(abs(value), abs(threshold))


def sum_reaches(terms: np.ndarray, threshold: float, slack: float = 0.0) -> bool:
    """The sum of ``terms`` meets ``threshold`` up to the round-off of such sums: :func:`reaches`,
    or within 1e-12 of the terms' magnitudes summed, or within ``slack`` (the threshold's own
    round-off). Terms of +-1e9 that sum to 31.6 differ by 1e-7 in another order, so a bound at
    gamma = 1 is met by the set that attains it."""
    value = float(terms.sum(dtype=np.float64))
    if reaches(value, threshold):
        return True
    return value >= threshold - max(slack, 1e-12 * float(np.abs(terms).sum(dtype=np.float64)))


@dataclass(frozen=True, eq=False)
class InnerProblem:
    """Scores of the elements still free, the budget left for them, and their floors.

    ``scores`` has shape (n, m): row 0 is s_0 and the rows after it are the secondary
    scores whose bounds are switched on (in the order of ``thresholds``).
    """

    scores: np.ndarray
    budget: int
    thresholds: np.ndarray
    groups: np.ndarray | None = None
    floors: np.ndarray | None = None
    layout: Callable[[], tuple] | None = None  # gives (order, starts) of the groups, when known
    #: Absolute round-off each threshold carries (the sums it was reduced by); None: that of
    #: b itself, 1e-12 |b| (:func:`reaches`).
    threshold_slack: np.ndarray | None = None

    @property
    def slack(self) -> np.ndarray:
        """How far below its threshold a bound still counts as met: the round-off of the
        sums behind the threshold (a bound at gamma = 1 is met only up to it)."""
        if self.threshold_slack is None:
            return 1e-12 * np.abs(self.thresholds)
        return self.threshold_slack

    @property
    def size(self) -> int:
        return self.scores.shape[1]

    @cached_property
    def _group_layout(self):
        if self.layout is not None:
            return self.layout()
        return group_order(self.groups), group_starts(np.bincount(self.groups, minlength=self.floors.shape[0]))

    @cached_property
    def equal_columns(self) -> tuple:
        """``(columns, inverse, counts)`` of :func:`copslp._selection.collapse_equal_columns`:
        elements equal in every score and in their group are interchangeable in the LP, one
        column of the simplex (:mod:`copslp._analytic.simplex`). Made once per problem."""
        return collapse_equal_columns(self.scores, self.groups)

    @property
    def distinct_columns(self) -> int:
        return int(self.equal_columns[0].shape[1])

    def select(self, values: np.ndarray) -> np.ndarray:
        """Indices of a best budget-set by ``values`` (ties broken arbitrarily)."""
        if self.floors is None:
            return top_k_indices_of_long(values, self.budget)
        order, starts = self._group_layout
        return top_k_with_floors(values, self.budget, self.groups, self.floors, order, starts)

    def select_lexicographic(self, primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
        """A best budget-set by ``primary`` with ties broken by ``secondary``."""
        if self.floors is None:
            return lexicographic_top_k(primary, secondary, self.budget)
        rank = np.empty(self.size)
        rank[np.lexsort((secondary, primary))] = np.arange(self.size)
        return self.select(rank)

    def combine(self, multipliers: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``v = s_0 + sum_i lambda_i s_i`` in float64, whatever the dtype of the scores (one
        scaled addition per nonzero multiplier, in the order of the rows, no float64 copy of
        the matrix), block by block (:data:`copslp._blocks.BLOCK`) so that each block of v
        stays in cache while the rows are added to it (three times faster than whole rows at
        628k elements and r = 3, the same numbers); into ``out`` (float64, ``size``) if given,
        else a new array."""
        if out is None:
            v = self.scores[0].astype(np.float64)
        else:
            v = out
            np.copyto(v, self.scores[0])
        terms = [(weight, row) for weight, row in zip(np.asarray(multipliers, dtype=np.float64), self.scores[1:])
                 if weight]
        if not terms:
            return v
        scratch = np.empty(min(BLOCK, self.size))
        for block in blocks(self.size):
            part, product = v[block], scratch[:block.stop - block.start]
            for weight, row in terms:
                part += np.multiply(row[block], weight, out=product, dtype=np.float64)
        return v

    def scratch(self, name: str, dtype=np.float64) -> np.ndarray:
        """A buffer of ``size`` entries kept with the problem under ``name``, for the passes
        made over it again and again (the dual's oracle): a fresh array of a million float64
        costs more in page faults than the pass that fills it."""
        buffers = self.__dict__.setdefault("_scratch", {})  # frozen: the instance's own dict
        if name not in buffers:
            buffers[name] = np.empty(self.size, dtype=dtype)
        return buffers[name]

    def mask_of(self, chosen: np.ndarray) -> np.ndarray:
        """Boolean mask of the elements ``chosen``."""
        mask = np.zeros(self.size, dtype=bool)
        mask[chosen] = True
        return mask

    def indicator(self, chosen: np.ndarray) -> np.ndarray:
        x = np.zeros(self.size)
        x[chosen] = 1.0
        return x


def mix_to_bound(s1: np.ndarray, low: np.ndarray, high: np.ndarray, b: float) -> np.ndarray:
    """The convex combination ``(1 - t) 1_low + t 1_high`` (boolean masks) with
    ``<s1, x> = b``, where ``<s1, 1_low> < b <= <s1, 1_high>``.

    With C the sum of s1 over both sets, E over high only and L over low only,
    ``t = (b - C - L) / (E - L)`` and ``1 - t = (E - (b - C)) / (E - L)``: each weight from
    its own difference, so neither is 1 minus a number close to 1.
    """
    entering, leaving = high & ~low, low & ~high
    rest = b - float(s1[low & high].sum())
    gain_in, gain_out = float(s1[entering].sum()), float(s1[leaving].sum())
    spread = gain_in - gain_out
    x = np.zeros(s1.shape[0])
    x[low & high] = 1.0
    if spread <= 0:  # the two sets differ by round-off only (b within it): the one that meets b
        x[entering] = 1.0
        return x
    x[entering] = min(max((rest - gain_out) / spread, 0.0), 1.0)
    x[leaving] = min(max((gain_in - rest) / spread, 0.0), 1.0)
    return x
