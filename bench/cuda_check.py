"""torch_adapter on a CUDA device: the same answers as on the CPU, and what it costs there.

``python -m bench.cuda_check [--out DIR]`` on a machine with a GPU (it exits 2 without one).
Every check builds a model on the CPU, copies it to CUDA, and compares:

* scores (magnitude, SNIP, GraSP, SynFlow float64) computed on CUDA with those on the CPU,
  for an MLP, a CNN, a ResNet, a transformer, a tiny ViT and a MobileNet-like block net;
* ``select_mask`` / ``prune_with_cops`` (COPS with floors) on CUDA scores: the mask lands
  on the model's device, equals the CPU mask, and survives training steps on CUDA (pruned
  weights stay exactly 0 in mask mode, frozen ones at their values in freeze mode);
* interspace conversion (DCT basis) on CUDA: outputs equal the original's; rescaling after
  pruning; iterative SynFlow (reference kept counts) equal to the CPU masks;
* timings on VGG-16 (15.2 M weights): SNIP, SynFlow, the COPS solve, and the plain top-k
  against ``torch.topk`` of the same score on the GPU;
* ``solve_tensors`` on the GPU (no host copy): the host path's mask on VGG-16's scores, and
  D = 1e9 float32 with two scores as a ratio to one ``torch.kthvalue`` (target 5x).

It prints one PASS/FAIL line per check and writes ``cuda_check.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "bench"))

import torch_models as tm  # noqa: E402
from pruning_demo import generated_batches, vgg16  # noqa: E402

import copslp  # noqa: E402
from torch_adapter import (  # noqa: E402
    current_mask,
    interspace,
    iterative_prune,
    prune_with_cops,
    scores,
    select_mask,
)

CE = nn.CrossEntropyLoss()
MODELS = {**tm.MODELS, **{k: v for k, v in tm.ZOO.items() if k != "shared"}}


def _to(batches, device):
    return [(x.to(device), y.to(device)) for x, y in batches]


def check_scores(device):
    worst = {}
    for name, (make, shape, classes) in MODELS.items():
        data = tm.batches(shape, classes)
        cpu, gpu = make(), make().to(device)
        pairs = {
            "magnitude": (scores.magnitude(cpu), scores.magnitude(gpu)),
            "snip": (scores.snip(cpu, CE, data), scores.snip(gpu, CE, _to(data, device))),
            "synflow": (scores.synflow(cpu, shape), scores.synflow(gpu, shape)),
            "grasp": (scores.grasp(cpu, CE, data), scores.grasp(gpu, CE, _to(data, device))),
        }
        for score, (a, b) in pairs.items():
            assert b.values.device.type == device.type, (name, score, b.values.device)
            scale = float(a.values.abs().max()) or 1.0
            error = float((a.values.double() - b.values.double().cpu()).abs().max()) / scale
            worst[f"{name}/{score}"] = error
            assert error < 1e-4, (name, score, error)
    return {"relative_max_error": worst}


def check_masks_train(device):
    out = {}
    for name, (make, shape, classes) in MODELS.items():
        data = tm.batches(shape, classes)
        for mode in ("mask", "freeze"):
            cpu, gpu = make(), make().to(device)
            s_cpu = [scores.snip(cpu, CE, data), scores.magnitude(cpu)]
            s_gpu = [scores.snip(gpu, CE, _to(data, device)), scores.magnitude(gpu)]
            budget = max(2, len(s_cpu[0]) // 5)
            a = select_mask(s_cpu, budget, gamma=0.5, min_per_layer=1)
            report = prune_with_cops(gpu, s_gpu, budget, gamma=0.5, min_per_layer=1, mode=mode)
            assert report.mask.device.type == device.type
            assert torch.equal(a.mask, report.mask.cpu()), (name, mode, "masks differ between CPU and CUDA")
            layout = report.layout
            before = layout.flatten(layout.values(gpu)).detach().clone()
            optimiser = torch.optim.SGD(gpu.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
            for x, y in _to(data, device) * 2:
                optimiser.zero_grad()
                CE(gpu(x), y).backward()
                optimiser.step()
            after = layout.flatten(layout.values(gpu)).detach()
            kept = report.mask
            if mode == "mask":
                assert bool((after[~kept] == 0).all()), (name, "pruned weights moved")
            else:
                assert torch.equal(after[~kept], before[~kept]), (name, "frozen weights moved")
            assert torch.equal(current_mask(gpu, layout).cpu(), kept.cpu())
            out[f"{name}/{mode}"] = {"kept": int(kept.sum()), "size": len(layout)}
    return out


def check_interspace_rescale_iterative(device):
    model = tm.small_resnet(dtype=torch.float64).to(device)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64, device=device)
    model.eval()
    with torch.no_grad():
        reference = model(x)
    interspace.convert(model, basis="dct")
    with torch.no_grad():
        converted = model(x)
    error = float((converted - reference).abs().max())
    assert error < 1e-10, error
    score = scores.snip(model, CE, _to(tm.batches((3, 8, 8), 4, dtype=torch.float64), device))
    prune_with_cops(model, score, 0.2, rescale=True)

    flows = [iterative_prune(tm.small_cnn().to(where), lambda m: scores.synflow(m, (1, 8, 8)), density=0.05,
                             rounds=20, kept_count_convention="reference").mask.cpu() for where in ("cpu", device)]
    same = torch.equal(*flows)
    assert same, "iterative SynFlow masks differ between CPU and CUDA"
    return {"interspace_max_error": error, "iterative_synflow_same_mask": same}


def _timed(fn, device, repeat=3):
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        value = fn()
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times), value


def check_vgg_timings(device):
    model = vgg16().to(device)
    data = _to(generated_batches(2, 64), device)
    t_snip, s_snip = _timed(lambda: scores.snip(model, CE, data), device, repeat=2)
    t_flow, s_flow = _timed(lambda: scores.synflow(model, (3, 32, 32)), device, repeat=2)
    k = len(s_snip) // 100
    t_topk_torch, _ = _timed(lambda: torch.topk(s_snip.values, k), device)
    t_plain, plain = _timed(lambda: select_mask(s_snip, k), device)
    t_cops, cops = _timed(lambda: select_mask([s_snip, s_flow], k, gamma=0.9), device)
    t_floors, _ = _timed(lambda: select_mask([s_snip, s_flow], k, gamma=0.9, min_per_layer=2), device)
    assert int(plain.mask.sum()) == k and cops.result.certificate.passed
    return {"D": len(s_snip), "k": k, "snip_s": t_snip, "synflow_s": t_flow, "torch_topk_s": t_topk_torch,
            "plain_top_k_s": t_plain, "plain_vs_torch_topk": t_plain / t_topk_torch,
            "cops_one_bound_s": t_cops, "cops_method_s": cops.result.method_time,
            "cops_with_floors_s": t_floors}


def check_solve_tensors(device):
    """COPS on the GPU without a host copy (``solve_tensors``): VGG-16's SNIP and SynFlow
    scores give the host path's mask; then D = 1e9 float32 (two scores) against one
    ``torch.kthvalue`` on the device (bench/sharded.py, target 5x)."""
    from sharded import bench_cuda
    from torch_adapter import solve_tensors
    model = vgg16().to(device)
    s_snip = scores.snip(model, CE, _to(generated_batches(2, 64), device))
    s_flow = scores.synflow(model, (3, 32, 32))
    k = len(s_snip) // 100
    rows = [s_snip.values.float(), s_flow.values.float()]
    t_device, on_device = _timed(lambda: solve_tensors(rows, k, gamma=0.9), device)
    host = copslp.solve([row.cpu().numpy() for row in rows], k, gamma=0.9)
    same = bool(np.array_equal(on_device.mask.cpu().numpy(), host.mask))
    assert on_device.mask.device == rows[0].device and on_device.certificate.passed and same
    bench_cuda(int(1e9))
    return {"D": len(s_snip), "solve_tensors_s": t_device, "same_mask_as_host": same,
            "objective_rel_diff": abs(on_device.objective - host.objective) / abs(host.objective)}


CHECKS = {
    "scores equal on CPU and CUDA": check_scores,
    "COPS masks on CUDA, trained (mask and freeze)": check_masks_train,
    "interspace, rescaling, iterative SynFlow on CUDA": check_interspace_rescale_iterative,
    "VGG-16 timings on CUDA": check_vgg_timings,
    "solve_tensors on CUDA (VGG-16 scores, D = 1e9 against torch.kthvalue)": check_solve_tensors,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results", help="folder for cuda_check.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    record = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__, "numpy": np.__version__,
              "copslp": copslp.__version__, "python": platform.python_version(), "checks": {}}
    print(f"{record['device']}, torch {record['torch']}")
    failed = 0
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            details, status = check(device), "PASS"
        except Exception as exc:  # reported, and the next check runs
            details, status = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}, "FAIL"
            failed += 1
        seconds = time.perf_counter() - start
        record["checks"][name] = {"status": status, "seconds": seconds, **details}
        print(f"{status}  {name} ({seconds:.1f} s)")
        for key, value in details.items():
            if key != "trace":
                print(f"      {key}: {json.dumps(value, default=float)[:600]}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cuda_check.json").write_text(json.dumps(record, indent=2, default=float))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
