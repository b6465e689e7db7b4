"""analytic with several secondary scores: the targets, measured in one run, as PASS/FAIL.

    python bench/several_bounds.py [--repeats N] [--out DIR] [--tiny] [--only ...]

Problems: 1 primary and 3 secondary scores of the two families of bench/_common.py
(``uniform``: i.i.d. uniform [0, 1); ``lognormal``: heavy-tailed, log-correlation 0.6 with
s_0), k = D/20 and D/100, gamma = 0.75 on every bound. Times are ``Result.wall_time`` of
``copslp.solve`` (validation, method, certificate, rounding), medians of ``--repeats`` runs
after one warm-up run; ``np.partition(s_0, D - k)`` is timed on the same arrays in the same
process. Every comparison is made on the same arrays in the same process.

1. ``ratios`` (D = 1e7): analytic with the 3 secondary scores within 3x of analytic with the
   first one alone (rows 0 and 1 of the same array) and within 30x of one ``np.partition``.
2. ``highs`` (D = 1e6, k = D/20): analytic at least 100x faster than highs (ipm, presolve
   off); their LP objectives are printed side by side.
3. ``infeasible`` (D = 1e6, k = D/20): gamma = 0.9 on the 3 bounds, which they cannot meet
   together: ``InfeasibleError`` within 5x of the feasible solve (gamma = 0.75) of the same
   arrays; the message is printed.
4. ``scaling``: analytic with 3 secondary scores over D = 1e4 .. 1e7, both families,
   k = D/20, against ``np.partition``.
5. ``rounding``: on every feasible problem solved above, whether the mask meets every bound
   with the rounding of copslp (the search near the k-th level) and with the fractional
   entries alone (``round_to_mask`` without multipliers, the rule before that search).
6. ``memory`` (D = 1e8, float32 scores): a fresh process (bench/_worker.py) that generates
   the 4 scores and solves with analytic stays within 24 GiB (peak RSS from ``os.wait4``).

7. ``small`` (D = 1e4 and 1e5, both families, k = D/20): 3 secondary scores within 10x of
   the first one alone, and within 1/10 of ``method="highs"`` (dual simplex) on the same
   problem.
8. ``reported``: the problems users reported, at full size, each within 20x of the solve
   with its first secondary score alone (rows 0 and 1 of the same array): three bounds at
   gamma 0.99 on D = 10,000 and 39,555 scores that are 95% exact zeros (k = D/2), and three
   bounds at gamma 0.9 on uniform scores at low density (D = 3e5 and 1.06e6, k = 0.1%, and
   1.06e6 at k = 0.28%).

A problem that is infeasible at gamma = 0.75 (lognormal scores at k = D/100 are) is reported
as N/A with the time its InfeasibleError took. Exit status 0 when no target fails.
``--tiny`` shrinks every size (for tests; its PASS/FAIL lines say nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.ensure_paths()

import numpy as np  # noqa: E402

import copslp  # noqa: E402
from copslp._problem import make_problem  # noqa: E402
from copslp._rounding import round_to_mask  # noqa: E402
from copslp._scan import scan_point  # noqa: E402

SECTIONS = ("ratios", "highs", "infeasible", "scaling", "rounding", "memory", "small", "reported")
GAMMA = 0.75
INFEASIBLE_GAMMA = 0.9


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/several_bounds.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "several_bounds")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, one run: checks the script, not the targets")
    parser.add_argument("--d-ratios", type=float, default=1e7)
    parser.add_argument("--d-highs", type=float, default=1e6)
    parser.add_argument("--d-scaling", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7])
    parser.add_argument("--d-memory", type=float, default=1e8)
    parser.add_argument("--memory-limit-gib", type=float, default=24.0)
    parser.add_argument("--time-limit", type=float, default=1800.0, help="hard limit on the memory run")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.d_ratios, args.d_highs, args.d_memory = 4e4, 2e4, 4e4
        args.d_scaling = [2e4, 4e4]
        args.repeats = 1
        if args.out == common.RESULTS / "several_bounds":
            args.out = common.RESULTS / "several_bounds-tiny"
    return args


class Timed:
    """Times of one call repeated (after a warm-up run unless ``warmup`` is false), its last
    result or error."""

    def __init__(self, call, repeats, warmup=True):
        self.times, self.result, self.error = [], None, None
        for run in range(repeats + 1 if warmup else repeats):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", copslp.CopsWarning)
                start = time.perf_counter()
                try:
                    self.result = call()
                except copslp.InfeasibleError as error:
                    self.error = error
                elapsed = time.perf_counter() - start
            if run or not warmup:  # run 0 is the warm-up
                wall = getattr(self.result, "wall_time", None) if self.error is None else None
                self.times.append(wall if wall is not None else elapsed)

    @property
    def median(self) -> float:
        return common.median(self.times)

    def describe(self) -> str:
        what = "InfeasibleError" if self.error is not None else "optimal"
        return f"{common.fmt_time(self.median)} ({what}, median of {len(self.times)})"


def solve_timed(scores, budget, repeats, gamma=GAMMA) -> Timed:
    return Timed(lambda: copslp.solve(scores, budget, gamma=gamma), repeats)


def partition_timed(scores, budget, repeats) -> Timed:
    primary, pivot = scores[0], scores.shape[1] - budget
    return Timed(lambda: np.partition(primary, pivot), repeats)


def rounding_record(label, scores, budget, result) -> dict:
    """Does the mask meet every bound, with copslp's rounding and with the fractional
    entries alone (the rounding without multipliers)?"""
    problem = make_problem(scores, budget, gamma=GAMMA)
    tolerance = result.certificate.tolerance
    scan = scan_point(problem, result.x, tolerance)
    _, rule, values = round_to_mask(problem, result.x, tolerance, scan)
    fractional_only = bool(np.all(values[1:] >= problem.thresholds - tolerance * np.abs(problem.thresholds)))
    return {"problem": label, "meets_now": result.mask_meets_bounds, "rule_now": result.info["rounding"],
            "meets_fractional_only": fractional_only, "rule_fractional_only": rule,
            "fractional": result.n_fractional, "relative_rounding_loss": result.rounding_loss / abs(result.objective)}


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(args.only or SECTIONS)
    machine = common.machine_description()
    results, rounding, scaling = [], [], []
    started = time.monotonic()
    bar = common.progress(len(only), "several bounds")

    def add(name, passed, line, **data):
        status = "N/A" if passed is None else "PASS" if passed else "FAIL"
        results.append({"target": name, "status": status, "line": line, **data})
        bar.set_postfix_str(f"{name}: {status}")

    if only & {"ratios", "rounding"}:
        d = int(args.d_ratios)
        for family in common.FAMILIES:
            scores = common.make_scores(family, 4, d)
            for divisor in (20, 100):
                k = d // divisor
                part = partition_timed(scores, k, args.repeats)
                one = solve_timed(scores[:2], k, args.repeats)
                three = solve_timed(scores, k, args.repeats)
                label = f"D = {common.fmt_size(d)}, {family}, k = D/{divisor}"
                if three.error is None:
                    rounding.append(rounding_record(label, scores, k, three.result))
                    info = three.result.info
                    detail = (f"; rounds {info.get('rounds')}, survivors {info.get('survivors')}, final LP "
                              f"{info.get('final_lp_size')} elements, {info.get('oracle_calls')} oracle calls")
                else:
                    detail = f"; {str(three.error)[:160]}"
                to_one, to_partition = three.median / one.median, three.median / part.median
                passed = None if three.error is not None else to_one <= 3 and to_partition <= 30  # N/A: infeasible
                add(f"ratios {family} D/{divisor}", passed,
                    f"{label}: 3 secondary {three.describe()}, 1 secondary {one.describe()}, np.partition "
                    f"{part.describe()}: {to_one:.2f}x 1 secondary (target <= 3x), {to_partition:.1f}x "
                    f"np.partition (target <= 30x){detail}",
                    size=d, family=family, budget=k, times_three=three.times, times_one=one.times,
                    times_partition=part.times, infeasible=three.error is not None)
            del scores
        bar.update(1)

    if only & {"highs", "infeasible"}:
        d = int(args.d_highs)
        k = d // 20
        for family in common.FAMILIES:
            scores = common.make_scores(family, 4, d)
            label = f"D = {common.fmt_size(d)}, {family}, k = D/20"
            feasible = solve_timed(scores, k, args.repeats)
            if feasible.error is None:
                rounding.append(rounding_record(label, scores, k, feasible.result))
            if "highs" in only:
                highs = Timed(lambda: copslp.solve(scores, k, gamma=GAMMA, method="highs",
                                                   options={"solver": "ipm", "presolve": "off"}), 1, warmup=False)  # one run: tens of seconds
                ratio = highs.median / feasible.median
                agree = common.rel_diff(highs.result.objective, feasible.result.objective)
                add(f"highs {family}", ratio >= 100,
                    f"{label}: analytic {feasible.describe()} vs highs (ipm, presolve off) {highs.describe()}: "
                    f"{ratio:.0f}x faster (target >= 100x); objectives agree to {agree:.1e}",
                    size=d, family=family, ratio=ratio, times_analytic=feasible.times, times_highs=highs.times)
            if "infeasible" in only:
                infeasible = solve_timed(scores, k, args.repeats, gamma=INFEASIBLE_GAMMA)
                ratio = infeasible.median / feasible.median
                message = str(infeasible.error) if infeasible.error is not None else "no error: feasible"
                add(f"infeasible {family}", infeasible.error is not None and ratio <= 5,
                    f"{label}, gamma {INFEASIBLE_GAMMA:g}: {infeasible.describe()} vs the feasible solve "
                    f"(gamma {GAMMA:g}) {feasible.describe()}: {ratio:.2f}x (target <= 5x); message: {message}",
                    size=d, family=family, ratio=ratio, times_infeasible=infeasible.times,
                    times_feasible=feasible.times, message=message)
            del scores
        bar.update(1)

    def against_one(name, label, scores, k, gamma, highs=False):
        """3 secondary scores against the first alone (and highs' dual simplex) on ``scores``."""
        one = solve_timed(scores[:2], k, args.repeats, gamma=gamma)
        three = solve_timed(scores, k, args.repeats, gamma=gamma)
        if three.error is not None:
            add(name, None, f"{label}: {three.describe()}: {str(three.error)[:160]}", infeasible=True)
            return None, three
        info = three.result.info
        ratio = three.median / one.median
        line = (f"{label}: 3 secondary {three.describe()}, 1 secondary {one.describe()}: {ratio:.1f}x; survivors "
                f"{info.get('survivors')}, final LP {info.get('final_lp_size')} elements "
                f"({info.get('distinct_columns')} distinct), {info.get('oracle_calls')} oracle calls")
        data = {"ratio_one": ratio, "times_three": three.times, "times_one": one.times}
        if highs:
            reference = Timed(lambda: copslp.solve(scores, k, gamma=gamma, method="highs",
                                                   options={"solver": "simplex"}), 1, warmup=False)
            share = three.median / reference.median
            agree = common.rel_diff(reference.result.objective, three.result.objective)
            line += f"; highs (simplex) {reference.describe()}: {share:.3f} of it, objectives agree to {agree:.1e}"
            data.update(share_highs=share, times_highs=reference.times)
        return (ratio, data.get("share_highs"), line, data), three

    if "small" in only:
        for family in common.FAMILIES:
            for d in ((10_000,) if args.tiny else (10_000, 100_000)):
                scores = common.make_scores(family, 4, d)
                label = f"D = {common.fmt_size(d)}, {family}, k = D/20, gamma {GAMMA:g}"
                measured, three = against_one(f"small {family} {d}", label, scores, d // 20, GAMMA, highs=True)
                if measured is not None:
                    ratio, share, line, data = measured
                    add(f"small {family} {common.fmt_size(d)}", ratio <= 10 and share <= 0.1,
                        line + " (targets <= 10x 1 secondary, <= 0.1 of highs)", size=d, family=family, **data)
        bar.update(1)

    if "reported" in only:
        rng = np.random.default_rng(0)
        reported = []
        for d in ((2_000,) if args.tiny else (10_000, 39_555)):
            scores = rng.random((4, d)) * (rng.random((4, d)) < 0.05)
            reported.append((f"95% zeros D = {common.fmt_size(d)}", scores, d // 2, 0.99))
        for d, share in (((20_000, 0.01),) if args.tiny else ((300_000, 0.001), (1_060_000, 0.001), (1_060_000, 0.0028))):
            reported.append((f"uniform D = {common.fmt_size(d)}, k = {share:.2%}", rng.random((4, d)),
                             max(1, int(d * share)), 0.9))
        for label, scores, k, gamma in reported:
            measured, three = against_one(f"reported {label}", f"{label}, gamma {gamma:g}", scores, k, gamma)
            if measured is not None:
                ratio, _, line, data = measured
                add(f"reported {label}", ratio <= 20, line + " (target <= 20x)", **data)
            del scores
        bar.update(1)

    if "scaling" in only:
        for family in common.FAMILIES:
            for d in (int(size) for size in args.d_scaling):
                scores = common.make_scores(family, 4, d)
                k = d // 20
                part = partition_timed(scores, k, args.repeats)
                three = solve_timed(scores, k, args.repeats)
                info = three.result.info if three.error is None else {}
                scaling.append({"family": family, "size": d, "analytic": three.median, "partition": part.median,
                                "status": "InfeasibleError" if three.error is not None else "optimal",
                                "rounds": info.get("rounds"), "survivors": info.get("survivors"),
                                "final_lp_size": info.get("final_lp_size"), "oracle_calls": info.get("oracle_calls")})
                del scores
        bar.update(1)

    if "memory" in only:  # a fresh process of its own, so that its peak RSS is this problem's
        d = args.d_memory
        spec = {"family": "uniform", "n_scores": 4, "size": int(d), "dtype": "float32", "seed": 0,
                "budget": int(d) // 20, "gamma": GAMMA, "methods": ["analytic"], "repeats": 1,
                "warmup_below": 0.0, "reset_peak": False, "trace": []}
        with common.Worker(log_path=args.out / "worker.log") as fresh:
            report = fresh.run(spec, budgets={"analytic": args.time_limit})
        outcome = report.outcomes["analytic"]
        peak = fresh.child_maxrss
        ok = outcome.status == "ok" and peak is not None
        times = [run["time"] for run in outcome.runs]
        add("memory", ok and peak <= args.memory_limit_gib * 2 ** 30,
            f"D = {common.fmt_size(d)} float32, 3 secondary scores, uniform, k = D/20: analytic "
            f"{common.fmt_time(common.median(times)) if times else outcome.status}; peak RSS of the process "
            f"(generation + solve, os.wait4 ru_maxrss) {common.gib(peak)} (target <= {args.memory_limit_gib:g} GiB)",
            size=d, peak_rss=peak, times=times, info=outcome.runs[-1]["info"] if outcome.runs else None)
        bar.update(1)
    bar.close()

    lines = ["# analytic with several secondary scores",
             f"machine: {common.machine_line(machine)}; at the end {common.load_average()}",
             f"command: python bench/several_bounds.py {' '.join(argv if argv is not None else sys.argv[1:])}", ""]
    if args.tiny:
        lines.append("(--tiny: sizes shrunk to check the script; these lines say nothing about the targets)")
    lines += [f"{r['status']}  {r['line']}" for r in results]
    if scaling:
        lines += ["", "3 secondary scores, gamma 0.75, k = D/20: analytic (median wall time) against np.partition",
                  common.table(["family", "D", "analytic", "np.partition", "ratio", "rounds", "survivors",
                                "final LP", "oracle calls"],
                               [[row["family"], common.fmt_size(row["size"]),
                                 common.fmt_time(row["analytic"]) + ("" if row["status"] == "optimal" else " (infeasible)"),
                                 common.fmt_time(row["partition"]), f"{row['analytic'] / row['partition']:.1f}x",
                                 row["rounds"], row["survivors"], row["final_lp_size"], row["oracle_calls"]]
                                for row in scaling])]
    if rounding:
        now = sum(r["meets_now"] for r in rounding)
        before = sum(r["meets_fractional_only"] for r in rounding)
        lines += ["", f"rounding: the mask meets every bound on {now} of {len(rounding)} feasible problems "
                      f"(fractional entries alone: {before} of {len(rounding)})"]
        lines += [f"  {r['problem']}: {'meets' if r['meets_now'] else 'MISSES'} ({r['rule_now']}); fractional "
                  f"alone {'meets' if r['meets_fractional_only'] else 'misses'}; rounding loss {r['relative_rounding_loss']:.1e} of the LP optimum"
                  for r in rounding]
    text = "\n".join(lines)
    print(text)
    (args.out / "several_bounds.txt").write_text(text + "\n")
    payload = {"benchmark": "several_bounds", "command": lines[2], "machine": machine, "results": results,
               "scaling": scaling, "rounding": rounding, "elapsed_s": time.monotonic() - started}
    common.write_json(args.out / "several_bounds.json", payload)
    print(f"json: {args.out / 'several_bounds.json'}")
    return 0 if all(r["status"] != "FAIL" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
