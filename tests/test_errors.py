"""Bad input (docs/maths.md §7): one test each, checking the exception type and that the
message names the argument and the offending value. Also: solve leaves the caller's arrays
alone."""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

import copslp
from copslp._registry import METHODS, MethodSpec

RNG = np.random.default_rng(0)
SCORES = RNG.random((2, 10))
GROUPS = np.array([0] * 5 + [1] * 5)


@contextmanager
def raises(exception, *fragments):
    """``pytest.raises`` that also demands every fragment (case-insensitive) in the message."""
    with pytest.raises(exception) as info:
        yield info
    message = str(info.value).lower()
    for fragment in fragments:
        assert str(fragment).lower() in message, f"{fragment!r} not in message: {info.value}"


def _numbers_in(message: str) -> list[float]:
    return [float(t) for t in re.findall(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?", message)]


# ----------------------------------------------------------------------------------------
# scores


def test_nan_in_a_score_names_row_and_index():
    scores = SCORES.copy()
    scores[1, 3] = np.nan
    with raises(ValueError, "scores[1]", "index 3", "nan"):
        copslp.solve(scores, 3)


def test_inf_in_a_score_names_row_and_index():
    scores = SCORES.copy()
    scores[0, 7] = np.inf
    with raises(ValueError, "scores[0]", "index 7", "inf"):
        copslp.solve(scores, 3)


def test_negative_inf_in_a_listed_score_names_row_and_index():
    rows = [SCORES[0], SCORES[1].copy()]
    rows[1][2] = -np.inf
    with raises(ValueError, "scores[1]", "index 2", "-inf"):
        copslp.solve(rows, 3)


def test_nan_in_float32_scores():
    scores = SCORES.astype(np.float32)
    scores[1, 9] = np.nan
    with raises(ValueError, "scores[1]", "index 9", "nan"):
        copslp.solve(scores, 3)


def test_scores_that_overflow_their_sum():
    scores = np.full((2, 10), 1e308)
    with raises(ValueError, "scores", "overflow"):
        copslp.solve(scores, 3, bounds=0.0)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # extreme inputs: an exception, no RuntimeWarning
@pytest.mark.parametrize("method", ["analytic", "highs"])
def test_scores_whose_sums_overflow_only_in_the_method(method):
    """Regression: alternating +-2e304 cancel in validation's sums, but the k kept ones sum to
    4e308; the answer had objective inf and a certificate marked passed with a NaN gap.
    Now the certificate fails on numbers that are not finite, and the cause is named."""
    if method == "highs":
        pytest.importorskip("highspy")
    size, k, value = (200_000, 20_000, 2e304) if method == "analytic" else (2_000, 1_000, 1e306)
    scores = np.random.default_rng(0).random((2, size))
    scores[0, ::2], scores[0, 1::2] = value, -value
    with raises(ValueError, "scores", "overflow"):
        copslp.solve(scores, k, gamma=0.9, method=method)


def test_three_dimensional_scores():
    with raises(ValueError, "scores", "(1, 2, 10)"):
        copslp.solve(SCORES[np.newaxis], 3)


def test_empty_scores():
    with raises(ValueError, "scores", "(2, 0)"):
        copslp.solve(np.zeros((2, 0)), 1)


def test_no_score_rows():
    with raises(ValueError, "scores", "(0, 5)"):
        copslp.solve(np.zeros((0, 5)), 1)


def test_empty_sequence_of_scores():
    with raises(ValueError, "scores", "empty"):
        copslp.solve([], 1)


def test_ragged_sequence_of_scores():
    with raises(ValueError, "length", "[10, 5]"):
        copslp.solve([SCORES[0], SCORES[1, :5]], 3)


def test_ragged_nested_lists():
    with raises(ValueError, "length", "[3, 2]"):
        copslp.solve([[1.0, 2.0, 3.0], [1.0, 2.0]], 1)


def test_sequence_of_two_dimensional_scores():
    with raises(ValueError, "scores[0]", "1-d", "(2, 10)"):
        copslp.solve([SCORES, SCORES], 3)


@pytest.mark.parametrize("dtype", [bool, str, complex, object])
def test_non_real_scores_are_a_type_error(dtype):
    scores = SCORES > 0.5 if dtype is bool else SCORES.astype(dtype)
    with raises(TypeError, "scores", np.dtype(dtype).name if dtype is not str else "<U"):
        copslp.solve(scores, 3)


def test_bool_row_in_a_sequence_is_a_type_error():
    with raises(TypeError, "scores[1]", "bool"):
        copslp.solve([SCORES[0], SCORES[1] > 0.5], 3)


@pytest.mark.parametrize("scores", [3.0, {"a": 1.0}, "scores.npy"])
def test_scores_of_the_wrong_type(scores):
    with raises(TypeError, "scores", type(scores).__name__):
        copslp.solve(scores, 1)


def test_integer_scores_are_accepted():
    result = copslp.solve(np.arange(20).reshape(2, 10), 3, gamma=0.5)
    assert result.mask.sum() == 3


# ----------------------------------------------------------------------------------------
# budget


@pytest.mark.parametrize("k", [0, -1, 11, np.int64(11)])
def test_budget_outside_one_to_d(k):
    with raises(ValueError, "budget", "k = " + str(int(k)), "D = 10"):
        copslp.solve(SCORES, k)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("inf")])
def test_float_budget_outside_zero_one(fraction):
    with raises(ValueError, "budget", repr(fraction)):
        copslp.solve(SCORES, fraction)


@pytest.mark.parametrize("budget", [float("nan"), np.float64("nan")])
def test_nan_budget(budget):
    with raises(ValueError, "budget", "nan"):
        copslp.solve(SCORES, budget)


@pytest.mark.parametrize("budget, shown", [(True, "True"), (np.bool_(False), "False"), ("3", "'3'"), (None, "None"),
                                           (3 + 0j, "3+0j")])
def test_budget_of_the_wrong_type(budget, shown):
    with raises(TypeError, "budget", shown):
        copslp.solve(SCORES, budget)


# ----------------------------------------------------------------------------------------
# gamma and bounds


@pytest.mark.parametrize("gamma", [-0.1, 1.1, float("inf"), [0.5, 2.0]])
def test_gamma_outside_zero_one(gamma):
    scores = RNG.random((3, 10))
    bad = gamma if np.isscalar(gamma) else gamma[1]
    with raises(ValueError, "gamma", str(bad)):
        copslp.solve(scores, 3, gamma=gamma)


def test_gamma_nan():
    with raises(ValueError, "gamma", "nan"):
        copslp.solve(SCORES, 3, gamma=float("nan"))


@pytest.mark.parametrize("gamma, shown", [(True, "True"), ("0.5", "'0.5'"), (0.5 + 0j, "0.5+0j")])
def test_gamma_of_the_wrong_type(gamma, shown):
    with raises(TypeError, "gamma", shown):
        copslp.solve(SCORES, 3, gamma=gamma)


def test_gamma_of_the_wrong_length():
    with raises(ValueError, "gamma", "(1)", "(2,)"):
        copslp.solve(SCORES, 3, gamma=[0.5, 0.5])


def test_gamma_and_bounds_together():
    with raises(ValueError, "gamma", "bounds"):
        copslp.solve(SCORES, 3, gamma=0.5, bounds=1.0)


def test_gamma_with_a_single_score():
    with raises(ValueError, "gamma", "one row"):
        copslp.solve(SCORES[0], 3, gamma=0.5)


def test_bounds_with_a_single_score():
    with raises(ValueError, "bounds", "one row"):
        copslp.solve(SCORES[:1], 3, bounds=0.5)


@pytest.mark.parametrize("bound, shown", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_bounds_nan_or_plus_inf(bound, shown):
    with raises(ValueError, "bounds", shown):
        copslp.solve(SCORES, 3, bounds=bound)


@pytest.mark.parametrize("sign", [-1.0, 0.0])
def test_relative_bound_needs_a_positive_best_value(sign):
    scores = np.stack([SCORES[0], sign * SCORES[1]])
    best = float(np.sort(scores[1])[::-1][:3].sum())
    with raises(ValueError, "scores[1]", "bounds=") as info:
        copslp.solve(scores, 3, gamma=0.5)
    assert any(v == pytest.approx(best, rel=1e-9, abs=1e-300) for v in _numbers_in(str(info.value)))


def test_relative_bound_switched_off_needs_nothing():
    scores = np.stack([SCORES[0], -SCORES[1]])
    result = copslp.solve(scores, 3, gamma=0.0)
    assert result.mask.sum() == 3


# ----------------------------------------------------------------------------------------
# groups and floors


def test_floors_summing_above_the_budget():
    with raises(ValueError, "floors", "4", "k = 3"):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS, floors=2)


def test_floor_above_its_group_size():
    with raises(ValueError, "floors[0]", "6", "5 elements"):
        copslp.solve(SCORES, 8, gamma=0.5, groups=GROUPS, floors=[6, 1])


def test_groups_without_floors():
    with raises(ValueError, "groups", "floors"):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS)


def test_floors_without_groups():
    with raises(ValueError, "floors", "groups"):
        copslp.solve(SCORES, 3, gamma=0.5, floors=1)


def test_negative_floor():
    with raises(ValueError, "floors[0]", "-1"):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS, floors=[-1, 1])


def test_too_few_floors():
    with raises(ValueError, "floors", "(2)", "(1,)"):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS, floors=[1])


def test_groups_of_the_wrong_length():
    with raises(ValueError, "groups", "(10,)", "(5,)"):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS[:5], floors=1)


def test_groups_not_integers():
    with raises(TypeError, "groups", "float64"):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS.astype(float), floors=1)


def test_negative_group_index():
    with raises(ValueError, "groups", "-1"):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS - 1, floors=0)


@pytest.mark.parametrize("floors, shown", [(1.5, "1.5"), (True, "True"), ("1", "'1'")])
def test_floors_not_integers(floors, shown):
    with raises(TypeError, "floors", shown):
        copslp.solve(SCORES, 3, gamma=0.5, groups=GROUPS, floors=floors)


# ----------------------------------------------------------------------------------------
# methods and options


def test_unknown_method_lists_the_valid_ones():
    with raises(ValueError, "'simplex'", *copslp.available_methods()):
        copslp.solve(SCORES, 3, method="simplex")


def test_method_names_are_lowercase():
    with raises(ValueError, "'Analytic'", "analytic"):
        copslp.solve(SCORES, 3, method="Analytic")


def test_method_not_a_string():
    with raises(TypeError, "method", "None"):
        copslp.solve(SCORES, 3, method=None)


def test_misspelt_keyword_is_a_type_error():
    # a typo must not silently solve with the default gamma
    with raises(TypeError, "gama"):
        copslp.solve(SCORES, 3, gama=0.5)


def test_method_option_as_a_keyword_is_a_type_error():
    with raises(TypeError, "sample_size"):
        copslp.solve(SCORES, 3, sample_size=256)


def test_unknown_option_names_the_valid_ones():
    with raises(ValueError, "'bogus'", "analytic", "max_rounds, rtol, sample_size, seed"):
        copslp.solve(SCORES, 3, options={"bogus": 1})


def test_option_of_another_method_is_refused():
    pytest.importorskip("highspy")
    with raises(ValueError, "'highs'", "'sample_size'", "presolve, solver, time_limit, tolerance"):
        copslp.solve(SCORES, 3, method="highs", options={"sample_size": 256})


def test_options_must_be_a_mapping():
    with raises(TypeError, "options", "mapping"):
        copslp.solve(SCORES, 3, options=[("rtol", 1e-9)])


def test_given_options_reach_the_method():
    loose = copslp.solve(SCORES, 3, options={"rtol": 1e-3})
    strict = copslp.solve(SCORES, 3)
    assert loose.certificate.tolerance == 1e-3 and strict.certificate.tolerance == 1e-9


def test_missing_optional_backend(monkeypatch):
    spec = MethodSpec("needs_missing", "._analytic:solve_analytic", ("copslp_no_such_module",))
    monkeypatch.setitem(METHODS, "needs_missing", spec)
    assert "needs_missing" not in copslp.available_methods()
    with raises(ImportError, "needs_missing", "copslp_no_such_module"):
        copslp.solve(SCORES, 3, method="needs_missing")


@pytest.mark.parametrize("n", [1, 3])
def test_two_score_needs_two_scores(n):
    scores = RNG.random((n, 10))
    with raises(ValueError, "two_score", f"n = {n}"):
        copslp.solve(scores, 3, method="two_score")


def test_milp_refuses_large_d():
    pytest.importorskip("highspy")
    size = METHODS["milp"].options["max_size"].default + 1
    scores = RNG.random((2, size))
    with raises(ValueError, "milp", f"D = {size}", "max_size"):
        copslp.solve(scores, 3, method="milp")


def test_milp_max_size_option():
    pytest.importorskip("highspy")
    with raises(ValueError, "max_size = 5", "D = 10"):
        copslp.solve(SCORES, 3, method="milp", options={"max_size": 5})


def test_unknown_highs_solver():
    pytest.importorskip("highspy")
    with raises(ValueError, "'dual'", "ipm"):
        copslp.solve(SCORES, 3, method="highs", options={"solver": "dual"})


@pytest.mark.parametrize("rtol", [-1.0, 0.0, 2.0])
def test_analytic_rtol_outside_zero_one(rtol):
    with raises(ValueError, "rtol", str(rtol)):
        copslp.solve(SCORES, 3, options={"rtol": rtol})


def test_two_score_tol_outside_zero_one():
    with raises(ValueError, "tol", "2"):
        copslp.solve(SCORES, 3, method="two_score", options={"tol": 2.0})


# ----------------------------------------------------------------------------------------
# infeasible


def test_infeasible_bound_gives_the_largest_reachable_value():
    best = float(np.sort(SCORES[1])[::-1][:3].sum())
    with raises(copslp.InfeasibleError, "scores[1]") as info:
        copslp.solve(SCORES, 3, bounds=best + 0.5)
    assert isinstance(info.value, ValueError)
    assert any(v == pytest.approx(best, rel=1e-9) for v in _numbers_in(str(info.value)))
    assert info.value.best_reachable == pytest.approx(best, rel=1e-12)
    assert info.value.threshold == pytest.approx(best + 0.5)
    assert info.value.score_index == 1


# ----------------------------------------------------------------------------------------
# the caller's arrays


def _snapshots(*arrays):
    return [(a, a.copy(), a.flags.writeable) for a in arrays]


def _assert_untouched(snapshots):
    for array, before, writeable in snapshots:
        assert array.flags.writeable == writeable, "solve changed the caller's writeable flag"
        np.testing.assert_array_equal(array, before)


@pytest.mark.parametrize("method", copslp.available_methods())
@pytest.mark.parametrize("layout", ["float64", "float32", "fortran", "list", "rows_of_matrix", "one_row"])
def test_caller_scores_untouched(method, layout):
    scores = RNG.standard_normal((2, 30))
    gamma = np.array([0.5])
    if layout == "float32":
        scores = scores.astype(np.float32)
    elif layout == "fortran":
        scores = np.asfortranarray(scores)
    if layout == "list":
        rows = [scores[0].copy(), scores[1].astype(np.float32)]
        snaps = _snapshots(*rows, gamma)
        args = rows
    elif layout == "rows_of_matrix":  # read through a view of the caller's matrix
        snaps = _snapshots(scores, gamma)
        args = list(scores)
    elif layout == "one_row":
        if method == "two_score":
            pytest.skip("two_score needs two scores")
        row = scores[0].copy()
        snaps = _snapshots(row)
        args, gamma = row, None
    else:
        snaps = _snapshots(scores, gamma)
        args = scores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copslp.CopsWarning)
        result = copslp.solve(args, 6, gamma=gamma, method=method)
    _assert_untouched(snaps)
    # the result does not share memory with the caller's arrays
    for array, _, _ in snaps:
        assert not np.shares_memory(result.x, array) and not np.shares_memory(result.mask, array)


@pytest.mark.parametrize("method", copslp.available_methods())
def test_caller_bounds_and_floors_untouched(method):
    scores = RNG.random((2, 10))
    bounds = np.array([1.0])
    floors = np.array([1, 1], dtype=np.int64)
    groups = GROUPS.astype(np.int32)  # not the index dtype: validation copies it
    snaps = _snapshots(bounds, floors, groups)
    copslp.solve(scores, 4, bounds=bounds, groups=groups, floors=floors, method=method)
    _assert_untouched(snaps)


def test_caller_groups_stay_writeable():
    groups = np.array([0] * 5 + [1] * 5)  # int64, contiguous: the common case
    copslp.solve(SCORES, 4, gamma=0.5, groups=groups, floors=1)
    assert groups.flags.writeable
    groups[0] = 1  # the caller can still edit it


# ----------------------------------------------------------------------------------------
# bounds at the ends of float64: the same class and the same numbers on every method


def _reach_of(scores, k):
    return float(np.sort(scores)[::-1][:k].sum())


@pytest.mark.parametrize("method", copslp.available_methods())
@pytest.mark.parametrize("case, bound", [("", 1e20), ("", 1e300), ("zero-score", 1e-10), ("zero-score", 1e-300),
                                         ("floors", 1e20)])
def test_a_bound_no_point_reaches_is_infeasible_on_every_method(method, case, bound):
    """Regression: a bound of 1e20 was a SolverError with highs and milp (HiGHS reads a row
    bound of 1e20 as infinite and refuses the model) and cvxpy's own ValueError; a bound of
    1e-10 on an all-zero score was met within HiGHS's feasibility tolerance and then failed
    the certificate. Each is the analytic method's InfeasibleError, with the best value."""
    scores = np.random.default_rng(1).random((2, 40))
    floors = {}
    if case == "zero-score":
        scores[1] = 0.0
    if case == "floors":
        floors = {"groups": np.repeat([0, 1], 20), "floors": 5}
    with raises(copslp.InfeasibleError, "scores[1]", repr(bound)) as info:
        copslp.solve(scores, 10, bounds=bound, method=method, **floors)
    reach = copslp.solve(scores[1:], 10, method="analytic", **floors).objective
    assert info.value.best_reachable == pytest.approx(reach, rel=1e-12, abs=0.0)
    assert info.value.threshold == bound and info.value.score_index == 1


@pytest.mark.parametrize("method", copslp.available_methods())
def test_a_huge_bound_that_can_be_met_is_solved_on_every_method(method):
    """A bound of 1e20 on a score of that size is an ordinary bound: every method agrees."""
    scores = np.random.default_rng(2).random((2, 40))
    scores[1] *= 1e20
    bound = 0.9 * _reach_of(scores[1], 10)
    assert bound > 1e20
    result = copslp.solve(scores, 10, bounds=bound, method=method)
    expected = copslp.solve(scores, 10, bounds=bound, method="analytic")
    if method == "milp":  # the binary optimum, at most the LP's
        assert result.objective <= expected.objective + 1e-9 * abs(expected.objective)
    else:
        assert result.objective == pytest.approx(expected.objective, rel=1e-6)
    assert result.bound_values[0] >= bound * (1 - 1e-6)


@pytest.mark.parametrize("method", copslp.available_methods())
@pytest.mark.parametrize("seed", [2, 37])
def test_a_score_with_one_large_negative_entry_is_solved_on_every_method(method, seed):
    """Regression: a score of entries near 1e-9 with one entry of -1, bounded at gamma 1 and
    0.9: scaled by its largest magnitude, the entries that decide the bound fell under HiGHS's
    tolerances (it drops matrix entries of 1e-9 and less), and the generic methods called the
    problem infeasible or failed the certificate. Every method solves it."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((2, 27))
    scores[1] = np.abs(scores[1]) * 1e-9
    scores[1, 0] = -1.0
    for gamma in (1.0, 0.9):
        expected = copslp.solve(scores, 8, gamma=gamma, method="analytic")
        result = copslp.solve(scores, 8, gamma=gamma, method=method)
        if method == "milp":
            assert result.objective <= expected.objective + 1e-9 * abs(expected.objective)
        else:
            assert result.objective == pytest.approx(expected.objective, rel=1e-6)
        assert result.certificate.passed


def test_a_tiny_bound_on_a_score_with_one_entry_is_met_by_milp():
    """Regression: the binary certificate measured a bound of 1e-10 against the bound alone
    (a mask missing it by 1e-10 failed at 1.0), where the LP certificate measures it against
    the best value T_k(s_i) too; both now use the same yardstick."""
    scores = np.random.default_rng(60).standard_normal((2, 40))
    scores[1] = 0.0
    scores[1, 7] = 1.0
    result = copslp.solve(scores, 10, bounds=1e-10, method="milp")
    assert result.certificate.passed


@pytest.mark.filterwarnings("error::RuntimeWarning")  # extreme inputs: an exception, no RuntimeWarning
@pytest.mark.parametrize("n", [2, 3])
def test_sums_that_overflow_are_the_same_error_whatever_the_number_of_scores(n):
    """Regression: finite scores near 1e303 at D = 2^20, whose sums overflow float64. With n = 2
    the documented ValueError; with n = 3 the analytic method's first pass (which validation's
    pass is fused with) estimated lambda from the subsample before validation had its say, and
    its Newton step ended in LinAlgError ("SVD did not converge"). Validation speaks first."""
    scores = np.random.default_rng(0).random((n, 2**20)) * 1e303
    with raises(ValueError, "scores", "overflow", "rescale") as info:
        copslp.solve(scores, 2**19, gamma=0.5)
    assert not isinstance(info.value, np.linalg.LinAlgError)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # extreme inputs: an exception, no RuntimeWarning
def test_several_bounds_on_scores_near_1e200_are_solved():
    """Regression: the Newton step's curvature squared the raw scores (inf near 1e200, then
    LinAlgError 'SVD did not converge'); it is formed on rows scaled to at most 1."""
    scores = np.random.default_rng(0).random((3, 10_000)) * 1e200
    expected = copslp.solve(scores, 5_000, gamma=0.5, method="highs")
    result = copslp.solve(scores, 5_000, gamma=0.5, method="analytic")
    assert result.objective == pytest.approx(expected.objective, rel=1e-7)


def _infeasible_with_floors():
    """An infeasible problem with floors and gamma [0.99, 0.8, 1] (the shape of the one on which
    HiGHS ended with model status Unknown inside the analytic method)."""
    rng = np.random.default_rng(3)
    size = int(rng.integers(50, 400))
    k = int(rng.integers(max(2, size // 50), size // 2))
    scores = rng.standard_normal((4, size))
    n_groups = int(rng.integers(2, 5))
    groups = np.sort(rng.integers(0, n_groups, size))
    floors = np.minimum(np.bincount(groups, minlength=n_groups), rng.integers(0, max(1, k // n_groups), n_groups))
    return scores, k, {"gamma": [0.99, 0.8, 1.0], "groups": groups, "floors": floors}


def test_the_infeasible_problem_with_floors_is_infeasible():
    scores, k, arguments = _infeasible_with_floors()
    for method in ("analytic", "highs"):
        with pytest.raises(copslp.InfeasibleError):
            copslp.solve(scores, k, method=method, **arguments)


def test_an_infeasible_problem_is_infeasible_when_highs_gives_no_verdict(monkeypatch):
    """Regression: with floors, the analytic method decided the survivors by HiGHS, and HiGHS's
    'Unknown' became a SolverError. Its survivors' LP is its own simplex now: HiGHS failing
    changes nothing."""
    import copslp._backends.highs

    def no_verdict(*args, **kwargs):
        raise copslp.SolverError("HiGHS stopped with model status 'Unknown'")

    monkeypatch.setattr(copslp._backends.highs, "solve_highs", no_verdict)
    scores, k, arguments = _infeasible_with_floors()
    with pytest.raises(copslp.InfeasibleError):
        copslp.solve(scores, k, method="analytic", **arguments)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # extreme inputs: an exception, no RuntimeWarning
@pytest.mark.parametrize("method", copslp.available_methods())
def test_a_secondary_score_too_small_for_its_multiplier_is_named(method):
    """Regression: a bound on a score of entries near 1e-310 (subnormal) beside a primary of
    order 1 needs a multiplier near 1e310, beyond float64: the LP methods failed the
    certificate or did not settle (SolverError). Now a ValueError naming the score and the
    rescaling, on every method that needs multipliers; milp (no multipliers) solves it."""
    scores = np.random.default_rng(5).standard_normal((2, 40))
    scores[1] = np.abs(scores[1]) * 1e-310
    if method == "milp":
        assert copslp.solve(scores, 10, gamma=0.9, method=method).certificate.passed
        return
    with raises(ValueError, "scores[1]", "rescale", "power of 2"):
        copslp.solve(scores, 10, gamma=0.9, method=method)
