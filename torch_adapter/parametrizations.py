"""The parametrizations that put a mask (or a frozen selection) into a module's tensor.

``torch.nn.utils.parametrize`` recomputes a parametrized tensor at every access, so masks
hold in modules that read their weights directly (``nn.MultiheadAttention``), under
``torch.compile`` and after ``copy.deepcopy``. These classes are the bottom of
``torch_adapter``: :mod:`torch_adapter.masks` installs them, :mod:`torch_adapter.rescaling`,
:mod:`torch_adapter.export` and :mod:`torch_adapter.checkpoint` read them; they import
nothing of the package.

State-dict keys of a tensor ``<m>.<t>`` they parametrize: ``<m>.parametrizations.<t>.original``
(the trainable values) and ``<m>.parametrizations.<t>.0.mask`` (and ``.0.frozen`` for a
freeze).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["MaskParametrization", "FreezeParametrization", "parametrization_of", "own_class"]


class MaskParametrization(nn.Module):
    """Parametrization ``w -> where(mask, w, 0)``, recomputed at every access of the weight.
    ``rescaled``: :func:`torch_adapter.rescale_after_pruning` has scaled the kept values."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)
        self.rescaled = False

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))


class FreezeParametrization(nn.Module):
    """Parametrization ``w -> where(mask, w, frozen)``: unselected elements read ``frozen``."""

    def __init__(self, mask: torch.Tensor, frozen: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)
        self.register_buffer("frozen", frozen)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, weight, self.frozen)


def parametrization_of(module: nn.Module, tensor_name: str) -> MaskParametrization | FreezeParametrization | None:
    """The mask or freeze parametrization this module applied to ``module.<tensor_name>``."""
    if not parametrize.is_parametrized(module, tensor_name):
        return None
    last = module.parametrizations[tensor_name][-1]
    return last if isinstance(last, (MaskParametrization, FreezeParametrization)) else None


def own_class(module: nn.Module) -> None:
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
