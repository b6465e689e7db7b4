"""COPS where the scores live: tensors on their device, and shards over processes.

    python bench/sharded.py [--size D] [--ranks R] [--ranks-size D] [--cuda-size D] [--skip ...]

Three measurements, each printed as times and ratios from one run of this script:

* ``cpu``: D = ``--size`` (default 1e8) float32 scores, one primary and one secondary
  (gamma = 0.9, k = D/20), solved by :func:`torch_adapter.solve_tensors` on a 2-D CPU
  tensor (read through a numpy view) and on its rows (read by ``TensorPasses``), by the
  same road over the numpy arrays (``ArrayPasses``), and by :func:`copslp.solve` in memory;
  the ratio of each to one ``np.partition`` of s_0 in the same process (torch on one thread).
* ``ranks``: the same problem at D / 10 (``--ranks-size``) sharded over ``--ranks`` (default 4) gloo
  processes on this machine, against one process: wall time and the bytes each rank sent.
  On one machine the ranks share its cores, so this measures the communication and the
  overhead of the collectives, not a speed-up.
* ``cuda`` (only where CUDA is available): D = ``--cuda-size`` (default 1e9) float32, two
  scores on the GPU, as a ratio to one ``torch.kthvalue`` of s_0 on the same device
  (target: within 5x).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import copslp  # noqa: E402
from copslp._analytic.passes import ArrayPasses, OneProcess  # noqa: E402
from copslp._analytic.driver import solve_streamed  # noqa: E402

GAMMA = 0.9


def scores_for(size: int, seed: int = 0) -> np.ndarray:
    """Two float32 score rows: a signed primary and a positive secondary correlated with it."""
    rng = np.random.default_rng(seed)
    scores = np.empty((2, size), dtype=np.float32)
    scores[0] = rng.standard_normal(size, dtype=np.float32)
    scores[1] = rng.random(size, dtype=np.float32)
    scores[1] += np.abs(scores[0]) * np.float32(0.5)
    return scores


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bench_cpu(size: int) -> None:
    import torch
    torch.set_num_threads(1)  # TensorPasses reads the CPU in cache-sized chunks: threads only add overhead there
    scores = scores_for(size)
    k = size // 20
    partition, _ = _timed(lambda: np.partition(scores[0], size - k))
    print(f"cpu: D = {size:.0e} float32, two scores, k = D/20, gamma = {GAMMA}")
    print(f"  one np.partition of s_0            {partition:8.3f} s")
    tensors = torch.from_numpy(scores)
    from torch_adapter import solve_tensors
    rows = []
    t, result = _timed(lambda: solve_tensors(tensors, k, gamma=GAMMA))
    rows.append(("solve_tensors, 2-D tensor", t, result.objective))
    t, result = _timed(lambda: solve_tensors(list(tensors.unbind(0)), k, gamma=GAMMA))
    rows.append(("solve_tensors, rows (TensorPasses)", t, result.objective))
    t, result = _timed(lambda: solve_streamed(ArrayPasses(scores), OneProcess(), k, gamma=GAMMA))
    rows.append(("passes over numpy arrays", t, result.objective))
    t, result = _timed(lambda: copslp.solve(scores, k, gamma=GAMMA))
    rows.append(("copslp.solve (in memory)", t, result.objective))
    for name, seconds, objective in rows:
        print(f"  {name:34s} {seconds:8.3f} s  {seconds / partition:6.2f}x partition  objective {objective:.12g}")
    print(f"  solve_tensors / in memory: {rows[0][1] / rows[3][1]:.2f}x (2-D tensor), {rows[1][1] / rows[3][1]:.2f}x "
          f"(rows); TensorPasses / numpy passes on the CPU: {rows[1][1] / rows[2][1]:.2f}x")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, size: int, out_dir: str) -> None:
    import torch
    import torch.distributed as dist
    from torch_adapter import solve_tensors
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    scores = scores_for(size)
    bounds = np.linspace(0, size, world_size + 1).astype(int)
    shard = torch.from_numpy(np.ascontiguousarray(scores[:, bounds[rank]:bounds[rank + 1]]))
    del scores
    dist.barrier()
    start = time.perf_counter()
    result = solve_tensors(shard, size // 20, gamma=GAMMA, process_group=dist.group.WORLD)
    seconds = time.perf_counter() - start
    np.save(os.path.join(out_dir, f"rank{rank}.npy"),
            np.array([seconds, result.info.get("bytes_sent", -1), result.objective, result.info["survivors"]]))
    dist.destroy_process_group()


def bench_ranks(size: int, world_size: int) -> None:
    import torch
    import torch.multiprocessing as mp
    from torch_adapter import solve_tensors
    torch.set_num_threads(1)
    scores = scores_for(size)
    seconds, single = _timed(lambda: solve_tensors(torch.from_numpy(scores), size // 20, gamma=GAMMA))
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(_rank_main, args=(world_size, _free_port(), size, out_dir), nprocs=world_size,
                           join=True, start_method="spawn")
        ranks = [np.load(os.path.join(out_dir, f"rank{r}.npy")) for r in range(world_size)]
    print(f"ranks: D = {size:.0e} float32, two scores; one process (one thread) {seconds:.3f} s, "
          f"{single.info['survivors']} survivors")
    for r, (t, sent, objective, survivors) in enumerate(ranks):
        print(f"  rank {r} of {world_size}: {t:7.3f} s ({t / seconds:5.2f}x one process), sent {int(sent):>10,d} bytes "
              f"({sent / (size * 8 / world_size):.2e} of its shard), objective {objective:.12g}")
    print(f"  objectives agree: {all(abs(r[2] - single.objective) <= 1e-12 * abs(single.objective) for r in ranks)}")


def bench_cuda(size: int) -> None:
    import torch
    if not torch.cuda.is_available():
        print("cuda: no CUDA device here: skipped")
        return
    from torch_adapter import solve_tensors
    device = torch.device("cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    scores = torch.empty((2, size), dtype=torch.float32, device=device)
    scores[0].normal_(generator=generator)
    scores[1].uniform_(generator=generator)
    scores[1].add_(scores[0].abs(), alpha=0.5)
    k = size // 20

    def synced(fn):
        torch.cuda.synchronize()
        start = time.perf_counter()
        value = fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start, value

    synced(lambda: torch.kthvalue(scores[0][:1000], 10))
    kth, _ = synced(lambda: torch.kthvalue(scores[0], size - k + 1))
    solve_tensors(scores[:, :size // 100], k // 100, gamma=GAMMA)  # warm-up: kernels, allocator
    t, result = synced(lambda: solve_tensors(scores, k, gamma=GAMMA))
    print(f"cuda: D = {size:.0e} float32, two scores on {torch.cuda.get_device_name()}")
    print(f"  one torch.kthvalue of s_0 {kth:.3f} s; solve_tensors {t:.3f} s = {t / kth:.2f}x (target 5x); "
          f"certificate {result.certificate.passed}, survivors {result.info['survivors']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=1e8)
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--ranks-size", type=float, default=None, help="D of the sharded run (default: --size / 10)")
    parser.add_argument("--cuda-size", type=float, default=1e9)
    parser.add_argument("--skip", nargs="*", default=[], choices=["cpu", "ranks", "cuda"])
    args = parser.parse_args(argv)
    if "cpu" not in args.skip:
        bench_cpu(int(args.size))
    if "ranks" not in args.skip:
        bench_ranks(int(args.ranks_size or args.size // 10), args.ranks)
    if "cuda" not in args.skip:
        bench_cuda(int(args.cuda_size))


if __name__ == "__main__":
    main()
