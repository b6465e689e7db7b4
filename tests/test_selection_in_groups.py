"""Selections in every group at once (copslp._selection.kth_largest_in_groups, top_in_groups):
one sort of all the members beyond GROUPS_LOOPED groups, a partition per group below. Both
roads must give the same levels and sets of the same values, and every solve with floors on
many small groups (per filter, per neuron) the optimum of the greedy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import copslp
import copslp._selection as selection
from conftest import greedy_value
from copslp._selection import group_order, group_starts, kth_largest_in_groups, top_in_groups, top_k_with_floors


def _grouped(seed: int, contiguous: bool, dtype=np.float64):
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(70, 400))
    sizes = rng.integers(0, 30, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    if not contiguous:
        groups = rng.permutation(groups)
    values = rng.normal(size=groups.shape[0])
    if seed % 3 == 0:
        values = np.round(values)  # ties
    return values.astype(dtype), groups, n_groups, np.bincount(groups, minlength=n_groups), rng


@pytest.mark.parametrize("largest", [False, True], ids=["ranks up to 30", "ranks of 1: a segmented maximum"])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_one_sort_and_a_partition_per_group_agree(seed, contiguous, largest, monkeypatch):
    values, groups, n_groups, sizes, rng = _grouped(seed, contiguous, np.float32 if seed % 2 else np.float64)
    order, starts = group_order(groups), group_starts(sizes)
    ranks = np.where(rng.random(n_groups) < 0.7, rng.integers(0, 30, n_groups), 0)
    ranks = np.minimum(ranks, np.minimum(sizes, 1) if largest else sizes)
    found = {}
    for looped in (10**9, 0):
        monkeypatch.setattr(selection, "GROUPS_LOOPED", looped)
        found[looped] = (kth_largest_in_groups(values, order, starts, ranks), top_in_groups(values, order, starts, ranks))
    levels_loop, chosen_loop = found[10**9]
    levels_sort, chosen_sort = found[0]
    np.testing.assert_array_equal(levels_loop, levels_sort)
    assert np.all(np.isinf(levels_sort[ranks == 0]))
    assert np.unique(chosen_sort).shape[0] == chosen_sort.shape[0] == int(ranks.sum())
    for g in np.flatnonzero(ranks):
        mine = chosen_sort[groups[chosen_sort] == g]
        np.testing.assert_array_equal(np.sort(values[mine]), np.sort(values[chosen_loop[groups[chosen_loop] == g]]))
        assert values[mine].min() == levels_sort[g]


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_top_k_with_floors_on_many_groups_is_the_greedy(seed, contiguous, monkeypatch):
    values, groups, n_groups, sizes, rng = _grouped(seed, contiguous)
    floors = np.minimum(sizes, rng.integers(0, 4, n_groups))
    k = int(rng.integers(floors.sum(), values.shape[0] + 1))
    for looped in (10**9, 0):
        monkeypatch.setattr(selection, "GROUPS_LOOPED", looped)
        chosen = top_k_with_floors(values, k, groups, floors)
        assert np.unique(chosen).shape[0] == chosen.shape[0] == k
        assert np.all(np.bincount(groups[chosen], minlength=n_groups) >= floors)
        assert float(values[chosen].sum()) == pytest.approx(greedy_value(values, k, groups, floors), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_ties_in_a_group_go_to_its_first_members(seed):
    """Both roads beyond GROUPS_LOOPED rank tied members in the layout's order, as
    ``np.lexsort`` of (group, -value) does: the masks do not depend on the machine's sort."""
    values, groups, n_groups, sizes, rng = _grouped(3 * seed, seed % 2 == 0)
    order, starts = group_order(groups), group_starts(sizes)
    in_layout = np.arange(groups.shape[0]) if order is None else order
    expected = in_layout[np.lexsort((-values[in_layout], groups[in_layout]))]
    first = {}
    for position in expected[::-1]:
        first.setdefault(int(groups[position]), []).insert(0, int(position))
    for cap in (1, 3):
        counts = np.minimum(sizes, cap)
        chosen = np.sort(top_in_groups(values, order, starts, counts))
        wanted = np.sort(np.concatenate([first[g][:counts[g]] for g in np.flatnonzero(counts)]))
        np.testing.assert_array_equal(chosen, wanted)


@pytest.mark.parametrize("n_scores", [2, 3])
def test_floors_per_filter_solve_to_the_optimum(n_scores):
    """Floors of 1 or 2 on 2,000 groups of 1 to 29 elements (as per-filter floors are):
    copslp.solve against HiGHS. Regression: with three scores the survivors' simplex had a
    row per group (2,003 rows, 438 s); rows only for the floors left (527) with the basis
    inverse updated after each pivot take about a second."""
    rng = np.random.default_rng(n_scores)
    sizes = rng.integers(1, 30, 2000)
    groups = np.repeat(np.arange(sizes.shape[0]), sizes)
    scores = rng.lognormal(size=(n_scores, groups.shape[0]))
    floors = np.minimum(sizes, rng.integers(1, 3, sizes.shape[0]))
    k = int(floors.sum()) + groups.shape[0] // 10
    with warnings.catch_warnings():  # the LP's optimum here rounds to a mask that misses a bound a little
        warnings.simplefilter("ignore", copslp.CopsWarning)
        ours = copslp.solve(scores, k, gamma=0.6, groups=groups, floors=floors)
        reference = copslp.solve(scores, k, gamma=0.6, groups=groups, floors=floors, method="highs")
    assert ours.certificate.passed
    assert ours.objective == pytest.approx(reference.objective, rel=1e-9)
    assert np.all(np.bincount(groups[ours.mask], minlength=sizes.shape[0]) >= floors)
