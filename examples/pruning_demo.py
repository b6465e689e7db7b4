"""Real-model demo: COPS on a VGG-16 and on a 20-layer MLP, at initialisation.

What it does (``python examples/pruning_demo.py``; ``make demo`` runs it after the solver comparison):

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
   ``--out`` (default ``./demo_out/``). The VGG-16 itself is only pruned at the end (the
   COPS mask of the smallest density, to check that the pruned network still runs);
   scoring leaves it untouched;
5. layer collapse and layer floors (``--no-collapse`` skips it; about a second): a 20-layer
   ReLU MLP for 784-dimensional inputs (784 -> 100 x 19 -> 10, Kaiming-normal weights,
   zero biases; 259,400 prunable weights), scored with SNIP on generated batches and with
   one-shot SynFlow, at 1 % and 0.1 % (``--collapse-densities``). SNIP's top-k keeps no
   weight of the first layer (its 78,400 weights each score too little); one-shot SynFlow,
   alone or as COPS's secondary score, empties layers too. With per-layer floors
   (``min_per_layer`` of :func:`torch_adapter.select_mask`; ``--min-per-layer 2`` by
   default, at least 2 weights of every layer) SNIP alone and COPS keep every layer. Prints
   the kept counts per layer of SNIP, SNIP with floors, SynFlow, COPS and COPS with floors,
   the number of input-to-output paths through the kept weights (floors guarantee
   non-empty layers, not a connected path) and what the floors cost in kept SNIP score;
   writes ``mlp20_layer_collapse.png`` and ``mlp20_layer_collapse.json``.
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

import copslp

from torch_adapter.cops import Selection, select_mask
from torch_adapter.masks import apply_mask, current_mask, format_layer_table
from torch_adapter.scores import Score, snip, synflow

__all__ = ["vgg16", "deep_mlp", "generated_batches", "layer_collapse", "main", "DENSITIES",
           "COLLAPSE_DENSITIES"]

#: Kept fractions the demo compares.
DENSITIES = (0.01, 0.005, 0.001)
#: Channels of the 13 convolutions, "M" = 2x2 max pooling.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
INPUT_SHAPE = (3, 32, 32)
#: Kept fractions of the layer-collapse part (k = 2,594 and 259 of the 20-layer MLP's 259,400 weights).
COLLAPSE_DENSITIES = (0.01, 0.001)
#: Input size of the 20-layer MLP (a flattened 28x28 image).
MLP_INPUTS = 784


def _legend_entries(axes):
    """Handles and labels of all ``axes``, each label once, in order of appearance."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    return handles, labels

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


def deep_mlp(depth: int = 20, width: int = 100, *, inputs: int = MLP_INPUTS, num_classes: int = 10,
             seed: int = 0) -> nn.Sequential:
    """A ``depth``-layer ReLU MLP, freshly initialised: ``inputs -> width x (depth - 1) -> num_classes``.

    Linear layers ``fc1 .. fc{depth}`` with ReLU between them (``relu1 ..``); Kaiming-normal
    weights (fan-in, ReLU gain, as He et al. prescribe for deep ReLU networks) and zero
    biases. The default has 784*100 + 18*100*100 + 100*10 = 259,400 weights.
    """
    if depth < 2 or width < 1:
        raise ValueError(f"deep_mlp needs depth >= 2 and width >= 1, got depth={depth}, width={width}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sizes = [inputs] + [width] * (depth - 1) + [num_classes]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            if i > 1:
                layers[f"relu{i - 1}"] = nn.ReLU()
            linear = nn.Linear(n_in, n_out)
            nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(linear.bias)
            layers[f"fc{i}"] = linear
        model = nn.Sequential(layers)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def generated_batches(n_batches: int, batch_size: int, num_classes: int = 10, *, seed: int = 0,
                      input_shape: Sequence[int] = INPUT_SHAPE):
    """``n_batches`` pairs of standard-normal inputs (3x32x32 images by default) and uniform
    random labels."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn((batch_size, *input_shape), generator=generator),
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


def _min_per_layer(text: str) -> int | float:
    """``--min-per-layer``: ``"2"`` is a count, ``"0.001"`` a minimum density."""
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < value < 1:
            raise argparse.ArgumentTypeError(f"a density floor must lie in (0, 1), got {text}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count floor must be >= 0, got {text}")
    return value


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
    parser.add_argument("--no-collapse", action="store_true",
                        help="skip the layer-collapse part (20-layer MLP, SNIP vs COPS with layer floors)")
    parser.add_argument("--collapse-densities", type=float, nargs="+", default=list(COLLAPSE_DENSITIES),
                        help="kept fractions of the layer-collapse part (default: 0.01 0.001)")
    parser.add_argument("--min-per-layer", type=_min_per_layer, default=2,
                        help="layer floors of the layer-collapse part: an integer count per layer, or a "
                             "minimum density in (0, 1) such as 0.001 (default 2)")
    args = parser.parse_args(argv)
    for density in args.collapse_densities:
        if not 0 < density <= 1:
            parser.error(f"--collapse-densities must lie in (0, 1], got {density}")
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
            f"(bound {100 * gamma:.0f}%), lambda = {res.multipliers[0]:.4g}, rounding loss {res.rounding_loss:.3g}, "
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
    handles, labels = _legend_entries(axes[0])
    labels = [lab if lab != "collapsed" else "collapsed layer (density 0)" for lab in labels]
    handles.append(axes[0][0].get_lines()[-1])  # the dashed overall density
    labels.append("overall density")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle("VGG-16 at initialisation: per-layer density of SNIP, SynFlow and COPS masks")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


#: Column labels of the layer-collapse part, in table order.
COLLAPSE_LABELS = ("SNIP", "SNIP + floors", "SynFlow", "COPS", "COPS + floors")


def layer_collapse(
    model: nn.Module,
    batches,
    *,
    density: float = 0.001,
    min_per_layer: int | float = 2,
    gamma: float = 0.9,
) -> dict[str, Selection]:
    """The masks of the layer-collapse part, all of the same size k, on ``model`` (untouched).

    Returns ``{"SNIP": top-k of SNIP, "SNIP + floors": the best k by SNIP with at least
    ``min_per_layer`` kept in every layer (see :func:`torch_adapter.layer_floors`),
    "SynFlow": top-k of one-shot SynFlow, "COPS": SNIP subject to SynFlow >= gamma * best,
    "COPS + floors": COPS with the floors}``. The input shape SynFlow needs is read off the
    first Linear layer.
    """
    s_snip = snip(model, nn.CrossEntropyLoss(), batches)
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    s_flow = synflow(model, (first.in_features,))
    return {
        "SNIP": select_mask(s_snip, budget=density),
        "SNIP + floors": select_mask(s_snip, budget=density, min_per_layer=min_per_layer),
        "SynFlow": select_mask(s_flow, budget=density),
        "COPS": select_mask([s_snip, s_flow], budget=density, gamma=gamma, method="analytic"),
        "COPS + floors": select_mask([s_snip, s_flow], budget=density, gamma=gamma, method="analytic",
                                     min_per_layer=min_per_layer),
    }


def _summary_head(model: str, device, layout, gamma: float) -> dict:
    """The fields every JSON summary of the demo starts with."""
    return {"model": model, "device": str(device), "prunable": len(layout), "layers": list(layout.layer_names),
            "layer_sizes": [int(n) for n in layout.layer_sizes], "gamma": gamma}


def _floors_text(min_per_layer: int | float) -> str:
    if isinstance(min_per_layer, int):
        return f"at least {min_per_layer} weight{'s' if min_per_layer != 1 else ''} of every layer"
    return f"at least {100 * min_per_layer:g}% of every layer (rounded up)"


def _plot_collapse(path: Path, tables: dict[float, dict[str, Selection]]) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    first = next(iter(tables.values()))["COPS + floors"]
    names = [s.name for s in first.layers]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, len(tables), figsize=(max(6.0, 0.3 * len(names) + 1) * len(tables), 4.8),
                             sharey=True, squeeze=False)
    styles = {"SNIP": ("tab:blue", "o"), "SNIP + floors": ("tab:cyan", "v"), "SynFlow": ("tab:orange", "s"),
              "COPS": ("tab:green", "^"), "COPS + floors": ("tab:purple", "D")}
    for ax, (density, rows) in zip(axes[0], tables.items()):
        for label, (color, marker) in styles.items():
            ax.plot(x, [s.kept for s in rows[label].layers], color=color, marker=marker, markersize=4, lw=1.2,
                    label=label)
        dead = sorted({i for label in styles for i, s in enumerate(rows[label].layers) if s.kept == 0})
        if dead:
            ax.scatter(x[dead], np.zeros(len(dead)), color="red", marker="x", s=70, zorder=3,
                       label="collapsed layer (0 kept)")
        ax.step(x, rows["COPS + floors"].floors, where="mid", color="grey", ls="--", lw=0.9, label="floor")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=-0.3)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=90, fontsize=8)
        ax.set_title(f"density {100 * density:g}% (k = {rows['SNIP'].result.budget:,})", fontsize=10)
    axes[0][0].set_ylabel("weights kept per layer (0, then log)")
    handles, labels = _legend_entries(axes[0])
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle("20-layer MLP at initialisation: weights kept per layer by SNIP, SynFlow and COPS, "
                 "with and without layer floors", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _input_output_paths(selection: Selection) -> float:
    """Number of input-to-output paths through the kept weights of a plain chain of Linear layers.

    ``1^T M_L ... M_1 1`` with ``M_l`` the 0/1 mask of layer l (in float64; it may be huge).
    """
    reach = None
    for mask in selection.layout.split(selection.mask.to(torch.float64)):
        reach = mask.sum(dim=1) if reach is None else mask @ reach
    return float(reach.sum())


def _collapse_part(args: argparse.Namespace, device: torch.device, out: Path, timed) -> None:
    """Part 5: a 20-layer MLP that SNIP collapses, and masks with layer floors that keep every layer."""
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # a small model: more intra-op threads only cost time (and a lot on a busy CPU)
    tables: dict[float, dict[str, Selection]] = {}
    try:
        model = deep_mlp(seed=args.seed).to(device)
        data = generated_batches(args.batches, args.batch_size, seed=args.seed, input_shape=(MLP_INPUTS,))
        for density in args.collapse_densities:
            try:
                tables[density] = layer_collapse(model, data, density=density, min_per_layer=args.min_per_layer,
                                                 gamma=args.gamma)
            except copslp.InfeasibleError as exc:
                print(f"\nLayer collapse at density {100 * density:g}%: no mask meets the floors (--min-per-layer "
                      f"{args.min_per_layer}) and the SynFlow bound (--gamma {args.gamma}): {exc}")
    finally:
        torch.set_num_threads(threads)
    timed("layer collapse", t0)
    if not tables:
        return

    layout = next(iter(tables.values()))["SNIP"].layout
    print(f"\nLayer collapse: a 20-layer MLP (784 -> 100 x 19 -> 10, ReLU, Kaiming-normal, zero biases) at "
          f"initialisation, D = {len(layout):,}; SNIP on the generated batches, one-shot SynFlow; COPS keeps "
          f"SynFlow >= {100 * args.gamma:.0f}% of the best; floors: {_floors_text(args.min_per_layer)}")
    paths: dict[float, dict[str, float]] = {}
    for density, rows in tables.items():
        floored = rows["COPS + floors"]
        print()
        print(format_layer_table({label: rows[label].layers for label in COLLAPSE_LABELS},
                                 title=f"density {100 * density:g}%: k = {floored.result.budget:,} of {len(layout):,} "
                                       f"weights, floors {int(floored.floors.sum())} of them (kept count (density) "
                                       f"per layer; ! = layer collapsed)"))
        for label in COLLAPSE_LABELS:
            collapsed = rows[label].collapsed
            print(f"  {label} " + (f"collapses {len(collapsed)} of {layout.n_layers} layers: {', '.join(collapsed)}"
                                   if collapsed else "keeps every layer"))
        paths[density] = {label: _input_output_paths(sel) for label, sel in rows.items()}
        print("  input-to-output paths through the kept weights: "
              + ", ".join(f"{label} {n:.3g}" for label, n in paths[density].items()))
        for label, without in (("SNIP + floors", rows["SNIP"]), ("COPS + floors", rows["COPS"])):
            sel = rows[label]
            met = all(s.kept >= f for s, f in zip(sel.layers, sel.floors))
            cost = 1 - sel.result.objective / without.result.objective
            print(f"  {label}: every floor met: {met}; certificate passed: {sel.result.certificate.passed}; "
                  f"kept SNIP (LP objective) {sel.result.objective:.6g} vs {without.result.objective:.6g} without "
                  f"floors ({100 * cost:.2f}% less); solve {sel.result.wall_time:.2f} s")
    print("(paths = 0: the pruned network's output does not depend on its input. A collapsed layer forces 0; "
          "floors keep every layer non-empty, which is necessary for a path but does not by itself make one.)")

    t0 = time.perf_counter()
    png = out / "mlp20_layer_collapse.png"
    plotted = _plot_collapse(png, tables)
    summary = {
        **_summary_head("20-layer MLP 784-100x19-10, ReLU, Kaiming-normal, zero biases, at initialisation",
                        device, layout, args.gamma),
        "min_per_layer": args.min_per_layer,
        "densities": {
            str(density): {
                "budget": rows["SNIP"].result.budget,
                "floors": [int(f) for f in rows["COPS + floors"].floors],
                "masks": {
                    label: {"kept": [s.kept for s in sel.layers], "collapsed": list(sel.collapsed),
                            "objective": sel.result.objective, "input_output_paths": paths[density][label],
                            **({"solver": sel.result.summary()} if label != "SNIP" and label != "SynFlow" else {})}
                    for label, sel in rows.items()
                },
            }
            for density, rows in tables.items()
        },
    }
    (out / "mlp20_layer_collapse.json").write_text(json.dumps(summary, indent=2, default=float))
    timed("layer collapse outputs", t0)
    print(f"wrote {png if plotted else '(no PNG: matplotlib not installed)'} and {out / 'mlp20_layer_collapse.json'}")


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
            selection = select_mask(s_snip, budget=density)
        elif label == "SynFlow":
            selection = select_mask(flows[density], budget=density)
        else:
            selection = select_mask([s_snip, flows[density]], budget=density, gamma=args.gamma, method="analytic")
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
    kept = int(current_mask(model, layout).sum())
    print(f"\nCOPS mask of density {100 * smallest:g}% applied as a mask parametrization: "
          f"{kept:,} weights kept; a forward pass gives finite logits: {bool(torch.isfinite(logits).all())}")

    t0 = time.perf_counter()
    png = out / "vgg16_layer_densities.png"
    plotted = _plot(png, args.densities, rows, layer_names)
    snip_values = s_snip.numpy()
    summary = {
        **_summary_head("VGG-16 (BatchNorm), 32x32x3, at initialisation", device, layout, args.gamma),
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
    print(f"wrote {png if plotted else '(no PNG: matplotlib not installed)'} and {out / 'vgg16_cops.json'}")

    if not args.no_collapse:
        _collapse_part(args, device, out, timed)
    total = time.perf_counter() - start
    print("times: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items())
          + f"; total {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
