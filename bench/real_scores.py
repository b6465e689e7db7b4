"""COPS on real pruning scores: SNIP and SynFlow of VGG-16, ResNet-18 and ResNet-50 at
initialisation, solved by every method.

    python bench/real_scores.py [--models vgg16 resnet18 resnet50] [--density 0.05 0.01] [--tiny]

Needs torch (the scores come from torch_adapter.scores); without it the script says so and
exits with status 0. The networks are built in bench/models.py (no torchvision) with a fixed
seed. SNIP uses one batch of random inputs (standard normal) and random labels (no dataset
is needed or downloaded; SNIP's values then reflect the initialisation, not a task); SynFlow
is data-free (float64, as torch_adapter computes it by default).

Problem: primary score SNIP, secondary score SynFlow, k = density * D, gamma = 0.9.
Methods run in a worker process (bench/_worker.py) on the saved score arrays, timed as in
bench/scaling.py (median of --repeats runs of ``copslp.solve``, its wall_time; one
``np.partition`` of the SNIP vector as the baseline):

* full D (11-26 million): analytic, two_score, the baseline; generic LP solvers only where
  D <= --generic-max-d (default 2e6: HiGHS needs about 20 s at D = 1e6 already);
* a random subsample of --subsample elements (default 1e5, the same elements of both scores):
  every method, so that each can be compared with analytic on real score distributions.

Agreement: relative difference of the LP objective to analytic's on the same arrays.
Output in --out (default bench/results/real_scores): real_scores.json, real_scores.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.ensure_paths()

import numpy as np  # noqa: E402

GENERIC = ("highs", "scipy", "cvxpy", "milp")
ORDER = ("partition", "analytic", "two_score", "highs", "scipy", "cvxpy", "milp")
MILP_MAX_SIZE = 2000


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/real_scores.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet18", "resnet50"],
                        choices=["vgg16", "resnet18", "resnet50"])
    parser.add_argument("--density", nargs="+", type=float, default=[0.05, 0.01], help="kept fractions k / D")
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--batch", type=int, default=None, help="SNIP batch size (default 32; 8 for 224x224)")
    parser.add_argument("--subsample", type=float, default=1e5, help="elements in the every-method subsample")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="seconds one run of a generic method may take (killed beyond)")
    parser.add_argument("--generic-max-d", type=float, default=2e6, help="generic solvers skip larger D")
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier of the networks")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable CPUs)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input height and width for every model (default: 32 for VGG-16 and ResNet-18, 224 for ResNet-50)")
    parser.add_argument("--tiny", action="store_true",
                        help="width 1/16, 64x64 inputs, batch 2, subsample 2000, one run, generic methods on the "
                             "subsample only: for tests")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep-arrays", action="store_true", help="keep the saved score arrays (.npy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-json", type=Path, default=None,
                        help="measure nothing: print the tables of an earlier run's real_scores.json")
    args = parser.parse_args(argv)
    if args.tiny:
        args.width = 1 / 16
        args.batch = args.batch or 2
        args.subsample = 2000
        args.repeats = 1
        args.density = args.density[:1]
        args.time_budget = min(args.time_budget, 20.0)
        args.generic_max_d = min(args.generic_max_d, 1e4)
        args.image_size = args.image_size or 64
    if args.out is None:
        args.out = common.RESULTS / ("real_scores-tiny" if args.tiny else "real_scores")
    return args


def score_stats(s0: np.ndarray, s1: np.ndarray, k: int) -> dict:
    """What the two scores look like: zeros, dynamic range, log-correlation, and how much of
    SynFlow's best the plain SNIP top-k keeps (the gamma at which the bound starts to bind)."""
    def dynamic_range(s):
        pos = s[s > 0]
        return float(np.log10(pos.max() / pos.min())) if pos.size else None

    both = (s0 > 0) & (s1 > 0)
    log_corr = float(np.corrcoef(np.log(s0[both]), np.log(s1[both]))[0, 1]) if both.sum() > 2 else None
    d = s0.shape[0]
    top = np.argpartition(s0, d - k)[d - k:]
    best1 = float(np.partition(s1, d - k)[d - k:].sum())
    return {
        "zeros_snip": float(np.mean(s0 == 0)), "zeros_synflow": float(np.mean(s1 == 0)),
        "decades_snip": dynamic_range(s0), "decades_synflow": dynamic_range(s1),
        "log_correlation": log_corr,
        "snip_topk_synflow_share": float(s1[top].sum()) / best1 if best1 > 0 else None,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        import json

        payload = json.loads(args.from_json.read_text())
        print(report_text(payload).replace("\n", f"\n(tables rendered from {args.from_json}: measured by the "
                                                  f"command below)\n", 1))
        return 0
    try:
        import torch
        from torch import nn
    except ImportError:
        print("real_scores: torch is not installed; install copslp[torch] to run this benchmark")
        return 0
    import models as model_zoo
    from torch_adapter import scores as torch_scores

    args.out.mkdir(parents=True, exist_ok=True)
    arrays = args.out / "arrays"
    arrays.mkdir(exist_ok=True)
    torch.set_num_threads(args.threads or common.machine_description()["cpus_usable"] or 1)
    machine = common.machine_description()
    payload = {"benchmark": "real_scores",
               "command": "python bench/real_scores.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine, "torch_threads": torch.get_num_threads(),
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "models": [], "solves": []}
    import copslp

    available = copslp.available_methods()
    log_path = args.out / "worker.log"
    log_path.write_text("")
    started = time.monotonic()
    n_jobs = len(args.models) * len(args.density) * 2
    bar = common.progress(len(args.models) * 2 + n_jobs, "real_scores")
    with common.Worker(log_path=log_path) as worker:
        for name in args.models:
            bar.set_postfix_str(f"{name}: scores")
            model, shape, classes = model_zoo.build(name, width=args.width, seed=args.seed)
            if args.image_size:
                shape = (shape[0], args.image_size, args.image_size)
            generator = torch.Generator().manual_seed(args.seed)
            batch = args.batch or (8 if shape[-1] >= 224 else 32)
            inputs = torch.randn((batch, *shape), generator=generator)
            labels = torch.randint(0, classes, (batch,), generator=generator)
            t = time.perf_counter()
            snip = torch_scores.snip(model, nn.CrossEntropyLoss(), [(inputs, labels)])
            snip_time = time.perf_counter() - t
            bar.update(1)
            t = time.perf_counter()
            synflow = torch_scores.synflow(model, input_shape=shape)
            synflow_time = time.perf_counter() - t
            bar.update(1)
            s = np.stack([snip.numpy(np.float64), synflow.numpy(np.float64)])
            layout = snip.layout
            d = s.shape[1]
            del model, snip, synflow, inputs
            full_path = arrays / f"{name}.npy"
            np.save(full_path, s)
            m = int(min(args.subsample, d))
            pick = np.sort(np.random.default_rng([args.seed, d]).choice(d, m, replace=False))
            sub_path = arrays / f"{name}-subsample.npy"
            np.save(sub_path, np.ascontiguousarray(s[:, pick]))
            info = {"model": name, "size": d, "layers": layout.n_layers, "input_shape": list(shape),
                    "snip_batch": batch, "snip_time": snip_time, "synflow_time": synflow_time,
                    "subsample": m, "stats": {}}
            for density in args.density:
                info["stats"][str(density)] = score_stats(s[0], s[1], max(1, round(density * d)))
            payload["models"].append(info)
            del s

            for density in args.density:
                for problem, path, size in (("full", full_path, d), ("subsample", sub_path, m)):
                    methods = [x for x in ORDER if x == "partition" or x in available]
                    skipped = {}
                    for x in list(methods):
                        if x in GENERIC and (size > args.generic_max_d or (x == "milp" and size > MILP_MAX_SIZE)):
                            methods.remove(x)
                            skipped[x] = (f"D > {MILP_MAX_SIZE}" if x == "milp"
                                          else f"D > --generic-max-d = {args.generic_max_d:g}")
                    spec = {"path": str(path), "n_scores": 2, "size": size, "budget": max(1, round(density * size)),
                            "gamma": args.gamma, "methods": methods, "repeats": args.repeats, "trace": [],
                            "options": {"highs": {"solver": "ipm", "presolve": "off"}}, "warmup_below": 1.0,
                            "family": None, "dtype": "float64", "seed": args.seed}
                    budgets = {x: (args.time_budget if x in GENERIC else 1800.0) for x in methods}
                    bar.set_postfix_str(f"{name} {problem} density {density:g}")
                    to_run = list(methods)
                    outcomes = {}
                    while to_run:  # after a timeout the worker is restarted for the rest
                        report = worker.run(dict(spec, methods=to_run), budgets=budgets)
                        outcomes.update({x: o for x, o in report.outcomes.items() if o.status != "pending"})
                        rest = [x for x in to_run if report.outcomes[x].status == "pending"]
                        to_run = [] if rest == to_run else rest
                    bar.update(1)
                    record_solves(payload, name, density, problem, size, outcomes, skipped)
                    common.write_json(args.out / "real_scores.json", payload)
            if not args.keep_arrays:
                full_path.unlink()
                sub_path.unlink()
    bar.close()
    payload["elapsed_s"] = time.monotonic() - started
    payload["load_average_end"] = common.load_average()
    common.write_json(args.out / "real_scores.json", payload)
    text = report_text(payload)
    print(text)
    (args.out / "real_scores.txt").write_text(text + "\n")
    print(f"json: {args.out / 'real_scores.json'}")
    return 0


def record_solves(payload, name, density, problem, size, outcomes, skipped) -> None:
    ref = outcomes.get("analytic")
    ref_run = ref.runs[-1] if ref is not None and ref.status == "ok" and ref.runs else None
    part = outcomes.get("partition")
    t_part = common.median(r["time"] for r in part.runs) if part is not None and part.runs else None
    for method in ORDER:
        base = {"model": name, "density": density, "problem": problem, "size": size, "method": method}
        if method in skipped:
            payload["solves"].append({**base, "status": "skipped", "why": skipped[method]})
            continue
        outcome = outcomes.get(method)
        if outcome is None:
            continue
        times = [r["time"] for r in outcome.runs]
        last = outcome.runs[-1] if outcome.runs else {}
        record = {**base, "status": outcome.status, "error": outcome.error, "times": times,
                  "median_time": common.median(times), "n_runs": len(times),
                  "median_method_time": common.median(r.get("method_time") for r in outcome.runs),
                  "objective": last.get("objective"), "mask_objective": last.get("mask_objective"),
                  "multipliers": last.get("multipliers"), "info": last.get("info"),
                  "warnings": sorted({w for r in outcome.runs for w in r.get("warnings", [])}),
                  "peak_rss": max((r["peak_rss"] for r in outcome.runs), default=None)}
        if record["median_time"] and t_part:
            record["ratio_to_partition"] = record["median_time"] / t_part
        if ref_run is not None and method not in ("analytic", "partition") and record["objective"] is not None:
            if method == "milp":
                tol = 1e-9 * max(abs(ref_run["objective"]), 1.0)
                record["milp_within_lp_bounds"] = bool(
                    ref_run["mask_objective"] - tol <= record["objective"] <= ref_run["objective"] + tol)
            else:
                record["rel_diff_vs_analytic"] = common.rel_diff(record["objective"], ref_run["objective"])
                if record["multipliers"] and ref_run["multipliers"]:
                    record["multiplier_rel_diff"] = common.rel_diff(record["multipliers"][0], ref_run["multipliers"][0])
        payload["solves"].append(record)


def summary_table(payload) -> str:
    """One row per (model, density, problem): each method's median time, the ratio analytic /
    np.partition, the worst disagreement with analytic."""
    keys = []
    for r in payload["solves"]:
        key = (r["model"], r["density"], r["problem"], r["size"])
        if key not in keys:
            keys.append(key)
    methods = [m for m in ORDER if m != "milp" or any(
        r["method"] == "milp" and r["status"] != "skipped" for r in payload["solves"])]
    rows = []
    for key in keys:
        cells = {r["method"]: r for r in payload["solves"] if (r["model"], r["density"], r["problem"], r["size"]) == key}
        row = [key[0], key[1], key[2], f"{key[3]:,}"]
        for m in methods:
            r = cells.get(m)
            if r is None or r["status"] == "skipped":
                row.append("-")
            elif r["status"] == "ok":
                row.append(common.fmt_time(r["median_time"]))
            else:
                row.append(r["status"])
        a = cells.get("analytic", {})
        row.append(f"{a['ratio_to_partition']:.1f}x" if a.get("ratio_to_partition") else "-")
        diffs = [r["rel_diff_vs_analytic"] for r in cells.values() if r.get("rel_diff_vs_analytic") is not None]
        row.append(f"{max(diffs):.1e}" if diffs else "-")
        rows.append(row)
    headers = ["model", "density", "problem", "D"] + methods + ["analytic / partition", "rel. obj. diff"]
    return common.table(headers, rows, ["<", ">", "<", ">"] + [">"] * (len(methods) + 2))


def report_text(payload) -> str:
    s = payload["settings"]
    lines = ["# COPS on real scores (SNIP primary, SynFlow secondary)",
             f"machine: {common.machine_line(payload['machine'])}; torch {payload['machine']['versions']['torch']}, "
             f"{payload['torch_threads']} threads",
             f"command: {payload['command']}",
             f"gamma = {s['gamma']:g}; median of {s['repeats']} runs (wall_time of copslp.solve); generic methods "
             f"killed after {s['time_budget']:g} s per run; elapsed {payload.get('elapsed_s', 0):.0f} s; load average at "
             f"the end {payload.get('load_average_end')}", ""]
    rows = []
    for m in payload["models"]:
        for density, st in m["stats"].items():
            rows.append([m["model"], f"{m['size']:,}", m["layers"], m["snip_batch"], common.fmt_time(m["snip_time"]),
                         common.fmt_time(m["synflow_time"]), float(density),
                         f"{st['zeros_snip']:.1%} / {st['zeros_synflow']:.1%}",
                         f"{st['decades_snip']:.1f} / {st['decades_synflow']:.1f}" if st["decades_snip"] is not None
                         and st["decades_synflow"] is not None else "-",
                         "-" if st["log_correlation"] is None else f"{st['log_correlation']:.2f}",
                         "-" if st["snip_topk_synflow_share"] is None else f"{st['snip_topk_synflow_share']:.3f}"])
    lines += ["## scores", common.table(
        ["model", "D", "layers", "SNIP batch", "SNIP time", "SynFlow time", "density", "zeros SNIP / SynFlow",
         "decades SNIP / SynFlow", "corr(log SNIP, log SynFlow)", "SynFlow share kept by SNIP top-k"], rows), "",
        "SynFlow share kept by SNIP top-k: <SynFlow, top-k mask of SNIP> / (best any k-mask reaches); the "
        "bound binds when gamma is above it.", ""]
    lines += ["## solve time per method (median) and agreement with analytic", summary_table(payload), "",
              "rel. obj. diff: the largest |objective - analytic's| / analytic's over the methods of the row; "
              "generic solvers run on the full D only where D <= --generic-max-d "
              f"({s['generic_max_d']:g}), on the subsample always.", ""]
    rows = []
    for r in payload["solves"]:
        if r["status"] == "skipped":
            rows.append([r["model"], r["density"], r["problem"], f"{r['size']:,}", r["method"], "skipped: " + r["why"],
                         "", "", "", ""])
            continue
        t = common.fmt_time(r["median_time"]) if r["status"] == "ok" else r["status"]
        ratio = f"{r['ratio_to_partition']:.1f}x" if r.get("ratio_to_partition") and r["method"] != "partition" else ""
        if "rel_diff_vs_analytic" in r:
            agree = f"{r['rel_diff_vs_analytic']:.1e}"
        elif "milp_within_lp_bounds" in r:
            agree = "binary opt. in [mask, LP]: " + ("yes" if r["milp_within_lp_bounds"] else "NO")
        else:
            agree = ""
        lam = "" if not r.get("multipliers") else f"{r['multipliers'][0]:.4g}"
        rows.append([r["model"], r["density"], r["problem"], f"{r['size']:,}", r["method"], t, r.get("n_runs", ""),
                     ratio, lam, agree])
    lines += ["## every solve", common.table(
        ["model", "density", "problem", "D", "method", "time (median)", "runs", "time / np.partition", "lambda",
         "rel. obj. diff vs analytic"], rows, ["<", ">", "<", ">", "<", ">", ">", ">", ">", ">"]), ""]
    problems = []
    for r in payload["solves"]:
        where = f"{r['model']} density {r['density']} {r['problem']} {r['method']}"
        if r["status"] in ("error", "crashed", "timed_out"):
            problems.append(f"{where}: {r['status']}: {r.get('error')}")
        if (r.get("rel_diff_vs_analytic") or 0) > 1e-6:
            problems.append(f"{where}: objective differs from analytic by {r['rel_diff_vs_analytic']:.2e}")
        if r.get("milp_within_lp_bounds") is False:
            problems.append(f"{where}: binary optimum outside [analytic mask, LP]")
        for w in r.get("warnings") or ():
            problems.append(f"{where}: warning: {w}")
    lines.append("## timeouts, failures, disagreements (> 1e-6 relative) and warnings")
    lines += [f"- {p}" for p in problems] or ["- none"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
