"""Process groups for the torch.distributed tests: gloo on the CPU, started by the test.

The processes are forked from a server that has imported torch once (``forkserver`` with a
preload), so a group of four starts in well under a second instead of importing torch four
times.
"""

from __future__ import annotations

import multiprocessing
import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

#: How long a collective waits for the other processes before failing the test.
TIMEOUT = timedelta(seconds=60)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_in_processes(check, world_size: int) -> None:
    """Run ``check(rank, world_size)`` (a module-level function) in ``world_size`` processes
    joined in one gloo group; an exception in any of them fails the call."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(["torch", "torch_adapter", "pytest"])
    mp.start_processes(_in_group, args=(check, world_size, free_port()), nprocs=world_size, join=True,
                       start_method="forkserver")


def _in_group(rank: int, check, world_size: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=TIMEOUT)
    try:
        check(rank, world_size)
    finally:
        dist.destroy_process_group()
