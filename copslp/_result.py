"""Records shared by every method: what a method returns, what :func:`copslp.solve` returns.

Sign convention for duals (every method converts its backend's signs to this one). With
``v = s_0 + sum_i lambda_i s_i`` and ``w_j = v_j + nu_{g(j)}`` the Lagrangian of

    max <s_0, x>  s.t.  sum(x) = k,  <s_i, x> >= b_i,  sum_{j in G_l} x_j >= f_l,  0 <= x <= 1

is ``<w, x> - <lambda, b> - <nu, f> - mu (sum(x) - k)``:
``multipliers`` (lambda) and ``floor_multipliers`` (nu) are >= 0 and positive only on tight
rows; ``budget_dual`` (mu) is the level that separates kept (w_j > mu) from dropped
(w_j < mu) elements; it may have either sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

__all__ = ["LPSolution", "Certificate", "Result"]


@dataclass(frozen=True)
class LPSolution:
    """What a method hands back to :func:`copslp.solve`.

    ``x`` is the LP point (float64, length D; a boolean mask when the point is integral and
    the method produced it as a mask, as the plain top-k does; or an
    :class:`copslp._point.IndexedPoint`, the positions of its ones and the few other nonzero
    entries, as the analytic method gives its screened answers) and ``multipliers`` one
    lambda per secondary score (0 for switched-off bounds), in the sign convention of this
    module. ``tolerance``
    is the relative accuracy the method promises; the certificate is checked at it.
    """

    x: np.ndarray
    multipliers: np.ndarray
    tolerance: float
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Certificate:
    """The optimality certificate of docs/maths.md §3, recomputed from (x, lambda) alone.

    All violations are relative: the budget's to k; a bound's to the larger of the bound and
    the best value its score can reach; lambda >= 0 to the natural scale of lambda
    (max|s_0| / max|s_i|); complementarity to |mu| when that already meets the tolerance
    (levels that cross by a few ulps of v), else to the magnitude of v's terms,
    ``max|s_0| + sum_i lambda_i max|s_i|``; the duality gap to the largest of the terms of
    the dual bound (the objective, k mu, lambda b), else to the scores' scale.

    Attributes
    ----------
    passed : bool
        Every violation is at most ``tolerance``.
    budget_dual : float
        mu, derived from x and lambda: between the largest w_j with x_j < 1 and the smallest
        w_j with x_j > 0.
    floor_multipliers : ndarray or None
        nu, derived from x, lambda and mu (only with floors).
    primal_violation : float
        Worst violation of sum(x) = k, 0 <= x <= 1, the bounds and the floors.
    dual_violation : float
        Worst violation of lambda >= 0 (and lambda = 0 on switched-off bounds).
    complementarity_violation : float
        Worst violation of "x_j = 1 where w_j > mu, x_j = 0 where w_j < mu".
    duality_gap : float
        (dual bound - primal objective) / scale, where the dual bound is
        ``k mu - <lambda, b> - <nu, f> + sum_j max(w_j - mu, 0)`` (weak duality makes it an
        upper bound on the LP optimum for any lambda, nu >= 0).
    dual_bound : float
        That upper bound on the LP optimum.
    tolerance : float
        The tolerance it was checked at.
    screened : int
        Elements the certificate did not read (0: it read every one). The analytic method's
        screening passes decided them for every lambda in a box that holds the multipliers:
        each one kept had ``v_j`` above a level and each one dropped below one, compared and
        summed in that pass; the certificate takes those levels as bounds on their extremes
        of v (``options={"certificate_reads": "all"}`` makes it read every element).
    """

    passed: bool
    budget_dual: float
    floor_multipliers: np.ndarray | None
    primal_violation: float
    dual_violation: float
    complementarity_violation: float
    duality_gap: float
    dual_bound: float
    tolerance: float
    screened: int = 0

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        read = f"; {self.screened} elements decided by screening levels" if self.screened else ""
        return (
            f"certificate {verdict} at rtol {self.tolerance:.1e}: primal {self.primal_violation:.1e}, "
            f"dual {self.dual_violation:.1e}, complementarity {self.complementarity_violation:.1e}, "
            f"gap {self.duality_gap:.1e}{read}"
        )


@dataclass(frozen=True)
class Result:
    """The answer of :func:`copslp.solve`, the same record for every method.

    Attributes
    ----------
    mask : ndarray of bool, shape (D,)
        Exactly ``budget`` True entries: the LP point rounded to a mask (docs/maths.md §5).
    x : ndarray of float64, shape (D,)
        The LP solution. When the method produced it as a mask (the plain top-k: one score,
        or every bound off, without floors) or as a mask and a few other entries (the
        analytic method's answers: at most r + 1 entries besides the mask), the float64
        array is made on first access, so that solving writes no float64 array of length D.
        Scores sharded over processes (``torch_adapter.solve_tensors`` with a process
        group): the point is never gathered, and reading ``x`` raises AttributeError;
        ``bound_values``, ``objective`` and ``n_fractional`` describe it.
    point : array, mask, :class:`copslp._point.IndexedPoint` or None
        The LP point as the method produced it, of which ``x`` is the float64 array (None
        where it was never gathered).
    objective : float
        ``<s_0, x>``, the LP optimum: an upper bound on the best mask's primary score.
    mask_objective : float
        ``<s_0, mask>``.
    multipliers : ndarray, shape (n - 1,)
        lambda_i >= 0, one per secondary score (see the module docstring for the convention).
    floor_multipliers : ndarray or None
        nu_l >= 0, one per group, when floors were given.
    budget_dual : float
        mu, the kept/dropped level of ``w = s_0 + sum_i lambda_i s_i (+ nu)``.
    thresholds : ndarray, shape (n - 1,)
        The absolute bounds b_i (``-inf`` where switched off).
    bound_values, mask_bound_values : ndarray, shape (n - 1,)
        ``<s_i, x>`` and ``<s_i, mask>``.
    mask_violations : ndarray, shape (n - 1,)
        ``max(b_i - <s_i, mask>, 0)``: how far the mask misses each bound (0 for the LP point
        by construction; the rounding keeps it 0 whenever a choice allows it).
    mask_meets_bounds : bool
        Every ``mask_violations`` entry is within the method's tolerance of 0 (when it is
        not, :func:`copslp.solve` also issues a :class:`copslp.CopsWarning`). Floors are
        always met by the mask.
    rounding_loss : float
        ``objective - mask_objective``: what rounding the LP point to a mask cost in the
        primary score. It is >= 0 whenever the mask meets every bound; a mask that misses a
        bound (possible with several bounds) may beat the LP optimum. Not to be confused
        with ``certificate.duality_gap``, the LP's own optimality gap (0 up to round-off).
    budget : int
        k.
    size : int
        D (over every process, for sharded scores; ``mask`` then holds this process's part).
    n_fractional : int
        Number of entries of x strictly between 0 and 1.
    message : str
        The certificate's summary and the rounding rule used, in words.
    method : str
        The method that produced the answer (``"analytic"`` for ``"auto"``).
    wall_time : float
        Seconds for the whole call: validation, method, rounding and certificate.
    method_time : float
        Seconds spent inside the method alone. Where the analytic method's first pass makes
        validation's (relative bounds in (0, 1), no floors or floors on contiguous groups,
        D >= 2^20 and 2k <= D: the problems it screens), the finiteness check and the
        ``T_k(s_i)`` read there count in it.
    certificate : Certificate
        The optimality certificate of the LP point; a returned Result has always passed it
        (otherwise :func:`copslp.solve` raises :class:`copslp.SolverError`).
    info : mapping
        Method-specific details (iterations, survivors, backend status, ...).
    """

    mask: np.ndarray
    point: Any = field(repr=False, compare=False)
    objective: float
    mask_objective: float
    multipliers: np.ndarray
    floor_multipliers: np.ndarray | None
    budget_dual: float
    thresholds: np.ndarray
    bound_values: np.ndarray
    mask_bound_values: np.ndarray
    mask_violations: np.ndarray
    mask_meets_bounds: bool
    rounding_loss: float
    budget: int
    size: int
    n_fractional: int
    message: str
    method: str
    wall_time: float
    method_time: float
    certificate: Certificate
    info: Mapping[str, Any] = field(default_factory=dict)

    def timed(self, wall_time: float, method_time: float) -> "Result":
        """This result with its times set."""
        return replace(self, wall_time=wall_time, method_time=method_time)

    @property
    def x(self) -> np.ndarray:
        if self.point is None:
            raise AttributeError("x: the LP point of scores sharded over processes is never gathered in one "
                                 "process; bound_values, objective and n_fractional describe it")
        if not isinstance(self.point, np.ndarray) or self.point.dtype == np.bool_:
            object.__setattr__(self, "point", np.asarray(self.point, dtype=np.float64))
        return self.point

    def summary(self) -> dict:
        """A JSON-friendly summary (no length-D arrays)."""
        def floats(a):
            return None if a is None else [float(v) for v in np.asarray(a)]
        return {
            "method": self.method,
            "budget": self.budget,
            "objective": self.objective,
            "mask_objective": self.mask_objective,
            "rounding_loss": self.rounding_loss,
            "mask_meets_bounds": self.mask_meets_bounds,
            "thresholds": floats(self.thresholds),
            "bound_values": floats(self.bound_values),
            "mask_bound_values": floats(self.mask_bound_values),
            "mask_violations": floats(self.mask_violations),
            "multipliers": floats(self.multipliers),
            "floor_multipliers": floats(self.floor_multipliers),
            "budget_dual": self.budget_dual,
            "n_fractional": self.n_fractional,
            "wall_time": self.wall_time,
            "method_time": self.method_time,
            "certificate": self.certificate.summary(),
            "certificate_passed": self.certificate.passed,
            "message": self.message,
        }
