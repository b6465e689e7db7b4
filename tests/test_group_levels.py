"""Group levels read in a pass (``ScorePasses.group_levels``), and the estimate's subsample of
whole groups (``ScorePasses.members``), for floors on groups the subsample cannot place:
per-filter floors, a floor of 1 in each group of 100 or so.

A screening at the sampled levels kept every member of such groups (85% of D survived at
D = 1e6 with 10,000 groups of 100, and the binding problem took 160x the solve without
floors). The pass gives each group the floors[g]-th largest ``low`` of its members, read
part by part (a block, a chunk, a process): the largest over the parts is a value at least
floors[g] members reach, so it is a safe level.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import copslp
from conftest import Case, assert_optimal
from copslp._blocks import BLOCK, blocks
from copslp._analytic.passes import ArrayPasses
from copslp._analytic.screening import box_extremes

ROWS, LO, HI = np.array([0, 1, 2]), np.array([0.2, 0.5]), np.array([0.6, 1.5])


def part_levels(low: np.ndarray, groups: np.ndarray, floors: np.ndarray, width: int) -> np.ndarray:
    """The same levels, group by group and part by part, by sorting."""
    levels = np.full(floors.shape[0], -np.inf)
    for part in blocks(low.shape[0], width):
        for g in np.flatnonzero(floors > 0):
            members = np.sort(low[part][groups[part] == g])[::-1]
            if members.shape[0] >= floors[g]:
                levels[g] = max(levels[g], members[floors[g] - 1])
    levels[floors == 0] = np.inf
    return levels


def problem(layout: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    size = 2 * BLOCK + 4321
    scores = rng.standard_normal((3, size))
    scores[:, ::7] = np.round(scores[:, ::7], 1)  # ties at a level
    if layout == "filters":  # runs of 50, some across blocks
        groups = np.arange(size) // 50
    elif layout == "layers":
        groups = np.sort(rng.integers(0, 5, size))
    else:
        groups = rng.integers(0, 700, size)
    n_groups = int(groups.max()) + 1
    floors = rng.choice([0, 1, 1, 2, 3, 10**6], n_groups)  # 10**6: more than any group holds
    return scores, groups, floors


@pytest.mark.parametrize("layout", ["filters", "layers", "scattered"])
def test_array_passes_read_each_groups_level_block_by_block(layout):
    scores, groups, floors = problem(layout)
    low = box_extremes(scores[ROWS], LO, HI)[0]
    levels = ArrayPasses(scores, groups, floors.shape[0]).group_levels(ROWS, LO, HI, floors)
    np.testing.assert_array_equal(levels, part_levels(low, groups, floors, BLOCK))
    whole = part_levels(low, groups, floors, low.shape[0])  # the exact level of each group
    assert np.all(levels <= whole)
    np.testing.assert_array_equal(levels[floors == 1], whole[floors == 1])
    if layout == "filters":  # a group that lies in one block has its exact level
        inside = np.flatnonzero([(g * 50) // BLOCK == (g * 50 + 49) // BLOCK for g in range(floors.shape[0])])
        np.testing.assert_array_equal(levels[inside], whole[inside])


def per_filter(size: int, spread: float, seed: int = 0):
    """Two scores, filters of 100 with a floor of 1 each; ``spread``: the secondary score
    scaled per filter by 10^U(-spread, spread), so that top-k starves many filters."""
    rng = np.random.default_rng(seed)
    groups = np.arange(size) // 100
    scores = rng.random((2, size))
    scores[1] *= (10.0 ** rng.uniform(-spread, spread, groups[-1] + 1))[groups]
    return scores, groups


@pytest.mark.parametrize("spread", [0.0, 1.0], ids=["slack", "binding"])
def test_per_filter_floors_are_screened_at_levels_read_in_a_pass(spread):
    scores, groups = per_filter(200_000, spread)
    case = Case(scores, 10_000, gamma=0.75, groups=groups, floors=1, label="per-filter floors",
                options={"sample_size": 4096})  # screened at this size, the filters unplaced by the sample
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copslp.CopsWarning)
        result = case.solve()
    assert_optimal(result, case)
    assert result.info["survivors"] < 200_000 // 8, result.info  # the sampled levels kept 85%


@pytest.mark.parametrize("layout", ["filters", "scattered"])
def test_members_of_chosen_groups(layout):
    scores, groups, floors = problem(layout)
    chosen = np.random.default_rng(3).random(floors.shape[0]) < 0.1
    expected = np.flatnonzero(chosen[groups])
    np.testing.assert_array_equal(ArrayPasses(scores, groups, floors.shape[0]).members(chosen), expected)


def test_the_estimate_holds_per_filter_floors_on_whole_groups(monkeypatch):
    """D = 1e6, filters of 100 with a floor of 1, binding: the estimate from whole groups
    (their floors as they are) lands within 10% of lambda*; from the element subsample
    (floors scaled to 0) 25% below it, and the boxes missed three times."""
    from copslp._analytic import driver

    scores, groups = per_filter(1_000_000, 1.0)
    result = copslp.solve(scores, 50_000, gamma=0.75, groups=groups, floors=1)
    assert result.certificate.passed
    lam = float(result.multipliers[0])
    assert abs(result.info["sample_estimate"][0] - lam) <= 0.1 * lam, result.info
    monkeypatch.setattr(driver._Run, "draw_group_sample", lambda self, outline: None)
    elements = copslp.solve(scores, 50_000, gamma=0.75, groups=groups, floors=1)
    assert abs(elements.info["sample_estimate"][0] - lam) > 0.2 * lam, elements.info
    np.testing.assert_array_equal(elements.mask, result.mask)


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("chunk", [1, 2], ids=["chunk = block", "chunk = two blocks"])
@pytest.mark.parametrize("layout", ["filters", "scattered"])
def test_tensor_passes_read_the_levels_chunk_by_chunk(layout, chunk):
    from torch_adapter import TensorPasses

    scores, groups, floors = problem(layout, seed=1)
    low = box_extremes(scores[ROWS], LO, HI)[0]
    passes = TensorPasses(torch.from_numpy(scores), torch.from_numpy(groups), floors.shape[0], chunk=chunk * BLOCK)
    levels = passes.group_levels(ROWS, LO, HI, floors)
    np.testing.assert_array_equal(levels, part_levels(low, groups, floors, chunk * BLOCK))
    if chunk == 1:
        np.testing.assert_array_equal(levels, ArrayPasses(scores, groups, floors.shape[0]).group_levels(
            ROWS, LO, HI, floors))
    chosen = np.random.default_rng(3).random(floors.shape[0]) < 0.1
    np.testing.assert_array_equal(passes.members(chosen), np.flatnonzero(chosen[groups]))


def test_tensor_road_agrees_with_per_filter_floors():
    from torch_adapter import solve_tensors

    scores, groups = per_filter(150_000, 1.0, seed=2)
    options = {"sample_size": 4096}
    expected = copslp.solve(scores, 7_500, gamma=0.75, groups=groups, floors=1, options=options)
    result = solve_tensors(torch.from_numpy(scores), 7_500, gamma=0.75, groups=torch.from_numpy(groups), floors=1,
                           options=options)
    assert result.certificate.passed
    assert abs(result.objective - expected.objective) <= 1e-12 * abs(expected.objective)
    np.testing.assert_array_equal(result.mask.numpy(), expected.mask)
    assert result.info["survivors"] == expected.info["survivors"] < 150_000 // 8
