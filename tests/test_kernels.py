"""The screening passes, compiled (``copslp._kernels``) and in numpy (``copslp._kernels_numpy``),
each against numpy's own operations: the largest v over a box of one multiplier as
:func:`copslp._analytic.screening.box_extremes` computes it, to the last bit; the elements that reach their
level, in order; the candidates of s_1 as :class:`copslp._analytic.screening.Tally` gathers them; and the
errors of a call with the wrong buffers. Then the two against each other (the same outputs to the
last bit), the analytic method on the numpy path, the choice between them and an install without
a C compiler."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import copslp
import copslp._analytic.screening as screening
from copslp import _kernels_numpy
from copslp._analytic.screening import Collected, box_extremes

try:
    from copslp import _kernels as _compiled
except ImportError:  # an install without a C compiler: the compiled cases are skipped, and say so
    _compiled = None

SIZE = 5000
KERNELS = ["compiled", "numpy"]
#: The numpy passes' warning (tested once, below); the direct calls here would give it once more.
pytestmark = pytest.mark.filterwarnings(r"ignore:copslp runs the analytic method's screening passes in numpy")


def _module(name):
    if name == "numpy":
        return _kernels_numpy
    if _compiled is None:
        pytest.skip("copslp._kernels is not built here")
    return _compiled


@pytest.fixture(params=KERNELS)
def kernels(request):
    return _module(request.param)


def _call(kernels, s0, s1, lo, hi, level, candidate_level=np.inf, candidates=True):
    n = s0.shape[0]
    positions, columns, high = np.empty(n, dtype=np.int64), np.empty((2, n)), np.empty(n)
    found = np.empty(n, dtype=s1.dtype) if candidates else None
    count, found_count, total, monotone = kernels.reach(s0, s1, lo, hi, level, candidate_level, positions,
                                                        columns[0], columns[1], high, found)
    found = None if found is None else found[:found_count]
    return positions[:count], columns[:, :count], high[:count], found, total, monotone


def _expected(s0, s1, lo, hi, level, candidate_level=np.inf):
    scores = np.stack([s0, s1]).astype(np.float64)
    high = box_extremes(scores, np.array([lo]), np.array([hi]))[1]
    reaching = np.flatnonzero(high >= level)
    return reaching, scores[:, reaching], high[reaching], s1[s1 >= candidate_level], high.sum()


def _same(actual, expected, lo, s1):
    positions, columns, high, found, total, monotone = actual
    want_positions, want_columns, want_high, want_found, want_total = expected
    np.testing.assert_array_equal(positions, want_positions)
    assert columns.tobytes() == want_columns.tobytes()
    assert high.tobytes() == want_high.tobytes()
    if found is not None:
        assert found.dtype == s1.dtype and found.tobytes() == want_found.tobytes()
    np.testing.assert_allclose(total, want_total, rtol=1e-12, atol=1e-9)
    assert monotone == bool(lo >= 0 and s1.min() >= 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("lo", [0.0, 0.25, -0.5])
def test_the_numbers_of_box_extremes_to_the_last_bit(kernels, dtype, signed, lo):
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((2, SIZE)) if signed else rng.random((2, SIZE))
    scores = scores.astype(dtype)
    s0, s1 = scores
    hi = 0.75
    level = float(np.quantile(s0 + hi * s1.astype(np.float64), 0.8))
    candidate_level = float(np.quantile(s1, 0.9))
    expected = _expected(s0, s1, lo, hi, level, candidate_level)
    _same(_call(kernels, s0, s1, lo, hi, level, candidate_level), expected, lo, s1)


@pytest.mark.parametrize("layout", ["fortran", "every_other", "reversed"])
def test_strided_rows(kernels, layout):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2, 2 * SIZE))
    scores = {"fortran": np.asfortranarray(base[:, :SIZE]), "every_other": base[:, ::2],
              "reversed": base[:, ::-1][:, :SIZE]}[layout]
    s0, s1 = scores
    assert not s0.flags.c_contiguous
    level = float(np.median(s0 + 0.5 * s1))
    _same(_call(kernels, s0, s1, 0.1, 0.5, level, 0.5), _expected(s0, s1, 0.1, 0.5, level, 0.5), 0.1, s1)


def test_a_level_per_element(kernels):
    rng = np.random.default_rng(4)
    s0, s1 = rng.random((2, SIZE))
    levels = rng.random(SIZE) + 0.5
    positions, *_ = _call(kernels, s0, s1, 0.2, 0.6, levels)
    high = box_extremes(np.stack([s0, s1]), np.array([0.2]), np.array([0.6]))[1]
    np.testing.assert_array_equal(positions, np.flatnonzero(high >= levels))
    strided = np.repeat(levels, 2)[::2]
    np.testing.assert_array_equal(_call(kernels, s0, s1, 0.2, 0.6, strided)[0], positions)


def test_no_candidates_asked_for_and_an_empty_block(kernels):
    s0, s1 = np.random.default_rng(5).random((2, 100))
    assert _call(kernels, s0, s1, 0.0, 1.0, 0.5, candidates=False)[3] is None
    empty = np.empty(0)
    positions, columns, high, found, total, monotone = _call(kernels, empty, empty, 0.0, 1.0, 0.5)
    assert positions.shape == (0,) and found.shape == (0,) and total == 0.0 and monotone


@pytest.mark.parametrize("row", [0, 1])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("lo", [0.0, -1.0])
def test_a_non_finite_entry_makes_the_total_non_finite(kernels, row, value, lo):
    scores = np.random.default_rng(6).random((2, 1000))
    scores[row, 321] = value
    total = _call(kernels, scores[0], scores[1], lo, 2.0, 0.5)[4]
    assert not np.isfinite(total)
    if row == 1 and np.isnan(value):
        assert _call(kernels, scores[0], scores[1], lo, 2.0, 0.5)[5] is False  # s_1.min() >= 0 fails on NaN too


@pytest.mark.parametrize("name", KERNELS)
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([np.float64, np.float32]),
       st.floats(-2, 2), st.floats(0, 3), st.integers(1, 300))
def test_property_against_numpy(name, seed, dtype, lo, width, size):
    kernels = _module(name)
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((2, size)) * rng.choice([1e-3, 1.0, 1e3], size=(2, 1))).astype(dtype)
    scores[:, rng.random(size) < 0.1] = 0.0  # ties and zeros
    s0, s1 = scores
    hi = lo + width
    level = float(rng.choice(np.concatenate([s0, [0.0]])))
    candidate_level = float(rng.choice(s1))
    _same(_call(kernels, s0, s1, lo, hi, level, candidate_level), _expected(s0, s1, lo, hi, level, candidate_level), lo, s1)


@pytest.fixture
def on_path(kernels, monkeypatch):
    """The screening (copslp._analytic.screening) on ``kernels``."""
    monkeypatch.setattr(screening, "_kernels", kernels)
    return kernels


def _screen(kernels, s0, s1, lo, hi, level, one_level, zero_level, offset=0, groups=None, n_groups=0, candidate_level=None):
    n = s0.shape[0]
    positions, columns, high, ones = np.empty(n, dtype=np.int64), np.empty((2, n)), np.empty(n), np.empty(n, np.int64)
    support = None if groups is None else np.zeros(n_groups, dtype=np.int64)
    candidates = None if candidate_level is None else np.empty(n, dtype=s1.dtype)
    taken = np.zeros(4)
    n_ones, n_survivors, above_one, at_zero, found, total = kernels.screen(
        s0, s1, lo, hi, level, np.inf if candidate_level is None else candidate_level, one_level, zero_level,
        offset, groups, support, positions, columns[0], columns[1], high, ones, candidates, taken)
    return dict(ones=ones[:n_ones], survivors=positions[:n_survivors], columns=columns[:, :n_survivors],
                above_one=above_one, at_zero=at_zero, taken=taken[:2] + taken[2:], total=total, support=support,
                candidates=None if candidates is None else candidates[:found])


def _screen_by_numpy(s0, s1, lo, hi, level, one_level, zero_level, offset=0, groups=None, n_groups=0):
    scores = np.stack([s0, s1]).astype(np.float64)
    low, high = box_extremes(scores, np.array([lo]), np.array([hi]))
    reaches = high >= level
    fixed, kept = reaches & (low > one_level), reaches & ~(low > one_level)
    support = None
    if groups is not None:
        per_element = np.broadcast_to(groups, s0.shape)
        support = np.bincount(per_element[reaches & (low >= level)], minlength=n_groups)
    return dict(ones=np.flatnonzero(fixed) + offset, survivors=np.flatnonzero(kept) + offset, columns=scores[:, kept],
                above_one=int(np.count_nonzero(reaches & (high > one_level))),
                at_zero=int(np.count_nonzero(reaches & (low >= zero_level))), taken=scores[:, fixed].sum(axis=1),
                total=high.sum(), support=support)


def _floors_of(kind, rng, zero_level, group_levels):
    """``(groups, level, n_groups)`` for the floors' count: none; one group for the block, its
    level below the zero level; or a group per element, each with its level (at most the zero
    level)."""
    if kind is None:
        return None, zero_level, 0
    if kind == "one group":
        return 1, zero_level - 0.2, 2
    groups = rng.integers(0, len(group_levels), SIZE)
    return groups, np.minimum(zero_level, np.array(group_levels)[groups]), len(group_levels)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("signed, lo", [(False, 0.25), (True, 0.25), (False, -0.5)])
@pytest.mark.parametrize("floors", [None, "one group", "per element"])
def test_screen_decides_as_numpy(kernels, dtype, signed, lo, floors):
    rng = np.random.default_rng(11)
    s0, s1 = (rng.standard_normal((2, SIZE)) if signed else rng.random((2, SIZE))).astype(dtype)
    hi = 0.5
    v = s0 + 0.4 * s1.astype(np.float64)
    one_level, zero_level = float(np.quantile(v, 0.95)), float(np.quantile(v, 0.85))
    groups, level, n_groups = _floors_of(floors, rng, zero_level, [0.5, 0.9, 2.0, -1.0])
    got = _screen(kernels, s0, s1, lo, hi, level, one_level, zero_level, 1000, groups, n_groups, float(np.quantile(s1, 0.9)))
    want = _screen_by_numpy(s0, s1, lo, hi, level, one_level, zero_level, 1000, groups, n_groups)
    for key in ("ones", "survivors", "above_one", "at_zero", "support"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert got["columns"].tobytes() == want["columns"].tobytes()
    np.testing.assert_allclose(got["taken"], want["taken"], rtol=1e-12)
    np.testing.assert_allclose(got["total"], want["total"], rtol=1e-12)
    assert got["candidates"].tobytes() == s1[s1 >= float(np.quantile(s1, 0.9))].tobytes()


def test_screen_names_a_group_outside_support(kernels):
    s0, s1 = np.random.default_rng(2).random((2, 50))
    with pytest.raises(ValueError, match="groups holds 7, outside \\[0, 3\\)"):
        _screen(kernels, s0, s1, 0.0, 1.0, -1.0, 2.0, -1.0, groups=7, n_groups=3)
    with pytest.raises(ValueError, match="groups holds -1, outside"):
        _screen(kernels, s0, s1, 0.0, 1.0, -1.0, 2.0, -1.0, groups=np.full(50, -1), n_groups=3)


def _several_extremes_by_numpy(scores, lo, hi):
    """The bounds on v of ``_kernels.screen_several``, row by row in numpy: the corners where
    every s_i >= 0 (and lo >= 0), else the centre -/+ the spread, per element."""
    s = scores.astype(np.float64)
    at_lo, at_hi = lo[0] * s[1], hi[0] * s[1]
    middle, spread = (lo[0] + hi[0]) / 2 * s[1], (hi[0] - lo[0]) / 2 * np.abs(s[1])
    for i in range(1, lo.shape[0]):
        at_lo, at_hi = at_lo + lo[i] * s[i + 1], at_hi + hi[i] * s[i + 1]
        middle, spread = middle + (lo[i] + hi[i]) / 2 * s[i + 1], spread + (hi[i] - lo[i]) / 2 * np.abs(s[i + 1])
    middle = middle + s[0]
    corners = np.all(s[1:] >= 0, axis=0) & bool(np.all(lo >= 0))
    return np.where(corners, at_lo + s[0], middle - spread), np.where(corners, at_hi + s[0], middle + spread)


def _screen_several(kernels, scores, lo, hi, level, one_level, zero_level, offset=0, groups=None, n_groups=0,
                    candidate_levels=None):
    n, rows = scores.shape[1], scores.shape[0]
    positions, columns, high, ones = np.empty(n, dtype=np.int64), np.empty((rows, n)), np.empty(n), np.empty(n, np.int64)
    support = None if groups is None else np.zeros(n_groups, dtype=np.int64)
    candidates = None if candidate_levels is None else tuple(np.empty(n, dtype=scores.dtype) for _ in range(rows - 1))
    taken = np.zeros(2 * rows)
    n_ones, n_survivors, above_one, at_zero, found, total = kernels.screen_several(
        tuple(scores), lo, hi, level, candidate_levels, one_level, zero_level, offset, groups, support, positions,
        tuple(columns), high, ones, candidates, taken)
    return dict(ones=ones[:n_ones], survivors=positions[:n_survivors], columns=columns[:, :n_survivors],
                above_one=above_one, at_zero=at_zero, taken=taken[:rows] + taken[rows:], total=total, support=support,
                candidates=None if candidates is None else [c[:f] for c, f in zip(candidates, found)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("floors", [None, "one group", "per element"])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("r, corner", [(2, 0.1), (3, 0.1), (4, 0.1), (5, 0.1), (3, -0.1)])
@pytest.mark.parametrize("with_candidates", [True, False])
def test_screen_several_decides_as_numpy(kernels, dtype, signed, floors, layout, r, corner, with_candidates):
    """Every loop of screen_several: one pass for r = 2, 3 and 4 contiguous rows, the chunked
    loop and ``decide`` for strided rows and r = 5; a negative corner of the box (no corners
    form) as well; with validation's candidates and without (every screening after the
    first)."""
    rng = np.random.default_rng(12)
    base = rng.standard_normal((r + 1, 2 * SIZE)) if signed else rng.random((r + 1, 2 * SIZE))
    scores = (base[:, :SIZE] if layout == "contiguous" else base[:, ::2]).astype(dtype)
    if signed:
        scores[1:, : SIZE // 2] = np.abs(scores[1:, : SIZE // 2])  # both forms in one block
    lo, hi = np.array([corner, 0.0, 0.3, 0.05, 0.2][:r]), np.array([0.2, 0.15, 0.35, 0.1, 0.25][:r])
    low, high = _several_extremes_by_numpy(scores, lo, hi)
    # levels that some element's low or high equals: a number off in its last bit changes a decision
    one_level, zero_level = float(np.quantile(low, 0.95, method="lower")), float(np.quantile(high, 0.8, method="lower"))
    groups, level, n_groups = _floors_of(floors, rng, zero_level, [0.2, 1.0, -2.0])
    candidate_levels = np.quantile(scores[1:], 0.9, axis=1).astype(np.float64) if with_candidates else None
    got = _screen_several(kernels, scores, lo, hi, level, one_level, zero_level, 500, groups, n_groups, candidate_levels)
    reaches = high >= level
    fixed, kept = reaches & (low > one_level), reaches & ~(low > one_level)
    np.testing.assert_array_equal(got["ones"], np.flatnonzero(fixed) + 500)
    np.testing.assert_array_equal(got["survivors"], np.flatnonzero(kept) + 500)
    assert got["columns"].tobytes() == scores[:, kept].astype(np.float64).tobytes()
    assert got["above_one"] == np.count_nonzero(reaches & (high > one_level))
    assert got["at_zero"] == np.count_nonzero(reaches & (low >= zero_level))
    np.testing.assert_allclose(got["taken"], scores[:, fixed].astype(np.float64).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(got["total"], high.sum(), rtol=1e-12)
    for row, found, at in zip(scores[1:], got["candidates"] or [], candidate_levels if with_candidates else []):
        assert found.tobytes() == row[row >= at].tobytes()
    assert (got["candidates"] is None) != with_candidates
    if groups is not None:
        per_element = np.broadcast_to(groups, (SIZE,))
        np.testing.assert_array_equal(got["support"], np.bincount(per_element[reaches & (low >= level)],
                                                                  minlength=n_groups))
    # the same bounds on v as box_extremes, which chooses the form per block
    want_low, want_high = box_extremes(scores, lo, hi)
    np.testing.assert_allclose(low, want_low, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(high, want_high, rtol=1e-12, atol=1e-12)


def test_screen_several_errors_name_the_argument(kernels):
    scores = np.random.default_rng(1).random((3, 20))
    lo, hi = np.zeros(2), np.ones(2)
    out = (np.empty(20, np.int64), tuple(np.empty(20) for _ in range(3)), np.empty(20), np.empty(20, np.int64))
    with pytest.raises(TypeError, match="rows must be a tuple of at least 3 arrays"):
        kernels.screen_several(tuple(scores[:2]), lo[:1], hi[:1], 0.5, None, 1.0, 0.5, 0, None, None, out[0],
                                out[1][:2], out[2], out[3], None, np.zeros(6))
    with pytest.raises(ValueError, match="hi has length 3, needs 2"):
        kernels.screen_several(tuple(scores), lo, np.ones(3), 0.5, None, 1.0, 0.5, 0, None, None, *out, None,
                                np.zeros(6))
    with pytest.raises(TypeError, match=r"rows\[2\] has format 'f'"):
        kernels.screen_several((scores[0], scores[1], scores[2].astype(np.float32)), lo, hi, 0.5, None, 1.0, 0.5,
                                0, None, None, *out, None, np.zeros(6))
    with pytest.raises(TypeError, match="columns must be a tuple of 3 buffers"):
        kernels.screen_several(tuple(scores), lo, hi, 0.5, None, 1.0, 0.5, 0, None, None, out[0], out[1][:2],
                                out[2], out[3], None, np.zeros(6))
    with pytest.raises(TypeError, match="candidate_levels and candidates must both be given"):
        kernels.screen_several(tuple(scores), lo, hi, 0.5, np.ones(2), 1.0, 0.5, 0, None, None, *out, None,
                                np.zeros(6))
    with pytest.raises(ValueError, match="groups holds 5, outside"):
        kernels.screen_several(tuple(scores), lo, hi, -9.0, None, 9.0, -9.0, 0, 5, np.zeros(2, np.int64), *out,
                                None, np.zeros(6))


def test_scores_fixed_to_one_are_summed_with_compensation(on_path):
    """One large score, then many small ones fixed to 1: each small one is below half an ulp
    of the running sum, which must keep them all (a plain running sum loses 1.5e-11 of 1 here)."""
    size = 300_000
    scores = np.zeros((2, size))
    scores[0, 0] = 1.0
    scores[0, 1:150_001] = 1e-16
    scores[1] = np.random.default_rng(0).random(size)
    result = copslp.solve(scores, 200_000, gamma=0.5, method="analytic")
    exact = math.fsum((scores[0] * np.asarray(result.x)).tolist())
    assert result.objective == pytest.approx(exact, rel=1e-14, abs=0)


def test_every_group_is_checked_before_anything_is_counted(kernels):
    """A group outside support on an element that does not reach its level is refused too, and
    support is left as it was."""
    s0, s1 = np.array([5.0, -5.0, 5.0, -5.0]), np.zeros(4)
    support = np.zeros(2, dtype=np.int64)
    out = (np.empty(4, np.int64), np.empty(4), np.empty(4), np.empty(4), np.empty(4, np.int64))
    with pytest.raises(ValueError, match=r"groups holds 7, outside \[0, 2\)"):
        kernels.screen(s0, s1, 0.0, 1.0, 0.0, np.inf, 10.0, 0.0, 0, np.array([0, 7, 0, 0]), support, *out, None,
                        np.zeros(4))
    assert not support.any()


@pytest.mark.parametrize("group, box, error, words", [
    (1.0, (0.0, 1.0), TypeError, "groups must be an integer"),
    (np.float64(1.0), (0.0, 1.0), TypeError, "groups must be an integer"),
    (1, (1.0, 0.5), ValueError, r"lo <= hi, got lo\[0\] = 1.0, hi\[0\] = 0.5"),
    (1, (np.nan, 0.5), ValueError, r"lo <= hi, got lo\[0\] = nan"),
])
def test_screen_refuses_a_float_group_and_a_box_upside_down(kernels, group, box, error, words):
    s0, s1 = np.random.default_rng(3).random((2, 50))
    out = (np.empty(50, np.int64), np.empty(50), np.empty(50), np.empty(50), np.empty(50, np.int64))
    with pytest.raises(error, match=words):
        kernels.screen(s0, s1, *box, 0.75, np.inf, 1.2, 0.75, 0, group, np.zeros(2, np.int64), *out, None,
                        np.zeros(4))
    rows = np.random.default_rng(4).random((3, 50))
    several_out = (out[0], tuple(np.empty(50) for _ in range(3)), out[2], out[4])
    with pytest.raises(error, match=words):
        kernels.screen_several(tuple(rows), np.array([box[0], 0.0]), np.array([box[1], 1.0]), 0.75, None, 1.2,
                                0.75, 0, group, np.zeros(2, np.int64), *several_out, None, np.zeros(6))


def test_kernel_docstrings_name_functions_that_exist(kernels):
    import copslp._analytic.screening as screening
    for function in (kernels.reach, kernels.screen, kernels.screen_several):
        for name in re.findall(r"copslp\._screening\.(\w+)", function.__doc__):
            assert hasattr(screening, name), (function.__name__, name)


def test_numpy_scalars_are_numbers(kernels):
    s0, s1 = np.random.default_rng(3).random((2, 50))
    out = (np.empty(50, np.int64), np.empty(50), np.empty(50), np.empty(50), np.empty(50, np.int64))
    by_float = kernels.screen(s0, s1, 0.0, 1.0, 0.75, np.inf, 1.2, 0.75, 0, 1, np.zeros(2, np.int64), *out, None,
                               np.zeros(4))
    support = np.zeros(2, np.int64)
    by_scalar = kernels.screen(s0, s1, 0.0, 1.0, np.float32(0.75), np.inf, 1.2, 0.75, 0, np.int64(1), support,
                                *out, None, np.zeros(4))
    assert by_scalar == by_float and support[1] > 0


def test_collected_grows_at_the_rate_seen_so_far():
    collected = Collected([np.int64, (2, np.float64)], 4)
    positions, columns = collected.room(4)
    positions[:3], columns[:, :3] = [1, 2, 3], 1.0
    collected.add(3)
    positions, columns = collected.room(4, read=10, size=1000)  # 3 of 10 so far: 300 over all
    assert positions.shape[0] >= 300 - 3 and columns.shape == (2, positions.shape[0])
    positions[0] = 9
    collected.add(1)
    got_positions, got_columns = collected.arrays()
    np.testing.assert_array_equal(got_positions, [1, 2, 3, 9])
    assert got_columns.shape == (2, 4) and np.all(got_columns[:, :3] == 1.0)
    assert got_positions.base is None and got_columns.base is None  # mostly room: copies, the room let go
    full = Collected([np.int64], 4)
    full.room(4)[0][:] = [5, 6, 7, 8]
    full.add(3)
    (view,) = full.arrays()
    assert view.base is not None and view.tolist() == [5, 6, 7]  # mostly filled: a view


def _buffers(n, dtype=np.float64):
    return [np.empty(n, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n), np.empty(n, dtype=dtype)]


@pytest.mark.parametrize("case, error, words", [
    ("int rows", TypeError, "s0 has format"),
    ("mixed dtypes", TypeError, "s1 has format"),
    ("two-dimensional", ValueError, "s0 must be one-dimensional"),
    ("lengths", ValueError, "s1 has length 9, needs 10"),
    ("short output", ValueError, "high has length 5, needs at least 10"),
    ("float positions", TypeError, "positions has format 'd'"),
    ("read-only output", ValueError, "column0: buffer source array is read-only"),
    ("not a buffer", TypeError, "s0: a bytes-like object is required"),
    ("level of another length", ValueError, "level has length 3, needs 10"),
])
def test_errors_name_the_argument(kernels, case, error, words):
    s = np.random.default_rng(0).random((2, 10))
    s0, s1, level = s[0], s[1], 0.5
    out = _buffers(10)
    if case == "int rows":
        s0 = np.arange(10)
    elif case == "mixed dtypes":
        s1 = s1.astype(np.float32)
    elif case == "two-dimensional":
        s0 = s
    elif case == "lengths":
        s1 = s1[:9]
    elif case == "short output":
        out[3] = np.empty(5)
    elif case == "float positions":
        out[0] = np.empty(10)
    elif case == "read-only output":
        out[1].flags.writeable = False
    elif case == "not a buffer":
        s0 = [0.5] * 10
    elif case == "level of another length":
        level = np.ones(3)
    with pytest.raises(error, match=words):
        kernels.reach(s0, s1, 0.0, 1.0, level, np.inf, *out)


def _bits(value):
    """``value`` (a returned tuple, an output array or None) as bytes: every number to the last
    bit, except that a NaN is any NaN (which of two NaN an addition keeps is the compiler's
    choice: the C file leaves numbers made from non-finite entries unspecified beyond a
    non-finite total)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_bits(entry) if isinstance(entry, (tuple, float)) else entry for entry in value)
    value = np.array(value)
    if value.dtype.kind == "f":
        value[np.isnan(value)] = np.nan
    return value.tobytes()


def _pass_outputs(kernels, scores, lo, hi, level, one_level, zero_level, groups, n_groups, candidate_levels):
    """Every output of one pass of ``kernels`` over ``scores`` (``reach`` and ``screen`` with one
    multiplier, ``screen_several`` with more): what it returned and the filled part of each
    buffer, as bytes."""
    n, rows = scores.shape[1], scores.shape[0]
    positions, columns, high, ones = np.zeros(n, np.int64), np.zeros((rows, n)), np.zeros(n), np.zeros(n, np.int64)
    support = None if groups is None else np.zeros(n_groups, dtype=np.int64)
    taken = np.zeros(2 * rows)
    candidates = [np.zeros(n, dtype=scores.dtype) for _ in range(rows - 1)]
    outputs = []
    if rows == 2:
        returned = kernels.reach(scores[0], scores[1], lo[0], hi[0], level, candidate_levels[0], positions, *columns,
                                 high, candidates[0])
        outputs += [returned, positions[:returned[0]], columns[:, :returned[0]], high[:returned[0]],
                    candidates[0][:returned[1]]]
        returned = kernels.screen(scores[0], scores[1], lo[0], hi[0], level, candidate_levels[0], one_level,
                                  zero_level, 3, groups, support, positions, *columns, high, ones, candidates[0], taken)
        found = (returned[4],)
    else:
        returned = kernels.screen_several(tuple(scores), lo, hi, level, candidate_levels, one_level, zero_level, 3,
                                          groups, support, positions, tuple(columns), high, ones, tuple(candidates),
                                          taken)
        found = returned[4]
    n_ones, n_survivors = returned[:2]
    outputs += [returned, ones[:n_ones], positions[:n_survivors], columns[:, :n_survivors], taken, support,
                *(row[:count] for row, count in zip(candidates, found))]
    return [_bits(value) for value in outputs]


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([np.float64, np.float32]), st.integers(1, 3), st.integers(0, 400),
       st.booleans(), st.sampled_from([None, "one group", "per element"]), st.booleans(), st.booleans())
def test_the_two_give_the_same_outputs_to_the_last_bit(seed, dtype, r, size, strided, floors, level_per_element,
                                                       non_finite):
    """The numpy passes against the compiled ones on the same arguments: every returned number
    and every output buffer the same, to the last bit (the compensated sums included; a NaN is
    any NaN)."""
    if _compiled is None:
        pytest.skip("copslp._kernels is not built here")
    rng = np.random.default_rng(seed)
    base = (rng.standard_normal((r + 1, 2 * size)) * rng.choice([1e-3, 1.0, 1e3], size=(r + 1, 1))).astype(dtype)
    scores = base[:, ::2] if strided else base[:, :size]
    scores[:, rng.random(size) < 0.1] = 0.0  # ties and zeros
    if rng.random() < 0.5:
        scores[1:] = np.abs(scores[1:])  # the corners' form throughout
    if non_finite and size:
        scores[rng.integers(r + 1), rng.integers(size, size=3)] = rng.choice([np.nan, np.inf, -np.inf], size=3)
    lo = rng.choice([-0.5, 0.0, 0.25], size=r)
    hi = lo + rng.choice([0.0, 0.1, 1.0], size=r)
    with np.errstate(invalid="ignore", over="ignore"):
        v = scores[0] + (lo + hi) / 2 @ scores[1:].astype(np.float64)
    finite = v[np.isfinite(v)] if size else np.zeros(1)
    finite = finite if finite.size else np.zeros(1)
    one_level, zero_level = float(np.quantile(finite, 0.9)), float(np.quantile(finite, 0.6))
    groups, level, n_groups = {None: (None, zero_level, 0), "one group": (1, zero_level - 0.1, 2),
                               "per element": (rng.integers(0, 3, size), zero_level - rng.random(size), 3)}[floors]
    if level_per_element and np.ndim(level) == 0:
        level = np.full(size, level)
    candidate_levels = np.quantile(np.nan_to_num(scores[1:].astype(np.float64)), 0.8, axis=1) if size else np.zeros(r)
    compiled = _pass_outputs(_compiled, scores, lo, hi, level, one_level, zero_level, groups, n_groups,
                             candidate_levels)
    in_numpy = _pass_outputs(_kernels_numpy, scores, lo, hi, level, one_level, zero_level, groups, n_groups,
                             candidate_levels)
    for index, (want, got) in enumerate(zip(compiled, in_numpy)):
        assert got == want, index


def test_running_sums_are_those_of_a_loop():
    """The sums of the numpy passes are running sums in the order of the C loops:
    np.add.accumulate adds in that order, and the compensated sum (Neumaier) is the loop's."""
    rng = np.random.default_rng(9)
    values = rng.standard_normal(20_000) * 10.0 ** rng.integers(-12, 12, 20_000)
    running = 0.5
    for value in values.tolist():
        running += value
    assert _kernels_numpy._running_sum(values, 0.5) == running
    total, error = 3.0, 1e-17
    for value in values.tolist():
        t = total + value
        error += (total - t) + value if abs(total) >= abs(value) else (value - t) + total
        total = t
    taken = np.array([3.0, 0.0, 1e-17, 0.0])
    _kernels_numpy._add_compensated(taken, 0, 2, values)
    assert (taken[0], taken[2]) == (total, error)
    assert sum(values.tolist()) != running  # the order matters for these numbers: the test can fail


def _counting(monkeypatch, module):
    """Count the calls of each pass of ``module`` (a dict filled as they come)."""
    calls = {}
    for name in ("reach", "screen", "screen_several"):
        def counted(*arguments, _name=name, _pass=getattr(module, name)):
            calls[_name] = calls.get(_name, 0) + 1
            return _pass(*arguments)
        monkeypatch.setattr(module, name, counted)
    return calls


def _problems():
    rng = np.random.default_rng(21)
    size = 60_000
    layers = np.repeat(np.arange(6), size // 6)
    return {"one bound": (rng.random((2, size)), dict(budget=0.2, gamma=0.9)),
            "three bounds": (rng.random((4, size)), dict(budget=0.2, gamma=[0.7, 0.65, 0.6])),
            "floors": (rng.random((2, size)), dict(budget=0.1, gamma=0.9, groups=layers, floors=800))}


def test_the_analytic_method_on_the_numpy_path(monkeypatch):
    """With the numpy passes (as on an install without a C compiler) the analytic method
    screens through them and gives the compiled path's answers to the last bit; it warns once
    per process, at the caller's line, and says so in ``info``."""
    options = {"sample_size": 4096}
    compiled = {}
    if _compiled is not None:
        monkeypatch.setattr(screening, "_kernels", _compiled)
        compiled = {name: copslp.solve(scores, **problem, options=options)
                    for name, (scores, problem) in _problems().items()}
        assert {result.info["kernels"] for result in compiled.values()} == {"compiled"}
    monkeypatch.setattr(screening, "_kernels", _kernels_numpy)
    monkeypatch.setattr(_kernels_numpy, "_warned", False)
    calls = _counting(monkeypatch, _kernels_numpy)
    with pytest.warns(copslp.CopsWarning) as caught:
        results = {name: copslp.solve(scores, **problem, options=options)
                   for name, (scores, problem) in _problems().items()}
    ours = [w for w in caught if "screening passes in numpy" in str(w.message)]
    assert len(ours) == 1 and ours[0].filename == __file__, [(str(w.message), w.filename) for w in caught]
    assert "slower" in str(ours[0].message)
    assert calls.get("screen", 0) > 0 and calls.get("screen_several", 0) > 0, calls
    for name, result in results.items():
        assert result.info["kernels"] == "numpy" and result.certificate.passed, name
        if compiled:
            want = compiled[name]
            np.testing.assert_array_equal(result.mask, want.mask, err_msg=name)
            assert np.asarray(result.x).tobytes() == np.asarray(want.x).tobytes(), name
            assert (result.objective, result.mask_objective) == (want.objective, want.mask_objective), name
            assert result.multipliers.tobytes() == want.multipliers.tobytes(), name


def test_the_choice_of_passes(monkeypatch):
    """COPSLP_KERNELS: ``numpy`` chooses the numpy passes, ``compiled`` the compiled ones or an
    ImportError, anything else a ValueError naming it; unset, the compiled ones where they
    are built, else the numpy ones."""
    monkeypatch.setattr(_kernels_numpy, "_reason", _kernels_numpy._reason)
    monkeypatch.setenv("COPSLP_KERNELS", "numpy")
    assert _kernels_numpy.load_kernels() is _kernels_numpy
    assert _kernels_numpy.kernels_name(_kernels_numpy) == "numpy"
    monkeypatch.setenv("COPSLP_KERNELS", "fast")
    with pytest.raises(ValueError, match="COPSLP_KERNELS must be 'numpy', 'compiled' or unset, got 'fast'"):
        _kernels_numpy.load_kernels()
    if _compiled is not None:
        for choice in ("compiled", ""):
            monkeypatch.setenv("COPSLP_KERNELS", choice)
            assert _kernels_numpy.load_kernels() is _compiled
        assert _kernels_numpy.kernels_name(_compiled) == "compiled"
    monkeypatch.delattr(copslp, "_kernels", raising=False)  # as if it were not built
    monkeypatch.setitem(sys.modules, "copslp._kernels", None)
    monkeypatch.setenv("COPSLP_KERNELS", "compiled")
    with pytest.raises(ImportError, match="COPSLP_KERNELS=compiled, but copslp._kernels cannot be imported"):
        _kernels_numpy.load_kernels()
    monkeypatch.delenv("COPSLP_KERNELS")
    assert _kernels_numpy.load_kernels() is _kernels_numpy
    assert _kernels_numpy._reason.startswith("copslp._kernels is not built")


def _sources_without_the_built_module(tmp_path) -> Path:
    """A copy of the package's sources (setup.py, pyproject.toml, README.md, copslp/,
    torch_adapter/) without any built module."""
    root = Path(copslp.__file__).parent.parent
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(root / name, tmp_path / name)
    for package in ("copslp", "torch_adapter"):
        shutil.copytree(root / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return tmp_path


def test_an_unbuilt_module_falls_back_to_numpy(tmp_path):
    """The package's sources without the built module (a checkout used without building it, or an
    install without a C compiler): the analytic method runs, on the numpy passes, warns once
    where it was called and says so in ``info``."""
    source = _sources_without_the_built_module(tmp_path)
    code = ("import sys, warnings\n"  # without the finder of an editable install, which knows the built module's path
            "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]\n"
            "import numpy as np, copslp\n"
            "warnings.simplefilter('always')\n"
            "scores = np.random.default_rng(0).random((2, 40_000))\n"
            "for _ in range(2):\n"
            "    result = copslp.solve(scores, 0.2, gamma=0.9, options={'sample_size': 4096})\n"
            "print(result.info['kernels'], 'analytic' in copslp.available_methods())\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(source)}, cwd=source)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["numpy", "True"]
    assert run.stderr.count("CopsWarning: copslp runs the analytic method's screening passes in numpy "
                            "(copslp._kernels is not built") == 1, run.stderr
    assert "<string>:7: CopsWarning" in run.stderr  # the caller's line


def test_a_wheel_builds_without_a_c_compiler(tmp_path):
    """``pip wheel`` with CC=/bin/false (a compiler that always fails): the wheel is built
    without copslp._kernels, and the build says why on stderr."""
    pytest.importorskip("setuptools", minversion="77")  # the version pyproject.toml needs
    source = _sources_without_the_built_module(tmp_path / "source")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(tmp_path / "wheels"), str(source)],
                         capture_output=True, text=True, env={**os.environ, "CC": "/bin/false"}, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "copslp: the C extension copslp._kernels could not be built" in run.stdout + run.stderr
    (wheel,) = (tmp_path / "wheels").glob("copslp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    for name in ("copslp/_kernels_numpy.py", "copslp/_analytic/screening.py", "copslp/_backends/highs.py"):
        assert name in names, name
    assert not [name for name in names if name.endswith((".so", ".pyd"))]
