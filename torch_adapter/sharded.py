r"""COPS on torch tensors where they live: on their device, or sharded over processes.

:func:`solve_tensors` solves the COPS LP of :func:`copslp.solve` (the analytic method, the
same certificate) for scores that stay on their device in their own dtype, and, with a
``process_group``, for scores of which each process holds one shard (FSDP, tensor
parallelism): only the subsample, the survivors of the screening and O(ranks + groups)
numbers travel; every process gets its own part of the mask. The road is
:func:`copslp._analytic.driver.solve_streamed` through :class:`~torch_adapter.passes.TensorPasses`
and :class:`~torch_adapter.collectives.ProcessGroupCollectives` (a 2-D float32 or float64
tensor on the CPU is read through a numpy view of it instead, :class:`copslp._analytic.passes.ArrayPasses`:
the same passes, about twice as fast there).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from copslp import ArrayPasses, OneProcess, Result, solve_streamed

from .collectives import ProcessGroupCollectives
from .passes import TensorPasses, check_scores

__all__ = ["solve_tensors"]


def solve_tensors(scores: torch.Tensor | Sequence[torch.Tensor], budget, *, gamma=None, bounds=None,
                  groups: torch.Tensor | None = None, floors=None, options: Mapping[str, Any] | None = None,
                  process_group=None) -> Result:
    r"""The COPS mask for scores held as tensors, on their device, optionally sharded.

    .. math::

        \max_x \langle s_0, x\rangle \ \text{s.t.}\ \textstyle\sum_j x_j = k,\
        \langle s_i, x\rangle \ge b_i,\ \textstyle\sum_{j \in G_l} x_j \ge f_l,\ 0 \le x \le 1,

    with :math:`b_i = \gamma_i T_k(s_i)` (or ``bounds``), solved exactly and certified as by
    :func:`copslp.solve` with the analytic method, then rounded to an exact-k mask.

    Parameters
    ----------
    scores : Tensor of shape (n, D_p) or sequence of n 1-D tensors of length D_p
        This process's shard of every score (row 0 primary), all on one device, any real
        floating dtype. Without ``process_group``, D_p = D. The shards lie in rank order:
        rank 0 holds elements 0..D_0 - 1, rank 1 the next D_1, and so on (any sizes, 0 too).
    budget : int or float
        k over all D elements (a float in (0, 1] is a fraction of D).
    gamma, bounds : see :func:`copslp.solve`.
    groups : 1-D integer tensor of length D_p, or None
        Group id of each element of this shard (global ids; a group may span processes).
    floors : int or sequence of int, or None
        One floor per group id (or one for all), the same on every process.
    options : mapping, optional
        Options of the analytic method (``rtol``, ``sample_size``, ``seed``, ``max_rounds``).
    process_group : torch.distributed process group, optional
        Shard over this group (``torch.distributed.group.WORLD`` for all processes); every
        process of it must call with its own shard and the same other arguments (the first
        exchange compares a fingerprint of them: where they differ, every process raises a
        ValueError at once naming the argument and its own value). None: the scores are all
        here.

    Returns
    -------
    copslp.Result
        The record :func:`copslp.solve` returns, by the same road: ``mask`` is this process's
        part, a bool tensor on the scores' device; ``size`` is D over all processes; the
        summary (objective, multipliers, bound values, certificate) is that of the whole
        problem, the same on every process. The LP point is not gathered: ``x`` raises
        AttributeError.

    Raises
    ------
    TypeError, ValueError
        Bad input, naming the argument and the value (on every process, when one process's
        input is refused or the processes' arguments differ).
    copslp.InfeasibleError
        No point meets the bounds (on every process).
    """
    collectives = OneProcess() if process_group is None else ProcessGroupCollectives(process_group)
    arguments = _arguments_shown(scores, budget, gamma, bounds, groups, floors, options)
    try:
        rows = check_scores(scores.unsqueeze(0) if isinstance(scores, torch.Tensor) and scores.dim() == 1 else scores)
        _check_groups(groups, floors, rows)
        refused = None
    except (TypeError, ValueError) as error:
        refused = error
    # one exchange before any other: the arguments' fingerprints (largest and least of each)
    # and whether a process refused its input, so that no process goes on alone
    prints = np.array([_fingerprint(shown) for shown in arguments.values()])
    agreed = collectives.maximum(np.concatenate([[0.0 if refused is None else 1.0], prints, -prints]))
    differ = [name for name, high, low in zip(arguments, agreed[1:1 + prints.size], agreed[1 + prints.size:])
              if high != -low]
    if differ:
        raise ValueError("every process must pass the same arguments except its shard of scores and groups, but "
                         + "; ".join(f"{name} differ between the processes (this one, rank {collectives.rank}, "
                                     f"has {name} = {arguments[name]})" for name in differ))
    if agreed[0]:
        if refused is not None:
            raise refused
        raise ValueError("another process of the group refused its input (its error says why); none goes on")
    n_groups = 0
    if groups is not None:
        highest = float(groups.max()) if groups.numel() else -1.0
        n_groups = int(collectives.maximum(np.array([highest]))[0]) + 1
        given = np.asarray(floors)
        if given.ndim == 1:
            if given.shape[0] < n_groups:
                raise ValueError(f"floors needs one entry per group ({n_groups}), got {given.shape[0]}")
            n_groups = given.shape[0]
    array = _cpu_array_view(scores, rows)
    if array is None:
        passes = TensorPasses(rows, groups, n_groups)
    else:  # numpy's passes read the same memory about twice as fast as torch's at cache-sized chunks
        passes = ArrayPasses(array, None if groups is None else groups.numpy(), n_groups)
    result = solve_streamed(passes, collectives, budget, gamma=gamma, bounds=bounds, floors=floors, options=options)
    if array is not None:
        result = replace(result, mask=torch.from_numpy(result.mask))
    return result


def _arguments_shown(scores, budget, gamma, bounds, groups, floors, options) -> dict[str, str]:
    """The arguments every process must give alike, each as a text that equal values share
    (an int and a numpy int, a list and an array of the same numbers), for their fingerprints
    and the error that names them. Never raises: a process that did would leave the others
    waiting in the exchange (arguments that are wrong are refused after it, on every process)."""
    rows = scores.shape[0] if isinstance(scores, torch.Tensor) and scores.dim() == 2 else (
        len(scores) if isinstance(scores, (list, tuple)) else 1)
    first = scores if isinstance(scores, torch.Tensor) else (scores[0] if isinstance(scores, (list, tuple)) and scores
                                                              else None)
    dtype = first.dtype if isinstance(first, torch.Tensor) else type(first).__name__
    return {
        "budget": _shown(budget), "gamma": _shown(gamma), "bounds": _shown(bounds), "floors": _shown(floors),
        "groups": "None" if groups is None else "given", "the number of score rows": str(rows),
        "the scores' dtype": str(dtype),
        "options": _shown(dict(sorted(options.items(), key=lambda item: repr(item[0])))
                          if isinstance(options, Mapping) else options),
    }


def _shown(value) -> str:
    """``value`` as text: numbers (and tensors, arrays and sequences of them) by their
    values, anything else by its repr (by its type where even that fails)."""
    try:
        return _text_of(value)
    except Exception:  # noqa: BLE001  (the exchange must happen; validation says what is wrong)
        return f"<a {type(value).__name__}>"


def _text_of(value) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()  # any dtype (numpy has no bfloat16)
    if isinstance(value, (list, tuple, np.ndarray, np.generic)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            return repr(value)
        if array.dtype.kind in "iu":
            return repr(array.astype(np.int64).tolist())
        if array.dtype.kind == "f":
            return repr(array.astype(np.float64).tolist())
    return repr(value)


def _fingerprint(text: str) -> float:
    """48 bits of a hash of ``text``, as a float64 (which holds them exactly)."""
    return float(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "little"))


def _cpu_array_view(scores, rows: list[torch.Tensor]) -> np.ndarray | None:
    """A numpy view (no copy) of a 2-D float32 or float64 CPU tensor of scores, else None
    (other devices and dtypes, and sequences of separate rows, are read by TensorPasses)."""
    if not isinstance(scores, torch.Tensor) or rows[0].device.type != "cpu":
        return None
    if rows[0].dtype not in (torch.float32, torch.float64):
        return None
    return scores.detach().reshape(len(rows), -1).numpy()


def _check_groups(groups, floors, rows: list[torch.Tensor]) -> None:
    """Groups (one non-negative integer id per element, on the scores' device) given with floors."""
    if groups is not None:
        if not isinstance(groups, torch.Tensor):
            raise TypeError(f"groups must be a torch.Tensor of group ids, got {type(groups).__name__}")
        if groups.dtype.is_floating_point or groups.dtype.is_complex or groups.dtype == torch.bool:
            raise TypeError(f"groups must hold integer group ids, got dtype {groups.dtype}")
        if groups.shape != (rows[0].shape[0],):
            raise ValueError(f"groups must have shape ({rows[0].shape[0]},) like the scores, got {tuple(groups.shape)}")
        if groups.device != rows[0].device:
            raise ValueError(f"groups is on {groups.device}, the scores on {rows[0].device}: put them on one device")
        if groups.numel() and int(groups.min()) < 0:
            raise ValueError(f"groups must be non-negative group ids, got minimum {int(groups.min())}")
    if (groups is None) != (floors is None):
        raise ValueError("give groups and floors together (a group id per element, a floor per group), or neither")
