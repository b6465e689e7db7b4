"""The analytic method through the passes interface (:mod:`copslp._streamed`), numpy side.

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
from copslp._passes import ArrayPasses, OneProcess
import copslp._streamed as streamed_module
from copslp._streamed import solve_streamed
from test_several_bounds import CASES as SEVERAL
from test_several_bounds import several_case


def _layers(rng, size):
    return np.repeat(np.arange(6), size // 6)


CASES = SEVERAL + [
    several_case("uniform-r1", "uniform", 2, 1200, 0.8, 21),
    several_case("heavy-r1", "heavy", 2, 900, 0.9, 22),
    several_case("signed-r1-floors", "signed", 2, 1200, 0.4, 23, groups=_layers, floors=100),
    several_case("ties-r0-floors", "ties", 1, 1200, None, 24, groups=_layers, floors=[300, 0, 250, 0, 0, 10]),
    several_case("heavy-r0", "heavy", 1, 700, None, 25),
]


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
    """Survivors too many to gather are solved as a problem of their own (nested levels):
    the same optimum, certified."""
    monkeypatch.setattr(streamed_module, "_GATHER_LIMIT", 200)
    expected = streamed(case)
    assert "nested" in expected.info, expected.info
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
