"""The ``copslp`` command: ``copslp solve``, numpy only.

``copslp solve SCORES --budget K [--gamma G | --bounds B ...] [--method M] [--out MASK.npz]``
reads the scores from an ``.npy`` file (a 2-D array, row 0 primary) or an ``.npz`` file (one
1-D array per score, in the order stored, or the order given by ``--keys``), prints a JSON
summary on stdout and exits with status 2 and a one-line message on bad input or an
infeasible problem. Method options are given as ``--option NAME=VALUE`` (repeatable; VALUE is
read as JSON when it parses, else kept as a string).

The demos live in ``examples/`` (``make demo``) and the benchmarks in ``bench/``
(``python -m bench.scaling``, ...): the core's command needs neither torch nor a checkout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from ._registry import available_methods
from ._solve import solve
from ._errors import SolverError

__all__ = ["main"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="copslp", description="COPS: combine pruning scores exactly and fast.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("solve", help="solve a COPS problem stored in .npy/.npz")
    run.add_argument("scores", help=".npy file with an (n, D) array, or .npz with one 1-D array per score")
    run.add_argument("--keys", nargs="+", help="order of the arrays in an .npz (default: as stored)")
    run.add_argument("--budget", required=True, help="k (an int) or the kept fraction (a float in (0, 1])")
    bounds = run.add_mutually_exclusive_group()
    bounds.add_argument("--gamma", type=float, nargs="+", help="relative bounds, one or one per secondary score")
    bounds.add_argument("--bounds", type=float, nargs="+", help="absolute bounds, one per secondary score")
    run.add_argument("--method", default="auto", help=f"one of auto, {', '.join(available_methods())}")
    run.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                     help="a method option, e.g. --option solver=simplex (repeatable)")
    run.add_argument("--out", help="write the mask (and x) to this .npz file")

    args = parser.parse_args(argv)
    return _solve(args)


def _solve(args) -> int:
    try:
        scores = _load_scores(Path(args.scores), args.keys)
        budget = _parse_budget(args.budget)
        gamma = _one_or_many(args.gamma)
        bounds = _one_or_many(args.bounds)
        options = _parse_options(args.option)
        result = solve(scores, budget, gamma=gamma, bounds=bounds, method=args.method, options=options)
    except (ValueError, TypeError, OSError, KeyError, ImportError) as exc:
        print(f"copslp solve: {exc}", file=sys.stderr)
        return 2
    except SolverError as exc:
        print(f"copslp solve: solver failed: {exc}", file=sys.stderr)
        return 1
    if args.out:
        np.savez_compressed(args.out, mask=result.mask, x=result.x)
    print(json.dumps(_json_safe(result.summary()), indent=2))
    return 0


def _load_scores(path: Path, keys):
    if path.suffix == ".npy":
        if keys:
            raise ValueError("--keys applies to .npz files only")
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = keys or list(archive.files)
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise KeyError(f"--keys {missing} not in {path} (it holds {archive.files})")
            return [archive[name] for name in names]
    raise ValueError(f"scores file must end in .npy or .npz, got {str(path)!r}")


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
