"""An LP point stored as the entries equal to 1 and the few other nonzero entries.

An optimal point of COPS is the top-k indicator of ``v`` except for at most r + 1 entries
at the k-th level (docs/maths.md §3): as a float64 array of length D it costs 8 bytes per
element, twice a float32 score. :class:`MaskPoint` keeps it in 1 byte per element (a mask)
plus the few other entries; :class:`IndexedPoint` keeps the positions of its ones instead
and makes the mask only when asked for it. :func:`copslp.solve` scans and rounds them as
they are, and the dense array is made only when asked for (``numpy.asarray(point)``,
:attr:`copslp.Result.x`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["MaskPoint", "IndexedPoint", "mask_point"]


class _ReadsLikeAnArray:
    """What is done with an LP point beside its scan, for a point with a mask ``ones`` (the
    entries equal to 1), ``index`` (increasing, disjoint from them) and ``values`` there, 0
    elsewhere, of length ``size``: ``len``, ``shape``, ``dtype``, gathers ``point[index]``
    (and slices), and ``numpy.asarray(point)``, the dense array."""

    dtype = np.dtype(np.float64)
    ndim = 1

    @property
    def shape(self) -> tuple:
        return (self.size,)

    def __len__(self) -> int:
        return self.size

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
                if key.shape != (self.size,):
                    raise IndexError(f"a boolean index of a point of length {self.size} must have shape "
                                     f"({self.size},), got {key.shape}")
                positions = np.flatnonzero(key)
            elif np.issubdtype(key.dtype, np.integer):
                positions = np.where(key < 0, key + self.size, key)
                outside = (positions < 0) | (positions >= self.size)
                if outside.any():
                    raise IndexError(f"index {int(np.asarray(key).flat[np.flatnonzero(outside)[0]])} is out of "
                                     f"bounds for a point of length {self.size}")
            else:
                raise IndexError(f"a point is indexed by integers, booleans or a slice, got {key.dtype}")
        flat = np.atleast_1d(positions)
        gathered = np.empty(flat.shape[0])
        listed = np.zeros(flat.shape[0], dtype=bool)
        if self.index.shape[0]:
            slot = np.minimum(np.searchsorted(self.index, flat), self.index.shape[0] - 1)
            listed = self.index[slot] == flat
            gathered[listed] = self.values[slot[listed]]
        if not listed.all():  # the mask is read (made, for an IndexedPoint) only where needed
            gathered[~listed] = self.ones[flat[~listed]]
        return float(gathered[0]) if positions.ndim == 0 else gathered


@dataclass(frozen=True, eq=False)
class MaskPoint(_ReadsLikeAnArray):
    """The point ``x`` with ``x_j = 1`` where ``ones`` is True, ``x_j = values[i]`` at
    ``j = index[i]`` (increasing, disjoint from ``ones``), and 0 elsewhere."""

    ones: np.ndarray
    index: np.ndarray
    values: np.ndarray

    @property
    def size(self) -> int:
        return self.ones.shape[0]

    def own_mask(self) -> np.ndarray:
        """A mask of ``ones`` that the caller may write into (a copy)."""
        return self.ones.copy()


@dataclass(frozen=True, eq=False)
class IndexedPoint(_ReadsLikeAnArray):
    """The point ``x`` of length ``size`` with ``x_j = 1`` at the positions ``ones_at`` (a
    tuple of index arrays, all distinct, in any order), ``x_j = values[i]`` at ``j = index[i]``
    (increasing, disjoint from them), and 0 elsewhere. The mask ``ones`` is made on first
    use: 8 bytes per entry equal to 1 are kept, not 1 per element."""

    size: int
    ones_at: tuple
    index: np.ndarray
    values: np.ndarray

    @cached_property
    def ones(self) -> np.ndarray:
        return self.own_mask()

    def own_mask(self) -> np.ndarray:
        """A new mask of the entries equal to 1, that the caller may write into."""
        mask = np.zeros(self.size, dtype=bool)
        for piece in self.ones_at:
            mask[piece] = True
        return mask


def mask_point(size: int, ones: tuple, survivors: np.ndarray, survivor_x: np.ndarray) -> IndexedPoint:
    """The point that is 1 on the indices ``ones`` (a tuple of index arrays), ``survivor_x``
    on the increasing indices ``survivors`` (disjoint from ``ones``) and 0 elsewhere."""
    return IndexedPoint(size, *_ones_and_listed(ones, survivors, survivor_x))


def _ones_and_listed(ones: tuple, survivors, survivor_x):
    at_one = survivor_x == 1.0
    other = ~at_one & (survivor_x != 0.0)
    return (*ones, survivors[at_one]), survivors[other], survivor_x[other].astype(np.float64)
