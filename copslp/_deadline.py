"""A hard time limit for a backend that checks its own only between iterations.

HiGHS reads its ``time_limit`` (and its interrupt callbacks) between iterations, and one
dual simplex iteration on this LP can take minutes at D = 1e5..1e6 (its bound-flipping ratio
test runs over every column). :func:`call_with_deadline` therefore runs the backend in a
fresh interpreter (nothing of this process, HiGHS's thread pool included, is inherited, and
the caller's script is not re-imported, so no ``if __name__ == "__main__"`` guard is needed)
and ends it when the deadline passes. The backend's own limit still applies inside; the
deadline only catches the runs that overshoot it.

The child receives the validated problem (one pickled copy of the scores, through a file in
a temporary folder) and writes back the method's :class:`~copslp._result.LPSolution` or the
exception it raised.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ._errors import SolverError

__all__ = ["call_with_deadline", "deadline_for"]

#: What the child may take beyond the backend's own limit: a fraction of the limit plus the
#: start of a fresh interpreter (about a second with numpy, scipy and highspy).
SLACK_FRACTION = 0.5
START_SECONDS = 0.5


def deadline_for(time_limit: float) -> float:
    """Seconds after which a run with this ``time_limit`` is stopped: at most twice the limit
    for limits of 1 s and more."""
    return time_limit * (1.0 + SLACK_FRACTION) + START_SECONDS


def call_with_deadline(function: Callable, kwargs: dict, *, time_limit: float | None, who: str) -> Any:
    """``function(**kwargs)`` in a fresh interpreter, stopped after ``deadline_for(time_limit)``
    seconds; in this process when ``time_limit`` is None (nothing to enforce).

    ``function`` must be importable by name (a module-level function of copslp). Raises
    :class:`copslp.SolverError` saying that ``who`` overran its ``time_limit`` when the
    deadline passes, or when the child dies without an answer; re-raises what the function
    raised.
    """
    if time_limit is None:
        return function(**kwargs)
    with tempfile.TemporaryDirectory(prefix="copslp-") as folder:
        task, answer = Path(folder) / "task.pickle", Path(folder) / "answer.pickle"
        with task.open("wb") as handle:
            pickle.dump((function.__module__, function.__qualname__, kwargs), handle, protocol=pickle.HIGHEST_PROTOCOL)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        start = time.perf_counter()
        # the backend's own output (a banner on stdout) must not reach the caller's stdout
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(task), str(answer)], env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, errors = child.communicate(timeout=deadline_for(time_limit))
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise SolverError(
                f"{who} reached its time limit of {time_limit} s without proving optimality: it did not "
                f"stop by itself (one of its iterations can outlast the limit), so it was stopped after "
                f"{time.perf_counter() - start:.1f} s") from None
        if not answer.exists():
            last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise SolverError(f"{who} ended without an answer (exit code {child.returncode}): {last[0]}")
        with answer.open("rb") as handle:
            status, value = pickle.load(handle)
    if status == "error":
        raise value
    return value


#: What the child runs: load the task, call the function, write the outcome.
_CHILD = "from copslp._deadline import _serve; import sys; _serve(sys.argv[1], sys.argv[2])"


def _serve(task: str, answer: str) -> None:
    import importlib

    with open(task, "rb") as handle:
        module, name, kwargs = pickle.load(handle)
    try:
        outcome = ("ok", getattr(importlib.import_module(module), name)(**kwargs))
    except Exception as exc:  # sent back and raised in the caller
        outcome = ("error", exc)
    with open(answer, "wb") as handle:
        pickle.dump(outcome, handle, protocol=pickle.HIGHEST_PROTOCOL)
