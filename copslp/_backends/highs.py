r"""Method ``highs``: the LP of COPS handed to HiGHS through highspy.

Solves the scaled LP of :mod:`copslp._backends.lp`

.. math::

    \max_x \; \langle s_0, x\rangle / \sigma_0 \quad\text{s.t.}\quad \textstyle\sum_j x_j = k,\;
    \langle s_i, x\rangle / \sigma_i \ge b_i / \sigma_i,\;
    \textstyle\sum_{j \in G_l} x_j \ge f_l,\; 0 \le x \le 1

as one ``HighsLp`` passed in bulk (column-wise, int32 indices). Sign convention: for a
maximisation HiGHS's ``row_dual`` is the sensitivity of the optimum to the row's right-hand
side (``+mu`` on the budget row, ``-lambda_i`` on a ``>=`` row), so both signs are +1 in
:func:`copslp._backends.lp.duals_to_convention`.

The helpers here (a silenced ``Highs`` whose every option is checked, bulk model passing) are
shared with the method ``milp``.
"""

from __future__ import annotations

import functools

from .._deadline import call_with_deadline
from .._errors import SolverError
from .._infeasibility import backend_infeasible_error
from .._problem import Problem
from .._result import LPSolution
from .lp import StandardLP, build_lp, clip_to_box, duals_to_convention

__all__ = ["solve_highs"]

#: Accuracy promised to the certificate by pdlp (relative). simplex and ipm (with crossover)
#: end at a vertex computed by factorisation: their answers are exact to ~1e-12, so the
#: requested ``tolerance`` holds. pdlp is a first-order method without crossover: its x and
#: duals are only accurate to a few digits, so its answers are certified at 1e-4 at best (a
#: looser ``tolerance`` is kept as given).
PDLP_TOLERANCE = 1e-4
_PRESOLVE = {True: "on", False: "off", "on": "on", "off": "off", "choose": "choose"}


_SILENT = {"output_flag": False, "log_to_console": False}


def new_highs():
    """A ``highspy.Highs`` whose output is off before it does anything that logs.

    HiGHS writes its banner ("Running HiGHS ...") on stdout at the first call that is not
    ``setOptionValue`` on an instance whose output is still on, and ``highspy.Highs()``
    makes such a call (``setCallback``) in its constructor. The subclass switches the output
    off first, so nothing of HiGHS ever reaches stdout.
    """
    highs = _silent_highs_class()()
    set_options(highs, _SILENT)
    return highs


@functools.cache
def _silent_highs_class():
    import highspy

    class SilentHighs(highspy.Highs):
        def enableCallbacks(self):  # called by highspy.Highs.__init__ before anything else
            set_options(self, _SILENT)
            super().enableCallbacks()

    return SilentHighs


def set_options(highs, options: dict) -> None:
    """``setOptionValue`` for each option; a rejected one raises ValueError (HiGHS only returns
    an error status)."""
    import highspy

    for name, value in options.items():
        status = highs.setOptionValue(name, value)
        if status != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS rejected option {name} = {value!r} (status {status.name})")


def pass_model(highs, lp: StandardLP, *, integer: bool = False) -> None:
    """Pass ``lp`` (maximised) to ``highs`` in bulk; ``integer`` marks every column integer."""
    import highspy

    model = highspy.HighsLp()
    size = lp.objective.shape[0]
    model.num_col_ = size
    model.num_row_ = lp.n_rows
    model.sense_ = highspy.ObjSense.kMaximize
    model.col_cost_ = lp.objective
    model.col_lower_ = lp.col_lower
    model.col_upper_ = lp.col_upper
    model.row_lower_ = lp.row_lower
    model.row_upper_ = lp.row_upper
    matrix = model.a_matrix_
    matrix.format_ = highspy.MatrixFormat.kColwise
    matrix.num_col_ = size
    matrix.num_row_ = lp.n_rows
    matrix.start_ = lp.matrix.indptr
    matrix.index_ = lp.matrix.indices
    matrix.value_ = lp.matrix.data
    if integer:
        model.integrality_ = [highspy.HighsVarType.kInteger] * size
    status = highs.passModel(model)
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS refused the model (passModel returned kError)")


def run(highs, problem: Problem, *, binary: bool = False) -> str:
    """Run HiGHS and return its model status string; raise unless the status is Optimal.

    Infeasible (also "unbounded or infeasible": the box rules out unboundedness) raises
    :class:`copslp.InfeasibleError`, anything else :class:`copslp.SolverError`.
    """
    import highspy

    run_status = highs.run()
    model_status = highs.getModelStatus()
    text = highs.modelStatusToString(model_status)
    if model_status == highspy.HighsModelStatus.kOptimal:
        if run_status == highspy.HighsStatus.kError:
            raise SolverError(f"HiGHS reported an error although the model status is {text!r}")
        return text
    if model_status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        raise backend_infeasible_error(problem, binary=binary)
    if model_status == highspy.HighsModelStatus.kTimeLimit:
        limit = highs.getOptionValue("time_limit")[1]
        raise SolverError(f"HiGHS reached its time limit of {limit} s without proving optimality")
    raise SolverError(f"HiGHS stopped with model status {text!r}")


def solve_highs(problem: Problem, *, solver, presolve, time_limit, tolerance) -> LPSolution:
    """Solve the LP relaxation with HiGHS.

    Parameters
    ----------
    problem : Problem
    solver : {"ipm", "simplex", "pdlp"}
        ``"ipm"`` (interior point, then crossover to a vertex: the fast choice at large D),
        ``"simplex"`` (HiGHS's default dual simplex: quadratic in D on this LP), or ``"pdlp"``
        (first-order, certified at ``max(tolerance, 1e-4)`` only).
    presolve : {"off", "on", "choose"} or bool
        HiGHS presolve; off by default (it does not shrink this LP and costs time).
    time_limit : float, optional
        Seconds. HiGHS checks it between iterations only, and one dual simplex iteration can
        take minutes here, so with a limit the solve runs in a separate process that is
        stopped after :func:`copslp._deadline.deadline_for` seconds with a
        :class:`copslp.SolverError` saying so.
    tolerance : float
        Relative accuracy promised to the certificate; also HiGHS's primal and dual
        feasibility tolerances (and the ipm / pdlp optimality tolerance), which act as
        relative ones on the scaled LP.

    Returns
    -------
    LPSolution
        ``info``: ``solver``, ``iterations`` (per HiGHS algorithm), ``model_status``,
        ``run_time`` (HiGHS's own clock), ``objective``, ``budget_dual``,
        ``floor_multipliers``.
    """
    settings = {"problem": problem, "solver": solver, "presolve": presolve, "time_limit": time_limit, "tolerance": tolerance}
    return call_with_deadline(_solve_here, settings, time_limit=time_limit, who="HiGHS")


def _solve_here(problem: Problem, *, solver, presolve, time_limit, tolerance) -> LPSolution:
    """:func:`solve_highs` in this process."""
    lp = build_lp(problem)

    highs = new_highs()
    options = {
        "solver": solver,
        "presolve": _PRESOLVE[presolve],
        "primal_feasibility_tolerance": max(tolerance, 1e-10),
        "dual_feasibility_tolerance": max(tolerance, 1e-10),
    }
    if solver == "ipm":
        options["run_crossover"] = "on"
        options["ipm_optimality_tolerance"] = max(tolerance, 1e-12)
    if solver == "pdlp":
        options["pdlp_optimality_tolerance"] = max(tolerance, 1e-10)
    if time_limit is not None:
        options["time_limit"] = time_limit
    set_options(highs, options)
    pass_model(highs, lp)
    status = run(highs, problem)

    solution = highs.getSolution()
    if not (solution.value_valid and solution.dual_valid):
        raise SolverError(f"HiGHS reported status {status!r} but no valid primal and dual solution")
    duals = duals_to_convention(problem, lp, solution.row_dual, equality_sign=1.0, inequality_sign=1.0)
    info = highs.getInfo()
    promised = max(tolerance, PDLP_TOLERANCE) if solver == "pdlp" else tolerance
    return LPSolution(
        x=clip_to_box(solution.col_value),
        multipliers=duals.multipliers,
        tolerance=promised,
        info={
            "solver": solver,
            "iterations": {
                "simplex": int(info.simplex_iteration_count),
                "ipm": int(info.ipm_iteration_count),
                "crossover": int(info.crossover_iteration_count),
                "pdlp": int(info.pdlp_iteration_count),
            },
            "model_status": status,
            "run_time": float(highs.getRunTime()),
            "objective": float(info.objective_function_value) * lp.objective_scale,
            "budget_dual": duals.budget_dual,
            "floor_multipliers": duals.floor_multipliers,
        },
    )
