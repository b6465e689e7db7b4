"""ProcessGroupCollectives over gloo, with 2 and 4 processes started here on unequal shards
(one of them empty): every exchange gives what OneProcess gives on the concatenated data,
and the float64 sums hold the same bits on every process.

Every process builds the same global data from one seed and takes its shard of it; the
checks run inside the processes (a failed assertion fails the spawn and the test).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from copslp._analytic.passes import ArrayPasses, OneProcess  # noqa: E402
from gloo_processes import run_in_processes  # noqa: E402
from torch_adapter import ProcessGroupCollectives, TensorPasses  # noqa: E402

#: Shard sizes per world size: unequal, one rank empty.
SHARDS = {2: [0, 1500], 4: [700, 0, 1100, 37]}
N_SCORES = 3


def global_data(size: int):
    rng = np.random.default_rng(size)
    scores = rng.standard_normal((N_SCORES, size))
    scores[1:] = np.abs(scores[1:])
    groups = np.sort(rng.integers(0, 4, size))
    return scores, groups


def check_exchanges(rank: int, world_size: int):
    shards = SHARDS[world_size]
    scores, groups = global_data(sum(shards))
    start = sum(shards[:rank])
    mine = slice(start, start + shards[rank])
    collectives, one = ProcessGroupCollectives(), OneProcess()
    assert (collectives.rank, collectives.world_size, collectives.is_root) == (rank, world_size, rank == 0)

    np.testing.assert_array_equal(collectives.sizes(shards[rank]), shards)
    assert collectives.offset(shards[rank]) == start

    counts = np.array([shards[rank], np.count_nonzero(scores[0, mine] > 0)], dtype=np.int64)
    sent = collectives.bytes_sent
    total = collectives.sum(counts)
    assert collectives.bytes_sent - sent == counts.nbytes
    assert total.dtype == np.int64
    np.testing.assert_array_equal(total, one.sum(np.array([scores.shape[1], np.count_nonzero(scores[0] > 0)])))

    sums = scores[:, mine].sum(axis=1)
    total = collectives.sum(sums)
    in_rank_order = scores[:, :shards[0]].sum(axis=1)
    for other in range(1, world_size):
        other_start = sum(shards[:other])
        in_rank_order = in_rank_order + scores[:, other_start:other_start + shards[other]].sum(axis=1)
    assert total.dtype == np.float64
    np.testing.assert_array_equal(total, in_rank_order)  # the same bits on every rank
    np.testing.assert_allclose(total, one.sum(scores.sum(axis=1)), rtol=1e-12)

    largest = scores[:, mine].max(axis=1, initial=-np.inf)
    np.testing.assert_array_equal(collectives.maximum(largest), one.maximum(scores.max(axis=1)))

    positions = np.arange(mine.start, mine.stop, 7, dtype=np.int64)
    for columns, expected in [(scores[:, positions], scores[:, ::7][:, :0]), (positions, positions[:0])]:
        gathered = collectives.gather_columns(columns)
        if rank == 0:
            every = np.concatenate([np.arange(sum(shards[:p]), sum(shards[:p + 1]), 7) for p in range(world_size)])
            reference = one.gather_columns(scores[:, every] if columns.ndim == 2 else every)
            assert gathered.dtype == reference.dtype and gathered.shape == reference.shape
            np.testing.assert_array_equal(gathered, reference)
        else:
            assert gathered is None
    nothing = collectives.gather_columns(np.zeros((2, 0)))
    assert (nothing.shape == (2, 0)) if rank == 0 else nothing is None
    with pytest.raises(ValueError, match="same number of dimensions, rows and dtype on every process"):
        collectives.gather_columns(np.zeros((1 + rank % 2, 3)))

    decision = {"multipliers": np.array([0.5, 1.25]), "level": 3.0} if rank == 0 else None
    received = collectives.broadcast(decision)
    np.testing.assert_array_equal(received["multipliers"], [0.5, 1.25])
    assert received["level"] == 3.0
    parts = [np.arange(p + 1) for p in range(world_size)] if rank == 0 else None
    np.testing.assert_array_equal(collectives.scatter(parts), np.arange(rank + 1))
    with pytest.raises(ValueError, match=rf"one entry per process \({world_size}\), got {world_size - 1}"):
        collectives.scatter([None] * (world_size - 1) if rank == 0 else None)
    assert collectives.bytes_sent > 0

    check_sharded_screen(collectives, scores, groups, mine)


def check_sharded_screen(collectives, scores, groups, mine):
    """Shards screened where they are, counts summed and survivors gathered: the screen of the
    whole array in one process."""
    passes = TensorPasses(torch.from_numpy(scores[:, mine]), torch.from_numpy(groups[mine]), 4)
    whole = ArrayPasses(scores, groups, 4)
    rows, lo, hi = np.array([0, 1, 2]), np.array([0.25, 0.5]), np.array([1.0, 2.0])
    group_levels = np.array([0.0, -np.inf, -0.5, 0.0])
    local = passes.screen(rows, lo, hi, 1.5, 0.0, group_levels)
    expected = whole.screen(rows, lo, hi, 1.5, 0.0, group_levels)
    counts = collectives.sum(np.concatenate([[local.above_one, local.reaching, local.fixed_ones], local.support,
                                             local.fixed_per_group]).astype(np.int64))
    np.testing.assert_array_equal(counts, np.concatenate([[expected.above_one, expected.reaching,
                                                           expected.fixed_ones], expected.support,
                                                          expected.fixed_per_group]))
    np.testing.assert_allclose(collectives.sum(local.taken), expected.taken, rtol=1e-12)
    survivors = collectives.gather_columns(local.survivors)
    survivor_groups = collectives.gather_columns(local.survivor_groups)
    if collectives.is_root:
        np.testing.assert_array_equal(survivors, expected.survivors)
        np.testing.assert_array_equal(survivor_groups, expected.survivor_groups)
    kept = np.arange(expected.survivors.shape[1]) % 3 == 0
    widths = collectives.sizes(local.survivors.shape[1])
    parts = np.split(kept, np.cumsum(widths)[:-1]) if collectives.is_root else None
    mask = passes.mask(local, collectives.scatter(parts))
    np.testing.assert_array_equal(mask.numpy(), whole.mask(expected, kept)[mine])


@pytest.mark.parametrize("world_size", sorted(SHARDS))
def test_gloo_exchanges_equal_one_process(world_size):
    run_in_processes(check_exchanges, world_size)


def test_refused_without_a_process_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialised here")
    with pytest.raises(RuntimeError, match="init_process_group"):
        ProcessGroupCollectives()
