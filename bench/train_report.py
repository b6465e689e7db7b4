"""Tables and plots of bench/train.py's results (a train.json payload).

Everything chosen is chosen on validation accuracy; test accuracy is only reported.

* The choices: the learning rate of each network (dense network, selection seeds) and the
  gamma of each tuned COPS method at each density (selection seeds), with the mean
  validation accuracy of every candidate.
* Test accuracy of the test runs, mean ± sample std (ddof = 1) over seeds, one table per
  (network, dataset): the dense network first, a row per method, a column per density.
* Paired comparisons. All methods of one seed share the initial weights, the score batch
  and the data order, so a comparison of method A with method B at one density uses the
  per-seed differences :math:`d_s = a_s - b_s` over the seeds both have: their mean
  :math:`\\bar d`, sample std :math:`s_d` and the t-based 95% confidence interval
  :math:`\\bar d \\pm t_{0.975,\\,n-1}\\, s_d / \\sqrt{n}` (scipy.stats.t). The verdict is
  ``better`` / ``worse`` when the interval excludes 0 and ``n >= 3``, ``tie`` when it holds
  0, ``-`` with fewer than 3 seeds. COPS is compared with each of its own scores and with
  the best single score (the single-score method, random excluded, with the best mean
  validation accuracy at that density), the floors variant also with the same method
  without floors; FreezeNet with SNIP and with SynFlow.
* Where the layer floors bind, the accuracy at several epochs (does a ranking depend on
  the training budget?), and the mean seconds per run.
* PNGs: test accuracy against density; accuracy against epoch at the extreme densities;
  validation accuracy against gamma at one density.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections import defaultdict
from pathlib import Path

from . import _common as common

__all__ = ["paired", "report", "summarise", "STYLES", "style", "plot_density", "plot_epochs", "plot_gamma"]

DENSE = "dense"
#: Colour, marker and line style of every method, the same in every plot.
STYLES = {
    "dense": ("black", "*", ":"),
    "random": ("#9e9e9e", "x", "--"),
    "magnitude": ("#8c564b", "v", "--"),
    "snip": ("#1f77b4", "o", "--"),
    "grasp": ("#bcbd22", "^", "--"),
    "synflow": ("#2ca02c", "s", "--"),
    "freezenet": ("#9467bd", "D", "-."),
    "cops-snip-synflow": ("#d62728", "o", "-"),
    "cops-synflow-snip": ("#ff7f0e", "s", "-"),
    "cops-grasp-synflow": ("#e377c2", "^", "-"),
    "cops-snip-synflow-magnitude": ("#17becf", "P", "-"),
    "cops-snip-synflow-floors": ("#7f0000", "X", (0, (6, 3))),
}
_FALLBACK_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#31a354", "#756bb1")
_FALLBACK_MARKERS = ("h", "p", "<", ">", "d", "1", "2", "3")


def style(method: str) -> tuple[str, str, str]:
    """(colour, marker, line style) of ``method``: :data:`STYLES`, else one fixed by the name's CRC."""
    if method in STYLES:
        return STYLES[method]
    code = zlib.crc32(method.encode())
    return (_FALLBACK_COLOURS[code % len(_FALLBACK_COLOURS)], _FALLBACK_MARKERS[(code // 8) % 8],
            "-" if method.startswith("cops") else "--")


# ----------------------------------------------------------------------------- statistics
def paired(a: dict, b: dict, confidence: float = 0.95) -> dict:
    """Paired comparison of ``a`` and ``b`` (``{seed: accuracy}``) over the seeds both have.

    Returns ``n``, ``mean`` (of :math:`d_s = a_s - b_s`), ``std`` (sample, ddof 1), ``low``,
    ``high`` (the t-based interval :math:`\\bar d \\pm t_{(1+c)/2,\\,n-1}\\, s_d/\\sqrt n`,
    None with fewer than 2 seeds) and ``verdict``: ``better``/``worse`` when ``n >= 3`` and
    the interval excludes 0, ``tie`` when ``n >= 3`` and it holds 0, ``-`` otherwise.
    """
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    differences = [a[s] - b[s] for s in seeds]
    n = len(differences)
    out = {"n": n, "seeds": seeds, "mean": statistics.fmean(differences) if n else None, "std": None,
           "low": None, "high": None, "verdict": "-"}
    if n >= 2:
        std = statistics.stdev(differences)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        out.update(std=std, low=out["mean"] - half, high=out["mean"] + half)
        if n >= 3:
            out["verdict"] = "better" if out["low"] > 0 else "worse" if out["high"] < 0 else "tie"
    return out


def _test_runs(payload: dict) -> list[dict]:
    return [r for r in payload["runs"] if r.get("role", "test") == "test"]


def summarise(runs: list[dict]) -> dict:
    """``{(network, dataset): {method: {density: stats}}}``; stats: the per-seed test and
    validation accuracies of the ``ok`` runs, mean, std, n, gamma(s), collapsed, infeasible,
    diverged."""
    groups: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in runs:
        groups[(run["network"], run["dataset"])][run["method"]][float(run["density"])].append(run)
    out: dict = {}
    for panel, methods in groups.items():
        out[panel] = {}
        for method, by_density in methods.items():
            out[panel][method] = {}
            for density, records in by_density.items():
                ok = [r for r in records if r["status"] == "ok"]
                test = {r["seed"]: r["test_accuracy"] for r in ok}
                out[panel][method][density] = {
                    "test": test, "val": {r["seed"]: r["val_accuracy"] for r in ok},
                    "mean": statistics.fmean(test.values()) if test else None,
                    "val_mean": statistics.fmean(r["val_accuracy"] for r in ok) if ok else None,
                    "std": statistics.stdev(test.values()) if len(test) > 1 else None,
                    "n": len(test), "gammas": sorted({r["gamma"] for r in records if r.get("gamma") is not None}),
                    "collapsed": sum(bool(r.get("collapsed")) for r in ok),
                    "infeasible": sum(r["status"] == "infeasible" for r in records),
                    "diverged": sum(r["status"] == "diverged" for r in records),
                    "runs": records,
                }
    return out


def _pct(value, digits: int = 2, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.{digits}f}" if sign else f"{100 * value:.{digits}f}"


def _cell(stats: dict | None) -> str:
    if stats is None:
        return ""
    text = "-" if stats["mean"] is None else _pct(stats["mean"]) + ("" if stats["std"] is None else
                                                                     f" ± {_pct(stats['std'])}")
    flags = [f"{stats[k]}{tag}" for k, tag in (("collapsed", "c"), ("infeasible", "inf"), ("diverged", "div"))
             if stats[k]]
    return text + (f" ({', '.join(flags)})" if flags else "")


def _order(payload: dict, present) -> list[str]:
    listed = [m for m in payload.get("methods", {}) if m in present]
    rest = sorted(set(present) - set(listed) - {DENSE})
    return ([DENSE] if DENSE in present else []) + listed + rest


def _info(payload: dict, method: str) -> dict:
    info = payload.get("methods", {}).get(method)
    return info if isinstance(info, dict) else {"scores": [], "mode": "mask", "tuned": False}


def _singles(payload: dict, order) -> list[str]:
    """Single-score mask methods other than random: the candidates for "best single score"."""
    return [m for m in order if m != DENSE and _info(payload, m)["scores"] != ["random"]
            and len(_info(payload, m)["scores"]) == 1 and _info(payload, m)["mode"] == "mask"
            and not m.startswith(("interspace", "synflow-rescaled"))]


def _single_of(payload: dict, score: str, order) -> str | None:
    """The single-score mask method of ``score`` (the method named as the score)."""
    return score if score in order and _info(payload, score)["scores"] == [score] else None


# ----------------------------------------------------------------------------- the text
def report(payload: dict, figures: Path | None = None) -> str:
    """The text of every table (Markdown-compatible); writes the plots into ``figures`` when given."""
    lines = [f"Machine: {common.machine_line(payload['machine'])}"]
    settings = payload.get("settings", {})
    if settings:
        lines.append("Training: " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    for name, info in payload.get("datasets", {}).items():
        lines.append(f"Data {name}: {info['description']}")
    test_runs = _test_runs(payload)
    summary = summarise(test_runs)
    lines += ["", _lr_table(payload), "", _gamma_table(payload)]
    for panel in sorted(summary):
        methods = summary[panel]
        densities = sorted({d for m, by in methods.items() if m != DENSE for d in by}, reverse=True)
        order = _order(payload, methods)
        n_seeds = max(s["n"] + s["infeasible"] + s["diverged"] for m in methods.values() for s in m.values())
        lines += ["", f"Test accuracy (%) of {panel[0]} on {panel[1]}: mean ± sample std over {n_seeds} seed(s); "
                      "tuned COPS at the gamma chosen on validation (in brackets)", ""]
        rows = []
        for m in order:
            if m == DENSE:
                rows.append([m] + [_cell(methods[m].get(1.0))] * len(densities))
                continue
            row = [m]
            for d in densities:
                stats = methods[m].get(d)
                gamma = "" if stats is None or not stats["gammas"] else \
                    " [γ " + ",".join(f"{g:g}" for g in stats["gammas"]) + "]"
                row.append(_cell(stats) + gamma)
            rows.append(row)
        lines.append(common.table(["method"] + [f"{100 * d:g}%" for d in densities], rows))
        lines.append("(c: runs where a layer keeps no weight, for freezenet no trained weight; inf: infeasible "
                     "COPS problem; div: training diverged; inf and div runs are left out of the mean)")
        lines += ["", _comparison(payload, panel, methods, densities, order)]
        lines += ["", _budget_table(payload, panel, methods, densities, order)]
    floors = _floors_table(test_runs)
    if floors:
        lines += ["", floors]
    lines += ["", "Mean seconds per test run (score computation, solve, training)", "", _times(test_runs)]
    if figures is not None and summary:
        written = [plot_density(summary, payload, figures / "train_density.png"),
                   plot_epochs(summary, payload, figures / "train_epochs.png"),
                   plot_gamma(payload, figures / "train_gamma.png")]
        lines += [""] + [w for w in written if w] if any(written) else ["", "(no plot: matplotlib is not installed)"]
    return "\n".join(lines)


def _selection_runs(payload: dict, role: str) -> dict:
    groups: dict = defaultdict(lambda: defaultdict(list))
    for run in payload["runs"]:
        if run.get("role") == role:
            key = (run["network"], run["dataset"]) if role == "lr-selection" else \
                (run["network"], run["dataset"], run["method"], float(run["density"]))
            value = run["lr"] if role == "lr-selection" else run["gamma"]
            groups[key][value].append(run["val_accuracy"] if run["status"] == "ok" else 0.0)
    return groups


def _best(candidates: dict):
    means = {v: statistics.fmean(a) for v, a in candidates.items()}
    return max(means, key=lambda v: (means[v], -list(means).index(v))), means


def _lr_table(payload: dict) -> str:
    groups = _selection_runs(payload, "lr-selection")
    if not groups:
        return "Learning rate: not selected in this file (a grid of one value per network)."
    rows, curves = [], []
    for (network, dataset), candidates in sorted(groups.items()):
        best, means = _best(candidates)
        n = max(len(a) for a in candidates.values())
        rows.append([network, dataset, n] + [f"{v:g}: {_pct(means[v])}" + (" *" if v == best else "")
                                            for v in sorted(candidates, reverse=True)])
        runs = [r for r in payload["runs"] if r.get("role") == "lr-selection" and r["network"] == network
                and r["dataset"] == dataset and r["lr"] == best]
        epochs = sorted({e for r in runs for e in (r.get("curve") or {}).get("epoch", [])})
        curves.append(f"{network}: dense validation accuracy (%) at lr {best:g} after epoch "
                      + ", ".join(f"{e}: {_pct(_curve_mean(runs, e, 'val'))}" for e in epochs))
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    return ("Learning rate chosen on the dense network's validation accuracy at the last epoch (mean over the "
            "selection seeds; * chosen)\n\n"
            + common.table(["network", "dataset", "seeds"] + [f"lr {i + 1}" for i in range(width - 3)], rows,
                           ["<", "<", ">"] + [">"] * (width - 3))
            + "\n\n" + "\n".join(curves))


def _gamma_table(payload: dict) -> str:
    groups = _selection_runs(payload, "gamma-selection")
    if not groups:
        return "gamma: not selected in this file (a grid of one value)."
    gammas = sorted({g for c in groups.values() for g in c})
    rows = []
    for (network, dataset, method, density), candidates in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2], -kv[0][3])):
        best, means = _best(candidates)
        rows.append([network, method, f"{100 * density:g}%"] +
                    [(_pct(means[g], 1) + ("*" if g == best else "")) if g in means else "" for g in gammas])
    seeds = max(len(a) for c in groups.values() for a in c.values())
    return (f"gamma chosen on validation accuracy (%, mean over {seeds} selection seed(s), last epoch; * chosen; "
            "an infeasible run counts as 0)\n\n"
            + common.table(["network", "method", "density"] + [f"γ {g:g}" for g in gammas], rows,
                           ["<", "<", ">"] + [">"] * len(gammas)))


def _comparison(payload: dict, panel, methods: dict, densities, order) -> str:
    singles = _singles(payload, order)
    rows = []
    for density in densities:
        present = {m: methods[m][density] for m in order if density in methods[m] and methods[m][density]["n"]}
        best = max((m for m in singles if m in present), key=lambda m: present[m]["val_mean"], default=None)
        pairs = []
        for method in order:
            info = _info(payload, method)
            if method not in present or len(info["scores"]) < 2:
                continue
            own = [_single_of(payload, s, order) for s in info["scores"]]
            pairs += [(method, o, "own score") for o in own if o]
            if info.get("gamma_of") in present:
                pairs.append((method, info["gamma_of"], "same gamma, no floors"))
            if best is not None:
                pairs.append((method, best, "best single (val)"))
        if "freezenet" in present:
            pairs += [("freezenet", m, "") for m in ("snip", "synflow") if m in present]
        for method, against, why in pairs:
            if against not in present:
                continue
            result = paired(present[method]["test"], present[against]["test"])
            ci = "-" if result["low"] is None else f"[{_pct(result['low'], sign=True)}, {_pct(result['high'], sign=True)}]"
            rows.append([f"{100 * density:g}%", method, f"{against}" + (f" ({why})" if why else ""), result["n"],
                         _pct(result["mean"], sign=True), ci, result["verdict"]])
    if not rows:
        return "(no comparison: no COPS or FreezeNet run next to a single score)"
    return (f"{panel[0]} on {panel[1]}: paired test-accuracy differences (points), method minus against, over the "
            "seeds both have; 95% t-interval of the mean difference; better/worse when it excludes 0 "
            "(n >= 3), else tie\n\n"
            + common.table(["density", "method", "against", "n", "mean diff", "95% CI", "verdict"], rows,
                           ["<", "<", "<", ">", ">", ">", "<"]))


def _curve_mean(records: list[dict], epoch: int, part: str):
    values = []
    for r in records:
        curve = r.get("curve") or {}
        if r["status"] == "ok" and epoch in curve.get("epoch", []):
            values.append(curve[part][curve["epoch"].index(epoch)])
    return statistics.fmean(values) if values else None


def _budget_table(payload: dict, panel, methods: dict, densities, order) -> str:
    if not densities:
        return ""
    extremes = sorted({max(densities), min(densities)}, reverse=True)
    epochs = sorted({e for m in methods.values() for s in m.values() for r in s["runs"]
                     for e in (r.get("curve") or {}).get("epoch", [])})
    shown = sorted({e for e in epochs if e in (5, 10, 20)} | set(epochs[-1:]))
    rows = []
    for density in extremes:
        for m in order:
            stats = methods[m].get(1.0 if m == DENSE else density)
            if stats is None:
                continue
            rows.append([f"{100 * density:g}%", m] + [_pct(_curve_mean(stats["runs"], e, "test")) for e in shown])
    return (f"{panel[0]} on {panel[1]}: mean test accuracy (%) after epoch ... (the last column is the table's); "
            "does a ranking depend on the training budget?\n\n"
            + common.table(["density", "method"] + [f"epoch {e}" for e in shown], rows,
                           ["<", "<"] + [">"] * len(shown)))


def _floors_table(runs: list[dict]) -> str:
    groups: dict = defaultdict(list)
    for run in runs:
        if run["status"] == "ok" and run.get("floors"):
            groups[(run["network"], run["method"], float(run["density"]))].append(run["floors"])
    if not groups:
        return ""
    rows = [[network, method, f"{100 * density:g}%", len(floors), sum(f["mask_changed"] for f in floors),
             ", ".join(sorted({name for f in floors for name in f["at_floor"]})) or "none"]
            for (network, method, density), floors in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][2]))]
    return ("Layer floors (test runs): in how many runs the floors changed the mask (against the same scores and "
            "gamma without floors), and the layers kept at exactly their floor\n\n"
            + common.table(["network", "method", "density", "runs", "mask changed", "layers at their floor"], rows,
                           ["<", "<", ">", ">", ">", "<"]))


def _times(runs: list[dict]) -> str:
    by_method: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run["status"] == "infeasible":
            continue
        times = by_method[(run["network"], run["method"])]
        times["score"].append(sum(run.get("score_times", {}).values()))
        times["solve"].append(run.get("solve_time", 0.0))
        times["train"].append(run["train_time"])
    rows = [[network, method] + [common.fmt_time(statistics.fmean(times[k])) for k in ("score", "solve", "train")]
            for (network, method), times in sorted(by_method.items(), key=lambda kv: kv[0][0])]
    return common.table(["network", "method", "scores", "solve", "training"], rows, ["<", "<", ">", ">", ">"])


# ----------------------------------------------------------------------------- plots
def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _interval(stats: dict) -> float:
    """Half-width of the t-based 95% interval of the mean test accuracy (0 with one seed)."""
    from scipy import stats as sps

    if stats["n"] < 2:
        return 0.0
    return float(sps.t.ppf(0.975, stats["n"] - 1)) * stats["std"] / math.sqrt(stats["n"])


def _legend(fig, axes) -> None:
    """One legend for the figure, every method once, right of the panels."""
    handles: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)


def _save(fig, png: Path, plt) -> str:
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f"plot: {png}"


def _seeds_text(summary: dict) -> str:
    counts = sorted({s["n"] for m in summary.values() for by in m.values() for s in by.values() if s["n"]})
    if not counts:
        return "no run"
    if counts[-1] == 1:
        return "one seed, no error bars"
    span = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else f"{counts[0]}"
    return f"mean over {span} seeds, bars: 95% t-interval of the mean"


def plot_density(summary: dict, payload: dict, png: Path) -> str | None:
    """Test accuracy against density per (network, dataset), dense as a horizontal line."""
    plt = _pyplot()
    if plt is None:
        return None
    panels = sorted(summary)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        methods = summary[panel]
        for method in _order(payload, methods):
            colour, marker, line = style(method)
            if method == DENSE:
                stats = methods[method].get(1.0)
                if stats and stats["mean"] is not None:
                    ax.axhline(100 * stats["mean"], color=colour, linestyle=line, label="dense")
                continue
            points = sorted((d, s) for d, s in methods[method].items() if s["mean"] is not None)
            if not points:
                continue
            ax.errorbar([d for d, _ in points], [100 * s["mean"] for _, s in points],
                        yerr=[100 * _interval(s) for _, s in points], label=method, capsize=3, marker=marker,
                        markersize=7 if method.endswith("floors") else 5, linewidth=1.6 if line == "-" else 1.1,
                        linestyle=line, color=colour, alpha=0.9,
                        markerfacecolor="none" if method.endswith("floors") else colour)
        ax.set_xscale("log")
        ticks = sorted({d for m, by in methods.items() if m != DENSE for d in by})
        ax.set_xticks(ticks, [f"{100 * d:g}%" for d in ticks])
        ax.minorticks_off()
        ax.set_xlabel("density (kept fraction of the weights, log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{panel[0]} on {panel[1]}")
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes[0])
    fig.suptitle(f"Pruned at initialisation, then trained: test accuracy\n({_seeds_text(summary)}; "
                 "COPS at the gamma chosen on validation)")
    return _save(fig, png, plt)


def plot_epochs(summary: dict, payload: dict, png: Path) -> str | None:
    """Mean test accuracy against epoch at the highest and lowest density of each network."""
    plt = _pyplot()
    if plt is None:
        return None
    cells = []
    for panel in sorted(summary):
        densities = sorted({d for m, by in summary[panel].items() if m != DENSE for d in by})
        cells += [(panel, d) for d in sorted({densities[-1], densities[0]}, reverse=True)] if densities else []
    if not cells:
        return None
    fig, axes = plt.subplots(1, len(cells), figsize=(5.5 * len(cells), 4.8), squeeze=False)
    for ax, (panel, density) in zip(axes[0], cells):
        methods = summary[panel]
        for method in _order(payload, methods):
            stats = methods[method].get(1.0 if method == DENSE else density)
            if stats is None:
                continue
            epochs = sorted({e for r in stats["runs"] for e in (r.get("curve") or {}).get("epoch", [])})
            values = [(e, _curve_mean(stats["runs"], e, "test")) for e in epochs]
            values = [(e, v) for e, v in values if v is not None]
            if not values:
                continue
            colour, marker, line = style(method)
            ax.plot([e for e, _ in values], [100 * v for _, v in values], color=colour, marker=marker,
                    markersize=7 if method.endswith("floors") else 4, linestyle=line, label=method,
                    markerfacecolor="none" if method.endswith("floors") else colour)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%), mean over seeds")
        ax.set_title(f"{panel[0]}, density {100 * density:g}%")
        ax.grid(True, alpha=0.3)
    _legend(fig, axes[0])
    fig.suptitle("Test accuracy after each recorded epoch, at the highest and lowest density (test runs)\n"
                 "the learning rate follows a cosine over all epochs: epoch 10 of 30 is not a 10-epoch run")
    return _save(fig, png, plt)


def plot_gamma(payload: dict, png: Path) -> str | None:
    """Validation accuracy against gamma for every tuned method, one panel per (network,
    density) of the gamma-selection runs; a gamma at which a run was infeasible is left off
    the line and named in the legend."""
    plt = _pyplot()
    runs = [r for r in payload["runs"] if r.get("role") == "gamma-selection"]
    if plt is None or not runs:
        return None
    cells = sorted({(r["network"], r["dataset"], float(r["density"])) for r in runs}, key=lambda c: (c[0], c[1], -c[2]))
    fig, axes = plt.subplots(1, len(cells), figsize=(5.2 * len(cells), 4.6), squeeze=False)
    for ax, (network, dataset, density) in zip(axes[0], cells):
        cell = [r for r in runs if (r["network"], r["dataset"], float(r["density"])) == (network, dataset, density)]
        seeds = len({r["seed"] for r in cell})
        for method in _order(payload, {r["method"] for r in cell}):
            by_gamma: dict = defaultdict(list)
            for r in cell:
                if r["method"] == method:
                    by_gamma[r["gamma"]].append(r)
            failed = sorted(g for g, rs in by_gamma.items() if any(r["status"] != "ok" for r in rs))
            points = sorted((g, statistics.fmean(r["val_accuracy"] for r in rs)) for g, rs in by_gamma.items()
                            if g not in failed)
            colour, marker, line = style(method)
            label = method + (f" (infeasible at γ {', '.join(f'{g:g}' for g in failed)})" if failed else "")
            ax.plot([g for g, _ in points], [100 * v for _, v in points], color=colour, marker=marker,
                    linestyle=line, label=label)
        ax.set_xlabel("gamma (bound on each secondary score / its top-k sum)")
        ax.set_ylabel(f"validation accuracy (%), {seeds} selection seed(s)")
        ax.set_title(f"{network} on {dataset}, density {100 * density:g}%")
        ax.grid(True, alpha=0.3)
    _legend(fig, axes[0])
    fig.suptitle("Choosing gamma: validation accuracy of the selection runs against gamma (the chosen gamma is the "
                 "highest point of each line)")
    return _save(fig, png, plt)
