"""float32 scores read as float32 (no float64 copy of the matrix), and the analytic method's
answer kept as a mask plus a few entries (:class:`copslp._point.MaskPoint`)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import copslp
from copslp._point import MaskPoint, mask_point
from copslp._problem import make_problem
from copslp._scan import scan_point


def test_float32_scores_are_kept_float32_and_others_made_float64():
    rng = np.random.default_rng(0)
    s32 = rng.random((2, 50)).astype(np.float32)
    assert make_problem(s32, 5).scores.dtype == np.float32
    assert make_problem(list(s32), 5).scores.dtype == np.float32
    assert make_problem(s32[0], 5).scores.dtype == np.float32
    assert make_problem([s32[0], s32[1].astype(np.float64)], 5).scores.dtype == np.float64
    assert make_problem(rng.integers(0, 9, (2, 50)), 5).scores.dtype == np.float64
    assert make_problem(s32.astype(np.float16), 5).scores.dtype == np.float64


def test_float32_sums_that_overflow_float32_are_not_called_non_finite():
    big = np.full((2, 10), np.finfo(np.float32).max / 4, dtype=np.float32)
    big[:, ::2] /= 2.0  # not all tied
    problem = make_problem(big, 5, gamma=0.5)
    assert problem.scores.dtype == np.float32
    assert problem.best_reachable[0] > np.finfo(np.float32).max  # T_k summed in float64


def test_float32_threshold_summed_in_float64():
    """T_k of float32 scores summed in float32 would be off by many ulps of float64."""
    rng = np.random.default_rng(1)
    s = (rng.random((2, 300_000)) * 1000).astype(np.float32)
    k = 20_000
    problem = make_problem(s, k, gamma=0.9)
    exact = float(np.sort(s[1].astype(np.float64))[-k:].sum())
    assert abs(problem.best_reachable[0] - exact) <= 1e-12 * exact


@pytest.mark.parametrize("gamma", [0.9, 0.999])
def test_screened_float32_answer_matches_float64(gamma):
    """The screened road on float32 scores gives the answer of the same numbers in float64,
    certified at the same tolerance."""
    rng = np.random.default_rng(2)
    s = rng.random((2, 400_000)).astype(np.float32)
    k = 20_000
    a = copslp.solve(s, k, gamma=gamma)
    b = copslp.solve(s.astype(np.float64), k, gamma=gamma)
    assert a.info.get("survivors", s.shape[1]) < s.shape[1]  # screened
    assert a.certificate.passed and a.certificate.tolerance <= 1e-9
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.x, b.x, rtol=0, atol=1e-12)
    assert a.objective == pytest.approx(b.objective, rel=1e-14)


def test_float32_one_bound_extra_memory_below_input():
    """D = 1e6 float32, one bound: the solve's extra peak stays below the input's size (no
    float64 copy of the scores, no float64 x)."""
    rng = np.random.default_rng(3)
    s = rng.random((2, 1_000_000), dtype=np.float32)
    copslp.solve(s[:, :50_000], 2_500, gamma=0.9)  # imports and caches outside the measure
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = copslp.solve(s, 50_000, gamma=0.9)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.certificate.passed
    assert peak <= s.nbytes, (peak, s.nbytes)


def _point(size, rng):
    ones = rng.random(size) < 0.3
    free = np.flatnonzero(~ones)
    index = np.sort(rng.choice(free, 6, replace=False))
    values = np.array([0.25, 1.0 - 1e-12, 1e-13, 0.5, 0.75, 0.125])  # two within tolerance of 1 and 0
    return MaskPoint(ones, index, values)


def test_mask_point_reads_like_its_dense_array():
    rng = np.random.default_rng(4)
    point = _point(100, rng)
    dense = np.asarray(point)
    assert dense.dtype == np.float64 and dense.shape == (100,) and len(point) == 100
    picks = rng.integers(0, 100, 30)
    np.testing.assert_array_equal(point[picks], dense[picks])
    np.testing.assert_array_equal(point[point.index], point.values)
    np.testing.assert_array_equal(point[10:40:3], dense[10:40:3])
    np.testing.assert_array_equal(point[dense > 0.2], dense[dense > 0.2])
    assert point[int(point.index[0])] == point.values[0]
    assert point[-1] == dense[-1]
    np.testing.assert_array_equal(np.abs(point), dense)  # numpy functions read the dense array
    assert set(np.argpartition(point, 90)[90:]) == set(np.argpartition(dense, 90)[90:]) or \
        np.array_equal(np.sort(dense[np.argpartition(point, 90)[90:]]), np.sort(dense)[90:])


def test_mask_point_from_survivors():
    x_red = np.array([0.0, 1.0, 0.3, 1.0, 0.0])
    point = mask_point(10, (np.array([0, 9]),), np.array([2, 3, 4, 6, 7]), x_red)
    expected = np.zeros(10)
    expected[[0, 9]] = 1.0
    expected[[2, 3, 4, 6, 7]] = x_red
    np.testing.assert_array_equal(np.asarray(point), expected)
    assert point.index.tolist() == [4]


@pytest.mark.parametrize("layout", ["none", "contiguous", "shuffled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_of_mask_point_equals_scan_of_dense(layout, dtype):
    rng = np.random.default_rng(5)
    size = 200_000  # several blocks
    point = _point(size, rng)
    k = int(round(np.asarray(point).sum()))
    groups = floors = None
    if layout != "none":
        groups = np.repeat(np.arange(4), size // 4)
        if layout == "shuffled":
            groups = rng.permutation(groups)
        floors = 1
    problem = make_problem(rng.standard_normal((3, size)).astype(dtype), k, gamma=0.5, groups=groups,
                           floors=floors)
    lam = np.array([0.3, 0.0])
    sparse = scan_point(problem, point, 1e-9, lam)
    dense = scan_point(problem, np.asarray(point), 1e-9, lam)
    np.testing.assert_array_equal(sparse.ones, dense.ones)
    np.testing.assert_array_equal(np.sort(sparse.fractional), np.sort(dense.fractional))
    np.testing.assert_array_equal(sparse.segment_ones, dense.segment_ones)
    for name in ("values", "ones_values", "segment_x"):
        np.testing.assert_allclose(getattr(sparse, name), getattr(dense, name), rtol=1e-12, err_msg=name)
    for name in ("zeros_max", "ones_min", "x_min", "x_max"):
        np.testing.assert_array_equal(getattr(sparse, name), getattr(dense, name), err_msg=name)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_bound_screen_fixes_what_the_box_decides(signed, dtype):
    """The one-multiplier screening pass (low computed only where high reaches the zero
    level) fixes and keeps exactly the elements the box rule of docs/maths.md §4 says, with
    the sums of the fixed ones and the counts that verify the levels, over several blocks."""
    from copslp._analytic.passes import ArrayPasses
    from copslp._analytic.screening import box_extremes
    from copslp._selection import kth_largest

    rng = np.random.default_rng(7 + signed)
    size, k = 300_000, 15_000
    scores = (rng.standard_normal((2, size)) if signed else rng.random((2, size))).astype(dtype)
    lo, hi, rows = np.array([0.7]), np.array([0.8]), np.arange(2)
    low, high = box_extremes(scores, lo, hi)
    one_level = kth_largest(high, k - 400)  # safe but not exact: as sampled levels are
    zero_level = kth_largest(low, k + 400)
    passes = ArrayPasses(scores)
    screen = passes.screen(rows, lo, hi, one_level, zero_level, None)
    ones, survivors = passes.positions(screen)
    np.testing.assert_array_equal(ones, np.flatnonzero(low > one_level))
    np.testing.assert_array_equal(survivors, np.flatnonzero((high >= zero_level) & (low <= one_level)))
    assert screen.fixed_ones == ones.shape[0] and screen.n_survivors == survivors.shape[0]
    assert screen.above_one == np.count_nonzero(high > one_level)
    assert screen.reaching == np.count_nonzero(low >= zero_level)
    np.testing.assert_allclose(screen.taken, scores[:, ones].astype(np.float64).sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(screen.survivors, scores[:, survivors].astype(np.float64))


@pytest.mark.parametrize("layout", ["layers", "shuffled"])
def test_one_bound_screen_with_group_levels(layout):
    """With floors, the one-multiplier pass computes low only where high reaches the
    element's group level and still keeps exactly what the box rule keeps: fixed ones
    ``low > one_level``, survivors ``high >= level_g`` and ``low <= one_level``; it counts per
    group the elements whose low reaches the group's level (the driver's check of the floors)."""
    from copslp._analytic.passes import ArrayPasses
    from copslp._analytic.screening import box_extremes
    from copslp._selection import kth_largest

    k, n_groups, size = 15_000, 6, 300_000
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(n_groups), size // n_groups)
    if layout == "shuffled":
        groups = rng.permutation(groups)
    scores = rng.standard_normal((2, size))
    lo, hi = np.array([0.7]), np.array([0.8])
    low, high = box_extremes(scores, lo, hi)
    one_level, zero_level = kth_largest(high, k - 400 - 360), kth_largest(low, k + 401)
    group_levels = np.full(n_groups, zero_level)
    group_levels[2] = zero_level - 0.5  # a group kept down to a lower level
    passes = ArrayPasses(scores, groups, n_groups)
    screen = passes.screen(np.arange(2), lo, hi, one_level, zero_level, group_levels)
    ones, survivors = passes.positions(screen)
    level = group_levels[groups]
    np.testing.assert_array_equal(ones, np.flatnonzero(low > one_level))
    np.testing.assert_array_equal(survivors, np.flatnonzero((high >= level) & (low <= one_level)))
    np.testing.assert_array_equal(screen.fixed_per_group, np.bincount(groups[ones], minlength=n_groups))
    np.testing.assert_array_equal(screen.support, np.bincount(groups[low >= level], minlength=n_groups))
    np.testing.assert_array_equal(screen.survivor_groups, groups[survivors])


def _float32_at_a_rounding_edge():
    """float32 scores where lambda = lo times s_1 = 1 rounds up to the next float32: v in
    float32 would exceed v in float64 at the box's corner."""
    value = np.float32(1.0) + np.float32(2.0 ** -23) * 5
    lo = float(value) - 2.0 ** -25
    scores = np.array([[value, 2.0 ** -30, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    return scores, np.array([lo]), np.array([2.0 * lo])


def test_box_extremes_of_float32_scores_are_float64_products():
    """The screened certificate takes v_j(lambda) >= low_j from the screening; the
    certificate computes v in float64, so the screening must too (numpy 1.x would run the
    float32 loop for a float32 array times a float64 scalar)."""
    from copslp._inner import InnerProblem
    from copslp._analytic.screening import box_extremes, screen_exact

    scores, lo, hi = _float32_at_a_rounding_edge()
    v_at_lo = np.einsum("i,ij->j", np.array([1.0, lo[0]]), scores)
    low, _ = box_extremes(scores, lo, hi)
    np.testing.assert_array_equal(low, v_at_lo)
    screening = screen_exact(InnerProblem(scores, 2, np.array([-np.inf]), None, None, None), lo, hi)
    fixed = screening.ones
    assert fixed.size == 0 or v_at_lo[fixed].min() > screening.levels[0]


@pytest.mark.parametrize("lazy", [False, True])
def test_point_reads_refuse_what_a_dense_array_refuses(lazy):
    """An index below -D and a boolean key of another length are IndexErrors, as for the
    dense array (the point used to read another entry for them)."""
    size = 50
    point = mask_point(size, (np.array([3, 7]), np.array([size - 1])), np.array([10]), np.array([0.5]))
    if not lazy:
        point = MaskPoint(point.ones, point.index, point.values)
    dense = np.asarray(point)
    key = np.zeros(size - 1, dtype=bool)
    key[[3, 10]] = True
    for bad in (-size - 1, size, np.array([2, size]), key):
        with pytest.raises(IndexError):
            dense[bad]
        with pytest.raises(IndexError):
            point[bad]
    np.testing.assert_array_equal(point[np.array([-1, 3, 10, 11])], dense[[-1, 3, 10, 11]])
