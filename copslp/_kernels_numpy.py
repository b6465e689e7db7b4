r"""The screening passes of ``copslp._kernels`` in numpy, for an install without them.

``reach``, ``screen`` and ``screen_several`` take the arguments of the compiled module
(``copslp/_kernels.c``), check them with its words, write the same outputs and return the same
tuples, with the same numbers to the last bit: every number is made by the same IEEE operations,
element by element, in the same order. One multiplier over the box :math:`[lo, hi]`:

.. math::

    \mathrm{high}_j = s_{0j} + hi\, s_{1j}, \qquad \mathrm{low}_j = s_{0j} + lo\, s_{1j}
    \quad (lo \ge 0,\ s_{1j} \ge 0),

else the larger and the smaller of the two (NaN if either is). Several multipliers: the
corners, :math:`(\sum_i lo_i s_{ij}) + s_{0j}` and the same at hi, where every
:math:`s_{ij} \ge 0` and :math:`lo \ge 0`; elsewhere
:math:`(\sum_i c_i s_{ij} + s_{0j}) \mp \sum_i w_i |s_{ij}|` with the centre c and the
half-widths w of the box, each sum taken row after row. The sums along the block are the C
loop's running sums: the total of high two running sums (over the even and the odd positions,
added at the end), the scores fixed to 1 Neumaier's compensated sum, whose running sum
:math:`t_k = t_{k-1} + x_k` is a plain running sum and whose error
:math:`e_k = e_{k-1} + \delta_k` one of terms that depend only on :math:`t_{k-1}, t_k, x_k`:

.. math::

    \delta_k = (t_{k-1} - t_k) + x_k \ \text{if}\ |t_{k-1}| \ge |x_k|,
    \qquad (x_k - t_k) + t_{k-1} \ \text{otherwise};

``np.add.accumulate`` computes each such running sum in that order.

Each step is a pass of numpy over the block where the compiled loop reads it once, so this
path is slower (bench/README.md gives the ratio); its first call warns once per process
(a :class:`copslp.CopsWarning` pointing at the caller's line outside copslp), and
``Result.info["kernels"]`` says ``"numpy"``. :func:`load_kernels` chooses between the two.
"""

from __future__ import annotations

import operator
import os
import sys
import warnings

import numpy as np

from ._errors import CopsWarning

__all__ = ["reach", "screen", "screen_several", "load_kernels", "kernels_name", "ENVIRONMENT_VARIABLE"]

#: ``numpy``: use this module although the compiled one is built; ``compiled``: the compiled
#: one or an ImportError; unset or empty: the compiled one where it is built, else this module.
ENVIRONMENT_VARIABLE = "COPSLP_KERNELS"

#: Why this module is in use (set by :func:`load_kernels`), for the warning.
_reason = "chosen by calling copslp._kernels_numpy directly"
_warned = False
#: Packages whose frames the warning skips to reach the caller's line.
_OWN_PACKAGES = frozenset({"copslp", "torch_adapter"})


def load_kernels():
    """The screening passes to use: the compiled ``copslp._kernels``, or this module where it
    is not built (or :data:`ENVIRONMENT_VARIABLE` is ``numpy``).

    Raises
    ------
    ValueError
        :data:`ENVIRONMENT_VARIABLE` has another value than ``numpy``, ``compiled`` or empty.
    ImportError
        It is ``compiled`` and the compiled module cannot be imported.
    """
    global _reason
    choice = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if choice not in ("", "numpy", "compiled"):
        raise ValueError(f"{ENVIRONMENT_VARIABLE} must be 'numpy', 'compiled' or unset, got {choice!r}")
    if choice == "numpy":
        _reason = f"{ENVIRONMENT_VARIABLE}=numpy"
        return sys.modules[__name__]
    try:
        from . import _kernels
    except ImportError as error:
        if choice == "compiled":
            raise ImportError(f"{ENVIRONMENT_VARIABLE}=compiled, but copslp._kernels cannot be imported ({error}): "
                              "build it with a C compiler and the Python headers (pip install -e .)") from error
        _reason = f"copslp._kernels is not built: {error}"
        return sys.modules[__name__]
    return _kernels


def kernels_name(kernels) -> str:
    """``"numpy"`` for this module, ``"compiled"`` for ``copslp._kernels``."""
    return "numpy" if kernels is sys.modules[__name__] else "compiled"


def _warn_once() -> None:
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(f"copslp runs the analytic method's screening passes in numpy ({_reason}): the same answers, "
                  "slower. Reinstall copslp where a C compiler and the Python headers are found to build "
                  "copslp._kernels.", CopsWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside copslp (and torch_adapter), counted from
    the caller of this function."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in _OWN_PACKAGES:
        frame, level = frame.f_back, level + 1
    return level


# --- the arguments, checked as the compiled module checks them ---------------------------------------

def _kind(view: memoryview) -> str:
    """'d', 'f', 'i' (an 8-byte integer) or '?', from the buffer's format (native order)."""
    fmt = view.format
    if fmt[:1] in ("=", "@"):
        fmt = fmt[1:]
    if len(fmt) != 1:
        return "?"
    if fmt == "d" and view.itemsize == 8:
        return "d"
    if fmt == "f" and view.itemsize == 4:
        return "f"
    if fmt in ("q", "l") and view.itemsize == 8:
        return "i"
    return "?"


def _buffer(obj, name: str, *, output: bool = False, want: str | None = None, length: int = 0,
            exact: bool = False) -> np.ndarray:
    """A one-dimensional buffer of kind ``want`` (None: float64 or float32) and ``length``
    elements (exactly, or at least), as an array over its memory; outputs writable and
    contiguous. The errors of the compiled module's ``take_buffer``."""
    try:
        view = memoryview(obj)
    except (TypeError, ValueError, BufferError) as error:
        message = str(error)
        raise type(error)(f"{name}: {message[len('memoryview: '):] if message.startswith('memoryview: ') else message}") \
            from None
    if output and view.readonly:
        if isinstance(obj, np.ndarray):
            raise ValueError(f"{name}: buffer source array is read-only")
        raise BufferError(f"{name}: Object is not writable.")
    kind = _kind(view)
    if view.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got {view.ndim} dimensions")
    if want is not None and kind != want:
        raise TypeError(f"{name} has format '{view.format}', expected '{'q' if want == 'i' else want}'")
    if want is None and kind not in ("d", "f"):
        raise TypeError(f"{name} has format '{view.format}', expected float64 or float32")
    have = view.shape[0]
    if (exact and have != length) or (not exact and have < length):
        raise ValueError(f"{name} has length {have}, needs {'' if exact else 'at least '}{length}")
    if view.strides[0] % view.itemsize != 0:
        raise ValueError(f"{name} must be strided by whole elements")
    if output and not view.c_contiguous:
        raise ValueError(f"{name} must be contiguous")
    return np.asarray(view)


def _double(value) -> float:
    """A C double from a number, as the compiled module's argument parsing takes it."""
    if isinstance(value, float):
        return value
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"must be real number, not {type(value).__name__}")
    return float(value)


def _long_long(value) -> int:
    value = operator.index(value)
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError("Python int too large to convert to C long long")
    return value


def _is_number(obj) -> bool:
    """A Python float or int, or a buffer without dimensions (a numpy scalar)."""
    if isinstance(obj, (float, int)):
        return True
    try:
        with memoryview(obj) as view:
            return view.ndim == 0
    except (TypeError, ValueError, BufferError):
        return False


def _level(obj, n: int):
    """One level for all (a float) or a float64 array of one per element."""
    if _is_number(obj):
        return float(obj)
    return _buffer(obj, "level", want="d", length=n, exact=True)


def _check_box(lo, hi) -> None:
    for i, (low, high) in enumerate(zip(lo, hi)):
        if not low <= high:
            raise ValueError(f"the box needs lo <= hi, got lo[{i}] = {float(low)!r}, hi[{i}] = {float(high)!r}")


def _check_groups(groups, n_groups: int) -> None:
    outside = np.flatnonzero(groups.astype(np.uint64) >= n_groups) if groups.shape[0] else ()
    if len(outside):
        raise ValueError(f"groups holds {int(groups[outside[0]])}, outside [0, {n_groups}) (the length of support)")


def _support(osupport, ogroups, n: int):
    """``(counts, groups)``: the floors' count (int64, one per group) and the group of each
    element (an int for the block or an int64 array), or ``(None, None)`` without floors."""
    if osupport is None:
        return None, None
    counts = _buffer(osupport, "support", output=True, want="i")
    if _is_number(ogroups):
        if not hasattr(type(ogroups), "__index__"):
            raise TypeError(f"groups must be an integer (the block's group) or an int64 array, got {ogroups!r}")
        group = _long_long(ogroups)
        _check_groups(np.array([group], dtype=np.int64), counts.shape[0])
        return counts, group
    groups = _buffer(ogroups, "groups", want="i", length=n, exact=True)
    _check_groups(groups, counts.shape[0])
    return counts, groups


def _rows(s0, s1, olevel, lo, hi):
    """The two rows (float64 or float32, one dtype), the level, the box checked."""
    s0 = _buffer(s0, "s0")
    s1 = _buffer(s1, "s1", want=_kind(memoryview(s0)), length=s0.shape[0], exact=True)
    level = _level(olevel, s0.shape[0])
    _check_box((lo,), (hi,))
    return s0, s1, level


def _reach_outputs(n: int, dtype, positions, column0, column1, high, candidates):
    kind = _kind(memoryview(np.empty(0, dtype=dtype)))
    return (_buffer(positions, "positions", output=True, want="i", length=n),
            _buffer(column0, "column0", output=True, want="d", length=n),
            _buffer(column1, "column1", output=True, want="d", length=n),
            _buffer(high, "high", output=True, want="d", length=n),
            None if candidates is None else _buffer(candidates, "candidates", output=True, want=kind, length=n))


# --- the numbers ---------------------------------------------------------------------------------------

def _running_sum(values: np.ndarray, start: float = 0.0) -> float:
    """``((start + v_0) + v_1) + ...``: a C loop's running sum (``np.add.accumulate`` adds in
    that order)."""
    if values.shape[0] == 0:
        return start
    sums = np.empty(values.shape[0] + 1)
    sums[0] = start
    sums[1:] = values
    return float(np.add.accumulate(sums, out=sums)[-1])


def _total(high: np.ndarray) -> float:
    """The sum of ``high`` as the compiled loops take it: one running sum over the even
    positions, one over the odd, then added."""
    return _running_sum(high[0::2]) + _running_sum(high[1::2])


def _add_compensated(taken: np.ndarray, row: int, error: int, values: np.ndarray) -> None:
    """Add ``values`` in order to the compensated sum ``(taken[row], taken[error])``
    (Neumaier's variant of Kahan's summation, as ``add_compensated`` of the C file)."""
    if values.shape[0] == 0:
        return
    sums = np.empty(values.shape[0] + 1)
    sums[0] = taken[row]
    sums[1:] = values
    np.add.accumulate(sums, out=sums)
    before, after = sums[:-1], sums[1:]
    terms = np.where(np.abs(before) >= np.abs(values), (before - after) + values, (values - after) + before)
    taken[error] = _running_sum(terms, float(taken[error]))
    taken[row] = sums[-1]


def _smaller(at_lo: np.ndarray, at_hi: np.ndarray) -> np.ndarray:
    return np.where((at_lo < at_hi) | np.isnan(at_lo), at_lo, at_hi)


def _plus_product(a: np.ndarray, b: np.ndarray, factor: float) -> np.ndarray:
    """``a + b * factor`` in a new array, ``a`` the first operand as in the C file (of two NaN,
    the same one)."""
    product = np.multiply(b, factor)
    return np.add(a, product, out=product)


def _one_reach(s0, s1, lo: float, hi: float, level, candidate_level: float, positions, column0, column1, highs,
               candidates):
    """The reach loop of one multiplier: ``(count, candidate_count, total, monotone)``, the
    outputs written."""
    a = np.asarray(s0, dtype=np.float64)
    b = np.asarray(s1, dtype=np.float64)
    high = _plus_product(a, b, hi)
    monotone = lo >= 0.0 and (b.shape[0] == 0 or bool(b.min() >= 0.0))
    if not monotone:  # the larger corner, except where lo >= 0 and s1_j >= 0 (there v at hi)
        at_lo = _plus_product(a, b, lo)
        larger = (at_lo > high) | np.isnan(at_lo)
        if lo >= 0.0:
            larger &= ~(b >= 0.0)
        np.copyto(high, at_lo, where=larger)
    reaching = np.flatnonzero(high >= level)
    m = reaching.shape[0]
    positions[:m] = reaching
    np.take(a, reaching, out=column0[:m])
    np.take(b, reaching, out=column1[:m])
    np.take(high, reaching, out=highs[:m])
    found = 0
    if candidates is not None:
        chosen = s1[b >= candidate_level]
        found = chosen.shape[0]
        candidates[:found] = chosen
    return m, found, _total(high), monotone


def _one_low(column0, column1, lo: float, hi: float) -> np.ndarray:
    """The smallest v over the box of the elements in the columns (``smallest_v``, r = 1)."""
    low = _plus_product(column0, column1, lo)
    if lo >= 0.0 and (column1.shape[0] == 0 or bool(column1.min() >= 0.0)):
        return low
    at_hi = _plus_product(column0, column1, hi)
    smaller = _smaller(low, at_hi)
    if lo >= 0.0:
        return np.where(column1 >= 0.0, low, smaller)
    return smaller


def _decide(m: int, low, level, one_level: float, zero_level: float, offset: int, support, positions, columns,
            highs, ones, taken):
    """The decision on the ``m`` elements that reached (``decide`` of the C file):
    ``(n_ones, n_survivors, above_one, at_or_above_zero)``; the ones and the survivors written,
    the fixed scores added to ``taken``."""
    reached = positions[:m]
    above_one = int(np.count_nonzero(highs[:m] > one_level))
    at_or_above_zero = int(np.count_nonzero(low >= zero_level))
    counts, groups = support
    if counts is not None:
        reaches = low >= (level if isinstance(level, float) else level[reached])
        if isinstance(groups, int):
            counts[groups] += np.count_nonzero(reaches)
        else:
            counts += np.bincount(groups[reached[reaches]], minlength=counts.shape[0])
    fixed = low > one_level
    fixed_positions = reached[fixed]
    n_ones = fixed_positions.shape[0]
    np.add(fixed_positions, offset, out=ones[:n_ones])
    rows = len(columns)
    for i, column in enumerate(columns):
        _add_compensated(taken, i, rows + i, column[:m][fixed])
    kept = ~fixed
    kept_positions = reached[kept]
    n_survivors = kept_positions.shape[0]
    np.add(kept_positions, offset, out=positions[:n_survivors])
    for column in columns:
        column[:n_survivors] = column[:m][kept]
    return n_ones, n_survivors, above_one, at_or_above_zero


def reach(s0, s1, lo, hi, level, candidate_level, positions, column0, column1, high, candidates):
    """``copslp._kernels.reach`` in numpy: ``(count, candidate_count, total, monotone)``.

    The elements whose largest v over [lo, hi] (v = s0 + lambda s1) is at or above their level
    (a number, or a float64 array of one per element): their positions, s0, s1 (float64) and
    largest v in the first ``count`` entries of the output buffers; the total of the largest v
    over the block; the entries of s1 at or above candidate_level in ``candidates`` (None: not
    gathered); and whether lo >= 0 and s1 >= 0 throughout (then v at lo is the smallest).
    The reach loop of screen, on its own."""
    _warn_once()
    lo, hi, candidate_level = _double(lo), _double(hi), _double(candidate_level)
    s0, s1, level = _rows(s0, s1, level, lo, hi)
    outputs = _reach_outputs(s0.shape[0], s0.dtype, positions, column0, column1, high, candidates)
    with np.errstate(all="ignore"):
        return _one_reach(s0, s1, lo, hi, level, candidate_level, *outputs)


def screen(s0, s1, lo, hi, level, candidate_level, one_level, zero_level, offset, groups, support, positions, column0,
           column1, high, ones, candidates, taken):
    """``copslp._kernels.screen`` in numpy: ``(n_ones, n_survivors, above_one,
    at_or_above_zero, candidate_count, total)``.

    One block's screening with one multiplier: among the elements whose largest v over
    [lo, hi] reaches their level, those whose smallest v exceeds one_level (their positions
    plus offset in ``ones``, their s0 and s1 added to the running compensated sums ``taken``:
    float64, [sum of s0, sum of s1, error of each]) and the others (positions plus offset in
    ``positions``, s0 and s1 in column0, column1; ``high`` is scratch); how many of them have
    their largest v above one_level and their smallest at or above zero_level; with
    ``support`` (int64, one per group), the count per group of those whose smallest v reaches
    their level, the group being ``groups`` (one for the block, or an int64 array of one per
    element). The total and the candidates as in reach. See copslp._analytic.screening.screen_piece."""
    _warn_once()
    lo, hi, candidate_level = _double(lo), _double(hi), _double(candidate_level)
    one_level, zero_level, offset = _double(one_level), _double(zero_level), _long_long(offset)
    s0, s1, level = _rows(s0, s1, level, lo, hi)
    n = s0.shape[0]
    floors = _support(support, groups, n)
    positions, column0, column1, high, candidates = _reach_outputs(n, s0.dtype, positions, column0, column1, high,
                                                                   candidates)
    ones = _buffer(ones, "ones", output=True, want="i", length=n)
    taken = _buffer(taken, "taken", output=True, want="d", length=4, exact=True)
    with np.errstate(all="ignore"):
        m, found, total, _ = _one_reach(s0, s1, lo, hi, level, candidate_level, positions, column0, column1, high,
                                        candidates)
        low = _one_low(column0[:m], column1[:m], lo, hi)
        counts = _decide(m, low, level, one_level, zero_level, offset, floors, positions, (column0, column1), high,
                         ones, taken)
    return (*counts, found, total)


def _several_rows(orows, ocolumns, ocandidates):
    """The rows (a tuple of r + 1 >= 3 arrays of one float dtype), the output columns (r + 1
    float64 buffers of at least n) and the candidates (None, or r buffers of the rows' dtype)."""
    if not isinstance(orows, tuple) or len(orows) < 3:
        raise TypeError("rows must be a tuple of at least 3 arrays (s_0 and two or more s_i)")
    count = len(orows)
    first = _buffer(orows[0], "rows[0]")
    n, kind = first.shape[0], _kind(memoryview(first))
    rows = [first] + [_buffer(orows[i], f"rows[{i}]", want=kind, length=n, exact=True) for i in range(1, count)]
    if not isinstance(ocolumns, tuple) or len(ocolumns) != count:
        raise TypeError(f"columns must be a tuple of {count} buffers, one per row")
    columns = [_buffer(column, f"columns[{i}]", output=True, want="d", length=n) for i, column in enumerate(ocolumns)]
    candidates = None
    if ocandidates is not None:
        if not isinstance(ocandidates, tuple) or len(ocandidates) != count - 1:
            raise TypeError(f"candidates must be None or a tuple of {count - 1} buffers, one per secondary row")
        candidates = [_buffer(found, f"candidates[{i}]", output=True, want=kind, length=n)
                      for i, found in enumerate(ocandidates)]
    return rows, columns, candidates


def _doubles(obj, name: str, length: int) -> np.ndarray:
    values = _buffer(obj, name, want="d", length=length, exact=True)
    if values.strides[0] != 8:
        raise ValueError(f"{name} must be contiguous")
    return values


def _several_extremes(rows, lo, hi, centre, half, corners_allowed: bool, low: bool):
    """v at the box's extremes of every element of ``rows`` (float64, s_0 first), as
    ``several_extremes`` of the C file: the largest (``low`` False) or the smallest."""
    a, secondary = rows[0], rows[1:]
    corner = lo if low else hi
    value = np.multiply(secondary[0], corner[0])
    signed = ~(secondary[0] >= 0.0)
    for i in range(1, len(secondary)):
        value += np.multiply(secondary[i], corner[i])
        signed |= ~(secondary[i] >= 0.0)
    value += a
    if not corners_allowed:
        signed[:] = True
    if signed.any():
        where = np.flatnonzero(signed)
        middle = np.multiply(secondary[0][where], centre[0])
        spread = np.multiply(np.abs(secondary[0][where]), half[0])
        for i in range(1, len(secondary)):
            middle += np.multiply(secondary[i][where], centre[i])
            spread += np.multiply(np.abs(secondary[i][where]), half[i])
        middle += a[where]
        value[where] = middle - spread if low else middle + spread
    return value


def screen_several(rows, lo, hi, level, candidate_levels, one_level, zero_level, offset, groups, support, positions,
                   columns, high, ones, candidates, taken):
    """``copslp._kernels.screen_several`` in numpy: ``(n_ones, n_survivors, above_one,
    at_or_above_zero, candidate_counts, total)``.

    screen for several multipliers: rows a tuple of r + 1 arrays (s_0 first), lo and hi
    float64 arrays of r (lo >= 0), columns a tuple of r + 1 float64 buffers, candidate_levels
    a float64 array of r and candidates a tuple of r buffers (or both None); candidate_counts
    a tuple of r counts; taken the 2 (r + 1) running sums and errors. See
    copslp._analytic.screening.screen_piece."""
    _warn_once()
    one_level, zero_level, offset = _double(one_level), _double(zero_level), _long_long(offset)
    rows, columns, candidates = _several_rows(rows, columns, candidates)
    n, r = rows[0].shape[0], len(rows) - 1
    lo, hi = _doubles(lo, "lo", r), _doubles(hi, "hi", r)
    _check_box(lo, hi)
    if (candidate_levels is None) != (candidates is None):
        raise TypeError("candidate_levels and candidates must both be given or both be None")
    if candidate_levels is not None:
        candidate_levels = _doubles(candidate_levels, "candidate_levels", r)
    level = _level(level, n)
    floors = _support(support, groups, n)
    positions = _buffer(positions, "positions", output=True, want="i", length=n)
    high = _buffer(high, "high", output=True, want="d", length=n)
    taken = _buffer(taken, "taken", output=True, want="d", length=2 * (r + 1), exact=True)
    ones = _buffer(ones, "ones", output=True, want="i", length=n)
    centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    corners_allowed = bool(np.all(lo >= 0.0))
    with np.errstate(all="ignore"):
        wide = [np.asarray(row, dtype=np.float64) for row in rows]
        all_high = _several_extremes(wide, lo, hi, centre, half, corners_allowed, low=False)
        reaching = np.flatnonzero(all_high >= level)
        m = reaching.shape[0]
        positions[:m] = reaching
        np.take(all_high, reaching, out=high[:m])
        for row, column in zip(wide, columns):
            np.take(row, reaching, out=column[:m])
        found = [0] * r
        if candidates is not None:
            for i in range(r):
                chosen = rows[i + 1][wide[i + 1] >= candidate_levels[i]]
                found[i] = chosen.shape[0]
                candidates[i][:found[i]] = chosen
        low = _several_extremes([column[:m] for column in columns], lo, hi, centre, half, corners_allowed, low=True)
        counts = _decide(m, low, level, one_level, zero_level, offset, floors, positions, columns, high, ones, taken)
        return (*counts, tuple(found), _total(all_high))
