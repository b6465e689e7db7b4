"""TensorPasses answers as ArrayPasses on the same values: equal counts, the same survivors
and fixed elements, the same masks, sums equal to rounding.

The shard is a few blocks of :data:`copslp._blocks.BLOCK` long and read in chunks of two
blocks, so chunks hold blocks whose secondary scores are all >= 0 (box extremes at the
corners) beside blocks with negative ones (centre -/+ spread), and the last chunk is partial.
The levels are values of the shard's own elements, so ties at a level are counted.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from copslp._blocks import BLOCK  # noqa: E402
from copslp._analytic.passes import ArrayPasses  # noqa: E402
from copslp._analytic.screening import box_extremes  # noqa: E402
from torch_adapter import TensorPasses  # noqa: E402
from torch_models import single_torch_thread  # noqa: E402,F401

#: Every device here: the CPU, and CUDA where there is one (the same answers, bit for bit).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SIZE = 3 * BLOCK + 1234
N_GROUPS = 5
#: Relative to the sum of the magnitudes summed: float64 sums in two orders.
SUM_RTOL = 1e-12


def make_scores(n_rows: int, size: int, dtype, seed: int) -> np.ndarray:
    """Signed primary, secondaries >= 0 in blocks 0 and 3 and signed in blocks 1 and 2, ties."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_rows, size))
    scores[1:, :BLOCK] = np.abs(scores[1:, :BLOCK])
    scores[1:, 3 * BLOCK:] = np.abs(scores[1:, 3 * BLOCK:])
    scores[:, ::97] = np.round(scores[:, ::97], 1)  # repeated values
    return scores.astype(dtype)


def make_groups(size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).integers(0, N_GROUPS, size)).astype(np.int64)


def point_values(scores: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    values = scores[rows].astype(np.float64)
    if rows.shape[0] == 1:
        return values[0], values[0]
    return box_extremes(values, lo, hi)


def levels(scores, rows, lo, hi, groups):
    """A one-level and a zero-level that are values of the shard (ties at them), group levels."""
    low, high = point_values(scores, rows, lo, hi)
    if low.shape[0] == 0:
        return 1.0, -1.0, (np.full(N_GROUPS, -1.0) if groups is not None else None)
    one_level = float(np.sort(high)[int(0.8 * high.shape[0])])
    zero_level = float(np.sort(low)[int(0.5 * low.shape[0])])
    group_levels = None
    if groups is not None:
        group_levels = np.full(N_GROUPS, zero_level)
        group_levels[1] = -np.inf
        group_levels[2] = float(np.sort(low)[int(0.2 * low.shape[0])])
    return one_level, zero_level, group_levels


BOXES = {
    "no multiplier": (np.array([0]), np.zeros(0), np.zeros(0)),
    "one": (np.array([0, 1]), np.array([0.25]), np.array([1.5])),
    "one, a point": (np.array([0, 1]), np.array([0.75]), np.array([0.75])),
    "one, secondary as objective": (np.array([1, 0]), np.array([0.0]), np.array([0.5])),
    "several": (np.array([0, 1, 2, 3]), np.array([0.0, 0.5, 1.0]), np.array([0.5, 0.75, 3.0])),
    "several, a point": (np.array([0, 1, 2, 3]), np.array([0.5, 0.25, 2.0]), np.array([0.5, 0.25, 2.0])),
    "two of four": (np.array([2, 3, 1]), np.array([0.1, 0.2]), np.array([0.4, 1.2])),
}


def assert_sums_close(actual, expected, scale):
    difference = np.abs(np.asarray(actual) - np.asarray(expected))
    assert np.all(difference <= SUM_RTOL * np.asarray(scale)), (actual, expected, difference / scale)


def compare_every_pass(scores: np.ndarray, groups, passes: TensorPasses, rows, lo, hi, seed: int):
    reference = ArrayPasses(scores, groups, N_GROUPS if groups is not None else 0)
    magnitude_sums = np.abs(scores.astype(np.float64)).sum(axis=1)

    np.testing.assert_array_equal(passes.non_finite(), reference.non_finite())
    np.testing.assert_array_equal(passes.group_counts(), reference.group_counts())
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(scores.shape[1], size=min(50, scores.shape[1]), replace=False))
    for mine, theirs in zip(passes.take(positions), reference.take(positions)):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert mine.dtype == theirs.dtype
            np.testing.assert_array_equal(mine, theirs)

    one_level, zero_level, group_levels = levels(scores, rows, lo, hi, groups)
    screened = passes.screen(rows, lo, hi, one_level, zero_level, group_levels)
    expected = reference.screen(rows, lo, hi, one_level, zero_level, group_levels)
    assert (screened.above_one, screened.reaching, screened.fixed_ones) == (
        expected.above_one, expected.reaching, expected.fixed_ones)
    for name in ("support", "fixed_per_group", "survivor_groups"):
        mine, theirs = getattr(screened, name), getattr(expected, name)
        assert (mine is None) == (theirs is None), name
        if mine is not None:
            assert mine.dtype == np.int64, name
            np.testing.assert_array_equal(mine, theirs, err_msg=name)
    assert screened.survivors.dtype == np.float64
    np.testing.assert_array_equal(screened.survivors, expected.survivors)
    assert_sums_close(screened.taken, expected.taken, magnitude_sums)

    multipliers = (lo + hi) / 2.0
    outside, expected_outside = passes.extremes(screened, rows, multipliers), reference.extremes(expected, rows,
                                                                                                  multipliers)
    np.testing.assert_array_equal(outside.zeros_max, expected_outside.zeros_max)
    np.testing.assert_array_equal(outside.ones_min, expected_outside.ones_min)
    np.testing.assert_array_equal(outside.magnitudes, expected_outside.magnitudes)
    assert_sums_close(outside.abs_taken, expected_outside.abs_taken, magnitude_sums)

    floor_multipliers = None if groups is None else rng.random(N_GROUPS)
    for level in (zero_level, one_level):
        part = passes.positive_part(rows, multipliers, level, floor_multipliers)
        expected_part = reference.positive_part(rows, multipliers, level, floor_multipliers)
        assert isinstance(part, float)
        scale = np.abs(point_values(scores, rows, multipliers, multipliers)[0] - level).sum()
        assert_sums_close(part, expected_part, scale + (0 if floor_multipliers is None else floor_multipliers.sum()
                                                        * scores.shape[1]))

    assert screened.n_survivors == expected.n_survivors == expected.survivors.shape[1]
    below, below_expected = passes.survivor_passes(screened), reference.survivor_passes(expected)
    assert isinstance(below, TensorPasses) and below.device == passes.device
    assert below.size == below_expected.size == screened.n_survivors and below.n_groups == below_expected.n_groups
    assert all(row.dtype == passes.rows[0].dtype for row in below.rows)  # the scores' own dtype, on their device
    everything = np.arange(below.size)
    for mine, theirs in zip(below.take(everything), below_expected.take(everything)):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            np.testing.assert_array_equal(mine, theirs)

    kept = rng.random(screened.survivors.shape[1]) < 0.5
    mask = passes.mask(screened, kept)
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask.device == passes.device
    np.testing.assert_array_equal(mask.cpu().numpy(), reference.mask(expected, kept))
    from_below = passes.mask(screened, torch.from_numpy(kept).to(passes.device))  # a level below's mask
    assert torch.equal(from_below, mask)
    with pytest.raises(ValueError, match="kept_survivors"):
        passes.mask(screened, torch.from_numpy(kept.astype(np.int64)))
    return screened


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("grouped", [False, True], ids=["no groups", "groups"])
@pytest.mark.parametrize("box", list(BOXES), ids=list(BOXES))
def test_tensor_passes_equal_array_passes(dtype, grouped, box, device):
    rows, lo, hi = BOXES[box]
    n_rows = max(int(rows.max()) + 1, 2 if box.startswith("one") else 1)
    for n in sorted({n_rows, 4}):
        scores = make_scores(n, SIZE, dtype, seed=n)
        groups = make_groups(SIZE, seed=n) if grouped else None
        passes = TensorPasses(torch.from_numpy(scores).to(device),
                              None if groups is None else torch.from_numpy(groups).to(device), N_GROUPS if grouped else 0,
                              chunk=2 * BLOCK)
        screened = compare_every_pass(scores, groups, passes, rows, lo, hi, seed=n)
        assert screened.fixed_ones > 0 and screened.survivors.shape[1] > 0


def test_screen_keeps_some_of_every_kind():
    """The levels of these tests leave elements fixed to 1, survivors and dropped ones."""
    scores = make_scores(4, SIZE, np.float64, seed=1)
    rows, lo, hi = BOXES["several"]
    one_level, zero_level, _ = levels(scores, rows, lo, hi, None)
    screened = TensorPasses(torch.from_numpy(scores), chunk=2 * BLOCK).screen(rows, lo, hi, one_level, zero_level, None)
    survivors = screened.survivors.shape[1]
    assert 0 < screened.fixed_ones and 0 < survivors and screened.fixed_ones + survivors < SIZE


@pytest.mark.parametrize("chunk", [None, 4 * BLOCK], ids=["default chunk", "one chunk"])
@pytest.mark.parametrize("n_rows", [1, 2, 4])
def test_rows_as_a_sequence(n_rows, chunk):
    """A sequence of 1-D tensors (float32) read where they are, with int32 groups."""
    scores = make_scores(n_rows, SIZE, np.float32, seed=7)
    rows, lo, hi = {1: BOXES["no multiplier"], 2: BOXES["one"], 4: BOXES["several"]}[n_rows]
    groups = make_groups(SIZE, seed=7)
    tensors = [torch.from_numpy(row) for row in scores]
    passes = TensorPasses(tensors, torch.from_numpy(groups.astype(np.int32)), N_GROUPS, chunk=chunk)
    assert all(row.data_ptr() == tensor.data_ptr() for row, tensor in zip(passes.rows, tensors))
    compare_every_pass(scores, groups, passes, rows, lo, hi, seed=7)


@pytest.mark.parametrize("box", ["one", "two of four"])
def test_strided_rows(box):
    """Rows of a (D, n) tensor's transpose (stride n) are read as they are."""
    scores = make_scores(4, SIZE, np.float64, seed=4)
    transposed = torch.from_numpy(np.ascontiguousarray(scores.T)).T
    assert not transposed[1].is_contiguous()
    rows, lo, hi = BOXES[box]
    compare_every_pass(scores, None, TensorPasses(transposed, chunk=2 * BLOCK), rows, lo, hi, seed=4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("torch_dtype", [torch.float16, torch.bfloat16])
def test_half_precisions_read_exactly(torch_dtype, device):
    """float16 and bfloat16 rows (uint8 groups) give the answers of their exact float32 values."""
    values = torch.from_numpy(make_scores(4, SIZE, np.float32, seed=3)).to(device=device, dtype=torch_dtype)
    groups = make_groups(SIZE, seed=3)
    passes = TensorPasses(values, torch.from_numpy(groups.astype(np.uint8)).to(device), N_GROUPS, chunk=2 * BLOCK)
    rows, lo, hi = BOXES["several"]
    compare_every_pass(values.float().cpu().numpy(), groups, passes, rows, lo, hi, seed=3)


@pytest.mark.parametrize("grouped", [False, True], ids=["no groups", "groups"])
@pytest.mark.parametrize("box", ["no multiplier", "one", "several"])
def test_an_empty_shard(grouped, box):
    rows, lo, hi = BOXES[box]
    scores = np.zeros((4, 0))
    groups = np.zeros(0, dtype=np.int64) if grouped else None
    passes = TensorPasses(torch.from_numpy(scores), None if groups is None else torch.from_numpy(groups),
                          N_GROUPS if grouped else 0)
    screened = compare_every_pass(scores, groups, passes, rows, lo, hi, seed=0)
    assert screened.survivors.shape == (4, 0)
    assert passes.mask(screened, np.zeros(0, dtype=bool)).shape == (0,)


def test_groups_without_group_levels_play_no_part():
    """``group_levels=None``: the screen of the scores without groups, the survivors' groups
    still returned."""
    scores, groups = make_scores(2, SIZE, np.float64, seed=6), make_groups(SIZE, seed=6)
    rows, lo, hi = BOXES["one"]
    one_level, zero_level, _ = levels(scores, rows, lo, hi, None)
    grouped = TensorPasses(torch.from_numpy(scores), torch.from_numpy(groups), N_GROUPS, chunk=2 * BLOCK)
    plain = TensorPasses(torch.from_numpy(scores), chunk=2 * BLOCK)
    screened = grouped.screen(rows, lo, hi, one_level, zero_level, None)
    expected = plain.screen(rows, lo, hi, one_level, zero_level, None)
    assert screened.support is None and screened.fixed_per_group is None
    assert (screened.above_one, screened.reaching, screened.fixed_ones) == (
        expected.above_one, expected.reaching, expected.fixed_ones)
    np.testing.assert_array_equal(screened.survivors, expected.survivors)
    _, positions = expected.handle
    np.testing.assert_array_equal(screened.survivor_groups, groups[positions.numpy()])


def test_non_finite_counted_per_row():
    scores = make_scores(3, SIZE, np.float32, seed=5)
    scores[0, [3, 2 * BLOCK + 1]] = np.nan
    scores[2, SIZE - 1] = -np.inf
    np.testing.assert_array_equal(TensorPasses(torch.from_numpy(scores), chunk=BLOCK).non_finite(), [2, 0, 1])


def test_mask_refuses_a_wrong_number_of_survivors():
    scores = make_scores(2, 1000, np.float64, seed=2)
    passes = TensorPasses(torch.from_numpy(scores))
    rows, lo, hi = BOXES["one"]
    one_level, zero_level, _ = levels(scores, rows, lo, hi, None)
    screened = passes.screen(rows, lo, hi, one_level, zero_level, None)
    count = screened.survivors.shape[1]
    with pytest.raises(ValueError, match=rf"kept_survivors .*\({count}\).*shape \({count + 1},\)"):
        passes.mask(screened, np.ones(count + 1, dtype=bool))


@pytest.mark.parametrize("scores, groups, n_groups, error, match", [
    ("not a tensor", None, 0, TypeError, "scores must be a 2-D torch.Tensor or a sequence.*str"),
    (torch.zeros(5), None, 0, ValueError, r"2-D tensor .*shape \(5,\)"),
    (torch.zeros((0, 5)), None, 0, ValueError, "at least one score row"),
    ([torch.zeros(5), np.zeros(5)], None, 0, TypeError, r"scores\[1\] must be a torch.Tensor, got ndarray"),
    ([torch.zeros(5), torch.zeros((5, 1))], None, 0, ValueError, r"scores\[1\] must be 1-D"),
    ([torch.zeros(5), torch.zeros(4)], None, 0, ValueError, r"equal lengths.*scores\[1\] has 4"),
    (torch.zeros((2, 5), dtype=torch.int64), None, 0, TypeError, "floating dtype, got torch.int64"),
    (torch.zeros((2, 5)), torch.zeros(5), 2, TypeError, "groups must have an integer dtype, got torch.float32"),
    (torch.zeros((2, 5)), np.zeros(5, dtype=np.int64), 2, TypeError, "groups must be a torch.Tensor or None"),
    (torch.zeros((2, 5)), torch.zeros(4, dtype=torch.int64), 2, ValueError, r"one entry per element \(5\)"),
    (torch.zeros((2, 5)), torch.tensor([0, 1, 2, 0, 1]), 2, ValueError, r"\[0, 2\), got ids from 0 to 2"),
    (torch.zeros((2, 5)), torch.tensor([0, -1, 1, 0, 1]), 2, ValueError, r"got ids from -1 to 1"),
    (torch.zeros((2, 5)), torch.zeros(5, dtype=torch.int64), 0, ValueError, "n_groups must be >= 1 with groups"),
    (torch.zeros((2, 5)), None, 3, ValueError, "n_groups must be 0 without groups, got 3"),
    (torch.zeros((2, 5)), None, 1.0, TypeError, "n_groups must be an int, got float"),
])
def test_bad_input(scores, groups, n_groups, error, match):
    with pytest.raises(error, match=match):
        TensorPasses(scores, groups, n_groups)


@pytest.mark.parametrize("chunk", [0, BLOCK + 1, 2.0 * BLOCK])
def test_bad_chunk(chunk):
    with pytest.raises(ValueError, match=f"chunk must be a positive multiple of {BLOCK}"):
        TensorPasses(torch.zeros((1, 5)), chunk=chunk)
