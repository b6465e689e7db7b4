r"""Iterative pruning at initialisation for any score, and for COPS itself.

For R rounds with densities :math:`d_1 > d_2 > \dots > d_R = d` (the final density), round r

1. recomputes the scores on a working copy of the model in which every weight pruned so far
   is 0 (``score_fn(copy)``; the caller's model is never touched by the loop),
2. keeps :math:`\kappa(d_r, N)` elements *among those kept after round r - 1*: the top ones
   by the primary score (``selector="topk"``, global or per layer) or the COPS answer
   (``selector="cops"``, with bounds on the secondary scores and optional layer floors),
3. sets the elements it dropped to 0 in the working copy.

The cost of a round beyond the scoring is that of the kept elements only: the copy is made
once per run and only the newly dropped entries are written; the loop holds the sorted
positions of the kept elements, gathers their scores, selects among them (one
``np.partition``) and counts nothing it already knows (a round keeps exactly its count). A
``score_fn`` with an ``_open_rounds(model, layout)`` method scores the rounds itself:
:class:`torch_adapter.scores.SynFlowRounds` makes the absolute-valued copy once, zeroes the dropped entries in it
in place and writes each round's scores into one preallocated flat buffer, so that a round
costs one forward and backward pass and a few passes over the kept elements.

Schedules (the SynFlow paper's, and its code's ``prune_loop``), for r = 1..R:

* ``"exponential"``: :math:`d_r = d^{\,r/R}`;
* ``"linear"``: :math:`d_r = 1 - (1 - d)\, r / R`.

The kept count :math:`\kappa` follows :func:`torch_adapter.topk.kept_count`: ``"round"``
(:math:`\max(1, \operatorname{round}(d_r N))`) or ``"reference"``
(:math:`N - \lfloor (1 - d_r) N \rfloor`, the SynFlow authors' count; with it the loop
reproduces their iterative masks, see the tests). Densities are always fractions of all N
prunable elements (of each layer's elements for ``scope="local"``).

Masks are nested: an element pruned in one round stays pruned. With SynFlow, SNIP or
GraSP the scores of pruned elements are 0 anyway (they are products with the weight); with
COPS the problem of round r is solved on the elements still kept, so the relative bounds
read :math:`\langle s_i, m\rangle \ge \gamma_i T_k(s_i|_{\text{kept}})`, the best any
k-subset of the kept elements reaches, and floors :math:`f_l` (from ``min_per_layer``,
computed on the full layer sizes) hold in every round.

SynFlow's iterative variant (:func:`torch_adapter.scores.synflow` with ``iterations > 1``)
is this loop with ``score_fn = SynFlowRounds(...)`` and the exponential schedule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import copslp

from ._checks import check_choice
from .cops import host_matrix, layer_floors
from .layout import Layout
from .masks import LayerStats, apply_mask, check_apply_options, layer_stats
from .flat_score import Score, copy_model, with_progress_bar
from .topk import (KEPT_COUNTS, SCOPES, _reference_threshold_checked, _top_k_of, kept_count, reference_threshold,
                   top_k_mask)

__all__ = ["SCHEDULES", "SELECTORS", "IterativeResult", "round_densities", "iterative_prune", "zero_entries"]

#: Density schedules of the iterative loop.
SCHEDULES = ("exponential", "linear")
#: How each round selects: plain top-k of the primary score, or COPS.
SELECTORS = ("topk", "cops")


@dataclass(frozen=True, eq=False)
class IterativeResult:
    """What :func:`iterative_prune` did.

    Attributes
    ----------
    mask : bool Tensor, shape (D,)
        The final mask (True = kept), on the device of the scores.
    layout : Layout
    densities : tuple of float
        The target density of each round, :math:`d_1 .. d_R`.
    kept_counts : tuple of int
        Elements kept after each round.
    score_times, select_times : tuple of float
        Seconds spent scoring and selecting in each round.
    scores : tuple of Score
        The scores of the last round (primary first), computed with the mask of round R - 1.
    results : tuple of copslp.Result
        The solver's answer of each round (``selector="cops"``; empty for ``"topk"``).
    layers : tuple of LayerStats
        Kept count and density per layer of the final mask.
    applied : bool
        Whether the final mask was applied to the caller's model.
    """

    mask: torch.Tensor
    layout: Layout
    densities: tuple[float, ...]
    kept_counts: tuple[int, ...]
    score_times: tuple[float, ...]
    select_times: tuple[float, ...]
    scores: tuple[Score, ...]
    results: tuple[Any, ...]
    layers: tuple[LayerStats, ...]
    applied: bool

    @property
    def rounds(self) -> int:
        return len(self.densities)

    def summary(self) -> dict:
        """A JSON-friendly summary (no tensors)."""
        return {
            "rounds": self.rounds,
            "size": len(self.layout),
            "densities": list(self.densities),
            "kept_counts": list(self.kept_counts),
            "score_times": list(self.score_times),
            "select_times": list(self.select_times),
            "scores": [s.name for s in self.scores],
            "applied": self.applied,
            "layers": [s.as_dict() for s in self.layers],
        }


def round_densities(density: float, rounds: int, schedule: str = "exponential") -> tuple[float, ...]:
    r"""The target density of each round: :math:`d^{r/R}` or :math:`1 - (1 - d) r / R`, r = 1..R.

    Evaluated with the same float expressions as the SynFlow authors' ``prune_loop``
    (``d ** ((r + 1) / R)`` and ``1.0 - (1.0 - d) * ((r + 1) / R)`` for r = 0..R-1), so that
    the ``"reference"`` kept counts agree with theirs to the last element.
    """
    check_choice("schedule", schedule, SCHEDULES)
    if isinstance(rounds, (bool, np.bool_)) or not isinstance(rounds, (int, np.integer)):
        raise TypeError(f"rounds must be an int, got {rounds!r}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    if isinstance(density, (bool, np.bool_)) or not isinstance(density, (float, int, np.floating, np.integer)):
        raise TypeError(f"density must be a float in (0, 1], got {density!r}")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    density, rounds = float(density), int(rounds)
    if schedule == "exponential":
        return tuple(density ** ((r + 1) / rounds) for r in range(rounds))
    return tuple(1.0 - (1.0 - density) * ((r + 1) / rounds) for r in range(rounds))


def _scores_of(output: Any, layout: Layout) -> tuple[Score, ...]:
    scores = (output,) if isinstance(output, Score) else tuple(output) if isinstance(output, (list, tuple)) else None
    if not scores or not all(isinstance(s, Score) for s in scores):
        raise TypeError(f"score_fn must return a Score or a non-empty sequence of Scores, got {type(output).__name__}")
    for s in scores:
        if s.layout != layout:
            raise ValueError(f"score_fn returned {s.name!r} on {s.layout!r}, the loop's layout is {layout!r}")
    return scores


def zero_entries(tensors: Sequence[torch.Tensor], layout: Layout, dropped: np.ndarray) -> None:
    """Set the flat positions ``dropped`` (sorted) of the layout's tensors to 0, in place.

    Only the newly pruned entries are written: the positions of each tensor form one run of
    the sorted array (found by ``np.searchsorted`` on the entries' offsets).
    """
    if dropped.size == 0:
        return
    cuts = np.searchsorted(dropped, [e.offset for e in layout.entries] + [len(layout)])
    with torch.no_grad():
        for tensor, entry, lo, hi in zip(tensors, layout.entries, cuts[:-1], cuts[1:]):
            if lo == hi:
                continue
            local = torch.from_numpy(dropped[lo:hi] - entry.offset).to(tensor.device)
            if tensor.is_contiguous():
                tensor.view(-1).index_fill_(0, local, 0)
            else:
                flat = torch.zeros(tensor.numel(), dtype=torch.bool, device=tensor.device)
                flat[local] = True
                tensor.masked_fill_(flat.view(tensor.shape), 0)


class _CopyRounds:
    """The rounds of any ``score_fn``: one deep copy of the model, pruned entries zeroed in place.

    ``zero_pruned`` is False: nothing is known of the pruned elements' scores without reading them."""

    zero_pruned = False

    def __init__(self, model: nn.Module, score_fn: Callable, layout: Layout):
        self.work = copy_model(model)
        self.tensors = layout.trainable(self.work)
        self.score_fn = score_fn
        self.layout = layout

    def prune(self, dropped: np.ndarray) -> None:
        zero_entries(self.tensors, self.layout, dropped)

    def scores(self) -> tuple[Score, ...]:
        return _scores_of(self.score_fn(self.work), self.layout)

    def close(self) -> None:
        del self.work, self.tensors


def _open_rounds(model: nn.Module, score_fn: Callable, layout: Layout):
    opener = getattr(score_fn, "_open_rounds", None)
    return _CopyRounds(model, score_fn, layout) if opener is None else opener(model, layout)


def _select_top(scores: tuple[Score, ...], kept: np.ndarray | None, density: float, *, scope: str,
                convention: str, layout: Layout, groups: np.ndarray | None, zero_pruned: bool = False) -> np.ndarray:
    """Top-k among the kept positions ``kept`` (None: all): which of them stay (bool, their order).

    The reference convention's rule (:func:`top_k_mask`) compares with a value among all N
    scores, the pruned ones too; ``zero_pruned`` (the session's word that every pruned element
    scores 0 and none scores below 0, as with SynFlow) lets the loop find it among the kept
    scores alone, see :func:`_reference_threshold_of_all`."""
    if len(scores) > 1:
        raise ValueError(f'selector="topk" ranks by one score, score_fn returned {len(scores)}: '
                         f'{[s.name for s in scores]}; use selector="cops"')
    if convention == "reference" and scope == "global":  # its threshold is a value among all N scores
        every = _pool_values(scores[0].values, None)
        removed = len(layout) - kept_count(density, len(layout), convention)
        values = every if kept is None else every.take(kept)
        threshold = _reference_threshold_of_all(every, values, kept, removed, zero_pruned=zero_pruned)
        return values > threshold
    if convention == "reference":  # per layer: top_k_mask's rule among the candidates
        candidates = None
        if kept is not None:
            candidates = np.zeros(len(layout), dtype=bool)
            candidates[kept] = True
        mask = top_k_mask(scores[0], density, scope=scope, layout=layout, kept_count_convention=convention,
                          candidates=candidates).cpu().numpy()
        return mask if kept is None else mask[kept]
    values = _pool_values(scores[0].values, kept)
    if scope == "global":
        k = kept_count(density, len(layout), convention)
        if k > values.shape[0]:
            raise ValueError(f"density {density!r} keeps {k} elements, but only {values.shape[0]} are candidates")
        return _top_k_of(values, k)
    pool_groups = groups if kept is None else groups[kept]
    stay = np.zeros(values.shape[0], dtype=bool)
    for layer, size in enumerate(layout.layer_sizes):
        span = np.flatnonzero(pool_groups == layer)
        k = kept_count(density, int(size), convention)
        if k > span.size:
            raise ValueError(f"density {density!r} keeps {k} elements in layer {layer} "
                             f"({layout.layer_names[layer]!r}), but only {span.size} are candidates")
        stay[span[_top_k_of(values[span], k)]] = True
    return stay


def _reference_threshold_of_all(every: np.ndarray, values: np.ndarray, kept: np.ndarray | None, removed: int, *,
                                zero_pruned: bool = False):
    r"""The ``removed``-th smallest of all N scores ``every`` (-inf for none), of which
    ``values`` are the kept ones (at the sorted positions ``kept``; None: all). NaN among the
    kept is refused; among the pruned it is ignored where the pruned ones need not be read.

    Where no pruned score exceeds the smallest kept one, all N sorted are the P = N - K pruned
    ones, then the kept ones, so the threshold is the ``removed``-th smallest pruned score for
    ``removed`` <= P, else the (``removed`` - P)-th smallest kept one: one selection among the
    kept (or the pruned), not one over all N. With ``zero_pruned`` (every pruned score is 0,
    none is below 0: SynFlow's, whose pruned weights are 0 in the copy and whose scores are
    absolute values) this holds without reading a pruned score, and the threshold for
    ``removed`` <= P is 0. Otherwise the largest pruned score is read in one pass (a copy of
    ``every`` with the kept set to -inf), and where it exceeds the smallest kept score the
    threshold is one selection over all N."""
    size = every.shape[0]
    if kept is None or kept.shape[0] == size:  # nothing pruned: values are all N
        return _reference_threshold_checked(values, removed)
    if values.shape[0] == 0:  # nothing kept: no NaN to refuse
        return reference_threshold(every, removed)
    n_pruned = size - kept.shape[0]
    if zero_pruned:
        if removed <= n_pruned:
            _reference_threshold_checked(values, 0)  # NaN check only
            return every.dtype.type(0) if removed >= 1 else -np.inf
        return _small_rank(values, removed - n_pruned)
    if np.isnan(values.max()):
        raise ValueError("score contains NaN; a top-k mask needs comparable values")
    scratch = every.copy()
    scratch[kept] = -np.inf
    if not scratch.max() <= values.min():
        return reference_threshold(every, removed)
    if removed <= n_pruned:  # the removed-th smallest of the pruned: the kept put above every one of them
        scratch[kept] = np.inf
        return reference_threshold(scratch, removed)
    return reference_threshold(values, removed - n_pruned)


#: Sample size of :func:`_small_rank`'s pre-selection.
_SAMPLE = 16384


def _small_rank(values: np.ndarray, rank: int):
    r"""The ``rank``-th smallest of ``values`` (1 <= ``rank`` <= their number), NaN refused.

    A round drops a few per cent of the kept, so the rank is small: a cut c is read from a
    strided sample of at most ``_SAMPLE`` values (its :math:`\lceil pS + 4\sqrt{pS}\rceil + 8`-th
    smallest, p = rank / K), and the selection runs among the values <= c only. Exact: when at
    least ``rank`` values are <= c, the rank-th smallest of all is among them; else (an
    unrepresentative sample) one selection over all."""
    size = values.shape[0]
    if np.isnan(values.max()):
        raise ValueError("score contains NaN; a top-k mask needs comparable values")
    sample = values[::max(1, size // _SAMPLE)]
    expected = rank / size * sample.shape[0]
    place = min(sample.shape[0], int(np.ceil(expected + 4 * np.sqrt(expected))) + 8)
    below = values[values <= np.partition(sample, place - 1)[place - 1]]
    pool = below if below.shape[0] >= rank else values
    return np.partition(pool, rank - 1)[rank - 1]


def _pool_values(values: torch.Tensor, kept: np.ndarray | None) -> np.ndarray:
    """The values at the kept positions as a numpy array, in their own dtype (half widened)."""
    values = values.detach()
    if kept is not None and values.device.type != "cpu":
        values = values.index_select(0, torch.from_numpy(kept).to(values.device))
        kept = None
    if values.dtype not in (torch.float32, torch.float64):
        values = values.to(torch.float32 if values.element_size() <= 4 else torch.float64)
    array = values.cpu().numpy()
    return array if kept is None else array.take(kept)


def _select_cops(scores: Sequence[Score], kept: np.ndarray | None, budget: int, layout: Layout, *,
                 groups: np.ndarray | None, floors: np.ndarray | None, gamma, bounds, method: str,
                 options: Mapping[str, Any] | None) -> tuple[np.ndarray, Any]:
    """COPS on the kept positions only (None: all): which of them stay (bool), and the result."""
    pool_groups = None if floors is None else groups if kept is None else groups[kept]
    result = copslp.solve(host_matrix(scores, kept), budget, gamma=gamma, bounds=bounds, groups=pool_groups,
                          floors=floors, method=method, options=options)
    return np.asarray(result.mask, dtype=bool), result


def iterative_prune(
    model: nn.Module,
    score_fn: Callable[[nn.Module], Score | Sequence[Score]],
    *,
    density: float,
    rounds: int = 100,
    schedule: str = "exponential",
    selector: str = "topk",
    scope: str = "global",
    kept_count_convention: str = "round",
    gamma: float | Sequence[float] | None = None,
    bounds: float | Sequence[float] | None = None,
    min_per_layer: int | float | None = None,
    method: str = "auto",
    options: Mapping[str, Any] | None = None,
    layout: Layout | None = None,
    apply: bool = False,
    mode: str = "mask",
    rescale: bool | str = False,
    on_collapse: str = "warn",
    progress: bool = False,
) -> IterativeResult:
    r"""Prune in R rounds, recomputing the scores on the masked model each round.

    See the module docstring for the loop, the schedules and the kept counts.

    Parameters
    ----------
    model : nn.Module
        Scored through a deep copy; left untouched unless ``apply=True``.
    score_fn : callable
        ``score_fn(masked_copy)`` -> a :class:`Score` or a sequence of Scores (primary first),
        e.g. ``lambda m: scores.synflow(m, (3, 32, 32))`` or
        ``lambda m: [scores.snip(m, loss, data), scores.synflow(m, (3, 32, 32))]``.
        The scores must be on ``layout``. For SynFlow alone pass ``scores.SynFlowRounds((3, 32, 32))``:
        the same scores, without a fresh absolute-valued copy every round.
    density : float in (0, 1]
        Final kept fraction d.
    rounds : int, default 100
    schedule : {"exponential", "linear"}
    selector : {"topk", "cops"}
        ``"topk"``: the top of the primary score (further scores are refused);
        ``"cops"``: :func:`copslp.solve` with ``gamma``/``bounds``, ``min_per_layer`` and
        ``method`` (with one score and floors this is the top-k under floors).
    scope : {"global", "local"}
        For ``"topk"``: one kept count over all elements, or one per layer. ``"cops"`` is
        global (per-layer counts are what floors are for).
    kept_count_convention : {"round", "reference"}
        See :func:`torch_adapter.topk.kept_count`.
    gamma, bounds, min_per_layer, method, options
        COPS options, as in :func:`torch_adapter.select_mask` (``options``: the method's
        options for :func:`copslp.solve`); refused with ``"topk"``.
    layout : Layout, optional
        Default ``Layout.from_model(model)``.
    apply : bool, default False
        Apply the final mask to ``model`` (in place) with ``mode``, ``rescale`` and
        ``on_collapse`` as in :func:`torch_adapter.apply_mask`.
    mode, rescale, on_collapse
        See :func:`torch_adapter.apply_mask`; used only with ``apply=True`` (refused otherwise).
    progress : bool, default False
        A tqdm bar over the rounds.

    Returns
    -------
    IterativeResult
        Final mask, per-round densities, kept counts, score and selection times, the last
        round's scores and (COPS) the solver's results.

    Raises
    ------
    copslp.InfeasibleError
        A COPS round whose bounds or floors cannot be met.
    """
    check_choice("selector", selector, SELECTORS)
    check_choice("scope", scope, SCOPES)
    check_choice("kept_count_convention", kept_count_convention, KEPT_COUNTS)
    cops_options = {"gamma": gamma, "bounds": bounds, "min_per_layer": min_per_layer}
    if selector == "topk":
        given = sorted(name for name, value in cops_options.items() if value is not None)
        given += (["method"] if method != "auto" else []) + (["options"] if options is not None else [])
        if given:
            raise TypeError(f'selector="topk" takes no COPS options, got {given}; use selector="cops" '
                            "(with one score and min_per_layer it is the top-k under floors)")
    elif scope != "global":
        raise ValueError('selector="cops" selects globally; use min_per_layer for per-layer floors, '
                         f"got scope={scope!r}")
    if not isinstance(apply, bool):
        raise TypeError(f"apply must be a bool, got {apply!r}")
    if not apply and (mode != "mask" or rescale or on_collapse != "warn"):
        raise TypeError("mode, rescale and on_collapse apply the final mask: pass apply=True")
    check_apply_options(mode=mode, rescale=rescale, on_collapse=on_collapse, previous="combine")  # before scoring
    densities = round_densities(density, rounds, schedule)
    layout = Layout.from_model(model) if layout is None else layout
    layout.modules(model)  # fail early if it does not fit
    size = len(layout)
    floors = None if min_per_layer is None else layer_floors(layout, min_per_layer)

    groups = layout.group_index() if (floors is not None or scope == "local") else None
    session = _open_rounds(model, score_fn, layout)
    kept: np.ndarray | None = None  # sorted positions of the elements kept so far; None: all
    kept_counts, score_times, select_times, results = [], [], [], []
    scores: tuple[Score, ...] = ()
    steps = with_progress_bar(densities, total=rounds, desc="iterative pruning") if progress else densities
    try:
        for round_density in steps:
            start = time.perf_counter()
            scores = session.scores()
            score_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            if selector == "topk":
                stay = _select_top(scores, kept, round_density, scope=scope, convention=kept_count_convention,
                                   layout=layout, groups=groups, zero_pruned=session.zero_pruned)
            else:
                budget = kept_count(round_density, size, kept_count_convention)
                stay, result = _select_cops(scores, kept, budget, layout, groups=groups, floors=floors, gamma=gamma,
                                            bounds=bounds, method=method, options=options)
                results.append(result)
            gone = np.flatnonzero(~stay)  # few: one scan and a gather, cheaper than a second compress
            dropped = gone if kept is None else kept.take(gone)
            kept = np.flatnonzero(stay) if kept is None else kept[stay]
            session.prune(dropped)
            select_times.append(time.perf_counter() - start)
            kept_counts.append(int(kept.shape[0]))
    finally:
        session.close()
    mask = torch.zeros(size, dtype=torch.bool)
    mask[torch.from_numpy(np.arange(size) if kept is None else kept)] = True
    kept = mask.to(scores[0].values.device) if scores else mask
    layers = layer_stats(kept, layout)
    if apply:
        layers = apply_mask(model, kept, layout, mode=mode, rescale=rescale, on_collapse=on_collapse)
    return IterativeResult(kept, layout, densities, tuple(kept_counts), tuple(score_times), tuple(select_times),
                           scores, tuple(results), layers, apply)
