"""The one public door: :func:`solve`."""

from __future__ import annotations

import time
import warnings

import numpy as np

from ._certificate import certify, certify_binary
from ._errors import CopsWarning, SolverError, quiet_arithmetic
from ._problem import prepare_problem, raise_if_sums_overflow
from ._registry import get_method
from ._result import Result
from ._rounding import round_to_mask
from ._scan import scan_point

__all__ = ["solve"]


def solve(scores, budget, *, gamma=None, bounds=None, groups=None, floors=None, method="auto",
          options=None) -> Result:
    r"""Keep ``budget`` elements that maximise the primary score while holding the others.

    Solves the LP relaxation of COPS (COmbined Pruning Scores) and rounds it to a mask:

    .. math::

        \max_{x \in [0,1]^D} \; \langle s_0, x\rangle
        \quad\text{s.t.}\quad \sum_j x_j = k, \qquad
        \langle s_i, x\rangle \ge b_i \;\; (i = 1..n-1), \qquad
        \sum_{j \in G_l} x_j \ge f_l \;\; (\text{each group } l).

    Its dual is :math:`\min_{\lambda \ge 0} T_k(s_0 + \sum_i \lambda_i s_i) - \langle\lambda, b\rangle`
    with :math:`T_k` the sum of the k largest entries; an optimal x is the top-k of
    :math:`v = s_0 + \sum_i \lambda^*_i s_i` up to at most n fractional entries at the k-th level.

    Parameters
    ----------
    scores : array_like, shape (n, D), or sequence of n 1-D arrays
        Row 0 is the primary score s_0, rows 1..n-1 the secondary scores. float32, float64
        or integer; finite. With n = 1 the answer is the top-k of s_0.
    budget : int or float
        ``k`` with ``1 <= k <= D``, or a float in (0, 1]: the kept fraction of D
        (``k = max(1, round(fraction * D))``).
    gamma : float or sequence of float, optional
        Relative bounds in [0, 1]: ``b_i = gamma_i * M_i`` with ``M_i`` the sum of the k
        largest entries of s_i (the best any k-mask reaches). ``gamma_i = 0`` switches bound i
        off. Default when neither ``gamma`` nor ``bounds`` is given: 0.9 for every secondary
        score (``copslp._problem.DEFAULT_GAMMA``).
    bounds : float or sequence of float, optional
        Absolute thresholds b_i instead of ``gamma`` (``-inf`` switches one off).
    groups : array of int, shape (D,), optional
        Group index (0..G-1) of each element, e.g. its layer. Needs ``floors``.
    floors : int or sequence of int, optional
        Minimum number of kept elements in each group (one int for all groups).
    method : str, default "auto"
        One of :func:`available_methods` ("auto" is "analytic").
    options : mapping, optional
        Options of the method, e.g. ``{"solver": "simplex"}`` for ``"highs"``; the README's
        method table lists them with their defaults. An option the method does not have is
        a ``ValueError`` naming the valid ones.

    Returns
    -------
    Result
        The LP point ``x``, its exact-k mask, objective values, multipliers and the
        optimality certificate; see :class:`copslp.Result`.

    Raises
    ------
    TypeError, ValueError
        Bad input, naming the argument and the value (a misspelt keyword is a TypeError).
    InfeasibleError
        No point meets the bounds; the message gives the largest reachable value.
    SolverError
        The method failed or its answer did not pass the certificate.
    ImportError
        The method's optional dependency is not installed.
    """
    start = time.perf_counter()
    spec = get_method(method)
    if not spec.is_available():
        missing = spec.missing()
        raise ImportError(
            f"method {spec.name!r} needs {', '.join(missing)}, which is not installed "
            f"(pip install 'copslp[{spec.name}]' or pip install {' '.join(missing)})"
        )
    settings = spec.settings(options)
    prepared = prepare_problem(scores, budget, gamma=gamma, bounds=bounds, groups=groups, floors=floors)

    method_start = time.perf_counter()
    try:
        first = spec.run_first_pass(prepared, settings)  # the method's first pass, validation's too
    except Exception:
        prepared.complete()  # the input's own fault (non-finite entries, sums that overflow) is said first
        raise
    if first is None:
        validation_start = time.perf_counter()
        problem = prepared.complete()
        method_start += time.perf_counter() - validation_start
    else:
        problem = prepared.complete(first.best, first.totals)
    try:
        with quiet_arithmetic():
            solution = spec.load()(problem, **settings, **({} if first is None else {"first_pass": first}))
    except SolverError:
        raise_if_sums_overflow(problem.scores)  # the cause a user can mend
        raise
    method_time = time.perf_counter() - method_start
    if spec.finishes:
        _warn_if_missed(solution)
        return solution.timed(time.perf_counter() - start, method_time)

    x = solution.x
    tolerance = solution.tolerance
    with quiet_arithmetic():
        if spec.relaxation:
            scan = scan_point(problem, x, tolerance, solution.multipliers)
            certificate = certify(problem, x, solution.multipliers, rtol=tolerance, scan=scan)
        else:
            scan = scan_point(problem, x, tolerance)
            certificate = certify_binary(problem, x, solution, rtol=tolerance)
        if not certificate.passed:
            raise_if_sums_overflow(problem.scores)
            raise SolverError(f"method {spec.name!r} returned a point that is not optimal: {certificate.summary()}")
        mask, rule, mask_values = round_to_mask(problem, x, tolerance, scan, solution.multipliers)
    values = scan.values
    violations = np.maximum(problem.thresholds - mask_values[1:], 0.0)
    violations[~np.isfinite(problem.thresholds)] = 0.0
    missed = violations > tolerance * np.maximum(np.abs(problem.thresholds), 1e-300)
    message = f"{certificate.summary()}; mask by rule: {rule}"
    if missed.any():
        message += f"; the mask misses bounds by {violations.tolist()}"
    info = dict(solution.info)
    info["rounding"] = rule
    result = Result(
        mask=mask,
        point=x,
        objective=float(values[0]),
        mask_objective=float(mask_values[0]),
        multipliers=np.asarray(solution.multipliers, dtype=np.float64),
        floor_multipliers=certificate.floor_multipliers,
        budget_dual=certificate.budget_dual,
        thresholds=problem.thresholds,
        bound_values=values[1:],
        mask_bound_values=mask_values[1:],
        mask_violations=violations,
        mask_meets_bounds=not bool(missed.any()),
        rounding_loss=float(values[0] - mask_values[0]),
        budget=problem.budget,
        size=problem.size,
        n_fractional=int(scan.fractional.shape[0]),
        message=message,
        method=spec.name,
        wall_time=time.perf_counter() - start,
        method_time=method_time,
        certificate=certificate,
        info=info,
    )
    _warn_if_missed(result)
    return result


def _warn_if_missed(result: Result) -> None:
    """A :class:`CopsWarning` when the rounded mask misses a secondary bound."""
    if not result.mask_meets_bounds:
        warnings.warn(f"the rounded mask misses secondary bounds by {result.mask_violations.tolist()}", CopsWarning,
                      stacklevel=3)
