"""The analytic method through the passes interface on torch tensors, in one process and
sharded over gloo processes: the answers of the numpy path on the same data.

* one process: ``solve_streamed`` over :class:`TensorPasses` gives the mask of
  ``solve_streamed`` over :class:`ArrayPasses` (and of :func:`copslp.solve`), the same
  multipliers and objectives to 1e-12 relative, with 1 and 3 secondary scores, with and
  without floors, float32 and float64;
* 2 and 4 gloo processes started here with unequal shards (one empty): every process gets
  its part of the single-process mask and the same summary; infeasible bounds raise
  :class:`copslp.InfeasibleError` on every process.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import copslp  # noqa: E402
from copslp._analytic import driver as streamed  # noqa: E402
from copslp._analytic.passes import ArrayPasses, OneProcess  # noqa: E402
from gloo_processes import run_in_processes  # noqa: E402
from torch_adapter import TensorPasses, solve_tensors  # noqa: E402
from torch_models import single_torch_thread  # noqa: E402,F401

SIZE = 20_000
BUDGET = SIZE // 10
N_GROUPS = 6
FLOOR = 150
#: gamma per number of secondary scores: every bound binds (lambda_i > 0) and the problem is
#: feasible; the infeasible one asks more than the three bounds reach together.
GAMMA = {1: 0.9, 3: 0.6}
INFEASIBLE_GAMMA = 0.8
SHARDS = {2: [0, SIZE], 4: [6000, 0, 11000, SIZE - 17000]}
RTOL = 1e-12
#: A subsample small enough for D = 20,000 to be screened (its budget scales to 100 there).
OPTIONS = {"sample_size": 1024}


def problem(n_secondary: int, dtype=np.float64):
    """Secondary scores correlated with the primary (their bounds bind), sorted groups."""
    rng = np.random.default_rng(n_secondary)
    scores = rng.standard_normal((1 + n_secondary, SIZE))
    scores[1:] = np.abs(0.5 * scores[0] + rng.standard_normal((n_secondary, SIZE)))
    groups = np.sort(rng.integers(0, N_GROUPS, SIZE))
    return scores.astype(dtype), groups


def solve_both(scores, groups, n_secondary, floors):
    arguments = dict(gamma=GAMMA[n_secondary], floors=floors, options=OPTIONS)
    grouped = floors is not None
    expected = streamed.solve_streamed(ArrayPasses(scores, groups if grouped else None, N_GROUPS if grouped else 0),
                                       OneProcess(), BUDGET, **arguments)
    passes = TensorPasses(torch.from_numpy(scores), torch.from_numpy(groups) if grouped else None,
                          N_GROUPS if grouped else 0)
    return streamed.solve_streamed(passes, OneProcess(), BUDGET, **arguments), expected


def assert_same_summary(result, expected):
    np.testing.assert_allclose(result.multipliers, expected.multipliers, rtol=RTOL)
    assert np.all(expected.multipliers > 0)
    for name in ("objective", "mask_objective", "budget_dual"):
        np.testing.assert_allclose(getattr(result, name), getattr(expected, name), rtol=RTOL, err_msg=name)
    np.testing.assert_allclose(result.mask_bound_values, expected.mask_bound_values, rtol=RTOL)
    assert result.mask_meets_bounds == expected.mask_meets_bounds


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("floors", [None, FLOOR], ids=["no floors", "floors"])
@pytest.mark.parametrize("n_secondary", sorted(GAMMA))
def test_tensor_passes_give_the_numpy_answer(n_secondary, floors, dtype):
    scores, groups = problem(n_secondary, dtype)
    result, expected = solve_both(scores, groups, n_secondary, floors)
    assert isinstance(result.mask, torch.Tensor) and result.mask.dtype == torch.bool
    np.testing.assert_array_equal(result.mask.numpy(), expected.mask)
    assert int(result.mask.sum()) == BUDGET
    assert_same_summary(result, expected)
    assert result.certificate.passed
    in_memory = copslp.solve(scores, BUDGET, gamma=GAMMA[n_secondary], groups=None if floors is None else groups,
                             floors=floors)
    np.testing.assert_array_equal(result.mask.numpy(), in_memory.mask)


def solve_sharded(rank: int, world_size: int):
    shards = SHARDS[world_size]
    mine = slice(sum(shards[:rank]), sum(shards[:rank + 1]))
    world = dist.group.WORLD
    for n_secondary in sorted(GAMMA):
        scores, groups = problem(n_secondary)
        for floors in (None, FLOOR):
            grouped = floors is not None
            shard = torch.from_numpy(scores[:, mine])
            as_rows = list(shard.unbind(0))  # a sequence of rows is read by TensorPasses, a 2-D CPU tensor by numpy
            result = solve_tensors(as_rows if grouped else shard, BUDGET, gamma=GAMMA[n_secondary],
                                   groups=torch.from_numpy(groups[mine]) if grouped else None, floors=floors,
                                   process_group=world, options=OPTIONS)
            expected = streamed.solve_streamed(ArrayPasses(scores, groups if grouped else None,
                                                           N_GROUPS if grouped else 0), OneProcess(), BUDGET,
                                               gamma=GAMMA[n_secondary], floors=floors, options=OPTIONS)
            np.testing.assert_array_equal(result.mask.numpy(), expected.mask[mine])
            assert_same_summary(result, expected)
            summaries = [None] * world_size
            dist.all_gather_object(summaries, (result.objective, result.multipliers.tolist(), result.budget_dual))
            assert all(summary == summaries[0] for summary in summaries)  # the same bits everywhere
            assert result.info["bytes_sent"] > 0
    scores, _ = problem(3)
    with pytest.raises(copslp.InfeasibleError, match="cannot all be met"):
        solve_tensors(torch.from_numpy(scores[:, mine]), BUDGET, gamma=INFEASIBLE_GAMMA, process_group=world)
    with pytest.raises(copslp.InfeasibleError, match=r"the bound on scores\[1\] cannot be met"):
        solve_tensors(torch.from_numpy(scores[:2, mine]), BUDGET, bounds=[float(np.abs(scores[1]).sum())],
                      process_group=world)


@pytest.mark.parametrize("world_size", sorted(SHARDS))
def test_gloo_shards_give_the_single_process_answer(world_size):
    run_in_processes(solve_sharded, world_size)


def solve_sharded_nested(rank: int, world_size: int):
    """Survivors too many to gather (a limit of 300 here) are solved where they lie, a level
    down, over the same processes: the single-process answer of the same road."""
    streamed._GATHER_LIMIT = 300
    shards = SHARDS[world_size]
    mine = slice(sum(shards[:rank]), sum(shards[:rank + 1]))
    for n_secondary, floors in ((1, FLOOR), (3, None)):
        scores, groups = problem(n_secondary)
        grouped = floors is not None
        result = solve_tensors(list(torch.from_numpy(scores[:, mine]).unbind(0)), BUDGET, gamma=GAMMA[n_secondary],
                               groups=torch.from_numpy(groups[mine]) if grouped else None, floors=floors,
                               process_group=dist.group.WORLD, options=OPTIONS)
        expected = streamed.solve_streamed(ArrayPasses(scores, groups if grouped else None, N_GROUPS if grouped else 0),
                                           OneProcess(), BUDGET, gamma=GAMMA[n_secondary], floors=floors,
                                           options=OPTIONS)
        assert "nested" in result.info  # in one process, several bounds or floors are finished where they are
        assert ("nested" in expected.info) == (n_secondary == 1 and not grouped)
        np.testing.assert_array_equal(result.mask.numpy(), expected.mask[mine])
        assert_same_summary(result, expected)


@pytest.mark.parametrize("world_size", sorted(SHARDS))
def test_gloo_shards_nested_levels(world_size):
    run_in_processes(solve_sharded_nested, world_size)


def solve_sharded_filters(rank: int, world_size: int):
    """Per-filter floors (400 groups of 50, a floor of 1; shards cut inside groups): the group
    levels read in a pass (the largest over the processes) and the estimate's subsample of
    whole groups (gathered from every process) give the single-process answer."""
    shards = SHARDS[world_size]
    mine = slice(sum(shards[:rank]), sum(shards[:rank + 1]))
    scores, _ = problem(1)
    groups = np.arange(SIZE) // 50
    scores[1] *= (10.0 ** np.random.default_rng(7).uniform(-1, 1, 400))[groups]
    result = solve_tensors(torch.from_numpy(scores[:, mine]), BUDGET, gamma=0.75, groups=torch.from_numpy(groups[mine]),
                           floors=1, process_group=dist.group.WORLD, options=OPTIONS)
    expected = streamed.solve_streamed(ArrayPasses(scores, groups, 400), OneProcess(), BUDGET, gamma=0.75, floors=1,
                                       options=OPTIONS)
    assert expected.info["survivors"] < SIZE // 4, expected.info  # screened at the levels read in a pass
    np.testing.assert_array_equal(result.mask.numpy(), expected.mask[mine])
    assert_same_summary(result, expected)


@pytest.mark.parametrize("world_size", sorted(SHARDS))
def test_gloo_shards_with_per_filter_floors(world_size):
    run_in_processes(solve_sharded_filters, world_size)


def finish_fails_on_rank_0(rank: int, world_size: int):
    """The exact finish runs on rank 0 only; when it fails there, every process raises
    (rank 0 its own error, the others a SolverError naming it), none waits forever."""

    def failing_finish(*args, **kwargs):
        raise copslp.SolverError("the finish failed")

    streamed.solve_exact = failing_finish
    shards = SHARDS[world_size]
    mine = slice(sum(shards[:rank]), sum(shards[:rank + 1]))
    scores, _ = problem(1)
    with pytest.raises(copslp.SolverError, match="the finish failed"):
        solve_tensors(torch.from_numpy(scores[:, mine]), BUDGET, gamma=GAMMA[1], process_group=dist.group.WORLD,
                      options=OPTIONS)


@pytest.mark.parametrize("world_size", sorted(SHARDS))
def test_a_failure_on_rank_0_raises_everywhere(world_size):
    run_in_processes(finish_fails_on_rank_0, world_size)


def bad_input_on_the_last_rank(rank: int, world_size: int):
    """Input refused on one process is refused on every process (none waits in a collective)."""
    shards = SHARDS[world_size]
    mine = slice(sum(shards[:rank]), sum(shards[:rank + 1]))
    scores, groups = problem(1)
    groups = torch.from_numpy(groups[mine])
    bad = rank == world_size - 1  # its shard is not empty
    if bad:
        groups = groups - 100
    expected = "non-negative" if bad else "another process"
    with pytest.raises(ValueError, match=expected):
        solve_tensors(torch.from_numpy(scores[:, mine]), BUDGET, gamma=GAMMA[1], groups=groups, floors=FLOOR,
                      process_group=dist.group.WORLD)


@pytest.mark.parametrize("world_size", sorted(SHARDS))
def test_bad_input_on_one_process_is_refused_on_all(world_size):
    run_in_processes(bad_input_on_the_last_rank, world_size)


def process_group_of_the_wrong_type(rank: int, world_size: int):
    with pytest.raises(TypeError, match="ProcessGroup"):
        solve_tensors(torch.ones(2, 10, dtype=torch.float64), 2, gamma=0.5, process_group="world")


def test_process_group_of_the_wrong_type_is_a_type_error():
    run_in_processes(process_group_of_the_wrong_type, 2)
