r"""The exchanges of the analytic method over a ``torch.distributed`` process group.

:class:`ProcessGroupCollectives` is :class:`copslp._analytic.passes.Collectives` for processes that
each hold a shard of the scores: counts are summed by ``all_reduce``; float64 sums are
gathered and added in rank order on every process, so that every process holds the same
bits (an ``all_reduce`` may add in an order that differs from process to process); the
subsample and the survivors are gathered on rank 0 (``gather``, after their sizes); rank 0's
decisions reach the others by ``broadcast_object_list`` and ``scatter_object_list``.
Nothing exchanged is D-sized: per call, a few numbers per process, or the columns a process
contributes to the subsample or the survivors.

The backend decides where the exchanged tensors live: the current CUDA device with NCCL,
the CPU otherwise (gloo).
"""

from __future__ import annotations

import pickle

import numpy as np
import torch
import torch.distributed as dist

from copslp import Collectives

__all__ = ["ProcessGroupCollectives"]

#: numpy dtypes that travel as tensors, and their codes in the exchanged shapes.
_DTYPES = {np.dtype(np.float64): (0, torch.float64), np.dtype(np.int64): (1, torch.int64)}


class _RefusedParts:
    """What rank 0 scatters instead of ``parts`` that do not fit, so that every process raises."""

    def __init__(self, message: str):
        self.message = message


class ProcessGroupCollectives(Collectives):
    """:class:`copslp._analytic.passes.Collectives` over a ``torch.distributed`` process group.

    Parameters
    ----------
    group : ProcessGroup, optional
        The processes that hold the shards (default: the world group). Ranks are the ranks in
        this group; its rank 0 runs the exact finish.

    Attributes
    ----------
    rank, world_size : int
        This process's rank in ``group`` and the group's size.
    device : torch.device
        Where the exchanged tensors live: ``cuda:<current device>`` with NCCL, else the CPU.
    bytes_sent : int
        Payload bytes this process has put into collectives so far: the tensors it contributed
        (its own share of a gather included) and, on rank 0, the pickled objects it broadcast
        or scattered. Protocol overhead (sizes of pickles, padding of other ranks) is not
        counted; padding of this process's own columns is.

    Examples
    --------
    Every process of the group, after ``dist.init_process_group("gloo", ...)``:

    >>> collectives = ProcessGroupCollectives()                               # doctest: +SKIP
    >>> collectives.sum(np.array([collectives.rank + 1], dtype=np.int64))      # doctest: +SKIP
    array([3])
    >>> collectives.sizes(size=10 * collectives.rank)                          # doctest: +SKIP
    array([ 0, 10])

(with two processes).
    """

    def __init__(self, group: dist.ProcessGroup | None = None):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: call torch.distributed.init_process_group first")
        if group is not None and not isinstance(group, dist.ProcessGroup):
            raise TypeError(f"group must be a torch.distributed ProcessGroup (e.g. torch.distributed.group.WORLD or "
                            f"one made by new_group), got {type(group).__name__}: {group!r}")
        self.group = dist.group.WORLD if group is None else group
        self.rank = dist.get_rank(self.group)
        self.world_size = dist.get_world_size(self.group)
        if self.rank < 0:
            raise ValueError("group must contain this process (dist.get_rank(group) is -1)")
        self.root = dist.get_global_rank(self.group, 0)
        if dist.get_backend(self.group) == dist.Backend.NCCL:
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device("cpu")
        self.bytes_sent = 0

    def _tensor(self, values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        tensor = torch.as_tensor(np.ascontiguousarray(values), dtype=dtype, device=self.device)
        self.bytes_sent += tensor.numel() * tensor.element_size()
        return tensor

    def _all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor, group=self.group)
        return parts

    def sum(self, values):
        """The element-wise sum over processes: exact for int64 (``all_reduce``); for float64
        the per-process vectors are gathered and added in rank order, the same on every
        process."""
        values = np.asarray(values)
        if values.dtype == np.int64:
            total = self._tensor(values, torch.int64)
            dist.all_reduce(total, op=dist.ReduceOp.SUM, group=self.group)
            return total.cpu().numpy()
        if values.dtype != np.float64:
            raise TypeError(f"values must be float64 or int64, got {values.dtype}")
        parts = [part.cpu().numpy() for part in self._all_gather(self._tensor(values, torch.float64))]
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        return total

    def maximum(self, values):
        largest = self._tensor(np.asarray(values, dtype=np.float64), torch.float64)
        dist.all_reduce(largest, op=dist.ReduceOp.MAX, group=self.group)
        return largest.cpu().numpy()

    def gather_columns(self, columns):
        """Every process's (rows, m_p) float64 or int64 columns, concatenated in rank order on
        rank 0 (None elsewhere); 1-D arrays are one row and come back 1-D. The shapes travel
        first, so every process refuses rows or dtypes that differ between processes."""
        columns = np.asarray(columns)
        if columns.dtype not in _DTYPES:
            raise TypeError(f"columns must be float64 or int64, got {columns.dtype}")
        if columns.ndim not in (1, 2):
            raise ValueError(f"columns must be 1-D or 2-D, got shape {columns.shape}")
        code, dtype = _DTYPES[columns.dtype]
        table = columns.reshape(1, -1) if columns.ndim == 1 else columns
        shape = self._tensor(np.array([columns.ndim, table.shape[0], table.shape[1], code]), torch.int64)
        shapes = torch.stack(self._all_gather(shape)).cpu().numpy()
        if np.any(shapes[:, [0, 1, 3]] != shapes[0, [0, 1, 3]]):
            raise ValueError(f"columns must have the same number of dimensions, rows and dtype on every process; "
                             f"got (ndim, rows, columns, dtype code) per rank {shapes.tolist()}")
        widths, width = shapes[:, 2], int(shapes[:, 2].max())
        if width == 0:
            return np.array(columns, copy=True) if self.is_root else None
        padded = np.zeros((table.shape[0], width), dtype=columns.dtype)
        padded[:, :table.shape[1]] = table
        tensor = self._tensor(padded, dtype)
        received = [torch.empty_like(tensor) for _ in range(self.world_size)] if self.is_root else None
        dist.gather(tensor, received, dst=self.root, group=self.group)
        if not self.is_root:
            return None
        gathered = np.concatenate([part.cpu().numpy()[:, :int(count)] for part, count in zip(received, widths)], axis=1)
        return gathered[0] if columns.ndim == 1 else gathered

    def broadcast(self, value):
        if self.is_root:
            self.bytes_sent += len(pickle.dumps(value))
        message = [value]
        dist.broadcast_object_list(message, src=self.root, group=self.group, device=self.device)
        return message[0]

    def scatter(self, parts):
        """Rank 0's ``parts[p]`` on process p; ``parts`` (on rank 0) must be a list or tuple with
        one entry per process, else every process raises ValueError."""
        given = None
        if self.is_root:
            if not isinstance(parts, (list, tuple)) or len(parts) != self.world_size:
                length = len(parts) if isinstance(parts, (list, tuple)) else type(parts).__name__
                given = [_RefusedParts(f"parts must be a list with one entry per process ({self.world_size}), "
                                       f"got {length}")] * self.world_size
            else:
                given = list(parts)
                self.bytes_sent += sum(len(pickle.dumps(part)) for part in given)
        received = [None]
        dist.scatter_object_list(received, given, src=self.root, group=self.group)
        if isinstance(received[0], _RefusedParts):
            raise ValueError(received[0].message)
        return received[0]
