r"""Pruning scores of a torch model, as flat vectors over its prunable parameters.

Every function returns a :class:`Score`: a flat tensor ``values`` of length D (the number
of prunable elements, see :class:`~torch_adapter.layout.Layout`) on the model's device,
the layout it refers to, and the score's name. Larger is better everywhere: a mask keeps
the elements with the largest scores (or, under COPS, the best combination).

With :math:`\theta` the prunable weights (the *effective* values for an already pruned
module), :math:`L` the loss and :math:`g = \partial L / \partial \theta`:

* ``magnitude``: :math:`s = |\theta|`, >= 0.
* ``random``: i.i.d. uniform on [0, 1), seeded; ignores the model's values.
* ``snip``: :math:`s = |\theta \odot \sum_b g_b|`, >= 0; ``normalize=True`` divides by the sum.
* ``grasp``: :math:`s = \theta \odot (H g)`, :math:`H = \partial^2 L / \partial\theta^2`;
  **signed**, keep the largest (never take abs()).
* ``synflow``: :math:`s = |\theta \odot \partial R / \partial\theta|`, >= 0; data-free,
  float64 by default.
* ``synflow_l2``: SynFlow on the squared weights, :math:`s = \theta^2 \odot \partial R_2 /
  \partial(\theta^2)`, >= 0; data-free.
* ``ntk_sap``: :math:`s = |\partial J / \partial m|`, J the output change under a weight
  perturbation over re-initialisations and random inputs, >= 0; data-free.
* ``prospr``: :math:`s = |\partial L_M / \partial m|`, the loss after M SGD steps on the
  masked network differentiated through the steps, >= 0.

``grasp`` also gives :math:`|\theta \odot Hg|` (``absolute=True``) and the GraSP authors'
conventions (``conventions="original"``).

Conventions shared by the data-driven scores (``snip``, ``grasp``):

* ``batches`` is an iterable of ``(inputs, targets)`` pairs (a ``DataLoader`` works); both
  are moved to the model's device, and floating-point ones cast to the model's dtype; the
  loss is ``loss_fn(model(inputs), targets)``. Gradients over several batches are summed.
* Only the prunable tensors are differentiated (``H`` is their block of the Hessian).
* The model is evaluated in ``eval()`` mode unless ``train=True``.
* The caller's model is left exactly as it was: parameter values, buffers (e.g. BatchNorm
  running statistics, restored even with ``train=True``), the train/eval flag of every
  submodule, ``requires_grad`` flags and ``.grad`` fields (gradients are taken with
  :func:`torch.autograd.grad`, never accumulated into ``.grad``). In train mode, dropout
  draws from the global random generator as any forward pass does.

For a tensor already masked (by :func:`torch_adapter.apply_mask`, or
:mod:`torch.nn.utils.prune`), gradients are taken with respect to the stored tensor
(``original`` / ``weight_orig``, whose gradient is ``mask * dL/dweight``) and multiplied by the
effective weight, so pruned elements score exactly 0 (GraSP: 0 as well, since ``theta`` is 0
there). A tied tensor is one element range of the layout; its gradient sums the
contributions of every place that uses it.

A ``DistributedDataParallel`` model is scored through the module it wraps, with the
gradients averaged over its processes (or over ``process_group=``), so every process gets the
same scores and DDP's reducer is left as it was (:mod:`torch_adapter.distributed`); the
score's layout is the wrapper's.

Checks made before a score is used: a model with parameters on the meta device (shapes
without values) is refused; a score whose elements are all equal (all zero, say: SNIP of a
model with a zero-initialised layer) cannot rank anything and is warned about
(:class:`ConstantScoreWarning`; SynFlow's all-zero or non-finite scores get
:class:`SynFlowUnderflowWarning` instead). A model that fails on its input is reported with
what was fed to it (integer ids are needed by embedding layers).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import numbers
import warnings
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._checks import check_choice
from .distributed import average_over_processes, inner_layout, is_ddp, process_group_of
from .flat_score import Score, copy_model
from .iterative import iterative_prune, zero_entries
from .kept_counts import KEPT_COUNTS
from .layout import Layout, trainable_tensor
from .masks import current_mask, make_permanent

__all__ = ["Score", "SynFlowRounds", "magnitude", "random", "snip", "grasp", "synflow", "synflow_l2", "ntk_sap", "prospr",
           "GRASP_CONVENTIONS", "SynFlowUnderflowWarning", "ConstantScoreWarning"]


class SynFlowUnderflowWarning(UserWarning):
    """Every SynFlow score is zero, or some are not finite."""


class ConstantScoreWarning(UserWarning):
    """Every element of a score has the same value: it cannot rank the weights."""


# ---------------------------------------------------------------------------- helpers
_LAYOUT_KEYWORDS = frozenset(name for name, parameter in inspect.signature(Layout.from_model).parameters.items()
                             if parameter.kind is inspect.Parameter.KEYWORD_ONLY)


def _layout_for(model: nn.Module, layout: Layout | None, layout_options: Mapping[str, Any], score: str) -> Layout:
    """The layout a score function reads: ``layout`` as given, else ``Layout.from_model``
    with the score's extra keywords; a keyword neither takes is a TypeError that names
    ``score``."""
    unknown = sorted(set(layout_options) - _LAYOUT_KEYWORDS)
    if unknown:
        raise TypeError(f"{score}() got an unexpected keyword argument {unknown[0]!r} (its own keywords aside, "
                        f"it takes those of Layout.from_model: {', '.join(sorted(_LAYOUT_KEYWORDS))})")
    if layout is not None:
        if layout_options:
            raise TypeError(f"give either layout= or layout options, not both (got {sorted(layout_options)})")
        layout.modules(model)  # checks that it fits
    else:
        layout = Layout.from_model(model, **layout_options)
    for entry, tensor in zip(layout.entries, layout.values(model)):
        if tensor.is_meta:
            raise ValueError(
                f"{entry.name} is on the meta device (a shape without values), and so is the model: "
                f"materialise it first, e.g. model.to_empty(device='cpu') and then initialise or load the weights"
            )
    return layout


def _scored(values: torch.Tensor, layout: Layout, name: str, options: Mapping[str, Any], *, hint: str) -> Score:
    """The :class:`Score`, after a :class:`ConstantScoreWarning` if its values are all equal."""
    # all equal only if the first and the last are: the pass over all only then
    if values.numel() and bool(values[-1] == values[0]) and bool((values == values[0]).all()):
        warnings.warn(f"{name} scores are all {float(values[0]):g}: they cannot rank the weights, and a mask or "
                      f"a COPS bound built on them is arbitrary; {hint}", ConstantScoreWarning, stacklevel=3)
    return Score(values, layout, name, options)


_GRADIENT_HINT = ("a layer initialised to zero (or a loss that does not depend on the weights) stops the "
                  "gradient; check the model's initialisation")


def _embedding_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, (nn.Embedding, nn.EmbeddingBag))]


def _forward(model: nn.Module, inputs: Any, what: str) -> Any:
    """``model(inputs)``; a failure is re-raised with what was fed (and a word on embeddings)."""
    try:
        return model(inputs)
    except RuntimeError as exc:
        fed = (f"{inputs.dtype} tensor of shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor)
               else type(inputs).__name__)
        embeddings = _embedding_names(model)
        advice = (f"; the model has embedding layers ({', '.join(repr(n) for n in embeddings)}), which take "
                  f"integer ids" if embeddings else "")
        raise RuntimeError(f"{what}: the model failed on a {fed}{advice}: {exc}") from exc


def _on_layout(score: Score, layout: Layout) -> Score:
    """``score`` on ``layout`` (a DDP wrapper's layout, for a score of the module it wraps)."""
    return Score(score.values, layout, score.name, score.options)


def _device_dtype(tensors: Sequence[torch.Tensor]) -> tuple[torch.device, torch.dtype]:
    return tensors[0].device, tensors[0].dtype


@contextlib.contextmanager
def _model_preserved(model: nn.Module, *, train: bool) -> Iterator[None]:
    """Run a block with ``model.train(train)`` and gradients on; restore everything after.

    Restored: the ``training`` flag of every submodule, every buffer's values (BatchNorm
    running statistics), every parameter's ``requires_grad``.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        model.train(train)
        with torch.enable_grad():
            yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, mode in modes:
            module.training = mode
        for param, flag in flags:
            param.requires_grad_(flag)


def _move(x: Any, device: torch.device, dtype: torch.dtype) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device=device)
    if isinstance(x, (list, tuple)):
        return type(x)(_move(v, device, dtype) for v in x)
    return x


def _pairs(batches: Iterable[Any], device: torch.device, dtype: torch.dtype) -> Iterator[tuple[Any, Any]]:
    for i, batch in enumerate(batches):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise TypeError(f"batches must yield (inputs, targets) pairs; batch {i} is a "
                            f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else ""))
        yield _move(batch[0], device, dtype), _move(batch[1], device, dtype)


def _grads(output: torch.Tensor, leaves: Sequence[torch.Tensor], **kwargs) -> list[torch.Tensor]:
    grads = torch.autograd.grad(output, leaves, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]


def _trainable_leaves(model: nn.Module, layout: Layout) -> list[torch.Tensor]:
    leaves = layout.trainable(model)
    for leaf in leaves:
        leaf.requires_grad_(True)
    return leaves


def _check_loss(loss: Any) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
    return loss.reshape(())


def _accumulated(total: list[torch.Tensor] | None, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """``grads`` added into ``total`` in place. The first ones (``total`` None) are taken as
    they are, detached: with one batch nothing is added and nothing is copied; a gradient that
    cannot be added into in place is copied when the second batch comes (:func:`_owned`)."""
    if total is None:
        return [g.detach() for g in grads]
    total = _owned(total)
    for acc, g in zip(total, grads):
        acc.add_(g)
    return total


def _owned(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """``tensors``, each one that cannot be written in place replaced by a contiguous copy: an
    expanded one (of a sum, stride 0, or any other non-contiguous one) or one that shares its
    memory with an earlier one (passed through an addition)."""
    owned, seen = [], set()
    for t in tensors:
        if not t.is_contiguous() or t.untyped_storage().data_ptr() in seen:
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add(t.untyped_storage().data_ptr())
        owned.append(t)
    return owned


def _flat_buffer(tensors: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """An uninitialised flat vector of ``size`` elements on the first tensor's device, in the
    tensors' common dtype (what :meth:`Layout.flatten` would give)."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.empty(size, device=tensors[0].device, dtype=dtype)


def _write_products(buffer: torch.Tensor, layout: Layout, tensors: Sequence[torch.Tensor],
                    grads: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Write :math:`\theta \odot g` of every layout entry straight into its range of ``buffer``.

    No per-tensor product and no concatenation is allocated (a tensor on another device or in
    another dtype than the buffer goes through one temporary). Returns ``buffer``, detached.
    """
    with torch.no_grad():
        for entry, tensor, grad in zip(layout.entries, tensors, grads):
            out = buffer[entry.offset:entry.stop]
            if tensor.device == out.device == grad.device and tensor.dtype == out.dtype == grad.dtype:
                torch.mul(tensor.detach().reshape(-1), grad.reshape(-1), out=out)
            else:
                out.copy_((tensor.detach() * grad).reshape(-1))
    return buffer


#: GraSP's normaliser is ``|sum(s)| + GRASP_NORMALIZE_EPS``, as in the SynFlow authors' code.
GRASP_NORMALIZE_EPS = 1e-10


def _snip_normalized(values: torch.Tensor) -> torch.Tensor:
    total = values.sum()
    if not total > 0:
        raise ValueError(f"snip: normalize=True divides by the sum of the scores, which is {float(total)!r}")
    return values / total


def _grasp_normalized(values: torch.Tensor) -> torch.Tensor:
    return values / (values.sum().abs() + GRASP_NORMALIZE_EPS)


# ---------------------------------------------------------------------------- data-free
def magnitude(model: nn.Module, *, layout: Layout | None = None, **layout_options) -> Score:
    r"""Magnitude score :math:`s = |\theta|`.

    Parameters
    ----------
    model : nn.Module
    layout : Layout, optional
        Which parameters to score; by default ``Layout.from_model(model, **layout_options)``
        (``include_bias``, ``exclude``, ``types``).

    Returns
    -------
    Score
        ``values >= 0``, in the model's dtype, on its device.
    """
    layout = _layout_for(model, layout, layout_options, "magnitude")
    with torch.no_grad():
        values = layout.flatten([t.detach().abs() for t in layout.values(model)])
    return _scored(values, layout, "magnitude", {}, hint="the weights all have one magnitude")


def random(model: nn.Module, *, seed: int = 0, layout: Layout | None = None, **layout_options) -> Score:
    """Random baseline: i.i.d. uniform scores on [0, 1).

    Drawn in float64 on the CPU from ``torch.Generator().manual_seed(seed)`` and then moved
    to the model's device and dtype, so a seed gives the same scores on every device. The
    global random state is not touched.

    Parameters
    ----------
    model : nn.Module
    seed : int, default 0
        A TypeError for anything but an int (``None`` included: the scores are always seeded).
    layout : Layout, optional
        See :func:`magnitude`.

    Returns
    -------
    Score
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int (the scores are always seeded), got {seed!r}")
    layout = _layout_for(model, layout, layout_options, "random")
    device, dtype = _device_dtype(layout.values(model))
    generator = torch.Generator().manual_seed(int(seed))
    values = torch.rand(len(layout), generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return Score(values, layout, "random", {"seed": int(seed)})


# ---------------------------------------------------------------------------- SNIP
def snip(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batches: Iterable[Any],
    *,
    normalize: bool = False,
    train: bool = False,
    process_group: Any = None,
    layout: Layout | None = None,
    **layout_options,
) -> Score:
    r"""SNIP connection sensitivity (Lee et al., 2019).

    .. math::

        s = \Bigl|\theta \odot \sum_{b} \frac{\partial L(\text{model}(x_b), y_b)}{\partial\theta}\Bigr|

    The gradients of the given batches are summed first, then multiplied by the weights and
    the absolute value is taken (as SNIP's reference implementations accumulate gradients
    over the batches). With ``normalize=True`` the scores are divided by their sum (as in
    the SNIP paper); COPS's relative bounds are invariant to that scaling.

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable
        ``loss_fn(outputs, targets)`` -> scalar tensor, e.g. ``nn.CrossEntropyLoss()``.
    batches : iterable of (inputs, targets)
        Iterated once. See the module docstring for device and dtype handling.
    normalize : bool, default False
        Divide by the sum (a ValueError when every score is 0).
    train : bool, default False
        Evaluate in train mode (BatchNorm batch statistics, dropout); the model's mode,
        running statistics and gradients are restored afterwards either way.
    process_group : torch.distributed process group, optional
        Average the gradients over the processes of this group (each process passes its own
        batches; every process must call). A ``DistributedDataParallel`` model averages over
        its own group without it. See :mod:`torch_adapter.distributed`.
    layout : Layout, optional
        See :func:`magnitude`.

    Returns
    -------
    Score
        ``values >= 0``, in the model's dtype, on its device.
    """
    layout = _layout_for(model, layout, layout_options, "snip")
    if is_ddp(model):  # the wrapped module, so that DDP's reducer is not prepared for a backward()
        return _on_layout(snip(model.module, loss_fn, batches, normalize=normalize, train=train,
                               process_group=process_group_of(model, process_group), layout=inner_layout(layout)),
                          layout)
    with _model_preserved(model, train=train):
        leaves = _trainable_leaves(model, layout)
        device, dtype = _device_dtype(leaves)
        total = None
        n_batches = 0
        for inputs, targets in _pairs(batches, device, dtype):
            loss = _check_loss(loss_fn(_forward(model, inputs, "snip"), targets))
            total = _accumulated(total, _grads(loss, leaves))
            n_batches += 1
        if n_batches == 0:
            raise ValueError("snip: batches is empty")
        if process_group is not None:
            total = _owned(total)
            average_over_processes(total, process_group)
        values = _write_products(_flat_buffer(leaves, len(layout)), layout, layout.values(model), total).abs_()
    if normalize:
        values = _snip_normalized(values)
    return _scored(values, layout, "snip", {"normalize": normalize, "train": train, "batches": n_batches},
                   hint=_GRADIENT_HINT)


# ---------------------------------------------------------------------------- GraSP
def grasp(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batches: Iterable[Any],
    *,
    temperature: float = 200.0,
    normalize: bool = False,
    train: bool | None = None,
    absolute: bool = False,
    conventions: str = "package",
    seed: int = 0,
    chunk_size: int | None = None,
    process_group: Any = None,
    layout: Layout | None = None,
    **layout_options,
) -> Score:
    r"""GraSP gradient-signal-preservation score (Wang et al., 2020), signed.

    .. math::

        s = \theta \odot (H g), \qquad
        g = \sum_b \nabla_\theta L_b, \qquad
        H g = \sum_b \nabla_\theta \bigl(\langle \operatorname{stop\_grad}(g), \nabla_\theta L_b\rangle\bigr),

    with :math:`L_b = \text{loss\_fn}(\text{model}(x_b) / T, y_b)`, :math:`T` the
    ``temperature``, and :math:`H` the Hessian of :math:`\sum_b L_b` with respect to the
    prunable weights only (a Hessian-vector product by double backpropagation; the Hessian
    is never formed).

    Sign convention: **keep the largest** :math:`\theta \odot Hg`. The GraSP paper writes
    the score as :math:`-\theta \odot Hg` and removes its largest entries, which is the
    same mask. Scores may be negative; do not take absolute values (and do not feed them to
    ``torch.nn.utils.prune.global_unstructured``, which would).

    ``batches`` is iterated twice (once for ``g``, once for ``Hg``); a one-shot iterator is
    first stored in a list. With one batch (and no ``chunk_size``) :math:`\nabla_\theta L`
    is taken once, with its graph, and serves both: ``g`` is its value and ``Hg`` the
    derivative of :math:`\langle \operatorname{stop\_grad}(g), \nabla_\theta L\rangle` through
    that graph, so the model runs forward and backward once less than in the authors' code,
    with the same numbers (identical scores on ResNet-20, float32 and float64).

    ``absolute=True`` gives :math:`|\theta \odot Hg|` (keep the largest), the magnitude
    variant of Lubana and Dick (ICLR 2021, "A gradient flow framework for analyzing network
    pruning"), which keeps the weights whose removal changes the gradient norm most in
    either direction.

    ``conventions="original"`` follows the GraSP authors' code (github.com/alecwangcq/GraSP,
    ``pruner/GraSP.py``) where it differs from this package's default: the score is taken
    on a copy of the model in train mode (BatchNorm with batch statistics) whose
    ``nn.Linear`` weights are re-initialised with Xavier-normal (gain 1, from
    ``torch.Generator().manual_seed(seed)``, modules in ``named_modules()`` order), so
    :math:`\theta` and :math:`Hg` of those layers are the re-initialised ones, and every
    batch is cut into two halves (the first :math:`\lfloor n/2 \rfloor` samples, then the
    rest) that count as two batches. Their code draws the batch itself (``samples_per_class``
    of every class); here it is the caller's. The default (``"package"``) scores the model as
    it is, in eval mode, on the batches as given, and its masks can differ widely from the
    original's.

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable
        ``loss_fn(outputs, targets)`` -> scalar tensor.
    batches : iterable of (inputs, targets)
    temperature : float, default 200
        Logits are divided by it before the loss (the GraSP paper's T = 200).
    normalize : bool, default False
        Divide by ``|sum(s)| + 1e-10`` (``GRASP_NORMALIZE_EPS``), exactly as the SynFlow
        authors' GraSP implementation does; a sum of exactly 0 divides by 1e-10 (applied
        after ``absolute``).
    train : bool, optional
        Train mode; default False, and True with ``conventions="original"``.
    absolute : bool, default False
        :math:`|\theta \odot Hg|` (Lubana and Dick, 2021).
    conventions : {"package", "original"}, default "package"
        See above.
    seed : int, default 0
        Seed of the Xavier re-initialisation of ``conventions="original"`` (unused otherwise).
    chunk_size : int, optional
        Differentiate each batch in slices of at most this many samples (along dimension 0
        of the inputs and the targets, both tensors), so that the double-backpropagation
        graph of only one slice is held at a time: peak memory falls with the slice, the
        score stays the same up to rounding. A batch of n samples with slices
        :math:`c` of :math:`n_c` samples uses :math:`L_b = \sum_c (n_c / n) L_c`, which is
        exact when ``loss_fn`` is a mean over the samples (``nn.CrossEntropyLoss()``'s default):
        checked on the first slice (a ValueError otherwise, e.g. for a summed loss). Not in
        train mode (batch statistics couple the samples of a batch), so not with
        ``conventions="original"`` either.
    process_group : torch.distributed process group, optional
        Average g, and then Hg, over the processes of this group (see :func:`snip`).
    layout : Layout, optional
        See :func:`magnitude`.

    Returns
    -------
    Score
        Signed values in the model's dtype, on its device.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    check_choice("conventions", conventions, GRASP_CONVENTIONS)
    if chunk_size is not None:
        if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, numbers.Integral):
            raise TypeError(f"chunk_size must be an int >= 1 or None, got {chunk_size!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        if train or (train is None and conventions == "original"):
            raise ValueError("chunk_size: train=True (also implied by conventions=\"original\") evaluates batch "
                             "statistics over the whole batch, which slices would change; use train=False or "
                             "chunk_size=None")
    layout = _layout_for(model, layout, layout_options, "grasp")
    options = {"absolute": absolute, "conventions": conventions, "seed": seed}
    if is_ddp(model):  # the wrapped module, so that DDP's reducer is not prepared for a backward()
        return _on_layout(grasp(model.module, loss_fn, batches, temperature=temperature, normalize=normalize,
                                train=train, chunk_size=chunk_size, process_group=process_group_of(model, process_group),
                                layout=inner_layout(layout), **options), layout)
    train = (conventions == "original") if train is None else train
    if not isinstance(batches, (list, tuple)):
        batches = list(batches)
    if len(batches) == 0:
        raise ValueError("grasp: batches is empty")
    if conventions == "original":
        scoring, batches = _grasp_original_copy(model, seed), _halves(batches)
        score = grasp(scoring, loss_fn, batches, temperature=temperature, normalize=normalize, train=train,
                      absolute=absolute, process_group=process_group, layout=layout)
        return Score(score.values, layout, "grasp", {**score.options, **options})
    with _model_preserved(model, train=train), _twice_differentiable(model):
        leaves = _trainable_leaves(model, layout)
        device, dtype = _device_dtype(leaves)
        # one loss (one batch, not in slices): g and its graph from one differentiation, kept for
        # H g; else g summed over the losses first, and each differentiated again for H g
        kept = []
        gradient = None
        if len(batches) == 1 and chunk_size is None:
            loss = next(iter(_grasp_losses(model, loss_fn, batches, device, dtype, temperature, chunk_size)))
            kept.append(_grads(loss, leaves, create_graph=True))
            del loss
            # averaged in place over the processes: a copy, not the graph's own tensors
            gradient = [g.detach().clone() if process_group is not None else g.detach() for g in kept[0]]
        else:
            for loss in _grasp_losses(model, loss_fn, batches, device, dtype, temperature, chunk_size):
                gradient = _accumulated(gradient, _grads(loss, leaves))
        if process_group is not None:
            gradient = _owned(gradient)
            average_over_processes(gradient, process_group)
        hessian_gradient = None
        for grads in _differentiated(kept, lambda: _grasp_losses(model, loss_fn, batches, device, dtype, temperature,
                                                                 chunk_size), leaves):
            inner = sum((g0 * g).sum() for g0, g in zip(gradient, grads))
            del grads
            if not isinstance(inner, torch.Tensor) or not inner.requires_grad:
                continue  # the loss does not depend on the prunable weights twice: H g = 0
            hessian_gradient = _accumulated(hessian_gradient, _second_derivative(inner, leaves))
            del inner
        del gradient
        if hessian_gradient is None:
            hessian_gradient = [torch.zeros_like(p) for p in leaves]
        if process_group is not None:
            hessian_gradient = _owned(hessian_gradient)
            average_over_processes(hessian_gradient, process_group)
        values = _write_products(_flat_buffer(leaves, len(layout)), layout, layout.values(model), hessian_gradient)
        del hessian_gradient
    if absolute:
        values = values.abs()
    if normalize:
        values = _grasp_normalized(values)
    return _scored(values, layout, "grasp",
                   {"temperature": temperature, "normalize": normalize, "train": train, "batches": len(batches),
                    "chunk_size": chunk_size, **options}, hint=_GRADIENT_HINT)


#: ``conventions`` of :func:`grasp`: this package's, or the GraSP authors' code's.
GRASP_CONVENTIONS = ("package", "original")


def _grasp_original_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` weight re-initialised, Xavier-normal,
    from one generator seeded with ``seed`` (the GraSP authors' scoring copy)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    copied = copy_model(model)
    generator = None
    with torch.no_grad():
        for module in copied.modules():
            if isinstance(module, nn.Linear):
                weight = trainable_tensor(module, "weight")
                if generator is None:
                    generator = torch.Generator(device=weight.device).manual_seed(int(seed))
                nn.init.xavier_normal_(weight, generator=generator)
    return copied


def _halves(batches: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Every (inputs, targets) batch as two: its first half, then the rest."""
    halves = []
    for i, batch in enumerate(batches):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise TypeError(f"batches must yield (inputs, targets) pairs; batch {i} is a {type(batch).__name__}")
        inputs, targets = batch
        size = inputs.shape[0]
        if size < 2:
            raise ValueError(f'grasp: conventions="original" cuts every batch in two halves; batch {i} has {size} '
                             f"sample")
        halves += [(inputs[:size // 2], targets[:size // 2]), (inputs[size // 2:], targets[size // 2:])]
    return halves


def _differentiated(kept: list, losses: Callable[[], Iterator[torch.Tensor]],
                    leaves: Sequence[torch.Tensor]) -> Iterator[tuple]:
    """The first derivatives, with their graphs, of each loss of ``losses()``; or, where
    ``kept`` holds one already taken (a single loss), that one, handed over (the list is
    emptied, so that the graph lives no longer than the caller's use of it)."""
    if kept:
        yield kept.pop()
        return
    for loss in losses():
        yield _grads(loss, leaves, create_graph=True)


def _grasp_losses(model: nn.Module, loss_fn: Callable, batches: Sequence[Any], device: torch.device,
                  dtype: torch.dtype, temperature: float, chunk_size: int | None) -> Iterator[torch.Tensor]:
    r"""The losses :math:`L_b` of every batch, or with ``chunk_size`` the weighted slice losses
    :math:`(n_c / n) L_c` whose sum over a batch's slices is its :math:`L_b` (see :func:`grasp`)."""
    checked = False
    for inputs, targets in _pairs(batches, device, dtype):
        if chunk_size is None:
            yield _check_loss(loss_fn(_forward(model, inputs, "grasp") / temperature, targets))
            continue
        if not (isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor)
                and inputs.dim() > 0 and targets.dim() > 0 and inputs.shape[0] == targets.shape[0]):
            raise TypeError("chunk_size slices the inputs and targets along dimension 0: both must be tensors "
                            "with one row per sample")
        size = inputs.shape[0]
        for lo in range(0, size, chunk_size):
            logits = _forward(model, inputs[lo:lo + chunk_size], "grasp") / temperature
            part = targets[lo:lo + chunk_size]
            loss = _check_loss(loss_fn(logits, part))
            if not checked:
                _check_mean_loss(loss_fn, logits.detach(), part, loss.detach())
                checked = True
            yield loss * (part.shape[0] / size)


def _check_mean_loss(loss_fn: Callable, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
    """Refuse a loss that is not the mean of per-sample losses (slicing would change it)."""
    n = logits.shape[0]
    if n < 2:
        return
    half = n // 2
    with torch.no_grad():
        parts = (half * loss_fn(logits[:half], targets[:half]) + (n - half) * loss_fn(logits[half:], targets[half:])) / n
    tolerance = 1e-4 if loss.dtype in (torch.float16, torch.bfloat16, torch.float32) else 1e-9
    if not torch.isclose(parts.reshape(()), loss, rtol=tolerance, atol=tolerance * 1e-3):
        raise ValueError(f"chunk_size={n}: loss_fn is not a mean over the samples (its value on {n} samples is "
                         f"{float(loss):.6g}, the mean of its values on two halves {float(parts):.6g}), so slices "
                         f"would change the score; use chunk_size=None or a mean-reduced loss")


def _hardsigmoid(x: torch.Tensor) -> torch.Tensor:
    """``nn.Hardsigmoid``'s values, ``relu6(x + 3) / 6``, with a second derivative (0 a.e.)."""
    return torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


@contextlib.contextmanager
def _twice_differentiable(model: nn.Module) -> Iterator[None]:
    """Make the model twice differentiable for the block, computing the same function.

    ``nn.Hardsigmoid`` modules (MobileNetV3's squeeze-excitation gates) run through
    :func:`_hardsigmoid`: torch has no derivative of ``hardsigmoid_backward``, which a
    Hessian-vector product needs. Attention (``scaled_dot_product_attention``, used by
    ``nn.MultiheadAttention``) runs on its math backend: the fused flash and
    memory-efficient kernels have no double backward. Restored after."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    swapped = [module for module in model.modules() if isinstance(module, nn.Hardsigmoid)]
    for module in swapped:
        module.forward = _hardsigmoid
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        for module in swapped:
            del module.forward


def _second_derivative(inner: torch.Tensor, leaves: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    try:
        return _grads(inner, leaves)
    except RuntimeError as exc:
        if "is not implemented" not in str(exc):
            raise
        raise NotImplementedError(
            f"grasp needs second derivatives through every operation of the model, and torch has none for one "
            f"it uses ({exc}); nn.Hardsigmoid modules and attention are handled, but this operation is not: "
            f"replace it in the model by a twice-differentiable equivalent (e.g. hardsigmoid(x) = "
            f"clamp(x + 3, 0, 6) / 6 for a functional hardsigmoid)"
        ) from exc


# ---------------------------------------------------------------------------- SynFlow
def _rounds_checked(iterations: Any, final_density: Any) -> int:
    """``iterations`` as an int >= 1, with ``final_density`` a number in (0, 1] when it is > 1
    (the iterative variants of :func:`synflow`, :func:`synflow_l2` and :func:`ntk_sap`)."""
    if isinstance(iterations, (bool, np.bool_)) or not isinstance(iterations, numbers.Integral):
        raise TypeError(f"iterations must be an int >= 1, got {iterations!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if iterations > 1:
        if final_density is not None and (isinstance(final_density, (bool, np.bool_))
                                          or not isinstance(final_density, numbers.Real)):
            raise TypeError(f"final_density must be a number in (0, 1] when iterations > 1, got {final_density!r}")
        if final_density is None or not 0 < final_density <= 1:
            raise ValueError(f"final_density must be in (0, 1] when iterations > 1, got {final_density!r}")
    return int(iterations)


def synflow(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    dtype: torch.dtype | None = torch.float64,
    iterations: int = 1,
    final_density: float | None = None,
    kept_count_convention: str = "round",
    train: bool = False,
    progress: bool = False,
    layout: Layout | None = None,
    **layout_options,
) -> Score:
    r"""SynFlow synaptic flow score (Tanaka et al., 2020), data-free.

    On a deep copy of the model (the caller's model is never touched) every floating-point
    parameter *and buffer* is replaced by its absolute value, the copy is converted to
    ``dtype``, and an all-ones input of shape ``(1, *input_shape)`` is fed through it:

    .. math::

        R = \mathbf 1^\top f_{|\theta|}(\mathbf 1), \qquad
        s = \Bigl|\theta \odot \frac{\partial R}{\partial \theta}\Bigr| \;\ge 0 .

    For a bias-free ReLU network, :math:`R = \mathbf 1^\top |W_L| \cdots |W_1| \mathbf 1`.

    Iterative variant (``iterations = n > 1``, the SynFlow paper's algorithm): in round
    r = 1..n the scores are computed with the weights pruned so far set to 0, and the top
    ``final_density ** (r / n)`` fraction (exponential schedule) is kept for the next round.
    The scores of round n are returned; weights pruned in earlier rounds score exactly 0,
    so the top ``final_density`` fraction of the returned scores is SynFlow's final mask.
    This is :func:`torch_adapter.iterative_prune` with this score; call that directly for
    the mask, the per-round kept counts and timings, or a linear schedule.

    Parameters
    ----------
    model : nn.Module
    input_shape : sequence of int
        Shape of *one* input sample, without the batch dimension (e.g. ``(3, 32, 32)``, or
        ``(784,)``: a bare int is a TypeError). SynFlow's input is floating point, so a
        model that starts with an embedding (integer ids) cannot be scored.
    dtype : torch.dtype or None, default torch.float64
        Compute dtype of the copy; float32 underflows to all-zero scores on deep networks.
        ``None`` keeps the model's dtype.
    iterations : int, default 1
        An int >= 1 (2.7 is a TypeError, not 2).
    final_density : float in (0, 1], required when ``iterations > 1``
        Fraction of the prunable elements kept after the last round (unused for one round).
    kept_count_convention : {"round", "reference"}, default "round"
        How each round's density becomes a kept count (iterative variant only), see
        :func:`torch_adapter.topk.kept_count`; ``"reference"`` reproduces the SynFlow
        authors' masks.
    train : bool, default False
        Run the copy in train mode (BatchNorm then uses batch statistics of the ones input).
    progress : bool, default False
        Show a tqdm bar over the rounds (when tqdm is installed).
    layout : Layout, optional
        See :func:`magnitude`.

    Returns
    -------
    Score
        ``values >= 0`` in ``dtype``, on the model's device.

    Warns
    -----
    SynFlowUnderflowWarning
        When every score is 0 or some are not finite, with the likely cause.
    """
    layout = _layout_for(model, layout, layout_options, "synflow")
    if is_ddp(model):  # data-free and the weights are the same on every process: the wrapped module
        return _on_layout(synflow(model.module, input_shape, dtype=dtype, iterations=iterations,
                                  final_density=final_density, kept_count_convention=kept_count_convention,
                                  train=train, progress=progress, layout=inner_layout(layout)), layout)
    iterations = _rounds_checked(iterations, final_density)
    check_choice("kept_count_convention", kept_count_convention, KEPT_COUNTS)
    shape = _sample_shape(input_shape)
    dtype = _device_dtype(layout.values(model))[1] if dtype is None else dtype
    if iterations == 1:
        values = _synflow_values(model, layout, shape, dtype, train)
    else:
        values = iterative_prune(model, SynFlowRounds(shape, dtype=dtype, train=train), density=float(final_density),
                                 rounds=iterations,
                                 kept_count_convention=kept_count_convention, layout=layout,
                                 progress=progress).scores[0].values
    options = {"dtype": str(dtype), "iterations": iterations, "final_density": final_density, "train": train,
               "kept_count_convention": kept_count_convention}
    problem = _synflow_problem(values, dtype)
    if problem:
        warnings.warn(problem, SynFlowUnderflowWarning, stacklevel=2)
        return Score(values, layout, "synflow", options)
    return _scored(values, layout, "synflow", options, hint="check the model's initialisation")


def _sample_shape(input_shape: Any) -> tuple[int, ...]:
    valid = (isinstance(input_shape, Sequence) and not isinstance(input_shape, str)
             and all(isinstance(n, numbers.Integral) and not isinstance(n, (bool, np.bool_)) for n in input_shape))
    if not valid:
        raise TypeError(f"input_shape must be the shape of one sample as a sequence of ints, without the batch "
                        f"dimension, e.g. (784,) or (3, 32, 32); got {input_shape!r}")
    shape = tuple(int(n) for n in input_shape)
    if any(n < 1 for n in shape):
        raise ValueError(f"input_shape must hold positive sizes, got {shape}")
    return shape


def _synflow_problem(values: torch.Tensor, dtype: torch.dtype) -> str:
    """Why SynFlow scores are unusable (all zero, or not finite), or "" when they are fine."""
    float64 = dtype == torch.float64
    if not bool(torch.isfinite(values).all()):
        advice = ("scale the weights down (each layer's scale multiplies every score)" if float64
                  else "use dtype=torch.float64")
        return f"synflow scores in {dtype} are not finite: the product of the absolute weights overflowed; {advice}"
    if not bool((values > 0).any()):
        advice = ("in float64 this is rarely underflow: no path from input to output survives in the "
                  "absolute-valued network (a layer initialised to zero, or pruned entirely, blocks every path)"
                  if float64 else "they underflowed; use dtype=torch.float64")
        return f"synflow scores in {dtype} are all zero: {advice}"
    return ""


def _absolute_copy(model: nn.Module, dtype: torch.dtype, train: bool) -> nn.Module:
    """A deep copy of ``model`` in ``dtype`` with every floating-point parameter and buffer
    replaced by its absolute value, in train mode if ``train``."""
    with torch.no_grad():
        linear = copy_model(model)
        linear.to(dtype=dtype)
        for tensor in linear.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    return linear.train(train)


def _synflow_pass(linear: nn.Module, leaves: Sequence[torch.Tensor], ones: torch.Tensor, layout: Layout,
                  buffer: torch.Tensor) -> torch.Tensor:
    r"""One forward and backward pass of ``ones`` through the absolute-valued ``linear``:
    :math:`|\theta \odot \partial R / \partial \theta|` written into ``buffer``, returned."""
    with torch.enable_grad():
        output = _forward(linear, ones, "synflow (its input is all ones, a float)")
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"synflow needs a model that returns one tensor, got {type(output).__name__}")
        grads = _grads(output.sum(), leaves)
    del output
    return _write_products(buffer, layout, layout.values(linear), grads).abs_()


def _synflow_values(model: nn.Module, layout: Layout, shape: tuple[int, ...], dtype: torch.dtype,
                    train: bool) -> torch.Tensor:
    """One-shot SynFlow scores (flat, detached) on an absolute-valued copy of ``model``."""
    device = _device_dtype(layout.values(model))[0]
    linear = _absolute_copy(model, dtype, train)
    ones = torch.ones((1, *shape), device=device, dtype=dtype)
    with torch.enable_grad():
        leaves = _trainable_leaves(linear, layout)
    return _synflow_pass(linear, leaves, ones, layout, torch.empty(len(layout), device=device, dtype=dtype))


# ---------------------------------------------------------------------------- 2026 baselines
def synflow_l2(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    dtype: torch.dtype | None = torch.float64,
    iterations: int = 1,
    final_density: float | None = None,
    kept_count_convention: str = "round",
    train: bool = False,
    progress: bool = False,
    layout: Layout | None = None,
    **layout_options,
) -> Score:
    r"""SynFlow-L2 (Gebhart, Saxena and Schrater, 2021, "A unified paths perspective for
    pruning at initialization"), data-free: SynFlow on the squared weights.

    Every floating-point parameter and buffer is replaced by its square (where SynFlow takes
    its absolute value), and with an all-ones input

    .. math::

        R_2 = \mathbf 1^\top f_{\theta^2}(\mathbf 1), \qquad
        s = \theta^2 \odot \frac{\partial R_2}{\partial (\theta^2)}
          = \tfrac12\, \theta \odot \frac{\partial R_2}{\partial \theta} \;\ge 0 .

    For a bias-free ReLU network :math:`R_2 = \sum_{\text{paths } p} \prod_{w \in p} w^2`, the
    trace of the paper's Path Kernel, and :math:`s_j` is the part of it carried by the paths
    through weight j (the L2 path norm in place of SynFlow's L1). Computed as
    :func:`synflow` on a copy of the model with squared parameters and buffers, so every
    option (float64, the iterative variant with ``iterations`` and ``final_density``, the
    kept-count convention) is SynFlow's; the caller's model is not touched. (One public
    reimplementation multiplies :math:`\partial R_2/\partial(\theta^2)` by
    :math:`|\theta|` instead of :math:`\theta^2`, which ranks differently.)

    Parameters
    ----------
    model, input_shape, dtype, iterations, final_density, kept_count_convention, train, progress, layout
        As in :func:`synflow`.

    Returns
    -------
    Score
        ``values >= 0`` in ``dtype``, named ``"synflow_l2"``.
    """
    layout = _layout_for(model, layout, layout_options, "synflow_l2")
    if is_ddp(model):  # data-free and the weights are the same on every process: the wrapped module
        return _on_layout(synflow_l2(model.module, input_shape, dtype=dtype, iterations=iterations,
                                     final_density=final_density, kept_count_convention=kept_count_convention,
                                     train=train, progress=progress, layout=inner_layout(layout)), layout)
    squared = copy_model(model)
    with torch.no_grad():
        for tensor in squared.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(tensor)
    score = synflow(squared, input_shape, dtype=dtype, iterations=iterations, final_density=final_density,
                    kept_count_convention=kept_count_convention, train=train, progress=progress, layout=layout)
    return Score(score.values, layout, "synflow_l2", score.options)


def _reset_parameters(model: nn.Module) -> None:
    """Every submodule's ``reset_parameters()`` (PyTorch's default initialisation)."""
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def _batch_statistics(model: nn.Module, inputs: torch.Tensor) -> None:
    """BatchNorm running statistics set to those of ``inputs`` (one train-mode pass with momentum 1)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(inputs)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def ntk_sap(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batch_size: int = 100,
    rounds: int = 1,
    epsilon: float = 0.01,
    seed: int = 0,
    init: Callable[[nn.Module], None] | None = None,
    dtype: torch.dtype | None = None,
    iterations: int = 1,
    final_density: float | None = None,
    kept_count_convention: str = "round",
    layout: Layout | None = None,
    **layout_options,
) -> Score:
    r"""NTK-SAP (Wang, Li, Kolar and Song, ICLR 2023, "NTK-SAP: improving neural network
    pruning by aligning training dynamics"), data-free.

    The saliency of a mask :math:`m` is the change of the network's output under a small
    random perturbation of its weights, a finite-difference estimate of the NTK's trace
    (its nuclear norm); a weight scores the derivative of that change with respect to its
    mask entry, averaged over fresh initialisations and random inputs:

    .. math::

        J_r(m) = \sum_{i=1}^{B} \bigl\| f(x_i; \theta_r \odot m)
                 - f(x_i; (\theta_r + \epsilon\,\delta_r) \odot m) \bigr\|_2^2, \qquad
        s = \Bigl| \sum_{r=1}^{R} \frac{\partial J_r}{\partial m} \Bigr| \odot [m \ne 0],

    with, for each of the R ``rounds``, :math:`\theta_r` a fresh initialisation of a copy of
    the model, :math:`x_i \sim \mathcal N(0, I)` a batch of B = ``batch_size`` random inputs
    of shape ``input_shape``, and :math:`\delta_r \sim \mathcal N(0, I)` of the weights'
    shape. :math:`\partial J_r/\partial m_j = \theta_{r,j}\, \partial J_r/\partial w_j +
    \theta'_{r,j}\, \partial J_r/\partial w'_j` sums over the two networks, which share the
    mask. Both run in eval mode with the BatchNorm statistics of the batch (one train-mode
    pass first, as the authors' code does with momentum 1). The mask :math:`m` is the
    model's (:func:`torch_adapter.current_mask`) and its zero weights (those pruned by an
    iterative loop): those elements stay 0 after each re-initialisation and score 0.

    Read from the authors' code (github.com/YiteWang/NTK-SAP, ``Pruners/pruners.py``,
    class ``NTKSAP``): the defaults are theirs (:math:`\epsilon = 0.01`, R = 1; their scripts
    use R = 5 and 20 iterative rounds), and so is the order of the random draws per round
    (re-initialisation, inputs, perturbation, from the global generator, here forked and
    seeded with ``seed`` so that the caller's random state is left alone). Their code
    re-initialises with the model's own ``_initialize_weights``; here ``init`` (default:
    every submodule's ``reset_parameters()``), called on the copy. Their perturbed network
    keeps the biases and BatchNorm parameters of the model before re-initialisation; here it
    is the re-initialised copy with perturbed prunable weights (the same when ``init`` sets
    those to the values they had, as Kaiming-style initialisations with constant BatchNorm
    parameters and untouched biases do).

    Parameters
    ----------
    model : nn.Module
        Not touched (scored on a copy).
    input_shape : sequence of int
        Shape of one input sample, without the batch dimension.
    batch_size : int, default 100
        B, the random inputs per round (the authors' 10 samples per class of CIFAR-10).
    rounds : int, default 1
        R, the re-initialisations.
    epsilon : float, default 0.01
        Scale of the weight perturbation.
    seed : int, default 0
    init : callable, optional
        ``init(copy)`` re-initialises the copy in place.
    dtype : torch.dtype, optional
        Compute dtype (default the model's).
    iterations, final_density, kept_count_convention
        The iterative variant, as in :func:`synflow` (round r draws with ``seed + r``).
    layout : Layout, optional
        See :func:`magnitude`.

    Returns
    -------
    Score
        ``values >= 0``, named ``"ntk_sap"``.
    """
    layout = _layout_for(model, layout, layout_options, "ntk_sap")
    if is_ddp(model):  # data-free and seeded: the same on every process
        return _on_layout(ntk_sap(model.module, input_shape, batch_size=batch_size, rounds=rounds, epsilon=epsilon,
                                  seed=seed, init=init, dtype=dtype, iterations=iterations,
                                  final_density=final_density, kept_count_convention=kept_count_convention,
                                  layout=inner_layout(layout)), layout)
    shape = _sample_shape(input_shape)
    for name, value in (("batch_size", batch_size), ("rounds", rounds), ("seed", seed)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if batch_size < 1 or rounds < 1:
        raise ValueError(f"batch_size and rounds must be >= 1, got batch_size={batch_size}, rounds={rounds}")
    if not (isinstance(epsilon, numbers.Real) and epsilon > 0):
        raise ValueError(f"epsilon must be a number > 0, got {epsilon!r}")
    iterations = _rounds_checked(iterations, final_density)
    check_choice("kept_count_convention", kept_count_convention, KEPT_COUNTS)
    init = _reset_parameters if init is None else init
    dtype = _device_dtype(layout.values(model))[1] if dtype is None else dtype
    options = {"batch_size": int(batch_size), "rounds": int(rounds), "epsilon": float(epsilon), "seed": int(seed),
               "dtype": str(dtype), "iterations": iterations, "final_density": final_density,
               "kept_count_convention": kept_count_convention}

    def one_shot(scored: nn.Module, round_seed: int) -> torch.Tensor:
        return _ntk_sap_values(scored, layout, shape, int(batch_size), int(rounds), float(epsilon), round_seed,
                               init, dtype)

    if iterations == 1:
        values = one_shot(model, int(seed))
    else:
        seeds = iter(range(int(seed), int(seed) + iterations))
        values = iterative_prune(model, lambda masked: Score(one_shot(masked, next(seeds)), layout, "ntk_sap"),
                                 density=float(final_density), rounds=iterations,
                                 kept_count_convention=kept_count_convention, layout=layout).scores[0].values
    return _scored(values, layout, "ntk_sap", options, hint=_GRADIENT_HINT)


def _ntk_sap_values(model: nn.Module, layout: Layout, shape: tuple[int, ...], batch_size: int, rounds: int,
                    epsilon: float, seed: int, init: Callable[[nn.Module], None], dtype: torch.dtype) -> torch.Tensor:
    """One-shot NTK-SAP scores (flat, detached) on a copy of ``model``."""
    device = _device_dtype(layout.values(model))[0]
    keep = current_mask(model, layout).to(device) & (layout.flatten(layout.values(model)) != 0)
    network = copy_model(model)
    make_permanent(network, layout)  # plain parameters: the copy's weights are re-initialised below
    network.to(dtype=dtype)
    keep_parts = layout.split(keep)
    total = [torch.zeros(entry.shape, dtype=dtype, device=device) for entry in layout.entries]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        torch.manual_seed(seed)
        for _ in range(rounds):
            with torch.no_grad():
                init(network)
                for leaf, part in zip(layout.trainable(network), keep_parts):
                    leaf.mul_(part)
            inputs = torch.randn((batch_size, *shape), dtype=dtype, device=device)
            _batch_statistics(network, inputs)
            network.eval()
            perturbed = copy.deepcopy(network)
            with torch.no_grad():
                for leaf, part in zip(layout.trainable(perturbed), keep_parts):
                    leaf.add_(epsilon * torch.randn_like(leaf)).mul_(part)
            leaves = _trainable_leaves(network, layout)
            perturbed_leaves = _trainable_leaves(perturbed, layout)
            difference = _forward(network, inputs, "ntk_sap") - _forward(perturbed, inputs, "ntk_sap")
            grads = _grads(difference.pow(2).sum(), leaves + perturbed_leaves)
            with torch.no_grad():
                values = layout.values(network) + layout.values(perturbed)
                for i, acc in enumerate(total):
                    acc.add_(values[i] * grads[i] + values[len(total) + i] * grads[len(total) + i])
    with torch.no_grad():
        return (layout.flatten(total).abs() * keep).detach()


def prospr(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batches: Iterable[Any],
    *,
    steps: int = 3,
    lr: float = 0.1,
    momentum: float = 0.0,
    new_data: bool = False,
    train: bool = True,
    layout: Layout | None = None,
    **layout_options,
) -> Score:
    r"""ProsPr, prospect pruning (Alizadeh, Tailor, Zintgraf, van Amersfoort, Farquhar, Lane
    and Gal, ICLR 2022, "Prospect pruning: finding trainable weights at initialization using
    meta-gradients").

    A weight scores how much the loss *after a few training steps* depends on its mask
    entry. With :math:`w_0 = \theta \odot m` (:math:`m = \mathbf 1` on the kept elements)
    and the other parameters :math:`\phi_0` (biases, normalisation) as they are, M steps of
    SGD on the masked network

    .. math::

        (w, \phi)_{t+1} = (w, \phi)_t - \alpha\, b_t, \qquad
        b_t = \nabla_{(w, \phi)} L_t\bigl((w, \phi)_t\bigr) + \mu\, b_{t-1}, \qquad
        s = \Bigl| \frac{\partial L_M\bigl((w, \phi)_M\bigr)}{\partial m} \Bigr|
          = \Bigl| \theta \odot \frac{\partial L_M}{\partial w_0} \Bigr| ,

    differentiated through every step (second order, the authors' ``"full"`` meta-gradient).
    :math:`L_t` is ``loss_fn`` on batch t: the first batch for every step and for the final
    loss (the authors' default), or, with ``new_data=True``, batch t for step t and batch M
    for the final loss (cycling through ``batches``). Elements already pruned (mask or zero
    weight) stay 0 through the steps, as in training the pruned network, and score 0.

    Read from the authors' code (github.com/mil-ad/prospr, ``prospr/prospr.py``): the
    defaults are theirs (M = 3, :math:`\alpha = 0.1`, :math:`\mu = 0`, train mode, their
    cross-entropy is ``loss_fn`` here). With momentum their first buffer is detached from the
    graph; here it is not.

    Parameters
    ----------
    model : nn.Module
        Not touched (scored on a copy whose parameters are plain tensors).
    loss_fn : callable
        ``loss_fn(outputs, targets)`` -> scalar tensor.
    batches : iterable of (inputs, targets)
    steps : int, default 3
        M >= 1.
    lr, momentum : float
        :math:`\alpha > 0` and :math:`\mu \ge 0` of the inner SGD.
    new_data : bool, default False
    train : bool, default True
        Train mode for the steps (the authors').
    layout : Layout, optional
        See :func:`magnitude`.

    Returns
    -------
    Score
        ``values >= 0``, named ``"prospr"``.
    """
    from torch.func import functional_call

    layout = _layout_for(model, layout, layout_options, "prospr")
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if not (isinstance(lr, numbers.Real) and lr > 0) or not (isinstance(momentum, numbers.Real) and momentum >= 0):
        raise ValueError(f"lr must be > 0 and momentum >= 0, got lr={lr!r}, momentum={momentum!r}")
    batches = list(batches) if not isinstance(batches, (list, tuple)) else batches
    if not batches:
        raise ValueError("prospr: batches is empty")
    if is_ddp(model):
        raise ValueError("prospr averages no gradients over processes (its steps are differentiated through): score "
                         "ddp.module with the same batches on every process, then prune the DDP model")
    device, dtype = _device_dtype(layout.values(model))
    keep = current_mask(model, layout).to(device) & (layout.flatten(layout.values(model)) != 0)
    network = copy_model(model)
    make_permanent(network, layout)
    network.train(train)
    pairs = list(_pairs(batches, device, dtype))
    keep_parts = [part.to(dtype) for part in layout.split(keep)]
    masks = [torch.ones(entry.shape, dtype=dtype, device=device, requires_grad=True) for entry in layout.entries]
    names = {entry.name: i for i, entry in enumerate(layout.entries)}
    with torch.enable_grad():
        fast = {}
        for name, parameter in network.named_parameters():
            start = parameter.detach()
            fast[name] = (start * keep_parts[names[name]] * masks[names[name]] if name in names
                          else start.clone().requires_grad_(True))
        buffers: dict[str, torch.Tensor] = {}
        for step in range(steps):
            inputs, targets = pairs[step % len(pairs)] if new_data else pairs[0]
            loss = _check_loss(loss_fn(functional_call(network, fast, (inputs,)), targets))
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True, allow_unused=True)
            for (name, value), grad in zip(list(fast.items()), grads):
                if grad is None:
                    continue
                if momentum:
                    grad = grad + momentum * buffers[name] if name in buffers else grad
                    buffers[name] = grad
                fast[name] = value - lr * grad if name not in names else (value - lr * grad) * keep_parts[names[name]]
        inputs, targets = pairs[steps % len(pairs)] if new_data else pairs[0]
        loss = _check_loss(loss_fn(functional_call(network, fast, (inputs,)), targets))
        meta = _grads(loss, masks)
    values = layout.flatten([g.detach().abs() for g in meta]) * keep
    return _scored(values, layout, "prospr", {"steps": int(steps), "lr": float(lr), "momentum": float(momentum),
                                               "new_data": new_data, "train": train, "batches": len(pairs)},
                   hint=_GRADIENT_HINT)


# ---------------------------------------------------------------------------- SynFlow, round by round
class SynFlowRounds:
    r"""SynFlow as a ``score_fn`` of :func:`iterative_prune`, scored incrementally.

    Called on a model it returns :func:`torch_adapter.scores.synflow` of it (one shot). In
    :func:`iterative_prune` the loop instead opens one session per run: the absolute-valued
    copy in ``dtype`` is made once, the entries pruned in a round are set to 0 in it in place,
    and each round is one forward and backward pass of the ones input through it, with
    :math:`|\theta \odot \partial R / \partial \theta|` written into one preallocated
    flat buffer (the scores returned are that buffer: each round overwrites them). The scores
    equal those of ``scores.synflow`` on the masked model, value for value.

    Parameters
    ----------
    input_shape : sequence of int
        One sample's shape, without the batch dimension.
    dtype : torch.dtype or None, default torch.float64
        Compute dtype; ``None`` keeps the model's.
    train : bool, default False
        Run the copy in train mode.
    """

    def __init__(self, input_shape: Sequence[int], *, dtype: torch.dtype | None = torch.float64, train: bool = False):
        self.shape = _sample_shape(input_shape)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating-point torch.dtype or None, got {dtype!r}")
        if not isinstance(train, bool):
            raise TypeError(f"train must be a bool, got {train!r}")
        self.dtype, self.train = dtype, train

    def __call__(self, model: nn.Module) -> Score:
        return synflow(model, self.shape, dtype=self.dtype, train=self.train)

    def _open_rounds(self, model: nn.Module, layout: Layout) -> "_SynFlowSession":
        return _SynFlowSession(model, layout, self.shape, self.dtype, self.train)


class _SynFlowSession:
    r"""One run's absolute-valued copy, its ones input and the flat score buffer.

    ``zero_pruned``: a pruned weight is 0 in the copy, so its score
    :math:`|0 \cdot \partial R / \partial \theta|` is 0 (NaN where the gradient is not
    finite, which the loop ignores among the pruned), and no score is below 0 (absolute values):
    the loop's selection reads the kept scores only."""

    zero_pruned = True

    def __init__(self, model: nn.Module, layout: Layout, shape: tuple[int, ...], dtype: torch.dtype | None,
                 train: bool):
        device, model_dtype = layout.values(model)[0].device, layout.values(model)[0].dtype
        self.dtype = model_dtype if dtype is None else dtype
        self.copy = _absolute_copy(model, self.dtype, train)
        self.layout = layout
        self.leaves = _trainable_leaves(self.copy, layout)
        self.ones = torch.ones((1, *shape), device=device, dtype=self.dtype)
        self.buffer = torch.empty(len(layout), device=device, dtype=self.dtype)
        self.options = {"dtype": str(self.dtype), "train": train}

    def prune(self, dropped: np.ndarray) -> None:
        zero_entries(self.leaves, self.layout, dropped)

    def scores(self) -> tuple[Score, ...]:
        _synflow_pass(self.copy, self.leaves, self.ones, self.layout, self.buffer)
        return (Score(self.buffer, self.layout, "synflow", self.options),)

    def close(self) -> None:
        del self.copy, self.leaves
