"""Method options: each declared once, with its default and its check.

A method's options are a mapping ``name -> Option`` in its registry entry
(:mod:`copslp._registry`). :func:`copslp.solve` checks the caller's ``options`` mapping
against it, once: an unknown name is a ``ValueError`` that lists the valid ones, a bad value a
``TypeError`` / ``ValueError`` naming the option and the value. The method then receives
every option as a keyword argument, already checked and with the defaults filled in, and
never validates them again.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["Option", "check_options", "fraction", "positive_number", "optional", "int_at_least", "one_of",
           "mapping_or_none", "seed", "gap_fraction", "any_string"]


@dataclass(frozen=True)
class Option:
    """One method option: its default and the function that checks a given value.

    ``check(name, value)`` returns the value to use (e.g. converted to float) or raises.
    The default is used as it is, unchecked.
    """

    default: Any
    check: Callable[[str, Any], Any]
    doc: str = ""


def check_options(method: str, declared: Mapping[str, Option], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every declared option with its value: the given one, checked, else the default."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise TypeError(f"options must be a mapping of option names to values, got {given!r}")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        valid = ", ".join(sorted(declared)) or "none"
        raise ValueError(f"method {method!r} has no option {', '.join(map(repr, unknown))}; its options: {valid}")
    return {name: (option.check(name, given[name]) if name in given else option.default)
            for name, option in declared.items()}


def _real(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"option {name} must be a number, got {value!r}")
    return float(value)


def fraction(name: str, value) -> float:
    """A relative tolerance in (0, 1)."""
    value = _real(name, value)
    if not 0 < value < 1:
        raise ValueError(f"option {name} must lie in (0, 1), got {value!r}")
    return value


def gap_fraction(name: str, value) -> float:
    """A relative gap in [0, 1)."""
    value = _real(name, value)
    if not 0 <= value < 1:
        raise ValueError(f"option {name} must lie in [0, 1), got {value!r}")
    return value


def positive_number(name: str, value) -> float:
    """A positive, finite number (seconds, a tolerance)."""
    value = _real(name, value)
    if not 0 < value < np.inf:
        raise ValueError(f"option {name} must be a positive finite number, got {value!r}")
    return value


def int_at_least(least: int) -> Callable[[str, Any], int]:
    """An int >= ``least``."""
    def check(name: str, value) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"option {name} must be an int, got {value!r}")
        if value < least:
            raise ValueError(f"option {name} must be >= {least}, got {value!r}")
        return int(value)
    return check


def seed(name: str, value) -> int:
    """A seed for numpy's generator: an int >= 0."""
    return int_at_least(0)(name, value)


def one_of(*choices) -> Callable[[str, Any], Any]:
    """One of ``choices`` (compared with ==, bools kept apart from ints)."""
    def check(name: str, value):
        for choice in choices:
            if type(value) is type(choice) and value == choice:
                return value
        raise ValueError(f"option {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return check


def optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """``None``, or a value that passes ``check``."""
    def checked(name: str, value):
        return None if value is None else check(name, value)
    return checked


def mapping_or_none(name: str, value):
    """``None`` or a mapping with string keys."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise TypeError(f"option {name} must be a mapping of option names to values, got {value!r}")
    return dict(value)


def any_string(name: str, value):
    """A string (checked further by the method, e.g. against what is installed)."""
    if not isinstance(value, str):
        raise TypeError(f"option {name} must be a string, got {value!r}")
    return value
