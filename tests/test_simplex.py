"""The exact finish on the survivors (copslp._analytic.simplex) against the independent HiGHS reference.

Small LPs of every shape the finish is handed: one to four bounds, floors, ties, exact zeros
(many equal columns), signed scores, infeasible rows; warm starts near and far from lambda*.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import greedy_value, reference_solve, top_k_sum_sorted
from copslp._inner import InnerProblem
from copslp._analytic.screening import ReducedProblemInfeasible
from copslp._selection import collapse_equal_columns
from copslp._analytic.simplex import solve_small_lp

KINDS = ("lognormal", "rounded", "sparse", "signed")


def _problem(seed: int):
    rng = np.random.default_rng(seed)
    m, r = int(rng.integers(5, 600)), int(rng.integers(1, 5))
    k = int(rng.integers(1, m))
    kind = KINDS[seed % len(KINDS)]
    s = rng.lognormal(size=(r + 1, m))
    if kind == "rounded":  # many ties
        s = np.round(s)
    elif kind == "sparse":  # mostly exact zeros: many equal columns
        s *= rng.random((r + 1, m)) < 0.1
    elif kind == "signed":
        s = rng.normal(size=(r + 1, m))
    best = np.array([top_k_sum_sorted(row, k) for row in s[1:]])
    thresholds = best - np.abs(best) * rng.uniform(0.05, 0.7, r) * (1.0 if seed % 7 else -0.1)  # every 7th: above best
    groups = floors = None
    if seed % 3 == 0:
        n_groups = int(rng.integers(1, 6))
        groups = rng.integers(0, n_groups, m)
        sizes = np.bincount(groups, minlength=n_groups)
        floors = np.minimum(sizes, rng.integers(0, k // n_groups + 1, n_groups))
    return InnerProblem(s, k, thresholds, groups, floors), kind


@pytest.mark.parametrize("seed", range(60))
def test_simplex_matches_reference(seed):
    inner, kind = _problem(seed)
    s, k, b = inner.scores, inner.budget, inner.thresholds
    reference = reference_solve(s, k, b, inner.groups, inner.floors)
    start = None if seed % 2 else np.random.default_rng(seed).uniform(0, 2, b.shape[0])
    if reference.status == "infeasible":
        with pytest.raises(ReducedProblemInfeasible):
            solve_small_lp(inner, start)
        return
    x, lam, details = solve_small_lp(inner, start)
    scale = float(np.abs(s).sum(axis=1).max())
    assert details["reduced_solver"] == "simplex"
    assert np.all((x >= 0) & (x <= 1)) and x.sum() == pytest.approx(k, abs=1e-9 * k)
    assert np.all(s[1:] @ x >= b - 1e-9 * scale), (s[1:] @ x - b, kind)
    if inner.floors is not None:
        assert np.all(np.bincount(inner.groups, weights=x, minlength=inner.floors.shape[0]) >= inner.floors - 1e-9)
    objective = float(s[0] @ x)
    assert objective == pytest.approx(reference.objective, rel=1e-9, abs=1e-9 * scale)
    # the multipliers prove it: the dual bound at lambda equals the objective (strong duality)
    assert np.all(lam >= 0)
    v = s[0] + lam @ s[1:]
    dual = greedy_value(v, k, inner.groups, inner.floors) - float(lam @ b)
    assert dual == pytest.approx(objective, rel=1e-9, abs=1e-9 * (scale + float(lam @ np.abs(s[1:]).sum(axis=1))))
    # a vertex: at most one fractional entry per row (budget, bounds, floors)
    fractional = int(np.count_nonzero((x > 1e-12) & (x < 1 - 1e-12)))
    rows = 1 + b.shape[0] + (0 if inner.floors is None else inner.floors.shape[0])
    assert fractional <= rows


def test_equal_columns_are_one_column():
    """8,000 exact zeros and a few hundred distinct elements: the simplex sees ~300 columns."""
    rng = np.random.default_rng(3)
    s = np.zeros((4, 8300))
    s[:, :300] = rng.lognormal(size=(4, 300))
    columns, inverse, counts = collapse_equal_columns(s, None)
    assert columns.shape[1] == 301 and counts.max() == 8000
    np.testing.assert_array_equal(columns[:, inverse], s)
    k = 4000
    b = 0.9 * np.array([top_k_sum_sorted(row, k) for row in s[1:]])
    x, lam, details = solve_small_lp(InnerProblem(s, k, b), None)
    assert details["distinct_columns"] == 301
    reference = reference_solve(s, k, b)
    assert float(s[0] @ x) == pytest.approx(reference.objective, rel=1e-9)
    assert int(np.count_nonzero((x > 0) & (x < 1))) <= 4


@pytest.mark.parametrize("seed", [s for s in range(40) if _problem(s)[0].thresholds.shape[0] >= 2][:12])
def test_the_newton_start_and_the_optimum_is_the_same(seed):
    """The survivors' simplex may start from Newton steps in the bracket
    (copslp._analytic.several_bounds.newton_start): a point inside the box, or, where the
    steps stopped on its outer face, within the two boxes four times as wide around their
    point (each [lam - 2w, lam + 2w], w the last box's width: within hi + 10 w of the first),
    from which the simplex reaches the optimum it reaches from the box's centre."""
    from copslp._analytic.several_bounds import Box, newton_start

    inner, _ = _problem(seed)
    r = inner.thresholds.shape[0]
    box = Box(np.zeros(r), np.full(r, 2.0), np.full(r, 1.0))
    start, calls = newton_start(inner, box)
    assert calls >= 1 and np.all(np.isfinite(start)) and np.all(start >= 0)
    assert np.all(start <= box.hi + 10.0 * (box.hi - box.lo))
    try:
        from_centre = solve_small_lp(inner, box.centre)
    except ReducedProblemInfeasible:
        with pytest.raises(ReducedProblemInfeasible):
            solve_small_lp(inner, start)
        return
    from_newton = solve_small_lp(inner, start)
    scale = float(np.abs(inner.scores).sum(axis=1).max())
    assert float(inner.scores[0] @ from_newton[0]) == pytest.approx(float(inner.scores[0] @ from_centre[0]),
                                                                    rel=1e-9, abs=1e-9 * scale)


@pytest.mark.parametrize("seed", range(8))
def test_many_floor_rows_match_the_reference(seed):
    """Floors on 40 to 120 groups (more than 32 rows: the basis inverse is updated after each
    pivot, not computed afresh) and floors of 0 (no row): the optimum of HiGHS."""
    rng = np.random.default_rng(100 + seed)
    n_groups = int(rng.integers(40, 120))
    sizes = rng.integers(1, 12, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    m, r = groups.shape[0], int(rng.integers(1, 4))
    s = rng.lognormal(size=(r + 1, m))
    floors = np.where(rng.random(n_groups) < 0.8, np.minimum(sizes, rng.integers(1, 3, n_groups)), 0)
    k = int(floors.sum()) + int(rng.integers(1, m - int(floors.sum())))
    best = np.array([top_k_sum_sorted(row, k) for row in s[1:]])
    thresholds = best * rng.uniform(0.3, 0.8, r)
    inner = InnerProblem(s, k, thresholds, groups, floors)
    reference = reference_solve(s, k, thresholds, groups, floors)
    if reference.status == "infeasible":
        with pytest.raises(ReducedProblemInfeasible):
            solve_small_lp(inner)
        return
    x, lam, _ = solve_small_lp(inner, None if seed % 2 else np.full(r, 0.5))
    scale = float(np.abs(s).sum(axis=1).max())
    assert np.all(np.bincount(groups, weights=x, minlength=n_groups) >= floors - 1e-9)
    assert np.all(s[1:] @ x >= thresholds - 1e-9 * scale)
    assert float(s[0] @ x) == pytest.approx(reference.objective, rel=1e-9, abs=1e-9 * scale)
    dual = greedy_value(s[0] + lam @ s[1:], k, groups, floors) - float(lam @ thresholds)
    assert dual == pytest.approx(float(s[0] @ x), rel=1e-9, abs=1e-9 * (scale + float(lam @ np.abs(s[1:]).sum(axis=1))))


@pytest.mark.parametrize("seed", range(60))
def test_bounds_met_as_they_are_not_only_up_to_their_round_off(seed):
    """The phases run on the bounds less their round-off (1e-12 |b|); the optimal basis is then
    moved onto the bounds themselves where its values stay within theirs, as they do away from
    knife edges: every bound is met to round-off of the point's sums, not to 1e-12 (without the
    move 20 of these problems stop 1e-12 |b| short)."""
    inner, _ = _problem(seed)
    try:
        x, _, _ = solve_small_lp(inner, None)
    except ReducedProblemInfeasible:
        return
    s, b = inner.scores, inner.thresholds
    assert np.all(s[1:] @ x >= b - 1e-14 * (np.abs(b) + np.abs(s[1:]) @ x))
