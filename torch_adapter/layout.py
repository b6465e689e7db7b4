"""Which parameters of a model are prunable, and how they sit in one flat vector.

A :class:`Layout` fixes the order in which the prunable tensors of a model are flattened
and concatenated into the length-D vector that scores and masks live in:

* modules are visited in ``model.named_modules()`` order (registration order, each module
  once); within a module come ``weight``, then its raw weights (``in_proj_weight``, ...), then
  the parameters named in ``parameters=``, each followed by its bias when biases are asked for;
* each tensor is flattened in row-major (C) order, ``tensor.reshape(-1)``.

By default the prunable tensors are the ``weight`` of every ``nn.Linear``, ``nn.Conv1d``,
``nn.Conv2d`` and ``nn.Conv3d``, the tensor named by ``prunable_tensor`` of every
:class:`PrunableLayer` (e.g. the coefficients of an interspace convolution), and the raw
input-projection weights of every
``nn.MultiheadAttention`` (``in_proj_weight``, or ``q/k/v_proj_weight``: Parameters of the
attention module itself that no Linear holds; ``out_proj`` is a Linear). Biases,
normalisation layers and embeddings are not pruned. Any other parameter can be added by name
(``parameters=["pos_embedding", "embed.weight"]``); the weight-like parameters (floating
point, two or more dimensions) that a layout leaves out are named in a
:class:`LeftOutWeightsWarning`, so that "density 0.1" never silently means something else.

A tensor shared by several modules (tied weights: one Parameter set as the weight of two
modules, an embedding tied to the output layer) is one entry, scored, masked and counted
once; the other places that hold it are the entry's ``aliases``, and a mask applied by
:func:`torch_adapter.apply_mask` goes to all of them, so the tie holds. A layout refers to
parameters by name only, so the layout of a model also fits a deep copy of it and any model
with the same module names and shapes.

Modules already pruned with :mod:`torch.nn.utils.prune` (``weight_orig`` / ``weight_mask``)
or frozen by :func:`torch_adapter.apply_mask` (a parametrization) are recognised: the layout
entry keeps the public name (``"weight"``) and :meth:`Layout.values` returns the effective
tensor (``weight_orig * weight_mask`` for a pruned one).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["LayoutEntry", "Layout", "DEFAULT_PRUNABLE_TYPES", "DEFAULT_RAW_WEIGHTS", "LeftOutWeightsWarning",
           "PrunableLayer"]


class PrunableLayer(nn.Module):
    """Base class of layers whose prunable tensor is not the weight their forward pass uses.

    A subclass names its prunable parameter in the class attribute ``prunable_tensor``
    (a layout entry then has that ``tensor_name``) and maps a value of it to the weight of
    the forward pass with :meth:`weight_from`. Scores, masks, freeze and floors work on the
    prunable tensor as on any ``weight``.
    """

    #: Name of the prunable parameter.
    prunable_tensor: str = "weight"

    def weight_from(self, tensor: torch.Tensor) -> torch.Tensor:
        """The weight the forward pass would use if the prunable tensor held ``tensor``."""
        return tensor


def prunable_name(module: nn.Module) -> str:
    """Name of the prunable weight-like tensor of ``module``: ``"weight"`` or a
    :class:`PrunableLayer`'s ``prunable_tensor``."""
    return module.prunable_tensor if isinstance(module, PrunableLayer) else "weight"


#: Module types whose ``weight`` (for a PrunableLayer: its ``prunable_tensor``) is prunable by default.
DEFAULT_PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, PrunableLayer)

#: Module types whose own raw Parameters (not a submodule's ``weight``) are weights, pruned by
#: default. A name the module sets to None (``q_proj_weight`` when query, key and value have
#: one size) is skipped.
DEFAULT_RAW_WEIGHTS: Mapping[type[nn.Module], tuple[str, ...]] = {
    nn.MultiheadAttention: ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"),
}


class LeftOutWeightsWarning(UserWarning):
    """Weight-like parameters of the model (floating point, 2-D or more) are not in the layout."""


@dataclass(frozen=True)
class LayoutEntry:
    """One prunable tensor: where it lives in the model and in the flat vector.

    Attributes
    ----------
    module_name : str
        Name of the owning module in ``model.named_modules()`` (``""`` for the root).
    tensor_name : str
        ``"weight"`` (or a :class:`PrunableLayer`'s ``prunable_tensor``) or ``"bias"`` (the
        public attribute name on the module).
    shape : tuple of int
        Shape of the tensor.
    offset : int
        Index of its first element in the flat vector.
    layer : int
        Index of the owning module among the modules that have a prunable tensor
        (0, 1, ...; a module's weight and bias share it). Used as the group index for
        per-layer floors.
    module_type : str
        Class name of the owning module (``"Conv2d"``, ...), for reports.
    aliases : tuple of str
        Full names of the other places that hold the same tensor (tied weights), in
        ``named_modules()`` order; empty for an ordinary tensor.
    """

    module_name: str
    tensor_name: str
    shape: tuple[int, ...]
    offset: int
    layer: int
    module_type: str
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Full parameter name as in ``model.named_parameters()`` of an unpruned model."""
        return f"{self.module_name}.{self.tensor_name}" if self.module_name else self.tensor_name

    @property
    def owners(self) -> tuple[tuple[str, str], ...]:
        """``(module name, tensor name)`` of every place that holds the tensor, this entry's first."""
        return ((self.module_name, self.tensor_name),) + tuple(_split_name(alias) for alias in self.aliases)

    @property
    def numel(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def stop(self) -> int:
        """One past the index of its last element in the flat vector."""
        return self.offset + self.numel


def _split_name(full_name: str) -> tuple[str, str]:
    module_name, _, tensor_name = full_name.rpartition(".")
    return module_name, tensor_name


def _bias_name(module: nn.Module, weight_name: str) -> str:
    """``bias`` for ``weight`` (and for a :class:`PrunableLayer`'s prunable tensor),
    ``in_proj_bias`` for ``in_proj_weight``; "" for other names."""
    if isinstance(module, PrunableLayer) and weight_name == module.prunable_tensor:
        return "bias"
    return weight_name[:-len("weight")] + "bias" if weight_name.endswith("weight") else ""


def _full_name(module_name: str, tensor_name: str) -> str:
    return f"{module_name}.{tensor_name}" if module_name else tensor_name


def _public_tensors(module: nn.Module) -> list[str]:
    """Names of the parameters a module computes with, as ``getattr`` reads them: plain ones,
    ``torch.nn.utils.prune``'d ones (``weight`` for ``weight_orig``) and parametrized ones."""
    names = [name for name, value in module._parameters.items()
             if value is not None and not (name.endswith("_orig") and is_pruned(module, name[:-5]))]
    names += [name[:-5] for name in module._parameters if name.endswith("_orig") and is_pruned(module, name[:-5])]
    if parametrize.is_parametrized(module):
        names += list(module.parametrizations.keys())
    return names


def _tensor_places(model: nn.Module) -> dict[int, list[tuple[str, str, nn.Module]]]:
    """Every place of every parameter: ``id(trainable leaf) -> [(module name, tensor name, module)]``.

    The modules that ``torch.nn.utils.parametrize`` adds (``*.parametrizations.*``) are not
    places of their own: their ``original`` is reached through the parametrized module.
    """
    places: dict[int, list[tuple[str, str, nn.Module]]] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList) or ".parametrizations." in f".{module_name}.":
            continue
        for tensor_name in _public_tensors(module):
            leaf = trainable_tensor(module, tensor_name)
            places.setdefault(id(leaf), []).append((module_name, tensor_name, module))
    return places


def is_pruned(module: nn.Module, tensor_name: str) -> bool:
    """True when ``torch.nn.utils.prune`` has reparametrised ``module.<tensor_name>``."""
    return f"{tensor_name}_orig" in module._parameters and f"{tensor_name}_mask" in module._buffers


def trainable_tensor(module: nn.Module, tensor_name: str) -> torch.Tensor:
    """The leaf tensor an optimiser updates for ``module.<tensor_name>``.

    ``weight`` itself for a plain module, ``weight_orig`` after ``torch.nn.utils.prune``,
    ``parametrizations.weight.original`` for a parametrized one.
    """
    if parametrize.is_parametrized(module, tensor_name):
        return module.parametrizations[tensor_name].original
    if is_pruned(module, tensor_name):
        return module._parameters[f"{tensor_name}_orig"]
    tensor = module._parameters.get(tensor_name)
    if tensor is None:
        raise ValueError(f"module {type(module).__name__} has no parameter {tensor_name!r}")
    return tensor


def effective_tensor(module: nn.Module, tensor_name: str) -> torch.Tensor:
    """The value ``module.<tensor_name>`` has in the next forward pass.

    For a module pruned with ``torch.nn.utils.prune`` this is recomputed as
    ``orig * mask`` (the attribute itself is only refreshed by a forward pass).
    """
    if is_pruned(module, tensor_name):
        return module._parameters[f"{tensor_name}_orig"] * module._buffers[f"{tensor_name}_mask"]
    return getattr(module, tensor_name)


class Layout:
    """The prunable tensors of a model and their place in a flat vector of length D.

    Build one with :meth:`from_model`. ``len(layout)`` is D. Two layouts are equal when
    their entries (names, shapes, offsets) are equal.

    Parameters
    ----------
    entries : sequence of LayoutEntry
        Contiguous, in flat order (use :meth:`from_model` rather than building by hand).
    """

    def __init__(self, entries: Sequence[LayoutEntry]):
        entries = tuple(entries)
        if not entries:
            raise ValueError("a layout needs at least one prunable tensor; got none")
        offset = 0
        for entry in entries:
            if entry.offset != offset:
                raise ValueError(f"layout entry {entry.name!r} starts at {entry.offset}, expected {offset}")
            offset = entry.stop
        self._entries = entries
        self._size = offset

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        include_bias: bool = False,
        exclude: Iterable[str] = (),
        types: Sequence[type[nn.Module]] = DEFAULT_PRUNABLE_TYPES,
        raw_weights: Mapping[type[nn.Module], Sequence[str]] = DEFAULT_RAW_WEIGHTS,
        parameters: Iterable[str] = (),
        warn_left_out: bool = True,
    ) -> "Layout":
        """The prunable tensors of ``model`` in ``named_modules()`` order.

        Parameters
        ----------
        model : nn.Module
        include_bias : bool, default False
            Also prune the bias of each selected weight when it exists (``bias`` for
            ``weight``, ``in_proj_bias`` for ``in_proj_weight``: the name with ``weight``
            replaced by ``bias``).
        exclude : iterable of str
            Module names (as in ``model.named_modules()``) to leave out, together with
            everything below them (``"features"`` excludes ``"features.0"``). A name that
            matches no module is a ValueError.
        types : sequence of module classes
            Modules whose ``weight`` (and ``bias``) are prunable; subclasses count.
        raw_weights : mapping module class -> parameter names
            Modules whose own Parameters of these names are weights (default: the input
            projections of ``nn.MultiheadAttention``); ``{}`` leaves them out.
        parameters : iterable of str
            Full names of further parameters to prune (as in ``model.named_parameters()``,
            e.g. ``"pos_embedding"`` or ``"embed.weight"``); one that names no parameter is a
            ValueError.
        warn_left_out : bool, default True
            Warn (:class:`LeftOutWeightsWarning`) about the weight-like parameters (floating
            point, two or more dimensions) outside ``exclude`` that the layout leaves out.

        Returns
        -------
        Layout
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        exclude = tuple(exclude) if not isinstance(exclude, str) else (exclude,)
        parameters = (parameters,) if isinstance(parameters, str) else tuple(parameters)
        types = tuple(types)
        raw_weights = {kind: tuple(names) for kind, names in dict(raw_weights).items()}
        module_names = {name for name, _ in model.named_modules()}
        unknown = [name for name in exclude if name not in module_names]
        if unknown:
            raise ValueError(f"exclude names no module of the model: {unknown!r}")
        places = _tensor_places(model)
        known = {_full_name(name, tensor) for owners in places.values() for name, tensor, _ in owners}
        unknown = [name for name in parameters if name not in known]
        if unknown:
            raise ValueError(f"parameters names no parameter of the model: {unknown!r}")
        asked = {}
        for name in parameters:
            module_name, tensor_name = _split_name(name)
            asked.setdefault(module_name, []).append(tensor_name)

        def excluded(name: str) -> bool:
            return any(name == ex or name.startswith(ex + ".") for ex in exclude)

        def tensors_of(module_name: str, module: nn.Module) -> list[str]:
            names = []
            if not excluded(module_name):
                names += [prunable_name(module)] if isinstance(module, types) else []
                names += [name for kind, raw in raw_weights.items() if isinstance(module, kind) for name in raw]
            names += asked.get(module_name, [])
            if include_bias:
                names = [n for name in names for n in (name, _bias_name(module, name)) if n]
            return list(dict.fromkeys(names))

        taken: set[int] = set()
        entries: list[LayoutEntry] = []
        offset = 0
        layer = 0
        for module_name, module in model.named_modules():
            added = False
            for tensor_name in tensors_of(module_name, module):
                tensor = getattr(module, tensor_name, None)
                if not isinstance(tensor, torch.Tensor) or tensor_name not in _public_tensors(module):
                    continue
                key = id(trainable_tensor(module, tensor_name))
                if key in taken:
                    continue  # a tied tensor: listed at its first place, the others are aliases
                taken.add(key)
                others = tuple(_full_name(name, tensor) for name, tensor, _ in places[key]
                               if (name, tensor) != (module_name, tensor_name))
                entry = LayoutEntry(module_name, tensor_name, tuple(tensor.shape), offset, layer,
                                    type(module).__name__, others)
                entries.append(entry)
                offset = entry.stop
                added = True
            layer += added
        if not entries:
            raise ValueError(
                f"model has no prunable tensors (types={[t.__name__ for t in types]}, exclude={exclude!r})"
            )
        if warn_left_out:
            _warn_left_out(places, taken, excluded)
        return cls(entries)

    # ------------------------------------------------------------------ description
    @property
    def entries(self) -> tuple[LayoutEntry, ...]:
        return self._entries

    @property
    def names(self) -> tuple[str, ...]:
        """Full parameter names, in flat order."""
        return tuple(e.name for e in self._entries)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(e.shape for e in self._entries)

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(e.offset for e in self._entries)

    @property
    def n_layers(self) -> int:
        """Number of modules with a prunable tensor (the number of groups)."""
        return self._entries[-1].layer + 1

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Module name of each layer (group), in group order."""
        names: list[str] = []
        for e in self._entries:
            if e.layer == len(names):
                names.append(e.module_name)
        return tuple(names)

    @property
    def layer_sizes(self) -> np.ndarray:
        """Number of prunable elements of each layer (group), int64 array of length n_layers."""
        return np.bincount([e.layer for e in self._entries],
                           weights=[e.numel for e in self._entries],
                           minlength=self.n_layers).astype(np.int64)

    def __len__(self) -> int:
        return self._size

    def __eq__(self, other) -> bool:
        return isinstance(other, Layout) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self._entries)

    def __repr__(self) -> str:
        return f"Layout({len(self._entries)} tensors in {self.n_layers} layers, D={self._size})"

    def group_index(self) -> np.ndarray:
        """Layer (group) index of every element of the flat vector.

        Returns
        -------
        ndarray of int64, shape (D,)
            ``group_index()[j]`` is the ``layer`` of the entry that element j belongs to;
            pass it as ``groups=`` to :func:`copslp.solve` for per-layer floors.
        """
        return np.repeat(np.array([e.layer for e in self._entries], dtype=np.int64),
                         [e.numel for e in self._entries])

    # ------------------------------------------------------------------ model access
    def modules(self, model: nn.Module) -> list[nn.Module]:
        """The owning module of each entry in ``model`` (checked: names and shapes must fit)."""
        found = dict(model.named_modules())
        modules = []
        for e in self._entries:
            module = found.get(e.module_name)
            if module is None:
                raise ValueError(f"model has no module named {e.module_name!r} (from the layout)")
            tensor = getattr(module, e.tensor_name, None)
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != e.shape:
                got = None if not isinstance(tensor, torch.Tensor) else tuple(tensor.shape)
                raise ValueError(f"{e.name}: the layout expects shape {e.shape}, the model has {got}")
            modules.append(module)
        return modules

    def owners(self, model: nn.Module) -> list[tuple[tuple[nn.Module, str], ...]]:
        """Every ``(module, tensor name)`` that holds each entry's tensor (tied ones: several),
        the entry's own place first, in layout order (checked as :meth:`modules` does)."""
        found = dict(model.named_modules())
        owners = []
        for module, e in zip(self.modules(model), self._entries):
            places = [(module, e.tensor_name)]
            for module_name, tensor_name in e.owners[1:]:
                alias = found.get(module_name)
                tensor = getattr(alias, tensor_name, None) if alias is not None else None
                if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != e.shape:
                    raise ValueError(f"{_full_name(module_name, tensor_name)}: the layout has it tied to "
                                     f"{e.name} (shape {e.shape}); the model has no such tensor there")
                places.append((alias, tensor_name))
            owners.append(tuple(places))
        return owners

    def values(self, model: nn.Module) -> list[torch.Tensor]:
        """Current effective values of the prunable tensors of ``model``, in layout order."""
        return [effective_tensor(m, e.tensor_name) for m, e in zip(self.modules(model), self._entries)]

    def trainable(self, model: nn.Module) -> list[torch.Tensor]:
        """The leaf tensors an optimiser updates (see :func:`trainable_tensor`), in layout order."""
        return [trainable_tensor(m, e.tensor_name) for m, e in zip(self.modules(model), self._entries)]

    # ------------------------------------------------------------------ flat <-> tensors
    def flatten(self, tensors: Sequence[torch.Tensor] | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate per-tensor values into one flat vector of length D.

        Parameters
        ----------
        tensors : sequence of Tensor in layout order, or mapping full name -> Tensor
            Each of the shape (or at least the number of elements) of its entry. All are
            moved to the device of the first and promoted to a common dtype.

        Returns
        -------
        Tensor, shape (D,)
        """
        if isinstance(tensors, Mapping):
            missing = [n for n in self.names if n not in tensors]
            if missing:
                raise ValueError(f"flatten: no tensor for {missing!r}")
            tensors = [tensors[n] for n in self.names]
        tensors = list(tensors)
        if len(tensors) != len(self._entries):
            raise ValueError(f"flatten: expected {len(self._entries)} tensors, got {len(tensors)}")
        for e, t in zip(self._entries, tensors):
            if t.numel() != e.numel:
                raise ValueError(f"flatten: {e.name} needs {e.numel} elements (shape {e.shape}), "
                                 f"got shape {tuple(t.shape)}")
        device = tensors[0].device
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        return torch.cat([t.reshape(-1).to(device=device, dtype=dtype) for t in tensors])

    def split(self, flat: torch.Tensor | np.ndarray) -> list[torch.Tensor]:
        """Cut a flat vector of length D into tensors of the entries' shapes (views).

        A numpy array is converted with ``torch.as_tensor`` first.
        """
        flat = torch.as_tensor(flat)
        if flat.dim() != 1 or flat.shape[0] != self._size:
            raise ValueError(f"split: expected a 1-D vector of length {self._size}, got shape {tuple(flat.shape)}")
        return [flat[e.offset:e.stop].view(e.shape) for e in self._entries]

    def to_dict(self, flat: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        """``{full name: tensor}`` from a flat vector (see :meth:`split`)."""
        return dict(zip(self.names, self.split(flat)))


def _warn_left_out(places, taken: set[int], excluded) -> None:
    """A :class:`LeftOutWeightsWarning` naming the weight-like parameters the layout leaves out."""
    left_out = []
    for key, owners in places.items():
        module_name, tensor_name, module = owners[0]
        if key in taken or all(excluded(name) for name, _, _ in owners):
            continue
        if isinstance(module, PrunableLayer):  # it declares its prunable tensor; the rest is not pruned by design
            continue
        tensor = getattr(module, tensor_name)
        if tensor.is_floating_point() and tensor.dim() >= 2:
            left_out.append((_full_name(module_name, tensor_name), tuple(tensor.shape), tensor.numel()))
    if left_out:
        shown = ", ".join(f"{name!r} {shape}" for name, shape, _ in left_out[:8])
        more = f" and {len(left_out) - 8} more" if len(left_out) > 8 else ""
        warnings.warn(
            f"{len(left_out)} weight-like parameters ({sum(n for _, _, n in left_out)} elements) are not in the "
            f"layout and will not be pruned: {shown}{more}; add them with parameters=[...] (or types=...), "
            f"or pass warn_left_out=False", LeftOutWeightsWarning, stacklevel=3)
