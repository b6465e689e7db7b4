"""The analytic method through the passes interface (:mod:`copslp._analytic.driver`), numpy side.

The same problems as the in-memory analytic method (one bound, several, floors, ties,
signed scores, a bound at gamma = 1, infeasible ones), solved by :func:`solve_streamed` over
:class:`ArrayPasses` in one process: the same optimum as :func:`copslp.solve`, a certificate
that passes, the same errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import copslp
from copslp._analytic.passes import ArrayPasses, OneProcess
import copslp._analytic.driver as streamed_module
from copslp._analytic.driver import solve_streamed
from test_several_bounds import CASES as SEVERAL
from test_several_bounds import several_case


def _layers(rng, size):
    return np.repeat(np.arange(6), size // 6)


def _screened(case):
    """``case`` with a subsample of 640: with one bound or none (a subsample a quarter the
    size of several bounds') its budget scales to at least 64 there, and it is screened."""
    case.options["sample_size"] = 640
    return case


CASES = SEVERAL + [_screened(case) for case in (
    several_case("uniform-r1", "uniform", 2, 1200, 0.8, 21),
    several_case("heavy-r1", "heavy", 2, 900, 0.9, 22),
    several_case("signed-r1-floors", "signed", 2, 1200, 0.4, 23, groups=_layers, floors=100),
    several_case("ties-r0-floors", "ties", 1, 1200, None, 24, groups=_layers, floors=[300, 0, 250, 0, 0, 10]),
    several_case("heavy-r0", "heavy", 1, 700, None, 25),
)]


def streamed(case, **options):
    groups = None if case.groups is None else np.asarray(case.groups)
    passes = ArrayPasses(np.asarray(case.s), groups, 0 if groups is None else int(groups.max()) + 1)
    return solve_streamed(passes, OneProcess(), case.budget, gamma=case.gamma, floors=case.floors,
                          options={**case.options, **options})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_streamed_equals_in_memory(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copslp.CopsWarning)
        try:
            expected = case.solve("analytic")
        except copslp.InfeasibleError as error:
            with pytest.raises(copslp.InfeasibleError) as raised:
                streamed(case)
            assert raised.value.conflicting_scores == error.conflicting_scores
            np.testing.assert_allclose(raised.value.best_reachable, error.best_reachable, rtol=1e-9)
            return
    result = streamed(case)
    assert result.certificate.passed and result.certificate.tolerance == 1e-9
    scale = max(abs(expected.objective), 1e-300)
    assert abs(result.objective - expected.objective) <= 2e-9 * scale
    np.testing.assert_allclose(result.thresholds, expected.thresholds)
    assert result.mask.dtype == np.bool_ and int(result.mask.sum()) == case.budget
    assert result.mask_meets_bounds == expected.mask_meets_bounds
    np.testing.assert_allclose(result.mask_bound_values, case.s[1:] @ result.mask)
    assert result.mask_objective == pytest.approx(float(case.s[0] @ result.mask), rel=1e-12)
    if case.has_floors:
        kept = np.bincount(case.group_vec[result.mask], minlength=case.floor_vec.shape[0])
        assert np.all(kept >= case.floor_vec)
    if not np.any(np.asarray(case.gamma) == 1.0):  # a bound at gamma = 1: every element survives
        assert result.info["survivors"] < case.size


@pytest.mark.parametrize("case", [c for c in CASES if c.label in
                                  ("uniform-r1", "uniform-r3", "uniform-r3-floors", "heavy-r2-floors", "signed-r3",
                                                  "ties-r0-floors", "heavy-r0")],
                         ids=lambda c: c.label)
def test_survivors_solved_where_they_lie(case, monkeypatch):
    """Survivors too many to gather are solved as a problem of their own (nested levels)
    with one bound or none and no floor left to meet (several bounds, or floors the elements
    fixed to 1 do not meet yet, in one process are finished where they are; over processes
    they nest too, tests/test_torch_streamed.py): the same optimum, certified."""
    monkeypatch.setattr(streamed_module, "_GATHER_LIMIT", 200)
    expected = streamed(case)
    if case.n > 2 or not case.has_floors:
        assert ("nested" in expected.info) == (case.n <= 2), expected.info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copslp.CopsWarning)
        reference = case.solve("analytic")
    assert expected.certificate.passed
    assert abs(expected.objective - reference.objective) <= 2e-9 * abs(reference.objective)
    assert int(expected.mask.sum()) == case.budget
    np.testing.assert_allclose(expected.mask_bound_values, case.s[1:] @ expected.mask)


@pytest.mark.parametrize("n_scores, budget, size, limit, seed", [(2, 1200, 3000, 100, 4), (3, 300, 2000, 200, 4)])
def test_a_level_below_proves_a_box_wrong_when_one_bound_fails_there(n_scores, budget, size, limit, seed,
                                                                     monkeypatch):
    """Regression: a box that misses lambda* leaves survivors whose problem cannot meet a
    single bound; the level below must say so (the box is widened), not end in a
    SolverError."""
    scores = np.random.default_rng(seed).pareto(1.5, (n_scores, size))
    expected = copslp.solve(scores, budget, gamma=0.75, method="analytic")
    monkeypatch.setattr(streamed_module, "_GATHER_LIMIT", limit)
    result = solve_streamed(ArrayPasses(scores), OneProcess(), budget, gamma=0.75, options={"sample_size": 256})
    assert result.certificate.passed
    assert abs(result.objective - expected.objective) <= 2e-9 * abs(expected.objective)


def test_array_passes_count_non_finite_entries_per_row():
    """The count is exact: a block whose sums are not finite is counted entry by entry,
    also when only the sums overflow (float32 entries near the largest float32)."""
    from copslp._blocks import BLOCK
    scores = np.random.default_rng(5).random((3, 3 * BLOCK + 5)).astype(np.float32)
    scores[0, [3, 2 * BLOCK + 1]] = np.nan
    scores[1, BLOCK:2 * BLOCK] = 3e38  # finite, their float32 sum is not
    scores[2, -1] = -np.inf
    assert ArrayPasses(scores).non_finite().tolist() == [2, 0, 1]


@pytest.mark.parametrize("case", [c for c in CASES if c.floors is None and c.label in
                                  ("uniform-r1", "heavy-r1", "uniform-r3", "signed-r3")],
                         ids=lambda c: c.label)
@pytest.mark.parametrize("limit", [None, 200])
def test_certificate_from_the_screening_levels_equals_the_one_that_reads_all(case, limit, monkeypatch):
    """Without floors the certificate takes the elements each screening decided from the
    levels it compared them with (no extremes pass); read in full it says the same."""
    if limit is not None:
        monkeypatch.setattr(streamed_module, "_GATHER_LIMIT", limit)
    through = streamed(case)
    full = streamed(case, certificate_reads="all")
    assert through.certificate.passed and full.certificate.passed
    assert through.certificate.screened == case.size - _innermost_survivors(through.info) > 0
    assert full.certificate.screened == 0
    np.testing.assert_array_equal(through.mask, full.mask)
    np.testing.assert_array_equal(through.multipliers, full.multipliers)
    assert through.objective == full.objective and through.budget_dual == full.budget_dual


def _innermost_survivors(info):
    return info["nested"][-1]["survivors"] if "nested" in info else info["survivors"]


def test_levels_that_fail_the_certificate_send_it_to_the_extremes_pass(monkeypatch):
    """ExactScreen levels only bound v: a record whose zero-level lies above the budget dual
    fails through the levels, and the extremes pass (every element read) decides."""
    case = next(c for c in CASES if c.label == "uniform-r1")
    screen = streamed_module._screen

    def lowered(*args):
        screened = screen(*args)
        if screened.record is None:
            return screened
        record = screened.record._replace(zero_levels=screened.record.one_levels + 1.0)
        return streamed_module.replace(screened, record=record)

    monkeypatch.setattr(streamed_module, "_screen", lowered)
    result = streamed(case)
    assert result.certificate.passed and result.certificate.screened == 0
    assert int(result.mask.sum()) == case.budget


def test_certificate_that_needs_the_magnitudes_reads_every_element(monkeypatch):
    """The scores' magnitudes are known only to a pass over every element: a certificate
    that asks for them (as it does for a violation beyond its local tolerance) is made after
    that pass."""
    from copslp import _certificate

    case = next(c for c in CASES if c.label == "uniform-r1")
    original = _certificate.certify

    def asking(problem, x, multipliers, **kwargs):
        kwargs["measures"].magnitude(0)
        return original(problem, x, multipliers, **kwargs)

    monkeypatch.setattr(streamed_module, "certify", asking)
    result = streamed(case)
    assert result.certificate.passed and result.certificate.screened == 0


def test_certificate_asking_for_magnitudes_when_every_element_survived(monkeypatch):
    """A screening that decided nothing lends the certificate no level: it reads what it
    needs (here the magnitudes) by the extremes pass, not from a record that is not there."""
    from copslp import _certificate

    original = _certificate.certify

    def asking(problem, x, multipliers, **kwargs):  # as a certificate beyond its local tolerance does
        kwargs["measures"].magnitude(0)
        return original(problem, x, multipliers, **kwargs)

    monkeypatch.setattr(streamed_module, "certify", asking)
    scores = np.random.default_rng(0).integers(0, 3, size=(2, 40)).astype(float)  # D = 40: every element survives
    result = solve_streamed(ArrayPasses(scores), OneProcess(), 20, gamma=[0.7], options={"sample_size": 128})
    assert result.certificate.passed and result.certificate.screened == 0


def _opposite_small():
    rng = np.random.default_rng(185)
    size = int(rng.integers(8, 80))
    return rng.uniform(0.1, 3, size), int(rng.integers(1, size))


def _opposite_ties():
    return np.random.default_rng(0).integers(1, 4, 8000).astype(np.float64), 2000


@pytest.mark.parametrize("make", [_opposite_small, _opposite_ties])
def test_objective_opposite_to_the_bound_score(make):
    """s_0 = -0.3 s_1: at lambda* = 0.3, v vanishes to round-off and the certificate's
    complementarity is judged against the scores' magnitudes; every element survives."""
    s1, budget = make()
    scores = np.stack([-0.3 * s1, s1])
    result = solve_streamed(ArrayPasses(scores), OneProcess(), budget, gamma=[0.5], options={"sample_size": 128})
    full = solve_streamed(ArrayPasses(scores), OneProcess(), budget, gamma=[0.5],
                          options={"sample_size": 128, "certificate_reads": "all"})
    in_memory = copslp.solve(scores, budget, gamma=0.5, options={"sample_size": 128})
    assert result.certificate.passed and in_memory.certificate.passed
    np.testing.assert_array_equal(result.mask, full.mask)
    assert result.objective == pytest.approx(in_memory.objective, rel=1e-9)


def test_streamed_result_is_the_result_of_solve():
    """One road, one record: the answer over passes is a copslp.Result with every field equal
    to solve's, but x, which is not gathered (reading it raises). The sums behind the
    objectives agree to 1e-12 relative, not bit for bit: the survivors' scores reach the scan
    as a compact array on one road and as a view of a larger buffer on the other, and numpy's
    sums of products take the two layouts through differently unrolled loops (equal on an AMD
    EPYC with AVX2, one ulp apart on a Xeon with AVX-512)."""
    case = CASES[0]
    expected = case.solve("analytic")
    result = streamed(case)
    assert type(result) is copslp.Result
    np.testing.assert_array_equal(result.mask, expected.mask)
    np.testing.assert_array_equal(result.multipliers, expected.multipliers)
    for name in ("objective", "mask_objective", "budget_dual"):
        assert getattr(result, name) == pytest.approx(getattr(expected, name), rel=1e-12, abs=0.0), name
    assert result.rounding_loss == pytest.approx(expected.rounding_loss, abs=1e-12 * abs(expected.objective))
    np.testing.assert_array_equal(result.mask_violations, expected.mask_violations)
    assert result.mask_meets_bounds == expected.mask_meets_bounds and result.method == expected.method == "analytic"
    assert result.size == expected.size == case.size and result.n_fractional == expected.n_fractional
    assert "mask by rule" in result.message and result.method_time <= result.wall_time
    with pytest.raises(AttributeError, match="never gathered"):
        result.x


def test_positive_part_leaves_the_scores_as_they_are():
    """Regression: without multipliers v is the score row itself; adding the floor
    multipliers to it wrote them into the caller's scores."""
    scores = np.random.default_rng(0).random((1, 5000))
    groups = np.repeat(np.arange(5), 1000)
    before = scores.copy()
    ArrayPasses(scores, groups, 5).positive_part(np.array([0]), np.zeros(0), 0.5, np.full(5, 0.25))
    np.testing.assert_array_equal(scores, before)


@pytest.mark.parametrize("n_scores", [2, 4])
@pytest.mark.parametrize("layout", ["layers", "many small groups"])
def test_layers_are_screened_run_by_run_as_element_by_element(n_scores, layout):
    """Groups that are contiguous runs (layers) are screened a run at a time at one level
    each; the pass finds the same ones, survivors, sums and counts as with a level per element
    (runs across block boundaries, empty groups, a group of one; blocks of many small groups,
    which keep a level per element)."""
    rng = np.random.default_rng(1)
    sizes = (np.array([70_000, 0, 1, 90_000, 0, 0, 50_000, 130_000, 3]) if layout == "layers"
             else rng.integers(0, 200, 3000))
    groups = np.repeat(np.arange(sizes.shape[0]), sizes)
    scores = rng.random((n_scores, groups.shape[0]))
    rows = np.arange(n_scores)
    lo, hi = np.full(n_scores - 1, 0.3), np.full(n_scores - 1, 0.4)
    level_of = rng.uniform(0.8, 1.2, sizes.shape[0])
    by_runs = ArrayPasses(scores, groups, sizes.shape[0])
    per_element = ArrayPasses(scores, groups, sizes.shape[0])
    per_element._layers = None  # as if the groups were in any order
    found = [passes.screen(rows, lo, hi, 1.1, 1.0, level_of) for passes in (by_runs, per_element)]
    assert by_runs._layers is not None
    for field in ("above_one", "reaching", "fixed_ones", "n_survivors"):
        assert getattr(found[0], field) == getattr(found[1], field)
    np.testing.assert_array_equal(found[0].support, found[1].support)
    np.testing.assert_array_equal(found[0].fixed_per_group, found[1].fixed_per_group)
    np.testing.assert_array_equal(found[0].taken, found[1].taken)
    for a, b in zip(found[0].handle, found[1].handle):
        np.testing.assert_array_equal(a, b)
    assert 0 < found[0].n_survivors < groups.shape[0] and found[0].fixed_ones > 0


@pytest.mark.parametrize("spread", [0.0, 1.0], ids=["floors met by the fixed ones", "floors left"])
def test_floors_the_fixed_ones_meet_are_solved_a_level_down(spread, monkeypatch):
    """One bound, 6 layers with floors of 1%, survivors beyond the gather limit: where the
    elements fixed to 1 meet every floor already (uniform scores), the survivors are solved
    a level down, as without floors; where a floor is left (a secondary score scaled per
    layer by 10^U(-1, 1), so that top-k starves layers), they are finished in place. The
    same optimum and mask as in place, certified."""
    rng = np.random.default_rng(5)
    size = 300_000
    groups = np.repeat(np.arange(6), size // 6)
    scores = rng.random((2, size))
    scores[1] *= (10.0 ** rng.uniform(-spread, spread, 6))[groups]
    gamma = 0.75 if spread else 0.9
    solve = lambda: solve_streamed(ArrayPasses(scores, groups, 6), OneProcess(), size // 20, gamma=gamma,  # noqa: E731
                                   floors=np.full(6, size // 600))
    monkeypatch.setattr(streamed_module, "_GATHER_LIMIT", 2000)
    result = solve()
    assert result.certificate.passed
    assert ("nested" in result.info) == (spread == 0.0), result.info
    monkeypatch.setattr(streamed_module, "_nests", lambda *args: False)
    in_place = solve()
    assert "nested" not in in_place.info
    assert abs(result.objective - in_place.objective) <= 1e-12 * abs(in_place.objective)
    np.testing.assert_array_equal(result.mask, in_place.mask)
