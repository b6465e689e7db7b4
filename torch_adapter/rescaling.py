r"""Rescaling after pruning, and scaled residual branches (Hayou, Ton, Doucet, Teh, ICLR 2021).

Pruning at initialisation shrinks the variance of every pre-activation, and in a deep
network the shrinkage compounds layer after layer until the signal dies (the network
leaves the "edge of chaos" its initialisation was tuned for). Rescaling the kept weights
of each unit restores each unit's pre-activation variance.

The factor
----------
Take one unit: an output row i of a ``Linear`` or an output channel i of a ``Conv``, with
fan-in n (``in_features``, or ``in_channels / groups`` times the kernel size), weights
:math:`W_{ij}`, mask :math:`m_{ij} \in \{0, 1\}`, inputs :math:`x_j` (for a convolution: the
n inputs of one receptive field) and pre-activation

.. math::

    z_i = \sum_{j=1}^{n} m_{ij} W_{ij} x_j + b_i .

Let the inputs be i.i.d. with zero mean and variance q, independent of the weights.
For fixed weights the cross terms vanish and

.. math::

    \operatorname{Var}(z_i \mid W) = q \sum_j m_{ij} W_{ij}^2 ,
    \qquad\text{before pruning}\quad q \sum_j W_{ij}^2 .

Multiplying the kept weights of unit i by :math:`\alpha_i` multiplies the first by
:math:`\alpha_i^2`, so the variance of every unit is exactly what it was before pruning for

.. math::

    \alpha_i = \sqrt{\frac{\sum_j W_{ij}^2}{\sum_j m_{ij} W_{ij}^2}}
    \qquad (\texttt{by="weights"}, \text{the default}).

If instead the weights are treated as random, i.i.d. with zero mean and variance
:math:`\sigma^2` (their initialisation), :math:`\mathbb E_W \sum_j m_{ij} W_{ij}^2 = \sigma^2
n_i^{\text{kept}}` and the factor that restores the expected variance is

.. math::

    \alpha_i = \sqrt{n / n_i^{\text{kept}}}
    \qquad (\texttt{by="count"});

this form needs no zero-mean inputs: with zero-mean independent weights,
:math:`\mathbb E_W[z_i^2] = \sigma^2 \sum_j m_{ij} \mathbb E[x_j^2]` for any inputs.

What is restored, and what is not
---------------------------------
* The bias is not part of the sum and is left alone (bias entries of the layout are never
  rescaled).
* A unit that keeps no weight (or only exact zeros) has :math:`\operatorname{Var}(z_i \mid W) = 0`
  whatever the factor: it is left as it is (factor 1) and counted in
  :attr:`UnitRescaling.dead_units`. A unit whose weights were all 0 before pruning has
  nothing to restore (factor 1).
* For an :class:`~torch_adapter.interspace.InterspaceConv2d` the sums run over the
  entries of its filters :math:`\sum_b c_{ib} F_b` (with the masked or the full coefficients
  c), which the factor of the unit's kept coefficients scales by :math:`\alpha_i`; with an
  orthonormal filter basis they equal the sums of the squared coefficients.
* Inputs that are not zero-mean or not independent (e.g. after a ReLU) make the per-unit
  restoration approximate for ``by="weights"``; the layer-wise signal scale is still kept
  (see the tests on a deep MLP).

Stable ResNet
-------------
For residual networks :math:`x_{l+1} = x_l + F_l(x_l)` the same paper scales every residual
branch by :math:`1/\sqrt{L}` (L = the number of branches) so that the variance of the
output stays bounded with depth: :func:`scale_residual_branches`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._checks import check_choice
from .layout import Layout, PrunableLayer
from .parametrizations import FreezeParametrization, MaskParametrization, parametrization_of

__all__ = ["RESCALE_BY", "UnitRescaling", "rescale_after_pruning", "scale_residual_branches"]

#: Which variance the factor restores: of the realised weights, or the expected one.
RESCALE_BY = ("weights", "count")
_UNIT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, PrunableLayer)


@dataclass(frozen=True, eq=False)
class UnitRescaling:
    """What :func:`rescale_after_pruning` did to one layer.

    Attributes
    ----------
    name : str
        Full name of the rescaled tensor (``"features.0.weight"``).
    factors : Tensor, shape (units,)
        :math:`\\alpha_i` of every unit (1 for dead units and for units with nothing to restore).
    dead_units : int
        Units that keep no weight (with ``by="weights"`` also those whose kept weights are
        all exactly 0): their variance cannot be restored.
    """

    name: str
    factors: torch.Tensor
    dead_units: int


def _unit_energy(module: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """Sum of the squared entries of each unit's filter (row) for the prunable ``tensor``."""
    weight = module.weight_from(tensor) if isinstance(module, PrunableLayer) else tensor
    return weight.detach().to(torch.float64).pow(2).reshape(weight.shape[0], -1).sum(dim=1)


def _values_and_mask(module: nn.Module, entry) -> tuple[torch.Tensor, torch.Tensor]:
    """The unpruned values (a Parameter, scaled in place) and the mask of a pruned tensor:
    the mask parametrization of :func:`torch_adapter.apply_mask`, or ``weight_orig`` /
    ``weight_mask`` of ``torch.nn.utils.prune``."""
    name = entry.tensor_name
    ours = parametrization_of(module, name)
    if isinstance(ours, FreezeParametrization):
        raise ValueError(f'{entry.name} is frozen (mode="freeze"); rescaling needs a mask applied with mode="mask"')
    if isinstance(ours, MaskParametrization):
        if ours.rescaled:  # its kept values are alpha times the originals: the energies would be wrong
            raise ValueError(f"{entry.name} was rescaled already (rescaling again would compound the factors); "
                             "rescale once, after the last mask is applied")
        return module.parametrizations[name].original, ours.mask
    if parametrize.is_parametrized(module, name):
        raise ValueError(f"{entry.name} carries a parametrization other than a mask; rescaling needs a mask "
                         'applied with mode="mask"')
    if f"{name}_orig" in module._parameters:
        return module._parameters[f"{name}_orig"], module._buffers[f"{name}_mask"]
    raise ValueError(f"{entry.name} is not pruned: apply a mask first (apply_mask or torch.nn.utils.prune)")


def _ours_mask(module: nn.Module, name: str):
    """The mask parametrization of :func:`torch_adapter.apply_mask` on ``module.<name>``, or None."""
    ours = parametrization_of(module, name)
    return ours if isinstance(ours, MaskParametrization) else None


def rescale_after_pruning(model: nn.Module, layout: Layout | None = None, *,
                          by: str = "weights") -> tuple[UnitRescaling, ...]:
    r"""Rescale the kept weights of every unit so its pre-activation variance is restored.

    In place, on a model whose layout tensors were pruned with :func:`torch_adapter.apply_mask`
    (``mode="mask"``: the unpruned values are the parametrization's ``original``) or
    ``torch.nn.utils.prune`` (``weight_orig`` and ``weight_mask``); the kept entries of the
    unpruned values of unit i are multiplied by :math:`\alpha_i` (see the module docstring for the derivation), the
    pruned entries are left alone. ``apply_mask(..., rescale=True)`` and
    ``prune_with_cops(..., rescale=True)`` call this.

    Parameters
    ----------
    model : nn.Module
    layout : Layout, optional
        Default ``Layout.from_model(model)``. Every weight entry must belong to a
        ``Linear``, ``Conv1d/2d/3d`` or :class:`~torch_adapter.layout.PrunableLayer`
        (units = dim 0) and be pruned; bias entries are skipped.
    by : {"weights", "count"}, default "weights"
        :math:`\alpha_i = \sqrt{\sum_j W_{ij}^2 / \sum_j m_{ij} W_{ij}^2}` or
        :math:`\sqrt{n / n_i^{\text{kept}}}`.

    Returns
    -------
    tuple of UnitRescaling
        One per rescaled tensor, in layout order.

    Raises
    ------
    ValueError
        An unknown ``by``; a weight entry of another module type, not pruned, or frozen
        (``mode="freeze"``: frozen weights still feed the unit, so there is no variance to
        restore).
    """
    check_choice("by", by, RESCALE_BY)
    layout = Layout.from_model(model) if layout is None else layout
    entries = [(module, entry) for module, entry in zip(layout.modules(model), layout.entries)
               if entry.tensor_name != "bias"]
    pruned = []
    for module, entry in entries:
        if not isinstance(module, _UNIT_TYPES):
            raise ValueError(f"{entry.name}: rescaling knows the units of Linear, Conv and PrunableLayer "
                             f"modules, not of a {type(module).__name__}")
        pruned.append(_values_and_mask(module, entry))
    report = []
    for (module, entry), (original, mask) in zip(entries, pruned):
        ours = _ours_mask(module, entry.tensor_name)
        mask = mask.to(original.dtype)
        if by == "weights":
            before = _unit_energy(module, original)
            after = _unit_energy(module, original * mask)
        else:
            before = torch.full((mask.shape[0],), float(mask[0].numel()), dtype=torch.float64,
                                device=mask.device)
            after = mask.detach().to(torch.float64).reshape(mask.shape[0], -1).sum(dim=1)
        dead = after == 0
        factors = torch.where(dead | (before == 0), torch.ones_like(before), (before / after.clamp_min(
            torch.finfo(torch.float64).tiny)).sqrt())
        scale = factors.to(original.dtype).reshape(-1, *([1] * (original.dim() - 1)))
        with torch.no_grad():
            original.mul_(torch.where(mask != 0, scale, torch.ones_like(scale)))
        if ours is not None:
            ours.rescaled = True
        report.append(UnitRescaling(entry.name, factors, int(dead.sum())))
    return tuple(report)


class _ScaleOutput:
    """Forward hook ``output -> factor * output``."""

    def __init__(self, factor: float):
        self.factor = factor

    def __call__(self, module: nn.Module, inputs, output):
        return output * self.factor


def scale_residual_branches(model: nn.Module, branches: Sequence[str], *,
                            factor: float | None = None) -> list[torch.utils.hooks.RemovableHandle]:
    r"""Stable ResNet: multiply the output of every residual branch by :math:`1/\sqrt{L}`.

    For :math:`x_{l+1} = x_l + F_l(x_l)`, l = 1..L, the branches become
    :math:`F_l / \sqrt{L}` (a fixed architectural factor, not a parameter): a forward hook
    on the *last* module of each branch (e.g. ``"layer1.0.bn2"``) multiplies its output.
    The hooks stay on the model (and on its deep copies) until removed.

    Parameters
    ----------
    model : nn.Module
    branches : sequence of str
        Module names, one per residual branch, each the module whose output is added to the
        skip connection. L = ``len(branches)``.
    factor : float, optional
        Default :math:`1/\sqrt{L}`; any positive float.

    Returns
    -------
    list of RemovableHandle
        ``handle.remove()`` undoes the scaling.
    """
    if isinstance(branches, str) or not all(isinstance(name, str) for name in branches):
        raise TypeError(f"branches must be a sequence of module names, got {branches!r}")
    branches = list(branches)
    if not branches:
        raise ValueError("branches is empty: name the last module of each residual branch")
    if len(set(branches)) != len(branches):
        raise ValueError(f"branches names a module twice: {branches!r}")
    modules = dict(model.named_modules())
    unknown = [name for name in branches if name not in modules]
    if unknown:
        raise ValueError(f"branches names no module of the model: {unknown!r}")
    factor = 1.0 / math.sqrt(len(branches)) if factor is None else factor
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"factor must be a positive finite float, got {factor!r}")
    return [modules[name].register_forward_hook(_ScaleOutput(float(factor))) for name in branches]
