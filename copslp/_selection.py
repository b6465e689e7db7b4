"""Selection primitives: the k-th largest value, top-k sums and top-k sets in O(D).

Everything here is ``np.partition`` / ``np.argpartition`` work, never a full sort.
"""

from __future__ import annotations

import numpy as np

from ._blocks import blocks

__all__ = ["every_row", "take_rows", "kth_largest", "top_k_sum", "top_k_sum_and_total", "prefilters", "top_k_sum_by_partition",
           "strided_candidate_level", "top_k_indices", "lexicographic_top_k", "is_non_decreasing", "group_order", "group_starts",
           "top_k_with_floors", "take_columns", "group_members", "kth_largest_in_groups", "top_in_groups"]

#: Groups above which a selection in every group is one sort of (group, value) pairs instead of
#: a partition per group: each partition is a Python call, and floors per filter or per neuron
#: make tens of thousands of groups (a partition per layer stays the cheaper road for layers).
GROUPS_LOOPED = 64


def kth_largest(values: np.ndarray, k: int, scratch: np.ndarray | None = None) -> float:
    """The k-th largest entry of ``values`` (1 <= k <= len(values)); partitioned in
    ``scratch`` (a float64 buffer of the same length, overwritten) where given, else in a
    copy: repeated selections over a problem allocate nothing then."""
    n = values.shape[0]
    if scratch is None:
        return float(np.partition(values, n - k)[n - k])
    np.copyto(scratch, values)
    scratch.partition(n - k)
    return float(scratch[n - k])


def top_k_sum(values: np.ndarray, k: int) -> float:
    """``T_k(values)``: the sum of the k largest entries (ties do not matter), summed in
    float64 whatever the dtype of ``values``.

    For long arrays the k largest are first narrowed down to candidates above a level
    estimated on a strided sample (gathered block by block, so no copy of the whole array
    is made), the count of candidates is checked to be at least k, and only the candidates
    are partitioned. With k > D/2 the complement is used: total minus the D - k smallest.
    """
    return top_k_sum_and_total(values, k)[0]


def top_k_sum_and_total(values: np.ndarray, k: int) -> tuple[float, float]:
    """``(T_k(values), sum of all entries)`` from the passes of :func:`top_k_sum`: where the
    candidates are gathered block by block, each block is summed in the same pass.

    The total is summed in the dtype of ``values`` block by block (it serves to check that
    every entry is finite: a non-finite total says that one is, or that the sums overflow);
    T_k in float64."""
    n = values.shape[0]
    if k == n:
        total = float(values.sum(dtype=np.float64))
        return total, total
    if n < _PREFILTER_MIN_SIZE:
        return top_k_sum_by_partition(values, k), float(values.sum())
    if not prefilters(n, k):  # 2k > n: the complement is the smaller selection
        total = float(values.sum(dtype=np.float64))
        return total + top_k_sum_negated(values, n - k), total
    totals = []
    candidates = _candidates_above_level(values, k, totals=totals)
    return top_k_sum_by_partition(values if candidates is None else candidates, k), float(np.sum(totals))


def prefilters(n: int, k: int) -> bool:
    """Whether :func:`top_k_sum` of n values narrows them to candidates above a level first
    (long arrays, k < n/2), rather than selecting among all of them."""
    return n >= _PREFILTER_MIN_SIZE and 0 < 2 * k <= n


def top_k_sum_by_partition(values: np.ndarray, k: int) -> float:
    """The sum of the k largest of ``values`` by one partition of them (float64)."""
    n = values.shape[0]
    return float(np.partition(values, n - k)[n - k:].sum(dtype=np.float64))


def top_k_sum_negated(values: np.ndarray, k: int) -> float:
    """``-(sum of the k smallest entries)`` = ``T_k(-values)``, without negating a copy."""
    return -float(np.partition(values, k - 1)[:k].sum(dtype=np.float64))


_PREFILTER_MIN_SIZE = 1 << 20


def _candidates_above_level(values: np.ndarray, k: int, indices: bool = False, totals: list | None = None):
    """Entries (or their indices) at or above a level with at least k of them, the level
    estimated on a strided sample; ``None`` if the estimate left fewer than k. The sum of
    each block is appended to ``totals`` when it is given (the same pass)."""
    n = values.shape[0]
    level = strided_candidate_level(values, k)
    parts = []
    for block in blocks(n):
        part = values[block]
        if totals is not None:
            totals.append(float(part.sum()))
        found = np.flatnonzero(part >= level)
        parts.append(found + block.start if indices else part.take(found))
    candidates = np.concatenate(parts)
    return candidates if candidates.shape[0] >= k else None


def strided_candidate_level(values: np.ndarray, k: int) -> float:
    """A level with, very likely, at least k of the n entries of ``values`` at or above it,
    read off every (n / 65536)-th entry (m of them): their entry of rank
    ``k_m + 4 sqrt(k_m) + 16`` (k_m = k m / n). No seed: whoever asks gets the same level,
    so the same candidates and the same sum of the k largest. The count is checked by
    whoever uses it."""
    n = values.shape[0]
    sample = values[::max(1, n // 65536)]
    m = sample.shape[0]
    k_sample = max(1, int(k * m / n))
    return kth_largest(sample, min(m, k_sample + int(4 * np.sqrt(k_sample)) + 16))


def top_k_indices_of_long(values: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_k_indices` for long arrays: selection among pre-filtered candidates."""
    n = values.shape[0]
    if prefilters(n, k):
        candidates = _candidates_above_level(values, k, indices=True)
        if candidates is not None:
            return candidates[top_k_indices(values[candidates], k)]
    return top_k_indices(values, k)


def top_k_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of k largest entries (an arbitrary choice among ties at the k-th level)."""
    n = values.shape[0]
    if k == 0:
        return np.empty(0, dtype=np.intp)
    if k == n:
        return np.arange(n)
    return np.argpartition(values, n - k)[n - k:]


def lexicographic_top_k(primary: np.ndarray, secondary: np.ndarray, k: int) -> np.ndarray:
    """Indices of the top-k of ``primary``, ties at the k-th level broken by ``secondary``.

    Elements strictly above the k-th largest value of ``primary`` are all taken; the
    remaining slots go to the elements equal to it with the largest ``secondary``.
    """
    n = primary.shape[0]
    if k == 0:
        return np.empty(0, dtype=np.intp)
    if k == n:
        return np.arange(n)
    level = kth_largest(primary, k)
    above = np.flatnonzero(primary > level)
    tied = np.flatnonzero(primary == level)
    need = k - above.shape[0]
    if need < tied.shape[0]:
        tied = tied[top_k_indices(secondary[tied], need)]
    return np.concatenate([above, tied])


def is_non_decreasing(groups: np.ndarray) -> bool:
    """Whether ``groups`` is non-decreasing (each group one contiguous run, as layers are)."""
    return groups.shape[0] < 2 or bool(np.all(groups[1:] >= groups[:-1]))


def group_order(groups: np.ndarray) -> np.ndarray | None:
    """A permutation that makes ``groups`` non-decreasing, or ``None`` if it already is
    (layers are contiguous: then no sort is made)."""
    if is_non_decreasing(groups):
        return None
    return np.argsort(groups, kind="stable")


def group_starts(sizes: np.ndarray) -> np.ndarray:
    """Offsets of each group in group order (length G + 1) from the group sizes."""
    starts = np.zeros(sizes.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return starts


def group_members(order: np.ndarray | None, starts: np.ndarray, wanted: np.ndarray):
    """The members of the groups ``wanted`` (indices into the values, group after group, in
    the layout's order), the offset of each wanted group in that list and its length. Groups
    in the layout (``order``, ``starts``) of :func:`group_order` / :func:`group_starts`."""
    lengths = (starts[1:] - starts[:-1])[wanted]
    first = np.zeros(wanted.shape[0], dtype=np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    positions = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts[wanted] - first, lengths)
    return (positions if order is None else order[positions]), first, lengths


def _members_by_value(values: np.ndarray, order: np.ndarray | None, starts: np.ndarray, wanted: np.ndarray):
    """:func:`group_members`, with the permutation that sorts them by group and, within each, by
    value largest first (ties in the members' order): one sort of a composite integer key,
    group then rank by value (on 900k members in 90k groups, 158 ms against 224 for
    ``np.lexsort`` on the pairs)."""
    members, first, lengths = group_members(order, starts, wanted)
    count = members.shape[0]
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(-values[members].astype(np.float64), kind="stable")] = np.arange(count)
    by_value = np.argsort(np.repeat(np.arange(wanted.shape[0], dtype=np.int64) * count, lengths) + rank)
    return members, by_value, first, lengths


def _largest_members(values: np.ndarray, order: np.ndarray | None, starts: np.ndarray, wanted: np.ndarray):
    """Per group of ``wanted`` (each with a member), its member of the largest value (the
    first of its ties in the members' order, as :func:`_members_by_value` ranks them): one
    segmented maximum, no sort."""
    members, first, lengths = group_members(order, starts, wanted)
    member_values = values[members]
    hits = np.flatnonzero(member_values == np.repeat(np.maximum.reduceat(member_values, first), lengths))
    segment = np.searchsorted(first, hits, side="right")
    return members[hits[np.concatenate([[True], segment[1:] != segment[:-1]])]]


def kth_largest_in_groups(values: np.ndarray, order: np.ndarray | None, starts: np.ndarray,
                          ranks: np.ndarray) -> np.ndarray:
    """Per group g, the ``ranks[g]``-th largest of ``values`` among its members (1 <= rank <=
    its size), +inf where ``ranks[g]`` is 0; groups in the layout (``order``, ``starts``).
    Up to :data:`GROUPS_LOOPED` groups a partition each, else one segmented maximum where
    every rank is 1, one sort of all their members otherwise."""
    levels = np.full(ranks.shape[0], np.inf)
    wanted = np.flatnonzero(ranks > 0)
    if wanted.shape[0] <= GROUPS_LOOPED:
        ordered = values if order is None else values[order]
        for g in wanted:
            levels[g] = kth_largest(ordered[starts[g]:starts[g + 1]], int(ranks[g]))
        return levels
    if ranks[wanted].max() == 1:
        levels[wanted] = values[_largest_members(values, order, starts, wanted)]
        return levels
    members, by_value, first, _ = _members_by_value(values, order, starts, wanted)
    levels[wanted] = values[members[by_value[first + ranks[wanted] - 1]]]
    return levels


def top_in_groups(values: np.ndarray, order: np.ndarray | None, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of the ``counts[g]`` largest of ``values`` in each group g (ties broken
    arbitrarily; groups with a count of 0 give none); groups in the layout (``order``,
    ``starts``). Up to :data:`GROUPS_LOOPED` groups a selection each, else one segmented
    maximum where every count is 1, one sort of all their members otherwise."""
    wanted = np.flatnonzero(counts > 0)
    if wanted.shape[0] <= GROUPS_LOOPED:
        chosen = []
        for g in wanted:
            first, stop, count = int(starts[g]), int(starts[g + 1]), int(counts[g])
            if order is None:
                chosen.append(top_k_indices(values[first:stop], count) + first)
            else:
                members = order[first:stop]
                chosen.append(members[top_k_indices(values[members], count)])
        return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    if counts[wanted].max() == 1:
        return _largest_members(values, order, starts, wanted)
    members, by_value, first, lengths = _members_by_value(values, order, starts, wanted)
    within = np.arange(members.shape[0]) - np.repeat(first, lengths)
    return members[by_value[within < np.repeat(counts[wanted], lengths)]]


def top_k_with_floors(values: np.ndarray, k: int, groups: np.ndarray, floors: np.ndarray,
                      order: np.ndarray | None = None, starts: np.ndarray | None = None) -> np.ndarray:
    """Indices of a best k-subset by ``values`` holding at least ``floors[l]`` of each group l.

    The greedy of docs/maths.md §6: the ``floors[l]`` best of each group (the *forced*
    elements), then the best remaining elements up to k overall. It is optimal because any
    optimal subset can swap its members of a group for that group's best ones without loss,
    and the constraint matrix (one partition into groups plus the budget row) is totally
    unimodular.

    It is computed from a top-k set T of ``values``, whose members are at least every
    element outside it. A group with at least ``floors[l]`` members in T has its forced
    elements among them; a *short* group (fewer) gets its forced elements by a selection
    within the group. The best remaining elements lie in T as well (up to ties, which do not
    change the value), so the answer is the forced elements and T without its a smallest
    unforced members, a being the number of forced elements outside T. Only the short groups
    are read beyond T.

    T holds F - a forced elements (F = sum of floors), so its a smallest unforced members lie
    among its F smallest (the *pool*). A member of a group l that is not short is forced iff
    fewer than ``floors[l]`` members of l in T lie above it: all of l's members of T outside
    the pool do, so only in the groups whose pool members reach into their best ``floors[l]``
    are the pool members ranked (a selection within each such group's pool members).

    ``order`` (a permutation making ``groups`` non-decreasing, ``None`` if it already is) and
    ``starts`` (group offsets in that order) may be passed when already known; they are
    needed only when a group is short.
    """
    n_groups = floors.shape[0]
    top = top_k_indices_of_long(values, k)
    if not floors.any():
        return top
    top_groups = groups[top]
    kept = np.bincount(top_groups, minlength=n_groups)
    short = floors > kept
    if not short.any():  # every group has its forced elements in T: T is the answer
        return top
    if starts is None:
        order = group_order(groups) if order is None else order
        starts = group_starts(np.bincount(groups, minlength=n_groups))
    best = top_in_groups(values, order, starts, np.where(short, floors, 0))  # the short groups' forced elements
    forced = np.zeros(values.shape[0], dtype=bool)
    forced[best] = True
    in_top = np.zeros(values.shape[0], dtype=bool)
    in_top[top] = True
    outside = best[~in_top[best]]
    a = outside.shape[0]
    if a == 0:
        return top
    top_values = values[top]
    pool_size = min(int(floors.sum()), k)
    pool = np.arange(k) if pool_size == k else np.argpartition(top_values, pool_size - 1)[:pool_size]
    pool_groups = top_groups[pool]
    pool_count = np.bincount(pool_groups, minlength=n_groups)
    reaching = floors - (kept - pool_count)  # forced members of l in the pool: its best `reaching`
    droppable = ~forced[top[pool]]
    ranked = np.where(~short & (reaching > 0), reaching, 0)
    if ranked.any():
        narrow = np.int16 if n_groups <= np.iinfo(np.int16).max else np.int32  # int16: a radix sort
        by_group = np.argsort(pool_groups.astype(narrow), kind="stable")
        droppable[top_in_groups(top_values[pool], by_group, group_starts(pool_count), ranked)] = False
    candidates = pool[droppable]
    dropped = candidates[top_k_indices(-top_values[candidates], a)]
    keep = np.ones(k, dtype=bool)
    keep[dropped] = False
    return np.concatenate([top[keep], outside])


def every_row(rows: np.ndarray, n: int) -> bool:
    """Whether ``rows`` are all n rows of an array, in order."""
    return rows.shape[0] == n and np.array_equal(rows, np.arange(n))


def take_rows(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``scores[rows]``: the array itself when ``rows`` are all its rows in order, else a
    contiguous copy of them."""
    return scores if every_row(rows, scores.shape[0]) else np.ascontiguousarray(scores[rows])


def take_columns(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``scores[:, index]`` for a (n, D) array as float64, by one ``take`` per row.

    numpy's two-dimensional gathers (fancy indexing, ``take(axis=1)``) are several times
    slower on the row-strided block views and the random subsample used here. The gathered
    columns (a subsample, survivors, fixed elements) are always float64, so that everything
    computed on them is, whatever the dtype of ``scores`` (float32 values convert exactly).
    ``index`` holds valid positions (found by ``nonzero`` or drawn below the length):
    ``mode="clip"`` changes nothing for them and writes straight into ``out``, which the
    default mode buffers.
    """
    out = np.empty((scores.shape[0], index.shape[0]), dtype=np.float64)
    same = scores.dtype == np.float64
    for row, target in zip(scores, out):
        if same:
            row.take(index, out=target, mode="clip")
        else:
            target[...] = row.take(index, mode="clip")
    return out


def collapse_equal_columns(scores: np.ndarray, groups: np.ndarray | None):
    """``(columns, inverse, counts)``: the distinct columns of ``scores`` (with their group),
    ``inverse`` mapping each element to its column and ``counts`` the elements per column.

    One lexicographic sort of the columns (``np.lexsort`` over the rows), then a comparison
    of neighbours: several times faster than ``np.unique(axis=1)``, which sorts the columns
    as opaque records."""
    key = scores if groups is None else np.vstack([scores, groups.astype(scores.dtype)])
    size = key.shape[1]
    if size == 0:
        return scores[:, :0], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort(key[::-1])
    ordered = key[:, order]
    starts = np.empty(size, dtype=bool)
    starts[0] = True
    np.any(ordered[:, 1:] != ordered[:, :-1], axis=0, out=starts[1:])
    ids = np.cumsum(starts) - 1
    inverse = np.empty(size, dtype=np.int64)
    inverse[order] = ids
    return scores[:, order[starts]], inverse, np.bincount(ids)
