"""How the cost of each copslp method grows with D, against np.partition and np.sort.

    python bench/scaling.py [--quick] [--out DIR] [--max-d D] [--repeats N] [--time-budget S]

Every available method solves the same generated problems over a log grid of D: two score
families (i.i.d. uniform; heavy-tailed lognormal with correlated log-scores), 1 and 3
secondary scores, k = D/20, gamma = 0.9 with one secondary score (0.75 with three: 0.9 on
three such scores at once is infeasible). Each problem is generated once per worker
process from a fixed seed (bitwise the same arrays for every method; a checksum is compared)
and each method is timed there: the median of ``--repeats`` runs of ``copslp.solve`` (its
``wall_time``: validation, method, rounding and certificate), after one discarded warm-up
when a run takes under a second (a slower first run counts as the first repeat), and fewer
repeats once a method's runs at a point add up to ``--max-point-time`` seconds (the JSON
and the tables give the number of runs). The baselines, one ``np.partition`` of the primary score
at D - k and one full ``np.sort`` of it, are timed on the same arrays in the same process.

The analytic method runs on the whole grid (1e3 .. 1e8). Every other method runs until one
run exceeds the per-run time budget: that run is killed (HiGHS checks its own time limit
only between iterations, so the process group is killed from outside), recorded as timed
out, and the method is not tried at larger D. Generic LP solvers skip D above
``--generic-max-d`` (1e7); milp runs only where D <= its ``max_size`` (2000). D = 1e8 uses
float32 scores (copslp converts them to float64 inside; the baselines work on the float32
arrays as given).

Memory: every run's peak RSS is read from /proc/self/status (VmHWM) after resetting it
through /proc/self/clear_refs just before the run, so it is the peak of the whole process
during that run (the score arrays included); ``extra`` is that peak minus the RSS just
before the run. For analytic, two_score and the baselines one more run is traced with
tracemalloc where a run takes under ``--trace-below`` seconds (numpy's allocations and
Python objects; HiGHS' own C++ memory is invisible to it, so generic methods report RSS
only).

Output (in ``--out``, default bench/results/scaling): ``scaling.json`` (every run, the
machine, the settings), ``scaling_time.png``, ``scaling_ratio.png``, ``scaling.txt`` (the
tables printed on stdout).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.ensure_paths()

GENERIC = ("highs", "scipy", "cvxpy", "milp")
#: Order of the runs in a worker: a timeout kills the worker and the methods after it need a
#: new one, so the slow generic solvers come last (cvxpy alone takes seconds to import).
METHOD_ORDER = ("partition", "sort", "analytic", "two_score", "highs", "scipy", "cvxpy", "milp")
TRACED = ("partition", "sort", "analytic", "two_score")
GENERIC_OPTIONS = {"highs": {"solver": "ipm", "presolve": "off"}, "scipy": {"solver": "highs-ipm"}}
MILP_MAX_SIZE = 2000


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/scaling.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="D = 1e3, 1e4, 1e5, 1 s budget for generic solvers: about a minute")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default bench/results/scaling[-quick])")
    parser.add_argument("--min-d", type=float, default=1e3)
    parser.add_argument("--max-d", type=float, default=None, help="largest D (default 1e8; 1e5 with --quick)")
    parser.add_argument("--points-per-decade", type=int, default=None, help="grid density (default 2; 1 with --quick)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per point; the median is reported")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds one run of a method other than analytic may take (default 30; 1 with --quick)")
    parser.add_argument("--analytic-budget", type=float, default=None,
                        help="seconds one run of analytic or a baseline may take (default 120; 30 with --quick)")
    parser.add_argument("--max-point-time", type=float, default=90.0,
                        help="no further repeat of a method at a point once its timed runs add up to more seconds")
    parser.add_argument("--trace-below", type=float, default=20.0,
                        help="the extra tracemalloc run only where one run takes less (seconds)")
    parser.add_argument("--generic-max-d", type=float, default=1e7, help="generic LP solvers skip larger D")
    parser.add_argument("--float32-from", type=float, default=1e8, help="D from which scores are float32")
    parser.add_argument("--methods", nargs="+", default=None, help="methods to run (default: every available one)")
    parser.add_argument("--families", nargs="+", default=list(common.FAMILIES), choices=common.FAMILIES)
    parser.add_argument("--secondary", nargs="+", type=int, default=[1, 3], help="numbers of secondary scores")
    parser.add_argument("--gamma", type=float, default=0.9, help="gamma with one secondary score")
    parser.add_argument("--gamma-multi", type=float, default=0.75, help="gamma with several secondary scores")
    parser.add_argument("--density", type=float, default=0.05, help="k = density * D")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figures", type=Path, default=None, help="also copy the PNG plots into this folder")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="measure nothing: print the tables and draw the plots of an earlier run's scaling.json "
                             "(into --out, default that file's folder)")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.max_d is None:
        args.max_d = 1e5 if quick else 1e8
    if args.points_per_decade is None:
        args.points_per_decade = 1 if quick else 2
    if args.time_budget is None:
        args.time_budget = 1.0 if quick else 30.0
    if args.analytic_budget is None:
        args.analytic_budget = 30.0 if quick else 120.0
    if args.out is None:
        args.out = (args.from_json.parent if args.from_json is not None
                    else common.RESULTS / ("scaling-quick" if quick else "scaling"))
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def size_grid(min_d: float, max_d: float, per_decade: int) -> list[int]:
    lo = math.log10(min_d)
    hi = math.log10(max_d)
    steps = int(math.floor((hi - lo) * per_decade + 1e-9))
    return [int(round(10 ** (lo + i / per_decade))) for i in range(steps + 1)]


def gamma_for(args, n_secondary: int) -> float:
    return args.gamma if n_secondary == 1 else args.gamma_multi


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return render(args, json_path=args.from_json, rerendered=True)
    import copslp

    available = copslp.available_methods()
    wanted = args.methods or available
    unknown = [m for m in wanted if m not in available]
    if unknown:
        print(f"scaling: methods not available here: {unknown} (available: {available})", file=sys.stderr)
        return 2
    methods = [m for m in METHOD_ORDER if m in common.BASELINES or m in wanted]
    grid = size_grid(args.min_d, args.max_d, args.points_per_decade)
    series = [(family, r) for r in args.secondary for family in args.families]
    args.out.mkdir(parents=True, exist_ok=True)
    machine = common.machine_description()
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    payload = {
        "benchmark": "scaling", "command": "python bench/scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine, "settings": settings, "grid": grid, "methods": methods,
        "families": {f: common.FAMILY_TEXT[f] for f in args.families}, "baselines": common.BASELINE_TEXT,
        "memory_note": ("peak_rss: VmHWM of the worker process during the run (reset through "
                        "/proc/self/clear_refs just before it), score arrays included; extra_rss = "
                        "peak_rss - RSS before the run; tracemalloc_peak: peak of traced allocations "
                        "(numpy data and Python objects) during one more run, for analytic, two_score "
                        "and the baselines only"),
        "points": [],
    }
    json_path = args.out / "scaling.json"
    log_path = args.out / "worker.log"
    log_path.write_text("")

    def eligible(method, n_secondary, size):
        if method in common.BASELINES or method == "analytic":
            return True, None
        if method == "two_score" and n_secondary != 1:
            return False, "needs exactly one secondary score"
        if method == "milp" and size > MILP_MAX_SIZE:
            return False, f"D > {MILP_MAX_SIZE} (binary problem; tiny D only)"
        if method in GENERIC and size > args.generic_max_d:
            return False, f"D > --generic-max-d = {args.generic_max_d:g}"
        return True, None

    total = sum(1 for size in grid for _ in series for m in methods if eligible(m, _[1], size)[0])
    bar = common.progress(total, "scaling", disable=args.no_progress)
    stopped: dict[tuple, str] = {}  # (family, r, method) -> why it is not grown further
    started = time.monotonic()
    with common.Worker(log_path=log_path) as worker:
        for size in grid:
            for family, n_secondary in series:
                dtype = "float32" if size >= args.float32_from else "float64"
                budget = max(1, int(round(args.density * size)))
                gamma = gamma_for(args, n_secondary)
                records = {}
                to_run = []
                for method in methods:
                    ok, why = eligible(method, n_secondary, size)
                    key = (family, n_secondary, method)
                    if not ok:
                        records[method] = {"status": "not_applicable", "why": why}
                    elif key in stopped:
                        records[method] = {"status": "skipped", "why": stopped[key]}
                        bar.update(1)
                    else:
                        to_run.append(method)
                spec = {
                    "family": family, "n_scores": n_secondary + 1, "size": size, "dtype": dtype, "seed": args.seed,
                    "budget": budget, "gamma": gamma, "repeats": args.repeats, "trace": list(TRACED),
                    "options": GENERIC_OPTIONS, "warmup_below": 1.0, "max_point_time": args.max_point_time,
                    "trace_below": args.trace_below,
                }
                budgets = {m: (args.analytic_budget if m in common.BASELINES or m == "analytic" else args.time_budget)
                           for m in methods}
                checksums = []
                while to_run:
                    bar.set_postfix_str(f"{family} r={n_secondary} D={common.fmt_size(size)}")

                    def on_event(event, _family=family, _r=n_secondary, _size=size):
                        if event["event"] == "start":
                            bar.set_postfix_str(f"{_family} r={_r} D={common.fmt_size(_size)} {event['method']}")
                        elif event["event"] == "done":
                            bar.update(1)

                    report = worker.run(dict(spec, methods=to_run), budgets=budgets, on_event=on_event)
                    if report.ready is not None:
                        checksums.append(report.ready["checksum"])
                    remaining = []
                    for method in to_run:
                        outcome = report.outcomes[method]
                        if outcome.status == "pending":
                            remaining.append(method)
                            continue
                        if outcome.status in ("timed_out", "crashed"):
                            bar.update(1)
                            stopped[(family, n_secondary, method)] = (
                                f"{outcome.status} at D = {common.fmt_size(size)}")
                        records[method] = summarise(outcome, report)
                    if remaining and remaining == to_run:  # the worker died before running anything
                        for method in remaining:
                            records[method] = {"status": "crashed", "error": report.stderr_tail[-500:]}
                            bar.update(1)
                        remaining = []
                    to_run = remaining
                same_arrays = len(set(checksums)) <= 1
                load = common.load_average()
                compare(records)
                for method in methods:
                    record = records[method]
                    payload["points"].append({
                        "family": family, "n_secondary": n_secondary, "size": size, "dtype": dtype,
                        "budget": budget, "gamma": gamma, "method": method, "same_arrays": same_arrays,
                        "load_average": load, **record,
                    })
                payload["elapsed_s"] = time.monotonic() - started
                common.write_json(json_path, payload)
    bar.close()

    payload["load_average_end"] = common.load_average()
    payload["elapsed_s"] = time.monotonic() - started
    common.write_json(json_path, payload)
    return render(args, json_path)


def render(args, json_path: Path, rerendered: bool = False) -> int:
    """Analyse a scaling.json, print the tables, draw the plots (into ``args.out``)."""
    import json

    payload = json.loads(Path(json_path).read_text())
    methods, grid = payload["methods"], payload["grid"]
    series = [(f, r) for r in payload["settings"]["secondary"] for f in payload["settings"]["families"]]
    if rerendered:  # checks of the agreement are recomputed (the measurements are not)
        for key in {(p["family"], p["n_secondary"], p["size"]) for p in payload["points"]}:
            pts = {p["method"]: p for p in payload["points"] if (p["family"], p["n_secondary"], p["size"]) == key}
            if pts.get("milp", {}).get("objective") is not None and pts.get("analytic", {}).get("status") == "ok":
                pts["milp"].update(milp_check(pts["milp"], pts["analytic"]))
    analysis = analyse(payload, methods, series, grid)
    payload["analysis"] = analysis
    args.out.mkdir(parents=True, exist_ok=True)
    if not rerendered:
        common.write_json(json_path, payload)
    text = report_text(payload, methods, series, grid, analysis)
    if rerendered:
        text = text.replace("\n", f"\n(tables rendered from {json_path}: measured by the command below)\n", 1)
    print(text)
    (args.out / "scaling.txt").write_text(text + "\n")
    if not args.no_plots:
        paths = plot(payload, methods, series, args.out)
        if args.figures is not None and paths:
            import shutil

            args.figures.mkdir(parents=True, exist_ok=True)
            for path in paths:
                shutil.copy(path, args.figures / path.name)
        for path in paths:
            print(f"plot: {path}")
    print(f"json: {json_path}")
    return 0


def summarise(outcome: common.MethodOutcome, report: common.WorkerReport) -> dict:
    runs = outcome.runs
    record = {
        "status": outcome.status,
        "times": [run["time"] for run in runs],
        "median_time": common.median(run["time"] for run in runs),
        "median_method_time": common.median(run.get("method_time") for run in runs),
        "n_runs": len(runs),
        "warmup_time": outcome.warmup["time"] if outcome.warmup else None,
        "peak_rss": max((run["peak_rss"] for run in runs), default=None),
        "rss_before": runs[-1]["rss_before"] if runs else None,
        "array_bytes": report.ready.get("array_bytes") if report.ready else None,
        "tracemalloc_peak": outcome.trace["tracemalloc_peak"] if outcome.trace else None,
        "error": outcome.error,
    }
    if record["peak_rss"] is not None and record["rss_before"] is not None:
        record["extra_rss"] = max(run["peak_rss"] - run["rss_before"] for run in runs)
    if runs and "objective" in runs[-1]:
        last = runs[-1]
        record.update(objective=last["objective"], mask_objective=last["mask_objective"],
                      multipliers=last["multipliers"], mask_violations=last["mask_violations"],
                      n_fractional=last["n_fractional"], info=last["info"],
                      warnings=sorted({w for run in runs for w in run["warnings"]}))
    if outcome.status == "ok" and not runs:
        record["status"] = "error"
        record["error"] = record["error"] or "no run reported"
    return record


def compare(records: dict) -> None:
    """Agreement of every method with analytic at one point (relative objective difference)."""
    ref = records.get("analytic", {})
    if ref.get("status") != "ok" or "objective" not in ref:
        return
    for method, record in records.items():
        if method == "analytic" or "objective" not in record:
            continue
        if method == "milp":
            record.update(milp_check(record, ref))
        else:
            record["rel_diff_vs_analytic"] = common.rel_diff(record["objective"], ref["objective"])


def milp_check(record: dict, ref: dict) -> dict:
    """The binary optimum lies below the LP optimum, and above analytic's mask when that mask
    meets every bound (with several bounds the rounded mask may miss one: then it is no
    lower bound)."""
    tol = 1e-9 * max(abs(ref["objective"]), 1.0)
    mask_feasible = not any(v > 0 for v in ref.get("mask_violations") or ())
    ok = record["objective"] <= ref["objective"] + tol
    if mask_feasible:
        ok = ok and record["objective"] >= ref["mask_objective"] - tol
    return {"milp_within_lp_bounds": bool(ok), "analytic_mask_feasible": mask_feasible,
            "rel_gap_to_lp": common.rel_diff(record["objective"], ref["objective"])}


def analyse(payload, methods, series, grid) -> dict:
    """Slopes, the largest D each method finished, memory there, the worst disagreement."""
    out = {}
    for family, r in series:
        for method in methods:
            rows = [p for p in payload["points"]
                    if p["family"] == family and p["n_secondary"] == r and p["method"] == method]
            done = [p for p in rows if p["status"] == "ok" and p.get("median_time") is not None]
            if not any(p["status"] != "not_applicable" for p in rows):
                continue
            sizes = [p["size"] for p in done]
            times = [p["median_time"] for p in done]
            fit_from = 1e4 if sum(s >= 1e4 for s in sizes) >= 2 else 0.0
            slope, n_fit = common.loglog_slope(sizes, times, fit_from)
            slope_large, n_large = common.loglog_slope(sizes, times, 1e6)
            largest = done[-1] if done else None
            timed_out = next((p["size"] for p in rows if p["status"] == "timed_out"), None)
            failures = [{"size": p["size"], "status": p["status"], "error": p.get("error")}
                        for p in rows if p["status"] in ("error", "crashed")]
            diffs = [p["rel_diff_vs_analytic"] for p in rows if p.get("rel_diff_vs_analytic") is not None]
            out[f"{family}|{r}|{method}"] = {
                "family": family, "n_secondary": r, "method": method,
                "slope": slope, "slope_points": n_fit, "slope_from": fit_from,
                "slope_to": max(sizes) if sizes else None,
                "slope_from_1e6": slope_large, "slope_from_1e6_points": n_large,
                "largest_size": largest["size"] if largest else None,
                "time_at_largest": largest["median_time"] if largest else None,
                "peak_rss_at_largest": largest.get("peak_rss") if largest else None,
                "extra_rss_at_largest": largest.get("extra_rss") if largest else None,
                "tracemalloc_at_largest": largest.get("tracemalloc_peak") if largest else None,
                "timed_out_at": timed_out,
                "failures": failures,
                "max_rel_diff_vs_analytic": max(diffs) if diffs else None,
                "milp_checks": [p.get("milp_within_lp_bounds") for p in rows if "milp_within_lp_bounds" in p],
            }
    return out


def cell(record, repeats: int) -> str:
    status = record.get("status")
    if status == "ok":
        runs = record.get("n_runs", repeats)
        return common.fmt_time(record["median_time"]) + (f" ({runs} run{'s' * (runs > 1)})" if runs < repeats else "")
    return {"timed_out": "timed out", "skipped": "(stopped)", "not_applicable": "", "error": "ERROR",
            "crashed": "CRASHED"}.get(status, status or "?")


def report_text(payload, methods, series, grid, analysis) -> str:
    s = payload["settings"]
    lines = [
        "# copslp scaling benchmark",
        f"machine: {common.machine_line(payload['machine'])}",
        f"command: {payload['command']}",
        f"k = {s['density']:g} D; gamma = {s['gamma']:g} (1 secondary score), {s['gamma_multi']:g} (3); "
        f"median of {s['repeats']} runs (wall_time of copslp.solve); per-run budget {s['time_budget']:g} s "
        f"(generic methods, two_score), {s['analytic_budget']:g} s (analytic, baselines); "
        f"float32 scores from D = {s['float32_from']:g}; elapsed {payload.get('elapsed_s', 0):.0f} s"
        + (f"; load average at the end {payload['load_average_end']}" if payload.get("load_average_end") else ""),
        "",
    ]
    for family, r in series:
        lines.append(f"## {family} scores ({common.FAMILY_TEXT[family]}), {r} secondary score{'s' * (r > 1)}, "
                     f"gamma = {s['gamma'] if r == 1 else s['gamma_multi']:g}")
        shown = [m for m in methods if any(
            p["status"] != "not_applicable" for p in payload["points"]
            if p["family"] == family and p["n_secondary"] == r and p["method"] == m)]
        headers = ["D", "dtype"] + shown[:3] + ["analytic/partition"] + shown[3:]
        rows = []
        for size in grid:
            pts = {p["method"]: p for p in payload["points"]
                   if p["family"] == family and p["n_secondary"] == r and p["size"] == size}
            if not pts:
                continue
            part, ana = pts.get("partition", {}), pts.get("analytic", {})
            ratio = (f"{ana['median_time'] / part['median_time']:.1f}x"
                     if ana.get("status") == "ok" and part.get("status") == "ok" and part["median_time"] else "-")
            row = [common.fmt_size(size), next(iter(pts.values()))["dtype"]]
            row += [cell(pts[m], s["repeats"]) for m in shown[:3]] + [ratio]
            row += [cell(pts[m], s["repeats"]) for m in shown[3:]]
            rows.append(row)
        lines += [common.table(headers, rows), ""]
    lines.append(f"median of {s['repeats']} runs unless a cell says fewer; timed out: one run exceeded the budget "
                 f"and was killed; (stopped): not tried after a timeout at a smaller D; empty: not applicable "
                 f"(two_score needs one secondary score, milp D <= {MILP_MAX_SIZE}, generic solvers "
                 f"D <= {s['generic_max_d']:g})")
    lines.append("")

    lines.append("## per method: fitted log-log slope, largest D finished, memory there, agreement with analytic")
    headers = ["scores", "r", "method", "slope", "fit over D", "slope D >= 1e6", "largest D", "time there", "beyond",
               "peak RSS", "extra RSS", "tracemalloc", "max rel. obj. diff vs analytic"]
    rows = []
    for item in analysis.values():
        beyond = (f"timed out at {common.fmt_size(item['timed_out_at'])}" if item["timed_out_at"]
                  else ("failed" if item["failures"] else "-"))
        fit = (f"{common.fmt_size(item['slope_from'] or min(payload['grid']))}..{common.fmt_size(item['slope_to'])} "
               f"({item['slope_points']} pts)" if item["slope"] is not None else "-")
        if item["method"] == "milp":
            agree = ("binary opt. <= LP, >= analytic's mask if feasible: "
                     + ("yes" if item["milp_checks"] and all(item["milp_checks"]) else f"{item['milp_checks']}"))
        elif item["method"] in ("analytic", "partition", "sort"):
            agree = ""
        else:
            agree = "-" if item["max_rel_diff_vs_analytic"] is None else f"{item['max_rel_diff_vs_analytic']:.1e}"
        rows.append([item["family"], item["n_secondary"], item["method"],
                     "-" if item["slope"] is None else f"{item['slope']:.2f}", fit,
                     "-" if item["slope_from_1e6"] is None
                     else f"{item['slope_from_1e6']:.2f} ({item['slope_from_1e6_points']} pts)",
                     common.fmt_size(item["largest_size"]) if item["largest_size"] else "-",
                     common.fmt_time(item["time_at_largest"]), beyond,
                     common.mib(item["peak_rss_at_largest"]), common.mib(item["extra_rss_at_largest"]),
                     common.mib(item["tracemalloc_at_largest"]), agree])
    lines += [common.table(headers, rows, ["<", ">", "<"] + [">"] * 10), ""]
    lines.append("slope: least-squares slope of log(median time) against log(D) over the finished points from "
                 "D = 1e4 (fixed per-call costs flatten it at small D); slope D >= 1e6: the same from D = 1e6.")
    lines.append("peak RSS: the worker process during one run (VmHWM reset just before it), score arrays "
                 "included; extra RSS: peak minus RSS before the run; tracemalloc: numpy and Python "
                 "allocations during one traced run (not HiGHS' C++ memory).")

    problems = []
    warned: dict[tuple, list] = {}
    for p in payload["points"]:
        where = f"{p['family']} r={p['n_secondary']} D={common.fmt_size(p['size'])} {p['method']}"
        if p["status"] in ("error", "crashed"):
            problems.append(f"{where}: {p['status']}: {p.get('error')}")
        if (p.get("rel_diff_vs_analytic") or 0) > 1e-6:
            problems.append(f"{where}: objective differs from analytic by {p['rel_diff_vs_analytic']:.2e} (relative)")
        if p.get("milp_within_lp_bounds") is False:
            problems.append(f"{where}: binary optimum {p['objective']!r} above the LP optimum or below analytic's "
                            f"feasible mask")
        if not p.get("same_arrays", True):
            problems.append(f"{where}: workers generated different arrays (checksum mismatch)")
        for w in p.get("warnings") or ():
            warned.setdefault((p["family"], p["n_secondary"], p["size"], w), []).append(p["method"])
    for (family, r, size, w), names in warned.items():
        problems.append(f"{family} r={r} D={common.fmt_size(size)} ({', '.join(names)}): warning: {w}")
    lines.append("")
    lines.append("## failures, disagreements (> 1e-6 relative) and warnings")
    lines += [f"- {line}" for line in problems] or ["- none"]
    return "\n".join(lines)


COLORS = {"analytic": "C0", "two_score": "C1", "highs": "C2", "scipy": "C3", "cvxpy": "C4", "milp": "C5",
          "partition": "black", "sort": "0.5"}


def plot(payload, methods, series, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("scaling: matplotlib is not installed; no plots", file=sys.stderr)
        return []
    families = sorted({f for f, _ in series}, key=common.FAMILIES.index)
    rs = sorted({r for _, r in series})
    fig, axes = plt.subplots(len(rs), len(families), figsize=(5.2 * len(families), 4.0 * len(rs)),
                             squeeze=False, sharex=True, sharey=True)
    budget = payload["settings"]["time_budget"]
    for i, r in enumerate(rs):
        for j, family in enumerate(families):
            ax = axes[i][j]
            for method in methods:
                pts = [p for p in payload["points"]
                       if p["family"] == family and p["n_secondary"] == r and p["method"] == method]
                done = [p for p in pts if p["status"] == "ok" and p.get("median_time")]
                if not done and not any(p["status"] == "timed_out" for p in pts):
                    continue
                style = {"partition": "--", "sort": ":"}.get(method, "-")
                ax.plot([p["size"] for p in done], [p["median_time"] for p in done], style, marker="o",
                        ms=3, color=COLORS.get(method), label=method if method not in common.BASELINES
                        else f"np.{method}")
                for p in pts:
                    if p["status"] == "timed_out":  # at the budget, nudged apart per method
                        limit = payload["settings"]["analytic_budget"] if method == "analytic" else budget
                        nudge = 10 ** (0.04 * (methods.index(method) - 4))
                        ax.plot([p["size"] * nudge], [limit], "x", ms=7, mew=2, color=COLORS.get(method))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"{family}, {r} secondary score{'s' * (r > 1)}", fontsize=10)
            if i == len(rs) - 1:
                ax.set_xlabel("D (number of scored elements)")
            if j == 0:
                ax.set_ylabel("seconds (median)")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", ncol=min(8, len(labels)), fontsize=9, frameon=False)
    fig.text(0.5, 0.005, f"x: timed out (one run over the {budget:g} s budget; killed); k = D/20",
             ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.94))
    time_path = out / "scaling_time.png"
    fig.savefig(time_path, dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for family, r in series:
        sizes, ratios = [], []
        for size in payload["grid"]:
            pts = {p["method"]: p for p in payload["points"]
                   if p["family"] == family and p["n_secondary"] == r and p["size"] == size}
            a, b = pts.get("analytic", {}), pts.get("partition", {})
            if a.get("status") == "ok" and b.get("status") == "ok" and b.get("median_time"):
                sizes.append(size)
                ratios.append(a["median_time"] / b["median_time"])
        if sizes:
            ax.plot(sizes, ratios, marker="o", ms=3, ls="-" if r == 1 else "--",
                    label=f"{family}, {r} secondary")
    ax.axhline(10, color="0.4", lw=0.8, ls=":", label="10x (target at D = 1e7, 1 secondary score)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("D")
    ax.set_ylabel("analytic time / np.partition time")
    ax.set_title("copslp analytic relative to one np.partition of s_0", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    ratio_path = out / "scaling_ratio.png"
    fig.savefig(ratio_path, dpi=90)
    plt.close(fig)
    return [time_path, ratio_path]


if __name__ == "__main__":
    sys.exit(main())
