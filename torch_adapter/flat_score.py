"""The flat score record, and what every scoring function and the iterative loop are made of.

:class:`Score` is the one record a score of a model is: the values of the prunable elements in
the order of a :class:`~torch_adapter.layout.Layout`. :func:`copy_model` copies a model for
scoring (also one pruned with ``torch.nn.utils.prune``), :func:`with_progress_bar` wraps a loop in a
progress bar. The bottom of the package's scoring: :mod:`torch_adapter.scores`,
:mod:`torch_adapter.iterative`, :mod:`torch_adapter.topk` and :mod:`torch_adapter.cops`
import it, it imports none of them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from .layout import Layout

__all__ = ["Score", "copy_model", "with_progress_bar"]


@dataclass(frozen=True, eq=False)
class Score:
    """A flat score over the prunable elements of a model.

    Attributes
    ----------
    values : Tensor, shape (D,)
        The scores, detached, on the device of the model they were computed from, in the
        dtype they were computed in. Element j belongs to the layout entry whose
        ``[offset, stop)`` contains j.
    layout : Layout
        Which parameters the elements belong to.
    name : str
        ``"magnitude"``, ``"random"``, ``"snip"``, ``"grasp"``, ``"synflow"`` (or a caller's name).
    options : mapping
        The options it was computed with (for reports).
    """

    values: torch.Tensor
    layout: Layout
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.values, torch.Tensor):
            raise TypeError(f"Score.values must be a torch.Tensor, got {type(self.values).__name__}")
        if self.values.dim() != 1 or self.values.shape[0] != len(self.layout):
            raise ValueError(f"Score.values must have shape ({len(self.layout)},) to fit the layout, "
                             f"got {tuple(self.values.shape)}")

    def __len__(self) -> int:
        return len(self.layout)

    def numpy(self, dtype=np.float64) -> np.ndarray:
        """The values as a numpy array on the CPU (float64 by default)."""
        torch_dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        return self.values.detach().to("cpu", torch_dtype).numpy().astype(dtype, copy=False)

    def per_tensor(self) -> dict[str, torch.Tensor]:
        """``{parameter name: scores shaped like the parameter}`` (views of ``values``)."""
        return self.layout.to_dict(self.values)

    def __repr__(self) -> str:
        return (f"Score({self.name!r}, D={len(self)}, dtype={self.values.dtype}, "
                f"device={self.values.device})")


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works on models pruned with ``torch.nn.utils.prune``.

    Such a module holds ``weight = weight_orig * weight_mask`` as a non-leaf tensor, which
    deepcopy refuses; it is swapped for a detached alias during the copy (the copy's pruning
    hook recomputes it before every forward pass) and put back afterwards.
    """
    swapped = []
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                name = hook._tensor_name
                tensor = getattr(module, name, None)
                if isinstance(tensor, torch.Tensor) and not tensor.is_leaf:
                    swapped.append((module, name, tensor))
                    setattr(module, name, tensor.detach())
    try:
        return copy.deepcopy(model)
    finally:
        for module, name, tensor in swapped:
            setattr(module, name, tensor)


def with_progress_bar(iterable: Iterable[Any], **kwargs) -> Iterable[Any]:
    """``iterable`` with a progress bar (tqdm) where tqdm is installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        return iterable
    return tqdm(iterable, leave=False, **kwargs)
