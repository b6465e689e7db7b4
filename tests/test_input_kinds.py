"""Inputs numpy would half-understand: masked arrays, torch tensors, group ids far above D."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import copslp

ROOT = Path(__file__).resolve().parent.parent


def scores(n=2, size=20, seed=0):
    return np.random.default_rng(seed).random((n, size))


# ---------------------------------------------------------------------------- group ids


def test_a_group_id_far_above_d_is_refused_at_once_with_its_position():
    groups = np.zeros(20, dtype=np.int64)
    groups[7] = 10**8
    # before the fix this allocated a 1e8-long count array (and 23 s, 9.5 GB at D = 20 with
    # one float array per group); now it is refused from the ids alone, in O(D)
    with pytest.raises(ValueError, match=r"groups\[7\] = 100000000") as info:
        copslp.solve(scores(), 5, groups=groups, floors=1)
    assert "renumber" in str(info.value) and "np.unique" in str(info.value)


def test_a_group_id_far_above_d_is_refused_with_floors_per_group_too():
    groups = np.zeros(20, dtype=np.int64)
    groups[3] = 10**8
    with pytest.raises(ValueError, match=r"groups\[3\] = 100000000.*floors has 2 entries"):
        copslp.solve(scores(), 5, groups=groups, floors=[1, 0])


def test_sparse_group_ids_covered_by_floors_are_accepted():
    # ids 0 and 30 with D = 20: floors names every group 0..30, the empty ones with floor 0
    groups = np.where(np.arange(20) < 10, 0, 30)
    floors = np.zeros(31, dtype=np.int64)
    floors[[0, 30]] = 2
    result = copslp.solve(scores(), 5, groups=groups, floors=floors)
    assert result.mask[:10].sum() >= 2 and result.mask[10:].sum() >= 2


def test_a_group_id_far_above_d_costs_memory_of_d_not_of_the_id():
    """In a fresh process, the refusal allocates nothing near 8e9 bytes (ru_maxrss)."""
    script = textwrap.dedent("""
        import resource, numpy as np, copslp
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        groups = np.zeros(20, dtype=np.int64); groups[7] = 10**9
        try:
            copslp.solve(np.random.default_rng(0).random((2, 20)), 5, groups=groups, floors=1)
        except ValueError:
            pass
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 100_000  # kilobytes: well under 100 MB (the id alone would need 8 GB)


# ---------------------------------------------------------------------------- masked arrays


def test_a_masked_score_array_is_refused_with_what_to_pass():
    masked = np.ma.masked_array(scores(), mask=np.zeros((2, 20), dtype=bool))
    masked[0, 3] = np.ma.masked
    with pytest.raises(TypeError, match=r"scores is a numpy masked array.*\.filled\("):
        copslp.solve(masked, 5)


def test_a_masked_row_in_a_list_is_refused():
    rows = [scores()[0], np.ma.masked_less(scores()[1], 0.5)]
    with pytest.raises(TypeError, match=r"scores\[1\] is a numpy masked array"):
        copslp.solve(rows, 5)


@pytest.mark.parametrize("name", ["gamma", "bounds", "groups", "floors"])
def test_masked_arrays_are_refused_for_every_array_argument(name):
    arguments = {"gamma": np.ma.masked_array([0.9]), "bounds": np.ma.masked_array([1.0]),
                 "groups": np.ma.masked_array(np.zeros(20, dtype=np.int64)),
                 "floors": np.ma.masked_array([1])}
    kwargs = {name: arguments[name]}
    if name == "groups":
        kwargs["floors"] = 1
    if name == "floors":
        kwargs["groups"] = np.zeros(20, dtype=np.int64)
    with pytest.raises(TypeError, match=rf"{name} is a numpy masked array"):
        copslp.solve(scores(), 5, **kwargs)


# ---------------------------------------------------------------------------- torch tensors


@pytest.mark.parametrize("kind", ["float32", "bfloat16", "requires_grad", "meta"])
def test_torch_tensors_are_refused_with_what_to_pass(kind):
    torch = pytest.importorskip("torch")
    values = torch.rand(2, 20)
    tensor = {"float32": values, "bfloat16": values.to(torch.bfloat16),
              "requires_grad": values.clone().requires_grad_(True),
              "meta": torch.empty(2, 20, device="meta")}[kind]
    message = r"scores is a torch\.Tensor.*\.detach\(\)\.cpu\(\)\.double\(\)\.numpy\(\)"
    with pytest.raises(TypeError, match=message):
        copslp.solve(tensor, 5)
    with pytest.raises(TypeError, match=r"scores\[1\] is a torch\.Tensor"):
        copslp.solve([scores()[0], tensor[1]], 5)


def test_a_torch_tensor_as_groups_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"groups is a torch\.Tensor"):
        copslp.solve(scores(), 5, groups=torch.zeros(20, dtype=torch.int64), floors=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_rows_of_one_matrix_are_read_in_place(dtype):
    """``list(matrix)`` and ``[matrix[0], matrix[1]]`` are the matrix itself: no stacking copy."""
    from copslp._problem import make_problem

    matrix = np.random.default_rng(0).random((3, 100)).astype(dtype)
    for rows in (list(matrix), [matrix[0], matrix[1], matrix[2]], list(matrix[1:])):
        problem = make_problem(rows, 5)
        assert np.shares_memory(problem.scores, matrix)
        np.testing.assert_array_equal(problem.scores, np.stack(rows))
    assert matrix.flags.writeable


@pytest.mark.parametrize("rows", ["swapped", "gap", "adjacent_copies", "mixed_dtypes", "strided"])
def test_rows_that_are_not_one_matrix_are_stacked(rows):
    from copslp._problem import make_problem

    matrix = np.random.default_rng(0).random((3, 100))
    block = np.random.default_rng(1).random(300)
    given = {"swapped": [matrix[1], matrix[0]], "gap": [matrix[0], matrix[2]],
             "adjacent_copies": [block[:100].copy(), block[100:200].copy()],
             "mixed_dtypes": [matrix[0], matrix[1].astype(np.float32)],
             "strided": list(matrix[:, ::2])}[rows]
    problem = make_problem(given, 5)
    assert not any(np.shares_memory(problem.scores, row) for row in given)
    np.testing.assert_array_equal(problem.scores, np.stack(given).astype(problem.scores.dtype))
