"""Bytes of a pruned VGG-16 (CIFAR shape, 14.7M prunable weights) saved three ways.

    python bench/export_sizes.py [--network vgg16] [--densities 0.1 0.01 0.001]

For each density, a random mask (the bytes depend on how many weights are kept, not which)
is applied in mask mode and ``torch.save`` writes, into memory:

* ``dense``: the unpruned model's state_dict (what ``make_permanent`` gives: zeros stored);
* ``pruned state_dict``: the pruned model's own state_dict (the stored values and one bool
  mask per tensor, what :func:`torch_adapter.load_pruned` reads);
* ``export_sparse``: the kept values and their positions (bitmap or int32 indices, the
  smaller, per tensor), with the rest of the state dense.

Prints a Markdown table: bytes, and the export's share of the dense bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.models import build  # noqa: E402
from torch_adapter import Layout, apply_mask, export_sparse, serialized_bytes  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="vgg16")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.01, 0.001])
    args = parser.parse_args(argv)
    model, _, _ = build(args.network)
    layout = Layout.from_model(model)
    dense = serialized_bytes(model.state_dict())
    print(f"{args.network}: D = {len(layout):,} prunable weights, {sum(p.numel() for p in model.parameters()):,} "
          f"parameters; dense state_dict {dense:,} bytes")
    print("| density | kept | dense state_dict | pruned state_dict | export_sparse | export / dense | encodings |")
    print("|---|---|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    for density in args.densities:
        pruned, _, _ = build(args.network)
        kept = max(1, round(density * len(layout)))
        mask = torch.zeros(len(layout), dtype=torch.bool)
        mask[torch.randperm(len(layout), generator=generator)[:kept]] = True
        apply_mask(pruned, mask, layout, on_collapse="ignore")
        exported = export_sparse(pruned)
        encodings = sorted({stored["encoding"] for stored in exported["sparse"].values()})
        size = serialized_bytes(exported)
        print(f"| {density:g} | {kept:,} | {dense:,} | {serialized_bytes(pruned.state_dict()):,} | {size:,} | "
              f"{size / dense:.2%} | {', '.join(encodings)} |")


if __name__ == "__main__":
    main()
