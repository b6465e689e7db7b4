"""From an LP point to a mask with exactly k ones (docs/maths.md §5), shared by every method.

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

When that mask misses a bound (several bounds: the fractional entries alone often cannot
meet them all) and the multipliers are known, a neighbourhood of the k-th level is searched
exactly: every element outside it is fixed as in the mask; inside are the fractional
entries, the ``NEIGHBOURS`` kept elements with the smallest
``v = s_0 + sum_i lambda_i s_i`` and the ``NEIGHBOURS`` dropped ones with the largest. Every
exact-k mask that swaps at most ``SWAPS`` of those kept for as many dropped ones and fills
the remaining slots from the fractional entries is evaluated (vectorised sums), and the one
with the best s_0 among those that meet every bound and floor is taken. Only when none
exists there does the first mask stand, reported as missing. (HiGHS MIP on the same
neighbourhood proves optimality only for about 20 elements within a minute: the bounds
make it a multi-dimensional subset-sum problem.) For a screened analytic answer whose record
the scan read, the neighbours are looked for among the innermost survivors when the levels
show that no element a box decided can be among them (:func:`_neighbours_among_survivors`).
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

from ._blocks import blocks
from ._problem import Problem
from ._scan import PointScan
from ._selection import take_columns, top_k_indices, top_k_with_floors

__all__ = ["round_to_mask", "MAX_SUBSETS", "NEIGHBOURS"]

MAX_SUBSETS = 4096
#: The search for a mask that meets every bound: kept and dropped elements on either side
#: of the k-th level, how many of them may be swapped, the most fractional entries it
#: takes (all their subsets are tried), and how many of the best masks meeting the bounds
#: are checked against the floors.
NEIGHBOURS = 16
SWAPS = 2
MAX_FRACTIONAL_SEARCHED = 12
MAX_FLOOR_CHECKS = 1000


def round_to_mask(problem: Problem, x: np.ndarray, xtol: float, scan: PointScan,
                  multipliers: np.ndarray | None = None) -> tuple[np.ndarray, str, np.ndarray]:
    """Return ``(mask, rule, mask_values)``: the exact-k boolean mask, the name of the rule
    used and ``scores @ mask``.

    ``scan`` is :func:`copslp._scan.scan_point` of x at ``xtol``; ``multipliers`` (lambda,
    one per secondary score) enable the search near the k-th level when the mask built from
    the fractional entries misses a bound. The mask is written into ``scan.ones`` (the
    scan's own array; the scan is not read after)."""
    k = problem.budget
    frac = scan.fractional
    need = k - scan.n_ones
    if need < 0 or need > frac.shape[0]:
        # x is too far from a budget-k point for the snapping to work: keep its k largest.
        kept = _top_k_with_floors(problem, x, k)
        mask = np.zeros(problem.size, dtype=bool)
        mask[kept] = True
        return mask, "largest x (x too far from sum = k to snap)", take_columns(problem.scores, kept).sum(axis=1)
    mask = scan.ones
    if need == 0:
        return mask, "integral", scan.ones_values
    chosen, rule = _choose(problem, x, scan, frac, need)
    mask[chosen] = True
    values = scan.ones_values + take_columns(problem.scores, chosen).sum(axis=1)
    if multipliers is not None and not _meets_bounds(problem, values, xtol):
        fixed = mask.copy()
        fixed[chosen] = False
        searched = _search_near_level(problem, x, scan, fixed, mask, multipliers, frac, xtol)
        if searched is not None:
            return searched[0], f"best mask meeting every bound within {SWAPS} swaps near the k-th level", searched[1]
    return mask, rule, values


def _meets_bounds(problem: Problem, values: np.ndarray, xtol: float) -> bool:
    """Every active bound met, up to ``xtol`` relative (as :func:`copslp.solve` reports it)."""
    thresholds = problem.thresholds[problem.active]
    return bool(np.all(values[problem.active + 1] >= thresholds - xtol * np.maximum(np.abs(thresholds), 1e-300)))


def _search_near_level(problem: Problem, x, scan: PointScan, fixed: np.ndarray, mask: np.ndarray,
                       multipliers: np.ndarray, frac: np.ndarray, xtol: float):
    """``(mask, scores @ mask)`` of the best mask meeting every bound and floor among those
    that keep every element outside the neighbourhood of the k-th level as ``mask`` does and
    swap at most ``SWAPS`` of its kept neighbours for as many of its dropped ones, the
    fractional entries filling the slots left (module docstring); ``None`` if there is none.

    Every such mask is evaluated, as a sum of precomputed parts: the scores summed over the
    fixed elements, over each subset of the fractional entries, over each set of at most
    ``SWAPS`` neighbours removed and over each set added (a broadcast over the three). Masks
    that meet every bound exactly come first, then those that miss one by at most ``xtol``
    (relative, as :func:`copslp.solve` reports a bound met). ``fixed`` is the mask without
    its fractional entries (the entries counted as 1)."""
    if frac.shape[0] > MAX_FRACTIONAL_SEARCHED:
        return None
    weights = np.concatenate([[1.0], np.where(np.isfinite(problem.thresholds), multipliers, 0.0)])
    removable, addable = _level_neighbours(problem, mask, weights, frac)
    base = scan.ones_values  # the scores summed over fixed
    slots = problem.budget - scan.n_ones  # for the fractional entries, net of swaps
    fractional_sets = _subsets(problem.scores, frac, frac.shape[0])
    removed_sets = _subsets(problem.scores, removable, SWAPS)
    added_sets = _subsets(problem.scores, addable, SWAPS)
    active = problem.active + 1
    thresholds = problem.thresholds[problem.active]
    scales = np.maximum(np.abs(thresholds), 1e-300)
    found = []  # per (removals, additions): the hits' shortfall > 0, their values and (f, a, b)
    for removed, (removed_sums, removed_members) in enumerate(removed_sets):
        for added, (added_sums, added_members) in enumerate(added_sets):
            size = slots + removed - added
            if not 0 <= size < len(fractional_sets):
                continue
            taken_sums, taken_members = fractional_sets[size]
            kept_sums = (base + taken_sums)[:, None, :] - removed_sums[None, :, :]  # (fractional sets, removals, n)
            # the worst relative shortfall of (f, a, b), row by row: (fractional sets, removals, additions)
            shortfall = np.full((kept_sums.shape[0], kept_sums.shape[1], added_sums.shape[0]), -np.inf)
            for row, threshold, scale in zip(active, thresholds, scales):
                np.maximum(shortfall, (threshold - (kept_sums[:, :, row, None] + added_sums[None, None, :, row])) / scale,
                           out=shortfall)
            hits = np.argwhere(shortfall <= xtol)
            if hits.shape[0]:
                f, a, b = hits.T
                found.append((shortfall[f, a, b] > 0, kept_sums[f, a] + added_sums[b],
                              (taken_members, removed_members, added_members), hits))
    if not found:
        return None
    misses = np.concatenate([item[0] for item in found])
    values = np.concatenate([item[1] for item in found])
    origin = np.repeat(np.arange(len(found)), [item[3].shape[0] for item in found])
    hits = np.concatenate([item[3] for item in found])
    order = np.lexsort((-values[:, 0], misses))[:MAX_FLOOR_CHECKS]  # bounds met exactly first, then by <s_0, m>
    for at in order:
        taken_members, removed_members, added_members = found[origin[at]][2]
        f, a, b = hits[at]
        searched = fixed.copy()
        searched[list(taken_members[f]) + list(added_members[b])] = True
        searched[list(removed_members[a])] = False
        if not problem.has_floors or np.all(
                np.bincount(problem.groups[searched], minlength=problem.floors.shape[0]) >= problem.floors):
            return searched, values[at]
    return None


def _subsets(scores: np.ndarray, members: np.ndarray, largest: int) -> list:
    """For each size 0..largest: ``(sums, sets)``, the scores summed over every subset of
    ``members`` of that size (shape (number of subsets, n)) and the subsets (index tuples)."""
    out = []
    for size in range(min(largest, members.shape[0]) + 1):
        sets = list(combinations(members.tolist(), size))
        index = np.array(sets, dtype=np.intp).reshape(len(sets), size)
        out.append((scores[:, index].sum(axis=2, dtype=np.float64).T if size else np.zeros((1, scores.shape[0])),
                    sets))
    return out


def _level_neighbours(problem: Problem, mask: np.ndarray, weights: np.ndarray, frac: np.ndarray):
    """``(kept, dropped)``: the ``NEIGHBOURS`` kept elements of ``mask`` with the smallest
    v (``weights @ scores``) and the ``NEIGHBOURS`` dropped ones with the largest
    (fractional entries excluded), read block by block."""
    outside = np.zeros(problem.size, dtype=bool)
    outside[frac] = True
    lowest_kept = (np.empty(0), np.empty(0, dtype=np.intp))
    highest_dropped = (np.empty(0), np.empty(0, dtype=np.intp))
    for block in blocks(problem.size):
        v = np.einsum("i,ij->j", weights, problem.scores[:, block], dtype=np.float64)  # no BLAS threads
        inside = ~outside[block]
        kept_cut = -lowest_kept[0].min() if lowest_kept[0].shape[0] == NEIGHBOURS else np.inf
        dropped_cut = highest_dropped[0].min() if highest_dropped[0].shape[0] == NEIGHBOURS else -np.inf
        kept = np.flatnonzero(mask[block] & inside & (v <= kept_cut))  # only what can enter the lists
        dropped = np.flatnonzero(~mask[block] & inside & (v >= dropped_cut))
        lowest_kept = _extreme(lowest_kept, -v[kept], kept + block.start)
        highest_dropped = _extreme(highest_dropped, v[dropped], dropped + block.start)
    return lowest_kept[1], highest_dropped[1]


def _extreme(current, values, indices):
    """The ``NEIGHBOURS`` largest of ``values`` and ``current[0]`` with their indices."""
    values = np.concatenate([current[0], values])
    indices = np.concatenate([current[1], indices])
    if values.shape[0] <= NEIGHBOURS:
        return values, indices
    best = top_k_indices(values, NEIGHBOURS)
    return values[best], indices[best]


def _choose(problem: Problem, x: np.ndarray, scan: PointScan, frac: np.ndarray, need: int):
    active = problem.active
    if active.size == 0 and not problem.has_floors:
        return frac[top_k_indices(problem.primary[frac].astype(np.float64), need)], "best s_0 among fractional"
    deficit = _floor_deficit(problem, scan)
    if comb(frac.shape[0], need) <= MAX_SUBSETS:
        return _best_subset(problem, x, scan.values, frac, need, deficit), "best feasible subset of fractional"
    if active.size == 1:
        key = problem.scores[active[0] + 1][frac].astype(np.float64)
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
    gains = take_columns(problem.scores, frac)  # (n, |F|), float64
    base = values - gains @ x[frac]  # the kept ones alone
    values = base[:, None] + gains[:, subsets].sum(axis=2)  # (n, n_subsets)
    thresholds = problem.thresholds[problem.active]
    scale = np.maximum(np.abs(thresholds), np.finfo(float).tiny)
    shortfall = (thresholds[:, None] - values[problem.active + 1]) / scale[:, None]
    worst = np.max(np.maximum(shortfall, 0.0), axis=0, initial=0.0)
    if deficit is not None:
        groups = problem.groups[frac][subsets]  # (n_subsets, need)
        floors_ok = np.ones(subsets.shape[0], dtype=bool)
        for l in np.flatnonzero(deficit):  # groups still short: at most one per fractional entry
            floors_ok &= (groups == l).sum(axis=1) >= deficit[l]
        worst = np.where(floors_ok, worst, np.inf)
    best = np.lexsort((-values[0], worst))[0]
    return frac[subsets[best]]


def _top_k_with_floors(problem, key, k):
    if problem.has_floors:
        return top_k_with_floors(key, k, problem.groups, problem.floors, problem.group_order, problem.group_starts)
    return top_k_indices(key, k)
