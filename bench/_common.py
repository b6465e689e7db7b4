"""Shared pieces of the benchmarks in bench/: generated problems, the solve worker protocol,
memory readings, the machine description, slopes and tables.

Not part of the copslp package; the scripts import it from their own folder.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
WORKER = BENCH / "_worker.py"

#: Score families of the generated problems.
FAMILIES = ("uniform", "lognormal")
FAMILY_TEXT = {
    "uniform": "i.i.d. uniform [0, 1), independent scores",
    "lognormal": "lognormal exp(2 z), log-scores Gaussian with correlation 0.6 between s_0 and each s_i",
}
LOGNORMAL_SIGMA = 2.0
LOGNORMAL_RHO = 0.6

#: Pseudo-methods timed by the worker beside the solver methods.
BASELINES = ("partition", "sort")
BASELINE_TEXT = {
    "partition": "np.partition(s_0, D - k): one selection of the primary score",
    "sort": "np.sort(s_0): one full sort of the primary score",
}
LINE_PREFIX = "@@ "


def ensure_paths() -> None:
    """Make the source tree's copslp (and torch_adapter) importable ahead of anything installed."""
    root = str(ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


# ----------------------------------------------------------------------------- problems
def make_scores(family: str, n_scores: int, size: int, *, seed: int = 0, dtype=np.float64) -> np.ndarray:
    """Scores of shape (n_scores, size), row 0 primary, generated deterministically.

    ``uniform``: every row i.i.d. uniform on [0, 1), rows independent.
    ``lognormal``: heavy-tailed and correlated like real pruning scores: ``s_i = exp(sigma z_i)``
    with ``z_0`` standard normal and ``z_i = rho z_0 + sqrt(1 - rho^2) e_i`` (i >= 1).
    Generated in place in ``dtype`` (float32 at D = 1e8 keeps the peak memory at the array).
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([seed, size, n_scores, FAMILIES.index(family)])
    scores = np.empty((n_scores, size), dtype=dtype)
    if family == "uniform":
        for row in scores:
            rng.random(out=row, dtype=dtype)
    elif family == "lognormal":
        z0 = scores[0]
        rng.standard_normal(out=z0, dtype=dtype)
        scale = math.sqrt(1.0 - LOGNORMAL_RHO ** 2)
        for row in scores[1:]:
            rng.standard_normal(out=row, dtype=dtype)
            row *= scale
            row += (LOGNORMAL_RHO * z0).astype(dtype, copy=False)
        for row in scores[::-1]:  # z_0 last: the others need it
            row *= LOGNORMAL_SIGMA
            np.exp(row, out=row)
    else:
        raise ValueError(f"unknown score family {family!r}; choose from {FAMILIES}")
    return scores


def checksum(scores: np.ndarray) -> float:
    """A cheap fingerprint of the arrays (to check that two processes generated the same ones)."""
    step = max(1, scores.shape[1] // 4096)
    return float(np.float64(scores[:, ::step].astype(np.float64).sum()) + scores.shape[1])


def layered_groups(size: int, n_groups: int, n_scores: int, *, spread: float = 0.0,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous groups of unequal sizes (like layers) and per-group score scales.

    Returns ``(groups, scale)``: ``groups[j]`` the group of element j (non-decreasing; sizes
    proportional to exp(U(0, log 30))), ``scale[i, l] = 10 ** U(-spread, spread)`` drawn
    independently for every score i and group l (all ones for ``spread = 0``), a factor for
    score i on group l: layers whose scores are small on every score are the ones plain
    top-k starves.
    """
    rng = np.random.default_rng([seed, size, n_groups, 7])
    weights = np.exp(rng.uniform(0.0, math.log(30.0), n_groups))
    sizes = np.maximum(1, np.floor(weights / weights.sum() * size).astype(np.int64))
    sizes[-1] += size - sizes.sum()
    groups = np.repeat(np.arange(n_groups, dtype=np.int32), sizes)
    scale = 10.0 ** rng.uniform(-spread, spread, (n_scores, n_groups)) if spread else np.ones((n_scores, n_groups))
    return groups, scale


def with_layered_floors(scores: np.ndarray, n_groups: int, floor_fraction: float, *, spread: float = 0.0,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The floors problem of the benchmarks on ``scores`` (scaled in place): groups of
    :func:`layered_groups`, each score multiplied on each group by its factor, and floors of
    ``floor_fraction`` of each group's size (rounded up). Returns ``(groups, floors)``."""
    groups, scale = layered_groups(scores.shape[1], n_groups, scores.shape[0], spread=spread, seed=seed)
    if spread:
        for row, factors in zip(scores, scale):
            row *= factors[groups].astype(scores.dtype)
    return groups, np.ceil(floor_fraction * np.bincount(groups)).astype(np.int64)


#: The floors target's two problems (bench/targets.py): (name, per-group scale spread, gamma,
#: description). "slack": the uniform scores of the other targets (floors hold without being
#: asked for: the cost of handling them). "binding": every score scaled on each group by its own
#: factor 10^U(-1, 1), as layers differ in score scale, so that plain top-k starves most groups;
#: the floors then force 20% of the budget into weak groups and gamma = 0.9 is often
#: infeasible, so this one uses gamma = 0.75.
FLOOR_VARIANTS = (
    ("slack", 0.0, 0.9, "uniform scores"),
    ("binding", 1.0, 0.75, "scores scaled per group by 10^U(-1,1)"),
)


def layered_floors_problems(size: int):
    """The floors target's problems (:data:`FLOOR_VARIANTS`) on ``size`` elements: two uniform
    scores, 50 layer-like groups, floors 1% (:func:`with_layered_floors`), k = size / 20.
    Yields ``(spread, gamma, scores, groups, floors, k)``."""
    for _, spread, gamma, _ in FLOOR_VARIANTS:
        scores = make_scores("uniform", 2, size, seed=0)
        groups, floors = with_layered_floors(scores, 50, 0.01, spread=spread)
        yield spread, gamma, scores, groups, floors, size // 20


def per_filter_problem(size: int, spread: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 scores and groups of 100 consecutive elements (filters); ``spread``: the
    secondary score scaled per group by 10^U(-spread, spread), so that top-k starves groups.
    Returns ``(scores, groups)``."""
    rng = np.random.default_rng(seed)
    groups = np.arange(size) // 100
    scores = rng.random((2, size)).astype(np.float32)
    if spread:
        scores[1] *= (10.0 ** rng.uniform(-spread, spread, groups[-1] + 1))[groups].astype(np.float32)
    return scores, groups


def patched(owner, name: str, value, call):
    """A call that sets ``owner.name`` to ``value`` and then makes ``call()``: one variant of an
    in-process comparison (:func:`alternated`) that swaps a function of the library."""
    def run():
        setattr(owner, name, value)
        return call()
    return run


def alternated(variants: dict, repeats: int) -> tuple[dict, dict]:
    """Each of ``variants`` (name -> a call that makes one solve and returns its result) run in
    turn, ``repeats`` rounds, in this one process: ``(median milliseconds, last result)`` per
    name. Alternating solve by solve keeps this machine's drift between processes (up to
    1.5x) out of the comparison."""
    times = {name: [] for name in variants}
    results = {}
    for _ in range(repeats):
        for name, call in variants.items():
            start = time.perf_counter()
            results[name] = call()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) * 1e3 for name, values in times.items()}, results


# ----------------------------------------------------------------------------- memory
def read_status_kib(field_name: str) -> int | None:
    """A ``Vm*`` field of /proc/self/status in KiB (None where /proc is not available)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM, and ru_maxrss with it) by writing 5 to
    /proc/self/clear_refs (Linux >= 4.0). Returns whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak RSS of this process in bytes: VmHWM, else ``resource.getrusage`` ru_maxrss."""
    hwm = read_status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def rss_bytes() -> int | None:
    rss = read_status_kib("VmRSS")
    return None if rss is None else rss * 1024


def gib(n_bytes: float | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2 ** 30:.2f} GiB"


def mib(n_bytes: float | None) -> str:
    if n_bytes is None:
        return "-"
    return f"{n_bytes / 2 ** 20:.0f} MiB" if n_bytes >= 2 ** 20 else f"{n_bytes / 2 ** 10:.0f} KiB"


# ----------------------------------------------------------------------------- machine
def package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_description() -> dict:
    cpu_model = None
    memory_total = None
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory_total = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "copslp")
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu_model or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_total_bytes": memory_total,
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in
                     ("numpy", "scipy", "highspy", "cvxpy", "torch", "copslp")},
        "load_average": load_average(),
        "copslp_commit": commit,
        "copslp_tree_modified": bool(dirty) if dirty is not None else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def load_average() -> list | None:
    """1, 5 and 15 minute load averages (the machine may be shared: timings depend on it)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_line(machine: dict) -> str:
    v = machine["versions"]
    memory = gib(machine["memory_total_bytes"]) if machine["memory_total_bytes"] else "?"
    return (f"{machine['processor']}, {machine['cpus_usable']} usable of {machine['cpu_count']} CPUs, {memory}; "
            f"{machine['platform']}; Python {machine['python']}, numpy {v['numpy']}, scipy {v['scipy']}, "
            f"highspy {v['highspy']}, cvxpy {v['cvxpy']}; copslp at {str(machine['copslp_commit'])[:10]}"
            + (" (modified)" if machine.get("copslp_tree_modified") else "")
            + (f"; load average {'/'.join(f'{x:g}' for x in machine['load_average'])} (1/5/15 min) at the start"
               if machine.get("load_average") else ""))


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# ----------------------------------------------------------------------------- the worker
@dataclass
class MethodOutcome:
    """What the worker reported for one method at one problem."""

    method: str
    status: str = "pending"  # ok | timed_out | error | crashed
    runs: list = field(default_factory=list)  # timed runs (dicts)
    warmup: dict | None = None
    trace: dict | None = None
    error: str | None = None


@dataclass
class WorkerReport:
    """One job's events: the ``ready`` event (checksum, array bytes), one outcome per method."""

    ready: dict | None
    outcomes: dict
    stderr_tail: str


class Worker:
    """A bench/_worker.py process that solves jobs one after the other, under hard time limits.

    ``run(spec, budgets=...)`` sends one job: the worker generates the problem, then runs
    ``spec["methods"]`` one after the other and reports each run as it ends. The process is
    kept between jobs (imports such as cvxpy's cost seconds), except that when a run does
    not report within ``budgets[method]`` seconds (a warm-up included) the worker's whole
    process group is killed (HiGHS checks its own time limit only between iterations): the
    method is marked ``timed_out``, the methods it had not reached stay ``pending``, and the
    next job starts a fresh process. Use it as a context manager.
    """

    def __init__(self, *, log_path: Path | None = None, ready_timeout: float = 1800.0):
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue | None = None
        self.stderr = None
        self.child_maxrss: int | None = None  # of the last process that ended (os.wait4), bytes
        self.returncode: int | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self) -> None:
        import tempfile

        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, cwd=str(ROOT), start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines = queue.Queue()
        proc, lines = self.proc, self.lines

        def pump():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def close(self) -> None:
        """End the process (if any) and record its peak RSS from os.wait4."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self._finish(grace=30.0)

    def _finish(self, grace: float = 0.0) -> str:
        """Reap the process (killed after ``grace`` seconds if still running); record its peak RSS
        (``ru_maxrss`` of os.wait4: the figure RUSAGE_CHILDREN reports, for this child alone) and
        return the tail of its stderr. Never ``poll()``: that would reap it without the usage."""
        proc = self.proc
        deadline = time.monotonic() + grace
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() >= deadline:
                    _kill(proc)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.02)
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.child_maxrss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        except ChildProcessError:
            proc.wait()
            self.child_maxrss = None
        self.returncode = proc.returncode
        self.stderr.seek(0)
        tail = self.stderr.read()[-4000:]
        self.stderr.close()
        self.proc = None
        return tail

    def run(self, spec: dict, *, budgets: dict, on_event=None) -> "WorkerReport":
        if self.proc is None:
            self._start()
        outcomes = {m: MethodOutcome(m) for m in spec["methods"]}
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        ready = None
        current: MethodOutcome | None = None
        deadline = time.monotonic() + self.ready_timeout
        ended = False  # the process is gone (killed or died)
        while True:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                if current is not None:
                    current.status = "timed_out"
                    current.error = f"a run did not finish within {budgets.get(current.method)} s; killed"
                _kill(self.proc)
                ended = True
                break
            if line is None:
                ended = True
                break
            if self.log_path is not None:
                with open(self.log_path, "a") as log:
                    log.write(line)
            if not line.startswith(LINE_PREFIX):
                continue
            event = json.loads(line[len(LINE_PREFIX):])
            kind = event["event"]
            now = time.monotonic()
            if kind == "ready":
                ready = event
            elif kind == "start":
                current = outcomes[event["method"]]
                current.status = "running"
            elif kind == "run":
                if event.get("warmup"):
                    current.warmup = event
                else:
                    current.runs.append(event)
            elif kind == "trace":
                current.trace = event
            elif kind == "error":
                current.status = "error"
                current.error = event["error"]
            elif kind == "done":
                if current.status == "running":
                    current.status = "ok"
                current = None
            if on_event is not None:
                on_event(event)
            if kind == "job_done":
                break
            if current is not None:
                deadline = now + float(budgets.get(current.method, self.ready_timeout))
            else:
                deadline = now + self.ready_timeout
        stderr_tail = ""
        if ended:
            stderr_tail = self._finish()
            if current is not None and current.status == "running":  # the worker died under it
                current.status = "crashed"
                current.error = f"worker exited with status {self.returncode} during this method: {stderr_tail[-500:]}"
            if ready is None and current is None and self.returncode not in (0, None, -9):
                raise RuntimeError(f"bench worker failed before it was ready (status {self.returncode}):\n{stderr_tail}")
        return WorkerReport(ready, outcomes, stderr_tail)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` processes that each keep one core busy (a Python loop) for the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
             for _ in range(count)]
    try:
        time.sleep(0.5 if procs else 0.0)  # let them reach their loop
        yield
    finally:
        for proc in procs:
            _kill(proc)
            proc.wait()


# ----------------------------------------------------------------------------- statistics
def timed(call, repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``call`` after one discarded warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def loglog_slope(sizes, times, min_size: float = 0.0) -> tuple[float | None, int]:
    """Least-squares slope of log(time) against log(D) over the points with D >= min_size."""
    pairs = [(d, t) for d, t in zip(sizes, times) if t is not None and t > 0 and d >= min_size]
    if len(pairs) < 2:
        return None, len(pairs)
    x = np.log10([d for d, _ in pairs])
    y = np.log10([t for _, t in pairs])
    slope = float(np.polyfit(x, y, 1)[0])
    return slope, len(pairs)


def rel_diff(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None:
        return None
    return abs(value - reference) / max(abs(reference), 1e-300)


# ----------------------------------------------------------------------------- formatting
def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_size(size: float) -> str:
    exponent = math.log10(size)
    if abs(exponent - round(exponent)) < 1e-9:
        return f"1e{round(exponent)}"
    mantissa = size / 10 ** math.floor(exponent)
    return f"{mantissa:.1f}e{math.floor(exponent)}"


def table(headers, rows, align=None) -> str:
    """A plain-text table (also valid as a Markdown table)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or ["<"] + [">"] * (len(headers) - 1)

    def line(row):
        return "| " + " | ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":" if a == ">" else "-" * (w + 2)) for a, w in zip(align, widths)) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def progress(total: int, desc: str, disable: bool = False):
    """A tqdm bar on stderr (a no-op stand-in when tqdm is missing)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, disable=disable, file=sys.stderr, dynamic_ncols=True, leave=True)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass

    def write(self, text, file=None):
        print(text, file=sys.stderr)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
