"""Benchmark worker: generates one problem and times methods on it, in its own process.

Run by bench/_common.run_worker as ``python bench/_worker.py SPEC_JSON``; it reports one JSON
line per event on stdout (prefixed with ``@@ ``), so that the parent can enforce a hard
wall-clock limit on every run and still keep what finished before it.

Spec keys: family, n_scores, size, dtype, seed, budget (k), gamma (number or list),
methods (names; "partition" and "sort" are the numpy baselines), repeats, options
({method: {option: value}}), trace (methods that get one extra run under tracemalloc),
warmup_below (seconds: a first run faster than this is a discarded warm-up, a slower one
counts as the first timed repeat), groups (optional: {"n_groups", "floor_fraction"}).
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
    if method == "partition":
        primary = scores[0]
        pivot = primary.shape[0] - budget

        def call():
            np.partition(primary, pivot)
            return None
        return call
    if method == "sort":
        primary = scores[0]

        def call():
            np.sort(primary)
            return None
        return call
    import copslp

    options = dict(spec.get("options", {}).get(method, {}))
    extra = {} if groups is None else {"groups": groups, "floors": floors}

    def call():
        return copslp.solve(scores, budget, gamma=spec["gamma"], method=method, **extra, **options)
    return call


def run_once(call, method, repeat, warmup, reset_peak=True):
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
            n_fractional=result.n_fractional, status=result.status, info=small_info(result.info),
        )
    return event


def tiny_warmup(methods, spec) -> None:
    """Load each method's lazy imports on a tiny problem before anything is timed."""
    n = spec["n_scores"]
    scores = common.make_scores("uniform", n, 200, seed=12345)
    for method in methods:
        if method in common.BASELINES:
            continue
        tiny = dict(spec, budget=10)
        groups = floors = None
        if spec.get("groups"):
            groups = np.repeat(np.arange(4), 50)
            floors = 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make_call(method, scores, tiny, groups, floors)()
        except Exception:  # the real run reports errors
            pass


def main() -> int:
    spec = json.loads(sys.argv[1])
    methods = spec["methods"]
    tiny_warmup(methods, spec)
    start = time.perf_counter()
    scores = common.make_scores(spec["family"], spec["n_scores"], spec["size"], seed=spec["seed"],
                                dtype=np.dtype(spec["dtype"]))
    groups = floors = None
    if spec.get("groups"):
        g = spec["groups"]
        groups, scale = common.layered_groups(spec["size"], g["n_groups"], seed=spec["seed"])
        scores *= scale[groups].astype(scores.dtype)
        sizes = np.bincount(groups)
        floors = np.ceil(g["floor_fraction"] * sizes).astype(np.int64)
    emit(event="ready", checksum=common.checksum(scores), generate_time=time.perf_counter() - start,
         rss=common.rss_bytes(), array_bytes=int(scores.nbytes), peak_rss=common.peak_rss_bytes())
    reset_peak = bool(spec.get("reset_peak", True))

    warmup_below = float(spec.get("warmup_below", 1.0))
    for method in methods:
        emit(event="start", method=method)
        try:
            call = make_call(method, scores, spec, groups, floors)
            first = run_once(call, method, 0, warmup=True, reset_peak=reset_peak)
            timed = 0
            if first["time"] >= warmup_below:  # slow: the first run counts
                first["warmup"] = False
                timed = 1
            emit(**first)
            for repeat in range(timed, spec["repeats"]):
                emit(**run_once(call, method, repeat, warmup=False, reset_peak=reset_peak))
            if method in spec.get("trace", ()):
                tracemalloc.start()
                tracemalloc.reset_peak()
                call()
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                emit(event="trace", method=method, tracemalloc_peak=peak)
        except Exception as exc:  # reported, then the next method runs
            emit(event="error", method=method, error=f"{type(exc).__name__}: {exc}"[:2000])
        emit(event="done", method=method)
    emit(event="exit", maxrss=common.peak_rss_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
