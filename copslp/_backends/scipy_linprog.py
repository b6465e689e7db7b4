r"""Method ``scipy``: the LP of COPS through :func:`scipy.optimize.linprog` (its HiGHS).

linprog minimises, so it is given the scaled LP of :mod:`copslp._backends.lp` as

.. math::

    \min_x \; -\langle s_0, x\rangle / \sigma_0 \quad\text{s.t.}\quad
    \mathbf 1^\top x = k \;(\texttt{A\_eq}),\qquad
    -A_{\ge}\, x \le -\ell_{\ge} \;(\texttt{A\_ub}),\qquad 0 \le x \le 1,

where ``A_>=`` holds the bound rows and floor rows. Sign convention: linprog's
``marginals`` are the sensitivities of its (minimised) objective to ``b_eq`` and ``b_ub``.
With the objective and the ``>=`` rows both negated, the ``A_ub`` marginals are already the
sensitivity of the maximum to the original right-hand side (sign +1), while the ``A_eq``
marginal has the opposite sign (-1).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from .._deadline import call_with_deadline
from .._errors import SolverError
from .._infeasibility import backend_infeasible_error
from .._problem import Problem
from .._result import LPSolution
from .lp import build_lp, clip_to_box, duals_to_convention

__all__ = ["solve_scipy"]


def solve_scipy(problem: Problem, *, solver, time_limit, tolerance) -> LPSolution:
    """Solve the LP relaxation with :func:`scipy.optimize.linprog`.

    Parameters
    ----------
    problem : Problem
    solver : {"highs-ipm", "highs-ds", "highs"}
        linprog's ``method``: interior point with crossover, dual simplex, or HiGHS's choice.
    time_limit : float, optional
        Seconds. linprog's HiGHS checks it between iterations only, so with a limit the solve
        runs in a separate process stopped after :func:`copslp._deadline.deadline_for` seconds, as for the
        method ``highs``.
    tolerance : float
        Relative accuracy promised to the certificate; also linprog's primal and dual
        feasibility tolerances (and the ipm optimality tolerance) on the scaled LP.

    Returns
    -------
    LPSolution
        ``info``: ``solver``, ``iterations``, ``status`` and ``message`` from linprog,
        ``objective``, ``budget_dual``, ``floor_multipliers``.
    """
    settings = {"problem": problem, "solver": solver, "time_limit": time_limit, "tolerance": tolerance}
    return call_with_deadline(_solve_here, settings, time_limit=time_limit, who="linprog (HiGHS)")


def _solve_here(problem: Problem, *, solver, time_limit, tolerance) -> LPSolution:
    """:func:`solve_scipy` in this process."""
    lp = build_lp(problem)
    matrix = lp.matrix.tocsr()

    options = {
        "presolve": False,
        "primal_feasibility_tolerance": max(tolerance, 1e-10),
        "dual_feasibility_tolerance": max(tolerance, 1e-10),
    }
    if solver == "highs-ipm":
        options["ipm_optimality_tolerance"] = max(tolerance, 1e-12)
    if time_limit is not None:
        options["time_limit"] = time_limit
    has_inequalities = lp.n_rows > 1
    result = linprog(
        -lp.objective,
        A_ub=-matrix[1:] if has_inequalities else None,
        b_ub=-lp.row_lower[1:] if has_inequalities else None,
        A_eq=matrix[:1],
        b_eq=lp.row_lower[:1],
        bounds=(0.0, 1.0),
        method=solver,
        options=options,
    )
    if result.status == 2:
        raise backend_infeasible_error(problem)
    if result.status != 0:
        raise SolverError(f"linprog ({solver}) failed with status {result.status}: {result.message}")

    marginals = np.concatenate([
        np.asarray(result.eqlin.marginals, dtype=np.float64),
        np.asarray(result.ineqlin.marginals, dtype=np.float64) if has_inequalities else np.empty(0),
    ])
    duals = duals_to_convention(problem, lp, marginals, equality_sign=-1.0, inequality_sign=1.0)
    return LPSolution(
        x=clip_to_box(result.x),
        multipliers=duals.multipliers,
        tolerance=tolerance,
        info={
            "solver": solver,
            "iterations": int(result.nit),
            "status": int(result.status),
            "message": str(result.message),
            "objective": -float(result.fun) * lp.objective_scale,
            "budget_dual": duals.budget_dual,
            "floor_multipliers": duals.floor_multipliers,
        },
    )
