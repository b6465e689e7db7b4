"""The demos of examples/ (``make demo``): the solver comparison run as a script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import copslp

ROOT = Path(__file__).resolve().parent.parent


def run_demo(*args):
    return subprocess.run([sys.executable, "examples/demo.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_solver_comparison_agrees_across_methods():
    done = run_demo("--size", "1500", "--no-torch")
    assert done.returncode == 0, done.stderr
    rows = {}
    for line in done.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in copslp.available_methods() and len(fields) == 7:
            rows[fields[0]] = fields
    assert set(rows) == set(copslp.available_methods())  # small enough for every method
    lp_optimum = float(rows["analytic"][1])
    for method, (_, objective, value, bound, rel_diff, mask_diff, seconds) in rows.items():
        assert float(value) >= float(bound) * (1 - 1e-6), method  # the bound holds
        if method == "milp":  # the binary optimum: at most the LP optimum, and close to it
            assert float(objective) <= lp_optimum * (1 + 1e-9) and float(rel_diff) < 1e-2
            continue
        limit = 1e-9 if method in ("analytic", "two_score") else 1e-6
        assert float(rel_diff) <= limit, (method, rel_diff)
        assert int(mask_diff) == 0, (method, mask_diff)  # the LP methods round to the same mask here


@pytest.mark.parametrize("size", ["-5", "0", "1", "2.5", "abc"])
def test_demo_size_is_checked(size):
    done = run_demo("--size", size, "--no-torch")
    assert done.returncode == 2 and done.stdout == ""
    assert "--size" in done.stderr and size in done.stderr


def test_sharded_demo_gives_the_single_process_mask():
    pytest.importorskip("torch")
    done = subprocess.run([sys.executable, "examples/sharded_demo.py", "--processes", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "the 2 shards' masks together are its mask: True" in done.stdout
    assert done.stdout.count("certified True") == 2
