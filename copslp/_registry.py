"""The registry of methods: lowercase name -> :class:`MethodSpec`.

Each method lives in its own module and has the signature
``solve_<name>(problem: Problem, **options) -> LPSolution``; its options are declared here,
once, with their defaults and checks (:mod:`copslp._options`), and it receives all of them,
checked. Optional backends are imported lazily inside their module; availability is decided
here without importing them.

Adding a method: write ``copslp/_<name>.py`` with ``solve_<name>``, then one
``register(MethodSpec(...))`` call below. The shared test suite runs it on every problem.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ._options import (Option, any_string, check_options, fraction, gap_fraction, int_at_least, mapping_or_none, one_of,
                       optional, positive_number, seed)

__all__ = ["MethodSpec", "register", "get_method", "available_methods", "METHODS"]


@dataclass(frozen=True)
class MethodSpec:
    """One method: where it lives, what it needs, which options it takes.

    ``target`` is ``"module:function"`` inside copslp, imported on first use;
    ``options`` maps each accepted keyword to its :class:`~copslp._options.Option`;
    ``relaxation`` is False for a method that solves the binary problem itself (milp);
    ``finishes`` is True for a method that returns the whole :class:`~copslp.Result`, its
    mask and certificate made on its own road (analytic: the road shared with scores that
    are never in one array); the others return an LP point that :func:`copslp.solve` scans,
    certifies and rounds;
    ``first_pass`` (``"module:function"``, optional) makes validation's pass over the scores
    part of the method's own first one: it takes the :class:`~copslp._problem.PreparedProblem`
    and the options and returns what the method then receives as ``first_pass=`` (with the
    best values and row sums that complete the problem), or None where it does not apply.
    """

    name: str
    target: str
    requires: tuple[str, ...]
    options: Mapping[str, Option] = field(default_factory=dict)
    relaxation: bool = True
    finishes: bool = False
    first_pass: str | None = None

    def is_available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [module for module in self.requires if importlib.util.find_spec(module) is None]

    def load(self) -> Callable:
        return _load(self.target)

    def run_first_pass(self, prepared, settings: Mapping[str, Any]):
        """The method's first pass over ``prepared`` (see ``first_pass``), or None."""
        return None if self.first_pass is None else _load(self.first_pass)(prepared, **settings)

    def settings(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The options to call the method with: ``given`` checked, defaults filled in."""
        return check_options(self.name, self.options, given)

    def defaults(self) -> dict[str, Any]:
        return {name: option.default for name, option in self.options.items()}


def _load(target: str) -> Callable:
    module, function = target.split(":")
    return getattr(importlib.import_module(module, __package__), function)


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    name = spec.name
    if name != name.lower():
        raise ValueError(f"method names are lowercase, got {name!r}")
    if name in METHODS or name == "auto":
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


_TIME_LIMIT = Option(None, optional(positive_number), "seconds, or None for no limit")
_TOLERANCE = Option(1e-7, fraction, "relative accuracy promised to the certificate")

register(MethodSpec("analytic", "._analytic.driver:solve_analytic", ("numpy",), MappingProxyType({
    "rtol": Option(1e-9, fraction, "relative accuracy at which the answer is certified"),
    "sample_size": Option(65536, int_at_least(2), "size of the subsample that estimates lambda*"),
    "seed": Option(0, seed, "seed of the subsample (changes the time, not the answer)"),
    "max_rounds": Option(30, int_at_least(1), "box re-centrings before a SolverError"),
    "certificate_reads": Option("survivors", one_of("survivors", "all"),
                                "what the certificate reads: the innermost survivors and the levels of the screening "
                                "passes, or every element again"),
}), finishes=True, first_pass="._analytic.driver:first_pass"))
register(MethodSpec("two_score", "._two_score:solve_two_score", ("numpy",), MappingProxyType({
    "tol": Option(1e-10, fraction, "bisection stops when the bracket of lambda is this narrow (relative)"),
    "max_iter": Option(200, int_at_least(1), "bisection steps before a SolverError"),
})))
register(MethodSpec("highs", "._backends.highs:solve_highs", ("highspy",), MappingProxyType({
    "solver": Option("ipm", one_of("ipm", "simplex", "pdlp"), "HiGHS algorithm"),
    "presolve": Option("off", one_of("off", "on", "choose", True, False), "HiGHS presolve"),
    "time_limit": _TIME_LIMIT,
    "tolerance": _TOLERANCE,
})))
register(MethodSpec("scipy", "._backends.scipy_linprog:solve_scipy", ("scipy",), MappingProxyType({
    "solver": Option("highs-ipm", one_of("highs-ipm", "highs-ds", "highs"), "linprog method"),
    "time_limit": _TIME_LIMIT,
    "tolerance": _TOLERANCE,
})))
register(MethodSpec("cvxpy", "._backends.cvxpy_lp:solve_cvxpy", ("cvxpy",), MappingProxyType({
    "solver": Option(None, optional(any_string), "an installed cvxpy solver; None picks one"),
    "solver_options": Option(None, mapping_or_none, "keyword arguments for cvxpy.Problem.solve"),
    "tolerance": Option(None, optional(fraction), "promised accuracy; None: the solver's own"),
})))
register(MethodSpec("milp", "._backends.milp:solve_milp", ("highspy",), MappingProxyType({
    "time_limit": Option(60.0, optional(positive_number), "seconds, or None for no limit"),
    "max_size": Option(2000, int_at_least(1), "largest D accepted (branch and bound is exponential)"),
    "mip_rel_gap": Option(1e-9, gap_fraction, "relative MIP gap at which HiGHS stops"),
}), relaxation=False))
