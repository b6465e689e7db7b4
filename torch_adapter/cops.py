r"""COPS end to end: scores of a model -> :func:`copslp.solve` -> mask applied -> report.

Given scores :math:`s_0` (primary) and :math:`s_1..s_r` (secondary) over the D prunable
elements of a model (one :class:`~torch_adapter.scores.Score` each, all on the same
layout), COPS keeps k elements by solving

.. math::

    \max_m \langle s_0, m\rangle \quad\text{s.t.}\quad \textstyle\sum_j m_j = k,\quad
    \langle s_i, m\rangle \ge \gamma_i \, T_k(s_i),\quad
    \textstyle\sum_{j \in \text{layer } l} m_j \ge f_l,

through its LP relaxation (:func:`copslp.solve`), with :math:`T_k(s)` the sum of the k
largest entries of s. The scores are handed to the core as numpy arrays in their own
precision (float32 or float64); the mask comes back as a bool tensor on the device of the
first score.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import copslp

from .layout import Layout
from .masks import LayerStats, apply_mask, check_apply_options, check_collapse, format_layer_table, layer_stats, resulting_mask
from .flat_score import Score

__all__ = ["Selection", "PruneReport", "select_mask", "prune_with_cops", "layer_floors"]


@dataclass(frozen=True, eq=False)
class Selection:
    """A COPS mask before it is applied.

    Attributes
    ----------
    mask : bool Tensor, shape (D,)
        Exactly ``result.budget`` True entries, on the device of the first score.
    result : copslp.Result
        The solver's answer: LP objective, bound values, multipliers, times, certificate.
    layout : Layout
    score_names : tuple of str
        Names of the scores, primary first.
    floors : ndarray of int64 or None
        Per-layer floors passed to the solver (with ``min_per_layer``).
    layers : tuple of LayerStats
        Kept count and density per layer.
    """

    mask: torch.Tensor
    result: copslp.Result
    layout: Layout
    score_names: tuple[str, ...]
    floors: np.ndarray | None
    layers: tuple[LayerStats, ...]

    @property
    def collapsed(self) -> tuple[str, ...]:
        """Names of the layers that keep no weight."""
        return tuple(s.name for s in self.layers if s.collapsed)


@dataclass(frozen=True, eq=False)
class PruneReport(Selection):
    """What :func:`prune_with_cops` did to the model.

    ``mask`` and ``layers`` describe the mask the model carries afterwards: on a model that
    already carried masks (``previous="combine"``), the AND of the old masks and the COPS
    mask, so ``kept`` may be below ``budget``; ``result`` is the solver's answer for the
    COPS mask alone.

    Attributes (beyond :class:`Selection`)
    --------------------------------------
    mode : str
        ``"mask"`` or ``"freeze"``.
    apply_time : float
        Seconds spent applying the mask to the model.
    """

    mode: str = "mask"
    apply_time: float = 0.0

    @property
    def budget(self) -> int:
        """k, the number of elements kept."""
        return self.result.budget

    @property
    def density(self) -> float:
        """k / D."""
        return self.result.budget / len(self.layout)

    @property
    def kept(self) -> int:
        """Number of elements the model keeps (trainable ones in freeze mode) after pruning."""
        return int(self.mask.sum())

    def table(self) -> str:
        """The per-layer table (kept count and density; collapsed layers flagged ``!``)."""
        combined = (f", {self.kept} kept with the masks the model already carried"
                    if self.kept != self.budget else "")
        return format_layer_table({"kept": self.layers},
                                  title=f"COPS ({', '.join(self.score_names)}), k = {self.budget}{combined}, "
                                        f"density {100 * self.density:.3f}%, mode {self.mode}")

    def summary(self) -> dict:
        """A JSON-friendly summary: the solver's :meth:`copslp.Result.summary` and the layers."""
        return {
            "scores": list(self.score_names),
            "mode": self.mode,
            "budget": self.budget,
            "kept": self.kept,
            "size": len(self.layout),
            "density": self.density,
            "floors": None if self.floors is None else [int(f) for f in self.floors],
            "collapsed": list(self.collapsed),
            "apply_time": self.apply_time,
            "solver": self.result.summary(),
            "layers": [s.as_dict() for s in self.layers],
        }


def layer_floors(layout: Layout, min_per_layer: int | float) -> np.ndarray:
    """Per-layer floors from an absolute count or a minimum density.

    Parameters
    ----------
    layout : Layout
    min_per_layer : int or float
        An int ``c >= 0``: keep at least ``min(c, size_l)`` elements of layer l (a layer
        smaller than c is kept whole). A float ``rho`` in (0, 1]: keep at least
        ``ceil(rho * size_l)`` elements of layer l.

    Returns
    -------
    ndarray of int64, shape (n_layers,)
    """
    sizes = layout.layer_sizes
    if isinstance(min_per_layer, (bool, np.bool_)):
        raise TypeError("min_per_layer must be an int count or a float density, got a bool")
    if isinstance(min_per_layer, (int, np.integer)):
        if min_per_layer < 0:
            raise ValueError(f"min_per_layer must be >= 0, got {min_per_layer}")
        return np.minimum(sizes, int(min_per_layer)).astype(np.int64)
    if isinstance(min_per_layer, (float, np.floating)):
        if not 0 < min_per_layer <= 1:
            raise ValueError(f"min_per_layer as a density must be in (0, 1], got {min_per_layer}")
        return np.array([math.ceil(float(min_per_layer) * int(n)) for n in sizes], dtype=np.int64)
    raise TypeError(f"min_per_layer must be an int or a float, got {type(min_per_layer).__name__}")


def host_matrix(scores: Sequence[Score], index: np.ndarray | None = None) -> np.ndarray:
    """The scores as one ``(n, D)`` numpy array on the host, for :func:`copslp.solve`.

    Each row is copied once from its tensor, straight from the device into the row: no host
    copy per score stacked again by the core. The rows are float64 if a score is, else float32
    (half precisions widen to float32, which numpy reads); float32 values convert exactly, and
    the core sums in float64 either way. One score on the CPU in float32 or float64 is
    handed over as a view of its tensor, with no copy at all. With ``index`` (positions), only
    those columns are taken, on the scores' device.
    """
    dtype = torch.float64 if any(s.values.dtype == torch.float64 for s in scores) else torch.float32
    first = scores[0].values
    if len(scores) == 1 and index is None and first.device.type == "cpu" and first.dtype == dtype:
        return first.detach().numpy()[np.newaxis, :]
    size = first.shape[0] if index is None else index.shape[0]
    out = torch.empty((len(scores), size), dtype=dtype)  # host memory, shared with the numpy array
    for row, score in zip(out, scores):
        values = score.values.detach()
        if index is not None:
            values = values.index_select(0, torch.from_numpy(index).to(values.device))
        row.copy_(values)  # device to host and to the dtype: one copy
    return out.numpy()


def _as_scores(scores: Score | Sequence[Score]) -> tuple[Score, ...]:
    if isinstance(scores, Score):
        scores = (scores,)
    scores = tuple(scores)
    if not scores:
        raise ValueError("scores is empty: give at least the primary score")
    for i, s in enumerate(scores):
        if not isinstance(s, Score):
            raise TypeError(f"scores[{i}] must be a torch_adapter Score, got {type(s).__name__}")
    layout = scores[0].layout
    for i, s in enumerate(scores[1:], start=1):
        if s.layout != layout:
            raise ValueError(f"scores[{i}] ({s.name}) is on a different layout than scores[0] ({scores[0].name}): "
                             f"{s.layout!r} vs {layout!r}")
    return scores


def select_mask(
    scores: Score | Sequence[Score],
    budget: int | float,
    *,
    gamma: float | Sequence[float] | None = None,
    bounds: float | Sequence[float] | None = None,
    method: str = "auto",
    options: Mapping[str, Any] | None = None,
    min_per_layer: int | float | None = None,
) -> Selection:
    """Solve COPS for the given scores without touching any model.

    Parameters
    ----------
    scores : Score or sequence of Score
        Primary first, then the secondary scores; all on one layout. A single score gives
        its plain top-k mask.
    budget : int or float
        As in :func:`copslp.solve`: the kept count ``k`` (an int, ``1 <= k <= D``) or the
        kept fraction (a float in (0, 1]; ``k = max(1, round(fraction * D))``).
    gamma : float or sequence of float in [0, 1], optional
        Relative bound per secondary score: ``<s_i, m> >= gamma_i * T_k(s_i)``. Default
        (neither ``gamma`` nor ``bounds``): 0.9 for every secondary score.
    bounds : float or sequence of float, optional
        Absolute bounds ``b_i`` instead of ``gamma``.
    method : str, default "auto"
        A :func:`copslp.available_methods` name (``"auto"`` is ``"analytic"``).
    options : mapping, optional
        The method's options, passed to :func:`copslp.solve`.
    min_per_layer : int or float, optional
        Layer floors against layer collapse, see :func:`layer_floors`; passed to the
        solver as ``groups=layout.group_index()`` and ``floors``.

    Returns
    -------
    Selection

    Raises
    ------
    copslp.InfeasibleError
        The bounds (and floors) cannot be met with k elements.
    copslp.SolverError
        The solver failed.
    """
    scores = _as_scores(scores)
    layout = scores[0].layout
    groups = floors = None
    if min_per_layer is not None:
        floors = layer_floors(layout, min_per_layer)
        groups = layout.group_index()
    result = copslp.solve(host_matrix(scores), budget, gamma=gamma, bounds=bounds, groups=groups,
                          floors=floors, method=method, options=options)
    kept = int(np.count_nonzero(result.mask))  # counted on the numpy side: a torch bool sum is slow
    if result.mask.shape != (len(layout),) or kept != result.budget:
        raise copslp.SolverError(f"copslp returned a mask with {kept} of {result.mask.shape[0]} kept, "
                                 f"expected {result.budget} of {len(layout)}")
    mask = torch.from_numpy(result.mask.copy()).to(scores[0].values.device)  # its own memory, not the Result's
    return Selection(mask, result, layout, tuple(s.name for s in scores), floors, layer_stats(result.mask, layout))


def prune_with_cops(
    model: nn.Module,
    scores: Score | Sequence[Score],
    budget: int | float,
    *,
    gamma: float | Sequence[float] | None = None,
    bounds: float | Sequence[float] | None = None,
    method: str = "auto",
    options: Mapping[str, Any] | None = None,
    min_per_layer: int | float | None = None,
    mode: str = "mask",
    rescale: bool | str = False,
    on_collapse: str = "warn",
    previous: str = "combine",
) -> PruneReport:
    """Combine pruning scores with COPS and apply the mask to ``model`` in place.

    ``select_mask(scores, ...)`` followed by ``apply_mask(model, mask, layout, mode=...,
    on_collapse=...)``; see those for the parameters. The scores' layout must fit ``model``
    (the scores were computed from it or from a copy with the same names and shapes).

    Parameters
    ----------
    model : nn.Module
    scores : Score or sequence of Score
        Primary first.
    budget, gamma, bounds, method, options, min_per_layer
        See :func:`select_mask`.
    mode : {"mask", "freeze"}, default "mask"
        A mask parametrization (pruned weights are 0) or FreezeNet (Wimmer, Mehnert and
        Condurache, ACCV 2020: unselected weights frozen at their current values); see
        :mod:`torch_adapter.masks`.
    rescale : bool or {"weights", "count"}, default False
        Rescale the kept weights of every unit after pruning so that its pre-activation
        variance is restored (:func:`torch_adapter.rescale_after_pruning`); needs ``mode="mask"``.
    on_collapse : {"warn", "raise", "ignore"}, default "warn"
        What to do when a layer keeps no weight (with "raise" the model is left untouched).
    previous : {"combine", "replace"}, default "combine"
        What to do with masks the model already carries (see :mod:`torch_adapter.masks`):
        AND them with the COPS mask, or drop them.

    Returns
    -------
    PruneReport
        Per-layer table (:meth:`PruneReport.table`), the :class:`copslp.Result` (objective,
        bound values, multipliers, times) and a JSON-friendly :meth:`PruneReport.summary`.

    Examples
    --------
    >>> from torch_adapter import scores, prune_with_cops                  # doctest: +SKIP
    >>> s_snip = scores.snip(model, nn.CrossEntropyLoss(), batches)         # doctest: +SKIP
    >>> s_flow = scores.synflow(model, (3, 32, 32))                         # doctest: +SKIP
    >>> report = prune_with_cops(model, [s_snip, s_flow], 0.01, gamma=0.9)  # doctest: +SKIP
    >>> print(report.table())                                               # doctest: +SKIP
    """
    scores = _as_scores(scores)
    scores[0].layout.modules(model)  # fail before solving if the layout does not fit
    check_apply_options(mode=mode, rescale=rescale, on_collapse=on_collapse, previous=previous)  # before solving
    selection = select_mask(scores, budget, gamma=gamma, bounds=bounds, method=method,
                            min_per_layer=min_per_layer, options=options)
    resulting = resulting_mask(model, selection.mask, selection.layout, previous=previous)
    check_collapse(layer_stats(resulting, selection.layout), on_collapse, stacklevel=2)  # before touching the model
    start = time.perf_counter()
    layers = apply_mask(model, selection.mask, selection.layout, mode=mode, rescale=rescale, on_collapse="ignore",
                        previous=previous)
    apply_time = time.perf_counter() - start
    return PruneReport(resulting, selection.result, selection.layout, selection.score_names,
                       selection.floors, layers, mode=mode, apply_time=apply_time)
