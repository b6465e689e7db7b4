"""Keep the benchmark scripts of bench/ working: tiny runs, no timing assertions.

The scripts are loaded with ``runpy.run_path`` and their ``main(argv)`` is called, as
``python bench/NAME.py`` / ``python -m bench.NAME`` do. What is checked is that they run, write what they promise, and that every
method that finished agrees with analytic; never how fast anything was.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import _common as common  # noqa: E402

import copslp  # noqa: E402

FINISHED = {"ok", "timed_out", "skipped", "not_applicable"}


def load(script: str) -> dict:
    return runpy.run_path(str(BENCH / f"{script}.py"), run_name="copslp_bench")


# ------------------------------------------------------------------------- helpers
def test_size_grid_is_logarithmic():
    scaling = load("scaling")
    assert scaling["size_grid"](1e3, 1e5, 1) == [1000, 10000, 100000]
    assert scaling["size_grid"](1e3, 1e4, 2) == [1000, 3162, 10000]
    assert scaling["size_grid"](1e3, 1e8, 2)[-1] == 10 ** 8


def test_loglog_slope_recovers_a_power_law():
    sizes = [1e3, 1e4, 1e5, 1e6]
    slope, n = common.loglog_slope(sizes, [2e-9 * d ** 1.5 for d in sizes], min_size=1e4)
    assert n == 3 and slope == pytest.approx(1.5)
    assert common.loglog_slope([1e3], [1.0]) == (None, 1)


@pytest.mark.parametrize("family", common.FAMILIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generated_scores_are_deterministic(family, dtype):
    a = common.make_scores(family, 3, 5000, seed=1, dtype=dtype)
    b = common.make_scores(family, 3, 5000, seed=1, dtype=dtype)
    assert a.shape == (3, 5000) and a.dtype == dtype
    assert np.array_equal(a, b) and common.checksum(a) == common.checksum(b)
    assert np.isfinite(a).all() and (a >= 0).all()
    assert not np.array_equal(a, common.make_scores(family, 3, 5000, seed=2, dtype=dtype))


def test_lognormal_scores_are_heavy_tailed_and_correlated():
    s = common.make_scores("lognormal", 2, 100_000)
    corr = np.corrcoef(np.log(s[0]), np.log(s[1]))[0, 1]
    assert corr == pytest.approx(common.LOGNORMAL_RHO, abs=0.02)
    assert s[0].max() / np.median(s[0]) > 1e3


def test_layered_groups_cover_every_element():
    groups, scale = common.layered_groups(10_000, 50, 2, spread=1.0)
    assert groups.shape == (10_000,) and np.all(np.diff(groups) >= 0)
    assert np.bincount(groups).min() >= 1 and groups.max() == 49
    assert scale.shape == (2, 50) and (scale >= 0.1).all() and (scale <= 10).all()


def test_worker_kills_a_run_over_its_budget_and_keeps_the_others():
    spec = {"family": "uniform", "n_scores": 2, "size": 30_000, "dtype": "float64", "seed": 0,
            "budget": 1500, "gamma": 0.9, "methods": ["partition", "highs", "analytic"], "repeats": 1,
            "options": {"highs": {"solver": "ipm", "presolve": "off"}}}
    with common.Worker() as worker:
        report = worker.run(spec, budgets={"partition": 60, "highs": 0.01, "analytic": 60})
        assert report.outcomes["partition"].status == "ok"
        assert report.outcomes["highs"].status == "timed_out"
        assert report.outcomes["analytic"].status == "pending"  # the worker died before it
        again = worker.run(dict(spec, methods=["analytic"]), budgets={"analytic": 60})
    assert again.outcomes["analytic"].status == "ok"
    assert again.ready["checksum"] == report.ready["checksum"]  # the same arrays again
    run = again.outcomes["analytic"].runs[0]
    assert run["peak_rss"] > 0 and run["objective"] > 0


# ------------------------------------------------------------------------- scaling
def test_scaling_quick_on_tiny_sizes(tmp_path, capsys):
    rc = load("scaling")["main"](["--quick", "--max-d", "1e4", "--repeats", "1", "--out", str(tmp_path),
                                  "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "analytic/partition" in out and "slope" in out
    payload = json.loads((tmp_path / "scaling.json").read_text())
    for key in ("platform", "cpu_count", "versions"):
        assert key in payload["machine"]
    assert {"numpy", "scipy", "highspy"} <= set(payload["machine"]["versions"])
    points = payload["points"]
    methods = {p["method"] for p in points}
    assert set(copslp.available_methods()) | {"partition", "sort"} == methods
    assert {(p["family"], p["n_secondary"]) for p in points} == {(f, r) for f in common.FAMILIES for r in (1, 3)}
    assert {p["size"] for p in points} == {1000, 10000}
    for p in points:
        where = (p["family"], p["n_secondary"], p["size"], p["method"])
        assert p["status"] in FINISHED, (where, p.get("error"))
        if p["method"] in ("analytic", "partition", "sort"):
            assert p["status"] == "ok", where
            assert p["median_time"] > 0 and p["peak_rss"] > 0
        if p.get("rel_diff_vs_analytic") is not None:
            assert p["rel_diff_vs_analytic"] < 1e-6, where
        if "milp_within_lp_bounds" in p:
            assert p["milp_within_lp_bounds"], where
        if p["method"] == "two_score":
            assert p["status"] == ("ok" if p["n_secondary"] == 1 else "not_applicable")
    assert payload["analysis"]
    assert (tmp_path / "scaling.txt").exists()
    pytest.importorskip("matplotlib")
    for name in ("scaling_time.png", "scaling_ratio.png"):
        assert (tmp_path / name).stat().st_size > 1000


# ------------------------------------------------------------------------- targets
def test_targets_tiny(tmp_path, capsys):
    rc = load("targets")["main"](["--tiny", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.count("PASS") + out.count("FAIL") >= 9
    results = json.loads((tmp_path / "targets.json").read_text())["results"]
    names = {r["target"] for r in results}
    assert names == {"analytic_vs_highs", "analytic_vs_partition", "one_bound_within_3x_partition_idle",
                     "one_bound_within_3x_partition_busy", "one_bound_busy_vs_idle", "extra_memory_1e7_float32",
                     "memory_1e8_float32",
                     "floors_vs_no_floors_slack", "floors_vs_no_floors_binding", "plain_top_k_vs_argpartition_idle",
                     "plain_top_k_vs_argpartition_busy", "plain_top_k_busy_vs_idle", "select_mask_vs_argpartition"}
    # tiny sizes: PASS or FAIL says nothing about speed, but the exit status must report them
    assert rc == (0 if all(r["status"] == "PASS" for r in results) else 1)
    for r in results:
        assert r["status"] in ("PASS", "FAIL")
        if r["target"] == "memory_1e8_float32":
            assert r["peak_rss"] > 0
        else:
            assert r["ratio"] is not None and r["ratio"] > 0, r["line"]
        if "rel_diff" in r:
            assert r["rel_diff"] < 1e-6


# ------------------------------------------------------------------------- several bounds
def test_several_bounds_tiny(tmp_path, capsys):
    rc = load("several_bounds")["main"](["--tiny", "--out", str(tmp_path)])
    assert rc in (0, 1)  # tiny sizes: PASS or FAIL says nothing; it must run
    payload = json.loads((tmp_path / "several_bounds.json").read_text())
    names = {r["target"] for r in payload["results"]}
    assert names == {f"ratios {f} D/{d}" for f in common.FAMILIES for d in (20, 100)} | {
        f"{what} {f}" for what in ("highs", "infeasible") for f in common.FAMILIES} | {"memory"} | {
        f"small {f} 1e4" for f in common.FAMILIES} | {"reported 95% zeros D = 2.0e3",
                                                      "reported uniform D = 2.0e4, k = 1.00%"}
    for r in payload["results"]:
        assert r["status"] in ("PASS", "FAIL", "N/A")
        assert (r["status"] == "N/A") == bool(r.get("infeasible")), r["line"]  # N/A only for an infeasible problem
        if r["target"].startswith("infeasible"):
            assert "cannot all be met at once" in r["message"]
        if r["target"].startswith("highs"):
            assert r["ratio"] > 0
    assert len(payload["scaling"]) == 4 and payload["rounding"]
    for record in payload["rounding"]:  # copslp's mask meets every bound wherever the fractional entries did
        assert record["meets_now"] or not record["meets_fractional_only"]
    assert "rounding: the mask meets every bound" in capsys.readouterr().out


# ------------------------------------------------------------------------- real scores
@pytest.mark.torch
def test_models_have_the_documented_sizes():
    torch = pytest.importorskip("torch")
    models = load("models")
    from torch_adapter import Layout

    expected = {"vgg16": 14_715_584, "resnet18": 11_164_352, "resnet50": 25_502_912}
    for name, size in expected.items():
        with torch.device("meta"):
            model, shape, classes = models["build"](name)
        assert len(Layout.from_model(model)) == size
    model, shape, classes = models["build"]("resnet18", width=1 / 16)
    assert model(torch.zeros((2, *shape))).shape == (2, classes)


@pytest.mark.torch
def test_real_scores_tiny(tmp_path, capsys):
    pytest.importorskip("torch")
    rc = load("real_scores")["main"](["--tiny", "--models", "resnet18", "--out", str(tmp_path)])
    assert rc == 0
    assert "SynFlow" in capsys.readouterr().out
    payload = json.loads((tmp_path / "real_scores.json").read_text())
    assert [m["model"] for m in payload["models"]] == ["resnet18"]
    solves = payload["solves"]
    assert {s["problem"] for s in solves} == {"full", "subsample"}
    for s in solves:
        where = (s["problem"], s["method"])
        assert s["status"] in FINISHED, (where, s.get("error"))
        if s.get("rel_diff_vs_analytic") is not None:
            assert s["rel_diff_vs_analytic"] < 1e-6, where
    analytic = [s for s in solves if s["method"] == "analytic"]
    assert len(analytic) == 2 and all(s["status"] == "ok" for s in analytic)
    assert not list((tmp_path / "arrays").glob("*.npy"))  # arrays removed unless --keep-arrays


def test_sharded_tiny():
    """bench/sharded.py on a tiny D: every road agrees, and the sharded ranks with the one process."""
    pytest.importorskip("torch")
    import os
    import subprocess
    done = subprocess.run([sys.executable, str(BENCH / "sharded.py"), "--size", "4e5", "--ranks", "2", "--skip", "cuda"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    roads = ("  solve_tensors", "  passes", "  copslp")
    objectives = {line.split("objective")[1].split()[0] for line in done.stdout.splitlines()
                  if line.startswith(roads) and "objective" in line}
    assert len(objectives) == 1 and done.stdout.count("x partition") == 4, done.stdout  # four roads, one optimum
    assert "objectives agree: True" in done.stdout and done.stdout.count("sent") == 2
