"""Masks back into a model, and a per-layer report of what was kept.

A mask is a flat boolean vector of length D in the order of a
:class:`~torch_adapter.layout.Layout` (True = kept). Two ways to apply it:

``mode="mask"`` (default)
    :func:`torch.nn.utils.prune.custom_from_mask` on every layout tensor: the module gets a
    parameter ``weight_orig`` and a buffer ``weight_mask``, and ``weight = weight_orig *
    weight_mask`` is recomputed before every forward pass. Pruned weights are 0 and get
    zero gradient. :func:`make_permanent` bakes the masks in (``prune.remove``). A module
    that was already pruned combines the new mask with its old one, as ``torch.nn.utils.prune``
    does. (A torch limitation to know: ``copy.deepcopy`` refuses a module pruned this way,
    because ``weight`` is then a non-leaf tensor; the scores of this package copy such
    models safely.)

``mode="freeze"`` (FreezeNet, Lubana et al. / Wimmer et al., 2020)
    Unselected weights are not zeroed but frozen at their current (initial) values. The
    tensor is reparametrised with :func:`torch.nn.utils.parametrize.register_parametrization`
    as ``weight = where(mask, original, frozen)`` with ``frozen`` a buffer holding the
    values at the time of the call. Frozen elements get exactly zero gradient, and because
    the effective weight reads them from the buffer, *no optimiser can move them*: not
    momentum, not weight decay (which does change ``original`` at those positions, to no
    effect). Parameters live at ``module.parametrizations.weight.original``; create the
    optimiser after applying the mask.

Layer collapse: a layer (module of the layout) whose weights are all pruned passes no
signal. :func:`apply_mask` checks every layer before touching the model and, following
``on_collapse``, warns (:class:`LayerCollapseWarning`), raises (:class:`LayerCollapseError`,
with the model left unchanged) or says nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from .layout import Layout
from .rescaling import RESCALE_BY, rescale_after_pruning

__all__ = [
    "LayerStats",
    "LayerCollapseWarning",
    "LayerCollapseError",
    "layer_stats",
    "check_collapse",
    "apply_mask",
    "make_permanent",
    "format_layer_table",
    "MODES",
]

#: Ways to apply a mask.
MODES = ("mask", "freeze")
_ON_COLLAPSE = ("warn", "raise", "ignore")


class LayerCollapseWarning(UserWarning):
    """A layer keeps none of its weights."""


class LayerCollapseError(ValueError):
    """A layer keeps none of its weights and ``on_collapse="raise"`` was asked for.

    Attributes
    ----------
    layers : tuple of str
        Names of the collapsed modules.
    """

    def __init__(self, message: str, layers: Sequence[str]):
        super().__init__(message)
        self.layers = tuple(layers)


@dataclass(frozen=True)
class LayerStats:
    """What a mask keeps of one layer (one module of the layout).

    Attributes
    ----------
    name : str
        Module name.
    module_type : str
        ``"Conv2d"``, ``"Linear"``, ...
    size : int
        Number of prunable elements of the module (weight, plus bias if in the layout).
    kept : int
        Number of them the mask keeps.
    density : float
        ``kept / size``.
    collapsed : bool
        No element of the module's ``weight`` is kept (for a layout entry without a weight,
        nothing of the module is kept).
    """

    name: str
    module_type: str
    size: int
    kept: int
    density: float
    collapsed: bool

    def as_dict(self) -> dict:
        return {"name": self.name, "module_type": self.module_type, "size": self.size,
                "kept": self.kept, "density": self.density, "collapsed": self.collapsed}


def _flat_bool(mask, layout: Layout) -> torch.Tensor:
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or numpy array, got {type(mask).__name__}")
    if mask.dim() != 1 or mask.shape[0] != len(layout):
        raise ValueError(f"mask must have shape ({len(layout)},) to fit the layout, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must be boolean or contain only 0 and 1")
        mask = mask != 0
    return mask


def layer_stats(mask, layout: Layout) -> tuple[LayerStats, ...]:
    """Kept count and density of every layer (module) of ``layout`` under ``mask``.

    Parameters
    ----------
    mask : bool Tensor or ndarray, shape (D,)
    layout : Layout

    Returns
    -------
    tuple of LayerStats, one per layer, in layout order.
    """
    mask = _flat_bool(mask, layout).to("cpu")
    sizes = np.zeros(layout.n_layers, dtype=np.int64)
    kept = np.zeros(layout.n_layers, dtype=np.int64)
    weight_kept = np.full(layout.n_layers, -1, dtype=np.int64)  # -1: no weight entry
    types = [""] * layout.n_layers
    for entry, part in zip(layout.entries, layout.split(mask)):
        n_kept = int(part.sum())
        sizes[entry.layer] += entry.numel
        kept[entry.layer] += n_kept
        types[entry.layer] = entry.module_type
        if entry.tensor_name != "bias":
            weight_kept[entry.layer] = n_kept
    stats = []
    for layer, name in enumerate(layout.layer_names):
        collapsed = weight_kept[layer] == 0 if weight_kept[layer] >= 0 else kept[layer] == 0
        stats.append(LayerStats(name, types[layer], int(sizes[layer]), int(kept[layer]),
                                float(kept[layer] / sizes[layer]), bool(collapsed)))
    return tuple(stats)


def check_collapse(stats: Sequence[LayerStats], on_collapse: str = "warn", *, stacklevel: int = 2) -> tuple[str, ...]:
    """Warn about or refuse collapsed layers.

    Parameters
    ----------
    stats : sequence of LayerStats
    on_collapse : {"warn", "raise", "ignore"}
    stacklevel : int
        Passed to :func:`warnings.warn`.

    Returns
    -------
    tuple of str
        Names of the collapsed layers.
    """
    if on_collapse not in _ON_COLLAPSE:
        raise ValueError(f"on_collapse must be one of {_ON_COLLAPSE}, got {on_collapse!r}")
    collapsed = tuple(s.name for s in stats if s.collapsed)
    if collapsed and on_collapse != "ignore":
        message = (f"layer collapse: {len(collapsed)} of {len(stats)} layers keep no weights: "
                   + ", ".join(repr(n) for n in collapsed))
        if on_collapse == "raise":
            raise LayerCollapseError(message, collapsed)
        warnings.warn(message, LayerCollapseWarning, stacklevel=stacklevel + 1)
    return collapsed


class _Freeze(nn.Module):
    """Parametrization ``w -> where(mask, w, frozen)``: unselected elements read ``frozen``."""

    def __init__(self, mask: torch.Tensor, frozen: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)
        self.register_buffer("frozen", frozen)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, weight, self.frozen)


def apply_mask(
    model: nn.Module,
    mask,
    layout: Layout,
    *,
    mode: str = "mask",
    rescale: bool | str = False,
    on_collapse: str = "warn",
) -> tuple[LayerStats, ...]:
    """Apply a flat mask to the layout tensors of ``model``, in place.

    Parameters
    ----------
    model : nn.Module
    mask : bool Tensor or ndarray, shape (D,)
        True = kept, in layout order.
    layout : Layout
        Must fit ``model`` (same module names and tensor shapes).
    mode : {"mask", "freeze"}
        See the module docstring.
    rescale : bool or {"weights", "count"}, default False
        After applying the mask, rescale the kept weights of every unit so that its
        pre-activation variance is what it was before pruning
        (:func:`torch_adapter.rescale_after_pruning`; ``True`` means ``"weights"``).
        Needs ``mode="mask"``.
    on_collapse : {"warn", "raise", "ignore"}
        What to do when a layer keeps no weight. With ``"raise"`` the model is not touched.

    Returns
    -------
    tuple of LayerStats
        The per-layer report of the applied mask.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rescale_by = _rescale_by(rescale, mode)
    mask = _flat_bool(mask, layout)
    modules = layout.modules(model)
    stats = layer_stats(mask, layout)
    check_collapse(stats, on_collapse, stacklevel=2)
    for module, entry in zip(modules, layout.entries):
        if mode == "freeze" and f"{entry.tensor_name}_orig" in module._parameters:
            raise ValueError(f"{entry.name} is pruned with torch.nn.utils.prune; freeze mode needs an unpruned tensor")
        if mode == "mask" and parametrize.is_parametrized(module, entry.tensor_name):
            raise ValueError(f"{entry.name} is parametrized (e.g. frozen); call make_permanent first")
    parts = layout.split(mask)
    for module, entry, part in zip(modules, layout.entries, parts):
        tensor = getattr(module, entry.tensor_name)
        part = part.to(tensor.device)
        if mode == "mask":
            prune.custom_from_mask(module, entry.tensor_name, part)
        else:
            frozen = tensor.detach().clone()
            parametrize.register_parametrization(module, entry.tensor_name, _Freeze(part.clone(), frozen))
    if rescale_by is not None:
        rescale_after_pruning(model, layout, by=rescale_by)
    return stats


def _rescale_by(rescale: bool | str, mode: str) -> str | None:
    """The ``by=`` of :func:`rescale_after_pruning` for ``apply_mask(rescale=...)``, or None."""
    if not isinstance(rescale, (bool, str)):
        raise TypeError(f"rescale must be a bool or one of {RESCALE_BY}, got {rescale!r}")
    if rescale is False:
        return None
    if rescale is not True and rescale not in RESCALE_BY:
        raise ValueError(f"rescale must be a bool or one of {RESCALE_BY}, got {rescale!r}")
    if mode != "mask":
        raise ValueError(f'rescale needs mode="mask" (frozen weights keep feeding the units), got mode={mode!r}')
    return "weights" if rescale is True else rescale


def make_permanent(model: nn.Module, layout: Layout) -> None:
    """Bake applied masks into plain parameters, in place.

    ``mode="mask"``: :func:`torch.nn.utils.prune.remove` (``weight`` becomes a plain
    parameter with the zeros in it). ``mode="freeze"``:
    :func:`torch.nn.utils.parametrize.remove_parametrizations` with
    ``leave_parametrized=True`` (``weight`` holds trained and frozen values). Tensors with
    neither are left alone.
    """
    for module, entry in zip(layout.modules(model), layout.entries):
        if parametrize.is_parametrized(module, entry.tensor_name):
            parametrize.remove_parametrizations(module, entry.tensor_name, leave_parametrized=True)
        elif f"{entry.tensor_name}_orig" in module._parameters:
            prune.remove(module, entry.tensor_name)


def format_layer_table(columns: Mapping[str, Sequence[LayerStats]], *, title: str | None = None) -> str:
    """A fixed-width text table of kept counts per layer, one column per labelled mask.

    Each cell reads ``kept (density%)``; a collapsed layer is flagged with ``!``. The last
    two rows give the totals and the number of collapsed layers of each column.

    Parameters
    ----------
    columns : mapping label -> sequence of LayerStats
        All for the same layout.
    title : str, optional
        A first line.

    Returns
    -------
    str
    """
    labels = list(columns)
    stats = [tuple(columns[label]) for label in labels]
    if not stats or len({len(s) for s in stats}) != 1:
        raise ValueError("format_layer_table needs at least one column, all of the same length")
    layers = stats[0]
    name_w = max(len("layer"), max(len(s.name) for s in layers))
    type_w = max(8, max(len(s.module_type) for s in layers))
    cell_w = [max(len(label), 17) for label in labels]

    def cell(kept: int, density: float, flag: bool) -> str:
        return f"{kept} ({100 * density:.2f}%){'!' if flag else ' '}"

    header = (f"{'#':>3} {'layer':<{name_w}} {'type':<{type_w}} {'size':>10} "
              + " ".join(f"{label:>{w}} " for label, w in zip(labels, cell_w)))
    rule = "-" * len(header)
    lines = ([title] if title else []) + [header, rule]
    for i, layer in enumerate(layers):
        cells = [cell(s[i].kept, s[i].density, s[i].collapsed) for s in stats]
        lines.append(f"{i:>3} {layer.name:<{name_w}} {layer.module_type:<{type_w}} {layer.size:>10} "
                     + " ".join(f"{c:>{w + 1}}" for c, w in zip(cells, cell_w)))
    total = sum(layer.size for layer in layers)
    lines.append(rule)
    kept = [sum(x.kept for x in s) for s in stats]
    lines.append(f"{'':>3} {'total':<{name_w}} {'':<{type_w}} {total:>10} "
                 + " ".join(f"{cell(k, k / total, False):>{w + 1}}" for k, w in zip(kept, cell_w)))
    collapsed = [sum(x.collapsed for x in s) for s in stats]
    lines.append(f"{'':>3} {'collapsed layers (!)':<{name_w + type_w + 12}} "
                 + " ".join(f"{c:>{w}} " for c, w in zip(collapsed, cell_w)))
    return "\n".join(lines)
