"""The generic backends (highs, scipy, cvxpy, milp) against an LP built here independently.

The reference is scipy.optimize.linprog (default method) on the unscaled LP written out
directly from the scores, so it shares no code with copslp._backends.lp.
"""

from __future__ import annotations

import time
from itertools import combinations

import numpy as np
import pytest
from scipy.optimize import linprog

import copslp
from copslp._deadline import deadline_for
from copslp._backends.lp import build_lp, duals_to_convention
from copslp._problem import make_problem
from copslp._selection import top_k_with_floors

# Rounding an LP point may miss a bound when no mask meets it; that warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:the rounded mask misses:copslp.CopsWarning")

LP_METHODS = ["highs", "scipy", "cvxpy"]
SEEDS = range(40)


def _needs(method):
    if method == "cvxpy":
        pytest.importorskip("cvxpy")


# ---------------------------------------------------------------- independent reference


def reference_lp(scores, k, thresholds, groups=None, floors=None):
    """(objective, lambda) of the LP by linprog on the raw data; None when infeasible."""
    n, size = scores.shape
    rows, rhs, bound_of_row = [], [], []
    for i, b in enumerate(thresholds):
        if np.isfinite(b):
            rows.append(-scores[i + 1])
            rhs.append(-b)
            bound_of_row.append(i)
    if floors is not None:
        for group, floor in enumerate(floors):
            if floor > 0:
                rows.append(-(groups == group).astype(float))
                rhs.append(-float(floor))
    result = linprog(
        -scores[0],
        A_ub=np.array(rows) if rows else None,
        b_ub=np.array(rhs) if rows else None,
        A_eq=np.ones((1, size)),
        b_eq=[float(k)],
        bounds=(0, 1),
    )
    if result.status == 2:
        return None
    assert result.status == 0, result.message
    multipliers = np.zeros(n - 1)
    if rows:
        multipliers[bound_of_row] = -result.ineqlin.marginals[: len(bound_of_row)]
    return -result.fun, multipliers


def random_case(seed):
    """A small random instance: n = 1..4, signed or non-negative scores, k in {1, D, random},
    with or without floors; bounds either met by a known mask (feasible) or drawn between the
    worst and best reachable values (possibly infeasible)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    size = int(rng.integers(1, 25))
    k = int(rng.choice([1, size, rng.integers(1, size + 1)]))
    signed = bool(rng.random() < 0.5)
    scores = rng.standard_normal((n, size)) if signed else rng.random((n, size))
    groups = floors = None
    if size >= 2 and rng.random() < 0.4:
        n_groups = int(rng.integers(1, min(4, size) + 1))
        groups = rng.integers(0, n_groups, size)
        sizes = np.bincount(groups, minlength=n_groups)
        floors = np.zeros(n_groups, dtype=np.int64)
        left = k
        for group in rng.permutation(n_groups):
            floors[group] = int(rng.integers(0, min(sizes[group], left) + 1))
            left -= floors[group]
    thresholds = np.full(n - 1, -np.inf)
    if n > 1:
        weights = rng.random(n)
        combined = weights @ scores
        if floors is None:
            known = np.argsort(-combined)[:k]
        else:
            known = top_k_with_floors(combined, k, groups, floors)
        met = scores[1:, known].sum(axis=1)
        best = np.array([np.sort(s)[-k:].sum() for s in scores[1:]])
        worst = np.array([np.sort(s)[:k].sum() for s in scores[1:]])
        drawn = worst + rng.random(n - 1) * (best - worst)
        thresholds = met - rng.random(n - 1) * 0.1 if rng.random() < 0.6 else drawn
        thresholds[rng.random(n - 1) < 0.2] = -np.inf
    return dict(scores=scores, budget=k, bounds=thresholds if n > 1 else None, groups=groups, floors=floors)


def check_against_reference(result, case, rtol=1e-6):
    reference = reference_lp(case["scores"], case["budget"], _bounds(case), case["groups"], case["floors"])
    objective, _ = reference
    assert result.certificate.passed, result.certificate.summary()
    assert abs(result.objective - objective) <= rtol * max(1.0, abs(objective)), (result.objective, objective)
    assert int(result.mask.sum()) == case["budget"]
    assert result.mask.dtype == bool
    assert np.all(result.multipliers >= 0)
    assert np.all(result.multipliers[~np.isfinite(_bounds(case))] == 0)
    return objective


def solve_case(case, method, **options):
    return copslp.solve(case["scores"], case["budget"], bounds=case["bounds"], groups=case["groups"],
                        floors=case["floors"], method=method, options=options)


def is_feasible(case):
    return reference_lp(case["scores"], case["budget"], _bounds(case), case["groups"], case["floors"]) is not None


def _bounds(case):
    return np.empty(0) if case["bounds"] is None else case["bounds"]


# ---------------------------------------------------------------- agreement with the reference


@pytest.mark.parametrize("method", LP_METHODS)
@pytest.mark.parametrize("seed", SEEDS)
def test_lp_methods_agree_with_reference(method, seed):
    _needs(method)
    case = random_case(seed)
    if not is_feasible(case):
        with pytest.raises(copslp.InfeasibleError):
            solve_case(case, method)
        return
    check_against_reference(solve_case(case, method), case)


@pytest.mark.parametrize("method", LP_METHODS)
@pytest.mark.parametrize("budget", ["one", "all"])
def test_extreme_budgets(method, budget):
    _needs(method)
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((3, 12))
    k = 1 if budget == "one" else 12
    case = dict(scores=scores, budget=k, bounds=scores[1:, :k].sum(axis=1) - 0.5, groups=None, floors=None)
    if budget == "all":
        case["bounds"] = scores[1:].sum(axis=1)  # the only point is x = 1: tight bounds
    result = solve_case(case, method)
    check_against_reference(result, case)
    if budget == "all":
        assert result.mask.all()


@pytest.mark.parametrize("method", LP_METHODS)
def test_multipliers_match_reference(method):
    """r = 1 with a binding bound on continuous data: the dual is unique."""
    _needs(method)
    rng = np.random.default_rng(3)
    scores = rng.random((2, 200))
    problem = make_problem(scores, 20, gamma=0.95)
    objective, multipliers = reference_lp(scores, 20, problem.thresholds)
    result = copslp.solve(scores, 20, gamma=0.95, method=method)
    assert multipliers[0] > 0
    np.testing.assert_allclose(result.multipliers, multipliers, rtol=1e-5)
    assert result.objective == pytest.approx(objective, rel=1e-7)


@pytest.mark.parametrize("method", LP_METHODS)
def test_sign_convention_on_a_hand_example(method):
    """max 3 x0 + x1, x0 + x1 = 1, x1 >= 0.3: x = (0.7, 0.3), lambda = 2, mu = 3."""
    _needs(method)
    scores = np.array([[3.0, 1.0], [0.0, 1.0]])
    result = copslp.solve(scores, 1, bounds=[0.3], method=method)
    np.testing.assert_allclose(result.x, [0.7, 0.3], atol=1e-7)
    np.testing.assert_allclose(result.multipliers, [2.0], rtol=1e-6)
    assert result.info["budget_dual"] == pytest.approx(3.0, rel=1e-6)
    assert result.budget_dual == pytest.approx(3.0, rel=1e-6)


def test_floor_multipliers_convention():
    """A floor that binds: group 1 (worse by s_0) must keep 2 of k = 3."""
    scores = np.array([[5.0, 4.0, 3.0, 1.0, 0.5]])
    groups = np.array([0, 0, 0, 1, 1])
    result = copslp.solve(scores, 3, groups=groups, floors=[0, 2], method="highs", options={"solver": "simplex"})
    np.testing.assert_array_equal(result.mask, [True, False, False, True, True])
    # any mu in [4, 5] separates kept 5 from dropped 4 in group 0; nu_1 = mu - 0.5 lifts the
    # kept group-1 elements (w = 1 + nu_1 >= mu, 0.5 + nu_1 = mu)
    mu = result.info["budget_dual"]
    assert 4.0 - 1e-9 <= mu <= 5.0 + 1e-9
    np.testing.assert_allclose(result.info["floor_multipliers"], [0.0, mu - 0.5])
    assert 4.0 - 1e-9 <= result.budget_dual <= 5.0 + 1e-9
    np.testing.assert_allclose(result.floor_multipliers, [0.0, result.budget_dual - 0.5])


def test_gamma_one_is_feasible():
    rng = np.random.default_rng(11)
    scores = rng.random((2, 300))
    for method in ["highs", "scipy"]:
        result = copslp.solve(scores, 30, gamma=1.0, method=method)
        assert result.bound_values[0] >= result.thresholds[0] * (1 - 1e-9)
        assert result.certificate.passed


@pytest.mark.parametrize("method", LP_METHODS + ["milp"])
@pytest.mark.parametrize("budget", [1, 4, 9])
def test_single_score_is_top_k(method, budget):
    """n = 1: the answer is the top-k of s_0."""
    _needs(method)
    scores = np.random.default_rng(budget).standard_normal(9)
    result = copslp.solve(scores, budget, method=method)
    expected = np.zeros(9, dtype=bool)
    expected[np.argsort(scores)[-budget:]] = True
    np.testing.assert_array_equal(result.mask, expected)
    assert result.objective == pytest.approx(scores[expected].sum(), rel=1e-9)
    assert result.multipliers.shape == (0,)
    assert result.certificate.passed


# ---------------------------------------------------------------- solver choices


@pytest.mark.parametrize("solver", ["ipm", "simplex", "pdlp"])
def test_highs_solver_choices(solver):
    case = random_case(5)
    assert is_feasible(case)
    result = solve_case(case, "highs", solver=solver)
    tolerance = max(result.certificate.tolerance, 1e-6)
    check_against_reference(result, case, rtol=10 * tolerance)
    assert result.info["solver"] == solver
    assert result.info["model_status"] == "Optimal"
    assert result.info["run_time"] >= 0
    assert sum(result.info["iterations"].values()) >= 0


@pytest.mark.parametrize("presolve", ["on", "off", "choose", True, False])
def test_highs_presolve_values(presolve):
    case = random_case(5)
    check_against_reference(solve_case(case, "highs", presolve=presolve), case)


@pytest.mark.parametrize("solver", ["highs-ipm", "highs-ds", "highs"])
def test_scipy_solver_choices(solver):
    case = random_case(5)
    result = solve_case(case, "scipy", solver=solver)
    check_against_reference(result, case)
    assert result.info["solver"] == solver


@pytest.mark.parametrize("solver", ["HIGHS", "CLARABEL", "SCS", "scipy"])
def test_cvxpy_solver_choices(solver):
    cvxpy = pytest.importorskip("cvxpy")
    if solver.upper() not in cvxpy.installed_solvers():
        pytest.skip(f"{solver} not installed")
    case = random_case(5)
    result = solve_case(case, "cvxpy", solver=solver)
    check_against_reference(result, case, rtol=max(result.certificate.tolerance, 1e-6))
    assert result.info["solver"] == solver.upper()


def test_cvxpy_default_solver_and_options():
    cvxpy = pytest.importorskip("cvxpy")
    case = random_case(5)
    result = solve_case(case, "cvxpy")
    expected = "HIGHS" if "HIGHS" in cvxpy.installed_solvers() else "CLARABEL"
    assert result.info["solver"] == expected
    if expected == "HIGHS":
        result = solve_case(case, "cvxpy", solver_options={"highs_options": {"solver": "simplex"}})
        check_against_reference(result, case)
    result = solve_case(case, "cvxpy", tolerance=1e-5)
    assert result.certificate.tolerance == 1e-5


# ---------------------------------------------------------------- bad options


def small_scores():
    return np.random.default_rng(0).random((2, 30))


@pytest.mark.parametrize("method, options, error, text", [
    ("highs", {"solver": "barrier"}, ValueError, "solver must be one of 'ipm', 'simplex', 'pdlp'"),
    ("highs", {"presolve": "maybe"}, ValueError, "presolve"),
    ("highs", {"time_limit": -1.0}, ValueError, "time_limit"),
    ("highs", {"time_limit": "1s"}, TypeError, "time_limit"),
    ("highs", {"tolerance": 0.0}, ValueError, "tolerance"),
    ("highs", {"tolerance": 2.0}, ValueError, "tolerance"),
    ("scipy", {"solver": "simplex"}, ValueError, "solver must be one of 'highs-ipm', 'highs-ds', 'highs'"),
    ("scipy", {"time_limit": 0}, ValueError, "time_limit"),
    ("scipy", {"tolerance": "tight"}, TypeError, "tolerance"),
    ("milp", {"mip_rel_gap": 1.5}, ValueError, "mip_rel_gap"),
    ("milp", {"max_size": 0}, ValueError, "max_size"),
    ("milp", {"time_limit": -5}, ValueError, "time_limit"),
])
def test_bad_options_raise(method, options, error, text):
    with pytest.raises(error, match=text):
        copslp.solve(small_scores(), 5, method=method, options=options)


def test_cvxpy_bad_options():
    cvxpy = pytest.importorskip("cvxpy")
    with pytest.raises(ValueError, match="installed: .*" + cvxpy.installed_solvers()[0]):
        copslp.solve(small_scores(), 5, method="cvxpy", options={"solver": "NOT_A_SOLVER"})
    with pytest.raises(TypeError, match="solver_options"):
        copslp.solve(small_scores(), 5, method="cvxpy", options={"solver_options": ["verbose"]})
    with pytest.raises(ValueError, match="solver=..."):
        copslp.solve(small_scores(), 5, method="cvxpy", options={"solver_options": {"solver": "SCS"}})
    with pytest.raises(ValueError, match="HiGHS|HIGHS"):
        copslp.solve(small_scores(), 5, method="cvxpy",
                     options={"solver": "HIGHS", "solver_options": {"highs_options": {"not_an_option": 1}}})


def test_unknown_option_is_an_error():
    with pytest.raises(ValueError, match="'solvr'.*presolve, solver, time_limit, tolerance"):
        copslp.solve(small_scores(), 5, method="highs", options={"solvr": "ipm"})


def test_milp_refuses_large_problems():
    scores = np.random.default_rng(0).random((2, 2001))
    with pytest.raises(ValueError, match="D = 2001") as excinfo:
        copslp.solve(scores, 5, method="milp")
    assert "2000" in str(excinfo.value)


@pytest.mark.parametrize("solver", ["ipm", "simplex"])
def test_highs_time_limit_is_a_solver_error(solver):
    scores = np.random.default_rng(0).random((2, 20000))
    with pytest.raises(copslp.SolverError, match="time limit"):
        copslp.solve(scores, 1000, gamma=0.9, method="highs", options={"solver": solver, "time_limit": 1e-6})


@pytest.mark.parametrize("method", ["highs", "scipy"])
def test_time_limit_stops_an_iteration_that_outlasts_it(method):
    """One dual simplex iteration on this LP takes 5-40 s at D = 1e5 here and HiGHS checks its
    limit only between iterations: the run is stopped from outside (copslp._deadline)."""
    pytest.importorskip("highspy")
    scores = np.random.default_rng(0).random((2, 100_000))
    solver = "simplex" if method == "highs" else "highs-ds"
    start = time.perf_counter()
    with pytest.raises(copslp.SolverError, match="time limit of 1.0 s") as excinfo:
        copslp.solve(scores, 5000, gamma=0.9, method=method, options={"solver": solver, "time_limit": 1.0})
    assert time.perf_counter() - start < 4.0 + deadline_for(1.0), "stopped near its deadline, not at the end"
    assert "stopped after" in str(excinfo.value)


def test_time_limited_run_gives_the_same_answer_and_errors():
    pytest.importorskip("highspy")
    scores = np.random.default_rng(3).random((3, 400))
    free = copslp.solve(scores, 40, gamma=0.8, method="highs")
    limited = copslp.solve(scores, 40, gamma=0.8, method="highs", options={"time_limit": 60.0})
    assert limited.objective == free.objective and np.array_equal(limited.mask, free.mask)
    with pytest.raises(copslp.InfeasibleError) as excinfo:  # raised in the child, kept whole
        copslp.solve(scores, 40, bounds=[1e9, -np.inf], method="highs", options={"time_limit": 60.0})
    assert excinfo.value.score_index == 1 and excinfo.value.threshold == 1e9


def test_milp_time_limit_is_a_solver_error():
    scores = np.random.default_rng(0).standard_normal((4, 2000))
    with pytest.raises(copslp.SolverError, match="time limit"):
        copslp.solve(scores, 100, gamma=[0.9, 0.9, 0.9], method="milp", options={"time_limit": 1e-6})


# ---------------------------------------------------------------- infeasibility


@pytest.mark.parametrize("method", LP_METHODS + ["milp"])
def test_single_bound_infeasible_names_best_value(method):
    _needs(method)
    scores = np.random.default_rng(1).random((3, 40))
    best = np.sort(scores[2])[-4:].sum()
    with pytest.raises(copslp.InfeasibleError, match=r"scores\[2\]") as excinfo:
        copslp.solve(scores, 4, bounds=[0.0, best + 1.0], method=method)
    assert excinfo.value.score_index == 2
    assert excinfo.value.best_reachable == pytest.approx(best)
    assert repr(float(best)) in str(excinfo.value)


@pytest.mark.parametrize("method", LP_METHODS + ["milp"])
def test_joint_infeasibility_is_reported(method):
    _needs(method)
    # two opposite scores: each bound alone is reachable, not both
    s1 = np.linspace(0.0, 1.0, 20)
    scores = np.stack([np.ones(20), s1, 1.0 - s1])
    k = 5
    bounds = [0.95 * np.sort(s1)[-k:].sum(), 0.95 * np.sort(1 - s1)[-k:].sum()]
    with pytest.raises(copslp.InfeasibleError, match="at once") as excinfo:
        copslp.solve(scores, k, bounds=bounds, method=method)
    assert excinfo.value.score_index is None


def test_floor_infeasibility_uses_the_floors():
    scores = np.array([[1.0, 1.0, 1.0, 1.0], [10.0, 9.0, 0.0, 0.0]])
    groups = np.array([0, 0, 1, 1])
    # without floors T_2(s_1) = 19; with 2 kept in group 1 the best is 0
    with pytest.raises(copslp.InfeasibleError, match="floors") as excinfo:
        copslp.solve(scores, 2, bounds=[5.0], groups=groups, floors=[0, 2], method="highs")
    assert excinfo.value.best_reachable == 0.0


# ---------------------------------------------------------------- milp


@pytest.mark.parametrize("seed", SEEDS)
def test_milp_between_rounded_lp_and_lp(seed):
    case = random_case(seed)
    if not is_feasible(case):
        with pytest.raises(copslp.InfeasibleError):
            solve_case(case, "milp")
        return
    lp = solve_case(case, "highs")
    try:
        binary = solve_case(case, "milp")
    except copslp.InfeasibleError:
        # the LP is feasible but no mask is: the rounded LP mask must then miss a bound
        assert lp.mask_violations.max(initial=0.0) > 0
        return
    scale = max(1.0, abs(lp.objective))
    assert binary.certificate.passed
    assert binary.info["mip_gap"] <= 1e-9
    assert set(np.unique(binary.x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(binary.mask, binary.x == 1.0)
    assert int(binary.mask.sum()) == case["budget"]
    np.testing.assert_array_equal(binary.multipliers, 0.0)
    assert binary.objective <= lp.objective + 1e-9 * scale
    assert binary.info["mip_dual_bound"] >= binary.objective - 1e-9 * scale
    if lp.mask_violations.max(initial=0.0) == 0:
        assert binary.objective >= lp.mask_objective - 1e-9 * scale
    if case["floors"] is not None:
        counts = np.bincount(case["groups"], weights=binary.mask, minlength=len(case["floors"]))
        assert np.all(counts >= case["floors"])


@pytest.mark.parametrize("seed", range(12))
def test_milp_matches_brute_force(seed):
    """r = 2 relative bounds, with and without floors, against every k-subset; the bounds are
    often met by the LP but by no mask, which milp must then report."""
    rng = np.random.default_rng(seed)
    size, k = 16, 5
    scores = rng.random((3, size))
    groups = floors = None
    if seed % 2:
        groups, floors = np.arange(size) % 3, [1, 0, 2]
    problem = make_problem(scores, k, gamma=0.8, groups=groups, floors=floors)
    subsets = np.array(list(combinations(range(size), k)))
    values = scores[:, subsets].sum(axis=2)
    feasible = np.all(values[1:] >= problem.thresholds[:, None], axis=0)
    if floors is not None:
        counts = np.stack([(groups[subsets] == g).sum(axis=1) for g in range(3)])
        feasible &= np.all(counts >= np.array(floors)[:, None], axis=0)
    if not feasible.any():
        with pytest.raises(copslp.InfeasibleError):
            copslp.solve(scores, k, gamma=0.8, groups=groups, floors=floors, method="milp")
        return
    binary = copslp.solve(scores, k, gamma=0.8, groups=groups, floors=floors, method="milp")
    assert binary.objective == pytest.approx(values[0][feasible].max(), rel=1e-12)


# ---------------------------------------------------------------- the shared builder


def test_build_lp_rows_and_scaling():
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((4, 10)) * np.array([[3.0], [1e-6], [2.0], [5e4]])
    groups = np.arange(10) % 3
    problem = make_problem(scores, 4, bounds=[0.0, -np.inf, 1.0], groups=groups, floors=[1, 0, 2])
    lp = build_lp(problem)
    assert lp.budget_row == 0
    np.testing.assert_array_equal(lp.bound_scores, [0, 2])
    np.testing.assert_array_equal(lp.bound_rows, [1, 2])
    np.testing.assert_array_equal(lp.floor_groups, [0, 2])
    np.testing.assert_array_equal(lp.floor_rows, [3, 4])
    assert lp.matrix.indices.dtype == np.int32 and lp.matrix.indptr.dtype == np.int32
    dense = lp.matrix.toarray()
    np.testing.assert_allclose(dense[0], 1.0)
    for row, i in zip(lp.bound_rows, lp.bound_scores):
        best = np.sort(scores[i + 1])[::-1][:4].sum()
        expected = min(max(abs(problem.thresholds[i]), abs(best)) / 4, np.abs(scores[i + 1]).max())
        assert lp.bound_scales[row - 1] == pytest.approx(expected, rel=1e-12)  # T_k / k or |b| / k, at most the peak
        np.testing.assert_allclose(dense[row] * lp.bound_scales[row - 1], scores[i + 1])
    np.testing.assert_array_equal(dense[3], groups == 0)
    np.testing.assert_array_equal(dense[4], groups == 2)
    np.testing.assert_allclose(lp.row_lower, [4, 0, 1 / lp.bound_scales[1], 1, 2])
    np.testing.assert_array_equal(lp.row_upper, [4, np.inf, np.inf, np.inf, np.inf])
    np.testing.assert_allclose(lp.objective * lp.objective_scale, scores[0])

    # sensitivities (d max / d rhs) of the scaled rows map back to copslp's convention
    sensitivity = np.array([2.0, -0.5, -0.25, -1.0, 0.0])
    duals = duals_to_convention(problem, lp, sensitivity, equality_sign=1.0, inequality_sign=1.0)
    sigma0 = lp.objective_scale
    assert duals.budget_dual == pytest.approx(2.0 * sigma0)
    np.testing.assert_allclose(duals.multipliers, [0.5 * sigma0 / lp.bound_scales[0], 0.0,
                                                   0.25 * sigma0 / lp.bound_scales[1]])
    np.testing.assert_allclose(duals.floor_multipliers, [sigma0, 0.0, 0.0])
    flipped = duals_to_convention(problem, lp, -sensitivity, equality_sign=-1.0, inequality_sign=-1.0)
    np.testing.assert_allclose(flipped.multipliers, duals.multipliers)
    with pytest.raises(ValueError, match="row duals"):
        duals_to_convention(problem, lp, sensitivity[:3], equality_sign=1.0, inequality_sign=1.0)


def test_tiny_and_huge_scores_are_scaled():
    """Scores far from 1 (SNIP-like 1e-9, SynFlow-like 1e12) solve to the same mask."""
    rng = np.random.default_rng(8)
    base = rng.random((2, 500))
    masks = []
    for scale in [1e-9, 1.0, 1e12]:
        result = copslp.solve(base * scale, 25, gamma=0.9, method="highs")
        assert result.certificate.passed
        masks.append(result.mask)
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[2], masks[1])
