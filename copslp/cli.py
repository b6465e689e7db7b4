"""The ``copslp`` command: ``demo``, ``solve`` and ``bench``.

``copslp solve SCORES --budget K [--gamma G | --bounds B ...] [--method M] [--out MASK.npz]``
reads the scores from an ``.npy`` file (a 2-D array, row 0 primary) or an ``.npz`` file (one
1-D array per score, in the order stored, or the order given by ``--keys``) and prints a JSON
summary on stdout, and nothing else there. A bound is switched off with ``none``, ``off`` or
``-inf`` (``--bounds -inf 5``). ``--out`` is checked before solving and written exactly at the
path given. Bad input (an unusable file, a missing key, an unwritable ``--out``, a bad
argument) and an infeasible problem end with one line on stderr and exit status 2; a solver
failure with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import runpy
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import available_methods, solve
from ._errors import InfeasibleError, SolverError

__all__ = ["main"]


def main(argv=None) -> int:
    parser = _Parser(prog="copslp", description="COPS: combine pruning scores exactly and fast.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the built-in demonstration")
    demo.add_argument("--size", type=_demo_size, default=10**6,
                      help="D of the generated solver problem, an integer >= 20 (default 1e6)")
    demo.add_argument("--out", default="demo_out", help="folder for the demo's figures (default demo_out)")
    demo.add_argument("--no-torch", action="store_true", help="skip the real-model part even if torch is installed")

    run = commands.add_parser("solve", help="solve a COPS problem stored in .npy/.npz")
    run.add_argument("scores", help=".npy file with an (n, D) array, or .npz with one 1-D array per score")
    run.add_argument("--keys", nargs="+", help="order of the arrays in an .npz (default: as stored)")
    run.add_argument("--budget", required=True, help="k (an int) or the kept fraction (a float in (0, 1])")
    bounds = run.add_mutually_exclusive_group()
    bounds.add_argument("--gamma", type=float, nargs="+", help="relative bounds, one or one per secondary score")
    bounds.add_argument("--bounds", type=_bound, nargs="+",
                        help="absolute bounds, one per secondary score; none, off or -inf switches one off")
    run.add_argument("--method", default="auto", help=f"one of auto, {', '.join(available_methods())}")
    run.add_argument("--out", help="write the mask (and x) to this .npz file")

    bench = commands.add_parser("bench", help="run a benchmark script of bench/ (from a source checkout)")
    bench.add_argument("script", nargs="?", default="scaling", choices=["scaling", "targets", "real_scores"])
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed on to the script")

    args = parser.parse_args(_bounds_switched_off_as_words(sys.argv[1:] if argv is None else argv))
    if args.command == "demo":
        return _demo(args)
    if args.command == "solve":
        return _solve(args)
    return _bench(args)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit status 2, as every refusal."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _solve(args) -> int:
    try:
        out = _checked_out(args.out)
        scores = _load_scores(Path(args.scores), args.keys)
        budget = _parse_budget(args.budget)
        gamma = _one_or_many(args.gamma)
        bounds = _one_or_many(args.bounds)
        result = solve(scores, budget, gamma=gamma, bounds=bounds, method=args.method)
        if out is not None:
            with open(out, "wb") as handle:  # a file object: numpy appends no ".npz"
                np.savez_compressed(handle, mask=result.mask, x=result.x)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"copslp solve: {_one_line(exc)}", file=sys.stderr)
        return 2
    except SolverError as exc:
        print(f"copslp solve: solver failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(_json_safe(result.summary()), indent=2))
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _checked_out(text: str | None) -> Path | None:
    """``--out`` as a path whose file can be written, checked before any solving."""
    if text is None:
        return None
    path = Path(text)
    if path.is_dir():
        raise ValueError(f"--out {text!r} is a folder; give a file name such as mask.npz")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"--out {text!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"--out {text!r} cannot be written (permission denied)")
    return path


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def _load_scores(path: Path, keys):
    """The score arrays of an .npy or .npz file.

    A file that is missing or unreadable is an OSError; one that is not what its suffix
    says, truncated, corrupt, or holds pickled Python objects is a ValueError naming it.
    """
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"scores file must end in .npy or .npz, got {str(path)!r}")
    if keys and path.suffix == ".npy":
        raise ValueError("--keys applies to .npz files only")
    with open(path, "rb") as handle:
        magic = handle.read(len(_NPY_MAGIC))
    if path.suffix == ".npy":
        if magic != _NPY_MAGIC:
            raise ValueError(f"{path} is not a .npy file (it does not start with numpy's header)")
        return _read(path, lambda: np.load(path, allow_pickle=False))
    if not magic.startswith(_ZIP_MAGIC):
        raise ValueError(f"{path} is not an .npz file (it is not a zip archive)")
    with _read(path, lambda: np.load(path, allow_pickle=False)) as archive:
        names = keys or list(archive.files)
        missing = [name for name in names if name not in archive.files]
        if missing:
            raise ValueError(f"--keys {missing} not in {path}, which holds {archive.files}")
        return [_read(path, lambda name=name: archive[name], member=name) for name in names]


def _read(path: Path, load, *, member: str | None = None):
    """``load()``, with numpy's and zipfile's ways of failing on a bad file said in one line."""
    where = f"{path}" if member is None else f"{path} (array {member!r})"
    try:
        return load()
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(f"{where} holds Python objects, not numbers; copslp solve reads numeric arrays only") from None
        raise ValueError(f"{where} is truncated or corrupt: {exc}") from None
    except (EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{where} is truncated or corrupt: {exc}") from None


def _parse_budget(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--budget must be an int k or a float fraction, got {text!r}") from None


def _bound(text: str) -> float:
    """One ``--bounds`` value: a number, or ``none`` / ``off`` / ``-inf`` for a switched-off bound."""
    if text.strip().lower() in _SWITCHED_OFF:
        return -math.inf
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a bound is a number, or none, off or -inf to switch it off; got {text!r}") from None


_SWITCHED_OFF = ("none", "off", "-inf", "-infinity")


def _bounds_switched_off_as_words(argv: list[str]) -> list[str]:
    """``argv`` with ``-inf`` after ``--bounds`` spelt ``none``: argparse takes ``-inf`` for an option."""
    argv = list(argv)
    in_bounds = False
    for i, token in enumerate(argv):
        if token == "--bounds":
            in_bounds = True
        elif in_bounds and token.lower() in ("-inf", "-infinity"):
            argv[i] = "none"
        elif token.startswith("--"):
            in_bounds = False
    return argv


def _demo_size(text: str) -> int:
    """``demo --size``: an integer D >= 20 (the demo keeps D // 20 elements); ``1e6`` is accepted."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value.is_integer() and value >= 20):
        raise argparse.ArgumentTypeError(f"must be an integer D >= 20 (the demo keeps D/20 elements), got {text!r}")
    return int(value)


def _one_or_many(values):
    if values is None:
        return None
    return values[0] if len(values) == 1 else values


def _json_safe(value):
    """JSON has no infinities: switched-off bounds (-inf) are written as null."""
    if isinstance(value, dict):
        return {key: _json_safe(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# demo


def _demo(args) -> int:
    _solver_demo(args.size)
    if args.no_torch:
        return 0
    try:
        from torch_adapter import demo as torch_demo
    except ImportError as exc:
        print(f"\n(real-model demo skipped: {exc}; install copslp[torch])")
        return 0
    print()
    return torch_demo.main(["--out", args.out]) or 0


#: Methods the solver demo runs at its default size, and why the others are left out.
_DEMO_SKIPS = {
    "scipy": "the same HiGHS engine as 'highs' behind linprog; over a minute at this size",
    "cvxpy": "a modelling layer over the same engines; minutes at this size",
    "milp": "binary branch and bound, for D <= 2000 only",
}


def _solver_demo(size: int) -> None:
    """A realistic two-score problem solved by every method that finishes in reasonable time."""
    rng = np.random.default_rng(0)
    # Heavy-tailed, correlated scores, as SNIP and SynFlow scores are.
    z = rng.standard_normal((2, size))
    z[1] = 0.6 * z[0] + 0.8 * z[1]
    scores = np.exp(2.0 * z)
    budget, gamma = size // 20, 0.9
    print(f"COPS on a generated two-score problem: D = {size:,}, k = {budget:,}, gamma = {gamma}")
    print("scores: lognormal, correlated (rho = 0.6); primary s0, secondary s1 >= gamma * T_k(s1)\n")
    header = f"{'method':<10} {'objective':>16} {'<s1,x>':>16} {'bound b1':>16} {'rel. diff':>10} {'mask diff':>9} {'time [s]':>9}"
    print(header)
    print("-" * len(header))
    reference = None
    for method in available_methods():
        if method in _DEMO_SKIPS and size > 200_000:
            print(f"{method:<10} skipped: {_DEMO_SKIPS[method]}")
            continue
        start = time.perf_counter()
        try:
            result = solve(scores, budget, gamma=gamma, method=method)
        except (SolverError, ValueError) as exc:
            print(f"{method:<10} failed: {exc}")
            continue
        elapsed = time.perf_counter() - start
        reference = reference or result
        diff = abs(result.objective - reference.objective) / abs(reference.objective)
        mask_diff = int(np.count_nonzero(result.mask != reference.mask))
        print(f"{method:<10} {result.objective:>16.8f} {result.bound_values[0]:>16.8f} "
              f"{result.thresholds[0]:>16.8f} {diff:>10.1e} {mask_diff:>9d} {elapsed:>9.3f}")
    print("\nrel. diff: |objective - analytic| / analytic; mask diff: elements whose mask differs from analytic's")


# --------------------------------------------------------------------------------------------
# bench


def _bench(args) -> int:
    script = _find_bench() / f"{args.script}.py"
    if not script.exists():
        print(f"copslp bench: {script} not found", file=sys.stderr)
        return 2
    namespace = runpy.run_path(str(script), run_name="copslp_bench")
    return namespace["main"](args.args) or 0


def _find_bench() -> Path:
    """bench/ of the source checkout: beside the package (editable install) or under cwd."""
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (root / "bench").is_dir():
            return root / "bench"
    raise SystemExit("copslp bench: no bench/ folder found; run it from a source checkout of copslp")


if __name__ == "__main__":
    sys.exit(main())
