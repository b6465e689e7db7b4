"""From an LP point to a mask with exactly k ones (COPS.md section 5), shared by every method.

Entries of x within ``xtol`` of 1 are kept, within ``xtol`` of 0 dropped; the c remaining
slots are filled from the fractional entries F:

* no active bound: the c best of F by s_0;
* few subsets (``C(|F|, c) <= MAX_SUBSETS``): every subset is tried; the best by s_0 among
  those that meet every bound and floor wins, else the one with the smallest worst relative
  violation;
* otherwise, one active bound: the c best of F by s_1 (with floors: the greedy of section 6).
  Since ``x_F`` lies in the polytope {sum = c, floors, 0 <= x <= 1} whose vertices are
  masks, this choice reaches ``<s_1, mask> >= <s_1, x>`` and keeps the bound;
* otherwise the c largest x (ties by s_0), with the floors honoured; any violation is reported.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

from ._problem import Problem
from ._scan import PointScan
from ._selection import take_columns, top_k_indices, top_k_with_floors

__all__ = ["round_to_mask", "MAX_SUBSETS"]

MAX_SUBSETS = 4096


def round_to_mask(problem: Problem, x: np.ndarray, xtol: float, scan: PointScan) -> tuple[np.ndarray, str, np.ndarray]:
    """Return ``(mask, rule, mask_values)``: the exact-k boolean mask, the name of the rule
    used and ``scores @ mask``.

    ``scan`` is :func:`copslp._scan.scan_point` of x at ``xtol``."""
    k = problem.budget
    frac = scan.fractional
    need = k - int(np.count_nonzero(scan.ones))
    if need < 0 or need > frac.shape[0]:
        # x is too far from a budget-k point for the snapping to work: keep its k largest.
        kept = _top_k_with_floors(problem, x, k)
        mask = np.zeros(problem.size, dtype=bool)
        mask[kept] = True
        return mask, "largest x (x too far from sum = k to snap)", take_columns(problem.scores, kept).sum(axis=1)
    mask = scan.ones.copy()
    if need == 0:
        return mask, "integral", scan.ones_values
    chosen, rule = _choose(problem, x, scan, frac, need)
    mask[chosen] = True
    return mask, rule, scan.ones_values + problem.scores[:, chosen].sum(axis=1)


def _choose(problem: Problem, x: np.ndarray, scan: PointScan, frac: np.ndarray, need: int):
    active = problem.active
    if active.size == 0 and not problem.has_floors:
        return frac[top_k_indices(problem.primary[frac], need)], "best s_0 among fractional"
    deficit = _floor_deficit(problem, scan)
    if comb(frac.shape[0], need) <= MAX_SUBSETS:
        return _best_subset(problem, x, scan.values, frac, need, deficit), "best feasible subset of fractional"
    if active.size == 1:
        key = problem.scores[active[0] + 1][frac]
        rule = "best s_1 among fractional"
    else:
        rank = np.empty(frac.shape[0])
        rank[np.lexsort((problem.primary[frac], x[frac]))] = np.arange(frac.shape[0])
        key = rank  # order by x, ties by s_0
        rule = "largest x among fractional"
    return frac[_select(problem, key, frac, need, deficit)], rule


def _select(problem, key, frac, need, deficit):
    if deficit is None:
        return top_k_indices(key, need)
    return top_k_with_floors(key, need, problem.groups[frac], deficit)


def _floor_deficit(problem: Problem, scan: PointScan):
    if not problem.has_floors:
        return None
    return np.maximum(problem.floors - scan.segment_ones, 0)  # the scan's segments are the groups


def _best_subset(problem, x, values, frac, need, deficit):
    subsets = np.array(list(combinations(range(frac.shape[0]), need)), dtype=np.intp)
    gains = problem.scores[:, frac]  # (n, |F|)
    base = values - gains @ x[frac]  # the kept ones alone
    values = base[:, None] + gains[:, subsets].sum(axis=2)  # (n, n_subsets)
    thresholds = problem.thresholds[problem.active]
    scale = np.maximum(np.abs(thresholds), np.finfo(float).tiny)
    shortfall = (thresholds[:, None] - values[problem.active + 1]) / scale[:, None]
    worst = np.max(np.maximum(shortfall, 0.0), axis=0, initial=0.0)
    if deficit is not None:
        groups = problem.groups[frac][subsets]  # (n_subsets, need)
        counts = np.stack([(groups == l).sum(axis=1) for l in range(deficit.shape[0])], axis=1)
        floors_ok = np.all(counts >= deficit[None, :], axis=1)
        worst = np.where(floors_ok, worst, np.inf)
    best = np.lexsort((-values[0], worst))[0]
    return frac[subsets[best]]


def _top_k_with_floors(problem, key, k):
    if problem.has_floors:
        return top_k_with_floors(key, k, problem.groups, problem.floors, problem.group_order, problem.group_starts)
    return top_k_indices(key, k)
