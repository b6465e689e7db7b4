"""Streaming over D in cache-sized blocks, so O(D) passes allocate no length-D temporaries."""

from __future__ import annotations

__all__ = ["blocks", "BLOCK"]

#: Elements per block: 2**16 float64 = 512 KiB per array, a few arrays fit in L2/L3.
BLOCK = 1 << 16


def blocks(size: int, block: int = BLOCK):
    """Yield ``slice`` objects covering ``range(size)`` in order."""
    for start in range(0, size, block):
        yield slice(start, min(start + block, size))
