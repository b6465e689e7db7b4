"""Library code prints nothing on stdout: every method that runs HiGHS, in a fresh process.

HiGHS writes its banner ("Running HiGHS ...") once per process, at the first call on a
``Highs`` whose output is still on; each case therefore runs in its own interpreter, and
its stdout is compared with the one line the script itself prints.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from copslp._registry import get_method

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import numpy as np, copslp
rng = np.random.default_rng(0)
scores = rng.random(({n}, 300))
try:
    copslp.solve(scores, 30, gamma={gamma}, method={method!r})
except copslp.InfeasibleError:
    pass
print("done")
"""

CASES = {
    "highs": dict(n=2, gamma=0.9, method="highs"),
    "milp": dict(n=2, gamma=0.9, method="milp"),
    "cvxpy": dict(n=2, gamma=0.9, method="cvxpy"),
    "scipy": dict(n=2, gamma=0.9, method="scipy"),
    # two bounds: the analytic method finishes with HiGHS on the survivors
    "analytic, two bounds": dict(n=3, gamma=0.9, method="analytic"),
    "analytic, two bounds, infeasible": dict(n=3, gamma=0.999, method="analytic"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_solving_prints_nothing_on_stdout(case):
    spec = CASES[case]
    for module in get_method(spec["method"]).requires:
        pytest.importorskip(module)
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(**spec)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
