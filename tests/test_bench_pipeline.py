"""Keep bench/pipeline.py working on tiny sizes: its runs give the masks of the baseline loops,
its checks can fail, and it writes what it promises. No timing assertions."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def pipeline():
    sys.path.insert(0, str(BENCH))
    return runpy.run_path(str(BENCH / "pipeline.py"), run_name="copslp_bench")


def spec(tmp_path, model, task, variant, dtype="float64", **changes):
    base = {"model": model, "dtype": dtype, "task": task, "variant": variant, "width": 0.25, "rounds": 4,
            "density": 0.05, "batch": 6, "chunk": 4, "gamma": 0.5, "threads": 1, "scratch": str(tmp_path)}
    return {**base, **changes}


@pytest.mark.parametrize("model, task, dtype", [
    ("lenet300", "synflow", "float32"), ("resnet20", "synflow", "float64"), ("vgg16", "synflow", "float64"),
    ("resnet20", "snip", "float32"), ("resnet20", "grasp", "float64"), ("lenet300", "cops", "float64"),
])
def test_ours_and_the_baseline_give_the_same_mask(pipeline, tmp_path, model, task, dtype):
    width = 1 / 16 if model == "vgg16" else 0.25
    ours = pipeline["measured"](spec(tmp_path, model, task, "ours", dtype, width=width))
    baseline = pipeline["measured"](spec(tmp_path, model, task, "baseline", dtype, width=width))
    size = ours["size"]
    assert ours["kept"] == baseline["kept"] == size - int((1.0 - 0.05) * size)
    assert ours["mask_bits"] == baseline["mask_bits"]
    assert not baseline.get("tied_rounds")  # no ties here (the spec does not ask to count them)
    assert ours["seconds"] > 0 and set(ours["parts"]) >= {"scoring", "selection"}


def test_the_baseline_loop_is_the_reference_loop(pipeline):
    """The bench's baseline is the SynFlow authors' loop of tests/test_torch_iterative.py."""
    from test_torch_iterative import reference_iterative_synflow

    sys.path.insert(0, str(BENCH))
    import models

    model, shape, _ = models.build("resnet20", width=0.25)
    model.eval()
    mask, _ = pipeline["baseline_synflow"](model, shape, torch.float64, 0.05, 5)
    expected, _, _ = reference_iterative_synflow(model, shape, 0.05, 5, torch.float64)
    assert torch.equal(mask, expected)


def test_chunked_grasp_and_the_report(pipeline, tmp_path):
    out = tmp_path / "out"
    status = pipeline["main"](["--tiny", "--models", "lenet300", "--dtypes", "float64", "--tasks", "grasp",
                               "--out", str(out)])
    assert status == 0
    payload = json.loads((out / "pipeline.json").read_text())
    text = (out / "pipeline.txt").read_text()
    assert any(line.startswith("PASS GraSP chunk_size=3") for line in payload["checks"])
    assert any("same masks: lenet300 float64 grasp" in line for line in payload["checks"])
    assert any("grasp: ours / baseline" in line for line in payload["targets"])
    assert "peak memory chunked" in text and payload["command"].startswith("python bench/pipeline.py --tiny")
    assert {r["variant"] for r in payload["runs"]} == {"baseline", "ours", "chunked"}


def test_a_different_mask_is_reported_and_fails(pipeline, tmp_path):
    args = pipeline["parse_args"](["--tiny"])
    run = {"model": "lenet300", "dtype": "float32", "task": "snip", "seconds": 1.0, "peak_extra_bytes": 1,
           "parts": {}, "size": 16, "kept": 2}
    runs = [{**run, "variant": "baseline", "mask_bits": "c000", "tied_rounds": {"1": 3, "4": 1}},
            {**run, "variant": "ours", "mask_bits": "a000"}]
    _, checks, targets, failures = pipeline["summarise"](runs, args)
    assert failures == 1 and checks[0].startswith("DIFFERENT masks")
    assert "dropped every score tied at its threshold, 4 more than its count in all (round 1: 3, round 4: 1)" \
        in checks[0]
    np.testing.assert_equal(len(targets), 2)  # the time ratio and the peak memory line


def test_the_float32_chunk_check_uses_float32s_own_distance_from_float64(pipeline, tmp_path):
    """Chunked GraSP in float32 is held to the float32 unchunked score's distance from the
    float64 one (when float64 ran), in float64 to 1e-6; the line says which tolerance it used."""
    args = pipeline["parse_args"](["--tiny"])
    wide = np.linspace(-1.0, 1.0, 16)
    run = {"model": "lenet300", "task": "grasp", "seconds": 1.0, "peak_extra_bytes": 1, "parts": {}, "size": 16,
           "kept": 2, "mask_bits": "c000"}

    def runs_with(chunked_error):
        files = {("float64", "ours"): wide, ("float64", "chunked"): wide + 1e-9,
                 ("float32", "ours"): wide + 2e-5, ("float32", "chunked"): wide + 2e-5 + chunked_error}
        runs = []
        for (dtype, variant), values in files.items():
            path = tmp_path / f"{dtype}-{variant}-{chunked_error}.npy"
            np.save(path, values)
            runs.append({**run, "dtype": dtype, "variant": variant, "scores_path": str(path)})
        return [line for line in pipeline["summarise"](runs, args)[1] if "chunk_size" in line]

    near, far = runs_with(1e-5), runs_with(3e-5)
    assert near[0].startswith("PASS") and "float64, max |difference| / max |score| = 1.00e-09 (<= 1.00e-06)" in near[0]
    assert near[1].startswith("PASS") and "= 1.00e-05 (<= 2.00e-05, the float32 unchunked score's own distance" \
        in near[1]
    assert far[1].startswith("FAIL") and "= 3.00e-05 (<= 2.00e-05" in far[1]
