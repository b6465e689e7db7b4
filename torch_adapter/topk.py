r"""Plain top-k masks, global or per layer, without the LP.

With one score and no floors, COPS's answer is the top-k of the score; this module gives
that mask directly, in O(D) (one selection), and its layer-wise ("local") variant.

Kept counts
-----------
A density d in (0, 1] of N elements becomes a kept count k by one of two conventions:

``"round"`` (default, as :func:`copslp.solve` does)
    :math:`k = \max(1, \operatorname{round}(d N))`, Python's ``round`` (half to even).
``"reference"`` (the SynFlow authors' code, ``Pruner._global_mask`` / ``_local_mask``)
    :math:`k = N - \lfloor (1 - d) N \rfloor`: the reference removes
    :math:`\lfloor (1 - d) N \rfloor` elements (``int((1.0 - sparsity) * N)``, evaluated in
    float64 exactly as written). In floating point :math:`1 - d` is rounded, so this count
    can differ from ``round(d * N)`` by one, and an iterative loop compounds the difference
    over its rounds.

Ties
----
``"round"``: elements strictly above the k-th largest value are kept; among the elements
equal to it, those with the lowest flat indices fill the remaining slots. The choice is
deterministic and the mask has exactly k elements.

``"reference"``: the SynFlow authors' rule as well as their count. With
:math:`r = N - k = \lfloor (1 - d) N \rfloor` elements to remove, the threshold
:math:`t` is the r-th smallest of all N scores (``torch.kthvalue(scores, r)``, the elements
pruned in earlier rounds included), and every element whose score is
:math:`\le t` is pruned (``torch.where(score <= threshold, 0, 1)``); for r = 0 nothing is
pruned. When scores tie at the threshold the mask keeps *fewer* than k elements. Among the
candidates (``candidates=``, the elements kept by earlier rounds) only those above
:math:`t` are kept; the reference rebuilds its mask from the scores alone, which is the same
mask when the earlier-pruned elements score at most :math:`t`, as SynFlow's score 0 does.
With continuous scores the two rules agree.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ._checks import check_choice
from .kept_counts import KEPT_COUNTS, SCOPES, kept_count
from .layout import Layout
from .flat_score import Score

__all__ = ["KEPT_COUNTS", "SCOPES", "LAYER_DISTRIBUTIONS", "kept_count", "top_k_mask", "layer_budgets"]

def _top_k_of(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k largest entries; ties at the k-th level go to the lowest indices.

    One selection (``np.partition``), one comparison and one count over ``values``; the
    entries equal to the k-th level are looked up only when more than k reach it. NaN is
    refused: ``np.partition`` puts NaNs last, so if there is one, one lies among the k
    largest slots, which are checked.
    """
    size = values.shape[0]
    if k == 0:
        return np.zeros(size, dtype=bool)
    part = np.partition(values, size - k)
    if np.isnan(part[size - k:]).any():
        raise ValueError("score contains NaN; a top-k mask needs comparable values")
    level = part[size - k]
    mask = values >= level
    if np.count_nonzero(mask) > k:  # ties straddle the level
        mask = values > level
        tied = np.flatnonzero(values == level)[: k - np.count_nonzero(mask)]
        mask[tied] = True
    return mask


def reference_threshold(values: np.ndarray, removed: int) -> float:
    """The SynFlow authors' threshold: the ``removed``-th smallest value (-inf when
    ``removed`` is 0). Their rule keeps the elements above it; every one equal to it is dropped."""
    if removed < 1:
        return -np.inf
    return np.partition(values, removed - 1)[removed - 1]


def _reference_threshold_checked(values: np.ndarray, removed: int):
    """:func:`reference_threshold` with NaN refused, at the cost of a pass over the values above
    its level only: the selection puts NaNs last (for ``removed`` 0, one pass over all)."""
    if removed < 1:
        if values.shape[0] and np.isnan(values.max()):
            raise ValueError("score contains NaN; a top-k mask needs comparable values")
        return -np.inf
    part = np.partition(values, removed - 1)
    if np.isnan(part[removed - 1:].max()):
        raise ValueError("score contains NaN; a top-k mask needs comparable values")
    return part[removed - 1]


def _above_reference_threshold(values: np.ndarray, removed: int) -> np.ndarray:
    """The reference's rule (:func:`reference_threshold`) as a mask of ``values``."""
    return values > reference_threshold(values, removed)


def _as_values(score) -> tuple[np.ndarray, torch.device | None]:
    """The values on the host, float32 or float64 as they are (no copy on the CPU: comparisons
    in either are exact), anything else in float64."""
    if isinstance(score, Score):
        score = score.values
    if isinstance(score, torch.Tensor):
        values = score.detach()
        if values.dtype not in (torch.float32, torch.float64):
            values = values.to(torch.float64)
        return values.cpu().numpy(), score.device
    if isinstance(score, np.ndarray):
        return score if score.dtype in (np.float32, np.float64) else np.asarray(score, dtype=np.float64), None
    raise TypeError(f"score must be a Score, a torch.Tensor or a numpy array, got {type(score).__name__}")


def top_k_mask(
    score,
    density: float,
    *,
    scope: str = "global",
    layout: Layout | None = None,
    kept_count_convention: str = "round",
    candidates=None,
    layer_budgets=None,
) -> torch.Tensor:
    r"""The mask of the largest scores, over the whole vector or per layer.

    ``scope="global"`` keeps the :math:`k = \kappa(d, N)` largest of all N candidates;
    ``scope="local"`` keeps, in each layer l (a module of the layout: its weight, and its
    bias when the layout includes biases) the :math:`\kappa(d, N_l)` largest of its
    :math:`N_l` candidates, with :math:`\kappa` the kept-count convention
    (:func:`kept_count`).

    Parameters
    ----------
    score : Score, Tensor or ndarray, shape (D,)
        Larger is better. Must be free of NaN.
    density : float in (0, 1]
        Kept fraction of the candidates (of each layer's candidates for ``"local"``).
    scope : {"global", "local"}
    layout : Layout, optional
        Needed for ``"local"`` when ``score`` is not a :class:`Score` (which carries one).
    kept_count_convention : {"round", "reference"}
        See :func:`kept_count`.
    candidates : bool Tensor or ndarray, shape (D,), optional
        Only these elements may be kept (default all). Densities stay fractions of *all*
        elements (of each layer's elements, for ``"local"``), as in the reference loop; the
        iterative loop passes the mask of the previous round, so masks shrink monotonically.
    layer_budgets : sequence of int, optional
        ``scope="local"`` only: the kept count of each layer (e.g. :func:`layer_budgets`'s ERK
        or uniform counts) in place of :math:`\kappa(d, N_l)`; ``density`` is then unused.

    Returns
    -------
    bool Tensor, shape (D,)
        On the score's device (CPU for a numpy score). Exactly k True entries (per layer for
        ``"local"``) with ``"round"``; at most k with ``"reference"``, whose rule drops every
        score tied at its threshold (see the module docstring).

    Raises
    ------
    ValueError
        NaN in the score; a bad density, scope or convention; fewer candidates than the
        kept count asks for (globally or in a layer), with ``"round"``.
    """
    check_choice("scope", scope, SCOPES)
    values, device = _as_values(score)
    if values.ndim != 1:
        raise ValueError(f"score must be 1-D, got shape {values.shape}")
    allowed = None
    if candidates is not None:
        allowed = np.asarray(candidates.cpu() if isinstance(candidates, torch.Tensor) else candidates, dtype=bool)
        if allowed.shape != values.shape:
            raise ValueError(f"candidates must have shape {values.shape}, got {allowed.shape}")
    if layer_budgets is not None and scope != "local":
        raise ValueError(f'layer_budgets needs scope="local", got scope={scope!r}')
    if scope == "global" and allowed is None:  # one selection over all, which also finds a NaN
        k = kept_count(density, values.shape[0], kept_count_convention)
        if kept_count_convention == "round":
            mask = _top_k_of(values, k)
        else:
            mask = values > _reference_threshold_checked(values, values.shape[0] - k)
        result = torch.from_numpy(mask)
        return result if device is None else result.to(device)
    if np.isnan(values).any():
        raise ValueError("score contains NaN; a top-k mask needs comparable values")
    if scope == "local":
        layout = score.layout if isinstance(score, Score) and layout is None else layout
        if layout is None:
            raise ValueError('scope="local" needs a layout (or a Score, which carries one)')
        if len(layout) != values.shape[0]:
            raise ValueError(f"score has {values.shape[0]} elements, the layout {len(layout)}")
        groups = layout.group_index()
        spans = [np.flatnonzero(groups == layer) for layer in range(layout.n_layers)]
    else:
        spans = [np.arange(values.shape[0])]
    budgets = None if layer_budgets is None else _checked_budgets(layer_budgets, [span.size for span in spans])
    mask = np.zeros(values.shape[0], dtype=bool)
    for layer, span in enumerate(spans):
        k = kept_count(density, int(span.size), kept_count_convention) if budgets is None else budgets[layer]
        pool = span if allowed is None else span[allowed[span]]
        if k > pool.size and kept_count_convention == "round":  # the reference's rule keeps what it can
            where = "" if scope == "global" else f" in layer {layer} ({layout.layer_names[layer]!r})"
            raise ValueError(f"density {density!r} keeps {k} elements{where}, but only {pool.size} are candidates")
        if kept_count_convention == "reference":
            kept = _above_reference_threshold(values[span], span.size - k)
            mask[span[kept if allowed is None else kept & allowed[span]]] = True
        else:
            mask[pool[_top_k_of(values[pool], k)]] = True
    result = torch.from_numpy(mask)
    return result if device is None else result.to(device)


#: Per-layer densities of :func:`layer_budgets`.
LAYER_DISTRIBUTIONS = ("uniform", "erk")


def _checked_budgets(budgets, sizes: Sequence[int]) -> list[int]:
    budgets = np.asarray(budgets)
    if budgets.shape != (len(sizes),) or not np.issubdtype(budgets.dtype, np.integer):
        raise ValueError(f"layer_budgets must be {len(sizes)} ints, one per layer, got {budgets!r}")
    if (budgets < 0).any() or (budgets > np.asarray(sizes)).any():
        raise ValueError(f"layer_budgets must lie between 0 and each layer's size {list(sizes)}, "
                         f"got {budgets.tolist()}")
    return [int(b) for b in budgets]


def layer_budgets(layout: Layout, density: float, distribution: str = "erk", *, erk_power: float = 1.0) -> np.ndarray:
    r"""How many elements each layer keeps, at a global density, by a per-layer distribution.

    The total is :math:`k = \max(1, \operatorname{round}(d D))`, the budget of
    :func:`copslp.solve` and of :func:`top_k_mask` at density d. Layer l (a module of the
    layout, :math:`N_l` elements, weight of shape :math:`(n_1, \dots, n_r)`) gets the
    density :math:`d_l`:

    ``"uniform"``
        :math:`d_l = d` for every layer.
    ``"erk"`` (Erdős–Rényi-Kernel; Evci et al., ICML 2020, "Rigging the lottery"; the
    random-pruning baseline of Liu et al., ICLR 2022)
        :math:`d_l = \min\bigl(1, \varepsilon\,\rho_l\bigr)` with
        :math:`\rho_l = \bigl(\sum_i n_i / \prod_i n_i\bigr)^{p}` (for a convolution
        :math:`(c_{out} + c_{in} + k_h + k_w)/(c_{out} c_{in} k_h k_w)`; ``erk_power`` p = 1),
        and :math:`\varepsilon` such that :math:`\sum_l d_l N_l = k`. As in RigL's code, when
        :math:`\varepsilon \rho_l > 1` the layers of the largest :math:`\rho_l` are kept whole
        and :math:`\varepsilon` is solved again on the others, until none exceeds 1.

    The real counts :math:`d_l N_l` become integers by the largest-remainder rule (each layer
    its floor, then one more to the largest fractional parts, lowest layer first on ties, never
    above :math:`N_l`), so they sum to exactly k.

    Uses: random masks with these budgets (``top_k_mask(scores.random(model), density,
    scope="local", layer_budgets=b)``, or any score kept per layer); COPS with the budgets as
    floors, ``copslp.solve(scores, int(b.sum()), groups=layout.group_index(), floors=b)``,
    which then keeps exactly :math:`b_l` in each layer.

    Parameters
    ----------
    layout : Layout
    density : float in (0, 1]
    distribution : {"uniform", "erk"}, default "erk"
    erk_power : float, default 1
        The exponent p of :math:`\rho_l` (RigL's ``erk_power_scale``).

    Returns
    -------
    ndarray of int64, shape (n_layers,)
    """
    check_choice("distribution", distribution, LAYER_DISTRIBUTIONS)
    sizes = layout.layer_sizes.astype(np.float64)
    total = kept_count(density, len(layout), "round")
    if distribution == "uniform":
        raw = np.ones(layout.n_layers)
    else:
        if not (isinstance(erk_power, (int, float)) and erk_power > 0):
            raise ValueError(f"erk_power must be a number > 0, got {erk_power!r}")
        shapes = {}
        for entry in layout.entries:  # the layer's weight: its first entry that is not a bias
            if entry.layer not in shapes or shapes[entry.layer][1]:
                shapes[entry.layer] = (entry.shape, entry.tensor_name.endswith("bias"))
        raw = np.array([(sum(shapes[l][0]) / float(np.prod(shapes[l][0]))) ** erk_power
                        for l in range(layout.n_layers)])
    dense = np.zeros(layout.n_layers, dtype=bool)
    while True:
        free = ~dense
        scale = (total - sizes[dense].sum()) / (raw[free] * sizes[free]).sum()
        if not (scale * raw[free] > 1).any():
            break
        dense |= free & (raw == raw[free].max())
    targets = np.where(dense, sizes, np.minimum(scale * raw * sizes, sizes))
    counts = np.floor(targets).astype(np.int64)
    remainder = total - int(counts.sum())
    order = np.lexsort((np.arange(layout.n_layers), -(targets - counts)))
    order = order[counts[order] < sizes[order]]
    counts[order[:remainder]] += 1
    return counts
