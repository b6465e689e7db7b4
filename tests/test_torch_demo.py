"""The real-model demo (examples/pruning_demo.py): its VGG-16, and one short run end to end."""

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
pytest.importorskip("copslp")

from torch_adapter import Layout  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import pruning_demo as demo  # noqa: E402


def test_vgg16_shape():
    model = demo.vgg16()
    layout = Layout.from_model(model)
    assert layout.n_layers == 16  # 13 convolutions + 3 linear layers
    assert [e.module_type for e in layout.entries].count("Conv2d") == 13
    assert len(layout) == 15_239_872
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 13
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # initialisation is reproducible and leaves the global random state alone
    state = torch.get_rng_state()
    assert torch.equal(demo.vgg16(seed=1).features.conv1_1.weight, demo.vgg16(seed=1).features.conv1_1.weight)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.slow
def test_demo_runs_and_writes_its_outputs(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), "--densities", "0.001", "--batches", "1", "--batch-size", "4",
                      "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "density 0.1%" in printed and "times:" in printed
    assert (tmp_path / "vgg16_layer_densities.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "vgg16_cops.json").read_text())
    row = summary["densities"]["0.001"]
    k = round(0.001 * summary["prunable"])
    for label in ("SNIP", "SynFlow", "COPS"):
        kept = row[label]["kept"]
        assert len(kept) == len(summary["layer_sizes"]) and sum(kept) == k
        assert all(0 <= n <= size for n, size in zip(kept, summary["layer_sizes"]))
        assert row[label]["collapsed"] == [name for name, n in zip(summary["layers"], kept) if n == 0]
    solver = row["COPS"]["solver"]
    assert solver["certificate_passed"] and solver["budget"] == k
    # the COPS mask holds SynFlow at its bound (gamma of the best) and keeps at most SNIP-only's SNIP
    assert solver["mask_bound_values"][0] >= solver["thresholds"][0] * (1 - 1e-9)
    assert solver["mask_meets_bounds"]
    assert row["COPS"]["snip"] <= row["SNIP"]["snip"] * (1 + 1e-12)
