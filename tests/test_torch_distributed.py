"""Scoring and pruning a DistributedDataParallel model in 2 gloo processes on 127.0.0.1.

Each process scores its own batches; the scores are the same on both, to the bit (the
gradients are averaged over the processes), and equal to what one process computes on all
the batches (times the averaging factors); prune_with_cops on the DDP model applies one mask
everywhere and leaves DDP's reducer working: training keeps the masks, and the weights stay
equal on both processes. The checks run inside the processes.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from gloo_processes import run_in_processes  # noqa: E402
from torch_adapter import apply_mask, current_mask, make_permanent, prune_with_cops, scores  # noqa: E402
from torch_models import batches, small_resnet  # noqa: E402

CE = nn.CrossEntropyLoss()
SHAPE, CLASSES = (3, 8, 8), 4


def rank_batches(rank: int):
    return batches(SHAPE, CLASSES, n_batches=1, batch_size=4, seed=10 + rank)


def gathered(tensor: torch.Tensor, world_size: int) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return parts


def same_everywhere(tensor: torch.Tensor, world_size: int) -> bool:
    return all(torch.equal(part, tensor) for part in gathered(tensor, world_size))


def check_ddp_scoring_and_pruning(rank: int, world_size: int):
    ddp = DistributedDataParallel(small_resnet())
    mine = rank_batches(rank)
    every = [batch for r in range(world_size) for batch in rank_batches(r)]

    s_snip = scores.snip(ddp, CE, mine)
    s_grasp = scores.grasp(ddp, CE, mine)
    s_flow = scores.synflow(ddp, SHAPE)
    assert s_snip.layout.names[0] == "module.stem.weight"  # the wrapper's layout: it prunes the wrapper
    for score in (s_snip, s_grasp, s_flow):
        assert same_everywhere(score.values, world_size), score.name
    # the averages over the processes: SNIP's gradient once, GraSP's g and Hg each once
    alone = small_resnet()
    torch.testing.assert_close(s_snip.values, scores.snip(alone, CE, every).values / world_size,
                               rtol=1e-5, atol=0)
    torch.testing.assert_close(s_grasp.values, scores.grasp(alone, CE, every).values / world_size ** 2,
                               rtol=1e-4, atol=1e-12)
    # an unwrapped model with process_group= gives the wrapper's scores
    assert torch.equal(scores.snip(alone, CE, mine, process_group=dist.group.WORLD).values, s_snip.values)

    report = prune_with_cops(ddp, [s_snip, s_flow], 0.2, gamma=0.9)
    mask = report.mask
    assert same_everywhere(mask, world_size)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):  # the reducer works: each step averages the gradients
        x, y = batches(SHAPE, CLASSES, n_batches=1, batch_size=4, seed=100 * step + rank)[0]
        optimizer.zero_grad()
        CE(ddp(x), y).backward()
        optimizer.step()
    assert torch.equal(current_mask(ddp, s_snip.layout), mask)
    for value, part in zip(s_snip.layout.values(ddp), s_snip.layout.split(mask)):
        assert bool((value[~part] == 0).all())
    for parameter in ddp.parameters():
        assert same_everywhere(parameter.detach(), world_size)
    make_permanent(ddp, s_snip.layout)  # the reducer is rebuilt on the plain parameters
    x, y = rank_batches(rank)[0]
    CE(ddp(x), y).backward()
    assert same_everywhere(ddp.module.stem.weight.grad, world_size)

    # a mask that differs between the processes is refused on every process, model untouched
    other = DistributedDataParallel(small_resnet())
    different = torch.zeros(len(s_snip.layout), dtype=torch.bool)
    different[rank::2] = True
    with pytest.raises(ValueError, match=r"differs between the processes: ranks \[1\]"):
        apply_mask(other, different, s_snip.layout)
    assert not hasattr(other.module.stem, "parametrizations")


def check_freeze_mode_under_ddp(rank: int, world_size: int):
    ddp = DistributedDataParallel(small_resnet())
    s_snip = scores.snip(ddp, CE, rank_batches(rank))
    initial = [v.detach().clone() for v in s_snip.layout.values(ddp)]
    report = prune_with_cops(ddp, s_snip, 0.3, mode="freeze")
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    for step in range(2):
        x, y = rank_batches(rank + step)[0]
        optimizer.zero_grad()
        CE(ddp(x), y).backward()
        optimizer.step()
    for value, part, before in zip(s_snip.layout.values(ddp), s_snip.layout.split(report.mask), initial):
        assert torch.equal(value.detach()[~part], before[~part])
        assert not torch.equal(value.detach()[part], before[part])
        assert same_everywhere(value.detach(), world_size)


def check_both(rank: int, world_size: int):
    check_ddp_scoring_and_pruning(rank, world_size)
    check_freeze_mode_under_ddp(rank, world_size)


def test_ddp_scores_are_the_same_on_every_process_and_pruning_keeps_ddp_working():
    """Both checks in one group of processes: starting one costs seconds on a busy machine."""
    run_in_processes(check_both, 2)
