r"""Method ``milp``: the binary problem of COPS itself, by HiGHS's branch and bound.

Solves

.. math::

    \max_{m \in \{0,1\}^D} \; \langle s_0, m\rangle \quad\text{s.t.}\quad \textstyle\sum_j m_j = k,\;
    \langle s_i, m\rangle \ge b_i,\; \textstyle\sum_{j \in G_l} m_j \ge f_l

(the scaled rows of :mod:`copslp._backends.lp` with every column integer in [0, 1]). The answer is the
true binary optimum up to the relative gap HiGHS proves, not an LP point: it has no duals
(``multipliers`` are zeros) and is checked by ``certify_binary``, which reads ``mip_gap`` and
``mip_dual_bound`` from ``info``. Branch and bound is exponential in the worst case, so D is
capped by ``max_size``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._errors import SolverError
from .._problem import Problem
from .._result import LPSolution
from .._selection import kth_largest
from .highs import new_highs, pass_model, run, set_options
from .lp import StandardLP, build_lp

__all__ = ["solve_milp"]

#: Feasibility tolerance given to HiGHS (rows, on the scaled problem, and integrality). The
#: returned 0/1 mask is recomputed exactly, so this only limits how far a mask HiGHS accepts
#: may miss a bound; the certificate is checked at ``max(mip_rel_gap, FEASIBILITY)``.
FEASIBILITY = 1e-9


def solve_milp(problem: Problem, *, time_limit, max_size, mip_rel_gap) -> LPSolution:
    """Solve the binary problem with HiGHS MIP.

    Parameters
    ----------
    problem : Problem
    time_limit : float or None
        Seconds; reaching it before the gap is proved raises :class:`copslp.SolverError`.
    max_size : int
        Largest D accepted (a ValueError above it).
    mip_rel_gap : float
        Relative gap at which HiGHS stops (its absolute-gap stop is switched off, so scores
        of any magnitude are treated alike). The answer is certified at
        ``max(mip_rel_gap, 1e-9)``.

    Returns
    -------
    LPSolution
        ``x`` is the 0/1 mask as float64; ``multipliers`` are zeros. ``info``: ``mip_gap``,
        ``mip_dual_bound`` (unscaled upper bound on the binary optimum), ``objective``,
        ``nodes``, ``model_status``, ``run_time``.
    """
    if problem.size > max_size:
        raise ValueError(
            f"method 'milp' solves the binary problem by branch and bound and accepts D <= max_size = "
            f"{max_size}, got D = {problem.size}; raise max_size=... or use an LP method"
        )
    lp = _on_best_faces(problem, build_lp(problem))

    highs = new_highs()
    options = {
        "mip_rel_gap": float(mip_rel_gap),
        "mip_abs_gap": 0.0,
        "mip_feasibility_tolerance": FEASIBILITY,
        "primal_feasibility_tolerance": FEASIBILITY,
        # the LP relaxations' optimality too: at HiGHS's default 1e-7 two columns whose scaled costs
        # differ by 2.3e-8 count as equal, and it returned the worse (1000.99998 for 1001, gap "0")
        "dual_feasibility_tolerance": FEASIBILITY,
    }
    if time_limit is not None:
        options["time_limit"] = time_limit
    set_options(highs, options)
    pass_model(highs, lp, integer=True)
    status = run(highs, problem, binary=True)

    solution = highs.getSolution()
    if not solution.value_valid:
        raise SolverError(f"HiGHS reported status {status!r} but no mask")
    values = np.asarray(solution.col_value, dtype=np.float64)
    mask = np.round(values)
    if np.abs(values - mask).max(initial=0.0) > 1e-6 or int(mask.sum()) != problem.budget:
        raise SolverError("HiGHS returned a point that is not a 0/1 mask with exactly k ones")
    info = highs.getInfo()
    return LPSolution(
        x=mask,
        multipliers=np.zeros(problem.n_scores - 1),
        tolerance=max(float(mip_rel_gap), FEASIBILITY),
        info={
            "mip_gap": float(info.mip_gap),
            "mip_dual_bound": float(info.mip_dual_bound) * lp.objective_scale,
            "objective": float(info.objective_function_value) * lp.objective_scale,
            "nodes": int(info.mip_node_count),
            "model_status": status,
            "run_time": float(highs.getRunTime()),
        },
    )


def _on_best_faces(problem: Problem, lp: StandardLP) -> StandardLP:
    r"""``lp`` with the columns fixed that a bound at the best value its score reaches
    (:math:`b_i \ge T_k(s_i)`, gamma = 1) decides: a k-mask meets it only if it keeps every
    element with :math:`s_{ij}` above the k-th largest value L of :math:`s_i` and none below
    (its face), so those are fixed to 1 and 0 and the mask chooses among the entries tied at
    L. The same binary problem, without its knife edge: beside a near tie (1.00000002 against
    ties at 1, D = 4, k = 2) HiGHS's branch and bound called the row infeasible at its
    tolerance. The row stays (it holds on the face up to the round-off of its sum)."""
    at_best = [i for i in problem.active if problem.thresholds[i] >= problem.best_reachable[i]]
    if not at_best:
        return lp
    lower, upper = lp.col_lower.copy(), lp.col_upper.copy()
    for i in at_best:
        s_i = problem.scores[i + 1]
        level = kth_largest(np.asarray(s_i, dtype=np.float64), problem.budget)
        lower[s_i > level] = 1.0
        upper[s_i < level] = 0.0
    # two faces that disagree on an element: no mask is on both, and the rows say so to HiGHS
    return replace(lp, col_lower=np.minimum(lower, upper), col_upper=upper)
