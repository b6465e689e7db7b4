"""Masks back into a model, and a per-layer report of what was kept.

A mask is a flat boolean vector of length D in the order of a
:class:`~torch_adapter.layout.Layout` (True = kept). Two ways to apply it:

``mode="mask"`` (default)
    Every layout tensor is reparametrised with
    :func:`torch.nn.utils.parametrize.register_parametrization` as ``weight = where(mask,
    original, 0)`` (the pattern of ``torch.ao.pruning``'s ``FakeSparsity``), with ``mask`` a
    bool buffer. The masked weight is recomputed at *every access* of ``module.weight``, not
    only before the module's own forward pass as ``torch.nn.utils.prune``'s hooks do: modules
    that read a submodule's weight directly (``nn.MultiheadAttention`` reads
    ``out_proj.weight`` and its own ``in_proj_weight``) therefore train correctly, step after
    step. Pruned weights are 0 and get zero gradient. Parameters live at
    ``module.parametrizations.weight.original`` (create the optimiser after applying the
    mask); :func:`make_permanent` bakes the masks in. A tensor pruned before with
    :func:`torch.nn.utils.prune.custom_from_mask` (``weight_orig`` / ``weight_mask``) is
    converted: ``weight_orig`` becomes the parametrization's ``original``.

``mode="freeze"`` (FreezeNet: Wimmer, Mehnert and Condurache, ACCV 2020)
    Unselected weights are not zeroed but frozen at their current (initial) values. The
    tensor is reparametrised with :func:`torch.nn.utils.parametrize.register_parametrization`
    as ``weight = where(mask, original, frozen)`` with ``frozen`` a buffer holding the
    values at the time of the call. Frozen elements get exactly zero gradient, and because
    the effective weight reads them from the buffer, *no optimiser can move them*: not
    momentum, not weight decay (which does change ``original`` at those positions, to no
    effect). Parameters live at ``module.parametrizations.weight.original``; create the
    optimiser after applying the mask.

A pruned model survives ``copy.deepcopy`` with its masks (the copy's own buffers) and is
saved and loaded through its ``state_dict``, whose keys and loader
(:func:`torch_adapter.load_pruned`) are in :mod:`torch_adapter.checkpoint`.

Tied tensors (a layout entry with ``aliases``) get one parametrization object at every
place that holds them, so the tie holds: one Parameter, one mask.

A model that already carries masks (from an earlier :func:`apply_mask` in the same mode, or
from ``torch.nn.utils.prune``), ``previous=``:

``"combine"`` (default)
    The new mask is ANDed with the one there, as ``torch.nn.utils.prune`` does: an element
    stays only if both keep it (in freeze mode: stays trainable only if both leave it
    trainable). The kept counts returned (and those of
    :func:`torch_adapter.prune_with_cops`'s report) are those of this combined mask, which
    :func:`current_mask` reads back.
``"replace"``
    The mask there is dropped and the new one applied alone. In mask mode, elements pruned
    before and kept now come back with the values stored under the mask (``original`` /
    ``weight_orig``: their values when pruned, as far as weight decay left them). In freeze
    mode the current values are kept: formerly frozen elements resume training from them.

A ``DistributedDataParallel`` model gets the mask only when every process applies the same
one (checked, a ValueError otherwise), and its reducer is built again on the parametrized
parameters (also by :func:`make_permanent`); see :mod:`torch_adapter.distributed`.

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

from ._checks import check_choice
from .distributed import check_same_on_every_process, is_ddp, rebuild_reducer
from .layout import Layout, is_pruned

__all__ = [
    "current_mask",
    "resulting_mask",
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
#: What :func:`apply_mask` does with a mask the model already carries.
PREVIOUS = ("combine", "replace")
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
        ``kept / size`` (NaN for a module with no element).
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
    flat = _flat_bool(mask, layout).to("cpu").numpy()
    # one pass of numpy counts (summing torch bool tensors per layer is several times slower)
    starts = [entry.offset for entry in layout.entries if entry.numel]  # reduceat cannot count an empty run
    sums = iter(np.add.reduceat(flat, starts, dtype=np.int64).tolist() if starts else [])
    counts = [next(sums) if entry.numel else 0 for entry in layout.entries]
    sizes = np.zeros(layout.n_layers, dtype=np.int64)
    kept = np.zeros(layout.n_layers, dtype=np.int64)
    weight_kept = np.full(layout.n_layers, -1, dtype=np.int64)  # -1: no weight entry
    types = [""] * layout.n_layers
    for entry, count in zip(layout.entries, counts):
        n_kept = count
        sizes[entry.layer] += entry.numel
        kept[entry.layer] += n_kept
        types[entry.layer] = entry.module_type
        if entry.tensor_name != "bias":
            weight_kept[entry.layer] = n_kept
    stats = []
    for layer, name in enumerate(layout.layer_names):
        collapsed = weight_kept[layer] == 0 if weight_kept[layer] >= 0 else kept[layer] == 0
        stats.append(LayerStats(name, types[layer], int(sizes[layer]), int(kept[layer]),
                                float(kept[layer] / sizes[layer]) if sizes[layer] else float("nan"), bool(collapsed)))
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
    check_choice("on_collapse", on_collapse, _ON_COLLAPSE)
    collapsed = tuple(s.name for s in stats if s.collapsed)
    if collapsed and on_collapse != "ignore":
        message = (f"layer collapse: {len(collapsed)} of {len(stats)} layers keep no weights: "
                   + ", ".join(repr(n) for n in collapsed))
        if on_collapse == "raise":
            raise LayerCollapseError(message, collapsed)
        warnings.warn(message, LayerCollapseWarning, stacklevel=stacklevel + 1)
    return collapsed


class _Mask(nn.Module):
    """Parametrization ``w -> where(mask, w, 0)``, recomputed at every access of the weight.
    ``rescaled``: :func:`torch_adapter.rescale_after_pruning` has scaled the kept values."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)
        self.rescaled = False

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))


class _Freeze(nn.Module):
    """Parametrization ``w -> where(mask, w, frozen)``: unselected elements read ``frozen``."""

    def __init__(self, mask: torch.Tensor, frozen: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)
        self.register_buffer("frozen", frozen)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, weight, self.frozen)


def _ours(module: nn.Module, tensor_name: str) -> _Mask | _Freeze | None:
    """The mask or freeze parametrization this module applied to ``module.<tensor_name>``."""
    if not parametrize.is_parametrized(module, tensor_name):
        return None
    last = module.parametrizations[tensor_name][-1]
    return last if isinstance(last, (_Mask, _Freeze)) else None


def _pruned_mask(module: nn.Module, tensor_name: str) -> torch.Tensor | None:
    """``weight_mask`` of a tensor pruned with ``torch.nn.utils.prune``, as bool."""
    return module._buffers[f"{tensor_name}_mask"] != 0 if is_pruned(module, tensor_name) else None


def _mask_there(module: nn.Module, tensor_name: str) -> torch.Tensor | None:
    """The mask a tensor carries (kept, or trainable when frozen), None when it carries none."""
    ours = _ours(module, tensor_name)
    return ours.mask if ours is not None else _pruned_mask(module, tensor_name)


def current_mask(model: nn.Module, layout: Layout) -> torch.Tensor:
    """The mask ``model`` carries now, flat in layout order.

    True where an element is kept (mask mode, or ``torch.nn.utils.prune``) or trainable
    (freeze mode), and on every element of a tensor that carries no mask.

    Returns
    -------
    bool Tensor, shape (D,), on the device of the model's first layout tensor.
    """
    parts = []
    for module, entry in zip(layout.modules(model), layout.entries):
        there = _mask_there(module, entry.tensor_name)
        parts.append(torch.ones(entry.shape, dtype=torch.bool, device=getattr(module, entry.tensor_name).device)
                     if there is None else there)
    return layout.flatten(parts).to(torch.bool)


def resulting_mask(model: nn.Module, mask, layout: Layout, *, previous: str = "combine") -> torch.Tensor:
    """The mask ``model`` carries after ``apply_mask(model, mask, layout, previous=previous)``."""
    check_choice("previous", previous, PREVIOUS)
    mask = _flat_bool(mask, layout)
    if previous == "replace":
        return mask
    return mask & current_mask(model, layout).to(mask.device)


def apply_mask(
    model: nn.Module,
    mask,
    layout: Layout,
    *,
    mode: str = "mask",
    rescale: bool | str = False,
    on_collapse: str = "warn",
    previous: str = "combine",
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
        What to do when a layer keeps no weight (of the resulting mask). With ``"raise"``
        the model is not touched.
    previous : {"combine", "replace"}, default "combine"
        What to do with masks the model already carries; see the module docstring.

    Returns
    -------
    tuple of LayerStats
        The per-layer report of the mask the model carries afterwards (with
        ``previous="combine"``, the AND of the old and the new mask).
    """
    rescale_by = check_apply_options(mode=mode, rescale=rescale, on_collapse=on_collapse, previous=previous)
    resulting = resulting_mask(model, mask, layout, previous=previous)
    if is_ddp(model):
        check_same_on_every_process(resulting, model.process_group)
    owners = layout.owners(model)
    for places, entry in zip(owners, layout.entries):
        for module, tensor_name in places:
            ours = _ours(module, tensor_name)
            if mode == "mask" and isinstance(ours, _Freeze):
                raise ValueError(f"{entry.name} is frozen (mode='freeze'); call make_permanent first")
            if mode == "freeze" and (isinstance(ours, _Mask) or _pruned_mask(module, tensor_name) is not None):
                raise ValueError(f"{entry.name} is pruned (mode='mask' or torch.nn.utils.prune); "
                                 f"freeze mode needs an unpruned tensor: call make_permanent first")
    stats = layer_stats(resulting, layout)
    check_collapse(stats, on_collapse, stacklevel=2)
    for places, part in zip(owners, layout.split(resulting)):
        first_module, first_name = places[0]
        part = part.to(getattr(first_module, first_name).device)
        if mode == "mask":
            _install_mask(places, part)
        else:
            _install_freeze(places, part, replace=previous == "replace")
    if is_ddp(model):
        rebuild_reducer(model)
    if rescale_by is not None:
        from .rescaling import rescale_after_pruning

        rescale_after_pruning(model, layout, by=rescale_by)
    return stats


def _install_mask(places, part: torch.Tensor) -> None:
    ours = _ours(*places[0])
    if ours is not None:
        ours.mask.copy_(part)
        return
    parametrization = _Mask(part.clone())
    for module, tensor_name in places:
        if _pruned_mask(module, tensor_name) is not None:
            _unprune(module, tensor_name)
        _own_class(module)
        parametrize.register_parametrization(module, tensor_name, parametrization)


def check_apply_options(*, mode: str, rescale: bool | str, on_collapse: str, previous: str) -> str | None:
    """Check the options of :func:`apply_mask` (callers that solve or score first check them
    before that work); returns the ``by=`` of the rescaling, or None."""
    check_choice("mode", mode, MODES)
    check_choice("on_collapse", on_collapse, _ON_COLLAPSE)
    check_choice("previous", previous, PREVIOUS)
    return _rescale_by(rescale, mode)


def _rescale_by(rescale: bool | str, mode: str) -> str | None:
    """The ``by=`` of :func:`rescale_after_pruning` for ``apply_mask(rescale=...)``, or None."""
    from .rescaling import RESCALE_BY

    if not isinstance(rescale, (bool, str)):
        raise TypeError(f"rescale must be a bool or one of {RESCALE_BY}, got {rescale!r}")
    if rescale is False:
        return None
    if rescale is not True and rescale not in RESCALE_BY:
        raise ValueError(f"rescale must be a bool or one of {RESCALE_BY}, got {rescale!r}")
    if mode != "mask":
        raise ValueError(f'rescale needs mode="mask" (frozen weights keep feeding the units), got mode={mode!r}')
    return "weights" if rescale is True else rescale


def _install_freeze(places, part: torch.Tensor, *, replace: bool) -> None:
    module, tensor_name = places[0]
    ours = _ours(module, tensor_name)
    with torch.no_grad():
        current = getattr(module, tensor_name).detach().clone()
        if ours is not None:
            if replace:  # formerly frozen elements resume from the values the model used
                module.parametrizations[tensor_name].original.copy_(current)
            ours.mask.copy_(part)
            ours.frozen.copy_(current)
            return
    parametrization = _Freeze(part.clone(), current)
    for module, tensor_name in places:
        _own_class(module)
        parametrize.register_parametrization(module, tensor_name, parametrization)


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a class of its own before a parametrization is added or removed.

    torch makes one class per parametrized module (``ParametrizedLinear``) and keeps each
    parametrized tensor as a property of that class; ``copy.deepcopy`` gives the copy the
    *same* class, and ``register_parametrization`` / ``remove_parametrizations`` change the
    class, so pruning or baking in the copy's masks changed the original too (removing them
    from a copy deleted the original's ``weight``). A fresh class with the same bases and
    attributes isolates the module.
    """
    if not parametrize.is_parametrized(module):
        return
    cls = type(module)
    attributes = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, attributes)


def _unprune(module: nn.Module, tensor_name: str) -> None:
    """Undo ``torch.nn.utils.prune`` on one tensor without baking its mask in: ``<name>_orig``
    becomes the plain parameter ``<name>`` again (its mask is carried over by the caller)."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, prune.BasePruningMethod) and hook._tensor_name == tensor_name:
            del module._forward_pre_hooks[key]
    original = module._parameters.pop(f"{tensor_name}_orig")
    del module._buffers[f"{tensor_name}_mask"]
    if tensor_name in module.__dict__:
        delattr(module, tensor_name)
    module.register_parameter(tensor_name, original)


def make_permanent(model: nn.Module, layout: Layout) -> None:
    """Bake applied masks into plain parameters, in place (at every place of a tied tensor).

    ``mode="mask"`` and ``mode="freeze"``:
    :func:`torch.nn.utils.parametrize.remove_parametrizations` with
    ``leave_parametrized=True`` (``weight`` becomes a plain parameter holding the zeros, or
    the trained and frozen values; the Parameter object is the one the optimiser had).
    Tensors pruned with ``torch.nn.utils.prune``: :func:`torch.nn.utils.prune.remove`.
    Tensors with neither are left alone.
    """
    for places in layout.owners(model):
        for module, tensor_name in places:
            if parametrize.is_parametrized(module, tensor_name):
                _own_class(module)
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
            elif _pruned_mask(module, tensor_name) is not None:
                prune.remove(module, tensor_name)
    if is_ddp(model):
        rebuild_reducer(model)


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
