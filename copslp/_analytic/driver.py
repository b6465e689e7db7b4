r"""The analytic method (docs/maths.md §3-4): one road for scores in memory, on a device, or
sharded over processes.

The dual of the COPS LP is :math:`\min_{\lambda\ge 0}\phi(\lambda)` with
:math:`\phi(\lambda) = T_k(s_0 + \sum_i \lambda_i s_i) - \langle\lambda, b\rangle` (with floors,
:math:`T_k` is the value of the greedy of docs/maths.md §6). The road:

1. estimate :math:`\lambda^*` on a random subsample, budget and bounds scaled to it
   (:func:`copslp._analytic.estimate.sample_estimate`);
2. screen a box around the estimate safely: with :math:`m_j, M_j` the smallest and largest
   :math:`v_j(\lambda)` over the box, an element with :math:`m_j` above the k-th largest M is
   in every optimal set for every :math:`\lambda` in the box (fixed to 1), one with
   :math:`M_j` below the k-th largest m in none (dropped); the levels come from the
   subsample and are verified by counts in the pass itself;
3. solve the problem left on the survivors exactly (:func:`copslp._analytic.finish.solve_exact`:
   the walk over the pieces of phi for one bound, Newton steps and the simplex for several),
   and accept it when its :math:`\lambda` lies inside the box (phi of the whole problem then
   equals that of the reduced one plus a constant near :math:`\lambda`); otherwise re-centre,
   widen and repeat. Survivors too many to gather are solved the same way a level down,
   where they lie (a box within the box);
4. round on the survivors (:func:`copslp._rounding.round_to_mask`) and certify the whole
   problem (docs/maths.md §3): the elements a box decided are bounded by the levels its pass
   compared them with (lambda inside the box, no floors), else measured by one more pass.

Without a box: a bound at gamma = 1 among several (:math:`\lambda^*` unbounded; the optimum
lies on that bound's face, :func:`_solve_on_best_face`), a problem too small for its
subsample to say anything, and boxes that kept missing :math:`\lambda^*` for ``max_rounds``
are solved on every element at once (:func:`_solve_whole`). Bounds that conflict are proved
so by a Farkas ray found by the same road with one bound fewer
(:func:`_raise_joint_infeasibility`).

Every O(D) step is a pass of a :class:`copslp._analytic.passes.ScorePasses` over the scores where
they live, and what crosses between processes goes through a
:class:`copslp._analytic.passes.Collectives`. The entries:

* :func:`solve_analytic`: a validated in-memory :class:`copslp.Problem` over
  :class:`copslp._analytic.passes.ArrayPasses` (the compiled screening pass behind it) on
  :class:`copslp._analytic.passes.OneProcess`; its result carries the LP point;
  :func:`first_pass` fuses validation's pass with the first screening;
* :func:`solve_streamed`: scores behind any passes and collectives (``torch_adapter``'s
  tensors on their device, shards over a ``torch.distributed`` group), validated through them.

What each process holds and sends, sharded:

* its shard of every score row (and of the groups), the positions of the elements screening
  fixed to 1 and of its survivors;
* validation: per-row counts of non-finite entries, the shard sizes, the group sizes
  (O(n + ranks + G) numbers); the best values :math:`T_k(s_i)` and every selection are
  screenings of a point;
* the subsample (each process sending its part) is gathered on rank 0, which estimates
  :math:`\lambda^*` and broadcasts boxes and levels;
* each screening is one pass per process; counts and sums over the elements fixed to 1 are
  summed over processes (O(n + G)); the survivors stay where they are
  (:meth:`ScorePasses.survivor_passes`) and are gathered on rank 0 when at most
  :data:`_GATHER_LIMIT` (else solved a level down, at most :data:`_MAX_DEPTH` levels);
* whatever runs on rank 0 alone and fails there fails on every process (:func:`_on_root`);
  each process receives the decisions about its own survivors only.

Communication is O(levels x (sample + ranks + G) + survivors of the last level) numbers;
O(D) only for a problem solved on every element at once (gathered on rank 0, once).

A screening is safe only when counts confirm its levels; a level the subsample misplaced is
estimated again with a margin four times wider (then sixteen), and a group whose sampled
level fails its count keeps all its members among the survivors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, NamedTuple

import numpy as np

from .._certificate import certify
from .._errors import InfeasibleError, SolverError, quiet_arithmetic
from .._infeasibility import conflict_error, short_bound_error
from .._inner import InnerProblem, reaches
from .._point import IndexedPoint
from .._problem import Outline, PreparedProblem, Problem, _as_budget, as_floor_array, check_floors, thresholds_from
from .._registry import get_method
from .._result import Result
from .._rounding import round_to_mask
from .._scan import PointScan, scan_point
from .._selection import (group_starts, kth_largest, prefilters, strided_candidate_level, take_columns, take_rows,
                          top_k_sum, top_k_sum_by_partition)
from .estimate import (_SEVERAL_BOUNDS_SAMPLE_FACTOR, BoxSchedule, SampleEstimate, estimated_best, sample_estimate,
                       screens)
from .finish import solve_exact
from .passes import ArrayPasses, Collectives, LocalScreen, OneProcess, ScorePasses
from .screening import (MinimumOutsideBox, ReducedProblemInfeasible, ScreenRecord, Tally, _group_sample_levels,
                        _level_ranks, _sample_rank, box_extremes, kernels_in_use, unplaced_share)
from .several_bounds import inside

__all__ = ["solve_analytic", "solve_streamed"]

#: Margins (standard deviations of the sampled rank) of the successive estimates of a level.
_SPREADS = (4.0, 16.0, 64.0)
#: With floors on groups the subsample cannot place (:func:`_groups_unplaced`: per-filter
#: floors) holding more than this share of the elements, a screening reads its group levels in
#: a pass of their own (:meth:`ScorePasses.group_levels`; the sampled ones would keep their
#: members) and the estimate solves whole groups (:meth:`_Run.draw_group_sample`).
_UNPLACED_SHARE = 1 / 32
#: A point whose certificate finds it short of a bound (or the budget) by more than this, the
#: round-off of its sums, though within rtol, is returned only once the Farkas proof finds no
#: conflict between the bounds (docs/maths.md §3.5): the exact finish's tolerances are looser
#: than round-off (two bounds at gamma = 1 whose faces differ by one element: 3.7e-10).
_PROVE_SHORT_ABOVE = 1e-11


def subsample_positions(size: int, count: int, seed: int) -> np.ndarray:
    """The positions (int64, increasing) of the subsample of ``count`` of ``size`` elements
    that ``seed`` draws: one at random from each of ``count`` equal runs of consecutive
    positions (a stratified sample: no sort, and each part of the scores, a layer, sampled in
    proportion to its size)."""
    offsets = np.random.default_rng(seed).random(count)
    positions = ((np.arange(count) + offsets) * (size / count)).astype(np.int64)
    return np.minimum(positions, size - 1, out=positions)


class _Run:
    """The passes, the collectives, the options and the subsample of one solve."""

    def __init__(self, passes: ScorePasses, collectives: Collectives, settings: dict):
        self.passes, self.comm, self.settings = passes, collectives, settings
        self.rtol = settings["rtol"]
        self.sizes = collectives.sizes(passes.size)
        self.offset = int(self.sizes[:collectives.rank].sum())
        self.size = int(self.sizes.sum())
        self.sample_scores = self.sample_groups = None  # on rank 0, once drawn
        self.sample_count = 0
        self.group_sample = None  # (scores, groups) of whole groups, on rank 0, where drawn
        self.first: FirstPass | None = None  # the first pass, made before the problem was complete

    def draw_sample(self, count: int) -> None:
        """Gather ``count`` elements (at most a quarter of D), those of
        :func:`subsample_positions`, on rank 0 (unless they are there already)."""
        count = max(1, min(count, self.size // 4))
        if count == self.sample_count:
            return
        self.sample_count = count
        positions = subsample_positions(self.size, count, self.settings["seed"])
        first, last = np.searchsorted(positions, [self.offset, self.offset + self.passes.size])
        scores, groups = self.passes.take(positions[first:last] - self.offset)
        self.sample_scores = self.comm.gather_columns(scores)
        if groups is not None:
            self.sample_groups = self.comm.gather_columns(groups)
            if self.sample_groups is not None:
                self.sample_groups = self.sample_groups.reshape(-1)


    def draw_group_sample(self, outline) -> None:
        """With floors on groups the element subsample cannot place (:func:`_groups_unplaced`),
        gather whole groups drawn at random (seeded) until they hold as many elements as that
        subsample, on rank 0 (``group_sample``): their floors hold as they are in the
        subsample's problem of the estimate, where the element subsample scales a floor of 1
        in a group of 100 to 0. Otherwise nothing."""
        if self.group_sample is not None or not _groups_unplaced(self, outline):
            return
        order = np.random.default_rng([self.settings["seed"], 1]).permutation(outline.floors.shape[0])
        taken = max(1, int(np.searchsorted(np.cumsum(outline.group_sizes[order]), self.sample_count)))
        chosen = np.zeros(outline.floors.shape[0], dtype=bool)
        chosen[order[:taken]] = True
        scores, groups = self.passes.take(self.passes.members(chosen))
        scores, groups = self.comm.gather_columns(scores), self.comm.gather_columns(groups)
        self.group_sample = (scores, None if groups is None else groups.reshape(-1))


def solve_analytic(problem: Problem, *, rtol: float, sample_size: int, seed: int, max_rounds: int,
                   certificate_reads: str, first_pass: FirstPass | None = None) -> Result:
    """The analytic method on a validated in-memory ``problem``: the road of
    :func:`solve_outline` over its arrays (:class:`copslp._analytic.passes.ArrayPasses`, the compiled
    kernels behind them) in this one process; the result carries the LP point.

    Options
    -------
    rtol : float
        Relative accuracy at which the certificate is checked (float64 round-off is ~1e-15).
    sample_size : int
        Size of the subsample that estimates lambda* (with several bounds four times as many,
        at most D / 4); a problem whose budget scaled to the subsample is below 64 is solved
        on every element at once.
    seed : int
        Seed of the subsample (the answer does not depend on it, only the time does).
    max_rounds : int
        Box re-centrings before giving up with a SolverError.
    certificate_reads : {"survivors", "all"}
        What the certificate reads of a screened answer: ``"survivors"`` takes the elements a
        box decided from the levels its pass compared them with (lambda inside the box) and
        reads only the survivors; ``"all"`` reads every element again.
    first_pass : FirstPass, optional
        The pass of :func:`first_pass`, made before ``problem`` was complete: its subsample,
        estimate and first screening are the road's first ones.
    """
    if first_pass is None:
        run = _in_memory_run(problem.scores, problem.groups, problem.floors, rtol=rtol, sample_size=sample_size,
                             seed=seed, max_rounds=max_rounds, certificate_reads=certificate_reads)
    else:
        run = first_pass.run
        run.first = first_pass
    result = solve_outline(run, problem, with_point=True)
    result.info["kernels"] = kernels_in_use()
    return result


def _in_memory_run(scores: np.ndarray, groups: np.ndarray | None, floors: np.ndarray | None,
                   layers: np.ndarray | None = None, **settings) -> _Run:
    """The run of one process over numpy ``scores`` (and, with floors, their ``groups``;
    ``layers``: their offsets, where validation found each group one run)."""
    n_groups = 0 if floors is None else floors.shape[0]
    passes = ArrayPasses(scores, groups if n_groups else None, n_groups, layers=layers)
    return _Run(passes, OneProcess(), settings)


class FirstPass(NamedTuple):
    """The analytic method's first pass over in-memory scores, made by :func:`first_pass`
    before the problem was complete."""

    best: np.ndarray  # T_k(s_i) of each secondary row: what relative bounds scale, and validation's checks
    totals: np.ndarray  # a sum that is finite only if every entry is (Tally)
    run: _Run  # its passes, with the subsample drawn
    estimate: SampleEstimate
    box: tuple  # (lo, hi), the first box
    screen: LocalScreen | None  # that box's pass at the first levels (None: they were unsafe)
    passed_levels: np.ndarray | None  # its group levels read in a pass (_passed_levels), if any
    levels: tuple  # the first levels (one, zero, per group) of that pass


def first_pass(prepared: PreparedProblem, *, rtol: float, sample_size: int, seed: int, max_rounds: int,
               certificate_reads: str) -> FirstPass | None:
    r"""Validation fused with the first screening: relative bounds all in (0, 1), no floors or
    floors on contiguous groups (layers), a problem screened from a subsample (``None`` for
    any other problem, which is validated by its own pass).

    The subsample's estimate of :math:`\lambda^*` needs only the subsample: each bound
    :math:`\gamma_i T_k(s_i)` scales to :math:`\gamma_i T_{k_m}` of the subsample's own s_i.
    So the first box is known before the :math:`T_k(s_i)`, and the one pass that screens it
    also sums v at the box's top (the finiteness check, :class:`copslp._analytic.screening.Tally`) and
    gathers the entries of each s_i at or above the level validation's own pass would use
    (:func:`copslp._selection.strided_candidate_level`: the same candidates in the same order,
    so the same :math:`T_k(s_i)` to the last bit): the scores are read once for both. Numbers
    the pass computes from non-finite entries raise no warnings: validation reports them.

    Left to validation's own pass: floors on groups that are not contiguous, absolute bounds
    (their estimates need T_k), a bound switched off or at gamma = 1 (solved on its face),
    and a subsample with a non-finite entry, or whose sums of |s| overflow float64."""
    scores, k = prepared.scores, prepared.budget
    n, d = scores.shape
    gamma, floors, r = prepared.gamma, prepared.floors, n - 1
    if r < 1 or gamma is None or not np.all((gamma > 0) & (gamma < 1)):
        return None
    if floors is not None and not prepared.contiguous:
        return None
    layers = None if floors is None else group_starts(prepared.group_sizes)  # contiguous: checked above
    run = _in_memory_run(scores, prepared.groups, floors, layers, rtol=rtol, sample_size=sample_size, seed=seed,
                         max_rounds=max_rounds, certificate_reads=certificate_reads)
    run.draw_sample(sample_size * (_SEVERAL_BOUNDS_SAMPLE_FACTOR if r > 1 else 1))
    if not screens(d, k, run.sample_count, r) or not prefilters(d, k):  # else validation's T_k selects among all
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isfinite(np.abs(run.sample_scores).sum(axis=1)).all():  # non-finite, or sums that overflow
            return None
    outline = Outline(d, n, k, gamma, np.ones(r), floors, prepared.group_sizes)
    rows = np.arange(n)
    run.draw_group_sample(outline)
    estimate = _estimate(run, outline, rows, gamma)
    boxes = BoxSchedule(estimate, r, max(1, int(round(k * run.sample_count / d))))
    lo, hi = boxes.box()
    with np.errstate(over="ignore", invalid="ignore"):
        passed = _passed_levels(run, outline, rows, lo, hi)
    levels = _levels(run, outline, rows, lo, hi, _SPREADS[0], np.zeros(run.passes.n_groups, dtype=np.int64), passed)
    tally = Tally(np.array([strided_candidate_level(row, k) for row in scores[1:]]))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        screen = run.passes.screen(rows, lo, hi, *levels, tally=tally)
        best = np.array([top_k_sum_by_partition(found if found.shape[0] >= k else scores[i + 1], k)
                         for i, found in enumerate(tally.candidates)])
    return FirstPass(best, tally.totals, run, estimate, (lo, hi), None if levels[0] < levels[1] else screen, passed,
                     levels)


def solve_streamed(passes: ScorePasses, collectives: Collectives, budget, *, gamma=None, bounds=None, floors=None,
                   options: Mapping[str, Any] | None = None) -> Result:
    r"""The COPS LP optimum and its mask for scores read through ``passes``, sharded as
    ``collectives`` says (see the module docstring for what each process holds and sends):
    the road of ``copslp.solve(method="analytic")``, validated through the passes.

    Every process calls it with its own ``passes`` and the same other arguments; ``budget``,
    ``gamma``, ``bounds`` and ``floors`` mean what they mean in :func:`copslp.solve` (floors
    one per group id of the passes' groups, or one for all). ``options`` are those of the
    analytic method.

    Returns
    -------
    copslp.Result
        The record :func:`copslp.solve` returns: ``mask`` is this process's part, ``size`` is
        D over all processes, the rest describes the whole problem (the same on every
        process); the LP point is not gathered (``point`` is None, reading ``x`` raises).

    Raises
    ------
    TypeError, ValueError
        Bad input (on every process).
    InfeasibleError
        No point meets the bounds (on every process), as :func:`copslp.solve` says it.
    SolverError
        The answer did not pass the certificate, or the exact finish failed on rank 0
        (raised on every process).
    """
    start = time.perf_counter()
    settings = get_method("analytic").settings(options)
    run = _Run(passes, collectives, settings)
    outline = _validate(run, budget, gamma, bounds, floors)
    method_start = time.perf_counter()
    with quiet_arithmetic():
        result = solve_outline(run, outline)
    end = time.perf_counter()
    return result.timed(end - start, end - method_start)


def solve_outline(run: _Run, outline: Outline, with_point: bool = False) -> Result:
    """The road every analytic solve takes once its problem is validated (``outline``: its
    sizes, bounds, best values and floors; the scores behind ``run.passes``): the optimum
    (:func:`_optimum`), then the mask and the certificate (:func:`_finish`). ``with_point``
    (one process only): the result carries the LP point x as well. A box whose survivors'
    multipliers lie outside it is answered all the same where the certificate of the whole
    problem accepts that point (it then is optimal, Lemma 2 or not); else the next round."""
    rows = np.concatenate([[0], outline.active + 1])
    if rows.shape[0] > 2:  # several bounds: their multipliers need a larger subsample
        run.draw_sample(_SEVERAL_BOUNDS_SAMPLE_FACTOR * run.settings["sample_size"])
    elif run.sample_scores is None:
        run.draw_sample(run.settings["sample_size"])
    _raise_if_a_bound_alone_fails(run, outline)
    optimum = _optimum(run, outline, rows, outline.thresholds[outline.active],
                       certified=lambda answer: _finish(run, outline, rows, answer, with_point, candidate=True))
    return optimum.result or _finish(run, outline, rows, optimum, with_point)


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
    """The error of :func:`copslp._infeasibility.single_bound_error` for a bound beyond the
    best value its score reaches within the budget (known from validation). Under floors the
    best value is lower, and measuring it costs a selection with the floors per bound: that
    is left to the proof of infeasibility (:func:`_raise_joint_infeasibility`), which the road
    calls when the problem on the survivors of a box turns out infeasible."""
    for i in outline.active:  # the best values without floors: beyond them, floors or not, no point reaches
        error = short_bound_error(int(i) + 1, float(outline.thresholds[i]), float(outline.best_reachable[i]),
                                  outline.budget, floors=False)
        if error is not None:
            raise error


# --------------------------------------------------------------------------------------------
# screening


@dataclass(frozen=True, eq=False)
class _Screen:
    """One screening pass over every process, its levels verified by its counts: this
    process's part (:class:`LocalScreen`), the sums over every process, what it proved
    (:class:`ScreenRecord`, without floors) and (once :func:`_gather` has run) on rank 0
    the survivors of every process, every score row."""

    local: LocalScreen
    taken: np.ndarray  # every score row summed over the elements fixed to 1, all processes
    fixed_ones: int
    fixed_per_group: np.ndarray | None
    counts: np.ndarray  # survivors per process
    survivors: np.ndarray | None = None  # (n, m) on rank 0, after _gather
    survivor_groups: np.ndarray | None = None
    # without floors: what the box decided, one multiplier per secondary score (0 for those off)
    record: ScreenRecord | None = None

    @property
    def n_survivors(self) -> int:
        return int(self.counts.sum())


def _screen(run: _Run, outline: Outline, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            everything: bool = False, premade: tuple | None = None) -> _Screen:
    """Screen the box [lo, hi] of the multipliers of ``rows`` with levels from the subsample,
    verified by counting (see the module docstring). The survivors stay where they are.
    ``everything``: no levels, every element survives. ``premade``: the pass of this box
    at the first levels, made already (:func:`first_pass`), its group levels read in a pass
    (or None) and those first levels. Group levels the subsample cannot place are read in a pass of their own
    first (:func:`_passed_levels`)."""
    comm = run.comm
    group_tries = np.zeros(0 if outline.floors is None else outline.floors.shape[0], dtype=np.int64)
    spreads = [np.inf] if everything else [*_SPREADS, np.inf]
    if everything:
        passed = None
    else:
        passed = premade[1] if premade is not None else _passed_levels(run, outline, rows, lo, hi)
    while spreads:
        spread = spreads[0]
        first_try = premade is not None and spread == _SPREADS[0] and not group_tries.any()
        levels = premade[2] if first_try else _levels(run, outline, rows, lo, hi, spread, group_tries, passed)
        if levels[0] < levels[1]:  # a one-level below the zero-level: both counts cannot hold
            spreads.pop(0)
            continue
        if first_try:
            local = premade[0]
        else:
            local = run.passes.screen(rows, lo, hi, *levels)
        one_rank, zero_rank = _level_ranks(outline)
        counts = comm.sum(np.array([local.above_one, local.reaching, local.fixed_ones], dtype=np.int64))
        level_fails = (one_rank > 0 and counts[0] >= one_rank) or counts[1] < zero_rank
        short = np.zeros(group_tries.shape[0], dtype=bool)
        if outline.floors is not None:
            short = comm.sum(local.support) < outline.floors
        if not level_fails and not short.any():
            break
        group_tries[short] += 1
        if level_fails or not np.isfinite(spread):  # groups short alone: the same levels, theirs wider
            spreads.pop(0)
    taken, sizes = comm.sum(local.taken), comm.sizes(local.n_survivors)
    box = tuple(np.zeros(outline.n_scores - 1) for _ in range(2))
    box[0][rows[1:] - 1], box[1][rows[1:] - 1] = lo, hi
    fixed = int(counts[2])
    if outline.floors is None:
        dropped = outline.size - fixed - int(sizes.sum())
        record = ScreenRecord(*box, np.array([levels[0]]), np.array([levels[1]]), np.array([fixed]),
                              np.array([dropped]), taken)
        return _Screen(local, taken, fixed, None, sizes, record=record)
    # per group: every element dropped had high below its group's level (none where the group
    # kept all its members, level -inf); "dropped" only marks a level that bounds something,
    # and one that bounds nothing only makes the certificate more cautious
    fixed_per_group = comm.sum(local.fixed_per_group)
    group_levels = levels[2]
    record = ScreenRecord(*box, np.full(group_levels.shape[0], levels[0]), group_levels, fixed_per_group,
                          np.isfinite(group_levels).astype(np.int64), taken)
    return _Screen(local, taken, fixed, fixed_per_group, sizes, record=record)


def _gather(run: _Run, screened: _Screen) -> _Screen:
    """``screened`` with every process's survivors (and their groups) on rank 0."""
    local = screened.local
    survivors = run.comm.gather_columns(local.survivors)
    groups = None if local.survivor_groups is None else run.comm.gather_columns(local.survivor_groups)
    return replace(screened, survivors=survivors, survivor_groups=None if groups is None else groups.reshape(-1))


def _groups_unplaced(run: _Run, outline: Outline) -> bool:
    """Whether floors sit on groups the element subsample cannot place (per-filter floors),
    holding more than :data:`_UNPLACED_SHARE` of the elements: judged by
    :func:`unplaced_share` from the members the subsample is expected to hold in each group,
    so from the sizes alone, the same on every process without a message."""
    if outline.floors is None:
        return False
    return unplaced_share(outline, outline.group_sizes * (run.sample_count / max(outline.size, 1))) > _UNPLACED_SHARE


def _passed_levels(run: _Run, outline: Outline, rows, lo, hi) -> np.ndarray | None:
    """Where the subsample cannot place the groups (:func:`_groups_unplaced`), the group
    levels of the box [lo, hi] read in a pass (:meth:`ScorePasses.group_levels`, the largest
    over the processes: a value floors[g] members of g reach); else None (no pass)."""
    if not _groups_unplaced(run, outline):
        return None
    return run.comm.maximum(run.passes.group_levels(rows, lo, hi, outline.floors))


def _levels(run: _Run, outline: Outline, rows, lo, hi, spread: float, group_tries: np.ndarray, passed):
    """The levels of a screening (:func:`_sample_levels`) where a group's level read in a pass
    (``passed``, :func:`_passed_levels`) is higher than the sampled one, until that group's
    count fails (round-off between the passes: then the sample's, wider)."""
    levels = _on_root(run, lambda: _sample_levels(run, outline, rows, lo, hi, spread, group_tries))
    if passed is None or not np.isfinite(spread):
        return levels
    one_level, zero_level, group_levels = levels
    return one_level, zero_level, np.where(group_tries == 0, np.minimum(np.maximum(group_levels, passed), zero_level),
                                           group_levels)


def _sample_levels(run: _Run, outline: Outline, rows, lo, hi, spread: float, group_tries: np.ndarray):
    """(one_level, zero_level, group_levels) estimated on the subsample with a margin of
    ``spread`` standard deviations (infinite: no level at all, everything survives); the
    level of a group whose count failed once (``group_tries`` 1) with a wider margin, of one
    whose count failed twice none (every member survives)."""
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
                                  _group_sample_levels(outline, low, run.sample_groups, group_tries == 1))
        group_levels[group_tries >= 2] = -np.inf
    return one_level, zero_level, group_levels


def _reduced_floors(outline: Outline, screened: _Screen):
    return None if outline.floors is None else np.maximum(outline.floors - screened.fixed_per_group, 0)


def _reduced(outline: Outline, screened: _Screen, rows: np.ndarray, thresholds: np.ndarray) -> InnerProblem:
    """On rank 0, after :func:`_gather`: the problem left on the survivors for the objective
    and bounds ``rows``."""
    groups = None if outline.floors is None else screened.survivor_groups
    scores = take_rows(screened.survivors, rows)
    return InnerProblem(scores, outline.budget - screened.fixed_ones,
                        thresholds - screened.taken[rows[1:]], groups, _reduced_floors(outline, screened))


def _top_k_value(run: _Run, outline: Outline, rows: np.ndarray, multipliers: np.ndarray, depth: int = 0) -> float:
    """``T^P_k(v)``, v = the rows combined with ``multipliers``: the value of the best budget-k
    set under the outline's floors (the greedy of docs/maths.md §6), by the screening of a point
    (and of the band it leaves, a level down, when that is too wide to gather)."""
    screened = _screen(run, outline, rows, multipliers, multipliers)
    weights = np.concatenate([[1.0], multipliers])
    fixed = float(weights @ screened.taken[rows])
    if _nests(run, outline, screened, rows, depth):
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
        raise SolverError(f"analytic: rank 0 failed: {shared}")
    return (shared, kept) if keep else shared


def _nests(run: _Run, outline: Outline, screened: _Screen, rows: np.ndarray, depth: int) -> bool:
    """Whether the survivors are solved a level down rather than gathered: more than
    :data:`_GATHER_LIMIT` of them, with one bound or none and no floor left to meet (whose box
    within the box is cheap, and leaves few: floors that the elements fixed to 1 meet already
    are no floors below), or over several processes (where gathering them is communication).
    In one process, several bounds or floors left: the survivors are in memory already and
    the finish re-screens them as its box shrinks; a level down would cost a second subsample
    estimate (several bounds) or keep most of them (floors: every member of a group short of
    its floor that may still be among its best)."""
    floors_left = outline.has_floors and bool(_reduced_floors(outline, screened).any())
    finished_here = run.comm.world_size == 1 and (rows.shape[0] > 2 or floors_left)
    return _GATHER_LIMIT < screened.n_survivors < outline.size and depth < _MAX_DEPTH and not finished_here


def _level_below(run: _Run, outline: Outline, screened: _Screen, sample_size: int):
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

    screened: _Screen
    multipliers: np.ndarray  # lambda of the active bounds (of ``rows``)
    values: np.ndarray  # <s_i, x> for every score row
    details: dict
    x_survivors: np.ndarray | None = None  # on rank 0
    nested: tuple | None = None
    result: Result | None = None  # the finished answer, where it was made to certify lambda outside the box


def _optimum(run: _Run, outline: Outline, rows: np.ndarray, thresholds: np.ndarray, depth: int = 0,
             within=None, certified=None) -> _Optimum:
    """The LP optimum for the objective ``rows[0]`` and the bounds ``thresholds`` on
    ``rows[1:]``: boxes around the subsample's estimate, screened, the survivors solved
    exactly on rank 0 (or, when more than :data:`_GATHER_LIMIT` survive, as a problem of
    their own, sharded as they lie), accepted when lambda lies inside the box (as in memory).
    Without bounds the box is a point: the survivors are the band around the k-th level.
    ``within``: the box of the level above and the size of this level's subsample (see
    :class:`copslp._analytic.estimate.BoxSchedule`). ``certified`` (the top level): the
    finished result of an answer whose lambda lies outside its box, or None where the whole
    problem's certificate refuses it (then the next round); the accepted one is returned with
    that result."""
    comm, r = run.comm, rows.shape[0] - 1
    whole = depth == 0 and _solved_whole(run, outline, rows, thresholds)
    first = run.first if depth == 0 and rows.shape[0] == outline.n_scores else None
    if r == 0 or whole:
        estimate = SampleEstimate(np.zeros(r), np.zeros(r), False)
    elif first is not None:
        estimate = first.estimate
    else:
        if depth == 0:
            run.draw_group_sample(outline)
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
    max_rounds = run.settings["max_rounds"]
    for rounds in range(1, max_rounds + 2):
        if rounds > max_rounds:  # the boxes kept missing lambda*: every element, without a box
            prove_infeasible()
            whole = True
        lo, hi = boxes.box()
        premade = None
        if first is not None and rounds == 1 and np.array_equal(first.box[0], lo) and np.array_equal(first.box[1], hi):
            premade = (first.screen, first.passed_levels, first.levels)
        screened = _screen(run, outline, rows, lo, hi, whole, premade)
        everything = screened.n_survivors == outline.size
        if _nests(run, outline, screened, rows, depth):
            kind, value, details, nested = _solve_nested(run, outline, screened, rows, thresholds, depth, (lo, hi))
            x = values = None
        else:
            screened, nested = _gather(run, screened), None
            (kind, value, details), kept = _on_root(
                run, lambda: _finish_on_survivors(outline, screened, rows, thresholds, lo, hi, boxes.centre, run.rtol,
                                                  run.settings if everything else None, depth == 0),
                keep=True)
            x, values = kept or (None, None)  # the point and its values, on rank 0
        if kind == "infeasible":
            prove_infeasible()
            if everything:
                raise SolverError("analytic: the LP on every element was found infeasible although a point meeting "
                                  "every bound exists (a numerical failure)")
            boxes.after_infeasible()
            continue
        if kind == "outside":
            boxes.after_outside(value)
            if boxes.outside_rounds >= 2:  # lambda keeps growing: are the bounds infeasible?
                prove_infeasible()
            continue
        lam = value
        held = inside(lam, lo, hi) or everything
        if held or certified is not None:  # outside: the survivors' lambda is often lambda* itself
            details.update(rounds=rounds, survivors=screened.n_survivors, fixed_ones=screened.fixed_ones)
            if not whole:
                details.update(box=[lo.tolist(), hi.tolist()], sample_estimate=estimate.multipliers.tolist())
            if not held:
                details.update(lambda_outside_box=True)
            if nested is not None:
                values = screened.taken + nested[2].values
            answer = _Optimum(screened, lam, comm.broadcast(values), details, x_survivors=x, nested=nested)
            if held:
                return answer
            result = certified(answer)  # the certificate of the whole problem says
            if result is not None:
                return replace(answer, result=result)
        boxes.after_miss(lam)
    raise AssertionError("the last round solves every element")


#: Survivors gathered on rank 0 at most; more are solved as a sharded problem of their own
#: (its own subsample, boxes and screening, over the survivors in each process's memory), at
#: most this many levels deep.
_GATHER_LIMIT = 1 << 18
_MAX_DEPTH = 3


def _solve_nested(run: _Run, outline: Outline, screened: _Screen, rows, thresholds, depth: int, within):
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
    """On rank 0: lambda* of the subsample's problem (:func:`copslp._analytic.estimate.sample_estimate`),
    on whole groups where they were drawn (:meth:`_Run.draw_group_sample`)."""
    sample, sample_groups = run.group_sample or (run.sample_scores, run.sample_groups)
    m = sample.shape[1]
    sub = replace(outline, thresholds=np.asarray(thresholds, dtype=np.float64),
                  best_reachable=outline.best_reachable[rows[1:] - 1])
    scores = take_rows(sample, rows)
    inner = InnerProblem(scores, outline.budget, thresholds, sample_groups, outline.floors)
    return sample_estimate(sub, inner, np.arange(m), scores, run.rtol)


def _finish_on_survivors(outline, screened, rows, thresholds, lo, hi, centre, rtol, whole_settings=None,
                         top=True):
    """On rank 0: the outcome for every process, ("ok", lambda, details),
    ("infeasible", None, {}) or ("outside", lambda, {}), and, kept on rank 0, the point on
    the survivors and the values of every score row there (or None).

    ``whole_settings`` (the analytic options), when every element of the top level survived
    and was gathered: the whole problem is on rank 0, without a box (:func:`_solve_whole`;
    ``top``: it is the caller's problem, whose best values are known)."""
    reduced = _reduced(outline, screened, rows, thresholds)
    if rows.shape[0] == 1:  # no bound: the top-k (with floors, the greedy) of the band
        x = reduced.indicator(reduced.select(reduced.scores[0])) if reduced.budget > 0 else np.zeros(reduced.size)
        return ("ok", np.zeros(0), {}), (x, _values_at(screened, x))
    try:
        if whole_settings is None:
            x, lam, details = solve_exact(reduced, rtol, (lo, hi, centre))
        else:
            x, lam, details = _solve_whole(outline, reduced, rows, whole_settings, top)
    except (ReducedProblemInfeasible, InfeasibleError):
        return ("infeasible", None, {}), (None, None)
    except MinimumOutsideBox as outside:
        return ("outside", np.asarray(outside.multipliers, dtype=np.float64), {}), (None, None)
    return ("ok", np.asarray(lam, dtype=np.float64), dict(details)), (x, _values_at(screened, x))


def _rows_at_best(outline: Outline, rows: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The bounds (positions in ``thresholds``) that ask for the best value their score
    reaches within the budget (gamma = 1, up to round-off)."""
    best = outline.best_reachable[rows[1:] - 1]
    return np.flatnonzero(thresholds >= best - 1e-12 * np.abs(best))


def _solved_whole(run: _Run, outline: Outline, rows: np.ndarray, thresholds: np.ndarray) -> bool:
    """Whether the problem is solved on every element at once, without boxes: several bounds
    of which one asks for the best value its score reaches (lambda* is unbounded; the
    optimum lies on that bound's face, :func:`_solve_on_best_face`), or a problem too small
    for a subsample to say anything (``copslp._analytic.estimate.screens``)."""
    r = rows.shape[0] - 1
    if r > 1 and _rows_at_best(outline, rows, thresholds).shape[0]:
        return True
    factor = _SEVERAL_BOUNDS_SAMPLE_FACTOR if r > 1 else 1
    m = max(1, min(factor * run.settings["sample_size"], outline.size // 4))
    return not screens(outline.size, outline.budget, m, r)


def _solve_whole(outline: Outline, whole: InnerProblem, rows: np.ndarray, settings: dict, top: bool):
    """x, lambda and details of the whole problem, gathered on rank 0: on the face of a bound
    at its best value (``top``: a level down the best values are only estimates), else the
    exact finish without a box (the simplex on few distinct columns, else boxes from 0 that
    widen, :func:`copslp._analytic.finish.localise_everywhere`). When no point of the face
    meets the other bounds, the exact finish decides: a point within the bounds' round-off of
    the face may (a bound at gamma = 1 whose k-th entry is 1e-11 of its sum)."""
    at_best = _rows_at_best(outline, rows, whole.thresholds) if top else np.zeros(0, dtype=np.intp)
    if rows.shape[0] > 2 and at_best.shape[0]:
        for near in (False, True):
            try:
                x, lam, details = _solve_on_best_face(whole, int(at_best[0]), settings, near)
                return x, lam, {"best_face_of": int(rows[1 + at_best[0]]), **details}
            except ReducedProblemInfeasible:  # no point of the face itself: one within round-off of it may
                pass
        x, lam, details = solve_exact(whole, settings["rtol"])
        return x, lam, {"off_the_face_of": int(rows[1 + at_best[0]]), **details}
    return solve_exact(whole, settings["rtol"])


def _solve_on_best_face(inner: InnerProblem, row: int, settings: dict, near: bool = False):
    r"""Several bounds, one of which (the bound ``row`` of ``inner``, on score i) asks for the
    best value its score reaches (gamma_i = 1): every feasible x lies on the face
    :math:`\langle s_i, x\rangle = T_k(s_i)`, which keeps every element with :math:`s_{ij}`
    above the k-th largest value L of s_i, drops every one below it, and leaves the c
    missing slots to the elements tied at L (often one). The problem left on the tied
    elements, without bound i (their s_i are all L; with floors, each floor less the
    elements above L in its group), is solved by :func:`solve_analytic`; its multipliers
    hold for the other bounds. :math:`\lambda_i`, which may have to be large (it is
    unbounded when the face is a single point), is the least that keeps every kept element
    at or above the level and every dropped one at or below it: with
    :math:`w = s_0 + \sum_{l \ne i}\lambda_l s_l` and :math:`\mu_T` the level of the tied
    elements, :math:`\lambda_i = \max(0, \max_{s_{ij} > L} (\mu_T - w_j)/(s_{ij} - L),
    \max_{s_{ij} < L} (w_j - \mu_T)/(L - s_{ij}))`; then v = w + lambda_i s_i has the level
    :math:`\mu_T + \lambda_i L` and the certificate holds. With floors the levels differ per
    group, so :math:`\mu_T` is replaced by the largest w of a tied element for the elements
    above L and by the smallest for those below: every element above L then has a larger v
    than every tied one, which has a larger v than every element below, in every group.

    ``near``: the elements whose s_i differ from L by so little that all of them together
    change :math:`\langle s_i, x\rangle` by at most the round-off 1e-12
    :math:`\min(|b_i|, \max_j |s_{ij}|)` (the smallest differences first) count as tied: x then
    lies on the face up to the round-off with which the certificate reads a bound, and
    :math:`\lambda_i` moves their v by at most that round-off of :math:`\lambda_i \max_j |s_{ij}|`,
    with which it reads complementarity. Two faces at gamma = 1 that disagree on an element of
    1e-5 beside a best value of 1.8e7 have no point in common, but a point within round-off of
    both.

    Raises :class:`ReducedProblemInfeasible` when no point of the face meets the other
    bounds and the floors (then none at all does: the caller proves it)."""
    s_i = inner.scores[row + 1]
    k = inner.budget
    level = kth_largest(s_i, k)
    at_level = s_i == level
    if near:  # the least differences from L first, as many as the round-off holds together
        off = np.abs(s_i - level)
        room = 1e-12 * min(abs(float(inner.thresholds[row])), float(np.abs(s_i).max()))
        candidates = np.flatnonzero(~at_level & (off <= room))  # only these can fit: few, sorted
        order = candidates[np.argsort(off[candidates], kind="stable")]
        within = order[np.cumsum(off[order]) <= room]
        if within.shape[0] == 0:  # the face as it was, which the caller found infeasible
            raise ReducedProblemInfeasible()
        at_level[within] = True
    above, tied = np.flatnonzero((s_i > level) & ~at_level), np.flatnonzero(at_level)
    others = [other for other in range(inner.thresholds.shape[0]) if other != row]
    rows = np.array([0] + [other + 1 for other in others])
    kept_rows = take_rows(inner.scores, rows)  # every row but i's: one copy, gathered from twice
    taken = take_columns(kept_rows, above).sum(axis=1)
    groups = floors = sizes = None
    if inner.floors is not None:  # the face keeps every element above L: the floors left for the tied ones
        groups = inner.groups[tied]
        sizes = np.bincount(groups, minlength=inner.floors.shape[0])
        floors = np.maximum(inner.floors - np.bincount(inner.groups[above], minlength=sizes.shape[0]), 0)
        if np.any(floors > sizes) or floors.sum() > k - above.shape[0]:  # no point of the face meets the floors
            raise ReducedProblemInfeasible()
    face_scores = take_columns(kept_rows, tied)
    face_best = np.array([top_k_sum(row_scores, k - above.shape[0]) for row_scores in face_scores[1:]])
    # a bound less what the elements above L take rounds: above the face's best by no more
    # than that round-off, it asks for the face's best (the certificate checks the whole x)
    face_thresholds = inner.thresholds[others] - taken[1:]
    round_off = 1e-12 * (np.abs(inner.thresholds[others]) + np.abs(taken[1:]))
    face_thresholds = np.where((face_thresholds > face_best) & (face_thresholds <= face_best + round_off), face_best,
                               face_thresholds)
    face = Problem(face_scores, k - above.shape[0], face_thresholds, None, face_best, groups, floors, sizes)
    try:
        solution = solve_analytic(face, **settings)
    except InfeasibleError:
        raise ReducedProblemInfeasible() from None
    face_x = np.asarray(solution.x)
    x = np.zeros(inner.size)
    x[above] = 1.0
    x[tied] = face_x
    lam_others = np.asarray(solution.multipliers)
    w = inner.combine(np.insert(lam_others, row, 0.0))
    w_tied = w[tied]
    kept = face_x > 0
    if inner.floors is not None:  # a level per group: every element above L over every tied one, every one below under
        lowest_kept, highest_dropped = float(w_tied.max()), float(w_tied.min())
    else:
        lowest_kept = highest_dropped = float(w_tied[kept].min()) if kept.any() else float(w_tied.max())
    below = np.flatnonzero((s_i < level) & ~at_level)
    need = [0.0]
    if above.shape[0]:
        need.append(float(np.max((lowest_kept - w[above]) / (s_i[above] - level))))
    if below.shape[0]:
        need.append(float(np.max((w[below] - highest_dropped) / (level - s_i[below]))))
    lam = np.insert(lam_others, row, max(need))
    return x, lam, {"face_size": int(tied.shape[0]),
                    **{key: value for key, value in solution.info.items() if key in ("oracle_calls", "final_lp_size")}}


def _values_at(screened: _Screen, x: np.ndarray) -> np.ndarray:
    """<s_i, point> for every score row, of the point that is 1 on the elements fixed to 1
    and ``x`` on the gathered survivors."""
    return screened.taken + np.einsum("ij,j->i", screened.survivors, x)  # no BLAS threads


# --------------------------------------------------------------------------------------------
# infeasibility


def _raise_joint_infeasibility(run: _Run, outline: Outline, rows: np.ndarray, thresholds: np.ndarray,
                               depth: int = 0) -> None:
    r"""Raise the :class:`InfeasibleError` of bounds that cannot hold together, or return
    when a point meets them all: the Farkas ray of docs/maths.md §3,
    found by the same road with the first bound as the objective. One bound: whether the best
    point of its score meets it (at the top this was checked before; a level down, the
    problem left on the survivors of a wrong box may fail it, and the box is widened)."""
    if rows.shape[0] == 2:
        error = short_bound_error(int(rows[1]), float(thresholds[0]),
                                  _top_k_value(run, outline, rows[1:], np.zeros(0), depth), outline.budget,
                                  outline.has_floors)
        if error is not None:
            raise error
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
    # the ray's value cancels lambda_i b_i against the top-k sum: with multipliers of 1e15 (a bound
    # at gamma = 1 beside entries within 1e-15 of its level) its round-off exceeds any margin, and
    # the optimum of the first bound under the others (``best``, short of b) decides alone
    round_off = 1e-12 * float(np.abs(optimum.multipliers) @ np.abs(thresholds[1:]))
    if reaches(reach, b) and reach - b > round_off:
        return
    keep = np.flatnonzero(ray > 0)
    conflict_rows = np.concatenate([[head], rest])
    raise conflict_error(outline, tuple(int(conflict_rows[i]) for i in keep), ray[keep], best)


# --------------------------------------------------------------------------------------------
# mask, summary and certificate


def _finish(run: _Run, outline: Outline, rows: np.ndarray, optimum: _Optimum, with_point: bool = False,
            candidate: bool = False) -> Result | None:
    """The mask, each process its part; the whole problem's scan; the certificate, checked
    by every process on the same numbers; with ``with_point`` (one process), the LP point.
    A point the certificate finds short of a bound by more than round-off
    (:data:`_PROVE_SHORT_ABOVE`) goes to the Farkas proof (docs/maths.md §3.5): the bounds may
    conflict by less than the exact finish's tolerance. A ``candidate`` (a box's answer with
    lambda outside the box) that the certificate does not accept as it is gives None."""
    n = outline.n_scores
    multipliers = np.zeros(n - 1)
    multipliers[rows[1:] - 1] = optimum.multipliers
    read_all = run.settings["certificate_reads"] == "all"
    mask, numbers, certificate = _mask_and_certificate(run, outline, optimum, multipliers, read_all)
    if numbers["screened"] and (certificate is None or not certificate.passed):  # levels only bound v: read it all
        mask, numbers, certificate = _mask_and_certificate(run, outline, optimum, multipliers, read_all=True)
    if candidate and (not certificate.passed or certificate.primal_violation > _PROVE_SHORT_ABOVE):
        return None
    if certificate.primal_violation > _PROVE_SHORT_ABOVE:  # the bounds may conflict: the proof decides
        _raise_joint_infeasibility(run, outline, rows, outline.thresholds[rows[1:] - 1])
    if not certificate.passed:
        raise SolverError(f"analytic returned a point that is not optimal: {certificate.summary()}")
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
    return Result(
        mask=mask, point=_point(run, optimum) if with_point else None, objective=float(values[0]),
        mask_objective=float(mask_values[0]), multipliers=multipliers, budget_dual=certificate.budget_dual,
        floor_multipliers=certificate.floor_multipliers, thresholds=thresholds, bound_values=values[1:],
        mask_bound_values=mask_values[1:], mask_violations=violations, mask_meets_bounds=not bool(missed.any()),
        rounding_loss=float(values[0] - mask_values[0]), budget=outline.budget, size=outline.size,
        n_fractional=numbers["n_fractional"], message=message, method="analytic", wall_time=0.0, method_time=0.0,
        certificate=certificate, info=info)


def _point(run: _Run, optimum: _Optimum) -> IndexedPoint:
    """The LP point of one process's whole problem: 1 on the elements each level's screening
    fixed to 1, x on the survivors of the innermost level (:meth:`ArrayPasses.positions`
    finds them where the level's scores lie)."""
    ones_at, index, values = _point_parts(run, optimum)
    return IndexedPoint(run.passes.size, ones_at, index, values)


def _point_parts(run: _Run, optimum: _Optimum):
    ones, survivors = run.passes.positions(optimum.screened.local)
    if optimum.nested is None:
        x = optimum.x_survivors
        at_one = x == 1.0
        other = ~at_one & (x != 0.0)
        return (ones, survivors[at_one]), survivors[other], x[other].astype(np.float64)
    below_run, _, below = optimum.nested
    ones_below, index, values = _point_parts(below_run, below)
    return (ones, *(survivors[piece] for piece in ones_below)), survivors[index], values


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


def _round(outline: Outline, screened: _Screen, x: np.ndarray, multipliers: np.ndarray, rtol: float) -> dict:
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
    nonzero = np.flatnonzero(x)
    empty = x.shape[0] == 0
    return {"kept": kept, "rule": rule, "mask_values": mask_values, "n_fractional": int(fractional.shape[0]),
            "values": scan.values, "x_min": np.inf if empty else scan.x_min, "x_max": -np.inf if empty else scan.x_max,
            "ones_values": scan.ones_values, "segment_x": scan.segment_x, "segment_ones": scan.segment_ones,
            "zeros_max": scan.zeros_max, "ones_min": scan.ones_min, "fractional": fractional,
            "abs_values": np.einsum("ij,j->i", np.abs(take_columns(survivors, nonzero)), np.abs(x[nonzero])),
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
