"""Benchmark worker: generates one problem and times methods on it, in its own process.

Run by bench/_common.Worker as ``python bench/_worker.py``: it reads one job (a JSON spec) per
line on stdin and reports one JSON line per event on stdout (prefixed with ``@@ ``), so that
the parent can enforce a hard wall-clock limit on every run and still keep what finished
before it. It ends at the end of its input.

Spec keys: family, n_scores, size, dtype, seed (or path: an .npy file of shape (n_scores, size)
to load instead of generating), budget (k), gamma (number or list),
methods (names; "partition" and "sort" are the numpy baselines), repeats (an int, or
{method: int, "default": int}), options
({method: {option: value}}), trace (methods that get one extra run under tracemalloc),
warmup_below (seconds: a first run faster than this is a discarded warm-up, a slower one
counts as the first timed repeat), groups (optional: {"n_groups", "floor_fraction", "spread"}:
layered groups, see _common.layered_groups; the scores are multiplied by their per-group
scales; only the methods named "<method>:floors" get the groups and floors),
max_point_time (seconds: no further repeat once the timed runs of a method add up to more),
trace_below (seconds: the tracemalloc run only when a timed run takes less on average),
reset_peak (default true: the peak RSS is reset before every run, so that each run reports
its own; false keeps the process's whole peak, problem generation included).
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.ensure_paths()

import numpy as np  # noqa: E402


def emit(**event) -> None:
    sys.stdout.write(common.LINE_PREFIX + json.dumps(event, default=common._json_default) + "\n")
    sys.stdout.flush()


def small_info(info) -> dict:
    """The JSON-friendly, short part of a Result's info mapping."""
    out = {}
    for key, value in dict(info).items():
        if isinstance(value, (bool, int, float, str)) or value is None:
            out[key] = value
        elif isinstance(value, np.generic):
            out[key] = value.item()
        elif isinstance(value, (list, tuple)) and len(value) <= 8:
            try:
                out[key] = json.loads(json.dumps(value, default=common._json_default))
            except TypeError:
                out[key] = repr(value)[:200]
        else:
            out[key] = repr(value)[:200]
    return out


def make_call(method, scores, spec, groups, floors):
    budget = spec["budget"]
    if method in ("partition", "argpartition"):  # the selection baselines: one call on the primary score
        primary = scores[0]
        pivot = primary.shape[0] - budget
        select = getattr(np, method)

        def call():
            select(primary, pivot)
            return None
        return call
    if method == "sort":
        primary = scores[0]

        def call():
            np.sort(primary)
            return None
        return call
    import copslp

    name, _, variant = method.partition(":")  # "analytic:floors" = analytic with the job's groups
    options = dict(spec.get("options", {}).get(method, {}))
    extra = {"groups": groups, "floors": floors} if variant == "floors" else {}

    def call():
        return copslp.solve(scores, budget, gamma=spec["gamma"], method=name, **extra, options=options)
    return call


def run_once(call, method, repeat, warmup, reset_peak=True, groups=None, floors=None):
    if reset_peak:
        common.reset_peak_rss()
    rss_before = common.rss_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        result = call()
        outer = time.perf_counter() - start
    event = {
        "event": "run", "method": method, "repeat": repeat, "warmup": warmup,
        "time": outer, "rss_before": rss_before, "peak_rss": common.peak_rss_bytes(),
        "warnings": [str(w.message)[:300] for w in caught][:3],
    }
    if result is not None:
        event.update(
            time=result.wall_time, outer_time=outer, method_time=result.method_time,
            objective=result.objective, mask_objective=result.mask_objective,
            multipliers=result.multipliers.tolist(), mask_violations=result.mask_violations.tolist(),
            n_fractional=result.n_fractional, mask_meets_bounds=result.mask_meets_bounds,
            info=small_info(result.info),
        )
        if groups is not None:  # how many groups the mask keeps fewer than their floor of
            kept = np.bincount(groups[result.mask], minlength=floors.shape[0])
            event["groups_below_floor"] = int(np.count_nonzero(kept < floors))
            event["groups_empty"] = int(np.count_nonzero(kept == 0))
    return event


def tiny_warmup(method, spec) -> None:
    """Load a method's lazy imports (cvxpy takes seconds) on a tiny problem, untimed."""
    if method in common.BASELINES:
        return
    scores = common.make_scores("uniform", spec["n_scores"], 200, seed=12345)
    groups = floors = None
    if spec.get("groups"):
        groups = np.repeat(np.arange(4), 50)
        floors = 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_call(method, scores, dict(spec, budget=10, size=200), groups, floors)()
    except Exception:  # the real run reports errors
        pass


def run_job(spec: dict) -> None:
    methods = spec["methods"]
    start = time.perf_counter()
    if spec.get("path"):  # scores saved by the parent (real scores)
        scores = np.load(spec["path"], allow_pickle=False)
    else:
        scores = common.make_scores(spec["family"], spec["n_scores"], spec["size"], seed=spec["seed"],
                                    dtype=np.dtype(spec["dtype"]))
    groups = floors = None
    if spec.get("groups"):
        g = spec["groups"]
        groups, floors = common.with_layered_floors(scores, g["n_groups"], g["floor_fraction"],
                                                    spread=g.get("spread", 0.0), seed=spec["seed"])
    emit(event="ready", checksum=common.checksum(scores), generate_time=time.perf_counter() - start,
         rss=common.rss_bytes(), array_bytes=int(scores.nbytes), peak_rss=common.peak_rss_bytes())
    reset_peak = bool(spec.get("reset_peak", True))
    warmup_below = float(spec.get("warmup_below", 1.0))
    for method in methods:
        tiny_warmup(method, spec)
        emit(event="start", method=method)
        try:
            call = make_call(method, scores, spec, groups, floors)
            first = run_once(call, method, 0, warmup=True, reset_peak=reset_peak, groups=groups, floors=floors)
            timed = 0
            if first["time"] >= warmup_below:  # slow: the first run counts
                first["warmup"] = False
                timed = 1
            emit(**first)
            repeats = spec["repeats"]
            if isinstance(repeats, dict):
                repeats = repeats.get(method, repeats.get("default", 1))
            spent = first["time"] if timed else 0.0
            max_point_time = float(spec.get("max_point_time", float("inf")))
            for repeat in range(timed, repeats):
                if timed and spent > max_point_time:  # slow point: fewer repeats (reported)
                    break
                event = run_once(call, method, repeat, warmup=False, reset_peak=reset_peak, groups=groups,
                                 floors=floors)
                emit(**event)
                spent += event["time"]
                timed += 1
            if method in spec.get("trace", ()) and spent / max(timed, 1) <= float(spec.get("trace_below", float("inf"))):
                tracemalloc.start()
                tracemalloc.reset_peak()
                call()
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                emit(event="trace", method=method, tracemalloc_peak=peak)
        except Exception as exc:  # reported, then the next method runs
            emit(event="error", method=method, error=f"{type(exc).__name__}: {exc}"[:2000])
        emit(event="done", method=method)
    del scores, groups, floors
    emit(event="job_done", peak_rss=common.peak_rss_bytes())


def main() -> int:
    import copslp  # noqa: F401  (imported before any clock starts)

    for line in sys.stdin:
        if line.strip():
            run_job(json.loads(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
