r"""Scores and masks of a model trained in several processes (``DistributedDataParallel``).

Every process of a DDP run holds the same weights and its own batch. Pruning must give every
process the same mask, and must leave DDP's reducer as it found it.

Scores
    A score of a :class:`~torch.nn.parallel.DistributedDataParallel` model is computed on
    the module it wraps (``ddp.module``): DDP's own forward pass prepares its reducer for a
    ``backward()`` that gradients taken with :func:`torch.autograd.grad` never run, and the
    next forward pass would then fail ("Expected to have finished reduction in the prior
    iteration before starting a new one"). The gradients of each process's batches are
    averaged over the processes of the wrapper's group (``ddp.process_group``; or of the
    ``process_group=`` given to a score of an unwrapped model), as DDP averages the gradients
    of a training step:

    .. math::

        g = \frac{1}{P} \sum_{p=1}^{P} \sum_{b \in B_p} \nabla_\theta L_b ,

    one ``all_reduce`` of the flat gradient (GraSP: one for g, one for Hg). All processes
    then hold the same scores, to the bit (the reduced sum is the same tensor on every
    process), and select the same mask. The score's layout is the wrapper's (names start
    with ``module.``), so ``prune_with_cops(ddp, scores, ...)`` prunes the wrapped model.
    Data-free scores (SynFlow) need no exchange: the weights are the same everywhere.
Masks
    :func:`torch_adapter.apply_mask` on a DDP model first checks that every process applies
    the same mask (one ``all_gather`` of a 32-byte digest) and raises a ValueError naming
    the processes that differ, before touching the model. The parametrization keeps each
    Parameter object (the optimiser's), but moves it with ``Tensor.set_``, after which the
    gradient hooks DDP's reducer placed on it no longer fire (the next forward pass fails
    with "Expected to have finished reduction ..."); so the reducer is built again
    afterwards, as DDP itself builds it when a wrapper is unpickled
    (:func:`rebuild_reducer`; :func:`torch_adapter.make_permanent` does the same). A
    communication hook registered on the wrapper (``register_comm_hook``) must be
    registered again after pruning. The masks are buffers registered after DDP was built,
    which DDP does not broadcast (they are equal already). Every call is collective: every
    process of the group must make it. Applying the mask before wrapping the model in DDP
    needs none of this.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import nn

from .layout import Layout

__all__ = ["is_ddp", "inner_layout", "process_group_of", "average_over_processes", "check_same_on_every_process",
           "rebuild_reducer"]


def is_ddp(model: nn.Module) -> bool:
    """Whether ``model`` is a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper."""
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(model, DistributedDataParallel)


def _unprefixed(name: str) -> str:
    if name == "module":
        return ""
    if not name.startswith("module."):
        raise ValueError(f"{name!r} is not inside the wrapped module (its name does not start with 'module.')")
    return name[len("module."):]


def inner_layout(layout: Layout) -> Layout:
    """The layout of a DDP wrapper's entries as names of the wrapped module (``module.`` cut)."""
    entries = []
    for entry in layout.entries:
        aliases = tuple(_unprefixed(alias) for alias in entry.aliases)
        entries.append(replace(entry, module_name=_unprefixed(entry.module_name), aliases=aliases))
    return Layout(entries)


def process_group_of(model: nn.Module, process_group: Any = None) -> Any:
    """The group to average over: ``process_group`` if given, else a DDP wrapper's group."""
    if process_group is None and is_ddp(model):
        return model.process_group
    return process_group


def average_over_processes(tensors: Sequence[torch.Tensor], process_group: Any) -> None:
    """Replace each tensor by its mean over the processes of ``process_group``, in place.

    One ``all_reduce`` (sum) of the tensors concatenated, then a division by the group's
    size; the result is the same on every process. Collective.
    """
    import torch.distributed as dist

    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=process_group)
    flat /= dist.get_world_size(process_group)
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def check_same_on_every_process(mask: torch.Tensor, process_group: Any, what: str = "mask") -> None:
    """Raise a ValueError on every process unless ``mask`` is the same on all of them. Collective.

    Compares a SHA-256 digest of the mask's bytes (gathered from every process).
    """
    import torch.distributed as dist

    digest = hashlib.sha256(mask.detach().to("cpu", torch.bool).contiguous().numpy().tobytes()).digest()
    mine = torch.frombuffer(bytearray(digest), dtype=torch.int64).clone()
    world = dist.get_world_size(process_group)
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine, group=process_group)
    differ = [rank for rank in range(1, world) if not torch.equal(gathered[rank], gathered[0])]
    if differ:
        raise ValueError(f"the {what} differs between the processes: ranks {differ} of the group hold another {what} "
                         f"than rank 0; score with gradients averaged over the group (a DDP model, or "
                         f"process_group=), or broadcast rank 0's {what}")


def rebuild_reducer(ddp: nn.Module) -> None:
    """Build the reducer of a DDP wrapper again, on its parameters as they are now.

    What ``DistributedDataParallel.__setstate__`` does after unpickling (its parameter list,
    then its reducer, static graph included); needed after a parametrization has been added
    to or removed from the wrapped module. Every process of the group must call it.
    """
    needed = ("_build_params_for_reducer", "_build_debug_param_to_name_mapping", "_ddp_init_helper")
    missing = [name for name in needed if not hasattr(ddp, name)]
    if missing:
        raise RuntimeError(f"this torch's DistributedDataParallel lacks {missing}, with which a pruned wrapper's "
                           f"reducer is rebuilt; apply the mask before wrapping the model in DDP")
    parameters, expect_sparse_gradient = ddp._build_params_for_reducer()
    names = ddp._build_debug_param_to_name_mapping(parameters)
    ddp._ddp_init_helper(parameters, expect_sparse_gradient, names, ddp.static_graph)
    if ddp.static_graph:
        ddp.reducer._set_static_graph()
        ddp.logger._set_static_graph()
