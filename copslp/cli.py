"""The ``copslp`` command: ``copslp solve``, numpy only.

``copslp solve SCORES --budget K [--gamma G | --bounds B ...] [--method M] [--out MASK.npz]``
reads the scores from an ``.npy`` file (a 2-D array, row 0 primary) or an ``.npz`` file (one
1-D array per score, in the order stored, or the order given by ``--keys``) and prints a JSON
summary on stdout, and nothing else there. A bound is switched off with ``none``, ``off`` or
``-inf`` (``--bounds -inf 5``). ``--out`` is checked before solving and written exactly at the
path given. Bad input (an unusable file, a missing key, an unwritable ``--out``, a bad
argument) and an infeasible problem end with one line on stderr and exit status 2; a solver
failure with exit status 1.
Method options are given as ``--option NAME=VALUE`` (repeatable; VALUE is read as JSON when
it parses, else kept as a string).

The demos live in ``examples/`` (``make demo``) and the benchmarks in ``bench/``
(``python -m bench.scaling``, ...): the core's command needs neither torch nor a checkout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._registry import available_methods
from ._solve import solve
from ._errors import SolverError

__all__ = ["main"]


def main(argv=None) -> int:
    parser = _Parser(prog="copslp", description="COPS: combine pruning scores exactly and fast.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("solve", help="solve a COPS problem stored in .npy/.npz")
    run.add_argument("scores", help=".npy file with an (n, D) array, or .npz with one 1-D array per score")
    run.add_argument("--keys", nargs="+", help="order of the arrays in an .npz (default: as stored)")
    run.add_argument("--budget", required=True, help="k (an int) or the kept fraction (a float in (0, 1])")
    bounds = run.add_mutually_exclusive_group()
    bounds.add_argument("--gamma", type=float, nargs="+", help="relative bounds, one or one per secondary score")
    bounds.add_argument("--bounds", type=_bound, nargs="+",
                        help="absolute bounds, one per secondary score; none, off or -inf switches one off")
    run.add_argument("--method", default="auto", help=f"one of auto, {', '.join(available_methods())}")
    run.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                     help="a method option, e.g. --option solver=simplex (repeatable)")
    run.add_argument("--out", help="write the mask (and x) to this .npz file")

    args = parser.parse_args(_bounds_switched_off_as_words(sys.argv[1:] if argv is None else argv))
    return _solve(args)


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
        options = _parse_options(args.option)
        result = solve(scores, budget, gamma=gamma, bounds=bounds, method=args.method, options=options)
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


def _parse_options(items) -> dict:
    """``NAME=VALUE`` strings as a mapping; VALUE as JSON when it parses (numbers, true,
    null, ...), else as the string itself."""
    options = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--option takes NAME=VALUE, got {item!r}")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


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


if __name__ == "__main__":
    sys.exit(main())
