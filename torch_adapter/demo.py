"""Real-model demo: COPS on a VGG-16 for 32x32x3 inputs, at initialisation.

What it does (``python -m torch_adapter.demo`` or ``copslp demo``):

1. builds a VGG-16-shaped network in code (13 3x3 convolutions with BatchNorm and ReLU in
   five stages of 64-128-256-512-512 channels with max pooling, then three linear layers
   512-512-512-10; about 15.2 M prunable weights), initialised as torchvision does
   (Kaiming-normal fan-out convolutions, N(0, 0.01) linear weights, zero biases);
2. scores it with SNIP on generated batches (Gaussian images, uniform random labels: no
   data set is downloaded) and with SynFlow (data-free, float64; one shot by default,
   ``--synflow-iterations N`` runs the iterative variant once per density);
3. at each density (1 %, 0.5 %, 0.1 % by default) compares three masks of the same size k:
   SNIP alone (its top-k), SynFlow alone (its top-k) and COPS (``copslp.solve``, method
   ``analytic``): maximise the kept SNIP score subject to keeping at least
   ``gamma`` = 90 % of the largest SynFlow score any k weights can have;
4. prints a per-layer table of kept counts (collapsed layers flagged ``!``), the COPS
   solver's numbers, and writes a PNG of per-layer densities and a JSON summary to
   ``--out`` (default ``./demo_out/``).

The model itself is only pruned at the end (the COPS mask of the smallest density, to
check that the pruned network still runs); scoring leaves it untouched.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .cops import Selection, select_mask
from .masks import apply_mask, format_layer_table
from .scores import Score, snip, synflow

__all__ = ["vgg16", "generated_batches", "main", "DENSITIES"]

#: Kept fractions the demo compares.
DENSITIES = (0.01, 0.005, 0.001)
#: Channels of the 13 convolutions, "M" = 2x2 max pooling.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
INPUT_SHAPE = (3, 32, 32)


def vgg16(num_classes: int = 10, *, seed: int = 0) -> nn.Module:
    """VGG-16 with BatchNorm for 32x32x3 inputs, freshly initialised.

    Module names: ``features.conv{stage}_{i}``, ``features.bn{stage}_{i}``,
    ``classifier.fc1..fc3``.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = INPUT_SHAPE[0]
        for stage, widths in enumerate(VGG16_STAGES, start=1):
            for i, width in enumerate(widths, start=1):
                layers[f"conv{stage}_{i}"] = nn.Conv2d(channels, width, 3, padding=1)
                layers[f"bn{stage}_{i}"] = nn.BatchNorm2d(width)
                layers[f"relu{stage}_{i}"] = nn.ReLU(inplace=True)
                channels = width
            layers[f"pool{stage}"] = nn.MaxPool2d(2)
        model = nn.Sequential(OrderedDict(
            features=nn.Sequential(layers),
            flatten=nn.Flatten(),
            classifier=nn.Sequential(OrderedDict(
                fc1=nn.Linear(512, 512), relu1=nn.ReLU(inplace=True),
                fc2=nn.Linear(512, 512), relu2=nn.ReLU(inplace=True),
                fc3=nn.Linear(512, num_classes),
            )),
        ))
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def generated_batches(n_batches: int, batch_size: int, num_classes: int = 10, *, seed: int = 0):
    """``n_batches`` pairs of standard-normal 3x32x32 images and uniform random labels."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn((batch_size, *INPUT_SHAPE), generator=generator),
             torch.randint(0, num_classes, (batch_size,), generator=generator))
            for _ in range(n_batches)]


def _progress(iterable: Iterable, enabled: bool, **kwargs) -> Iterable:
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, leave=False, file=sys.stderr, **kwargs)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="torch_adapter.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES),
                        help="kept fractions (default: 0.01 0.005 0.001)")
    parser.add_argument("--gamma", type=float, default=0.9,
                        help="COPS keeps >= gamma * (best SynFlow of any k weights) (default 0.9)")
    parser.add_argument("--batches", type=int, default=2, help="generated SNIP batches (default 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--synflow-iterations", type=int, default=1,
                        help="SynFlow rounds; > 1 runs the iterative variant for each density (slower)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    for density in args.densities:
        if not 0 < density <= 1:
            parser.error(f"densities must lie in (0, 1], got {density}")
    if not 0 <= args.gamma <= 1:
        parser.error(f"--gamma must lie in [0, 1], got {args.gamma}")
    return args


def _cops_line(cops: Selection, snip_only: Selection, flow_only: Selection, gamma: float) -> str:
    res = cops.result
    snip_kept = res.mask_objective / snip_only.result.mask_objective
    flow_best = flow_only.result.mask_objective
    flow_kept = res.mask_bound_values[0] / flow_best
    return (f"COPS: SNIP kept {100 * snip_kept:.2f}% of SNIP-only's, SynFlow {100 * flow_kept:.2f}% of the best "
            f"(bound {100 * gamma:.0f}%), lambda = {res.multipliers[0]:.4g}, LP gap {res.gap:.3g}, "
            f"{res.n_fractional} fractional; solve {res.wall_time:.2f} s (method {res.method_time:.2f} s)")


def _plot(path: Path, densities, rows, layer_names) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(densities), figsize=(5 * len(densities), 4.2), sharey=True, squeeze=False)
    x = np.arange(len(layer_names))
    styles = {"SNIP": ("tab:blue", "o"), "SynFlow": ("tab:orange", "s"), "COPS": ("tab:green", "^")}
    positive = [s.density for row in rows.values() for sel in row.values() for s in sel.layers if s.density > 0]
    floor = 0.3 * min(positive)  # where collapsed layers (density 0) are drawn on the log axis
    for ax, density in zip(axes[0], densities):
        for label, (color, marker) in styles.items():
            stats = rows[density][label].layers
            values = np.array([s.density for s in stats])
            ax.plot(x, np.maximum(values, floor), color=color, marker=marker, markersize=4, label=label)
            dead = np.flatnonzero(values == 0)
            if dead.size:
                ax.scatter(x[dead], np.full(dead.size, floor), color="red", marker="x", s=60, zorder=3,
                           label="collapsed" if label == "SynFlow" else None)
        ax.axhline(density, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_title(f"density {100 * density:g}%")
        ax.set_xticks(x)
        ax.set_xticklabels(layer_names, rotation=90, fontsize=7)
    axes[0][0].set_ylabel("kept fraction per layer (log)")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    labels = [lab if lab != "collapsed" else "collapsed layer (density 0)" for lab in labels]
    handles.append(axes[0][0].get_lines()[-1])  # the dashed overall density
    labels.append("overall density")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle("VGG-16 at initialisation: per-layer density of SNIP, SynFlow and COPS masks")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (0)."""
    args = _parse(argv)
    start = time.perf_counter()
    show = not args.no_progress
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    model = vgg16(seed=args.seed).to(device)
    timed("build VGG-16", t0)
    data = generated_batches(args.batches, args.batch_size, seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())

    print(f"VGG-16 (BatchNorm) for 32x32x3 on {device}: {n_params:,} parameters, built in {times['build VGG-16']:.2f} s")
    t0 = time.perf_counter()
    s_snip = snip(model, nn.CrossEntropyLoss(), _progress(data, show, desc="SNIP batches"))
    timed("SNIP", t0)
    layout = s_snip.layout
    print(f"prunable: the weights of {layout.n_layers} conv/linear layers, D = {len(layout):,}")
    print(f"SNIP on {args.batches} generated batches of {args.batch_size}: {times['SNIP']:.2f} s")

    flows: dict[float, Score] = {}
    t0 = time.perf_counter()
    if args.synflow_iterations == 1:
        flow = synflow(model, INPUT_SHAPE)
        flows = {density: flow for density in args.densities}
        what = "one shot"
    else:
        for density in _progress(args.densities, show, desc="iterative SynFlow"):
            flows[density] = synflow(model, INPUT_SHAPE, iterations=args.synflow_iterations,
                                     final_density=density, progress=show)
        what = f"{args.synflow_iterations} rounds per density"
    timed("SynFlow", t0)
    print(f"SynFlow (float64, {what}): {times['SynFlow']:.2f} s")

    rows: dict[float, dict[str, Selection]] = {}
    jobs = [(d, label) for d in args.densities for label in ("SNIP", "SynFlow", "COPS")]
    for density, label in _progress(jobs, show, desc="copslp.solve"):
        t0 = time.perf_counter()
        if label == "SNIP":
            selection = select_mask(s_snip, density=density)
        elif label == "SynFlow":
            selection = select_mask(flows[density], density=density)
        else:
            selection = select_mask([s_snip, flows[density]], density=density, gamma=args.gamma, method="analytic")
        timed(f"solve {label}", t0)
        rows.setdefault(density, {})[label] = selection

    layer_names = [name.split(".")[-1] for name in layout.layer_names]
    for density in args.densities:
        row = rows[density]
        k = row["COPS"].result.budget
        print()
        print(format_layer_table({label: sel.layers for label, sel in row.items()},
                                 title=f"density {100 * density:g}%: k = {k:,} of {len(layout):,} weights "
                                       f"(kept count (density) per layer; ! = layer collapsed)"))
        print(_cops_line(row["COPS"], row["SNIP"], row["SynFlow"], args.gamma))
        for label, sel in row.items():
            if sel.collapsed:
                print(f"  {label} collapses {len(sel.collapsed)} layers: {', '.join(n.split('.')[-1] for n in sel.collapsed)}")

    t0 = time.perf_counter()
    smallest = min(args.densities)
    apply_mask(model, rows[smallest]["COPS"].mask, layout, on_collapse="ignore")
    model.eval()
    with torch.no_grad():
        logits = model(data[0][0][:4].to(device))
    timed("apply mask + forward", t0)
    kept = sum(int(getattr(m, "weight_mask").sum()) for m in layout.modules(model))
    print(f"\nCOPS mask of density {100 * smallest:g}% applied with torch.nn.utils.prune.custom_from_mask: "
          f"{kept:,} weights kept; a forward pass gives finite logits: {bool(torch.isfinite(logits).all())}")

    t0 = time.perf_counter()
    png = out / "vgg16_layer_densities.png"
    plotted = _plot(png, args.densities, rows, layer_names)
    snip_values = s_snip.numpy()
    summary = {
        "model": "VGG-16 (BatchNorm), 32x32x3, at initialisation",
        "device": str(device),
        "prunable": len(layout),
        "layers": list(layout.layer_names),
        "layer_sizes": [int(n) for n in layout.layer_sizes],
        "gamma": args.gamma,
        "synflow_iterations": args.synflow_iterations,
        "densities": {
            str(density): {
                label: {"kept": [s.kept for s in sel.layers], "collapsed": list(sel.collapsed),
                        "snip": float(snip_values[sel.mask.cpu().numpy()].sum()),
                        **({"solver": sel.result.summary()} if label == "COPS" else {})}
                for label, sel in rows[density].items()
            }
            for density in args.densities
        },
    }
    (out / "vgg16_cops.json").write_text(json.dumps(summary, indent=2, default=float))
    timed("write outputs", t0)
    total = time.perf_counter() - start
    print(f"wrote {png if plotted else '(no PNG: matplotlib not installed)'} and {out / 'vgg16_cops.json'}")
    print("times: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items())
          + f"; total {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
