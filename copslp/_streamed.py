r"""The analytic method over scores it never copies whole: on a device, or sharded over processes.

:func:`solve_streamed` runs the road of :mod:`copslp._analytic` (docs/maths.md §3-4) through the
two interfaces of :mod:`copslp._passes`: every O(D) step is a pass of :class:`ScorePasses`
over the scores where they live, and what crosses between processes goes through
:class:`Collectives`. What each process holds and sends:

* every process holds its shard of every score row (and of the groups), and keeps the
  1-byte mask of the elements screening fixed to 1 and the positions of its survivors;
* validation: per-row counts of non-finite entries, the shard sizes, the group sizes
  (O(n + ranks + G) numbers);
* the best values :math:`T_k(s_i)` and every selection are screenings of a point (below);
* the subsample (``sample_size`` positions drawn over all D, each process sending its own)
  is gathered on rank 0, which estimates :math:`\lambda^*` there and broadcasts boxes and
  levels;
* each screening of a box is one pass per process: counts that verify the levels and the
  sums over the elements fixed to 1 are summed over processes (O(n + G)); the survivors
  stay where they are (:meth:`ScorePasses.survivor_passes`: on the device, in their dtype);
* when at most :data:`_GATHER_LIMIT` survive, they are gathered on rank 0 (float64, every
  score row); when more do (a box of a few percent of lambda on many millions of elements
  leaves millions), the problem left on them is solved the same way a level down, where they
  lie: its own subsample, boxes and screening over each process's survivors (no pass over D),
  until few enough survive (at most :data:`_MAX_DEPTH` levels down; there the survivors are
  gathered however many); its lambda answers the level above when it lies inside that
  level's box;
* whatever runs on rank 0 alone and fails there fails on every process
  (:func:`_on_root`);
* rank 0 solves the problem on the survivors exactly (:func:`copslp._analytic._solve_exact`,
  the same finish as in memory), rounds it to a mask (:func:`copslp._rounding.round_to_mask`
  on the survivors, the elements fixed to 1 kept), and broadcasts lambda, the rule and the
  summary; each process receives the decisions about its own survivors only;
* the certificate of docs/maths.md §3 for the whole problem: without floors, the levels each
  screening compared the elements it decided with bound v over them (lambda lies in its
  box), as in memory (:mod:`copslp._scan`); with floors, or when that check does not pass or
  needs the scores' magnitudes, one more pass per process measures the levels of
  :math:`v(\lambda)` over the fixed elements (O(G) numbers summed). Every process checks the
  same certificate.

Communication is O(levels x (sample + ranks + G) + survivors of the last level) numbers,
never O(D).

A screening is safe only when counts confirm its levels; a level the subsample misplaced is
estimated again with a margin four times wider (then sixteen), and a group whose sampled
level fails its count keeps all its members among the survivors. A box that keeps missing
:math:`\lambda^*` ends in a :class:`SolverError` (in memory, the analytic method would solve
the LP on all D elements then; here that would gather everything).

Known limit: a bound at gamma = 1 among several has an unbounded :math:`\lambda^*` (the
optimum lies on the face of that bound); here the boxes widen until every element survives,
and the whole problem, gathered on rank 0 (O(D) communication, once), is solved there by the
in-memory road, which solves that face directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from ._analytic import (_SEVERAL_BOUNDS_SAMPLE_FACTOR, BoxSchedule, _SampleEstimate, _sample_estimate, _solve_exact,
                        estimated_best, solve_analytic)
from ._certificate import certify
from ._errors import InfeasibleError, SolverError
from ._infeasibility import conflict_error
from ._inner import InnerProblem, reaches
from ._passes import Collectives, LocalScreen, ScorePasses
from ._point import ScreenLevel
from ._problem import Outline, Problem, _as_budget, as_floor_array, check_floors, thresholds_from
from ._registry import get_method
from ._result import Certificate
from ._rounding import round_to_mask
from ._scan import PointScan, scan_point
from ._screening import (MinimumOutsideBox, ReducedProblemInfeasible, _group_sample_levels, _level_ranks,
                         _sample_rank, box_extremes)
from ._selection import kth_largest
from ._several_bounds import inside

__all__ = ["solve_streamed", "StreamedResult"]

#: Margins (standard deviations of the sampled rank) of the successive estimates of a level.
_SPREADS = (4.0, 16.0, 64.0)


@dataclass(frozen=True, eq=False)
class StreamedResult:
    """The answer of :func:`solve_streamed` on one process: its own part of the mask and the
    summary of the whole problem (the same on every process).

    Its fields are those of :class:`copslp.Result`, with the same meaning, but for two: no
    ``x`` (the LP point is never gathered in one process; ``bound_values``, ``objective`` and
    ``n_fractional`` describe it) and ``size``, D over all processes (``mask`` holds this
    process's part).

    Attributes
    ----------
    mask : array of the caller's type (bool), shape (local size,)
        This process's part of the exact-k mask.
    objective, mask_objective : float
        ``<s_0, x>`` of the LP optimum and ``<s_0, mask>`` over all D elements.
    multipliers : ndarray, shape (n - 1,)
        lambda, one per secondary score (0 for switched-off bounds).
    budget_dual : float
        mu, the level of ``v = s_0 + sum_i lambda_i s_i`` that separates kept from dropped.
    floor_multipliers : ndarray or None
        nu, one per group (with floors).
    thresholds, bound_values, mask_bound_values : ndarray, shape (n - 1,)
        b_i, ``<s_i, x>`` and ``<s_i, mask>``.
    mask_violations : ndarray, shape (n - 1,)
        ``max(b_i - <s_i, mask>, 0)``.
    mask_meets_bounds : bool
    rounding_loss : float
        ``objective - mask_objective``.
    budget, size : int
        k and D (over all processes).
    n_fractional : int
        Fractional entries of the LP point (at most one per row of the LP: the budget, each
        active bound, each floor).
    message : str
        The certificate's summary and the rounding rule, in words.
    method : str
        ``"analytic"``.
    certificate : Certificate
        The optimality certificate of the whole problem (docs/maths.md §3).
    info : dict
        Rounds, survivors, the box, the rounding rule, the bytes this process sent (when
        the collectives count them).
    wall_time, method_time : float
        Seconds for the whole call, and for the method alone (the optimum and its mask,
        without validation).
    """

    mask: Any
    objective: float
    mask_objective: float
    multipliers: np.ndarray
    budget_dual: float
    floor_multipliers: np.ndarray | None
    thresholds: np.ndarray
    bound_values: np.ndarray
    mask_bound_values: np.ndarray
    mask_violations: np.ndarray
    mask_meets_bounds: bool
    rounding_loss: float
    budget: int
    size: int
    n_fractional: int
    message: str
    method: str
    certificate: Certificate
    info: Mapping[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    method_time: float = 0.0


class _Run:
    """The passes, the collectives, the options and the subsample of one solve."""

    def __init__(self, passes: ScorePasses, collectives: Collectives, settings: dict):
        self.passes, self.comm, self.settings = passes, collectives, settings
        self.rtol = settings["rtol"]
        self.sizes = collectives.sizes(passes.size)
        self.offset = int(self.sizes[:collectives.rank].sum())
        self.size = int(self.sizes.sum())
        self.sample_scores = self.sample_groups = None  # on rank 0, once drawn

    def draw_sample(self, count: int) -> None:
        """Gather ``count`` elements (at most a quarter of D) drawn over all D (seeded, in
        increasing position) on rank 0."""
        count = max(1, min(count, self.size // 4))
        positions = np.sort(np.random.default_rng(self.settings["seed"]).integers(0, self.size, count))
        first, last = np.searchsorted(positions, [self.offset, self.offset + self.passes.size])
        scores, groups = self.passes.take(positions[first:last] - self.offset)
        self.sample_scores = self.comm.gather_columns(scores)
        if groups is not None:
            self.sample_groups = self.comm.gather_columns(groups)
            if self.sample_groups is not None:
                self.sample_groups = self.sample_groups.reshape(-1)


def solve_streamed(passes: ScorePasses, collectives: Collectives, budget, *, gamma=None, bounds=None, floors=None,
                   options: Mapping[str, Any] | None = None) -> StreamedResult:
    r"""The COPS LP optimum and its mask for scores read through ``passes``, sharded as
    ``collectives`` says (see the module docstring for what each process holds and sends).

    Every process calls it with its own ``passes`` and the same other arguments; ``budget``,
    ``gamma``, ``bounds`` and ``floors`` mean what they mean in :func:`copslp.solve` (floors
    one per group id of the passes' groups, or one for all). ``options`` are those of the
    analytic method.

    Raises
    ------
    TypeError, ValueError
        Bad input (on every process).
    InfeasibleError
        No point meets the bounds (on every process), as :func:`copslp.solve` says it.
    SolverError
        The boxes did not bracket lambda* within ``max_rounds``, the answer did not pass the
        certificate, or the exact finish failed on rank 0 (raised on every process).
    """
    start = time.perf_counter()
    settings = get_method("analytic").settings(options)
    run = _Run(passes, collectives, settings)
    outline = _validate(run, budget, gamma, bounds, floors)
    rows = np.concatenate([[0], outline.active + 1])
    if rows.shape[0] > 2:  # several bounds: their multipliers need a larger subsample
        run.draw_sample(_SEVERAL_BOUNDS_SAMPLE_FACTOR * settings["sample_size"])
    _raise_if_a_bound_alone_fails(run, outline)
    method_start = time.perf_counter()
    optimum = _optimum(run, outline, rows, outline.thresholds[outline.active])
    result = _finish(run, outline, rows, optimum)
    end = time.perf_counter()
    return replace(result, wall_time=end - start, method_time=end - method_start)


# --------------------------------------------------------------------------------------------
# validation


def _validate(run: _Run, budget, gamma, bounds, floors) -> Outline:
    """The outline of the problem, with the same checks and messages as :func:`copslp.solve`."""
    passes, comm = run.passes, run.comm
    n = passes.n_scores
    if comm.maximum(np.array([n, -n], dtype=np.float64)).tolist() != [n, -n]:
        raise ValueError(f"every process must pass the same number of score rows; this one has {n}")
    if run.size == 0:
        raise ValueError("scores must have at least one element over all processes, got D = 0")
    k = _as_budget(budget, run.size)
    bad = comm.sum(passes.non_finite())
    for i in np.flatnonzero(bad):
        raise ValueError(f"scores[{i}] has {int(bad[i])} non-finite entries")
    floor_array = sizes = None
    if (floors is None) != (passes.n_groups == 0):
        raise ValueError("floors and groups go together: give both or neither")
    if floors is not None:
        floor_array = as_floor_array(floors).astype(np.int64)
        if floor_array.ndim == 0:
            floor_array = np.full(passes.n_groups, int(floor_array))
        if floor_array.shape != (passes.n_groups,):
            raise ValueError(f"floors needs one entry per group ({passes.n_groups}), got shape {floor_array.shape}")
        sizes = comm.sum(passes.group_counts())
        check_floors(floor_array, sizes, k)
    outline = Outline(run.size, n, k, np.full(n - 1, -np.inf), np.zeros(n - 1), floor_array, sizes)
    run.draw_sample(run.settings["sample_size"])
    best = np.array([_top_k_value(run, replace(outline, floors=None, group_sizes=None), np.array([i]), np.zeros(0))
                     for i in range(1, n)])
    thresholds, _ = thresholds_from(gamma, bounds, best, k)
    return replace(outline, thresholds=thresholds, best_reachable=best)


def _raise_if_a_bound_alone_fails(run: _Run, outline: Outline) -> None:
    """The error of :func:`copslp._infeasibility.single_bound_error`, the values reached
    under the floors measured by a selection of each score."""
    for i in outline.active:
        reach = float(outline.best_reachable[i])
        if outline.has_floors:
            reach = _top_k_value(run, outline, np.array([i + 1]), np.zeros(0))
        _raise_if_short(outline, i + 1, float(outline.thresholds[i]), reach)


def _raise_if_short(outline: Outline, row: int, wanted: float, reach: float) -> None:
    """The :class:`InfeasibleError` of a bound on ``scores[row]`` asking for ``wanted`` when
    the best point reaches only ``reach``."""
    if not reaches(reach, wanted):
        floors = " and the floors" if outline.has_floors else ""
        raise InfeasibleError(
            f"the bound on scores[{row}] cannot be met: it asks for {wanted!r}, but the largest "
            f"value any point within the budget k = {outline.budget}{floors} reaches is {reach!r}",
            score_index=int(row), threshold=wanted, best_reachable=reach)


# --------------------------------------------------------------------------------------------
# screening


@dataclass(frozen=True, eq=False)
class _Screened:
    """A verified screening: this process's part, the sums over every process, and (once
    :func:`_gather` has run) on rank 0 the survivors of every process, every score row."""

    local: LocalScreen
    taken: np.ndarray  # every score row summed over the elements fixed to 1, all processes
    fixed_ones: int
    fixed_per_group: np.ndarray | None
    counts: np.ndarray  # survivors per process
    survivors: np.ndarray | None = None  # (n, m) on rank 0, after _gather
    survivor_groups: np.ndarray | None = None
    # without floors: what the box decided, one multiplier per secondary score (0 for those off)
    record: ScreenLevel | None = None

    @property
    def n_survivors(self) -> int:
        return int(self.counts.sum())


def _screen(run: _Run, outline: Outline, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> _Screened:
    """Screen the box [lo, hi] of the multipliers of ``rows`` with levels from the subsample,
    verified by counting (see the module docstring). The survivors stay where they are."""
    comm = run.comm
    keep_whole = np.zeros(0 if outline.floors is None else outline.floors.shape[0], dtype=bool)
    for spread in (*_SPREADS, np.inf):
        levels = _on_root(run, lambda: _sample_levels(run, outline, rows, lo, hi, spread, keep_whole))
        local = run.passes.screen(rows, lo, hi, *levels)
        one_rank, zero_rank = _level_ranks(outline)
        counts = comm.sum(np.array([local.above_one, local.reaching, local.fixed_ones], dtype=np.int64))
        level_fails = (one_rank > 0 and counts[0] >= one_rank) or counts[1] < zero_rank
        short = np.zeros_like(keep_whole)
        if outline.floors is not None:
            short = comm.sum(local.support) < outline.floors
        if not level_fails and not short.any():
            break
        keep_whole |= short
    taken, sizes = comm.sum(local.taken), comm.sizes(local.n_survivors)
    if outline.floors is not None:
        return _Screened(local, taken, int(counts[2]), comm.sum(local.fixed_per_group), sizes)
    box = tuple(np.zeros(outline.n_scores - 1) for _ in range(2))
    box[0][rows[1:] - 1], box[1][rows[1:] - 1] = lo, hi
    fixed, dropped = int(counts[2]), outline.size - int(counts[2]) - int(sizes.sum())
    record = ScreenLevel(*box, np.array([levels[0]]), np.array([levels[1]]), np.array([fixed]), np.array([dropped]),
                         taken)
    return _Screened(local, taken, fixed, None, sizes, record=record)


def _gather(run: _Run, screened: _Screened) -> _Screened:
    """``screened`` with every process's survivors (and their groups) on rank 0."""
    local = screened.local
    survivors = run.comm.gather_columns(local.survivors)
    groups = None if local.survivor_groups is None else run.comm.gather_columns(local.survivor_groups)
    return replace(screened, survivors=survivors, survivor_groups=None if groups is None else groups.reshape(-1))


def _sample_levels(run: _Run, outline: Outline, rows, lo, hi, spread: float, keep_whole: np.ndarray):
    """(one_level, zero_level, group_levels) estimated on the subsample with a margin of
    ``spread`` standard deviations (infinite: no level at all, everything survives)."""
    one_rank, zero_rank = _level_ranks(outline)
    if not np.isfinite(spread):
        group_levels = None if outline.floors is None else np.full(outline.floors.shape[0], -np.inf)
        return np.inf, -np.inf, group_levels
    low, high = box_extremes(run.sample_scores[rows], lo, hi)
    m = low.shape[0]
    one_level = kth_largest(high, _sample_rank(one_rank, m, outline.size, -1, spread)) if one_rank > 0 else np.inf
    zero_level = kth_largest(low, _sample_rank(zero_rank, m, outline.size, +1, spread)) if zero_rank > 0 else -np.inf
    group_levels = None
    if outline.floors is not None:
        group_levels = np.minimum(np.full(outline.floors.shape[0], zero_level),
                                  _group_sample_levels(outline, low, run.sample_groups))
        group_levels[keep_whole] = -np.inf
    return one_level, zero_level, group_levels


def _reduced_floors(outline: Outline, screened: _Screened):
    return None if outline.floors is None else np.maximum(outline.floors - screened.fixed_per_group, 0)


def _reduced(outline: Outline, screened: _Screened, rows: np.ndarray, thresholds: np.ndarray) -> InnerProblem:
    """On rank 0, after :func:`_gather`: the problem left on the survivors for the objective
    and bounds ``rows``."""
    groups = None if outline.floors is None else screened.survivor_groups
    return InnerProblem(np.ascontiguousarray(screened.survivors[rows]), outline.budget - screened.fixed_ones,
                        thresholds - screened.taken[rows[1:]], groups, _reduced_floors(outline, screened))


def _top_k_value(run: _Run, outline: Outline, rows: np.ndarray, multipliers: np.ndarray, depth: int = 0) -> float:
    """``T^P_k(v)``, v = the rows combined with ``multipliers``: the value of the best budget-k
    set under the outline's floors (the greedy of docs/maths.md §6), by the screening of a point
    (and of the band it leaves, a level down, when that is too wide to gather)."""
    screened = _screen(run, outline, rows, multipliers, multipliers)
    weights = np.concatenate([[1.0], multipliers])
    fixed = float(weights @ screened.taken[rows])
    if _nests(outline, screened, depth):
        below, inner = _level_below(run, outline, screened, run.settings["sample_size"])
        return fixed + _top_k_value(below, inner, rows, multipliers, depth + 1)
    screened = _gather(run, screened)

    def best_of_band():
        inner = _reduced(outline, screened, rows, np.zeros(rows.shape[0] - 1))
        v = np.einsum("i,ij->j", weights, inner.scores)
        chosen = inner.select(v) if inner.budget > 0 else np.empty(0, dtype=np.intp)
        return fixed + float(v[chosen].sum())

    return _on_root(run, best_of_band)


def _on_root(run: _Run, work, keep: bool = False):
    """``work()`` run on rank 0 and what it returns broadcast to every process. With
    ``keep``, ``work`` returns ``(shared, kept)``: only ``shared`` is broadcast, ``kept``
    stays on rank 0 (None elsewhere), and ``(shared, kept)`` is returned. An exception on
    rank 0 is raised there as it is and, as a :class:`SolverError` that names it, on every
    other process: no process is left waiting for a broadcast."""
    outcome, kept, failure = None, None, None
    if run.comm.is_root:
        try:
            value = work()
            shared, kept = value if keep else (value, None)
            outcome = ("ok", shared)
        except Exception as error:  # re-raised below, on every process
            failure, outcome = error, ("error", f"{type(error).__name__}: {error}")
    kind, shared = run.comm.broadcast(outcome)
    if kind == "error":
        if failure is not None:
            raise failure
        raise SolverError(f"analytic (streamed): rank 0 failed: {shared}")
    return (shared, kept) if keep else shared


def _nests(outline: Outline, screened: _Screened, depth: int) -> bool:
    """Whether the survivors are solved a level down rather than gathered."""
    return _GATHER_LIMIT < screened.n_survivors < outline.size and depth < _MAX_DEPTH


def _level_below(run: _Run, outline: Outline, screened: _Screened, sample_size: int):
    """The run over the survivors of ``screened`` (where they lie, a subsample of them drawn)
    and the outline of the problem left on them: budget, bounds and floors less what the
    elements fixed to 1 took; best values estimated on the subsample (they only scale the
    subsample's bounds)."""
    passes = run.passes.survivor_passes(screened.local)
    below = _Run(passes, run.comm, run.settings)
    below.draw_sample(sample_size)
    floors = _reduced_floors(outline, screened)
    n, size, budget = outline.n_scores, screened.n_survivors, outline.budget - screened.fixed_ones

    inner = Outline(size, n, budget, outline.thresholds - screened.taken[1:],
                    _on_root(run, lambda: estimated_best(below.sample_scores, budget, size)), floors,
                     None if floors is None else run.comm.sum(passes.group_counts()))
    return below, inner


# --------------------------------------------------------------------------------------------
# the optimum


@dataclass(frozen=True, eq=False)
class _Optimum:
    """The LP optimum of one level: its screening, lambda, the value of every score row at
    the optimum (on every process), and the point on the survivors: gathered on rank 0, or,
    when they were too many to gather, the optimum of the survivors' own problem (``nested``,
    a ``(run, outline, optimum)`` of the level below)."""

    screened: _Screened
    multipliers: np.ndarray  # lambda of the active bounds (of ``rows``)
    values: np.ndarray  # <s_i, x> for every score row
    details: dict
    x_survivors: np.ndarray | None = None  # on rank 0
    nested: tuple | None = None


def _optimum(run: _Run, outline: Outline, rows: np.ndarray, thresholds: np.ndarray, depth: int = 0,
             within=None) -> _Optimum:
    """The LP optimum for the objective ``rows[0]`` and the bounds ``thresholds`` on
    ``rows[1:]``: boxes around the subsample's estimate, screened, the survivors solved
    exactly on rank 0 (or, when more than :data:`_GATHER_LIMIT` survive, as a problem of
    their own, sharded as they lie), accepted when lambda lies inside the box (as in memory).
    Without bounds the box is a point: the survivors are the band around the k-th level.
    ``within``: the box of the level above and the size of this level's subsample (see
    :class:`copslp._analytic.BoxSchedule`)."""
    comm, r = run.comm, rows.shape[0] - 1
    if r == 0:
        estimate = _SampleEstimate(np.zeros(0), np.zeros(0), False)
    else:
        estimate = _on_root(run, lambda: _estimate(run, outline, rows, thresholds))
    feasible = False  # proven so

    def prove_infeasible():  # raises if the bounds conflict; once proven feasible, not again
        nonlocal feasible
        if not feasible:
            _raise_joint_infeasibility(run, outline, rows, thresholds, depth)
            feasible = True

    if estimate.infeasible:
        prove_infeasible()
    m = _on_root(run, lambda: run.sample_scores.shape[1])
    boxes = BoxSchedule(estimate, r, max(1, int(round(outline.budget * m / outline.size))),
                        None if within is None else (within, m))
    for rounds in range(1, run.settings["max_rounds"] + 1):
        lo, hi = boxes.box()
        screened = _screen(run, outline, rows, lo, hi)
        everything = screened.n_survivors == outline.size
        if _nests(outline, screened, depth):
            kind, value, details, nested = _solve_nested(run, outline, screened, rows, thresholds, depth, (lo, hi))
            x = values = None
        else:
            screened, nested = _gather(run, screened), None
            (kind, value, details), kept = _on_root(
                run, lambda: _finish_on_survivors(outline, screened, rows, thresholds, lo, hi, boxes.centre, run.rtol,
                                                  run.settings if everything and depth == 0 else None),
                keep=True)
            x, values = kept or (None, None)  # the point and its values, on rank 0
        if kind == "infeasible":
            prove_infeasible()
            if everything:
                raise SolverError("analytic (streamed): the LP on every element was found infeasible although "
                                  "a point meeting every bound exists (a numerical failure)")
            boxes.after_infeasible()
            continue
        if kind == "outside":
            boxes.after_outside(value)
            if boxes.outside_rounds >= 2:  # lambda keeps growing: are the bounds infeasible?
                prove_infeasible()
            continue
        lam = value
        if inside(lam, lo, hi) or everything:
            details.update(rounds=rounds, survivors=screened.n_survivors, fixed_ones=screened.fixed_ones,
                           box=[lo.tolist(), hi.tolist()], sample_estimate=estimate.multipliers.tolist())
            if nested is not None:
                values = screened.taken + nested[2].values
            return _Optimum(screened, lam, comm.broadcast(values), details, x_survivors=x, nested=nested)
        boxes.after_miss(lam)
    prove_infeasible()
    raise SolverError(f"analytic (streamed): lambda* not bracketed after {run.settings['max_rounds']} rounds of "
                      f"screening")


#: Survivors gathered on rank 0 at most; more are solved as a sharded problem of their own
#: (its own subsample, boxes and screening, over the survivors in each process's memory), at
#: most this many levels deep.
_GATHER_LIMIT = 1 << 18
_MAX_DEPTH = 3


def _solve_nested(run: _Run, outline: Outline, screened: _Screened, rows, thresholds, depth: int, within):
    """The problem left on the survivors, solved where they lie: ``(kind, lambda, details,
    (run, outline, optimum))`` as :func:`_finish_on_survivors` says it, lambda being the
    multipliers of the survivors' problem (the whole problem's when inside the box)."""
    inner_run, inner = _level_below(run, outline, screened, run.settings["sample_size"]
                                    * (_SEVERAL_BOUNDS_SAMPLE_FACTOR if rows.shape[0] > 2 else 1))
    try:
        optimum = _optimum(inner_run, inner, rows, thresholds - screened.taken[rows[1:]], depth + 1, within)
    except InfeasibleError:  # the box was wrong (or the bounds are: proved at this level)
        return "infeasible", None, {}, None
    details = dict(optimum.details)
    details["nested"] = [{key: details.pop(key) for key in ("rounds", "survivors", "fixed_ones") if key in details}]
    details["nested"] += optimum.details.get("nested", [])  # the levels further down
    return "ok", optimum.multipliers, details, (inner_run, inner, optimum)


def _estimate(run: _Run, outline: Outline, rows: np.ndarray, thresholds: np.ndarray):
    """On rank 0: lambda* of the subsample's problem (:func:`copslp._analytic._sample_estimate`)."""
    sample = run.sample_scores
    m = sample.shape[1]
    sub = replace(outline, thresholds=np.asarray(thresholds, dtype=np.float64),
                  best_reachable=outline.best_reachable[rows[1:] - 1])
    inner = InnerProblem(sample[rows], outline.budget, thresholds, run.sample_groups, outline.floors)
    return _sample_estimate(sub, inner, np.arange(m), np.ascontiguousarray(sample[rows]), run.rtol)


def _finish_on_survivors(outline, screened, rows, thresholds, lo, hi, centre, rtol, whole_settings=None):
    """On rank 0: the outcome for every process, ("ok", lambda, details),
    ("infeasible", None, {}) or ("outside", lambda, {}), and, kept on rank 0, the point on
    the survivors and the values of every score row there (or None).

    ``whole_settings`` (the analytic options), when every element of the top level survived
    and was gathered: the whole problem is then in memory on rank 0, and is solved by the in-memory road
    (:func:`copslp._analytic.solve_analytic`: a bound at gamma = 1 on its face, boxes from its
    own subsample), not by the finish meant for a band of survivors."""
    reduced = _reduced(outline, screened, rows, thresholds)
    if rows.shape[0] == 1:  # no bound: the top-k (with floors, the greedy) of the band
        x = reduced.indicator(reduced.select(reduced.scores[0])) if reduced.budget > 0 else np.zeros(reduced.size)
        return ("ok", np.zeros(0), {}), (x, _values_at(screened, x))
    try:
        if whole_settings is None:
            x, lam, details = _solve_exact(reduced, rtol, (lo, hi, centre))
        else:
            x, lam, details = _solve_in_memory(outline, reduced, rows, whole_settings)
    except (ReducedProblemInfeasible, InfeasibleError):
        return ("infeasible", None, {}), (None, None)
    except MinimumOutsideBox as outside:
        return ("outside", np.asarray(outside.multipliers, dtype=np.float64), {}), (None, None)
    return ("ok", np.asarray(lam, dtype=np.float64), dict(details)), (x, _values_at(screened, x))


def _solve_in_memory(outline: Outline, reduced: InnerProblem, rows: np.ndarray, settings: dict):
    """x, lambda and details of the whole problem, gathered on rank 0, by the in-memory road."""
    sizes = None if reduced.floors is None else np.bincount(reduced.groups, minlength=reduced.floors.shape[0])
    whole = Problem(reduced.scores, reduced.budget, reduced.thresholds, None, outline.best_reachable[rows[1:] - 1],
                    reduced.groups, reduced.floors, sizes)
    solution = solve_analytic(whole, **{key: settings[key] for key in
                                        ("rtol", "sample_size", "seed", "max_rounds", "certificate_reads")})
    return np.asarray(solution.x, dtype=np.float64), np.asarray(solution.multipliers), dict(solution.info)


def _values_at(screened: _Screened, x: np.ndarray) -> np.ndarray:
    """<s_i, point> for every score row, of the point that is 1 on the elements fixed to 1
    and ``x`` on the gathered survivors."""
    return screened.taken + np.einsum("ij,j->i", screened.survivors, x)  # no BLAS threads


# --------------------------------------------------------------------------------------------
# infeasibility


def _raise_joint_infeasibility(run: _Run, outline: Outline, rows: np.ndarray, thresholds: np.ndarray,
                               depth: int = 0) -> None:
    r"""Raise the :class:`InfeasibleError` of bounds that cannot hold together, or return
    when a point meets them all: the Farkas ray of :func:`copslp._analytic._infeasibility_proof`,
    found by the same road with the first bound as the objective. One bound: whether the best
    point of its score meets it (at the top this was checked before; a level down, the
    problem left on the survivors of a wrong box may fail it, and the box is widened)."""
    if rows.shape[0] == 2:
        _raise_if_short(outline, int(rows[1]), float(thresholds[0]),
                        _top_k_value(run, outline, rows[1:], np.zeros(0), depth))
        return
    if rows.shape[0] < 2:
        return
    head, rest = rows[1], rows[2:]
    # rows keep their numbers in the sub-problem: an InfeasibleError of the bounds on ``rest``
    # (they conflict already) names them as they are and passes through
    optimum = _optimum(run, outline, np.concatenate([[head], rest]), thresholds[1:], depth)
    best = float(optimum.values[head])
    b = float(thresholds[0])
    if reaches(best, b):
        return
    ray = np.concatenate([[1.0], optimum.multipliers])
    reach = _top_k_value(run, outline, np.concatenate([[head], rest]), optimum.multipliers, depth) \
        - float(optimum.multipliers @ thresholds[1:])
    if reaches(reach, b):
        return
    keep = np.flatnonzero(ray > 0)
    conflict_rows = np.concatenate([[head], rest])
    raise conflict_error(outline, tuple(int(conflict_rows[i]) for i in keep), ray[keep], best)


# --------------------------------------------------------------------------------------------
# mask, summary and certificate


def _finish(run: _Run, outline: Outline, rows: np.ndarray, optimum: _Optimum) -> StreamedResult:
    """The mask, each process its part; the whole problem's scan; the certificate, checked
    by every process on the same numbers."""
    n = outline.n_scores
    multipliers = np.zeros(n - 1)
    multipliers[rows[1:] - 1] = optimum.multipliers
    read_all = run.settings["certificate_reads"] == "all"
    mask, numbers, certificate = _mask_and_certificate(run, outline, optimum, multipliers, read_all)
    if numbers["screened"] and (certificate is None or not certificate.passed):  # levels only bound v: read it all
        mask, numbers, certificate = _mask_and_certificate(run, outline, optimum, multipliers, read_all=True)
    if not certificate.passed:
        raise SolverError(f"analytic (streamed) returned a point that is not optimal: {certificate.summary()}")
    values, mask_values = numbers["values"], numbers["mask_values"]
    thresholds = outline.thresholds
    violations = np.maximum(thresholds - mask_values[1:], 0.0)
    violations[~np.isfinite(thresholds)] = 0.0
    missed = violations > run.rtol * np.maximum(np.abs(thresholds), 1e-300)
    info = dict(optimum.details)
    info.update(rounding=numbers["rule"], processes=run.comm.world_size)
    if hasattr(run.comm, "bytes_sent"):
        info["bytes_sent"] = int(run.comm.bytes_sent)
    message = f"{certificate.summary()}; mask by rule: {numbers['rule']}"
    if missed.any():
        message += f"; the mask misses bounds by {violations.tolist()}"
    return StreamedResult(
        mask=mask, objective=float(values[0]), mask_objective=float(mask_values[0]), multipliers=multipliers,
        budget_dual=certificate.budget_dual, floor_multipliers=certificate.floor_multipliers, thresholds=thresholds,
        bound_values=values[1:], mask_bound_values=mask_values[1:], mask_violations=violations,
        mask_meets_bounds=not bool(missed.any()), rounding_loss=float(values[0] - mask_values[0]),
        budget=outline.budget, size=outline.size, n_fractional=numbers["n_fractional"], message=message,
        method="analytic", certificate=certificate, info=info)


class _EveryElementNeeded(Exception):
    """The certificate asked for a number only a pass over every element gives (the scores'
    magnitudes, or the sums of |s| over the elements fixed to 1)."""


def _mask_and_certificate(run: _Run, outline: Outline, optimum: _Optimum, multipliers: np.ndarray, read_all: bool):
    """``(mask, numbers, certificate)``: :func:`_mask_and_numbers` and the certificate of the
    whole scan they make, checked by every process on the same numbers (so every process
    takes the same road). The certificate is ``None`` when, its levels taken from the
    screening, it needed a number that only a pass over every element gives."""
    mask, numbers = _mask_and_numbers(run, outline, optimum, multipliers, read_all)
    scan = PointScan(numbers["values"], numbers["x_min"], numbers["x_max"], None, numbers["ones_values"],
                     numbers["fractional"], numbers["segment_x"], numbers["segment_ones"], numbers["zeros_max"],
                     numbers["ones_min"], numbers["screened"])
    try:
        certificate = certify(outline, None, multipliers, rtol=run.rtol, scan=scan, measures=_Measures(run, numbers))
    except _EveryElementNeeded:
        certificate = None
    return mask, numbers, certificate


def _mask_and_numbers(run: _Run, outline: Outline, optimum: _Optimum, multipliers: np.ndarray, read_all: bool):
    """This process's mask of the level, and the numbers of the level's whole scan (the same
    on every process): those of the survivors (rounded on rank 0, or the level below's)
    plus those of the elements the level's screening fixed.

    The levels of v over the elements the screening decided are measured by one more pass
    (:meth:`ScorePasses.extremes`), or, without floors, with lambda inside the level's box and
    something decided, unless ``read_all``, taken from the levels the screening compared them
    with (as :func:`copslp._scan.scan_point` does in memory): then the magnitudes and the sums
    of |s| are not known (``None``) and ``numbers["screened"]`` counts the elements not read
    (above 0 exactly when a level stood in for a pass)."""
    comm, screened = run.comm, optimum.screened
    if optimum.nested is None:
        def rounded():
            numbers = _round(outline, screened, optimum.x_survivors, multipliers, run.rtol)
            return numbers, np.split(numbers.pop("kept"), np.cumsum(screened.counts)[:-1])

        numbers, parts = _on_root(run, rounded, keep=True)
        kept = comm.scatter(parts)
        numbers["screened"] = 0
    else:
        kept, numbers = _mask_and_numbers(*optimum.nested[:3], multipliers, read_all)
    mask = run.passes.mask(screened.local, kept)
    fixed = np.array([screened.fixed_ones]) if outline.floors is None else screened.fixed_per_group
    dropped = outline.size - screened.fixed_ones - screened.n_survivors
    numbers = dict(numbers)
    record = screened.record
    if not read_all and record is not None and (dropped or screened.fixed_ones) and record.holds_at(multipliers):
        zeros_max, ones_min = record.bounds()
        numbers["screened"] += outline.size - screened.n_survivors
        numbers["abs_values"] = numbers["magnitudes"] = None
    else:
        levels = run.passes.extremes(screened.local, np.arange(outline.n_scores), multipliers)
        zeros_max, ones_min = comm.maximum(levels.zeros_max), -comm.maximum(-levels.ones_min)
        if numbers["abs_values"] is not None:
            numbers["abs_values"] = comm.sum(levels.abs_taken) + numbers["abs_values"]
        numbers["magnitudes"] = comm.maximum(levels.magnitudes)  # this level's pass read all its elements
    for key in ("values", "ones_values", "mask_values"):
        numbers[key] = screened.taken + numbers[key]
    numbers["segment_x"] = numbers["segment_x"] + fixed
    numbers["segment_ones"] = numbers["segment_ones"] + fixed
    numbers["zeros_max"] = np.maximum(zeros_max, numbers["zeros_max"])
    numbers["ones_min"] = np.minimum(ones_min, numbers["ones_min"])
    numbers["x_min"] = min(numbers["x_min"], 0.0 if dropped else np.inf, 1.0 if screened.fixed_ones else np.inf)
    numbers["x_max"] = max(numbers["x_max"], 1.0 if screened.fixed_ones else -np.inf, 0.0 if dropped else -np.inf)
    return mask, numbers


def _round(outline: Outline, screened: _Screened, x: np.ndarray, multipliers: np.ndarray, rtol: float) -> dict:
    """On rank 0: the mask on the survivors (:func:`copslp._rounding.round_to_mask` of the
    problem left on them) and the numbers of the scan of x there."""
    survivors = screened.survivors
    groups = sizes = None
    floors = _reduced_floors(outline, screened)
    if floors is not None:
        groups = screened.survivor_groups
        sizes = np.bincount(groups, minlength=floors.shape[0])
    thresholds = outline.thresholds - screened.taken[1:]
    reduced = Problem(survivors, outline.budget - screened.fixed_ones, thresholds, None, outline.best_reachable,
                      groups, floors, sizes)
    scan = scan_point(reduced, x, rtol, multipliers)
    kept, rule, mask_values = round_to_mask(reduced, x, rtol, scan, multipliers)
    fractional = scan.fractional
    empty = x.shape[0] == 0
    return {"kept": kept, "rule": rule, "mask_values": mask_values, "n_fractional": int(fractional.shape[0]),
            "values": scan.values, "x_min": np.inf if empty else scan.x_min, "x_max": -np.inf if empty else scan.x_max,
            "ones_values": scan.ones_values, "segment_x": scan.segment_x, "segment_ones": scan.segment_ones,
            "zeros_max": scan.zeros_max, "ones_min": scan.ones_min, "fractional": fractional,
            "abs_values": np.einsum("ij,j->i", np.abs(survivors), np.abs(x)),
            "fractional_values": np.einsum("i,ij->j", np.concatenate([[1.0], multipliers]), survivors[:, fractional]),
            "fractional_segments": np.zeros(fractional.shape[0], dtype=np.intp) if groups is None else groups[fractional]}


class _Measures:
    """:class:`copslp._certificate.ArrayMeasures` for scores read through passes: the numbers
    of the whole scan, and the positive part by one more pass (every process runs the
    certificate on the same numbers, so all take that pass or none)."""

    def __init__(self, run: _Run, numbers: dict):
        self.run, self.numbers = run, numbers

    def magnitude(self, row):
        return float(self._read_by_every_element("magnitudes")[row])

    def abs_value(self, row):
        return float(self._read_by_every_element("abs_values")[row])

    def _read_by_every_element(self, key):
        if self.numbers[key] is None:
            raise _EveryElementNeeded(key)
        return self.numbers[key]

    def fractional_values(self, lam):
        return self.numbers["fractional_values"]

    def fractional_segments(self):
        return self.numbers["fractional_segments"]

    def positive_part(self, lam, mu, nu):
        n = self.run.passes.n_scores
        local = self.run.passes.positive_part(np.arange(n), lam, mu, nu)
        return float(self.run.comm.sum(np.array([local]))[0])
