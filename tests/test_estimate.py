"""The subsample's estimate of lambda* with one bound (``copslp._analytic.one_bound.estimate_one_bound``):
regula falsi on the s_1 value of the best set, checked against the exact walk."""

from __future__ import annotations

import numpy as np
import pytest

from copslp._inner import InnerProblem
from copslp._analytic.one_bound import ESTIMATE_NARROWING, estimate_one_bound, solve_one_bound
from copslp._selection import top_k_sum


def _problem(kind, seed, size=4096, fraction=0.05):
    rng = np.random.default_rng(seed)
    scores = {"uniform": lambda: rng.random((2, size)),
              "lognormal": lambda: rng.lognormal(0.0, 1.5, (2, size)),
              "signed": lambda: rng.normal(size=(2, size)) + np.array([[0.0], [0.5]]),
              "ties": lambda: rng.integers(0, 6, (2, size)).astype(float)}[kind]()
    k = int(fraction * size)
    gamma = 0.99 if kind == "ties" else 0.9  # with ties at 0.9 the top-k of s_0 meets the bound
    return InnerProblem(scores, k, np.array([gamma * top_k_sum(scores[1], k)]))


@pytest.mark.parametrize("kind", ["uniform", "lognormal", "signed", "ties"])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spread", [0.05, 0.5])
def test_within_the_narrowing_of_the_exact_multiplier(kind, seed, spread):
    inner = _problem(kind, seed)
    exact = float(solve_one_bound(inner)[1][0])
    assert exact > 0
    bracket = (exact * (1 - spread * 0.7), exact * (1 + spread * 1.3), exact)
    estimate = estimate_one_bound(inner, bracket)
    assert estimate is not None
    # the crossing of s_1's value with b is an interval of lambdas when g jumps over b there
    # (ties, few elements): the estimate lies within the narrowing of the exact multiplier
    assert abs(estimate - exact) <= ESTIMATE_NARROWING * (bracket[1] - bracket[0]) + 1e-12 * exact


@pytest.mark.parametrize("side", ["below", "above"])
def test_a_bracket_that_misses_gives_none(side):
    inner = _problem("uniform", 0)
    exact = float(solve_one_bound(inner)[1][0])
    bracket = (exact * 0.5, exact * 0.9, exact * 0.7) if side == "below" else (exact * 1.1, exact * 2.0, exact * 1.5)
    assert estimate_one_bound(inner, bracket) is None


def test_a_bracket_from_zero_gives_none():
    inner = _problem("uniform", 0)
    assert estimate_one_bound(inner, (0.0, 10.0, 1.0)) is None


def test_floors_give_none():
    inner = _problem("uniform", 0)
    exact = float(solve_one_bound(inner)[1][0])
    groups = np.arange(inner.size) % 4
    with_floors = InnerProblem(inner.scores, inner.budget, inner.thresholds, groups, np.full(4, 5))
    assert estimate_one_bound(with_floors, (exact * 0.5, exact * 2.0, exact)) is None


def test_a_missed_box_is_recentred_at_its_own_width(monkeypatch):
    """A first box that misses lambda* misses it by a little, and the survivors' lambda is
    then lambda* itself: the whole problem's certificate accepts that point at once, and where
    it does not (here made to refuse), the second box is centred there with the first one's
    relative width (not four times wider, which screened about four times as many survivors)."""
    import copslp
    import copslp._analytic.driver as driver_module

    scores = np.random.default_rng(3).random((2, 2_000_000))
    k = scores.shape[1] // 100

    def relative_width(result):
        lo, hi = (np.array(side) for side in result.info["box"])
        return float(((hi - lo) / (hi + lo))[0])

    first_time = copslp.solve(scores, k, gamma=0.9, options={"seed": 0})
    accepted = copslp.solve(scores, k, gamma=0.9, options={"seed": 10})  # this seed's estimate misses
    assert accepted.info["rounds"] == 1 and accepted.info["lambda_outside_box"]
    lo, hi = accepted.info["box"]
    assert not lo[0] < accepted.multipliers[0] < hi[0]
    np.testing.assert_array_equal(accepted.mask, first_time.mask)

    finish = driver_module._finish
    monkeypatch.setattr(driver_module, "_finish", lambda *args, candidate=False, **kwargs:
                        None if candidate else finish(*args, **kwargs))
    missed = copslp.solve(scores, k, gamma=0.9, options={"seed": 10})
    assert missed.info["rounds"] == 2 and first_time.info["rounds"] == 1
    lo, hi = missed.info["box"]
    assert lo[0] < missed.multipliers[0] < hi[0]
    assert relative_width(missed) == pytest.approx(relative_width(first_time), rel=1e-9)
    assert missed.info["survivors"] <= 1.5 * first_time.info["survivors"]
    np.testing.assert_array_equal(missed.mask, first_time.mask)
