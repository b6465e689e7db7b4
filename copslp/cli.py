"""The ``copslp`` command: ``copslp solve``, numpy only.

``copslp solve SCORES --budget K [--gamma G | --bounds B ...] [--method M] [--out MASK.npz]``
reads the scores from an ``.npy`` file (a 2-D array, row 0 primary) or an ``.npz`` file (one
1-D array per score, in the order stored, or the order given by ``--keys``) and prints a JSON
summary on stdout, and nothing else there. A bound is switched off with ``none``, ``off`` or
``-inf`` (``--bounds -inf 5``). ``--out`` is checked before solving and written exactly at the
path given. Bad input (an unusable file, a missing key, an unwritable ``--out``, a bad
argument, an array whose header claims more than the file holds or than the free memory can
take, memory running out) and an infeasible problem end with one line on stderr and exit
status 2; a solver failure with exit status 1. What compiled code writes on descriptor 1
while solving (a solver's banner, LAPACK's messages) and Python warnings go to stderr after
a solve that succeeds (a warning in one line), and are left out beside a refusal, which is
one line.
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
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._errors import SolverError
from ._registry import available_methods
from ._solve import solve
from ._stdout import native_stdout_to

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
    native = tempfile.TemporaryFile()  # what compiled code writes on descriptor 1 while solving
    try:
        with native, native_stdout_to(native.fileno()), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _solved(args)
            native.seek(0)
            noise = native.read().decode(errors="replace")
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"copslp solve: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(f"copslp solve: out of memory ({_one_line(exc) or 'MemoryError'}): the scores are too large "
              f"for this machine's memory", file=sys.stderr)
        return 2
    except SolverError as exc:
        print(f"copslp solve: solver failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    sys.stderr.write(noise)  # stdout carries the JSON document alone; a refusal its one line alone
    for said in dict.fromkeys(f"{w.category.__name__}: {_one_line(w.message)}" for w in caught):
        print(f"copslp solve: warning: {said}", file=sys.stderr)
    print(json.dumps(_json_safe(result.summary()), indent=2))
    return 0


def _solved(args):
    """The checked arguments solved (and the mask written where ``--out`` says)."""
    out = _checked_out(args.out)
    scores = _load_scores(Path(args.scores), args.keys)
    result = solve(scores, _parse_budget(args.budget), gamma=_one_or_many(args.gamma),
                   bounds=_one_or_many(args.bounds), method=args.method, options=_parse_options(args.option))
    if out is not None:
        with open(out, "wb") as handle:  # a file object: numpy appends no ".npz"
            np.savez_compressed(handle, mask=result.mask, x=result.x)
    return result


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
    Every array's header is read first (:func:`_checked_header`): one that claims more bytes
    than the file holds, or than this machine's free memory where the array must be read
    into it, is refused before anything is loaded. An .npy is mapped (``mmap_mode="r"``), not
    read: the solve reads its pages as it passes over them.
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
        with open(path, "rb") as handle:
            size = _read(path, lambda: _checked_header(handle, str(path), path.stat().st_size))
        if size == 0:  # nothing to map
            return _read(path, lambda: np.load(path, allow_pickle=False))
        return _read(path, lambda: np.load(path, mmap_mode="r", allow_pickle=False))
    if not magic.startswith(_ZIP_MAGIC):
        raise ValueError(f"{path} is not an .npz file (it is not a zip archive)")
    with _read(path, lambda: np.load(path, allow_pickle=False)) as archive:
        names = keys or list(archive.files)
        missing = [name for name in names if name not in archive.files]
        if missing:
            raise ValueError(f"--keys {missing} not in {path}, which holds {archive.files}")
        for name in names:
            _read(path, lambda name=name: _checked_member(archive.zip, name, f"{path} (array {name!r})"), member=name)
        return [_read(path, lambda name=name: archive[name], member=name) for name in names]


def _checked_member(archive: zipfile.ZipFile, name: str, where: str) -> None:
    """:func:`_checked_header` of the array ``name`` of an .npz, against its uncompressed
    size (a member that is not an .npy file is left to ``np.load``)."""
    member = f"{name}.npy"
    if member not in archive.namelist():
        return
    with archive.open(member) as handle:
        _checked_header(handle, where, archive.getinfo(member).file_size, in_memory=True)


class _Refused(ValueError):
    """A refusal whose message is complete (not one of numpy's to be said in a line)."""


def _checked_header(handle, where: str, stored: int, *, in_memory: bool = False) -> int:
    """The bytes of the array whose .npy header starts ``handle``, checked against ``stored``
    (the bytes the file holds, header included) and, for an array read into memory
    (``in_memory``, or one whose dtype or order the solve must convert), against the memory
    this machine has free; before anything is loaded. Raises :class:`_Refused` naming
    ``where``, the shape, the dtype and the bytes (ValueError for a header numpy cannot read)."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    else:  # 3.0 (a utf-8 header) has no public reader: np.load checks it
        return -1
    if dtype.hasobject:
        raise _Refused(f"{where} holds Python objects, not numbers; copslp solve reads numeric arrays only")
    count = 1
    for length in shape:
        count *= int(length)
    needed = count * dtype.itemsize
    data = stored - handle.tell()
    if needed > data:
        raise _Refused(f"{where}: its header claims an array of shape {shape} and dtype {dtype} ({needed} bytes), "
                       f"but the file holds {max(data, 0)} bytes of data: truncated, or a wrong header")
    converted = dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or fortran_order
    copied = (needed if in_memory else 0) + (count * 8 if converted else 0)
    free = _free_memory()
    if free is not None and copied > free:
        raise _Refused(f"{where}: its array of shape {shape} and dtype {dtype} needs {copied} bytes of memory "
                       f"to be read{' and converted to float64' if converted else ''}, and this machine has "
                       f"{free} bytes free")
    return needed


def _free_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None where
    the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read(path: Path, load, *, member: str | None = None):
    """``load()``, with numpy's and zipfile's ways of failing on a bad file said in one line."""
    where = f"{path}" if member is None else f"{path} (array {member!r})"
    try:
        return load()
    except _Refused as exc:
        raise ValueError(str(exc)) from None
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
