r"""Interspace pruning (Wimmer, Mehnert, Condurache, CVPR 2022): prune filter coefficients.

Every :math:`K_1 \times K_2` filter of a convolution is written in a per-layer filter
basis (FB) of :math:`B = K_1 K_2` basis filters :math:`F_1 .. F_B`:

.. math::

    W[o, i] = \sum_{b=1}^{B} c[o, i, b] \, F_b .

The *coefficients* c are pruned (a mask on c), and the surviving coefficients and the FB
are trained together; the FB is shared by all filters of the layer and is not pruned.

:func:`convert` replaces each ``nn.Conv2d`` of a model by an :class:`InterspaceConv2d`
with the FB initialised as

* ``"dct"``: the orthonormal 2-D DCT-II basis, :math:`F_{(u, v)}[h, w] = D_u[h] D_v[w]` with
  :math:`D_u[h] = a_u \cos\bigl(\pi (2h + 1) u / (2K)\bigr)`,
  :math:`a_0 = \sqrt{1/K}`, :math:`a_u = \sqrt{2/K}` (b = u K_2 + v, lowest frequency first);
* ``"spatial"``: the identity basis, :math:`F_{(h, w)} = e_{(h, w)}`, so that
  :math:`c[o, i, h K_2 + w] = W[o, i, h, w]`: interspace pruning with this basis held
  fixed *is* standard pruning;

and the coefficients :math:`c[o, i, b] = \langle W[o, i], F_b\rangle`. Both bases are
orthonormal, so :math:`\sum_b c[o, i, b] F_b = W[o, i]`: the converted model computes the
same function (exactly for the spatial basis, to float round-off for the DCT).

The coefficients are the layer's prunable tensor (``coefficients``, shape
``(out_channels, in_channels / groups, B)``): :class:`~torch_adapter.layout.Layout` lists
them instead of the filter weights, so every score, COPS, floors, :func:`apply_mask`
(mask and freeze modes) and :func:`rescale_after_pruning` act on them unchanged. A pruned
coefficient stays 0 in training (the mask parametrization recomputes ``coefficients`` from
the stored values at every access) while the FB moves.
:func:`revert` bakes the current filters back into plain ``nn.Conv2d`` layers (their
weights are dense in general: the sparsity lives in the coefficients).

Grouped, strided, dilated and padded convolutions (any ``padding_mode``) are supported: the
FB acts on the spatial kernel only.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ._checks import check_choice
from .layout import PrunableLayer, effective_tensor, trainable_tensor

__all__ = ["BASES", "InterspaceConv2d", "dct_basis", "spatial_basis", "convert", "revert"]


def dct_basis(kernel_size: tuple[int, int], *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Orthonormal 2-D DCT-II basis, shape ``(K1 * K2, K1, K2)``; see the module docstring."""
    def dct_matrix(size: int) -> torch.Tensor:
        position = torch.arange(size, dtype=torch.float64)
        frequency = torch.arange(size, dtype=torch.float64)[:, None]
        matrix = torch.cos(math.pi * (2 * position + 1) * frequency / (2 * size)) * math.sqrt(2 / size)
        matrix[0] = math.sqrt(1 / size)
        return matrix

    rows, cols = dct_matrix(kernel_size[0]), dct_matrix(kernel_size[1])
    return torch.einsum("uh,vw->uvhw", rows, cols).reshape(-1, *kernel_size).to(dtype)


def spatial_basis(kernel_size: tuple[int, int], *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Identity basis, shape ``(K1 * K2, K1, K2)``: basis filter b is 1 at position b (row-major)."""
    size = kernel_size[0] * kernel_size[1]
    return torch.eye(size, dtype=dtype).reshape(size, *kernel_size)


#: Filter bases by name.
BASES: dict[str, Callable[..., torch.Tensor]] = {"dct": dct_basis, "spatial": spatial_basis}


class InterspaceConv2d(PrunableLayer):
    r"""A 2-D convolution whose filters are :math:`W[o, i] = \sum_b c[o, i, b] F_b`.

    Built from an ``nn.Conv2d`` (see :func:`convert`); same hyperparameters, same bias
    parameter (the very object), new parameters ``coefficients`` and ``basis``.

    Parameters
    ----------
    conv : nn.Conv2d
        Its weight W gives the coefficients :math:`c[o, i, b] = \langle W[o, i], F_b\rangle`.
    basis : {"dct", "spatial"}
        Initial FB (orthonormal).
    train_basis : bool, default True
        Whether the FB is trained (``basis.requires_grad``).

    Attributes
    ----------
    coefficients : Parameter, shape (out_channels, in_channels // groups, K1 * K2)
        The prunable tensor.
    basis : Parameter, shape (K1 * K2, K1, K2)
        The filter basis of the layer.
    """

    prunable_tensor = "coefficients"

    def __init__(self, conv: nn.Conv2d, basis: str = "dct", *, train_basis: bool = True):
        super().__init__()
        check_choice("basis", basis, sorted(BASES))
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                     "padding_mode", "_reversed_padding_repeated_twice"):
            setattr(self, name, getattr(conv, name))
        weight = conv.weight.detach()
        filters = BASES[basis](tuple(self.kernel_size))
        coefficients = weight.to(torch.float64).flatten(2) @ filters.flatten(1).T
        self.basis = nn.Parameter(filters.to(device=weight.device, dtype=weight.dtype), requires_grad=train_basis)
        self.coefficients = nn.Parameter(coefficients.to(weight.dtype), requires_grad=conv.weight.requires_grad)
        self.bias = conv.bias
        self.basis_name = basis

    def weight_from(self, coefficients: torch.Tensor) -> torch.Tensor:
        r"""Filters :math:`\sum_b c[o, i, b] F_b` for the given coefficients, shape ``(out, in / groups, K1, K2)``."""
        flat = coefficients.reshape(-1, self.basis.shape[0]) @ self.basis.reshape(self.basis.shape[0], -1)
        return flat.reshape(*coefficients.shape[:2], *self.basis.shape[1:])

    @property
    def filters(self) -> torch.Tensor:
        """The filters of the next forward pass (pruned or frozen coefficients applied)."""
        return self.weight_from(effective_tensor(self, "coefficients"))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        weight = self.weight_from(self.coefficients)
        if self.padding_mode != "zeros":
            inputs = F.pad(inputs, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(inputs, weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(inputs, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.kernel_size)}, "
                f"stride={self.stride}, basis={self.basis_name!r}, bias={self.bias is not None}")


def _parent_and_name(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def _excluded(name: str, exclude: tuple[str, ...]) -> bool:
    return any(name == ex or name.startswith(ex + ".") for ex in exclude)


def convert(
    model: nn.Module,
    basis: str = "dct",
    *,
    train_basis: bool = True,
    include_pointwise: bool = False,
    exclude: Iterable[str] = (),
) -> tuple[str, ...]:
    r"""Rewrite the ``nn.Conv2d`` layers of ``model`` in a filter basis, in place.

    Each converted layer is replaced (same name in the model) by an
    :class:`InterspaceConv2d` that computes the same function; see the module docstring.
    Build the layout, the scores and the optimiser *after* converting.

    Parameters
    ----------
    model : nn.Module
    basis : {"dct", "spatial"}, default "dct"
        Initial filter basis of every converted layer.
    train_basis : bool, default True
        Train the FB (``False`` holds it fixed: with ``"spatial"`` this is standard pruning).
    include_pointwise : bool, default False
        Also convert 1x1 convolutions (whose FB is a single 1x1 filter, a per-layer scale).
    exclude : iterable of str
        Module names to leave as they are (with everything below them).

    Returns
    -------
    tuple of str
        Names of the converted layers.

    Raises
    ------
    ValueError
        No convolution to convert; an unknown basis or exclude name; a convolution that
        cannot be rewritten faithfully: already pruned or parametrized (call
        :func:`~torch_adapter.make_permanent` first), carrying forward hooks, a subclass of
        ``nn.Conv2d`` (its forward may differ), or whose weight is shared with another module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice("basis", basis, sorted(BASES))
    for name, flag in (("train_basis", train_basis), ("include_pointwise", include_pointwise)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if not isinstance(exclude, (str, Sequence)):
        raise TypeError(f"exclude must be a module name or a sequence of them, got {exclude!r}")
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    names = {name for name, _ in model.named_modules()}
    unknown = [name for name in exclude if name not in names]
    if unknown:
        raise ValueError(f"exclude names no module of the model: {unknown!r}")
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        weight = module._parameters.get("weight")
        if weight is not None:
            owners.setdefault(id(weight), []).append(name)
    targets = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d) or _excluded(name, exclude):
            continue
        sharing = owners.get(id(module._parameters.get("weight")), [name])
        if len(sharing) > 1:
            raise ValueError(f"{name}.weight is shared by the modules {sharing}; a shared weight cannot be "
                             "rewritten in one filter basis per layer; exclude them")
        if parametrize.is_parametrized(module) or "weight_orig" in module._parameters:
            raise ValueError(f"{name} is pruned or parametrized; call make_permanent first")
        if type(module) is not nn.Conv2d:
            raise ValueError(f"{name} is a {type(module).__name__}, a subclass of nn.Conv2d whose forward pass "
                             "may differ; exclude it")
        if module._forward_hooks or module._forward_pre_hooks:
            raise ValueError(f"{name} has forward hooks, which the converted layer would not carry")
        if module.kernel_size[0] * module.kernel_size[1] == 1 and not include_pointwise:
            continue
        targets.append((name, module))
    if not targets:
        raise ValueError("model has no nn.Conv2d to convert" + (f" (exclude={exclude!r})" if exclude else ""))
    for name, module in targets:
        parent, child = _parent_and_name(model, name)
        setattr(parent, child, InterspaceConv2d(module, basis, train_basis=train_basis))
    return tuple(name for name, _ in targets)


def revert(model: nn.Module) -> tuple[str, ...]:
    """Bake every :class:`InterspaceConv2d` of ``model`` back into an ``nn.Conv2d``, in place.

    The new layer's weight is the current filters, :attr:`InterspaceConv2d.filters` (masked
    or frozen coefficients applied, the trained FB); the bias is the same parameter. Outputs
    are unchanged up to float round-off of the basis product.

    Returns
    -------
    tuple of str
        Names of the reverted layers (empty if there were none).
    """
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, InterspaceConv2d)]
    for name, module in targets:
        conv = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                         padding=module.padding, dilation=module.dilation, groups=module.groups,
                         bias=False, padding_mode=module.padding_mode,
                         device=module.basis.device, dtype=module.basis.dtype)
        with torch.no_grad():
            conv.weight.copy_(module.filters)
        conv.weight.requires_grad_(trainable_tensor(module, "coefficients").requires_grad)
        conv.bias = module.bias
        parent, child = _parent_and_name(model, name)
        setattr(parent, child, conv)
    return tuple(name for name, _ in targets)

