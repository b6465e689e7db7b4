"""The registry of methods: lowercase name -> :class:`MethodSpec`.

Each method lives in its own module and has the signature
``solve_<name>(problem: Problem, **options) -> LPSolution``. Optional backends are imported
lazily inside their module; availability is decided here without importing them.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = ["MethodSpec", "register", "get_method", "available_methods", "METHODS"]


@dataclass(frozen=True)
class MethodSpec:
    """One method: where it lives, what it needs, which options it takes.

    ``target`` is ``"module:function"`` inside copslp, imported on first use.
    ``options`` maps each accepted keyword to its default.
    """

    name: str
    target: str
    requires: tuple[str, ...]
    exact: str
    cost: str
    options: Mapping[str, Any] = field(default_factory=dict)
    relaxation: bool = True  # False: the method solves the binary problem (milp)

    def is_available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def load(self) -> Callable:
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module, __package__), function)


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    name = spec.name
    if name != name.lower():
        raise ValueError(f"method names are lowercase, got {name!r}")
    if name in METHODS:
        raise ValueError(f"method {name!r} is already registered")
    METHODS[name] = spec
    return spec


def get_method(name) -> MethodSpec:
    """The spec for ``name``; ``"auto"`` is the analytic method."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a string, got {name!r}")
    key = "analytic" if name == "auto" else name
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(['auto', *METHODS])}")
    return METHODS[key]


def available_methods() -> list[str]:
    """Names of the methods whose dependencies are installed here, in registry order."""
    return [name for name, spec in METHODS.items() if spec.is_available()]


register(MethodSpec(
    "analytic", "._analytic:solve_analytic", ("numpy",), "yes (float eps)",
    "O(D) expected: a few selections", {"rtol": 1e-9, "sample_size": 65536, "seed": 0, "max_rounds": 30},
))
register(MethodSpec(
    "two_score", "._two_score:solve_two_score", ("numpy",), "to tol on lambda",
    "O(D log(1/tol)): one selection per bisection step", {"tol": 1e-10, "max_iter": 200},
))
register(MethodSpec(
    "highs", "._highs:solve_highs", ("highspy",), "solver tolerance",
    "generic LP; ipm ~D^1.3 measured", {"solver": "ipm", "presolve": "off", "time_limit": None, "tolerance": 1e-7},
))
register(MethodSpec(
    "scipy", "._scipy:solve_scipy", ("scipy",), "solver tolerance",
    "generic LP (scipy's HiGHS)", {"solver": "highs-ipm", "time_limit": None, "tolerance": 1e-7},
))
register(MethodSpec(
    "cvxpy", "._cvxpy:solve_cvxpy", ("cvxpy",), "solver tolerance",
    "generic conic model", {"solver": None, "solver_options": None, "tolerance": None},
))
register(MethodSpec(
    "milp", "._milp:solve_milp", ("highspy",), "binary optimum",
    "branch and bound; exponential worst case; D <= 2000", {"time_limit": 60.0, "max_size": 2000, "mip_rel_gap": 1e-9},
    relaxation=False,
))
