r"""A compact export of a pruned model: only the kept weights, and its loader.

:func:`torch_adapter.make_permanent` leaves dense tensors full of zeros, and a pruned
model's ``state_dict`` holds each tensor twice over (the stored values and a bool mask).
:func:`export_sparse` stores, for every layout tensor of N elements of which K are kept:

* the kept **values**, K of them in the tensor's dtype, in row-major order;
* their **positions**, in whichever of two encodings is smaller: a bitmap of the mask
  (``numpy.packbits``, :math:`\lceil N/8 \rceil` bytes) or the flat indices (int32, 4K bytes;
  int64 for tensors of :math:`2^{31}` elements or more). Indices win below a density of
  1/32 (int32).

Everything else of the state_dict (biases, BatchNorm statistics, unpruned tensors) is stored
as it is, under the names of an unpruned model. The export is a plain dict of tensors,
strings and ints, so ``torch.save`` writes it and ``torch.load(..., weights_only=True)`` reads
it. :func:`load_sparse` puts it into a freshly built model: dense tensors with zeros at the
pruned positions and, by default, the masks as parametrizations again
(:func:`torch_adapter.apply_mask`), so that training goes on with the same mask.

A tensor's positions are those of its mask (:func:`torch_adapter.current_mask`) where it
carries one, and its non-zero elements otherwise (a model after ``make_permanent``). A model
in freeze mode is refused: its frozen weights are not zero and are part of what it computes;
save its ``state_dict`` (:mod:`torch_adapter.checkpoint`).

Bytes, dense against sparse: :func:`serialized_bytes` measures what ``torch.save`` writes;
``bench/export_sizes.py`` prints the table of the README.
"""

from __future__ import annotations

import io
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .layout import Layout
from .masks import _Freeze, _ours, apply_mask, current_mask

__all__ = ["FORMAT", "export_sparse", "load_sparse", "serialized_bytes"]

#: The export's format tag (a ValueError for any other when loading).
FORMAT = "copslp-sparse-1"
#: Bytes per index of each index dtype.
_INDEX_BYTES = {torch.int32: 4, torch.int64: 8}


def serialized_bytes(obj: Any) -> int:
    """The number of bytes ``torch.save(obj)`` writes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes


def _positions(kept: np.ndarray) -> dict[str, Any]:
    """The smaller encoding of a flat bool mask: packed bits or flat indices."""
    size = kept.shape[0]
    index_dtype = torch.int32 if size < 2 ** 31 else torch.int64
    count = int(np.count_nonzero(kept))
    if count * _INDEX_BYTES[index_dtype] < (size + 7) // 8:
        return {"encoding": "indices", "positions": torch.from_numpy(np.flatnonzero(kept)).to(index_dtype)}
    return {"encoding": "bitmap", "positions": torch.from_numpy(np.packbits(kept))}


def _kept_from(entry: Mapping[str, Any], size: int) -> np.ndarray:
    positions = entry["positions"].numpy()
    if entry["encoding"] == "bitmap":
        return np.unpackbits(positions, count=size).astype(bool)
    if entry["encoding"] == "indices":
        kept = np.zeros(size, dtype=bool)
        kept[positions] = True
        return kept
    raise ValueError(f"unknown position encoding {entry['encoding']!r} (expected 'bitmap' or 'indices')")


def export_sparse(model: nn.Module, layout: Layout | None = None) -> dict[str, Any]:
    """The model's kept weights with their positions, and the rest of its state, as one dict.

    Parameters
    ----------
    model : nn.Module
        Pruned in mask mode (:func:`torch_adapter.apply_mask`, :mod:`torch.nn.utils.prune`)
        or made permanent; not changed.
    layout : Layout, optional
        The tensors to store sparse; default ``Layout.from_model(model)``. Its tensors
        without a mask are stored by their non-zero elements.

    Returns
    -------
    dict
        ``{"format": FORMAT, "sparse": {name: {"shape", "encoding", "positions", "values"}},
        "dense": {name: tensor}}``, every tensor on the CPU; names as in an unpruned model.

    Raises
    ------
    ValueError
        A tensor in freeze mode.
    """
    layout = Layout.from_model(model) if layout is None else layout
    modules = layout.modules(model)
    masks = layout.split(current_mask(model, layout).cpu())
    sparse = {}
    for module, entry, mask, value in zip(modules, layout.entries, masks, layout.values(model)):
        if isinstance(_ours(module, entry.tensor_name), _Freeze):
            raise ValueError(f"{entry.name} is in freeze mode: its frozen weights are part of the model, not zeros; "
                             f"save model.state_dict() instead (torch_adapter.load_pruned loads it)")
        value = value.detach().cpu().reshape(-1)
        has_mask = not bool(mask.all())
        kept = mask.reshape(-1).numpy() if has_mask else (value != 0).numpy()
        sparse[entry.name] = {"shape": list(entry.shape), **_positions(kept),
                              "values": value[torch.from_numpy(kept)].clone()}
    stored = {f"{m + '.' if m else ''}{t}" for entry in layout.entries for m, t in entry.owners}
    dense = {name: tensor.detach().cpu().clone() for name, tensor in _plain_state_dict(model).items()
             if name not in stored}
    return {"format": FORMAT, "sparse": sparse, "dense": dense}


def _plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict under the names of an unpruned model (a parametrized tensor, or one of
    ``torch.nn.utils.prune``, under its own name, with its effective value)."""
    plain = {}
    for key, tensor in model.state_dict().items():
        module, dot, name = key.rpartition(".parametrizations.")
        if dot:  # <module>.parametrizations.<tensor>.original / .0.mask / .0.frozen
            continue
        prefix, _, last = key.rpartition(".")
        if last.endswith("_orig") or last.endswith("_mask"):
            sibling = f"{prefix + '.' if prefix else ''}{last[:-5]}{'_mask' if last.endswith('_orig') else '_orig'}"
            if sibling in model.state_dict():
                continue
        plain[key] = tensor
    return plain


def load_sparse(model: nn.Module, exported: Mapping[str, Any], *, masks: bool = True,
                strict: bool = True) -> Layout:
    """Load an :func:`export_sparse` dict into a freshly built model of the same architecture.

    Every stored tensor becomes dense (zeros at the positions not stored); the dense part is
    loaded with ``load_state_dict``. With ``masks=True`` the positions become masks again
    (mask mode), so the pruned weights stay 0 in training; the model then computes what the
    exported one computed.

    Parameters
    ----------
    model : nn.Module
        Unpruned; changed in place.
    exported : mapping
        What :func:`export_sparse` returned (after ``torch.save`` / ``torch.load``, say).
    masks : bool, default True
        Install the masks; False leaves plain dense tensors (as ``make_permanent`` does).
    strict : bool, default True
        Every tensor of the model must be in the export, and nothing else.

    Returns
    -------
    Layout
        The layout of the stored tensors in ``model``.
    """
    if not isinstance(exported, Mapping) or exported.get("format") != FORMAT:
        found = exported.get("format") if isinstance(exported, Mapping) else type(exported).__name__
        raise ValueError(f"exported must be a dict made by export_sparse (format {FORMAT!r}), got {found!r}")
    sparse = exported["sparse"]
    layout = Layout.from_model(model, types=(), raw_weights={}, parameters=list(sparse), warn_left_out=False)
    kept_parts, state = [], dict(exported["dense"])
    for entry in layout.entries:
        stored = sparse[entry.name]
        if tuple(stored["shape"]) != entry.shape:
            raise ValueError(f"{entry.name}: the export has shape {tuple(stored['shape'])}, the model {entry.shape}")
        kept = torch.from_numpy(_kept_from(stored, entry.numel))
        value = torch.zeros(entry.numel, dtype=stored["values"].dtype)
        value[kept] = stored["values"]
        kept_parts.append(kept)
        for module_name, tensor_name in entry.owners:
            state[f"{module_name + '.' if module_name else ''}{tensor_name}"] = value.view(entry.shape)
    model.load_state_dict(state, strict=strict)
    if masks:
        apply_mask(model, torch.cat(kept_parts), layout, on_collapse="ignore")
    return layout
