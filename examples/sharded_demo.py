"""COPS over scores sharded across processes, as in a model trained with FSDP.

    python examples/sharded_demo.py [--processes 2]

Each of ``--processes`` gloo processes (started here, on this machine's CPU) owns one
contiguous shard of the flattened prunable weights of the same small CNN (FSDP's flat
parameter is laid out this way), computes SNIP and SynFlow on the model and keeps the
scores of its shard only, and calls :func:`torch_adapter.solve_tensors` with the process
group: the scores never leave their process, only the subsample and the survivors of the
screening travel. Each process prints what it holds and sent; rank 0 then solves the same
problem in one process and checks that the concatenated masks are that mask.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torch_adapter import scores, solve_tensors  # noqa: E402

BUDGET = 0.05


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


def full_scores():
    """SNIP (primary) and SynFlow (secondary) of the whole model, flat, and each layer's id."""
    model = make_model()
    torch.manual_seed(1)
    batches = [(torch.randn(64, 3, 8, 8), torch.randint(0, 10, (64,)))]
    snip = scores.snip(model, nn.CrossEntropyLoss(), batches)
    flow = scores.synflow(model, input_shape=(3, 8, 8))
    layers = torch.from_numpy(snip.layout.group_index().astype(np.int64))
    return snip.values.float(), flow.values.float(), layers


def shard_of(size: int, rank: int, world_size: int) -> slice:
    bounds = np.linspace(0, size, world_size + 1).astype(int)
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def run(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    snip, flow, layers = full_scores()
    mine = shard_of(snip.shape[0], rank, world_size)  # what this process would hold under FSDP
    result = solve_tensors([snip[mine], flow[mine]], BUDGET, gamma=0.9, groups=layers[mine], floors=16,
                           process_group=dist.group.WORLD)
    for turn in range(world_size):  # one line per process, in rank order
        if turn == rank:
            print(f"rank {rank}: holds {mine.stop - mine.start} scores, keeps {int(result.mask.sum())}, "
                  f"sent {result.info['bytes_sent']:,} bytes; whole problem: objective {result.objective:.6g}, "
                  f"lambda {', '.join(f'{lam:.4g}' for lam in result.multipliers)}, "
                  f"certified {result.certificate.passed}", flush=True)
        dist.barrier()
    torch.save(result.mask, os.path.join(out_dir, f"mask{rank}.pt"))
    dist.destroy_process_group()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(run, args=(args.processes, port, out_dir), nprocs=args.processes, join=True,
                           start_method="spawn")
        sharded = torch.cat([torch.load(os.path.join(out_dir, f"mask{r}.pt")) for r in range(args.processes)])
    snip, flow, layers = full_scores()
    single = solve_tensors([snip, flow], BUDGET, gamma=0.9, groups=layers, floors=16)
    same = torch.equal(sharded, single.mask)
    print(f"one process: objective {single.objective:.6g}; the {args.processes} shards' masks together are its "
          f"mask: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
