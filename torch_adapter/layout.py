"""Which parameters of a model are prunable, and how they sit in one flat vector.

A :class:`Layout` fixes the order in which the prunable tensors of a model are flattened
and concatenated into the length-D vector that scores and masks live in:

* modules are visited in ``model.named_modules()`` order (registration order, each module
  once), and within a module ``weight`` comes before ``bias``;
* each tensor is flattened in row-major (C) order, ``tensor.reshape(-1)``.

By default the prunable tensors are the ``weight`` of every ``nn.Linear``, ``nn.Conv1d``,
``nn.Conv2d`` and ``nn.Conv3d``, and the tensor named by ``prunable_tensor`` of every
:class:`PrunableLayer` (e.g. the coefficients of an interspace convolution); biases,
normalisation layers and embeddings are not pruned.
A tensor shared by two modules (tied weights) appears once per module; do not prune
such models with a layout that lists it twice. A layout refers to parameters by name only, so the layout of a model also fits a deep copy
of it and any model with the same module names and shapes.

Modules already pruned with :mod:`torch.nn.utils.prune` (``weight_orig`` / ``weight_mask``)
or frozen by :func:`torch_adapter.apply_mask` (a parametrization) are recognised: the layout
entry keeps the public name (``"weight"``) and :meth:`Layout.values` returns the effective
tensor (``weight_orig * weight_mask`` for a pruned one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["LayoutEntry", "Layout", "DEFAULT_PRUNABLE_TYPES", "PrunableLayer"]


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
    """

    module_name: str
    tensor_name: str
    shape: tuple[int, ...]
    offset: int
    layer: int
    module_type: str

    @property
    def name(self) -> str:
        """Full parameter name as in ``model.named_parameters()`` of an unpruned model."""
        return f"{self.module_name}.{self.tensor_name}" if self.module_name else self.tensor_name

    @property
    def numel(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def stop(self) -> int:
        """One past the index of its last element in the flat vector."""
        return self.offset + self.numel


def _is_pruned(module: nn.Module, tensor_name: str) -> bool:
    """True when ``torch.nn.utils.prune`` has reparametrised ``module.<tensor_name>``."""
    return f"{tensor_name}_orig" in module._parameters and f"{tensor_name}_mask" in module._buffers


def trainable_tensor(module: nn.Module, tensor_name: str) -> torch.Tensor:
    """The leaf tensor an optimiser updates for ``module.<tensor_name>``.

    ``weight`` itself for a plain module, ``weight_orig`` after ``torch.nn.utils.prune``,
    ``parametrizations.weight.original`` for a parametrized one.
    """
    if parametrize.is_parametrized(module, tensor_name):
        return module.parametrizations[tensor_name].original
    if _is_pruned(module, tensor_name):
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
    if _is_pruned(module, tensor_name):
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
    ) -> "Layout":
        """The prunable tensors of ``model`` in ``named_modules()`` order.

        Parameters
        ----------
        model : nn.Module
        include_bias : bool, default False
            Also prune the ``bias`` of the selected modules (when it exists).
        exclude : iterable of str
            Module names (as in ``model.named_modules()``) to leave out, together with
            everything below them (``"features"`` excludes ``"features.0"``). A name that
            matches no module is a ValueError.
        types : sequence of module classes
            Modules whose ``weight`` (and ``bias``) are prunable; subclasses count.

        Returns
        -------
        Layout
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        exclude = tuple(exclude) if not isinstance(exclude, str) else (exclude,)
        types = tuple(types)
        module_names = {name for name, _ in model.named_modules()}
        unknown = [name for name in exclude if name not in module_names]
        if unknown:
            raise ValueError(f"exclude names no module of the model: {unknown!r}")

        def excluded(name: str) -> bool:
            return any(name == ex or name.startswith(ex + ".") for ex in exclude)

        entries: list[LayoutEntry] = []
        offset = 0
        layer = 0
        for module_name, module in model.named_modules():
            if not isinstance(module, types) or excluded(module_name):
                continue
            tensor_names = (prunable_name(module), "bias") if include_bias else (prunable_name(module),)
            added = False
            for tensor_name in tensor_names:
                tensor = getattr(module, tensor_name, None)
                if not isinstance(tensor, torch.Tensor):
                    continue
                entry = LayoutEntry(module_name, tensor_name, tuple(tensor.shape), offset, layer,
                                    type(module).__name__)
                entries.append(entry)
                offset = entry.stop
                added = True
            layer += added
        if not entries:
            raise ValueError(
                f"model has no prunable tensors (types={[t.__name__ for t in types]}, exclude={exclude!r})"
            )
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
