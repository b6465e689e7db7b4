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
    return ["--datasets", "digits", "--networks", "lenet300", "--methods", "snip", "cops-0.9",
            "--densities", "0.05", "--seeds", "0", "--epochs", "1", "--out", str(out), "--no-progress", *extra]


# ------------------------------------------------------------------------- the runner
def test_runner_writes_records_tables_and_plot_and_resumes(tmp_path, capsys):
    assert train.main(tiny_argv(tmp_path)) == 0
    payload = json.loads((tmp_path / "train.json").read_text())
    runs = payload["runs"]
    assert [r["method"] for r in runs] == ["snip", "cops-0.9"]
    for run in runs:
        assert run["status"] == "ok"
        assert 0.0 <= run["test_accuracy"] <= 1.0
        size = 64 * 300 + 300 * 100 + 100 * 10
        assert run["size"] == size and run["budget"] == round(0.05 * size)
        assert sum(layer["kept"] for layer in run["layers"]) == run["budget"]
        assert run["train_time"] > 0 and run["solve_time"] > 0
    assert set(runs[1]["score_times"]) == {"snip", "synflow"}
    assert payload["machine"]["copslp_commit"] and payload["machine"]["versions"]["torch"]
    assert payload["configs"]["digits/lenet300"]["epochs"] == 1
    text = (tmp_path / "train.txt").read_text()
    assert "lenet300 on digits" in text and "cops-0.9" in text and text.strip() in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert (tmp_path / "train.png").stat().st_size > 0

    # --from-json measures nothing and prints the same tables
    capsys.readouterr()
    assert train.main(["--from-json", str(tmp_path / "train.json"), "--out", str(tmp_path / "again")]) == 0
    assert "lenet300 on digits" in capsys.readouterr().out and (tmp_path / "again" / "train.png").is_file()

    # --resume: nothing left to do, the records are kept as they were
    assert train.main(tiny_argv(tmp_path, "--resume")) == 0
    assert json.loads((tmp_path / "train.json").read_text())["runs"] == runs
    # other settings refuse to resume into the same file
    with pytest.raises(ValueError, match="--resume.*digits/lenet300"):
        train.main(tiny_argv(tmp_path, "--resume", "--lr", "0.5"))


def test_the_command_names_missing_data_and_exits_2(tmp_path, capsys):
    argv = ["--datasets", "fashion-mnist", "--networks", "lenet300", "--out", str(tmp_path), "--no-progress"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "'fashion-mnist'" in err and "--data-dir" in err
    assert train.main(argv + ["--data-dir", str(tmp_path)]) == 2
    assert "FashionMNIST/raw/train-images-idx3-ubyte" in capsys.readouterr().err


def test_quick_and_demo_presets():
    quick = train.parse_args(["--quick"])
    assert quick.datasets == ["digits"] and quick.seeds == [0] and len(quick.densities) == 2
    demo = train.parse_args(["--demo"])
    assert demo.networks == ["lenet300"] and demo.datasets == ["mnist-subset"] and len(demo.densities) == 2
    assert {"snip", "synflow", "cops-0.9", "freezenet"} <= set(demo.methods)
    with pytest.raises(SystemExit):
        train.parse_args(["--quick", "--demo"])
    with pytest.raises(SystemExit):
        train.parse_args(["--densities", "0"])


def test_a_run_is_reproducible(digits):
    config = train.TrainConfig(epochs=1)
    first = train.run_one("lenet300", digits, "grasp", 0.05, 3, config)
    again = train.run_one("lenet300", digits, "grasp", 0.05, 3, config)
    other = train.run_one("lenet300", digits, "grasp", 0.05, 4, config)
    assert first["test_accuracy"] == again["test_accuracy"] and first["train_loss"] == again["train_loss"]
    assert first["layers"] == again["layers"]
    assert first["train_loss"] != other["train_loss"]


def test_an_infeasible_cops_problem_is_recorded_not_trained(digits, monkeypatch):
    strict = train_methods.Method("cops-impossible", "all of the budget in floors, SynFlow at its best", ("snip", "synflow"),
                                  {"gamma": 1.0, "min_per_layer": 0.05})
    monkeypatch.setitem(train_methods.METHODS, strict.name, strict)
    record = train.run_one("lenet300", digits, "cops-impossible", 0.05, 0, train.TrainConfig(epochs=1))
    assert record["status"] == "infeasible" and "test_accuracy" not in record
    assert record["message"]


def test_a_method_can_apply_its_mask_its_own_way(digits, monkeypatch):
    calls = []

    def apply(model, selection, mode):
        calls.append(mode)
        return apply_mask(model, selection.mask, selection.layout, mode=mode, on_collapse="ignore")

    method = train_methods.Method("magnitude-own-apply", "magnitude, applied by a hook", ("magnitude",),
                                  mode="freeze", apply=apply)
    monkeypatch.setitem(train_methods.METHODS, method.name, method)
    record = train.run_one("lenet300", digits, method.name, 0.05, 0, train.TrainConfig(epochs=1))
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
    train.train(model, digits, train.TrainConfig(epochs=1), seed=0)
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
    assert {"random", "magnitude", "snip", "grasp", "synflow", "cops-0.5", "cops-0.9", "cops-0.9-floors",
            "freezenet"} <= set(methods)
    assert methods["freezenet"].mode == "freeze" and methods["freezenet"].scores == ("snip",)
    assert methods["cops-0.9"].scores == ("snip", "synflow") and methods["cops-0.9"].options == {"gamma": 0.9}


def test_the_related_methods_plug_in_as_entries(digits):
    methods = train_methods.METHODS
    assert {"synflow-rescaled", "cops-0.9-rescaled", "interspace-snip", "interspace-cops-0.9"} <= set(methods)
    assert not {"synflow-rescaled", "interspace-snip"} & set(train_methods.DEFAULT_METHODS)  # run when named
    record = train.run_one("lenet300", digits, "cops-0.9-rescaled", 0.05, 0, train.TrainConfig(epochs=1))
    assert record["status"] == "ok" and sum(layer["kept"] for layer in record["layers"]) == round(0.05 * record["size"])
    with pytest.raises(ValueError, match="no nn.Conv2d"):  # interspace pruning needs convolutions (lenet5)
        train.run_one("lenet300", digits, "interspace-snip", 0.05, 0, train.TrainConfig(epochs=1))


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
def test_stratified_split_is_fixed_and_per_class():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train_idx, test_idx = train_data.stratified_split(labels, 0.2)
    assert np.bincount(labels[test_idx]).tolist() == [2, 4, 6]
    assert np.intersect1d(train_idx, test_idx).size == 0 and train_idx.size + test_idx.size == 60
    again = train_data.stratified_split(labels, 0.2)
    assert np.array_equal(again[0], train_idx) and np.array_equal(again[1], test_idx)


def test_digits_are_standardised_with_the_training_statistics(digits):
    assert digits.input_shape == (1, 8, 8) and digits.classes == 10
    assert digits.train_y.numel() + digits.test_y.numel() == 1797
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
    images = {"train": rng.integers(0, 256, (12, 28, 28)), "t10k": rng.integers(0, 256, (6, 28, 28))}
    labels = {"train": np.arange(12) % 10, "t10k": np.arange(6)}
    for part in ("train", "t10k"):
        _write_idx(raw / f"{part}-images-idx3-ubyte", images[part], compress)
        _write_idx(raw / f"{part}-labels-idx1-ubyte", labels[part], compress)
    data = train_data.load("mnist", tmp_path)
    assert data.input_shape == (1, 28, 28) and data.classes == 10
    assert data.train_y.tolist() == labels["train"].tolist() and data.test_y.tolist() == labels["t10k"].tolist()
    scaled = images["train"] / 255.0
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
        batch = {b"data": np.full((2, 3072), 10 * i, dtype=np.uint8), b"labels": [i % 10, (i + 1) % 10]}
        (folder / stem).write_bytes(pickle.dumps(batch))
    data = train_data.load("cifar10", tmp_path)
    assert data.input_shape == (3, 32, 32) and data.train_y.numel() == 10 and data.test_y.tolist() == [5, 6]
