r"""Method ``cvxpy``: the LP of COPS as a cvxpy model, solved by any installed cvxpy solver.

The model is the scaled LP of :mod:`copslp._backends.lp`, written with matrix products:

.. math::

    \max_x \; c^\top x \quad\text{s.t.}\quad A_{=}\, x = k,\qquad A_{\ge}\, x \ge \ell_{\ge},
    \qquad 0 \le x \le 1 \;(\text{variable bounds}),

``A_=`` the budget row, ``A_>=`` the bound and floor rows. Sign convention: for a
``Maximize`` problem cvxpy's ``dual_value`` of the equality is the sensitivity of the maximum
to its right-hand side (sign +1), and that of a ``>=`` constraint is its non-negative
multiplier, minus the sensitivity (sign -1).

cvxpy is imported inside :func:`solve_cvxpy` only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._errors import SolverError
from .._infeasibility import backend_infeasible_error
from .._problem import Problem
from .._result import LPSolution
from .._stdout import native_stdout_to_stderr
from .lp import build_lp, clip_to_box, duals_to_convention

__all__ = ["solve_cvxpy", "SOLVER_TOLERANCE", "DEFAULT_SOLVERS"]

#: Preferred default solvers, best first: HiGHS ends at a vertex; Clarabel is an accurate
#: interior-point method.
DEFAULT_SOLVERS = ("HIGHS", "CLARABEL")

#: Relative accuracy each solver's answer is certified at, unless ``tolerance`` is given.
#: HiGHS (ipm with crossover, the default options here) and SciPy (linprog's HiGHS) return
#: vertices. Clarabel and ECOS are interior-point methods without crossover: x has entries
#: like 1 - 1e-11 and elements whose combined score is near the budget level stay fractional.
#: At Clarabel's default stopping tolerances (1e-8) the certificate's complementarity check
#: failed at 1e-6 on some random problems (violations up to 3e-5); with the tighter defaults
#: below it passed at 1e-7 on all of 40 and at 1e-8 on 38, so 1e-6 is promised. SCS is a
#: first-order method: at its default eps (1e-4) 3 of 20 random problems needed 1e-3; at
#: the eps of 1e-7 set below all 20 passed at 1e-4, so 1e-3 is promised. OSQP (first-order,
#: for QPs) often stops at its iteration limit on this LP; use it only with tight options.
SOLVER_TOLERANCE = {"HIGHS": 1e-7, "SCIPY": 1e-7, "CLARABEL": 1e-6, "ECOS": 1e-6, "SCS": 1e-3, "OSQP": 1e-3}
#: Tolerance for solvers not listed above.
OTHER_TOLERANCE = 1e-4

#: Options added for a solver unless the caller sets them: HiGHS's interior point with
#: crossover (its default dual simplex is quadratic in D on this LP); Clarabel stopping at
#: 1e-10 instead of 1e-8 and SCS at 1e-7 instead of 1e-4 (see ``SOLVER_TOLERANCE``).
DEFAULT_OPTIONS = {
    # a time limit: on some tiny ill-scaled problems HiGHS ipm without presolve never returns
    "HIGHS": {"highs_options": {"solver": "ipm", "run_crossover": "on", "presolve": "off", "time_limit": 60.0}},
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
    "SCS": {"eps_abs": 1e-7, "eps_rel": 1e-7},
}

_SOLVED = ("optimal", "optimal_inaccurate")
_INFEASIBLE = ("infeasible", "infeasible_inaccurate")


def solve_cvxpy(problem: Problem, *, solver, solver_options, tolerance) -> LPSolution:
    """Solve the LP relaxation as a cvxpy model.

    Parameters
    ----------
    problem : Problem
    solver : str, optional
        A name from ``cvxpy.installed_solvers()`` (case-insensitive). Default: HIGHS if
        installed, else CLARABEL, else the first installed solver.
    solver_options : mapping, optional
        Keyword arguments for ``cvxpy.Problem.solve`` (solver options). They are added to
        ``DEFAULT_OPTIONS`` of the solver and override them (HiGHS options go in
        ``{"highs_options": {...}}``, merged key by key).
    tolerance : float, optional
        Relative accuracy promised to the certificate; default ``SOLVER_TOLERANCE`` of the
        solver (1e-4 for solvers not listed there).

    Returns
    -------
    LPSolution
        ``info``: ``solver``, ``status`` (cvxpy's), ``iterations`` and ``solve_time`` (as the
        solver reports them), ``objective``, ``budget_dual``, ``floor_multipliers``.
    """
    import cvxpy as cp

    installed = list(cp.installed_solvers())
    if solver is None:
        solver = next((name for name in DEFAULT_SOLVERS if name in installed), installed[0] if installed else None)
        if solver is None:
            raise ValueError("cvxpy has no solver installed")
    elif not isinstance(solver, str) or solver.upper() not in installed:
        raise ValueError(f"unknown or uninstalled cvxpy solver {solver!r}; installed: {', '.join(installed)}")
    solver = solver.upper()
    if solver_options is not None and "solver" in solver_options:
        raise ValueError("give the cvxpy solver as solver=..., not inside solver_options")
    options = _merge(DEFAULT_OPTIONS.get(solver, {}), solver_options or {})
    tolerance = SOLVER_TOLERANCE.get(solver, OTHER_TOLERANCE) if tolerance is None else tolerance

    lp = build_lp(problem)
    x = cp.Variable(problem.size, bounds=[lp.col_lower, lp.col_upper])
    budget = lp.matrix[:1] @ x == lp.row_lower[:1]
    constraints = [budget]
    if lp.n_rows > 1:
        rows = lp.matrix[1:] @ x >= lp.row_lower[1:]
        constraints.append(rows)
    model = cp.Problem(cp.Maximize(lp.objective @ x), constraints)
    try:
        with native_stdout_to_stderr():  # cvxpy's Highs() writes HiGHS's banner
            model.solve(solver=solver, **options)
    except cp.error.SolverError as error:
        raise SolverError(f"cvxpy solver {solver} failed: {error}") from error
    if model.status in _INFEASIBLE:
        raise backend_infeasible_error(problem)
    if model.status not in _SOLVED or x.value is None:
        raise SolverError(
            f"cvxpy solver {solver} ended with status {model.status!r}"
            f"{'' if solver in DEFAULT_SOLVERS else '; HIGHS or CLARABEL solve this LP reliably'}"
        )

    if any(c.dual_value is None for c in constraints):
        raise SolverError(f"cvxpy solver {solver} returned no duals; the certificate needs them")
    raw = [np.atleast_1d(c.dual_value).astype(np.float64) for c in constraints]
    duals = duals_to_convention(problem, lp, np.concatenate(raw), equality_sign=1.0, inequality_sign=-1.0)
    stats = model.solver_stats
    return LPSolution(
        x=clip_to_box(x.value),
        multipliers=duals.multipliers,
        tolerance=tolerance,
        info={
            "solver": solver,
            "status": model.status,
            "iterations": stats.num_iters,
            "solve_time": stats.solve_time,
            "objective": float(model.value) * lp.objective_scale,
            "budget_dual": duals.budget_dual,
            "floor_multipliers": duals.floor_multipliers,
        },
    )


def _merge(defaults: Mapping, given: Mapping) -> dict:
    """``defaults`` updated by ``given``, one level deep for dict values (``highs_options``)."""
    merged = dict(defaults)
    for key, value in given.items():
        if isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
