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
Elements strictly above the k-th largest value are kept; among the elements equal to it,
those with the lowest flat indices fill the remaining slots. The choice is deterministic and
the mask has exactly k elements. (The reference drops *every* element equal to its
threshold and so keeps fewer than k when ties straddle it; with continuous scores the two
agree.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._checks import check_choice
from .layout import Layout
from .scores import Score

__all__ = ["KEPT_COUNTS", "SCOPES", "kept_count", "top_k_mask"]

#: Conventions that turn a density into a kept count.
KEPT_COUNTS = ("round", "reference")
#: Where the kept count applies: the whole flat vector, or each layer (module) of the layout.
SCOPES = ("global", "local")


def kept_count(density: float, size: int, convention: str = "round") -> int:
    r"""Number of elements kept out of ``size`` at ``density``.

    Parameters
    ----------
    density : float in (0, 1]
    size : int >= 1
    convention : {"round", "reference"}
        ``"round"``: :math:`\max(1, \operatorname{round}(d N))`; ``"reference"``:
        :math:`N - \lfloor (1 - d) N \rfloor` (see the module docstring).

    Returns
    -------
    int in [1, size] for ``"round"``, in [0, size] for ``"reference"`` (0 only for a density
    so small that the reference would prune everything; callers that need at least one
    element check it).
    """
    check_choice("kept_count convention", convention, KEPT_COUNTS)
    if isinstance(density, (bool, np.bool_)) or not isinstance(density, (float, int, np.floating, np.integer)):
        raise TypeError(f"density must be a float in (0, 1], got {density!r}")
    density = float(density)
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int, got {size!r}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size!r}")
    size = int(size)
    if convention == "round":
        return max(1, round(density * size))
    return size - math.floor((1.0 - density) * size)


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

    Returns
    -------
    bool Tensor, shape (D,)
        On the score's device (CPU for a numpy score).

    Raises
    ------
    ValueError
        NaN in the score; a bad density, scope or convention; fewer candidates than the
        kept count asks for (globally or in a layer).
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
    if allowed is not None or scope == "local":  # else the selection itself finds a NaN
        if np.isnan(values).any():
            raise ValueError("score contains NaN; a top-k mask needs comparable values")
    if scope == "global" and allowed is None:
        mask = _top_k_of(values, kept_count(density, values.shape[0], kept_count_convention))
        result = torch.from_numpy(mask)
        return result if device is None else result.to(device)
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
    mask = np.zeros(values.shape[0], dtype=bool)
    for layer, span in enumerate(spans):
        k = kept_count(density, int(span.size), kept_count_convention)
        pool = span if allowed is None else span[allowed[span]]
        if k > pool.size:
            where = "" if scope == "global" else f" in layer {layer} ({layout.layer_names[layer]!r})"
            raise ValueError(f"density {density!r} keeps {k} elements{where}, but only {pool.size} are candidates")
        mask[pool[_top_k_of(values[pool], k)]] = True
    result = torch.from_numpy(mask)
    return result if device is None else result.to(device)
