"""An LP point stored as the mask of its entries equal to 1 and the few other nonzero entries.

An optimal point of COPS is the top-k indicator of ``v`` except for at most r + 1 entries
at the k-th level (COPS.md section 3): as a float64 array of length D it costs 8 bytes per
element, twice a float32 score. :class:`MaskPoint` keeps it in 1 byte per element plus the
few other entries; :func:`copslp.solve` scans and rounds it as it is, and the dense array is
made only when asked for (``numpy.asarray(point)``, :attr:`copslp.Result.x`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MaskPoint", "mask_point"]


@dataclass(frozen=True, eq=False)
class MaskPoint:
    """The point ``x`` with ``x_j = 1`` where ``ones`` is True, ``x_j = values[i]`` at
    ``j = index[i]`` (increasing, disjoint from ``ones``), and 0 elsewhere.

    Reads like a 1-D float64 array for what is done with an LP point beside its scan:
    ``len``, ``shape``, ``dtype``, gathers ``point[index]`` (and slices), and
    ``numpy.asarray(point)``, the dense array.
    """

    ones: np.ndarray
    index: np.ndarray
    values: np.ndarray

    dtype = np.dtype(np.float64)
    ndim = 1

    @property
    def shape(self) -> tuple:
        return self.ones.shape

    @property
    def size(self) -> int:
        return self.ones.shape[0]

    def __len__(self) -> int:
        return self.ones.shape[0]

    def __array__(self, dtype=None, copy=None):
        dense = self.ones.astype(np.float64)
        dense[self.index] = self.values
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def __getitem__(self, key):
        if isinstance(key, slice):
            positions = np.arange(*key.indices(self.size))
        else:
            key = np.asarray(key)
            if key.dtype == np.bool_:
                positions = np.flatnonzero(key)
            elif np.issubdtype(key.dtype, np.integer):
                positions = np.where(key < 0, key + self.size, key)
            else:
                raise IndexError(f"a MaskPoint is indexed by integers, booleans or a slice, got {key.dtype}")
        flat = np.atleast_1d(positions)
        gathered = self.ones[flat].astype(np.float64)
        if self.index.shape[0]:
            slot = np.minimum(np.searchsorted(self.index, flat), self.index.shape[0] - 1)
            listed = self.index[slot] == flat
            gathered[listed] = self.values[slot[listed]]
        return float(gathered[0]) if positions.ndim == 0 else gathered


def mask_point(size: int, ones: np.ndarray, survivors: np.ndarray, survivor_x: np.ndarray) -> MaskPoint:
    """The point that is 1 on the indices ``ones``, ``survivor_x`` on the increasing indices
    ``survivors`` (disjoint from ``ones``) and 0 elsewhere."""
    mask = np.zeros(size, dtype=bool)
    mask[ones] = True
    at_one = survivor_x == 1.0
    mask[survivors[at_one]] = True
    other = ~at_one & (survivor_x != 0.0)
    return MaskPoint(mask, survivors[other], survivor_x[other].astype(np.float64))
