r"""The LP of COPS in standard arrays, shared by the generic backends (highs, scipy, cvxpy, milp).

Every generic backend solves the same scaled LP

.. math::

    \max_x \; c^\top x \quad\text{s.t.}\quad
    \ell \le A x \le u, \qquad 0 \le x \le 1,

built here once, with ``c = s_0 / \sigma_0`` and the rows of ``A`` in this order:

* row 0, the budget row: ``sum(x) = k``;
* one row per active secondary score i: ``<s_i, x> / \sigma_i >= b_i / \sigma_i``;
* one row per group l with a positive floor: ``sum_{j in G_l} x_j >= f_l``.

The primary score is divided by its largest magnitude ``\sigma_0`` (1 for an all-zero score),
and the bound on score i by ``\sigma_i = \max(T_k(s_i), |b_i|) / k``, at most its largest
magnitude (that where both are 0), so that the backends' absolute tolerances act as relative
ones on the scale the certificate measures a bound against (the bound, the best value
``T_k(s_i)``). A score whose largest entries in magnitude are few and far larger than the k
it keeps (one entry of -1 among entries of 1e-9) scaled by its largest magnitude would leave
the entries that decide the bound below HiGHS's tolerances (it drops matrix entries under
1e-9, and meets rows to 1e-7): on this scale they are of order 1 and the large ones large.
Switched-off bounds and zero floors get no row.

Only bounds that some point meets on its own reach a backend: :func:`build_lp` raises the
:class:`copslp.InfeasibleError` of :func:`copslp._infeasibility.single_bound_error` (the
analytic method's verdict, with the best reachable value) for any other. This keeps the
scaled bounds where a backend reads them as numbers: ``<s_i, x> / \sigma_i`` lies in
``[-k, k]``, so a bound that can be met is at most ``k`` after scaling, and a scaled bound below
``-k``, which every point meets, is raised to ``-k``. (HiGHS reads a bound of 1e20 or more as
infinite, and a positive bound on an all-zero row as met within its feasibility tolerance.)

Duals. A backend reports row duals ``y`` in its own sign convention; with the sign that makes
``sign * y_r`` the sensitivity ``d(max c^T x) / d(rhs_r)`` of the scaled maximum to the row's
right-hand side, :func:`duals_to_convention` returns copslp's convention (see
``copslp/_result.py``): ``lambda_i = -sigma_0 / sigma_i * sensitivity``, ``nu_l = -sigma_0 *
sensitivity`` and ``mu = sigma_0 * sensitivity`` of the budget row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse

from .._infeasibility import single_bound_error
from .._problem import Problem

__all__ = ["StandardLP", "Duals", "build_lp", "duals_to_convention", "clip_to_box"]


@dataclass(frozen=True, eq=False)
class StandardLP:
    """``max objective @ x`` s.t. ``row_lower <= matrix @ x <= row_upper``, ``col_lower <= x <= col_upper``.

    Attributes
    ----------
    objective : ndarray, shape (D,)
        ``s_0 / objective_scale``.
    matrix : scipy.sparse.csc_array, shape (m, D)
        Rows as listed in the module docstring; int32 indices.
    row_lower, row_upper : ndarray, shape (m,)
        Row bounds (``inf`` where a row has none).
    col_lower, col_upper : ndarray, shape (D,)
        0 and 1.
    objective_scale : float
        ``sigma_0``.
    budget_row : int
        Always 0.
    bound_rows, bound_scores, bound_scales : ndarray
        Row index, secondary-score index (0-based among the secondary scores) and ``sigma_i``
        of each active bound.
    floor_rows, floor_groups : ndarray
        Row index and group index of each positive floor.
    n_groups : int
        Number of groups (0 without floors).
    """

    objective: np.ndarray
    matrix: sparse.csc_array
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    objective_scale: float
    budget_row: int
    bound_rows: np.ndarray
    bound_scores: np.ndarray
    bound_scales: np.ndarray
    floor_rows: np.ndarray
    floor_groups: np.ndarray
    n_groups: int

    @property
    def n_rows(self) -> int:
        return self.matrix.shape[0]


@dataclass(frozen=True)
class Duals:
    """Row duals in copslp's convention: ``multipliers`` (lambda, one per secondary score,
    0 for switched-off bounds), ``floor_multipliers`` (nu, one per group, or None) and
    ``budget_dual`` (mu)."""

    multipliers: np.ndarray
    floor_multipliers: np.ndarray | None
    budget_dual: float


def _scale(values: np.ndarray) -> float:
    peak = float(np.abs(values).max())
    return peak if peak > 0 else 1.0


def _bound_scale(problem: Problem, index: int) -> float:
    """``sigma_i`` of the bound on secondary score ``index``: the mean of the k largest entries
    (``T_k(s_i) / k``) or ``|b_i| / k`` if larger, at most the largest magnitude, and the largest
    magnitude where both are 0 (see the module docstring)."""
    peak = _scale(problem.scores[index + 1])
    level = max(abs(float(problem.thresholds[index])), abs(float(problem.best_reachable[index]))) / problem.budget
    return min(level, peak) if level > 0 else peak


def build_lp(problem: Problem) -> StandardLP:
    """The scaled LP of ``problem`` (see the module docstring).

    Raises
    ------
    InfeasibleError
        A bound that no point within the budget (and floors) meets on its own.
    """
    error = single_bound_error(problem)
    if error is not None:
        raise error
    size = problem.size
    active = problem.active
    objective_scale = _scale(problem.primary)
    bound_scales = np.array([_bound_scale(problem, i) for i in active], dtype=np.float64)

    dense = np.empty((1 + active.shape[0], size), dtype=np.float64)
    dense[0] = 1.0
    for row, i in enumerate(active, start=1):
        np.divide(problem.scores[i + 1], bound_scales[row - 1], out=dense[row])
    matrix = sparse.csc_array(dense)
    lower = [np.array([float(problem.budget)]), np.maximum(problem.thresholds[active] / bound_scales, -problem.budget)]
    upper = [np.array([float(problem.budget)]), np.full(active.shape[0], np.inf)]

    n_groups = 0
    floor_groups = np.empty(0, dtype=np.intp)
    if problem.has_floors:
        n_groups = problem.floors.shape[0]
        floor_groups = np.flatnonzero(problem.floors > 0)
        if floor_groups.size:
            row_of_group = np.full(n_groups, -1, dtype=np.intp)
            row_of_group[floor_groups] = np.arange(floor_groups.shape[0])
            rows = row_of_group[problem.groups]
            columns = np.flatnonzero(rows >= 0)
            floor_block = sparse.csc_array(
                (np.ones(columns.shape[0]), (rows[columns], columns)), shape=(floor_groups.shape[0], size)
            )
            matrix = sparse.vstack([matrix, floor_block], format="csc")
            lower.append(problem.floors[floor_groups].astype(np.float64))
            upper.append(np.full(floor_groups.shape[0], np.inf))
    matrix.indices = matrix.indices.astype(np.int32, copy=False)
    matrix.indptr = matrix.indptr.astype(np.int32, copy=False)

    n_bounds = active.shape[0]
    return StandardLP(
        objective=np.divide(problem.primary, objective_scale, dtype=np.float64),
        matrix=matrix,
        row_lower=np.concatenate(lower),
        row_upper=np.concatenate(upper),
        col_lower=np.zeros(size),
        col_upper=np.ones(size),
        objective_scale=objective_scale,
        budget_row=0,
        bound_rows=np.arange(1, 1 + n_bounds),
        bound_scores=active,
        bound_scales=bound_scales,
        floor_rows=np.arange(1 + n_bounds, 1 + n_bounds + floor_groups.shape[0]),
        floor_groups=floor_groups,
        n_groups=n_groups,
    )


def duals_to_convention(problem: Problem, lp: StandardLP, row_duals, *, equality_sign: float,
                        inequality_sign: float) -> Duals:
    """Convert a backend's row duals (one per row of ``lp``, in row order) to copslp's convention.

    ``equality_sign * row_duals[budget_row]`` and ``inequality_sign * row_duals[r]`` (r a bound
    or floor row) must be the sensitivity of the scaled maximum to the row's right-hand side.
    Multipliers are projected onto ``>= 0`` (a solver's ``-1e-13`` is noise); the certificate
    checks the projected values.
    """
    y = np.asarray(row_duals, dtype=np.float64)
    if y.shape != (lp.n_rows,):
        raise ValueError(f"expected {lp.n_rows} row duals, got shape {y.shape}")
    sigma0 = lp.objective_scale
    multipliers = np.zeros(problem.n_scores - 1)
    multipliers[lp.bound_scores] = -inequality_sign * sigma0 * y[lp.bound_rows] / lp.bound_scales
    np.maximum(multipliers, 0.0, out=multipliers)
    floor_multipliers = None
    if problem.has_floors:
        floor_multipliers = np.zeros(lp.n_groups)
        floor_multipliers[lp.floor_groups] = np.maximum(-inequality_sign * sigma0 * y[lp.floor_rows], 0.0)
    budget_dual = float(equality_sign * sigma0 * y[lp.budget_row])
    return Duals(multipliers, floor_multipliers, budget_dual)


def clip_to_box(x) -> np.ndarray:
    """The solver's x as float64 in [0, 1] (bound violations of a solver are tolerance noise)."""
    return np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
