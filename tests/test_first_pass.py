"""Validation fused with the analytic method's first screening (relative bounds; no floors, or
floors on layers): the same answers, the same errors, and the roads that leave it
(``copslp._analytic.driver.first_pass``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import copslp
import copslp._analytic.driver as analytic_module
import copslp._selection as selection_module
from copslp._problem import prepare_problem

SIZE, SAMPLE = 20_000, 512
OPTIONS = {"sample_size": SAMPLE}


@pytest.fixture(autouse=True)
def short_rows_prefilter(monkeypatch):
    """Validation's T_k narrows rows of 1024 and more to candidates (as it does rows of 2^20
    and more), so that the first pass applies to these small problems."""
    monkeypatch.setattr(selection_module, "_PREFILTER_MIN_SIZE", 1024)


def _scores(seed=0, dtype=np.float64):
    return np.random.default_rng(seed).random((2, SIZE)).astype(dtype)


def _sample_positions(count=SAMPLE):
    return analytic_module.subsample_positions(SIZE, count, 0)  # the default seed's subsample


def _outside_sample(count):
    return np.setdiff1d(np.arange(SIZE), _sample_positions())[:count]


@pytest.fixture
def passes(monkeypatch):
    """What first_pass returned, call by call."""
    seen = []
    original = analytic_module.first_pass

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(analytic_module, "first_pass", spy)
    return seen


def _settings(**options):
    return dict(copslp._registry.get_method("analytic").settings({**OPTIONS, **options}))


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("kind", ["uniform", "float32", "signed", "ties"])
def test_same_answer_as_validation_on_its_own(kind, n, passes):
    """The fused road and the road that validates first reach the same certified optimum,
    with the same best values T_k(s_i) to the last bit (the same candidates, summed alike),
    with one bound and with several."""
    rng = np.random.default_rng(3)
    scores = {"uniform": lambda: rng.random((n, SIZE)),
              "float32": lambda: rng.random((n, SIZE)).astype(np.float32),
              "signed": lambda: rng.normal(size=(n, SIZE)),
              "ties": lambda: rng.integers(0, 6, (n, SIZE)).astype(float)}[kind]()
    gamma = 0.9 if n == 2 else 0.4  # three signed scores cannot all reach much of their best at once
    fused = copslp.solve(scores, SIZE // 5, gamma=gamma, options=OPTIONS)
    assert passes and passes[-1] is not None and passes[-1].screen is not None
    alone = prepare_problem(scores, SIZE // 5, gamma=gamma).complete()
    own = analytic_module.solve_analytic(alone, **_settings())
    assert fused.certificate.passed
    np.testing.assert_array_equal(passes[-1].best, alone.best_reachable)
    np.testing.assert_array_equal(fused.thresholds, alone.thresholds)
    assert fused.objective == pytest.approx(float(scores[0].astype(float) @ np.asarray(own.x)), rel=1e-9)


@pytest.mark.parametrize("value, text", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
@pytest.mark.parametrize("row", [0, 1])
def test_non_finite_entry_outside_the_subsample(row, value, text, passes):
    """The pass that screens also finds it: the same ValueError as validation's own."""
    scores = _scores()
    where = int(_outside_sample(1)[0])
    scores[row, where] = value
    with pytest.raises(ValueError, match=rf"scores\[{row}\] has 1 non-finite entries \(first at index {where}: "):
        copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes and passes[-1] is not None  # the fused pass ran and found it


def test_non_finite_entry_in_the_subsample(passes):
    """The subsample sees it first: no fused pass, validation on its own says it."""
    scores = _scores()
    where = int(_sample_positions()[5])
    scores[1, where] = np.nan
    with pytest.raises(ValueError, match=rf"scores\[1\] has 1 non-finite entries \(first at index {where}: nan\)"):
        copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes == [None]


def test_float32_sums_that_overflow_float32_are_not_non_finite(passes):
    """The pass sums v in float64: float32 entries whose float32 sums overflow are finite
    there, and the problem is solved."""
    scores = _scores(dtype=np.float32)
    scores[:, _outside_sample(2000)] = 3e38  # finite; their float32 block sums are not
    with np.errstate(over="ignore"):
        assert not np.isfinite(scores[0].sum())
    result = copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes[-1] is not None and np.isfinite(passes[-1].totals).all()
    assert result.certificate.passed


def test_relative_bound_on_a_score_without_positive_best(passes):
    scores = _scores()
    scores[1] = -scores[1]
    with pytest.raises(ValueError, match=r"a relative bound needs a positive best value.*scores\[1\]"):
        copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes[-1] is not None


def test_too_few_candidates_for_the_best_value(passes):
    """Every third entry of s_1 is large, the others small: the level validation reads off
    those entries leaves fewer than k candidates, and T_k(s_1) is found by a selection over
    the whole row, as validation's own pass finds it."""
    size, k = 200_000, 80_000
    scores = np.random.default_rng(4).random((2, size))
    scores[1] *= 1e-3
    scores[1, ::size // 65536] += 1.0  # the entries the level is read from
    result = copslp.solve(scores, k, gamma=0.9, options=OPTIONS)
    first = passes[-1]
    assert first is not None
    assert np.count_nonzero(scores[1] >= selection_module.strided_candidate_level(scores[1], k)) < k
    assert first.best[0] == prepare_problem(scores, k, gamma=0.9).complete().best_reachable[0]
    assert result.certificate.passed


def test_no_warning_before_the_error(passes):
    """Non-finite entries outside the subsample reach the screening before validation sees
    them: numpy's warnings on them are not the caller's; the ValueError is."""
    scores = _scores()
    scores[1, int(_outside_sample(1)[0])] = np.inf
    scores[0, int(_outside_sample(2)[1])] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"scores\[0\] has 1 non-finite entries"):
            copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes[-1] is not None


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_sums_that_overflow_in_another_order():
    """A row whose block-by-block sums are finite but whose sum in another order is not:
    the solve ends in validation's ValueError, not in a failed certificate (numpy warns of
    the overflows the method meets on the way)."""
    size = 65536 + 8
    scores = np.random.default_rng(0).random((2, size))
    scores[0, :32768] = -1.5e308 / 32768
    scores[0, 32768:65536] = 1.5e308 / 32768
    scores[0, 65536:] = 1e308 / 8
    with pytest.raises(ValueError, match="sums overflow float64"):
        copslp.solve(scores, size // 5, gamma=0.9, options={"sample_size": 1024})


@pytest.mark.parametrize("kwargs", [{"gamma": [0.9, 0.0]}, {"gamma": [0.9, 1.0]},
                                    {"gamma": 0.9, "groups": np.arange(SIZE) % 4, "floors": 10},
                                    {"gamma": 0.0}, {"bounds": 1000.0}])
def test_other_problems_validate_on_their_own(kwargs, passes):
    """A bound off, a bound at gamma = 1 (solved on its face), floors, an absolute bound:
    no first pass."""
    scores = _scores() if np.ndim(kwargs.get("gamma", 0)) == 0 else np.vstack([_scores(), _scores(1)[:1]])
    try:
        copslp.solve(scores, SIZE // 5, options=OPTIONS, **kwargs)
    except copslp.InfeasibleError:  # gamma = 1 on one score leaves the other short here
        pass
    assert passes == [None]


def test_absolute_bound_out_of_reach_is_infeasible(passes):
    scores = _scores()
    best = np.sort(scores[1])[::-1][:SIZE // 5].sum()
    with pytest.raises(copslp.InfeasibleError):
        copslp.solve(scores, SIZE // 5, bounds=1.01 * best, options=OPTIONS)
    assert passes == [None]


def test_unsafe_levels_in_the_fused_pass(passes):
    """The subsample never sees the 6,000 elements whose s_0 is large: the levels it sets
    fail their counts, the driver keeps only validation's numbers of the fused pass, and the
    first box is screened again; the same optimum as validation on its own."""
    scores = _scores(2)
    scores[0, _outside_sample(6000)] += 5.0
    result = copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes[-1] is not None and passes[-1].screen.above_one >= SIZE // 5  # its one-level fails its count
    own = analytic_module.solve_analytic(prepare_problem(scores, SIZE // 5, gamma=0.9).complete(), **_settings())
    assert result.certificate.passed
    assert result.objective == pytest.approx(float(scores[0] @ np.asarray(own.x)), rel=1e-9)


def test_subsample_whose_sums_overflow_leaves_validation_to_its_own_pass(passes):
    """Finite scores whose sums overflow float64: the subsample's estimate would overflow
    before validation says why, so the first pass leaves the problem to validation, which
    raises its ValueError without a warning."""
    scores = _scores()
    scores[0] *= 1e307
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="sums overflow float64"):
            copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes == [None]


def test_sums_that_overflow_are_named_as_validation_names_them(passes):
    """Two entries of s_1 at 1e308, every entry finite: the fused pass sums v at the box's
    top (lambda s_1, lambda < 1, stays finite), so it is T_k(s_1) that overflows; the error
    still says that the sums overflow, as validation's own pass says it."""
    scores = _scores()
    scores[1, _outside_sample(2)] = 1e308
    with pytest.raises(ValueError) as fused:
        copslp.solve(scores, SIZE // 5, gamma=0.9, options=OPTIONS)
    assert passes[-1] is not None
    with pytest.raises(ValueError) as alone:
        prepare_problem(scores, SIZE // 5, gamma=0.9).complete()
    assert str(fused.value) == str(alone.value) and "sums overflow float64" in str(alone.value)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_entry_of_a_third_score_outside_the_subsample(value, passes):
    """Several bounds: the pass finds a non-finite entry of any row, with validation's words."""
    scores = np.vstack([_scores(), _scores(1)[:1]])
    where = int(np.setdiff1d(np.arange(SIZE), _sample_positions(4 * SAMPLE))[0])
    scores[2, where] = value
    with pytest.raises(ValueError, match=rf"scores\[2\] has 1 non-finite entries \(first at index {where}: "):
        copslp.solve(scores, SIZE // 5, gamma=0.8, options=OPTIONS)
    assert passes and passes[-1] is not None


def test_bounds_that_conflict_are_proved_so_on_both_roads(passes, monkeypatch):
    """Three signed scores at gamma = 0.7 cannot all be met: the fused road raises the
    InfeasibleError (with its Farkas ray) that the road validating first raises."""
    import dataclasses

    import copslp._registry as registry

    scores = np.random.default_rng(3).normal(size=(4, SIZE))
    with pytest.raises(copslp.InfeasibleError) as fused:
        copslp.solve(scores, SIZE // 5, gamma=0.7, options=OPTIONS)
    assert passes and passes[-1] is not None
    monkeypatch.setitem(registry.METHODS, "analytic", dataclasses.replace(registry.METHODS["analytic"], first_pass=None))
    with pytest.raises(copslp.InfeasibleError) as alone:
        copslp.solve(scores, SIZE // 5, gamma=0.7, options=OPTIONS)
    assert str(fused.value) == str(alone.value)


def _layers(count=5):
    return np.repeat(np.arange(count), SIZE // count)


@pytest.mark.parametrize("kind", ["slack", "binding", "float32"])
def test_floors_on_layers_same_answer_as_validation_on_its_own(kind, passes):
    """Floors on contiguous groups (layers): the first pass screens with the groups' levels
    and reaches validation's own optimum, with the same T_k to the last bit; in "binding",
    two layers are scaled down so that their floors decide."""
    scores = _scores(4, np.float32 if kind == "float32" else np.float64)
    groups = _layers()
    if kind == "binding":
        scores[:, groups < 2] *= 0.05
    floors = np.full(5, 300)
    fused = copslp.solve(scores, SIZE // 5, gamma=0.8, groups=groups, floors=floors, options=OPTIONS)
    assert passes and passes[-1] is not None and passes[-1].screen is not None
    alone = prepare_problem(scores, SIZE // 5, gamma=0.8, groups=groups, floors=floors).complete()
    own = analytic_module.solve_analytic(alone, **_settings())
    assert fused.certificate.passed
    np.testing.assert_array_equal(passes[-1].best, alone.best_reachable)
    assert fused.objective == pytest.approx(float(scores[0].astype(float) @ np.asarray(own.x)), rel=1e-9)
    kept = np.bincount(groups[fused.mask], minlength=5)
    assert np.all(kept >= floors)
    if kind == "binding":
        assert np.any(np.bincount(groups[np.argsort(scores[0])[::-1][:SIZE // 5]], minlength=5) < floors)


def test_floors_on_layers_non_finite_entry_outside_the_subsample(passes):
    scores = _scores()
    where = int(_outside_sample(1)[0])
    scores[1, where] = np.inf
    with pytest.raises(ValueError, match=rf"scores\[1\] has 1 non-finite entries \(first at index {where}: inf\)"):
        copslp.solve(scores, SIZE // 5, gamma=0.9, groups=_layers(), floors=100, options=OPTIONS)
    assert passes and passes[-1] is not None
