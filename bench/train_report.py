"""Tables and plots of bench/train.py's results (a train.json payload).

* Test accuracy, mean +- std over seeds (sample std, ddof = 1), one table per (network,
  dataset): a row per method, a column per density. ``c`` counts runs in which a layer kept
  no weight (layer collapse; for a freeze-mode method: no trained weight, the frozen ones
  still pass the signal), ``inf`` runs whose COPS problem was infeasible, ``div`` runs
  whose training loss stopped being finite (both left out of the mean).
* COPS against the single scores: at every density, each COPS method against the best single
  score (the mask methods with one score other than random, best by mean), and FreezeNet
  against SNIP. The verdict is ``beats`` / ``loses`` when the means differ by more than the
  sum of the two standard deviations, ``ties`` otherwise.
* Mean seconds per run: scores, solve, training.
* A PNG: test accuracy against density (log axis), one line per method, error bars = std.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from . import _common as common

__all__ = ["report", "summarise", "verdict", "plot"]


def summarise(runs: list[dict]) -> dict:
    """``{(network, dataset): {method: {density: stats}}}`` with stats = mean, std, n, collapsed, infeasible."""
    groups: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in runs:
        groups[(run["network"], run["dataset"])][run["method"]][float(run["density"])].append(run)
    out: dict = {}
    for panel, methods in groups.items():
        out[panel] = {}
        for method, by_density in methods.items():
            out[panel][method] = {}
            for density, records in by_density.items():
                accuracies = [r["test_accuracy"] for r in records if r["status"] == "ok"]
                out[panel][method][density] = {
                    "mean": statistics.fmean(accuracies) if accuracies else None,
                    "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                    "n": len(accuracies),
                    "collapsed": sum(bool(r.get("collapsed")) for r in records if r["status"] == "ok"),
                    "infeasible": sum(r["status"] == "infeasible" for r in records),
                    "diverged": sum(r["status"] == "diverged" for r in records),
                }
    return out


def verdict(a: dict, b: dict) -> str:
    """``beats`` / ``loses`` / ``ties`` of a against b (means apart by more than std_a + std_b)."""
    difference = a["mean"] - b["mean"]
    if abs(difference) <= a["std"] + b["std"]:
        return "ties"
    return "beats" if difference > 0 else "loses"


def _cell(stats: dict | None) -> str:
    if stats is None:
        return "-"
    text = "-" if stats["mean"] is None else f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"
    flags = [f"{stats[k]}{tag}" for k, tag in (("collapsed", "c"), ("infeasible", "inf"), ("diverged", "div"))
             if stats[k]]
    return text + (f" ({', '.join(flags)})" if flags else "")


def _order(payload: dict, present) -> list[str]:
    listed = [m for m in payload.get("methods", {}) if m in present]
    return listed + sorted(set(present) - set(listed))


def _kind(payload: dict, method: str) -> dict:
    info = payload.get("methods", {}).get(method)
    return info if isinstance(info, dict) else {"scores": [], "mode": "mask", "description": str(info)}


def report(payload: dict, png: Path | None = None) -> str:
    """The text of every table (Markdown-compatible); writes the plot to ``png`` when given."""
    summary = summarise(payload["runs"])
    lines = [f"Machine: {common.machine_line(payload['machine'])}"]
    for name, config in payload.get("configs", {}).items():
        lines.append(f"Training {name}: " + ", ".join(f"{k} {v}" for k, v in config.items()))
    for panel in sorted(summary):
        methods = summary[panel]
        densities = sorted({d for m in methods.values() for d in m}, reverse=True)
        order = _order(payload, methods)
        n_seeds = max(s["n"] + s["infeasible"] + s["diverged"] for m in methods.values() for s in m.values())
        lines += ["", f"Test accuracy (%) of {panel[0]} on {panel[1]}, mean ± std over {n_seeds} seeds", ""]
        lines.append(common.table(["method"] + [f"{100 * d:g}%" for d in densities],
                                  [[m] + [_cell(methods[m].get(d)) for d in densities] for m in order]))
        lines.append("(c: runs where a layer keeps no weight, for freezenet no trained weight; inf: infeasible "
                     "COPS problem; div: training diverged; inf and div runs are left out of the mean)")
        lines += ["", _comparison(payload, panel, methods, densities, order)]
    lines += ["", "Mean seconds per run (score computation, solve, training)", "", _times(payload)]
    if png is not None and summary:
        lines += ["", plot(summary, payload, png) or "(no plot: matplotlib is not installed)"]
    return "\n".join(lines)


def _comparison(payload: dict, panel, methods: dict, densities, order) -> str:
    kinds = {m: _kind(payload, m) for m in order}
    singles = [m for m in order if len(kinds[m]["scores"]) == 1 and kinds[m]["mode"] == "mask"
               and kinds[m]["scores"] != ["random"]]
    cops = [m for m in order if len(kinds[m]["scores"]) > 1]
    pairs = [(m, None) for m in cops]
    if "freezenet" in methods and "snip" in methods:
        pairs.append(("freezenet", "snip"))
    rows = []
    for density in densities:
        ok = {m: methods[m][density] for m in order if density in methods[m] and methods[m][density]["mean"] is not None}
        best = max((m for m in singles if m in ok), key=lambda m: ok[m]["mean"], default=None)
        for method, against in pairs:
            against = against or best
            if method not in ok or against not in ok:
                continue
            delta = 100 * (ok[method]["mean"] - ok[against]["mean"])
            rows.append([f"{100 * density:g}%", method, _cell(ok[method]), against, _cell(ok[against]),
                         f"{delta:+.2f}", verdict(ok[method], ok[against])])
    if not rows:
        return "(no comparison: no COPS or FreezeNet run next to a single score)"
    return (f"{panel[0]} on {panel[1]}: COPS against the best single score at each density, FreezeNet against "
            "SNIP (beats/loses: means apart by more than the sum of the stds)\n\n"
            + common.table(["density", "method", "accuracy", "against", "accuracy", "diff", "verdict"], rows,
                           ["<", "<", ">", "<", ">", ">", "<"]))


def _times(payload: dict) -> str:
    by_method: dict = defaultdict(lambda: defaultdict(list))
    for run in payload["runs"]:
        if run["status"] == "infeasible":
            continue
        times = by_method[(run["network"], run["method"])]
        times["score"].append(sum(run["score_times"].values()))
        times["solve"].append(run["solve_time"])
        times["train"].append(run["train_time"])
    rows = [[network, method] + [common.fmt_time(statistics.fmean(times[k])) for k in ("score", "solve", "train")]
            for (network, method), times in sorted(by_method.items(), key=lambda kv: kv[0][0])]
    return common.table(["network", "method", "scores", "solve", "training"], rows, ["<", "<", ">", ">", ">"])


def plot(summary: dict, payload: dict, png: Path) -> str | None:
    """Test accuracy against density per (network, dataset); returns a line naming the file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = sorted(summary)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        methods = summary[panel]
        for i, method in enumerate(_order(payload, methods)):
            points = sorted((d, s) for d, s in methods[method].items() if s["mean"] is not None)
            if not points:
                continue
            cops = len(_kind(payload, method)["scores"]) > 1
            ax.errorbar([d for d, _ in points], [100 * s["mean"] for _, s in points],
                        yerr=[100 * s["std"] for _, s in points], label=method, capsize=3, marker="o",
                        markersize=4, linewidth=2.2 if cops else 1.2, linestyle="-" if cops else "--",
                        color=f"C{i % 10}")
        ax.set_xscale("log")
        ax.set_xlabel("density (kept fraction of the weights)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{panel[0]} on {panel[1]}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Pruned at initialisation, then trained: mean ± std over seeds")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return f"plot: {png}"
