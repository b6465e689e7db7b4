"""Shared test machinery for the copslp core suite.

* Hypothesis profiles: ``ci`` (bounded, derandomised; the default) and ``long`` (thousands of
  examples), selected with the ``HYPOTHESIS_PROFILE`` environment variable.
* :class:`Case`: one COPS instance as a caller would pass it to :func:`copslp.solve`.
* An independent reference: the LP (and the binary problem) built here directly with highspy
  (dual simplex, presolve on, tight tolerances), sharing no code with copslp.
* An independent dual bound: for any lambda >= 0, ``T_k(s_0 + sum_i lambda_i s_i) - <lambda, b>``
  (the greedy with floors) bounds the LP optimum from above; computed here by sorting.
* :func:`assert_optimal`: everything a correct answer of any LP method must satisfy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile(
        "long",
        max_examples=2000,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a dev extra; the property tests skip without it
    pass

import copslp
from copslp._registry import get_method

#: Relative agreement demanded between a method's LP optimum and the reference.
RTOL = 1e-7
#: Feasibility slack, relative to the magnitude of the terms summed.
FEAS_RTOL = 1e-7
#: Methods that solve the binary problem rather than the LP relaxation.
BINARY_METHODS = {"milp"}


# ----------------------------------------------------------------------------------------
# problem instances


@dataclass
class Case:
    """Arguments of one :func:`copslp.solve` call (``scores`` exactly as the caller gives it)."""

    scores: object
    budget: object
    gamma: object = None
    bounds: object = None
    groups: object = None
    floors: object = None
    label: str = ""
    options: dict = field(default_factory=dict)

    # -- the instance in float64, computed here without copslp --------------------------

    @cached_property
    def s(self) -> np.ndarray:
        s = np.array(self.scores, dtype=np.float64)
        return s[np.newaxis, :] if s.ndim == 1 else s

    @property
    def n(self) -> int:
        return self.s.shape[0]

    @property
    def size(self) -> int:
        return self.s.shape[1]

    @cached_property
    def k(self) -> int:
        if isinstance(self.budget, (int, np.integer)):
            return int(self.budget)
        return max(1, int(round(float(self.budget) * self.size)))

    @cached_property
    def best(self) -> np.ndarray:
        """M_i = sum of the k largest entries of s_i (i = 1..n-1)."""
        return np.array([top_k_sum_sorted(row, self.k) for row in self.s[1:]])

    @cached_property
    def thresholds(self) -> np.ndarray:
        """b_i, -inf where switched off."""
        r = self.n - 1
        if self.bounds is not None:
            return np.broadcast_to(np.asarray(self.bounds, dtype=np.float64), (r,)).copy()
        gamma = 0.9 if self.gamma is None else self.gamma
        g = np.broadcast_to(np.asarray(gamma, dtype=np.float64), (r,))
        return np.where(g > 0, g * self.best, -np.inf)

    @property
    def active(self) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.thresholds))

    @cached_property
    def group_vec(self):
        return None if self.groups is None else np.asarray(self.groups, dtype=np.int64)

    @cached_property
    def floor_vec(self):
        if self.floors is None:
            return None
        n_groups = int(self.group_vec.max()) + 1
        f = np.asarray(self.floors, dtype=np.int64)
        return np.full(n_groups, int(f)) if f.ndim == 0 else f

    @property
    def has_floors(self) -> bool:
        return self.floors is not None

    # -- calls ------------------------------------------------------------------------

    def solve(self, method="analytic", **options):
        """``copslp.solve`` on this case; the case's own ``options`` are analytic's and go
        to that method only."""
        own = self.options if get_method(method).name == "analytic" else {}
        return copslp.solve(
            self.scores, self.budget, gamma=self.gamma, bounds=self.bounds,
            groups=self.groups, floors=self.floors, method=method, options={**own, **options},
        )

    @cached_property
    def reference(self) -> "Reference":
        return reference_solve(self.s, self.k, self.thresholds, self.group_vec, self.floor_vec)

    @cached_property
    def reference_binary(self) -> "Reference":
        return reference_solve(self.s, self.k, self.thresholds, self.group_vec, self.floor_vec, integer=True)

    def magnitude(self, row: int = 0) -> float:
        """Sum of the k largest |s_row|: the scale of any k-sum of that score."""
        return top_k_sum_sorted(np.abs(self.s[row]), self.k)

    def dump(self) -> str:
        """Everything needed to reproduce the call, at full precision."""
        groups = None if self.groups is None else np.asarray(self.groups).tolist()
        dtype = getattr(self.scores, "dtype", None)
        return (f"copslp.solve(np.array({self.s.tolist()!r}{', dtype=np.float32' if dtype == np.float32 else ''}), "
                f"{self.budget!r}, gamma={self.gamma!r}, bounds={self.bounds!r}, groups={groups!r}, "
                f"floors={self.floors!r})")

    def __repr__(self) -> str:  # short, for test ids and failure messages
        return (f"Case({self.label!r}, n={self.n}, D={self.size}, k={self.k}, gamma={self.gamma!r}, "
                f"bounds={self.bounds!r}, floors={'yes' if self.has_floors else 'no'})")


def top_k_sum_sorted(values: np.ndarray, k: int) -> float:
    return float(np.sort(np.asarray(values, dtype=np.float64))[::-1][:k].sum())


#: Room the reference gives a bound at the best value its score reaches (gamma = 1), relative to
#: the score's magnitude: such a bound is met only up to the round-off of a k-term sum.
AT_BEST_ROOM = 1e-10


def at_best(scores_row: np.ndarray, k: int, threshold: float) -> bool:
    """Whether ``threshold`` asks for the best value ``scores_row`` reaches within k (gamma = 1),
    up to 1e-12 of the row's magnitude."""
    magnitude = top_k_sum_sorted(np.abs(scores_row), k)
    return threshold >= top_k_sum_sorted(scores_row, k) - 1e-12 * magnitude


# ----------------------------------------------------------------------------------------
# the independent reference


@dataclass(frozen=True)
class Reference:
    status: str  # "optimal" or "infeasible"
    objective: float | None
    x: np.ndarray | None


def reference_solve(s, k, thresholds, groups=None, floors=None, *, integer=False) -> Reference:
    """Solve the COPS LP (or the binary problem) with highspy, built here from scratch."""
    import highspy

    n, size = s.shape
    budget_row = (np.arange(size), np.ones(size), float(k), float(k))
    bound_rows, floor_rows = {}, []
    at_best_rows = [i for i in np.flatnonzero(np.isfinite(thresholds)) if at_best(s[i + 1], k, thresholds[i])]
    # the face of such a bound is every point that meets it exactly when the threshold is the best
    # value (or above it by no more than the room, which the face then meets): below it, the face
    # would leave out points that meet it, and above, there is no point
    on_face = all(0.0 <= thresholds[i] - top_k_sum_sorted(s[i + 1], k)
                  <= AT_BEST_ROOM * top_k_sum_sorted(np.abs(s[i + 1]), k) for i in at_best_rows)
    for i in np.flatnonzero(np.isfinite(thresholds)):
        # each row scaled to entries of at most 1 (HiGHS drops matrix entries below 1e-9)
        row_scale = float(np.abs(s[i + 1]).max()) or 1.0
        # a bound at the best reachable value (gamma = 1) is met only up to the round-off of a
        # k-term sum: give HiGHS that much room there (and only there)
        magnitude = top_k_sum_sorted(np.abs(s[i + 1]), k)
        room = AT_BEST_ROOM * magnitude if i in at_best_rows else 0.0
        bound_rows[i] = (np.arange(size), s[i + 1] / row_scale, (float(thresholds[i]) - room) / row_scale,
                         highspy.kHighsInf)
    cost_scale = float(np.abs(s[0]).max()) or 1.0
    if floors is not None:
        for g, f in enumerate(floors):
            members = np.flatnonzero(groups == g)
            if f > 0:
                floor_rows.append((members, np.ones(members.size), float(f), highspy.kHighsInf))
    rows = [budget_row, *bound_rows.values(), *floor_rows]

    # dual simplex with presolve; its cost grows ~D^2 on this LP, so large instances go to ipm +
    # crossover. HiGHS may end a degenerate or badly scaled instance with 'Unknown', or call a
    # bound met only at its tolerance infeasible: each verdict other than optimal is confirmed
    # by the next configuration, and, where a bound is at gamma = 1, by the LP on its face.
    configurations = [{"solver": "simplex", "simplex_strategy": 1, "presolve": "on"},
                      {"solver": "simplex", "simplex_strategy": 1, "presolve": "off"},
                      {"solver": "ipm", "run_crossover": "on", "presolve": "off"}]
    if size > 50_000:
        configurations = configurations[2:]
    box = (np.zeros(size), np.ones(size))
    verdicts = []
    for algorithm in configurations:
        h = _build_reference(highspy, s, box, rows, cost_scale, integer, algorithm)
        h.run()
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            x = np.asarray(h.getSolution().col_value, dtype=np.float64)
            return Reference("optimal", float(s[0] @ x), x)
        verdicts.append(h.modelStatusToString(status))
    if at_best_rows and on_face:
        # The row at gamma = 1 is a knife edge (1e-10 of room beside entries within 1e-7 of the
        # k-th level: HiGHS ends it 'Unknown' or with a 'Solve error' on every configuration).
        # On its face it is exact: x_j = 1 above the k-th largest value L of s_i, 0 below, the
        # budget's rest on the entries tied at L (the row then holds for every x of the budget).
        # A point there meets the bound, so the problem is feasible where this LP is.
        lower, upper = box[0].copy(), box[1].copy()
        for i in at_best_rows:
            level = np.sort(s[i + 1])[::-1][k - 1]
            lower[s[i + 1] > level] = 1.0
            upper[s[i + 1] < level] = 0.0
        if np.all(lower <= upper):
            face_rows = [budget_row, *(row for i, row in bound_rows.items() if i not in at_best_rows), *floor_rows]
            h = _build_reference(highspy, s, (lower, upper), face_rows, cost_scale, integer, configurations[-1])
            h.run()
            if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                x = np.asarray(h.getSolution().col_value, dtype=np.float64)
                return Reference("optimal", float(s[0] @ x), x)
            verdicts.append("on the face: " + h.modelStatusToString(h.getModelStatus()))
    infeasible = {h.modelStatusToString(highspy.HighsModelStatus.kInfeasible),
                  h.modelStatusToString(highspy.HighsModelStatus.kUnboundedOrInfeasible)}
    assert infeasible & set(verdicts), f"the reference LP found no verdict: {verdicts}"
    return Reference("infeasible", None, None)


def _build_reference(highspy, s, box, rows, cost_scale, integer, algorithm):
    size = s.shape[1]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    for name, value in {
        **algorithm,
        "primal_feasibility_tolerance": 1e-10,
        "dual_feasibility_tolerance": 1e-10,
        "ipm_optimality_tolerance": 1e-12,
        "mip_rel_gap": 1e-10,
        "mip_abs_gap": 0.0,
        "mip_feasibility_tolerance": 1e-10,
        "random_seed": 1,
    }.items():
        assert h.setOptionValue(name, value) == highspy.HighsStatus.kOk, name
    h.addVars(size, *box)
    h.changeColsCost(size, np.arange(size, dtype=np.int32), s[0] / cost_scale)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    for index, values, lower, upper in rows:
        h.addRow(lower, upper, index.size, index.astype(np.int32), np.asarray(values, dtype=np.float64))
    if integer:
        h.changeColsIntegrality(size, np.arange(size, dtype=np.int32),
                                np.array([highspy.HighsVarType.kInteger] * size))
    return h


def greedy_value(v: np.ndarray, k: int, groups=None, floors=None) -> float:
    """Max of <v, m> over k-masks meeting the floors: the f_l best of each group, then the
    best remaining (docs/maths.md §6), by full sorts."""
    if floors is None:
        return top_k_sum_sorted(v, k)
    taken = np.zeros(v.shape[0], dtype=bool)
    for g, f in enumerate(floors):
        if f > 0:
            members = np.flatnonzero(groups == g)
            taken[members[np.argsort(-v[members], kind="stable")[:f]]] = True
    rest = k - int(taken.sum())
    total = float(v[taken].sum())
    if rest > 0:
        total += top_k_sum_sorted(v[~taken], rest)
    return total


def dual_bound(case: Case, multipliers: np.ndarray) -> float:
    """phi(lambda) = max_{x feasible for budget and floors} <v, x> - <lambda, b>: an upper
    bound on the LP optimum for any lambda >= 0 (weak duality)."""
    lam = np.where(np.isfinite(case.thresholds), np.maximum(multipliers, 0.0), 0.0)
    v = case.s[0] + lam @ case.s[1:] if case.n > 1 else case.s[0].copy()
    b = np.where(np.isfinite(case.thresholds), case.thresholds, 0.0)
    return greedy_value(v, case.k, case.group_vec, case.floor_vec) - float(lam @ b)


# ----------------------------------------------------------------------------------------
# checks


def _close(a: float, b: float, scale: float, rtol: float = RTOL) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-9 * scale + 1e-12


def assert_valid_mask(result, case: Case) -> None:
    """The mask: bool, length D, exactly k True, floors met, reported values consistent."""
    mask = result.mask
    assert isinstance(mask, np.ndarray) and mask.dtype == np.bool_, mask.dtype
    assert mask.shape == (case.size,)
    assert int(mask.sum()) == case.k
    assert result.budget == case.k
    s = case.s
    assert _close(result.mask_objective, float(s[0][mask].sum()), case.magnitude(0), 1e-9)
    np.testing.assert_allclose(result.mask_bound_values, s[1:, mask].sum(axis=1), rtol=1e-9,
                               atol=1e-9 * max((case.magnitude(i) for i in range(case.n)), default=1.0))
    if case.has_floors:
        kept = np.bincount(case.group_vec[mask], minlength=case.floor_vec.size)
        assert np.all(kept >= case.floor_vec), (kept, case.floor_vec)
    # the violations reported are the real ones
    for i in range(case.n - 1):
        b = case.thresholds[i]
        value = float(s[i + 1][mask].sum())
        real = max(b - value, 0.0) if np.isfinite(b) else 0.0
        assert result.mask_violations[i] == pytest.approx(real, rel=1e-6, abs=1e-9 * case.magnitude(i + 1) + 1e-12)


def assert_feasible_x(result, case: Case) -> None:
    x = result.x
    assert isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (case.size,)
    assert np.all(x >= -1e-12) and np.all(x <= 1.0 + 1e-12), (x.min(), x.max())
    assert float(x.sum()) == pytest.approx(case.k, rel=1e-9, abs=1e-9)
    for i in case.active:
        # the slack is relative to the size of the terms and of the score's best k-sum (a solver's
        # tolerance acts on rows scaled to the score), never to a bound that happens to be tiny
        scale = max(float(np.abs(case.s[i + 1]) @ x), abs(case.thresholds[i]), case.magnitude(i + 1))
        value = float(case.s[i + 1] @ x)
        assert value >= case.thresholds[i] - FEAS_RTOL * scale - 1e-300, (
            f"<s_{i + 1}, x> = {value!r} < b = {case.thresholds[i]!r}")
    if case.has_floors:
        counts = np.bincount(case.group_vec, weights=x, minlength=case.floor_vec.size)
        assert np.all(counts >= case.floor_vec - 1e-7), (counts, case.floor_vec)


def assert_optimal(result, case: Case, method: str | None = None) -> None:
    """Everything a correct answer of an LP method to ``case`` satisfies."""
    method = method or result.method
    assert result.method == ("analytic" if method == "auto" else method)
    assert result.certificate.passed, result.certificate.summary()
    assert_valid_mask(result, case)
    assert_feasible_x(result, case)
    reference = case.reference
    assert reference.status == "optimal", f"reference LP says {reference.status} for {case!r}"
    scale = case.magnitude(0)
    # multipliers: one per secondary score, >= 0, zero on switched-off bounds; optimal for the dual
    lam = np.asarray(result.multipliers)
    assert lam.shape == (case.n - 1,)
    assert np.all(lam >= 0.0), lam
    off = ~np.isfinite(case.thresholds)
    assert np.all(lam[off] == 0.0), lam
    # the reference meets each bound to 1e-10 of its row scale (and is given 1e-10 of room at
    # gamma = 1); the objective moves by lambda_i times that: allow it on top of RTOL
    dual_terms = sum(float(lam[i]) * case.magnitude(i + 1) for i in case.active)
    lam_scale = scale + dual_terms
    assert (_close(result.objective, reference.objective, scale)
            or abs(result.objective - reference.objective) <= 3e-10 * dual_terms + 1e-9 * scale), (
        result.objective, reference.objective, case)
    assert result.objective == pytest.approx(float(case.s[0] @ result.x), rel=1e-9, abs=1e-9 * scale + 1e-12)
    np.testing.assert_allclose(result.thresholds, case.thresholds, rtol=1e-12)
    bound = dual_bound(case, lam)
    assert bound >= reference.objective - 1e-9 * lam_scale - 1e-12  # weak duality, whatever lambda
    assert _close(bound, reference.objective, lam_scale, 1e-6), (
        f"phi(multipliers) = {bound!r} but the LP optimum is {reference.objective!r}: multipliers {lam} not dual optimal")
    # the mask is the LP point rounded: ones kept, zeros dropped; the search near the k-th level
    # (several bounds) may swap at most SWAPS kept elements for as many dropped ones
    dropped_ones = int(np.count_nonzero(~result.mask & (result.x >= 1.0 - 1e-9)))
    kept_zeros = int(np.count_nonzero(result.mask & (result.x <= 1e-9)))
    from copslp._rounding import SWAPS
    swaps_allowed = SWAPS if "swaps near the k-th level" in result.info.get("rounding", "") else 0
    assert dropped_ones <= swaps_allowed and kept_zeros <= swaps_allowed, (dropped_ones, kept_zeros, result.info)
    # the gap is what it says; a mask that meets the bounds cannot beat the LP optimum
    assert result.rounding_loss == pytest.approx(result.objective - result.mask_objective, abs=1e-9 * scale + 1e-12)
    mask_meets_bounds = all(result.mask_violations[i] <= 1e-9 * case.magnitude(i + 1) for i in case.active)
    if result.mask_meets_bounds:
        assert np.all(result.mask_bound_values[case.active] >= case.thresholds[case.active]
                      - result.certificate.tolerance * np.abs(case.thresholds[case.active]))
    else:
        assert np.any(result.mask_violations > 0)
    if mask_meets_bounds:
        # weak duality: <s_0, mask> <= phi(lambda) + sum_i lambda_i (b_i - <s_i, mask>), so a mask
        # within tolerance of the bounds may beat the LP by lambda_i times its shortfall (at
        # gamma = 1 beside near ties, lambda_1 = 4.3e6 times 2.3e-7: 1.0)
        allowance = float(lam[case.active] @ result.mask_violations[case.active])
        assert result.rounding_loss >= -allowance - 1e-9 * scale - 1e-12
        assert result.mask_objective <= reference.objective + allowance + 1e-9 * scale + 1e-12
    if case.active.size <= 1:  # one bound: rounding can always keep it (docs/maths.md §5)
        for i in case.active:
            assert result.mask_violations[i] <= 1e-7 * case.magnitude(i + 1) + 1e-12, result.mask_violations
    n_fractional = int(np.count_nonzero((result.x > 1e-9) & (result.x < 1 - 1e-9)))
    assert result.n_fractional <= case.size
    if result.method == "analytic" and not case.has_floors:
        assert n_fractional <= case.active.size + 1, (n_fractional, case.active.size)
        assert result.n_fractional <= case.active.size + 1


def assert_binary_optimal(result, case: Case, lp_result=None) -> None:
    """Checks for method ``milp``: the true binary optimum."""
    assert result.method == "milp"
    assert result.certificate.passed, result.certificate.summary()
    assert_valid_mask(result, case)
    assert np.array_equal(result.x, result.mask.astype(np.float64))
    scale = case.magnitude(0)
    assert result.n_fractional == 0 and result.rounding_loss == pytest.approx(0.0, abs=1e-12 * scale + 1e-300)
    assert result.objective == pytest.approx(result.mask_objective, rel=1e-12, abs=1e-12 * scale + 1e-300)
    for i in case.active:  # a binary answer meets the bounds with the mask itself
        assert float(case.s[i + 1][result.mask].sum()) >= case.thresholds[i] - 1e-8 * case.magnitude(i + 1) - 1e-12
    binary = case.reference_binary
    assert binary.status == "optimal", f"reference MIP says {binary.status} for {case!r}"
    assert _close(result.objective, binary.objective, scale), (result.objective, binary.objective)
    # a mask inside the bounds cannot beat the LP optimum (one that misses a bound within the
    # solver's tolerance can, at a near-tie: binary points jump)
    if all(result.mask_bound_values[i] >= case.thresholds[i] for i in case.active):
        assert result.objective <= case.reference.objective + 1e-9 * scale + 1e-12
    if lp_result is not None and np.all(lp_result.mask_violations <= 0):
        assert result.objective >= lp_result.mask_objective - 1e-9 * scale - 1e-12


def method_or_skip(method: str) -> None:
    """Skip when the method's optional dependency is missing."""
    spec = get_method(method)
    for module in spec.requires:
        pytest.importorskip(module)
    if not spec.is_available():  # pragma: no cover
        pytest.skip(f"method {method!r} is not available here")
