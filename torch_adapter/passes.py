r"""The O(D) passes of the analytic method over torch tensors, where they live.

:class:`TensorPasses` is :class:`copslp._analytic.passes.ScorePasses` for score rows held as torch
tensors on any device (CPU, CUDA) and in any floating dtype (float64, float32, float16,
bfloat16): the scores are never copied to the host. Only what the exact finish needs leaves
the device, as float64 numpy: per-row sums and counts (once per pass), the subsample and the
survivors (a few thousand columns).

The rows are read a chunk at a time (:data:`CHUNK` elements on an accelerator,
:data:`copslp._blocks.BLOCK` on the CPU) and converted to float64 there, so the values

.. math::

    v_j(\lambda) = s_{0j} + \sum_i \lambda_i s_{ij}

and the extremes ``low_j``, ``high_j`` over a box ``[lo, hi]`` of multipliers are computed by
the float64 operations of :func:`copslp._analytic.screening.box_extremes` (same products, added in row
order, no fused multiply-add): the counts, the survivors and the mask equal those of
:class:`copslp._analytic.passes.ArrayPasses` on the same values. (numpy's ``einsum`` there adds the
products in row order; were it to add them in another order, a value lying exactly at a
level could be counted on the other side of it by one of the two.) With one multiplier the
extremes are ``v`` at the two corners; with several they are ``v`` at the corners ``lo`` and
``hi`` in every block of :data:`copslp._blocks.BLOCK` elements whose secondary scores are all
``>= 0``, else ``v`` at the centre ``-/+`` the half-widths times ``|s_i|``. Sums are float64
too, in torch's summation order (they agree with numpy's to rounding, not bit for bit).

No temporary is D-sized except the one-byte state of each screening pass (dropped, fixed to
1 or survivor), which :meth:`TensorPasses.mask` and :meth:`TensorPasses.extremes` read again.
Counts and sums stay on the device until the end of a pass, so a pass waits for the device
once, not once per chunk. The survivors' values leave the device only when the driver
gathers them; when they are too many, :meth:`TensorPasses.survivor_passes` keeps them on the
device for the level below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from copslp._blocks import BLOCK
from copslp import LevelsOutside, LocalScreen, ScorePasses

__all__ = ["CHUNK", "TensorPasses"]

#: Elements read per chunk on an accelerator: 2**22 float64 = 32 MiB per score row, enough
#: work per kernel to hide its launch. On the CPU chunks are :data:`copslp._blocks.BLOCK`
#: long, as the numpy passes read them (their temporaries stay in cache). Either way a chunk
#: holds whole blocks of the numpy passes.
CHUNK = 1 << 22

#: States of an element after a screening pass (one byte each).
_DROPPED, _FIXED_ONE, _SURVIVOR = 0, 1, 2


def check_scores(scores) -> list[torch.Tensor]:
    """The score rows as a list of 1-D tensors (detached views of ``scores``, never copies),
    refusing what is not: one floating dtype per row, one device, one length."""
    if isinstance(scores, torch.Tensor):
        if scores.dim() != 2:
            raise ValueError(f"scores must be a 2-D tensor (n, D) or a sequence of 1-D tensors; got a tensor of "
                             f"shape {tuple(scores.shape)}")
        rows = list(scores.unbind(0))
    elif isinstance(scores, Sequence) and not isinstance(scores, (str, bytes)):
        rows = list(scores)
        for index, row in enumerate(rows):
            if not isinstance(row, torch.Tensor):
                raise TypeError(f"scores[{index}] must be a torch.Tensor, got {type(row).__name__}")
            if row.dim() != 1:
                raise ValueError(f"scores[{index}] must be 1-D, got shape {tuple(row.shape)}")
    else:
        raise TypeError(f"scores must be a 2-D torch.Tensor or a sequence of 1-D tensors, got {type(scores).__name__}")
    if not rows:
        raise ValueError("scores must hold at least one score row, got none")
    for index, row in enumerate(rows):
        if not row.is_floating_point():
            raise TypeError(f"scores[{index}] must have a floating dtype, got {row.dtype}")
        if row.device != rows[0].device:
            raise ValueError(f"scores must lie on one device: scores[0] is on {rows[0].device}, "
                             f"scores[{index}] on {row.device}")
        if row.shape[0] != rows[0].shape[0]:
            raise ValueError(f"score rows must have equal lengths (the same length as scores[0]): scores[0] has "
                             f"{rows[0].shape[0]}, scores[{index}] has {row.shape[0]}")
    return [row.detach() for row in rows]


def _check_groups(groups, n_groups, size: int, device: torch.device) -> torch.Tensor | None:
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)):
        raise TypeError(f"n_groups must be an int, got {type(n_groups).__name__}")
    if groups is None:
        if n_groups != 0:
            raise ValueError(f"n_groups must be 0 without groups, got {n_groups}")
        return None
    if not isinstance(groups, torch.Tensor):
        raise TypeError(f"groups must be a torch.Tensor or None, got {type(groups).__name__}")
    if groups.is_floating_point() or groups.is_complex() or groups.dtype == torch.bool:
        raise TypeError(f"groups must have an integer dtype, got {groups.dtype}")
    if groups.shape != (size,):
        raise ValueError(f"groups must be 1-D with one entry per element ({size}), got shape {tuple(groups.shape)}")
    if groups.device != device:
        raise ValueError(f"groups must lie on the scores' device {device}, got {groups.device}")
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1 with groups, got {n_groups}")
    if size:
        smallest, largest = (int(value) for value in torch.stack([groups.min(), groups.max()]).cpu())
        if smallest < 0 or largest >= n_groups:
            raise ValueError(f"groups must lie in [0, n_groups) = [0, {n_groups}), got ids from {smallest} to {largest}")
    return groups


def _weighted_sum(multipliers, secondary: list[torch.Tensor]) -> torch.Tensor:
    """``sum_i multipliers[i] * secondary[i]`` added in row order, one rounding per product and
    per addition (the order of ``np.dot`` on these shapes; no fused multiply-add)."""
    total = secondary[0] * float(multipliers[0])
    for multiplier, row in zip(multipliers[1:], secondary[1:]):
        total = total + row * float(multiplier)
    return total


class TensorPasses(ScorePasses):
    """:class:`copslp._analytic.passes.ScorePasses` over torch tensors on their own device.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, D_local), or sequence of n 1-D tensors of length D_local
        The score rows of this shard (row 0 is s_0), floating dtypes, on one device. Rows of a
        sequence are read where they are (never stacked into a new (n, D) tensor).
    groups : torch.Tensor of integer dtype, shape (D_local,), optional
        The group (of the floors) of each element, on the scores' device, ids in
        ``[0, n_groups)``.
    n_groups : int
        G, the number of groups (0 without groups, >= 1 with them).
    chunk : int, optional
        Elements read at a time, a positive multiple of :data:`copslp._blocks.BLOCK`; by
        default :data:`CHUNK` on an accelerator and :data:`copslp._blocks.BLOCK` on the CPU.

    Notes
    -----
    Every method answers as :class:`copslp._analytic.passes.ArrayPasses` on the same values: equal
    counts, the same survivors in the same order, the same elements fixed, sums equal to
    rounding (float64 in both). :meth:`mask` returns a bool tensor on the scores' device.
    """

    def __init__(self, scores, groups: torch.Tensor | None = None, n_groups: int = 0, *, chunk: int | None = None):
        self.rows = check_scores(scores)
        self.n_scores, self.size = len(self.rows), int(self.rows[0].shape[0])
        self.device = self.rows[0].device
        self.groups = _check_groups(groups, n_groups, self.size, self.device)
        self.n_groups = int(n_groups)
        if chunk is None:
            chunk = BLOCK if self.device.type == "cpu" else CHUNK
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0 or chunk % BLOCK:
            raise ValueError(f"chunk must be a positive multiple of {BLOCK}, got {chunk!r}")
        self.chunk = chunk
        self._corner_blocks: dict[tuple[int, ...], np.ndarray] = {}
        self._buffer: torch.Tensor | None = None

    # --- reading -------------------------------------------------------------------------

    def _chunks(self):
        for start in range(0, self.size, self.chunk):
            yield start, min(start + self.chunk, self.size)

    def _read(self, start: int, stop: int, rows=None) -> dict[int, torch.Tensor]:
        """The score rows ``rows`` (default: all) on ``[start, stop)`` in float64, by row: views of
        float64 rows, else a buffer reused from chunk to chunk (read only; valid until the next
        call)."""
        read = {}
        for row in range(self.n_scores) if rows is None else (int(row) for row in rows):
            values = self.rows[row][start:stop]
            if values.dtype != torch.float64:
                if self._buffer is None:
                    self._buffer = torch.empty((self.n_scores, min(self.chunk, self.size)), dtype=torch.float64,
                                               device=self.device)
                values = self._buffer[row, :stop - start].copy_(values)
            read[row] = values
        return read

    def _group_ids(self, start: int, stop: int) -> torch.Tensor:
        """The groups on ``[start, stop)`` as int64 (the groups themselves keep their dtype)."""
        return self.groups[start:stop].to(torch.int64)

    def _zeros(self, length: int, dtype=torch.int64) -> torch.Tensor:
        return torch.zeros(length, dtype=dtype, device=self.device)

    def _corners(self, secondary_rows: tuple[int, ...]) -> np.ndarray:
        """Per block of :data:`BLOCK` elements, whether every secondary score in it is ``>= 0``
        (then :func:`box_extremes` takes the corners); read once per set of rows."""
        if secondary_rows not in self._corner_blocks:
            corners = torch.ones(-(-self.size // BLOCK), dtype=torch.bool, device=self.device)
            for start, stop in self._chunks():
                smallest = self.rows[secondary_rows[0]][start:stop]
                for row in secondary_rows[1:]:
                    smallest = torch.minimum(smallest, self.rows[row][start:stop])
                full, first = (stop - start) // BLOCK * BLOCK, start // BLOCK
                if full:
                    corners[first:first + full // BLOCK] = smallest[:full].reshape(-1, BLOCK).amin(dim=1) >= 0
                if full < stop - start:
                    corners[first + full // BLOCK] = smallest[full:].amin() >= 0
            self._corner_blocks[secondary_rows] = corners.cpu().numpy()
        return self._corner_blocks[secondary_rows]

    def _box(self, values: dict[int, torch.Tensor], rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, start: int,
             stop: int):
        """``(low, high)`` on ``[start, stop)`` from the float64 ``values`` of the chunk's rows:
        :func:`copslp._analytic.screening.box_extremes`, block by block of :data:`BLOCK` elements as the
        numpy passes read them."""
        primary = values[int(rows[0])]
        if rows.shape[0] == 1:
            return primary, primary
        secondary_rows = tuple(int(row) for row in rows[1:])
        secondary = [values[row] for row in secondary_rows]
        corners = self._corners(secondary_rows)[start // BLOCK:-(-stop // BLOCK)]
        if len(secondary) == 1 and lo[0] < 0:
            corners = np.zeros_like(corners)
        if corners.any() or len(secondary) == 1:
            at_lo, at_hi = _weighted_sum(lo, secondary) + primary, _weighted_sum(hi, secondary) + primary
            if corners.all():
                return at_lo, at_hi
        if len(secondary) == 1:
            low, high = torch.minimum(at_lo, at_hi), torch.maximum(at_lo, at_hi)
        else:
            centre = _weighted_sum((lo + hi) / 2.0, secondary) + primary
            spread = _weighted_sum((hi - lo) / 2.0, [row.abs() for row in secondary])
            low, high = centre - spread, centre + spread
        if not corners.any():
            return low, high
        by_element = torch.as_tensor(corners, device=self.device).repeat_interleave(BLOCK)[:stop - start]
        return torch.where(by_element, at_lo, low), torch.where(by_element, at_hi, high)

    def _values(self, values, rows, multipliers, start, stop) -> torch.Tensor:
        """``v`` (``rows``, ``multipliers``) on ``[start, stop)``, as ArrayPasses computes it."""
        return self._box(values, rows, multipliers, multipliers, start, stop)[0]

    # --- ScorePasses ---------------------------------------------------------------------

    def non_finite(self):
        counts = self._zeros(self.n_scores)
        for start, stop in self._chunks():
            for row in range(self.n_scores):
                counts[row] += (~torch.isfinite(self.rows[row][start:stop])).sum()
        return counts.cpu().numpy()

    def group_counts(self):
        if self.groups is None:
            return np.zeros(0, dtype=np.int64)
        return torch.bincount(self.groups, minlength=self.n_groups).cpu().numpy().astype(np.int64)

    def take(self, positions):
        index = torch.as_tensor(np.asarray(positions, dtype=np.int64), device=self.device)
        values = torch.stack([row.index_select(0, index).to(torch.float64) for row in self.rows])
        groups = None if self.groups is None else self.groups.index_select(0, index).cpu().numpy().astype(np.int64)
        return values.cpu().numpy(), groups

    def screen(self, rows, lo, hi, one_level, zero_level, group_levels):
        grouped = self.groups is not None and group_levels is not None
        counts = self._zeros(3)  # above_one, reaching, fixed_ones
        support, fixed_per_group = self._zeros(self.n_groups), self._zeros(self.n_groups)
        taken = self._zeros(self.n_scores, torch.float64)
        levels = torch.as_tensor(np.asarray(group_levels, dtype=np.float64), device=self.device) if grouped else None
        state = torch.empty(self.size, dtype=torch.uint8, device=self.device)
        per_chunk = []
        for start, stop in self._chunks():
            values = self._read(start, stop)
            low, high = self._box(values, rows, lo, hi, start, stop)
            one = low > one_level
            counts += torch.stack([(high > one_level).sum(), (low >= zero_level).sum(), one.sum()])
            level = zero_level
            if grouped:
                groups = self._group_ids(start, stop)
                level = levels[groups]
                support.scatter_add_(0, groups, (low >= level).to(torch.int64))
                fixed_per_group.scatter_add_(0, groups, one.to(torch.int64))
            indicator = one.to(torch.float64)
            taken += torch.stack([torch.dot(row, indicator) for row in values.values()])
            survivor = (high >= level) & ~one
            per_chunk.append(survivor.sum())
            state[start:stop] = one.to(torch.uint8) + survivor.to(torch.uint8) * _SURVIVOR
        integers = torch.cat([counts, torch.stack(per_chunk) if per_chunk else self._zeros(0), support,
                              fixed_per_group]).cpu().numpy()
        above_one, reaching, fixed = (int(value) for value in integers[:3])
        per_chunk = integers[3:3 + len(per_chunk)]
        support, fixed_per_group = integers[3 + len(per_chunk):].reshape(2, self.n_groups)
        positions = self._survivor_positions(state, per_chunk)
        return LocalScreen(above_one, reaching, support.copy() if grouped else None, fixed, taken.cpu().numpy(),
                           fixed_per_group.copy() if grouped else None, int(positions.shape[0]), (state, positions),
                           lambda: self.take(positions))

    def survivor_passes(self, screened):
        """:class:`TensorPasses` over the survivors, gathered on the device in their own dtype."""
        _, positions = screened.handle
        groups = None if self.groups is None else self.groups.index_select(0, positions)
        return TensorPasses([row.index_select(0, positions) for row in self.rows], groups, self.n_groups,
                            chunk=self.chunk)

    def _survivor_positions(self, state: torch.Tensor, per_chunk: np.ndarray) -> torch.Tensor:
        """Positions (increasing, on the device) of the survivors, whose numbers per chunk are
        known: no wait for the device."""
        found = [torch.nonzero_static(state[start:stop] == _SURVIVOR, size=int(count)).squeeze(1) + start
                 for (start, stop), count in zip(self._chunks(), per_chunk) if count]
        return torch.cat(found) if found else self._zeros(0)

    def members(self, chosen):
        picked = torch.as_tensor(np.asarray(chosen, dtype=bool), device=self.device)
        return torch.nonzero(picked[self.groups.to(torch.int64)]).squeeze(1).cpu().numpy().astype(np.int64)

    def group_levels(self, rows, lo, hi, floors):
        """Chunk by chunk (each chunk's part of a group is a part): the largest ``low`` per group
        for the floors of 1; for larger ones, the members ranked within their group by a
        stable sort of ``low`` and one of the groups, the member at the floor's rank taken."""
        wanted = torch.as_tensor(np.asarray(floors, dtype=np.int64), device=self.device)
        levels = torch.full((self.n_groups,), -math.inf, dtype=torch.float64, device=self.device)
        several = bool((wanted > 1).any())
        for start, stop in self._chunks():
            low = self._box(self._read(start, stop, rows), rows, lo, hi, start, stop)[0]
            groups = self._group_ids(start, stop)
            if not several:
                levels.scatter_reduce_(0, groups, low, "amax")
                continue
            by_value = torch.argsort(low, descending=True, stable=True)
            by_group = by_value[torch.argsort(groups[by_value], stable=True)]
            ordered = groups[by_group]
            counts = torch.bincount(groups, minlength=self.n_groups)
            rank = torch.arange(stop - start, device=self.device) - (torch.cumsum(counts, 0) - counts)[ordered]
            at_floor = rank == wanted[ordered] - 1
            levels.scatter_reduce_(0, ordered[at_floor], low[by_group][at_floor], "amax")
        result = levels.cpu().numpy().copy()
        result[np.asarray(floors) == 0] = np.inf
        return result

    def extremes(self, screened, rows, multipliers):
        state, _ = screened.handle
        segments = max(self.n_groups, 1)
        zeros_max = torch.full((segments,), -math.inf, dtype=torch.float64, device=self.device)
        ones_min = torch.full((segments,), math.inf, dtype=torch.float64, device=self.device)
        magnitudes, abs_taken = self._zeros(self.n_scores, torch.float64), self._zeros(self.n_scores, torch.float64)
        for start, stop in self._chunks():
            values = self._read(start, stop)
            v = self._values(values, rows, multipliers, start, stop)
            chunk_state = state[start:stop]
            one, zero = chunk_state == _FIXED_ONE, chunk_state == _DROPPED
            absolute = [row.abs() for row in values.values()]
            magnitudes = torch.maximum(magnitudes, torch.stack([row.amax() for row in absolute]))
            indicator = one.to(torch.float64)
            abs_taken += torch.stack([torch.dot(row, indicator) for row in absolute])
            dropped_v, one_v = torch.where(zero, v, -math.inf), torch.where(one, v, math.inf)
            if self.groups is None:
                zeros_max = torch.maximum(zeros_max, dropped_v.amax())
                ones_min = torch.minimum(ones_min, one_v.amin())
            else:
                groups = self._group_ids(start, stop)
                zeros_max.scatter_reduce_(0, groups, dropped_v, "amax")
                ones_min.scatter_reduce_(0, groups, one_v, "amin")
        levels = torch.stack([zeros_max, ones_min]).cpu().numpy()
        per_row = torch.stack([magnitudes, abs_taken]).cpu().numpy()
        return LevelsOutside(levels[0].copy(), levels[1].copy(), per_row[0].copy(), per_row[1].copy())

    def positive_part(self, rows, multipliers, level, floor_multipliers):
        total = self._zeros(1, torch.float64)
        nu = None
        if floor_multipliers is not None:
            nu = torch.as_tensor(np.asarray(floor_multipliers, dtype=np.float64), device=self.device)
        for start, stop in self._chunks():
            v = self._values(self._read(start, stop, rows), rows, multipliers, start, stop)
            if nu is not None:
                v = v + nu[self._group_ids(start, stop)]
            total += (v - level).clamp_min(0.0).sum()
        return float(total.cpu()[0])

    def mask(self, screened, kept_survivors):
        """The mask on the device; ``kept_survivors`` is a numpy array (decided on rank 0) or,
        from the level below, that level's mask, a bool tensor on this device."""
        state, positions = screened.handle
        if isinstance(kept_survivors, torch.Tensor):
            kept, dtype = kept_survivors.to(self.device), kept_survivors.dtype
        else:
            kept = np.asarray(kept_survivors)
            dtype = kept.dtype
            kept = torch.as_tensor(kept, device=self.device) if dtype == np.bool_ else kept
        if dtype not in (np.bool_, torch.bool) or tuple(kept.shape) != (positions.shape[0],):
            raise ValueError(f"kept_survivors must be bool with one entry per survivor ({positions.shape[0]}), "
                             f"got dtype {dtype} and shape {tuple(kept.shape)}")
        mask = state == _FIXED_ONE
        mask[positions[kept]] = True
        return mask
