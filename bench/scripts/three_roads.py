"""One problem, three roads (``python bench/scripts/three_roads.py``): ``copslp.solve``,
``torch_adapter.solve_tensors`` in this process, and ``solve_tensors`` over 2 gloo processes
(each holding half of the elements). Prints, per problem, whether the masks are identical and
the largest relative difference of the objectives, or the error each road raised."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from gloo_processes import run_in_processes  # noqa: E402

import copslp  # noqa: E402
from torch_adapter import solve_tensors  # noqa: E402


def problems():
    """(name, scores, budget, keyword arguments)."""
    rng = np.random.default_rng(0)
    out = [("n=2 D=1e6 gamma 0.9", rng.random((2, 10**6)), 50_000, {"gamma": 0.9}),
           ("n=4 D=1e6 gamma 0.5", rng.random((4, 10**6)), 50_000, {"gamma": 0.5})]
    groups = np.repeat(np.arange(50), 12_000)
    out.append(("n=3 D=6e5 50 layers, floors 50", rng.lognormal(size=(3, 600_000)), 30_000,
                {"gamma": 0.6, "groups": groups, "floors": 50}))
    many = np.repeat(np.arange(2000), 100)
    out.append(("n=2 D=2e5 2,000 groups, floors 1", rng.random((2, 200_000)), 10_000,
                {"gamma": 0.9, "groups": many, "floors": 1}))
    filters = np.arange(10**6 + 50) // 100  # the two processes' halves meet inside a filter
    binding = rng.random((2, filters.shape[0]))
    binding[1] *= (10.0 ** rng.uniform(-1, 1, filters[-1] + 1))[filters]
    out.append(("n=2 D=1e6 10,001 filters, floors 1, binding (group levels read in a pass)", binding, 50_000,
                {"gamma": 0.75, "groups": filters, "floors": 1}))
    out.append(("n=3 D=2e4 2,000 groups, floors 2", rng.lognormal(size=(3, 20_000)), 5_000,
                {"gamma": 0.5, "groups": np.repeat(np.arange(2000), 10), "floors": 2}))
    out.append(("n=4 D=6e5 gamma [1, 0.3, 0.3]", rng.random((4, 600_000)), 30_000, {"gamma": [1.0, 0.3, 0.3]}))
    out.append(("n=3 gamma [1, 0.0625], 1e-4 beside 1e7", np.array([[0.0] * 19, [0.0] * 10 + [1.0] * 6 + [1e7, 1e-4, 0.0],
                                                                  [0.0] * 18 + [1.0]]), 8, {"gamma": [1.0, 0.0625]}))
    out.append(("n=4 D=2e5 infeasible gamma 0.7", rng.lognormal(size=(4, 200_000)), 2_000, {"gamma": 0.7}))
    out.append(("n=1 D=1e5", rng.random((1, 100_000)), 1_000, {}))
    return out


def outcome(run):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", copslp.CopsWarning)
            result = run()
        return np.asarray(result.mask.numpy() if hasattr(result.mask, "numpy") else result.mask), result.objective
    except copslp.InfeasibleError as error:
        return None, f"InfeasibleError {getattr(error, 'conflicting_scores', None)}"
    except Exception as error:  # noqa: BLE001 - reported, not hidden
        return None, f"{type(error).__name__}: {error}"


def tensor_kwargs(kwargs, part=slice(None)):
    out = dict(kwargs)
    if "groups" in out:
        out["groups"] = torch.from_numpy(np.asarray(out["groups"])[part])
    return out


def sharded(rank: int, world_size: int) -> None:
    folder = Path(os.environ["THREE_ROADS_OUT"])  # set before the processes start
    for index, (name, scores, budget, kwargs) in enumerate(problems()):
        cut = scores.shape[1] // 2
        part = slice(0, cut) if rank == 0 else slice(cut, None)
        mask, objective = outcome(lambda: solve_tensors(torch.from_numpy(np.ascontiguousarray(scores[:, part])), budget,
                                                        process_group=dist.group.WORLD,
                                                        **tensor_kwargs(kwargs, part)))
        np.save(folder / f"{index}-{rank}-mask.npy", np.zeros(0, dtype=bool) if mask is None else mask)
        (folder / f"{index}-{rank}-objective.txt").write_text(repr(objective))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        os.environ["THREE_ROADS_OUT"] = folder
        run_in_processes(sharded, 2)
        for index, (name, scores, budget, kwargs) in enumerate(problems()):
            in_memory = outcome(lambda: copslp.solve(scores, budget, **kwargs))
            tensors = outcome(lambda: solve_tensors(torch.from_numpy(scores), budget, **tensor_kwargs(kwargs)))
            parts = [np.load(Path(folder) / f"{index}-{rank}-mask.npy") for rank in range(2)]
            objectives = [eval((Path(folder) / f"{index}-{rank}-objective.txt").read_text()) for rank in range(2)]
            gloo = (np.concatenate(parts) if all(part.shape[0] for part in parts) else None, objectives[0])
            roads = (in_memory, tensors, gloo)
            if all(isinstance(road[1], float) for road in roads):
                same = all(np.array_equal(roads[0][0], road[0]) for road in roads[1:])
                gap = max(abs(road[1] - in_memory[1]) / max(abs(in_memory[1]), 1e-300) for road in roads[1:])
                print(f"{name}: masks identical on the three roads: {same}; objectives {in_memory[1]:.12g}, "
                      f"largest relative difference {gap:.1e}; gloo ranks agree: {objectives[0] == objectives[1]}")
            else:
                print(f"{name}: solve -> {in_memory[1]!s:.120}; tensors -> {tensors[1]!s:.120}; 2 gloo -> "
                      f"{gloo[1]!s:.120} (ranks: {objectives[1]!s:.60})")
