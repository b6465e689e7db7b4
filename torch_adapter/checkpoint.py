r"""Saving and loading pruned models through their ``state_dict``.

torch refuses to pickle a module that carries a :mod:`torch.nn.utils.parametrize`
parametrization (``torch.save(model)``, ``pickle.dumps(model)``: "Serialization of
parametrized modules is only supported through state_dict()"), and a freshly built model
has none of the keys of a pruned one, so ``load_state_dict(strict=True)`` refuses the
pruned one's state. The road is the state_dict, and :func:`load_pruned` installs the masks
found in it before loading:

>>> torch.save(pruned.state_dict(), "pruned.pt")                          # doctest: +SKIP
>>> model = build_model()                                                 # doctest: +SKIP
>>> load_pruned(model, torch.load("pruned.pt"))                           # doctest: +SKIP

The keys of a pruned tensor ``<module>.<tensor>`` (``<tensor>`` is ``weight``, or
``in_proj_weight``, a bias, ...), in place of the plain ``<module>.<tensor>``:

``<module>.parametrizations.<tensor>.original``
    The stored (trainable) values, the Parameter an optimiser updates. In mask mode its
    pruned positions hold the values the weights had when pruned (the effective weight is 0
    there); in freeze mode its frozen positions are not used.
``<module>.parametrizations.<tensor>.0.mask``
    bool, the tensor's shape: True where the element is kept (mask mode) or trainable
    (freeze mode).
``<module>.parametrizations.<tensor>.0.frozen``
    Freeze mode only: the values the frozen elements keep.

A tied tensor has these keys at every place that holds it (one Parameter, one mask: the
same values under each name). A model pruned with :mod:`torch.nn.utils.prune` has
``<module>.<tensor>_orig`` and ``<module>.<tensor>_mask`` instead; :func:`load_pruned` reads
those too (the loaded model carries the mask as a parametrization, as
:func:`torch_adapter.apply_mask` converts it). After :func:`torch_adapter.make_permanent`
the state_dict is a plain one and ``load_state_dict`` alone loads it.

The keys of a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper start with
``module.``: save ``ddp.module.state_dict()`` to load into the bare model (or load into a
wrapped one). A ``torch.compile``\d model's keys start with ``_orig_mod.``: save the
state_dict of the model that was compiled. ``copy.deepcopy`` of a pruned model works
directly and copies its masks (its own buffers, not shared).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Mapping

import torch
from torch import nn

from .layout import Layout
from .masks import MODES, apply_mask

__all__ = ["load_pruned", "masked_tensors"]

_PARAMETRIZED = re.compile(r"^(?:(?P<module>.*)\.)?parametrizations\.(?P<tensor>[^.]+)\.(?P<index>\d+)\.mask$")


def _convert_torch_prune(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``<m>.<t>_orig`` / ``<m>.<t>_mask`` of :mod:`torch.nn.utils.prune` as the keys of a
    mask parametrization; every other key as it is."""
    converted = {}
    for key, value in state_dict.items():
        prefix, _, name = key.rpartition(".")
        base = f"{prefix}." if prefix else ""
        if name.endswith("_orig") and f"{base}{name[:-5]}_mask" in state_dict:
            converted[f"{base}parametrizations.{name[:-5]}.original"] = value
        elif name.endswith("_mask") and f"{base}{name[:-5]}_orig" in state_dict:
            converted[f"{base}parametrizations.{name[:-5]}.0.mask"] = value != 0
        else:
            converted[key] = value
    return converted


def masked_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The tensors a state_dict holds masks for, with their mode.

    Parameters
    ----------
    state_dict : mapping str -> Tensor
        The ``state_dict()`` of a model pruned by :func:`torch_adapter.apply_mask` (or
        :mod:`torch.nn.utils.prune`).

    Returns
    -------
    dict
        ``{full tensor name: "mask" or "freeze"}`` (``"features.0.weight": "mask"``), in the
        state_dict's order; empty for an unpruned state_dict.

    Raises
    ------
    ValueError
        A tensor with a parametrization before the mask (index > 0): not one this package
        installs.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    found = {}
    for key in _convert_torch_prune(state_dict):
        match = _PARAMETRIZED.match(key)
        if match is None:
            continue
        module, tensor, index = match.group("module") or "", match.group("tensor"), match.group("index")
        name = f"{module}.{tensor}" if module else tensor
        if index != "0":
            raise ValueError(f"state_dict key {key!r}: the mask of {name} is parametrization {index} of its "
                             f"tensor, after others that torch_adapter does not install; load it by hand")
        frozen = f"{key[:-len('mask')]}frozen"
        found[name] = "freeze" if frozen in state_dict else "mask"
    return found


def load_pruned(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True) -> Layout | None:
    """Install the masks of a pruned model's ``state_dict`` into ``model`` and load it.

    ``model`` is a freshly built model of the same architecture (same module names and
    shapes, same tied tensors), without masks. Every tensor the state_dict holds a mask for
    (see the module docstring for the keys) gets the parametrization of its mode
    (:func:`torch_adapter.apply_mask`, ``previous="replace"``, layer collapse not checked:
    the model was saved that way), and then ``model.load_state_dict(state_dict,
    strict=strict)`` loads the stored values, masks and frozen values. The model then
    computes what the saved one computed, bit for bit, and trains as it did (pruned weights
    stay 0, frozen ones at their values). Create the optimiser after loading.

    Parameters
    ----------
    model : nn.Module
        Changed in place.
    state_dict : mapping str -> Tensor
        ``pruned.state_dict()``, e.g. after ``torch.save`` and ``torch.load``.
    strict : bool, default True
        Passed to :meth:`torch.nn.Module.load_state_dict`.

    Returns
    -------
    Layout or None
        The layout of the masked tensors in ``model`` (for :func:`torch_adapter.current_mask`,
        :func:`torch_adapter.make_permanent`, ...), one entry per tensor (tied ones once),
        or None when the state_dict holds no mask (it is then loaded as it is).

    Raises
    ------
    ValueError
        A masked tensor the model does not have (or not with that shape), a tensor tied in
        the model whose places hold different masks in the state_dict, or what
        ``load_state_dict`` raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modes = masked_tensors(state_dict)
    state_dict = _convert_torch_prune(state_dict)
    layout = None
    if modes:
        parameters = list(modes)
        try:
            layout = Layout.from_model(model, types=(), raw_weights={}, parameters=parameters, warn_left_out=False)
        except ValueError as exc:
            raise ValueError(f"load_pruned: the state_dict holds masks the model has no place for: {exc}") from exc
        for mode in MODES:
            entries = [entry for entry in layout.entries if modes[entry.name] == mode]
            if entries:
                offsets = [sum(e.numel for e in entries[:i]) for i in range(len(entries))]
                part = Layout([replace(entry, offset=offset) for entry, offset in zip(entries, offsets)])
                _install(model, part, state_dict, modes, mode)
    model.load_state_dict(state_dict, strict=strict)
    return layout


def _install(model: nn.Module, layout: Layout, state_dict: Mapping[str, torch.Tensor], modes: Mapping[str, str],
             mode: str) -> None:
    """The parametrizations of ``mode`` on the tensors of ``layout``, with the state_dict's masks."""
    parts = []
    for entry in layout.entries:
        masks = {}
        for module_name, tensor_name in entry.owners:
            name = f"{module_name}.{tensor_name}" if module_name else tensor_name
            key = f"{module_name + '.' if module_name else ''}parametrizations.{tensor_name}.0.mask"
            if key in state_dict:
                if modes.get(name) != mode:
                    raise ValueError(f"load_pruned: {name} is tied to {entry.name} in the model, but the state_dict "
                                     f"has it in mode {modes.get(name)!r} and {entry.name} in mode {mode!r}")
                masks[name] = state_dict[key]
        first = next(iter(masks.values()))
        for name, mask in masks.items():
            if tuple(mask.shape) != entry.shape:
                raise ValueError(f"load_pruned: the mask of {name} has shape {tuple(mask.shape)}, the model's tensor "
                                 f"{entry.shape}")
            if not torch.equal(mask.cpu(), first.cpu()):
                raise ValueError(f"load_pruned: {name} is tied to {entry.name} in the model, but the state_dict holds "
                                 f"different masks for them")
        parts.append(first.to("cpu", torch.bool).reshape(-1))
    apply_mask(model, torch.cat(parts), layout, mode=mode, on_collapse="ignore", previous="replace")
