"""The public door to COPS on tensors, :func:`torch_adapter.solve_tensors`, in one process:
the numpy road's answer on the same arrays (with 0, 1 and 3 secondary scores, floors,
an infeasible pair of bounds), copslp.solve's optimum, and its input checks. Sharded runs
over gloo processes are in test_torch_streamed.py."""

from __future__ import annotations


import numpy as np
import pytest

torch = pytest.importorskip("torch")

import copslp  # noqa: E402
from copslp._analytic.passes import ArrayPasses, OneProcess  # noqa: E402
from copslp._analytic.driver import solve_streamed  # noqa: E402
from torch_adapter import solve_tensors  # noqa: E402

SIZE = 24_000
OPTIONS = {"sample_size": 2048}
#: (label, secondary scores, gamma, floors per group or None, seed); groups are 12 layers,
#: spread over the processes' shards.
CASES = [
    ("r1", 1, 0.8, None, 1),
    ("r3", 3, 0.6, None, 2),
    ("r1-floors", 1, 0.8, [300] * 4 + [0] * 4 + [50] * 4, 3),
    ("r3-floors", 3, 0.6, 200, 4),
    ("r0-floors", 0, None, 150, 5),
    ("r2-infeasible", 2, 0.97, None, 6),
]


def case_data(n_secondary, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    primary = rng.standard_normal(SIZE)
    base = rng.pareto(3.0, SIZE)
    secondary = [np.abs(base * rng.lognormal(0.0, 0.5, SIZE) + (-0.8 * primary if i == 0 else 0.0))
                 for i in range(n_secondary)]
    if n_secondary == 2:  # two bounds that conflict at gamma 0.97: s_2 the mirror of s_1
        secondary[1] = secondary[0].max() - secondary[0]
    scores = np.stack([primary, *secondary]).astype(dtype)
    groups = np.repeat(np.arange(12), SIZE // 12)
    return scores, groups


def _budget():
    return SIZE // 8


def _solve_one_case(case, rows, groups):
    label, n_secondary, gamma, floors, seed = case
    return solve_tensors(rows, _budget(), gamma=gamma, groups=None if floors is None else groups,
                         floors=floors, options=OPTIONS)


@pytest.mark.parametrize("form", ["rows", "2-D"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_tensors_equal_arrays(case, dtype, form):
    """The numpy passes' answer on the same arrays: the same mask, the same objective to
    1e-12, whether the rows are read by TensorPasses (a sequence of rows) or through a numpy
    view (a 2-D CPU tensor)."""
    label, n_secondary, gamma, floors, seed = case
    scores, groups = case_data(n_secondary, seed, dtype)
    tensor = torch.from_numpy(scores)
    given = list(tensor.unbind(0)) if form == "rows" else tensor
    group_arg = None if floors is None else groups
    try:
        expected = solve_streamed(ArrayPasses(scores, group_arg, 0 if floors is None else 12), OneProcess(),
                                  _budget(), gamma=gamma, floors=floors, options=OPTIONS)
    except copslp.InfeasibleError:
        with pytest.raises(copslp.InfeasibleError):
            _solve_one_case(case, given, torch.from_numpy(groups))
        return
    result = _solve_one_case(case, given, torch.from_numpy(groups))
    assert isinstance(result.mask, torch.Tensor) and result.mask.dtype == torch.bool
    assert np.array_equal(result.mask.numpy(), expected.mask)
    assert result.objective == pytest.approx(expected.objective, rel=1e-12)
    np.testing.assert_allclose(result.multipliers, expected.multipliers, rtol=1e-9)
    assert result.certificate.passed


def test_tensors_agree_with_solve():
    """The tensor path's optimum is copslp.solve's (float64, one bound and floors)."""
    scores, groups = case_data(1, 7)
    result = solve_tensors(torch.from_numpy(scores), _budget(), gamma=0.8, groups=torch.from_numpy(groups),
                           floors=100, options=OPTIONS)
    expected = copslp.solve(scores, _budget(), gamma=0.8, groups=groups, floors=100)
    assert result.objective == pytest.approx(expected.objective, rel=1e-12)
    assert np.array_equal(result.mask.numpy(), expected.mask)


def test_bad_input_names_the_argument():
    scores, groups = case_data(1, 8)
    t = torch.from_numpy(scores)
    with pytest.raises(TypeError, match="scores"):
        solve_tensors(scores, 10)
    with pytest.raises(TypeError, match=r"scores\[1\]"):
        solve_tensors([t[0], torch.ones(SIZE, dtype=torch.int64)], 10)
    with pytest.raises(ValueError, match="same length"):
        solve_tensors([t[0], t[1][:-1]], 10)
    with pytest.raises(ValueError, match="groups and floors"):
        solve_tensors(t, 10, groups=torch.from_numpy(groups))
    bad = t.clone()
    bad[1, 5] = float("nan")
    with pytest.raises(ValueError, match=r"scores\[1\] has 1 non-finite"):
        solve_tensors(bad, 10)
    with pytest.raises(ValueError, match="sample_size"):
        solve_tensors(t, 10, options={"sample_sise": 10})
    with pytest.raises(RuntimeError, match="init_process_group"):  # no process group was set up here
        solve_tensors(t, 10, process_group=object())


def ranks_that_disagree(rank: int, world_size: int):
    """Each argument given differently on rank 1: every rank raises at once (not at the
    group's timeout), naming the argument and its own value; equal arguments in other
    spellings (an int and a numpy int) are accepted."""
    import time

    import torch.distributed as dist

    rng = np.random.default_rng(rank)
    scores = torch.from_numpy(np.abs(rng.standard_normal((3, 500))))
    groups = torch.from_numpy(np.repeat(np.arange(4), 125))
    common = {"budget": 200, "gamma": 0.7, "bounds": None, "groups": None, "floors": None, "options": None}
    other = rank == 1
    cases = [
        ("budget", {"budget": 201 if other else 200}, r"budget.*= 20[01]"),
        ("gamma", {"gamma": 0.8 if other else 0.7}, r"gamma.*= 0\.[78]"),
        ("bounds", {"gamma": None, "bounds": [1.0, 2.0 if other else 1.5]}, r"bounds.*\[1\.0, (2\.0|1\.5)\]"),
        ("floors", {"groups": groups, "floors": 6 if other else 5}, r"floors.*= [56]"),
        ("groups", {"groups": groups if other else None, "floors": 5}, "groups"),
        ("rows", {"scores": scores[:2] if other else scores}, r"score rows.*= [23]"),
        ("dtype", {"scores": scores.float() if other else scores}, r"dtype.*torch\.float(32|64)"),
        ("options", {"options": {"seed": 1 if other else 0}}, r"options.*seed"),
    ]
    for name, change, message in cases:
        arguments = {"scores": scores, **common, **change}
        start = time.perf_counter()
        with pytest.raises(ValueError, match=message) as caught:
            solve_tensors(arguments.pop("scores"), arguments.pop("budget"), **arguments, process_group=dist.group.WORLD)
        assert "differ" in str(caught.value), (name, str(caught.value))
        assert time.perf_counter() - start < 10, name  # not the 60 s of the group's timeout
    result = solve_tensors(scores, np.int64(200) if other else 200, gamma=0.7, process_group=dist.group.WORLD)
    assert result.certificate.passed


def test_ranks_that_disagree_on_an_argument_all_raise_at_once():
    from gloo_processes import run_in_processes

    run_in_processes(ranks_that_disagree, 2)
