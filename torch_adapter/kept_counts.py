"""How a density becomes a number of kept elements: the conventions every selection of
``torch_adapter`` shares (:func:`torch_adapter.top_k_mask`, the iterative loop, the scores'
iterative variants). The bottom of the package: it imports nothing of it but the argument
checks."""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_choice

__all__ = ["KEPT_COUNTS", "SCOPES", "kept_count"]

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
        :math:`N - \lfloor (1 - d) N \rfloor` (see :mod:`torch_adapter.topk`).

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
