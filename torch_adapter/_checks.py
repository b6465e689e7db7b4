"""Argument checks shared by the adapter's modules."""

from __future__ import annotations

from typing import Any, Collection

__all__ = ["check_choice"]


def check_choice(name: str, value: Any, choices: Collection) -> Any:
    """``value`` if it is one of ``choices``, else a ValueError naming the argument, the
    valid choices and the value."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
