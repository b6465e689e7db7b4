"""From a model to a mask, end to end: torch_adapter against the straightforward loop the
papers describe, and against the autograd floor, measured in one run.

    python bench/pipeline.py [--models lenet300 resnet20 vgg16] [--dtypes float32 float64]
                             [--tasks synflow snip grasp cops] [--rounds 100] [--density 0.01]
                             [--batch 256] [--chunk 32] [--repeats 1] [--threads 1] [--tiny]

Networks (bench/models.py, built in code, seed 0): LeNet-300-100 (1x28x28), ResNet-20 and
VGG-16 (3x32x32, CIFAR shapes). Every measurement runs in a fresh process (this script with
``--job``), one torch thread by default, so that its peak memory is its own: the peak RSS
(VmHWM, reset through /proc/self/clear_refs after the model and the batch are built) minus
the RSS at that moment. Within a repeat the variants of a task run one after the other, so
their ratios see the same load; odd repeats run them in the reverse order, so that no variant
always runs first (or right after another's process).

Tasks, each ending in a mask of the *reference* kept count
:math:`k = N - \\lfloor (1 - d) N \\rfloor` (d = --density):

* ``synflow``: iterative SynFlow, --rounds rounds, exponential schedule to d.
  *ours* ``iterative_prune(model, SynFlowRounds(shape, dtype=...), kept_count_convention="reference")``;
  *baseline* the loop as the SynFlow paper describes it, every round: a fresh deep copy of
  the masked model with every parameter and buffer absolute-valued, forward and backward of
  the ones input, :math:`|\\theta \\odot g|` per tensor concatenated, the k-th value by
  ``torch.kthvalue``, masks ``score > threshold`` multiplied into the model;
  *floor* --rounds forward and backward passes (``torch.autograd.grad`` of the prunable
  weights) of the absolute-valued network, nothing else.
* ``snip``: one batch of --batch random inputs (standard normal) and random labels.
  *ours* ``scores.snip`` then ``top_k_mask``; *baseline* forward, ``loss.backward()``,
  :math:`|\\theta \\odot \\theta.grad|` concatenated, ``torch.kthvalue``, masks.
* ``grasp``: the same batch, temperature 200, scores normalised as the SynFlow authors'
  GraSP does. *ours* ``scores.grasp(normalize=True)``; *chunked* the same with
  ``chunk_size=--chunk``; *baseline* the authors' two passes (gradient without graph, then
  gradient with graph, :math:`z = \\langle g_0, g\\rangle`, ``z.backward()``,
  :math:`\\theta \\odot \\theta.grad`), ``torch.kthvalue``, masks.
* ``cops``: COPS of SNIP (primary) and the iterative SynFlow's last-round scores
  (secondary, gamma = --gamma) at k. *ours* ``scores.snip`` + the iterative loop +
  ``select_mask``; *baseline* the two baselines above for the scores, then ``copslp.solve``.

SNIP, GraSP and COPS convert the model and the batch to the dtype first (outside the timed
part); SynFlow converts its own copy, as both loops do. The masks of ours and the baseline
must be identical: a mismatch is printed and makes the exit status 1; chunked GraSP must
give the unchunked scores (max absolute difference over max absolute value) to 1e-6 in float64,
and in float32 to the float32 unchunked score's own distance from the float64 one when both
dtypes ran (else to 1e-5): float32 round-off of the score exceeds 1e-6 (see SCORE_TOLERANCE).

Output: a table of every run (median over repeats: seconds, peak memory, where the time
went), the target lines (PASS / FAIL, ratios of medians), bench/results/pipeline/pipeline.json
and pipeline.txt (--out).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.ensure_paths()

import numpy as np  # noqa: E402

NETWORKS = ("lenet300", "resnet20", "vgg16")
TASKS = ("synflow", "snip", "grasp", "cops")
VARIANTS = {"synflow": ("baseline", "ours", "floor"), "snip": ("baseline", "ours"),
            "grasp": ("baseline", "ours", "chunked"), "cops": ("baseline", "ours")}
#: (network or None for every network, task, dtype or None, numerator, denominator, bound)
TARGETS = (
    ("vgg16", "synflow", None, "ours", "baseline", 0.75),
    ("vgg16", "synflow", None, "ours", "floor", 1.5),
    ("resnet20", "synflow", None, "ours", "baseline", 0.8),
    ("lenet300", "synflow", None, "ours", "baseline", 0.8),
    (None, "snip", None, "ours", "baseline", 1.0),
    (None, "grasp", None, "ours", "baseline", 1.0),
)
GRASP_TEMPERATURE = 200.0
GRASP_EPS = 1e-10
#: Chunked GraSP against unchunked, max |difference| / max |score|: at most 1e-6 in float64;
#: in float32 at most the float32 unchunked score's own distance from the float64 one (same
#: model and batch, when float64 ran too), else FLOAT32_SCORE_TOLERANCE. Float32 round-off of the
#: score itself is far above 1e-6 (ResNet-20, batch 256: 3.5e-5 from float64, chunked or not,
#: where chunked and unchunked differ by 4.7e-6), so 1e-6 cannot be asked of float32.
SCORE_TOLERANCE = 1e-6
FLOAT32_SCORE_TOLERANCE = 1e-5


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/pipeline.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--rounds", type=int, default=100, help="rounds of iterative SynFlow")
    parser.add_argument("--density", type=float, default=0.01, help="final kept fraction")
    parser.add_argument("--batch", type=int, default=256, help="samples in the SNIP/GraSP batch")
    parser.add_argument("--chunk", type=int, default=32, help="GraSP chunk_size of the chunked variant")
    parser.add_argument("--gamma", type=float, default=0.5, help="COPS bound on SynFlow (relative)")
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier of the networks")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every variant (medians reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run")
    parser.add_argument("--device", default="cpu",
                        help="torch device of every run (cuda: peak memory is torch.cuda.max_memory_allocated)")
    parser.add_argument("--tiny", action="store_true",
                        help="width 1/4, 3 rounds, batch 8, chunk 3: checks the script, says nothing about targets")
    parser.add_argument("--out", type=Path, default=common.ROOT / "bench" / "results" / "pipeline")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.width, args.rounds, args.batch, args.chunk = 1 / 4, 3, 8, 3
    return args


# ----------------------------------------------------------------------------- the baselines
def _prunable(model):
    from torch import nn

    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _threshold_masks(scores, density, ties=None):
    """The reference's global mask: drop every score <= the int((1 - d) N)-th smallest.

    With ties at that threshold it drops more than int((1 - d) N); ``ties`` (a list) gets how
    many more and the seconds that count took (one pass, subtracted from the run's time)."""
    import torch

    flat = torch.cat([s.reshape(-1) for s in scores])
    pruned = int((1.0 - density) * flat.numel())
    if pruned < 1:
        return [torch.ones_like(s) for s in scores]
    threshold = torch.kthvalue(flat, pruned).values
    masks = [torch.where(s <= threshold, 0.0, 1.0).to(s.dtype) for s in scores]
    if ties is not None:
        start = time.perf_counter()
        ties.append((int((flat <= threshold).sum()) - pruned, time.perf_counter() - start))
    return masks


def baseline_synflow(model, shape, dtype, density, rounds, ties=None):
    """The SynFlow loop as the paper describes it (see the module docstring). ``ties``: see
    :func:`_threshold_masks` (one entry per round)."""
    import torch

    work = copy.deepcopy(model).to(dtype)
    params = _prunable(work)
    masks = [torch.ones_like(p) for p in params]
    ones = torch.ones((1, *shape), dtype=dtype, device=params[0].device)
    flow = None
    for r in range(rounds):
        with torch.no_grad():
            for mask, param in zip(masks, params):
                param.mul_(mask)
        linear = copy.deepcopy(work)
        with torch.no_grad():
            for tensor in linear.state_dict().values():
                if tensor.is_floating_point():
                    tensor.abs_()
        linear_params = _prunable(linear)
        linear(ones).sum().backward()
        flow = [(p.grad * p).detach().abs() for p in linear_params]
        del linear, linear_params
        masks = _threshold_masks(flow, density ** ((r + 1) / rounds), ties)
    return torch.cat([m.reshape(-1) for m in masks]).bool(), torch.cat([s.reshape(-1) for s in flow])


def baseline_snip_scores(model, inputs, targets):
    import torch
    from torch import nn

    params = _prunable(model)
    nn.CrossEntropyLoss()(model(inputs), targets).backward()
    scores = [(p.grad * p).detach().abs() for p in params]
    for p in model.parameters():
        p.grad = None
    return scores


def baseline_snip(model, inputs, targets, density):
    import torch

    scores = baseline_snip_scores(model, inputs, targets)
    return torch.cat([m.reshape(-1) for m in _threshold_masks(scores, density)]).bool()


def baseline_grasp(model, inputs, targets, density):
    """The SynFlow authors' GraSP (``Pruners/pruners.py: GraSP.score``) and global mask."""
    import torch
    from torch import nn

    loss = nn.CrossEntropyLoss()
    params = _prunable(model)
    stopped = [g.detach() for g in torch.autograd.grad(loss(model(inputs) / GRASP_TEMPERATURE, targets), params)]
    grads = torch.autograd.grad(loss(model(inputs) / GRASP_TEMPERATURE, targets), params, create_graph=True)
    z = sum((g0 * g).sum() for g0, g in zip(stopped, grads))
    z.backward()
    scores = [(p.grad * p.data).detach() for p in params]
    for p in model.parameters():
        p.grad = None
    norm = torch.cat([s.reshape(-1) for s in scores]).sum().abs() + GRASP_EPS
    scores = [s / norm for s in scores]
    return torch.cat([m.reshape(-1) for m in _threshold_masks(scores, density)]).bool(), \
        torch.cat([s.reshape(-1) for s in scores])


def floor_synflow(model, shape, dtype, rounds):
    """--rounds forward and backward passes of the absolute-valued network."""
    import torch

    from torch_adapter.scores import _absolute_copy

    linear = _absolute_copy(model, dtype, False)
    params = _prunable(linear)
    ones = torch.ones((1, *shape), dtype=dtype, device=params[0].device)
    for _ in range(rounds):
        torch.autograd.grad(linear(ones).sum(), params)


# ----------------------------------------------------------------------------- one measured run
def _kept(density, size):
    from torch_adapter import kept_count

    return kept_count(density, size, "reference")


def measured(spec):
    """Run one (network, dtype, task, variant) and return what it measured; in a fresh process."""
    import torch
    from torch import nn

    import copslp
    import models
    from torch_adapter import Layout, iterative_prune, scores, select_mask, top_k_mask
    from torch_adapter.scores import SynFlowRounds

    torch.set_num_threads(spec["threads"])
    dtype = getattr(torch, spec["dtype"])
    model, shape, classes = models.build(spec["model"], width=spec["width"], seed=0)
    model.eval()
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn((spec["batch"], *shape), generator=generator)
    targets = torch.randint(0, classes, (spec["batch"],), generator=generator)
    device = torch.device(spec.get("device", "cpu"))
    model, inputs, targets = model.to(device), inputs.to(device), targets.to(device)
    cuda = device.type == "cuda"
    task, variant, density, rounds = spec["task"], spec["variant"], spec["density"], spec["rounds"]
    if task != "synflow":
        model, inputs = model.to(dtype), inputs.to(dtype)
    size = len(Layout.from_model(model))
    loss = nn.CrossEntropyLoss()
    parts, mask, values = {}, None, None

    def timed_part(name, call):
        start = time.perf_counter()
        out = call()
        parts[name] = parts.get(name, 0.0) + time.perf_counter() - start
        return out

    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        reset, before = True, torch.cuda.memory_allocated(device)
    else:
        reset, before = common.reset_peak_rss(), common.rss_bytes()
    start = time.perf_counter()
    if (task, variant) == ("synflow", "ours"):
        result = iterative_prune(model, SynFlowRounds(shape, dtype=dtype), density=density, rounds=rounds,
                                 kept_count_convention="reference")
        mask = result.mask
        parts = {"scoring": sum(result.score_times), "selection": sum(result.select_times)}
    elif (task, variant) == ("synflow", "baseline"):
        ties = [] if spec.get("count_ties") else None
        mask, _ = baseline_synflow(model, shape, dtype, density, rounds, ties)
    elif (task, variant) == ("synflow", "floor"):
        floor_synflow(model, shape, dtype, rounds)
    elif (task, variant) == ("snip", "ours"):
        score = timed_part("scoring", lambda: scores.snip(model, loss, [(inputs, targets)]))
        mask = timed_part("selection", lambda: top_k_mask(score, density, kept_count_convention="reference"))
    elif (task, variant) == ("snip", "baseline"):
        mask = baseline_snip(model, inputs, targets, density)
    elif task == "grasp" and variant in ("ours", "chunked"):
        chunk = spec["chunk"] if variant == "chunked" else None
        score = timed_part("scoring", lambda: scores.grasp(model, loss, [(inputs, targets)], normalize=True,
                                                           chunk_size=chunk))
        mask = timed_part("selection", lambda: top_k_mask(score, density, kept_count_convention="reference"))
        values = score.values
    elif (task, variant) == ("grasp", "baseline"):
        mask, values = baseline_grasp(model, inputs, targets, density)
    elif (task, variant) == ("cops", "ours"):
        snip = timed_part("scoring", lambda: scores.snip(model, loss, [(inputs, targets)]))
        flow = iterative_prune(model, SynFlowRounds(shape, dtype=dtype), density=density, rounds=rounds,
                               kept_count_convention="reference")
        parts["scoring"] += sum(flow.score_times)
        parts["selection"] = sum(flow.select_times)
        selection = select_mask([snip, flow.scores[0]], _kept(density, size), gamma=spec["gamma"])
        parts["solve"] = selection.result.wall_time
        mask = selection.mask
    elif (task, variant) == ("cops", "baseline"):
        snip = timed_part("scoring", lambda: torch.cat([s.reshape(-1) for s in
                                                        baseline_snip_scores(model, inputs, targets)]))
        _, flow = timed_part("scoring", lambda: baseline_synflow(model, shape, dtype, density, rounds))
        stacked = torch.stack([snip.to(torch.float64), flow.to(torch.float64)]).cpu().numpy()
        result = timed_part("solve", lambda: copslp.solve(stacked, _kept(density, size), gamma=spec["gamma"]))
        mask = torch.from_numpy(np.asarray(result.mask, dtype=bool))
    else:
        raise ValueError(f"unknown task and variant {task!r}, {variant!r}")
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if task == "synflow" and variant == "baseline" and ties is not None:
        seconds -= sum(elapsed for _, elapsed in ties)  # the tie count is the bench's, not the loop's
    peak_now = torch.cuda.max_memory_allocated(device) if cuda else common.peak_rss_bytes()
    peak = peak_now - before if reset and before is not None else None
    out = {"seconds": seconds, "peak_extra_bytes": peak, "parts": parts, "size": size}
    if (task, variant) == ("synflow", "baseline") and ties is not None:
        out["tied_rounds"] = {r + 1: n for r, (n, _) in enumerate(ties) if n}
    if mask is not None:
        out["mask_bits"] = np.packbits(mask.cpu().numpy().astype(bool)).tobytes().hex()
        out["kept"] = int(mask.sum())
    if values is not None:
        path = Path(spec["scratch"]) / f"{spec['model']}-{spec['dtype']}-{task}-{variant}.npy"
        np.save(path, values.detach().cpu().to(torch.float64).numpy())
        out["scores_path"] = str(path)
    return out


def run_child(spec) -> dict:
    """One measured run in a fresh interpreter (this script with --job); its JSON answer."""
    completed = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(spec)],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{spec['model']} {spec['dtype']} {spec['task']} {spec['variant']} failed:\n"
                           f"{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the report
def summarise(runs, args):
    """Medians per (model, dtype, task, variant), mask and score checks, the target lines."""
    groups = {}
    for run in runs:
        groups.setdefault((run["model"], run["dtype"], run["task"], run["variant"]), []).append(run)
    median = {key: {"seconds": common.median([r["seconds"] for r in rs]),
                    "peak": common.median([r["peak_extra_bytes"] for r in rs]),
                    "parts": {p: common.median([r["parts"].get(p) for r in rs]) for p in rs[0]["parts"]},
                    "runs": len(rs), "size": rs[0]["size"]}
              for key, rs in groups.items()}
    checks, failures = [], 0
    for (model, dtype, task, variant), rs in groups.items():
        if variant == "baseline" and (model, dtype, task, "ours") in groups:
            ours = groups[(model, dtype, task, "ours")]
            same = all(r["mask_bits"] == o["mask_bits"] for r in rs for o in ours)
            failures += not same
            checks.append(f"{'same' if same else 'DIFFERENT'} masks: {model} {dtype} {task} ours and baseline "
                          f"(kept {ours[0]['kept']} and {rs[0]['kept']})" + _ties_text(rs[0].get("tied_rounds")))
        if variant == "chunked" and (model, dtype, task, "ours") in groups:
            chunked = np.load(rs[0]["scores_path"])
            unchunked = np.load(groups[(model, dtype, task, "ours")][0]["scores_path"])
            error = _score_distance(chunked, unchunked)
            tolerance, why = SCORE_TOLERANCE, ""
            if dtype == "float32":
                tolerance, why = FLOAT32_SCORE_TOLERANCE, ", float64 not run"
                wide = groups.get((model, "float64", task, "ours"))
                if wide:
                    reference = np.load(wide[0]["scores_path"])
                    tolerance = _score_distance(unchunked, reference)
                    why = (f", the float32 unchunked score's own distance from the float64 one; the chunked one's "
                           f"{_score_distance(chunked, reference):.2e}")
            ok = error <= tolerance
            failures += not ok
            checks.append(f"{'PASS' if ok else 'FAIL'} GraSP chunk_size={args.chunk} against unchunked: {model} "
                          f"{dtype}, max |difference| / max |score| = {error:.2e} (<= {tolerance:.2e}{why})")
    lines = []
    for network, task, want_dtype, top, bottom, bound in TARGETS:
        for (model, dtype, t, variant), m in sorted(median.items()):
            if t != task or variant != top or (network and model != network) or (want_dtype and dtype != want_dtype):
                continue
            other = median.get((model, dtype, task, bottom))
            if other is None:
                continue
            ratio = m["seconds"] / other["seconds"]
            lines.append(f"{'PASS' if ratio <= bound else 'FAIL'} {model} {dtype} {task}: {top} / {bottom} = "
                         f"{ratio:.2f} (<= {bound:g}; {m['seconds']:.2f} s / {other['seconds']:.2f} s)")
    for (model, dtype, task, variant), m in sorted(median.items()):
        other = median.get((model, dtype, task, "baseline"))
        if variant in ("ours", "chunked") and other and m["peak"] is not None and other["peak"] is not None:
            ok = m["peak"] <= other["peak"]
            lines.append(f"{'PASS' if ok else 'FAIL'} {model} {dtype} {task}: peak memory {variant} "
                         f"{common.mib(m['peak'])} <= baseline {common.mib(other['peak'])}")
    return median, checks, lines, failures


def _score_distance(a, b) -> float:
    """max |a - b| / max |b|."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), np.finfo(float).tiny))


def _ties_text(tied_rounds) -> str:
    """What the baseline dropped beyond its count: scores tied at its threshold, per round."""
    if not tied_rounds:
        return ""
    shown = ", ".join(f"round {r}: {n}" for r, n in list(tied_rounds.items())[:4])
    more = f", ... ({len(tied_rounds)} rounds)" if len(tied_rounds) > 4 else ""
    return (f"; the baseline dropped every score tied at its threshold, {sum(tied_rounds.values())} more than "
            f"its count in all ({shown}{more}), where the top-k rule keeps the count")


def report_text(payload) -> str:
    median = {tuple(k.split("|")): v for k, v in payload["median"].items()}
    rows = []
    for (model, dtype, task, variant), m in sorted(median.items(), key=lambda kv: (
            NETWORKS.index(kv[0][0]), kv[0][1], TASKS.index(kv[0][2]), VARIANTS[kv[0][2]].index(kv[0][3]))):
        shares = ", ".join(f"{p} {100 * v / m['seconds']:.0f}%" for p, v in m["parts"].items() if v is not None)
        base = median.get((model, dtype, task, "baseline"))
        ratio = "" if base is None or variant == "baseline" else f"{m['seconds'] / base['seconds']:.2f}"
        rows.append([model, f"{m['size']:,}", dtype, task, variant, f"{m['seconds']:.3f}", ratio,
                     common.mib(m["peak"]), shares])
    text = [f"command: {payload['command']}", common.machine_line(payload["machine"]),
            f"torch threads per run: {payload['settings']['threads']}; load average before / after: "
            f"{payload['load_before']} / {payload['load_after']}", "",
            common.table(["network", "D", "dtype", "task", "variant", "seconds", "/ baseline", "peak extra",
                          "where the time went"], rows), "", *payload["checks"], "", *payload["targets"]]
    return "\n".join(text)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.job:
        print(json.dumps(measured(json.loads(args.job))))
        return 0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("pipeline: torch is not installed; install copslp[torch] to run this benchmark")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "pipeline",
               "command": "python bench/pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": common.machine_description(), "load_before": common.load_average(),
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    runs = []
    with tempfile.TemporaryDirectory(prefix="pipeline-") as scratch:
        for model in args.models:
            for dtype in args.dtypes:
                for task in args.tasks:
                    for repeat in range(args.repeats):  # odd repeats in the reverse order: no variant always first
                        for variant in VARIANTS[task][::-1] if repeat % 2 else VARIANTS[task]:
                            spec = {"model": model, "dtype": dtype, "task": task, "variant": variant,
                                    "width": args.width, "rounds": args.rounds, "density": args.density,
                                    "batch": args.batch, "chunk": args.chunk, "gamma": args.gamma,
                                    "threads": args.threads, "scratch": scratch, "count_ties": True,
                                    "device": args.device}
                            run = {**spec, **run_child(spec), "repeat": repeat}
                            runs.append(run)
                            print(f"  {model} {dtype} {task} {variant}: {run['seconds']:.3f} s", file=sys.stderr,
                                  flush=True)
        median, checks, targets, failures = summarise(runs, args)
    payload.update(load_after=common.load_average(), checks=checks, targets=targets,
                   median={"|".join(k): v for k, v in median.items()},
                   runs=[{k: v for k, v in r.items() if k not in ("mask_bits", "scratch", "scores_path")}
                         for r in runs])
    text = report_text(payload)
    print(text)
    (args.out / "pipeline.json").write_text(json.dumps(payload, indent=1))
    (args.out / "pipeline.txt").write_text(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
