"""Prune at initialisation, train, test: does a COPS mask train better than each score alone?

    python -m bench.train [--networks lenet300 lenet5] [--datasets mnist-subset]
                          [--densities 0.1 0.03 0.01 0.003 0.001] [--seeds 0 1 2]
                          [--methods ...] [--epochs N] [--resume] [--quick | --demo]

from the repository root (``python bench/train.py`` works too). For every (network, dataset,
method, density, seed) the network is built at initialisation (bench/train_networks.py,
weights drawn from the seed), the scores of the method are computed with torch_adapter on a
class-balanced batch of training images (``--score-samples`` per class, drawn from the
seed), the mask is selected (:func:`torch_adapter.select_mask`) and applied (pruned or, for
FreezeNet, frozen), and the network is trained and tested. The methods are the registry of
bench/train_methods.py.

Training (the same for every method): SGD with momentum 0.9, weight decay 5e-4 (also on the
pruned or frozen entries, where it has no effect), batch 64, learning rate 0.1 for
LeNet-300-100 and 0.01 for LeNet-5-Caffe and the 20-layer MLP (:data:`LEARNING_RATES`) with
a cosine schedule per step (or ``--schedule step``: x0.1 at 50% and 75% of the epochs), a
fixed number of epochs per dataset and network (:data:`EPOCHS`), cross-entropy loss. The
mask holds throughout: after training every run checks that the pruned weights are exactly
0 and the frozen weights exactly at their initial values, and fails otherwise. Test accuracy
is that of the last epoch (there is no model selection on the test set).

Runs are independent: everything a run draws comes from its seed (network, score batch,
random score, shuffling), and torch runs on ``--threads`` threads (default 1), so a rerun on
the same machine gives the same numbers. Results: ``--out`` (default bench/results/train)
gets ``train.json`` (the machine, versions and git commit, the settings, one record per run,
written after every run; ``--resume`` skips the runs already in it), ``train.txt`` (the
tables printed on stdout) and ``train.png`` (test accuracy against density, log axis, one
line per method, error bars: std over seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

if not __package__:  # run as a file (python bench/train.py): import the folder as the package bench
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _common as common  # noqa: E402
from bench import train_data, train_methods, train_networks, train_report  # noqa: E402

import copslp  # noqa: E402
from torch_adapter import Layout  # noqa: E402

__all__ = ["TrainConfig", "EPOCHS", "LEARNING_RATES", "run_one", "train", "evaluate", "mask_held", "main"]

#: Epochs per dataset and network (``--epochs`` overrides). On the MNIST subset they are sized
#: so that the full run (2 networks x 9 methods x 5 densities x 3 seeds) takes about 45
#: minutes on one CPU core: an epoch of LeNet-5-Caffe costs about 7 s there, one of
#: LeNet-300-100 about 1 s.
EPOCHS = {
    "mnist-subset": {"lenet300": 5, "lenet5": 2, "mlp20": 5},
    "digits": {"lenet300": 15, "lenet5": 15, "mlp20": 15},
    "mnist": {"lenet300": 20, "lenet5": 20, "mlp20": 20},
    "fashion-mnist": {"lenet300": 30, "lenet5": 30, "mlp20": 30},
    "cifar10": {"lenet300": 60, "lenet5": 60, "mlp20": 60},
}
#: Initial learning rate per network (``--lr`` overrides), one at which the *dense* network
#: trains: LeNet-5-Caffe dense stays at chance after 2 epochs at 0.1 on the MNIST subset
#: (10.0%) and reaches 93.4% at 0.01; the 20-layer MLP dense reaches 18% on digits at 0.1,
#: 97% at 0.01.
LEARNING_RATES = {"lenet300": 0.1, "lenet5": 0.01, "mlp20": 0.01}

FULL_DENSITIES = (0.1, 0.03, 0.01, 0.003, 0.001)
QUICK = {"networks": ["lenet300", "mlp20"], "datasets": ["digits"], "densities": [0.1, 0.01], "seeds": [0]}
DEMO = {"networks": ["lenet300"], "datasets": ["mnist-subset"], "densities": [0.01, 0.001], "seeds": [0],
        "methods": ["random", "snip", "synflow", "cops-0.9", "freezenet"]}


@dataclass(frozen=True)
class TrainConfig:
    """How every network is trained (identical for every method)."""

    epochs: int
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    score_samples: int = 10

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.score_samples < 1:
            raise ValueError(f"epochs, batch_size and score_samples must be >= 1, got {self}")
        if not (self.lr > 0 and 0 <= self.momentum < 1 and self.weight_decay >= 0):
            raise ValueError(f"need lr > 0, 0 <= momentum < 1 and weight_decay >= 0, got lr={self.lr}, "
                             f"momentum={self.momentum}, weight_decay={self.weight_decay}")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")

    def learning_rate(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based)."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / (self.epochs * steps_per_epoch)))
        epoch = step // steps_per_epoch
        return self.lr * 0.1 ** sum(epoch >= m * self.epochs for m in (0.5, 0.75))


# ----------------------------------------------------------------------------- one run
def score_batch(dataset: train_data.Dataset, per_class: int, seed: int) -> list:
    """One batch of ``per_class`` training images of every class, drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(dataset.classes):
        members = torch.nonzero(dataset.train_y == label).flatten()
        if members.numel() < per_class:
            raise ValueError(f"score_samples={per_class} but class {label} of {dataset.name} has "
                             f"{members.numel()} training images")
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]])
    index = torch.cat(chosen)
    return [(dataset.train_x[index], dataset.train_y[index])]


def train(model: nn.Module, dataset: train_data.Dataset, config: TrainConfig, seed: int) -> float:
    """Train in place (after the mask is applied); returns the mean loss of the last epoch.

    Training stops at the first loss that is not finite (the run diverged) and returns it.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    n = dataset.train_y.numel()
    steps_per_epoch = math.ceil(n / config.batch_size)
    model.train()
    step = 0
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, config.batch_size):
            index = order[start:start + config.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate(step, steps_per_epoch)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(dataset.train_x[index]), dataset.train_y[index])
            if not torch.isfinite(loss):
                model.eval()
                return float(loss.detach())
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * index.numel()
            step += 1
        last_loss = total / n
    model.eval()
    return last_loss


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, labels.numel(), batch_size):
        outputs = model(images[start:start + batch_size])
        correct += int((outputs.argmax(dim=1) == labels[start:start + batch_size]).sum())
    return correct / labels.numel()


def mask_held(model: nn.Module, layout: Layout, mask: torch.Tensor, initial: torch.Tensor, mode: str) -> bool:
    """Whether the unselected entries are exactly 0 (``mask``) or exactly ``initial`` (``freeze``)."""
    with torch.no_grad():
        values = layout.flatten([t.detach() for t in layout.values(model)])
        dropped = ~mask
        target = torch.zeros_like(values[dropped]) if mode == "mask" else initial[dropped]
        return bool(torch.equal(values[dropped], target))


def run_one(network: str, dataset: train_data.Dataset, method_name: str, density: float, seed: int,
            config: TrainConfig, computed_scores: dict | None = None) -> dict:
    """Build, score, prune, train and test one network; returns its JSON record.

    ``computed_scores`` (``name -> (Score, seconds)``, see :class:`train_methods.Problem`) may
    hold scores computed by an earlier run on the same network, dataset, density, seed and
    config; scores computed here are added to it. The numbers do not change (every score is
    a deterministic function of those), only the time: SynFlow's 100 rounds are computed once
    for the four methods that use it.

    ``status`` is ``"ok"``; ``"infeasible"`` for a method whose problem no k-mask solves (COPS
    bounds and floors; the solver's message is kept, nothing is trained); ``"diverged"`` when
    the training loss stopped being finite (no test accuracy then).
    """
    method = train_methods.get_method(method_name)
    model = train_networks.build(network, dataset.input_shape, dataset.classes, seed=seed)
    if method.prepare is not None:
        method.prepare(model)
    layout = Layout.from_model(model)
    record = {"network": network, "dataset": dataset.name, "method": method_name, "density": density,
              "seed": seed, "size": len(layout)}
    problem = train_methods.Problem(model, layout, nn.CrossEntropyLoss(),
                                    score_batch(dataset, config.score_samples, seed),
                                    dataset.input_shape, density, seed,
                                    computed={} if computed_scores is None else computed_scores)
    start = time.perf_counter()
    try:
        selection = method.select(problem)
    except copslp.InfeasibleError as exc:
        return {**record, "status": "infeasible", "message": str(exc), "score_times": problem.score_times,
                "scores_reused": problem.reused}
    select_time = time.perf_counter() - start
    initial = layout.flatten([t.detach().clone() for t in layout.values(model)])
    layers = method.apply_to(model, selection)
    start = time.perf_counter()
    last_loss = train(model, dataset, config, seed)
    train_time = time.perf_counter() - start
    diverged = not math.isfinite(last_loss)
    accuracy = None if diverged else evaluate(model, dataset.test_x, dataset.test_y)
    if not diverged and not mask_held(model, layout, selection.mask, initial, method.mode):
        raise RuntimeError(f"{network}/{method_name}/density {density}/seed {seed}: the {method.mode} "
                           "did not hold through training")
    result = selection.result
    return {**record, "status": "diverged" if diverged else "ok", "budget": result.budget,
            "test_accuracy": accuracy,
            "train_loss": last_loss,
            "layers": [{"name": s.name, "size": s.size, "kept": s.kept} for s in layers],
            "collapsed": [s.name for s in layers if s.collapsed],
            "score_times": problem.score_times, "scores_reused": problem.reused, "solve_time": result.wall_time,
            "select_time": select_time, "train_time": train_time,
            "solver": {"method": result.method, "mask_meets_bounds": result.mask_meets_bounds,
                       "objective": result.objective,
                       "mask_objective": result.mask_objective,
                       "multipliers": [float(x) for x in result.multipliers],
                       "certificate_passed": bool(result.certificate.passed)}}


# ----------------------------------------------------------------------------- the command
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=["lenet300", "lenet5"], choices=list(train_networks.NETWORKS))
    parser.add_argument("--datasets", nargs="+", default=["mnist-subset"], choices=list(train_data.DATASETS))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding MNIST / FashionMNIST / cifar-10-batches-py as torchvision stores them")
    parser.add_argument("--methods", nargs="+", default=list(train_methods.DEFAULT_METHODS),
                        choices=list(train_methods.METHODS))
    parser.add_argument("--densities", nargs="+", type=float, default=list(FULL_DENSITIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every dataset and network (default: EPOCHS per dataset and network)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None,
                        help="initial learning rate for every network (default: LEARNING_RATES per network)")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--schedule", choices=["cosine", "step"], default="cosine")
    parser.add_argument("--score-samples", type=int, default=10, help="images per class in the scores' batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results/train)")
    parser.add_argument("--resume", action="store_true", help="skip the runs already in OUT/train.json")
    parser.add_argument("--from-json", type=Path, default=None, help="run nothing: print and plot an earlier train.json")
    parser.add_argument("--no-progress", action="store_true")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true",
                       help="digits (8x8), LeNet-300-100 and the 20-layer MLP, densities 10%% and 1%%, one seed: "
                            "a minute or two")
    modes.add_argument("--demo", action="store_true",
                       help="real MNIST subset, LeNet-300-100, densities 1%% and 0.1%%, five methods, one seed")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEMO if args.demo else {}
    for name, value in preset.items():
        setattr(args, name, value)
    for density in args.densities:
        if not 0 < density <= 1:
            parser.error(f"--densities must be in (0, 1], got {density}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.out is None:
        args.out = common.RESULTS / ("train-quick" if args.quick else "train-demo" if args.demo else "train")
    return args


def _config(args, dataset: str, network: str) -> TrainConfig:
    return TrainConfig(epochs=args.epochs or EPOCHS[dataset][network], batch_size=args.batch_size,
                       lr=args.lr or LEARNING_RATES[network],
                       weight_decay=args.weight_decay, schedule=args.schedule, score_samples=args.score_samples)


def _key(record: dict) -> tuple:
    return (record["network"], record["dataset"], record["method"], float(record["density"]), int(record["seed"]))


def _read(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def _previous(path: Path, configs: dict) -> dict:
    """An earlier run's payload trained with the same settings (ValueError if they differ)."""
    if not path.is_file():
        return {}
    payload = _read(path)
    for name, config in configs.items():
        earlier = payload.get("configs", {}).get(name)
        if earlier is not None and earlier != config:
            raise ValueError(f"--resume: {path} trained {name} with {earlier}, not {config}; "
                             "use another --out or the same settings")
    return payload


def main(argv=None) -> int:
    args = parse_args(argv)
    json_path = args.out / "train.json"
    if args.from_json is not None:
        print(train_report.report(_read(args.from_json), args.out / "train.png"))
        return 0
    torch.set_num_threads(args.threads)
    configs = {f"{d}/{n}": asdict(_config(args, d, n)) for d in args.datasets for n in args.networks}
    previous = _previous(json_path, configs) if args.resume else {}
    runs = previous.get("runs", [])
    done = {_key(r) for r in runs}
    # seeds outermost: a run stopped early has every setting for its first seeds
    todo = [(n, d, m, p, s) for s in args.seeds for d in args.datasets for n in args.networks
            for p in args.densities for m in args.methods if (n, d, m, float(p), int(s)) not in done]
    machine = common.machine_description()
    machine["versions"].update({name: common.package_version(name) for name in ("mlxtend", "scikit-learn")})
    machine["torch_threads"] = torch.get_num_threads()
    machine["tree_modified"] = bool(common._git("status", "--porcelain", "--untracked-files=no"))
    payload = {"machine": machine, "configs": {**previous.get("configs", {}), **configs},
               "methods": {**previous.get("methods", {}),
                           **{name: train_methods.METHODS[name].summary() for name in args.methods}},
               "datasets": previous.get("datasets", {}), "runs": runs}
    if previous:
        payload["earlier_machines"] = previous.get("earlier_machines", []) + [previous["machine"]]
    print(f"{len(todo)} runs to do ({len(done)} already in {json_path})" if args.resume else f"{len(todo)} runs",
          file=sys.stderr)
    try:
        datasets = {name: train_data.load(name, args.data_dir) for name in dict.fromkeys(t[1] for t in todo)}
    except (ValueError, TypeError, OSError) as exc:
        print(f"python -m bench.train: {exc}", file=sys.stderr)
        return 2
    # the first optimiser imports torch._dynamo (seconds): do it before any run is timed
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    computed_key, computed = None, {}
    bar = common.progress(len(todo), "train", disable=args.no_progress)
    for network, dataset_name, method, density, seed in todo:
        if (network, dataset_name, density, seed) != computed_key:  # the runs come grouped
            computed_key, computed = (network, dataset_name, density, seed), {}
        dataset = datasets[dataset_name]
        payload["datasets"][dataset_name] = dataset.summary()
        bar.set_postfix_str(f"{network} {method} {100 * density:g}% seed {seed}")
        record = run_one(network, dataset, method, density, seed, _config(args, dataset_name, network), computed)
        payload["runs"].append(record)
        common.write_json(json_path, payload)
        bar.update()
    bar.close()
    common.write_json(json_path, payload)
    text = train_report.report(payload, args.out / "train.png")
    (args.out / "train.txt").write_text(text + "\n")
    print(text)
    print(f"\nwrote {json_path}, {args.out / 'train.txt'} and {args.out / 'train.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
