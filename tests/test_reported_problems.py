"""Problems users reported against the analytic method, scaled down to test sizes.

Each one once took minutes, raised SolverError on a feasible problem, or gave another answer
on the tensor road; the benchmark lines of bench/several_bounds.py (``--only reported``)
run them at full size.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import copslp
from conftest import Case, assert_optimal


def _solve(case: Case):
    return _solve_with(case, "analytic")


def _solve_with(case: Case, method: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copslp.CopsWarning)
        return case.solve(method)


def sparse_scores(size: int, density: float, seed: int) -> np.ndarray:
    """Three secondary scores and a primary, each 95% exact zeros (an already pruned model)."""
    rng = np.random.default_rng(seed)
    return rng.random((4, size)) * (rng.random((4, size)) < density)


def test_many_exact_zeros_with_three_bounds():
    """n = 3 bounds at gamma 0.99, k = D/2 and 95% zeros: the zeros tie at the k-th level for
    every lambda, so no box decides them. They took over 100 s in the ellipsoid; they are one
    column of the simplex now, and the localisation stops instead of looping on them."""
    case = Case(sparse_scores(10_000, 0.05, 0), 5_000, gamma=0.99, label="zeros")
    result = _solve(case)
    assert_optimal(result, case)
    info = result.info
    assert info["reduced_solver"] == "simplex"
    assert info["distinct_columns"] < info["final_lp_size"]  # the tied zeros collapsed
    assert info["oracle_calls"] <= 40


def test_low_density_with_three_bounds():
    """k = 0.1% of D with three bounds: the boxes widened until every element survived and
    the whole problem went to an LP (D = 1.06e6: over 150 s). Now it stays analytic: here,
    too small a budget to screen from a subsample, localised on every element."""
    rng = np.random.default_rng(1)
    case = Case(rng.random((4, 30_000)), 30, gamma=0.9, label="low density")
    result = _solve(case)
    assert_optimal(result, case)
    assert result.info["reduced_solver"] == "simplex"
    assert result.info["distinct_columns"] <= 2048


@pytest.mark.parametrize("seed", [0, 1])
def test_bound_at_gamma_one_with_floors(seed):
    """A bound at gamma = 1 among several, with floors: solved on the face of that bound
    (it raised SolverError when the boxes widened until everything survived)."""
    rng = np.random.default_rng(seed)
    size = 12_000
    case = Case(rng.lognormal(size=(4, size)), 7_200, gamma=[1.0, 0.5, 0.5],
                groups=np.repeat(np.arange(12), size // 12), floors=300, label="gamma one, floors")
    result = _solve(case)
    assert_optimal(result, case)
    assert result.info["best_face_of"] == 1


def test_bound_at_gamma_one_with_floors_that_the_face_cannot_meet():
    """The top-k of s_1 leaves a group below its floor: no point of the face (the only
    points meeting the bound) meets the floors, an InfeasibleError, not a SolverError."""
    rng = np.random.default_rng(2)
    size = 6_000
    scores = rng.lognormal(size=(3, size))
    scores[1, :1000] *= 1e-3  # group 0 holds the smallest s_1
    with pytest.raises(copslp.InfeasibleError):
        copslp.solve(scores, 3_000, gamma=[1.0, 0.5], groups=np.repeat(np.arange(6), 1000), floors=100)


def test_two_bounds_at_gamma_one_whose_face_leaves_one_point():
    """Found by the long property run: both bounds at gamma = 1, the only point meeting both
    is {2, 3, 7}. On the face of s_1 the bound on s_2 is its best less what the elements
    above the level take (1003.21... - 1003.16...), which rounded above the face's own best
    (s_2's entry 0.0487): the face was 'infeasible' and the solve a SolverError."""
    scores = np.array([[0, 0, 0, 0, 0, 0, 0, 0],
                       [0, 0, 0, 1, 0, 0, 0, 1],
                       [0, 0, 4.86967525e-02, 3.16227766e+00, 0, 0, 0, 1e3]])
    case = Case(scores, 3, gamma=[1.0, 1.0], label="gamma one twice")
    result = _solve(case)
    assert_optimal(result, case)
    assert np.flatnonzero(result.mask).tolist() == [2, 3, 7]


@pytest.mark.parametrize("ones", [range(10, 16), [7, 8, 9, 10, 14, 15]])
def test_a_bound_at_gamma_one_met_within_round_off_off_its_face(ones):
    """Found by the long property run: s_1's k-th largest entry is 1e-4 beside 1e7, and no
    point of its face meets the bound on s_2; a point 6e-13 (relative) off the face meets
    both, as HiGHS finds. The face's infeasibility is left to the exact finish, which finds
    that point (it was a SolverError). With the ones of s_1 spread out, the finish's simplex
    met the bound only up to its round-off in phase 1, and phase 2, on the bound as it is,
    took 6.00000625 of the six ones (a SolverError: x sums to k - 6e-6)."""
    scores = np.array([[0.0] * 19, [0.0] * 16 + [1e7, 1e-4, 0.0], [0.0] * 18 + [1.0]])
    scores[1, list(ones)] = 1.0
    case = Case(scores, 8, gamma=[1.0, 0.0625], label="gamma one, 1e-4 beside 1e7")
    result = _solve(case)
    assert_optimal(result, case)
    assert "off_the_face_of" in result.info


def test_bounds_that_miss_by_more_than_the_certificate_allows_are_infeasible():
    """s_1 = (..., 1, 1e7, 0) at gamma = 1 and s_2 = (..., 0, 0, 1) at 1/64, k = 2: meeting the
    second bound costs the first 1/64 of 1e7 + 1 (1.6e-9 of it). No point meets both; the
    exact finish accepted one 1.6e-9 short (phase 1 of its simplex stops at 1e-9 of the
    scaled rows), which the certificate, at rtol 1e-9, then refused: a SolverError. The
    Farkas ray (1, 1) proves the conflict."""
    scores = np.zeros((3, 19))
    scores[1, 16:18] = [1.0, 1e7]
    scores[2, 18] = 1.0
    with pytest.raises(copslp.InfeasibleError, match="1.56e-09 of the bound") as caught:
        copslp.solve(scores, 2, gamma=[1.0, 0.015625])
    assert caught.value.conflicting_scores == (1, 2)
    assert np.array_equal(caught.value.farkas_multipliers, [1.0, 1.0])


def test_a_bound_whose_row_holds_one_huge_entry_elsewhere():
    """Found by the long property run: s_2 = (..., -1e9, 1), k = 1, gamma [0.25, 0.5]; the
    optimum puts x = 0.5 on the last element (-0.5, as HiGHS finds). The survivors' simplex
    scaled s_2's row by 1e9, so its phase 1 accepted the bound 0.25 short (2.5e-10 of that
    scale), and its ratio test ignored the -1e9 column's basic value (changes of 1e-9, below
    the pivot tolerance), which went below 0: a SolverError."""
    scores = np.zeros((3, 7))
    scores[0, 6], scores[1, 6], scores[2, 5:] = -1.0, 1.0, [-1e9, 1.0]
    case = Case(scores, 1, gamma=[0.25, 0.5], label="one huge entry beside the bound's own")
    result = _solve(case)  # (the suite's reference LP calls this one infeasible: not used)
    assert result.certificate.passed, result.certificate.summary()
    assert result.objective == pytest.approx(-0.5, rel=1e-9)
    assert np.all(result.bound_values >= np.array([0.25, 0.5]) * (1 - 1e-9))


def test_a_real_multiplier_below_the_old_dual_threshold():
    """Found by the long property run with the bound rows scaled by what meets them: s_0 =
    (0, 0, 1, 1e7, 0, 0), s_1 = (0, 0, -1, 0, 0, 1e-4), s_2 = (0, 0, 0, 0, 0, 1), k = 2,
    gamma 0.5 each. lambda_1 = 1/1.0001 is 1e-11 in the simplex's scaled duals, which a
    threshold of 1e-11 made 0 (complementarity 1e-7: a SolverError)."""
    scores = np.array([[0.0, 0.0, 1.0, 1e7, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0, 0.0, 1e-4],
                       [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    result = _solve(Case(scores, 2, gamma=[0.5, 0.5], label="a multiplier of 1e-11 scaled"))
    assert result.certificate.passed, result.certificate.summary()
    assert result.objective == pytest.approx(1e7 + 5e-5 / 1.0001, rel=1e-15)
    assert result.multipliers[0] == pytest.approx(1 / 1.0001, rel=1e-9)


def test_one_bound_at_gamma_one_whose_sum_cancels():
    """Found by the long property run (present at e4cfd27): s_1 = (..., 1e9, -1e9, ..., -1e9,
    31.6), k = D - 1, gamma 1. s_0's best set attains the bound, but its s_1 sum, taken in
    another order than the bound's T_k, is 1e-7 off (terms of 1e9 that sum to 31.6), more
    than 1e-12 of 31.6: the walk went to lambda = inf and the certificate to a NaN gap (a
    SolverError). The bound is met up to 1e-12 of the terms' magnitudes: lambda = 0."""
    scores = np.zeros((2, 13))
    scores[0, 6] = -1.0
    scores[1, [5, 6, 11, 12]] = [1e9, -1e9, -1e9, 31.622776601683793]
    result = _solve(Case(scores, 12, gamma=[1.0], label="a sum of +-1e9 at gamma = 1"))
    assert result.certificate.passed, result.certificate.summary()
    assert result.objective == 0.0 and result.multipliers[0] == 0.0
    assert not result.mask[6]


#: A case of the long property run (``test_analytic_agrees_with_reference_larger``): three score
#: rows of 268 elements, their non-zero entries by position.
_DEGENERATE_PIVOT_CASE = (
    {204: 0.3914009020440407, 221: 1000.0, 223: 1.0, 231: 14.119935934415812, 245: 0.001556516362856728, 252:
     912.0840876760022},
    {8: 1.9024868103025732, 9: 507.3151561533007, 25: 1.0000002744895709, 29: 1.0002302850208247, 34:
     1.0000000000000022, 44: 245.22989840459925, 45: 660.3763000556233, 48: 6.222359256965733, 55: 362.7684724623458,
     63: 1.0000000000230258, 65: 1.0000230261160268, 69: 7.77517459013457, 83: 1.7782794100389228, 85:
     514.942313681324, 100: 100.0, 102: 78.95871561558849, 103: 160.4476268839565, 123: 40.93993482952891, 127:
     2.658347114029868, 129: 4.458794380848255, 152: 1.0000000000000022, 155: 5.252893934660454, 157: 1000.0, 171:
     71.27187022036394, 175: 999.999999999999, 181: 5.547070710500242, 182: 4.217962331913195, 183: 1.0, 185:
     485.89289872844637, 186: 381.81217724547594, 191: 1.0000000000000022, 194: 1.0000002744895709, 196:
     23.455656638938972, 197: 999.999999999999, 205: 3.644702376676644, 210: 0.31622776601683794, 215:
     890.778424662469, 218: 42.63643432452483, 223: 1.0, 226: 13.508411076562252, 238: 321.0370586084571, 245: 1.0,
     249: 1.0, 252: 1.0, 258: 36.67635054173491},
    {34: 100.0, 75: 301.8433736772437, 80: 79.43282347242814, 81: 60.21935644896591, 97: 69.72657646029364, 98:
     73.34333032249623, 114: 100.0, 121: 497.26312819610905, 128: 107.77808695539166, 140: 0.00394003307181954, 149:
     44.33983673189715, 153: 100.0, 173: 22.63405922146753, 177: 708.8340342570467, 179: 0.003980301044937413, 181:
     0.028194726508501994, 183: 215.936092118775, 185: 0.002747743630883565, 186: 0.0016871884675805425, 187: 1.0,
     192: 1.590963058562425, 194: 1.0, 196: 1.0, 198: 1.7782794100389228, 199: 0.39047958296467067, 200: 1.0, 201:
     0.008872648545763676, 203: 2.5150987091276633, 205: 1.0, 207: 3.2996666299112873, 208: 329.18481517828536, 209:
     0.0012244902541862605, 212: 1.0, 213: 2.278328964583686, 214: 1.0, 215: 0.0792891309021533, 217:
     0.15562360508790257, 218: 0.001720710117274645, 220: 1.0, 222: 254.82830433576171, 223: 0.01, 224: 1.0, 226:
     1.2085308754437405, 229: 6.242493223575081, 233: 1.0, 234: 1.1355274509892148, 235: 93.49927490860239, 239:
     0.08051842506414875, 240: 0.008103129758553334, 242: 0.34400259685067525, 246: 1.0000000000000022, 249: 100.0,
     251: 7.728469488816931, 253: 0.11009245310305568, 257: 0.0056224580741052275, 260: 326.24337743681883, 262:
     1.000002302587744, 263: 874.8197361893672, 265: 5.067100760876797, 267: 187.70586968070742},
)


def _from_entries(rows, size: int, budget: int, gamma: list, label: str) -> Case:
    """A case of ``size`` elements from the non-zero entries of each score row (position: value)."""
    scores = np.zeros((len(rows), size))
    for row, entries in enumerate(rows):
        scores[row, list(entries)] = list(entries.values())
    return Case(scores, budget, gamma=gamma, label=label)


def _long_run_case(rows, label: str) -> Case:
    """The long run's cases of 268 elements, k = 40, gamma [1, 0.0683]."""
    return _from_entries(rows, 268, 40, [1.0, 0.06831070068352148], label)


def test_a_degenerate_pivot_on_a_basic_value_beyond_its_bound_by_round_off():
    """k = 40, gamma [1, 0.0683]: off the face of the first bound, the survivors' simplex made a
    degenerate pivot of 2.7e-7 on a basic value 2.3e-11 below 0. Put on its bound as it left,
    it carried that round-off into the entering value, amplified to 8e-5 above 1 (a
    SolverError, present at e4cfd27). HiGHS gives 913.0856441923651 at its 1e-7 tolerance."""
    result = _solve(_long_run_case(_DEGENERATE_PIVOT_CASE, "a degenerate pivot"))
    assert result.certificate.passed, result.certificate.summary()
    assert result.objective == pytest.approx(913.0856441923651, rel=1e-8)


def test_a_bound_flip_over_a_divided_column_range():
    """Found by the long property run (present at e4cfd27): s_2 = (0, 1e-9, 0, -1), k = 1,
    gamma 0.5 each; optimum -0.5. The last element's column, divided by its entry of 1e9
    beside the 1e-9 that meets the bound, has a range of 1e9; flipped over it, it moved an
    artificial basic value 1e-9 per unit (left out of the ratio test as too small a pivot)
    to -0.5, and phase 1 took the artificials' sum, 0, for feasibility (a SolverError)."""
    scores = np.array([[0.0, 0.0, -1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 1e-9, 0.0, -1.0]])
    result = _solve(Case(scores, 1, gamma=[0.5, 0.5], label="a flip over a divided column"))
    assert result.certificate.passed, result.certificate.summary()
    assert result.objective == pytest.approx(-0.5, rel=1e-12)


#: Another case of the same run: the degenerate pivot where the leaving value's own round-off
#: (5e-13), not its distance from its bound, is what the pivot amplifies.
_AMPLIFIED_ROUND_OFF_CASE = (
    {204: 1.0, 223: 1.0, 245: 1.0, 252: 1.0, 261: 0.6662739795175404, 266: 1.0},
    {0: 0.01, 5: 0.016072579487664097, 8: 1.9024868103025732, 21: 1.0000000000000002, 25: 1.0000002744895709, 29:
     1.0002302850208247, 34: 1.0000000000000022, 39: 6.046862331790298, 40: 0.05378923217337453, 44:
     245.22989840459925, 45: 660.3763000556233, 46: 0.22689305673856291, 48: 6.222359256965733, 52:
     0.07517789634589432, 63: 1.0000000000230258, 65: 1.0000230261160268, 69: 7.77517459013457, 77:
     0.836079029607364, 83: 1.7782794100389228, 85: 514.942313681324, 100: 100.0, 102: 78.95871561558849, 103:
     160.4476268839565, 123: 40.93993482952891, 127: 2.658347114029868, 129: 4.458794380848255, 152:
     1.0000000000000022, 155: 5.252893934660454, 157: 1000.0, 168: 1.0, 171: 71.27187022036394, 175:
     999.999999999999, 181: 5.547070710500242, 182: 4.217962331913195, 183: 1.0, 185: 485.89289872844637, 186:
     381.81217724547594, 191: 1.0000000000000022, 194: 1.0000002744895709, 196: 23.455656638938972, 197:
     999.999999999999, 204: 1.0, 205: 3.644702376676644, 215: 890.778424662469, 218: 42.63643432452483, 223: 1.0,
     226: 13.508411076562252, 238: 321.0370586084571, 245: 1.0, 249: 1.0, 252: 1.0, 258: 36.67635054173491},
    {34: 100.0, 75: 301.8433736772437, 80: 79.43282347242814, 81: 60.21935644896591, 97: 69.72657646029364, 98:
     73.34333032249623, 114: 100.0, 121: 497.26312819610905, 128: 107.77808695539166, 149: 44.33983673189715, 153:
     100.0, 162: 1.0, 173: 22.63405922146753, 177: 708.8340342570467, 183: 215.936092118775, 194: 1.0, 208:
     329.18481517828536, 222: 254.82830433576171, 235: 93.49927490860239, 249: 100.0, 260: 326.24337743681883, 263:
     874.8197361893672, 267: 187.70586968070742},
)


#: A third case of the same run: the optimal basis on the bound as it is pairs two elements whose
#: s_1 differ by 2.7e-7 of their value (a basis whose condition is 9e9).
_ILL_CONDITIONED_CASE = (
    {204: 1.0, 223: 1.0, 231: 14.119935934415812, 245: 0.001556516362856728, 252: 1.0, 266: 1.0},
    {key: value for key, value in _AMPLIFIED_ROUND_OFF_CASE[1].items()
     if key not in (5, 40, 46, 52, 77, 168)},
    _AMPLIFIED_ROUND_OFF_CASE[2],
)


@pytest.mark.parametrize("rows, objective", [(_AMPLIFIED_ROUND_OFF_CASE, 4.0),
                                             (_ILL_CONDITIONED_CASE, 3.001556516362857)],
                         ids=["round-off amplified", "ill-conditioned basis"])
def test_a_bound_at_gamma_one_met_off_its_face_by_a_small_pivot(rows, objective):
    """k = 40 of 268, gamma [1, 0.068] (both present at e4cfd27, the second at aadde89): off
    the first bound's face, which cannot meet the second, the bound is met only by trading
    elements whose s_1 differ by 2.7e-7. On the bound as it is, a basic surplus sat beyond its
    bound by round-off (5e-13), a pivot of 2.7e-7 amplified it to a basic value 2e-6 beyond
    its own, and the certificate refused the point (a SolverError). The simplex now runs on
    the bounds less the round-off of their sums (room instead of a value beyond its bound);
    the objective may exceed HiGHS's by lambda_1 times that room (here lambda_1 = 14.1 and
    the room 1e-12 of b_1 = 7127: 1e-7)."""
    result = _solve(_long_run_case(rows, "off the face, a small pivot"))
    assert result.certificate.passed, result.certificate.summary()
    room = 1e-12 * float(result.thresholds[0]) * float(result.multipliers[0])
    assert abs(result.objective - objective) <= room + 1e-9 * objective


def test_two_bounds_at_gamma_one_whose_faces_differ_by_one_element():
    """Found by the long property run (present at aadde89): k = 40 of 268, gamma 1 on both
    bounds. s_1's face keeps its one non-zero element, which s_2's face (41 non-zero
    entries, that element the least) drops: meeting s_1 costs s_2 2.3e-6 of its 6294, no
    round-off. The survivors' simplex ended phase 1 with that much left in an artificial
    variable (within its tolerance of 1e-9 of the budget) and returned the point; HiGHS and
    the MILP say infeasible. Phase 1 now accepts only its own round-off, and the Farkas
    proof decides."""
    scores = np.zeros((3, 268))
    scores[1, 215] = 890.778424662469
    scores[2, 186:216] = [10.0, 100.0, 31.622776601683793, 15.882321488716828, 60.21935644896591,
                          11.167285598739642, 15.079038372514647, 79.43282347242814, 108.4123887765789,
                          132.9619468744951, 723.5157664324562, 110.59950799898928, 119.03230459773485,
                          607.7838250569984, 301.8433736772437, 733.7832023485652, 999.999999999999,
                          3.1622776601683795, 5.331276625229393, 3.5485929450432687, 7.510874247957554,
                          7.943282347242816, 1.847738991359514, 2.584289377796206, 2.036373641610267,
                          1.3594751861550511, 1.1334756892137752, 1.0002302850208247, 1.000002302587744, 1.0]
    scores[2, 257:268] = [78.49497646771142, 16.328915518591444, 294.6401481099692, 139.36796962041052,
                          347.88534090077303, 202.0666923637016, 999.999999999999, 5.187122934160106,
                          7.943282347242816, 1.208307800720702, 1.000002302587744]
    case = Case(scores, 40, gamma=[1.0, 1.0], label="two faces one element apart")
    assert case.reference.status == "infeasible"
    with pytest.raises(copslp.InfeasibleError, match=r"scores\[1\], scores\[2\]"):
        _solve(case)


#: Three rows of 116 elements (the long property run), their non-zero entries by position: s_2
#: holds exact ones and entries within 7e-16 of 1 beside them.
_RAY_BEYOND_ROUND_OFF_CASE = (
    {68: 0.18947037281795978, 70: 1.0, 71: 7.943282347242816, 72: 587.7205938491036, 74: 0.059860726800533795, 75:
    579.2047470316139, 79: 271.0638537449447, 80: 0.12104816387979069, 82: 12.769902725752596, 83:
    0.0010069182105780766, 85: 0.001375310312634468, 87: 117.39579652281417, 89: 0.008766389314734158, 95: 0.001,
    96: 0.1, 97: 0.15995922437018203, 99: 28.805876997626793, 101: 1.0, 103: 0.022886772780591577, 105:
    1.0002302850208247, 107: 1.0, 109: 0.0017567693724990978, 110: 1.0859946239297271, 111: 0.00307505046224146,
    113: 32.68233108297743, 114: 1.0},
    {1: 1.0, 2: 18.819173498152264, 4: 2.154434690031884, 6: 0.5377037176095937, 8: 1.0, 10: 3.073903624415589, 11:
    0.025136662670530094, 12: 1.0, 13: 94.00673454200947, 14: 1.0000002302585358, 16: 0.01447614084246251, 17: 10.0,
    23: 3.1622776601683795, 24: 33.57894507996002, 25: 1.0, 26: 1.0, 27: 0.7287635469105291, 28: 0.2146204228977452,
    30: 0.2026850268536401, 31: 13.815562793613363, 32: 1.0, 33: 6.017577318144543, 34: 1.0, 36: 9.493162517987514,
    37: 0.05220606099298121, 39: 405.5575301867432, 41: 1.0, 43: 0.0012208831933026836, 45: 0.001000000000000001,
    47: 130.75001835462106, 48: 1.0, 49: 0.13492900215543882, 50: 0.006672710477890073, 52: 664.418935815127, 56:
    1.0, 57: 1.0000000002302585, 58: 1.0, 60: 0.012851559762921788, 67: 0.030295762735797968, 68:
    0.9999998627552429, 69: 0.057370893808846225, 71: 1.0, 73: 1.000002302587744, 75: 20.77585469075085, 76:
    0.010671762950514526, 83: 1.0, 85: 1.0, 87: 0.042550617772732856, 89: 275.8424650025263, 93: 0.7343583571968658,
    96: 3.992307602421235, 97: 1.0000000000000022, 100: 1000.0, 102: 0.010980365379668742, 103: 1.0, 105:
    19.057210459351793, 107: 0.001000000000000001, 113: 0.0037983438510663984, 114: 0.0025477217217936537},
    {1: 1.0, 2: 0.3540348350872139, 5: 1.000000002302585, 9: 1.0, 10: 1.0, 12: 2.090020261310289, 13:
    1.0000000000000022, 16: 471.5111338250135, 18: 1.000002302587744, 19: 0.001, 20: 1.0, 23: 9.99976974414163, 26:
    0.012736016836495665, 27: 0.0022919401261290344, 28: 1.0, 29: 1.0, 32: 0.0737177793836266, 34:
    1.7953240903990961, 35: 1.0, 36: 1.0, 37: 0.006493055374645327, 39: 1.0, 41: 1.0, 46: 144.82894818331928, 47:
    0.9999903194193195, 48: 1.0, 51: 1.0, 52: 0.0765221914476729, 53: 41.92461794139062, 55: 0.9999999999999993, 56:
    0.01003459242551178, 57: 363.66545220111306, 65: 0.5688746756374412, 66: 312.408520190678, 67: 1.0, 68: 1.0, 71:
    29.1667018018962, 72: 0.0011693222547484838, 73: 1.0000000000230258, 74: 0.46158465615161615, 76:
    0.9999999999999994, 78: 12.867645522684885, 80: 12.589254117941675, 81: 2.1101893821955904, 82:
    0.5638183579375363, 83: 1.0000000000000022, 86: 206.90829781698727, 87: 7.008911275724881, 88:
    0.007972145579311108, 89: 1.0, 90: 0.0030090143173315915, 91: 999.999999999999, 93: 1.0, 95: 900.1850731515441,
    97: 45.75412359295722, 101: 1.0, 102: 0.0027954281556619933, 103: 0.0015598056158161997, 108: 1.0, 109: 1000.0,
    110: 0.014655736802042253, 112: 0.07390217771190406, 113: 0.004349449503822272, 114: 1.0},
)


def _wide_case() -> Case:
    """13 elements, k = 6, gamma 1 on both bounds, s_2's entries from 3e-10 to 1.3e9, signed."""
    scores = np.zeros((3, 13))
    scores[1, [4, 7, 11, 12]] = [1.0, -1.0, 1e-3, 1e-8]
    scores[2, [3, 5, 6, 7, 10, 11, 12]] = [865964323.3600653, 1.0, 562341325.1903491, 1263462917.6544685, 1.0,
                                            3.1622776601683795e-10, -31.622776601683793]
    return Case(scores, 6, gamma=[1.0, 1.0], label="wide ranges at gamma = 1")


def _near_ties_case() -> Case:
    return _from_entries(_RAY_BEYOND_ROUND_OFF_CASE, 116, 25, [0.4011489378002281, 1.0], "near ties at gamma = 1")


@pytest.mark.parametrize("make", [_wide_case, _near_ties_case], ids=["wide ranges", "near ties"])
def test_a_farkas_ray_whose_value_is_beyond_round_off(make):
    """Found by the long property run (present at aadde89): a bound at gamma = 1 beside entries
    within 7e-16 of its level (or spanning 1e9) gives the Farkas ray a multiplier of 3.8e15 (3e9).
    Its value, the top-k sum of s_1 + lambda s_2 less lambda b_2, cancels 1.7e19 to 2048 (its
    round-off), above b_1 = 1092 though the best s_1 under s_2's bound is 794: the proof found
    no conflict, and the survivors' simplex, which did, ended in a SolverError. HiGHS says
    infeasible. Where the ray's round-off exceeds its margin, the best value decides."""
    case = make()
    assert case.reference.status == "infeasible"
    with pytest.raises(copslp.InfeasibleError, match=r"scores\[1\], scores\[2\]"):
        _solve(case)


@pytest.mark.parametrize("method", ["analytic", "two_score"])
@pytest.mark.parametrize("scores, objective", [
    ([[0.0, 0.0, 0.0, 0.0, 1.0, -1.0], [0.0, 0.0, 1.0, 1e-10, -1.0, -1.0]], 1.0),
    ([[0.0, 0.0, 0.0, 0.0, 1.0, 10.0], [0.0, 0.0, 1.0, 2.6179946215854e-12, -1.0, -1.0]], 10.0),
], ids=["1e-10", "2.6e-12"])
def test_one_bound_at_gamma_one_whose_best_value_is_round_off(scores, objective, method):
    """Found by the long property run (present at e4cfd27): k = 5 of 6, gamma 1, and T_5(s_1)
    is 1 + 1e-10 - 1, itself round-off. two_score's bisection never reached the bound (a
    SolverError) or mixed two sets of equal value (a ZeroDivisionError); analytic raised a
    SolverError on the first and a wrong InfeasibleError on the second. Both methods now take
    a sum as meeting the bound up to 1e-12 of its terms' magnitudes."""
    result = _solve_with(Case(np.array(scores), 5, gamma=[1.0], label="a best value of round-off"), method)
    assert result.certificate.passed, result.certificate.summary()
    assert result.objective == objective


torch = pytest.importorskip("torch")


def test_tensor_road_agrees_on_two_bounds():
    """n = 4, D = 3,000, k = 1,800, two bounds at 0.8 (one off): it got no answer within 60 s
    on the tensor road."""
    from torch_adapter import solve_tensors

    rng = np.random.default_rng(0)
    scores = rng.random((4, 3000))
    expected = copslp.solve(scores, 1800, gamma=[0.8, 0.8, 0.0])
    result = solve_tensors(torch.from_numpy(scores), 1800, gamma=[0.8, 0.8, 0.0])
    assert result.certificate.passed
    assert abs(result.objective - expected.objective) <= 1e-12 * abs(expected.objective)


def test_tensor_road_solves_gamma_one_with_floors():
    """It raised SolverError on the tensor road: its boxes widen until every element survives,
    and the whole problem, gathered on rank 0, is now solved by the in-memory road (the face)."""
    from torch_adapter import solve_tensors

    rng = np.random.default_rng(0)
    size = 12_000
    scores = rng.lognormal(size=(4, size))
    groups = np.repeat(np.arange(12), size // 12)
    expected = copslp.solve(scores, 7_200, gamma=[1.0, 0.5, 0.5], groups=groups, floors=300)
    result = solve_tensors(torch.from_numpy(scores), 7_200, gamma=[1.0, 0.5, 0.5], groups=torch.from_numpy(groups),
                           floors=300)
    assert result.certificate.passed and result.info["best_face_of"] == 1
    assert abs(result.objective - expected.objective) <= 1e-12 * abs(expected.objective)


def test_low_density_at_full_size_stays_screened():
    """D = 1.06e6, three bounds, k = 0.1%: the Newton phase narrowed its stage around its own
    point, which did not hold lambda*; the infeasible problem left there was taken as a wrong
    box, and the boxes widened until every element survived (5 s; over 150 s before the
    simplex). The ellipsoid now goes on from the whole box instead."""
    rng = np.random.default_rng(0)
    for size in (10_000, 39_555):  # the draws of bench/several_bounds.py before this problem
        rng.random((4, size)), rng.random((4, size))
    rng.random((4, 300_000))
    scores = rng.random((4, 1_060_000))
    result = copslp.solve(scores, 1_060, gamma=0.9)
    assert result.certificate.passed
    assert result.info["rounds"] == 1 and result.info["survivors"] < 1_060_000


def test_milp_does_not_take_costs_within_highs_dual_tolerance_for_equal():
    """Found by the long property run (present at aadde89): s_0 = (0, 1, 1000, 0.99997697), k = 2.
    Scaled by 1000, the costs of elements 1 and 3 differ by 2.3e-8, below HiGHS's default dual
    feasibility tolerance of 1e-7: the MILP returned elements 2 and 3 (1000.99998) with a
    reported gap of 0 against its bound of 1001. Its dual tolerance is now 1e-9 like the
    others, and the certificate measures the gap from the bound as well."""
    scores = np.array([[0.0, 1.0, 1000.0, 0.9999769744142]])
    result = _solve_with(Case(scores, 2, label="costs 2.3e-8 apart after scaling"), "milp")
    assert result.objective == 1001.0
    assert result.mask.tolist() == [False, True, True, False]


_SIGNED_ZERO_OBJECTIVE = np.array([
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, -2, -1, 3, 1, 1, -2],
    [1, 1, 1, -1, 2, 2, -2, -2, -2, -2, -3, -3, -3, -3, -3, 1, 2, 2, -1, -1, -1],
    [0] * 21], dtype=np.float64)


@pytest.mark.parametrize("case", [
    Case(np.array([[0.0, -1.0, -2.0, -2.0, 3.0]]), 4, label="objective 0, bound 6.7e-16"),
    Case(_SIGNED_ZERO_OBJECTIVE, 12, gamma=[1.0, 0.0], label="objective 0, HiGHS's gap 1"),
], ids=lambda case: case.label)
def test_milp_gap_of_round_off_beside_an_objective_of_zero(case):
    """The best mask's objective is 0 and HiGHS's bound round-off (6.7e-16; 3.3e-16 beside an
    objective of 1.7e-16, which HiGHS itself reports as a gap of 1: a SolverError at aadde89).
    The gap measured from the bound is round-off against k times the largest |s_0| (the first
    case was a SolverError while the measure took HiGHS's word as well)."""
    result = _solve_with(case, "milp")
    assert result.certificate.passed and result.objective == 0.0


def test_two_bounds_at_gamma_one_beside_entries_below_round_off():
    """Found by the long property run: k = 9 of 20, gamma 1 on both bounds. s_1 = 1e8, 1e-5 and 1
    on elements 2, 3, 18; s_2 = -1, 1e11 and 1 on 3, 17, 18; s_0 = -1 on 18. Element 3 adds
    1e-13 of s_1's best value (below its round-off) and costs s_2 1e-11 of its own, so the
    faces meet within round-off at elements 2, 17 and 18 (objective -1 up to s_1's round-off).
    Phase 1 of the survivors' simplex left the artificial of s_2's row 1e-12 below 0; set to 0
    for phase 2, it moved x_18 (1e-11 in that scaled row) by 0.1, and the basic x_2 beyond its
    bound: the point was 1.0e-9 short of s_1's bound, which the certificate refused at rtol
    1e-9 (a SolverError). HiGHS returns a point 1e-8 short at its 1e-7."""
    scores = np.zeros((3, 20))
    scores[0, 18] = -1.0
    scores[1, [2, 3, 18]] = [1e8, 1e-5, 1.0]
    scores[2, [3, 17, 18]] = [-1.0, 1e11, 1.0]
    result = _solve(Case(scores, 9, gamma=[1.0, 1.0], label="entries below round-off at gamma = 1"))
    assert result.certificate.passed and result.objective == pytest.approx(-1.0, abs=1e-4)


def test_two_bounds_at_gamma_one_where_round_off_kept_in_phase_one_would_break_a_bound():
    """Found by the long property run the first fix of the case above met: k = 4 of 20, gamma 1
    on both bounds; s_1 = 1e8, 1e-5 and 1 on elements 13, 14, 18; s_2 = 1, 1e9 and 1 on 16, 17,
    18; s_0 = -1 on 18. Phase 1 leaves s_2's artificial 9.1e-13 below 0; kept there through
    phase 2, a later pivot of 1e-9 took the basic x_16 1.3e-7 beyond 1 (the budget 3.2e-8
    short, a SolverError). Phase 2 now runs with the artificials at 0 first and keeps them only
    where that leaves a basic value beyond its bounds (as in the case above)."""
    scores = np.zeros((3, 20))
    scores[0, 18] = -1.0
    scores[1, [13, 14, 18]] = [1e8, 1e-5, 1.0]
    scores[2, [16, 17, 18]] = [1.0, 1e9, 1.0]
    result = _solve(Case(scores, 4, gamma=[1.0, 1.0], label="round-off kept in phase 1"))
    assert result.certificate.passed and result.objective == pytest.approx(-1.0, abs=1e-4)


def test_two_bounds_at_gamma_one_whose_phase_one_ends_beyond_a_bound():
    """Found by the long property run: k = 12 of 20, gamma 1 on both bounds; s_1 = 1.78e7, 1e-5
    and 1 on elements 2, 3, 18; s_2 = -1, 1, 1e11 and 1 on 3, 16, 17, 18; s_0 = -1 on 18. The
    faces of the two bounds disagree on element 3 (s_1's keeps it, s_2's drops it), so no point
    lies on both; dropping it leaves s_1's bound 1e-5 short of 1.8e7, within its round-off
    (objective -1; the MILP finds it). The simplex on every element, which took over, ended
    with the basic x_2 at 1 + 5.6e-9 (x_18 weighs 5.6e-8 and 1e-11 in the scaled rows): a
    SolverError. The face is now widened by the elements within round-off of its level before
    the simplex is asked. HiGHS calls the problem infeasible at its 1e-7."""
    scores = np.zeros((3, 20))
    scores[0, 18] = -1.0
    scores[1, [2, 3, 18]] = [17782794.100389227, 1e-05, 1.0]
    scores[2, [3, 16, 17, 18]] = [-1.0, 1.0, 1e11, 1.0]
    result = _solve(Case(scores, 12, gamma=[1.0, 1.0], label="phase 1 ends beyond a bound"))
    assert result.certificate.passed and result.objective == pytest.approx(-1.0, abs=1e-4)
    assert result.info["best_face_of"] == 1 and result.certificate.primal_violation < 1e-12



@pytest.mark.parametrize("gap", [9e-9, 2.9e-9])
def test_the_widened_face_leaves_out_what_lambda_would_move_beyond_round_off(gap):
    """Two bounds at gamma = 1, D = 12,000, k = 11,000: s_1 is 1 on 10,000 elements, and
    -``gap`` on one (where s_2 is 1 and s_0 is -1), which the face of s_1 drops and s_2's bound
    needs. A window of 1e-12 |b_1| = 1e-8 around the level would count it as tied; lambda_1
    (about 100) then moves its v by 1e-6, which the certificate reads as a complementarity
    gap of 4.5e-9 (a SolverError, found by a review). The window is 1e-12 min(|b_i|,
    max |s_i|) = 1e-12 here: the element stays off the face, and the exact finish decides."""
    rng = np.random.default_rng(0)
    scores = np.zeros((3, 12_000))
    scores[0] = rng.uniform(0.0, 0.01, 12_000)
    scores[1, :10_000] = 1.0
    scores[:, 10_000] = [-1.0, -gap, 1.0]
    scores[:2, 10_001] = [100.0, -1.0]
    result = _solve(Case(scores, 11_000, gamma=[1.0, 1.0], label="widened face"))
    assert result.certificate.passed and result.info["off_the_face_of"] == 1

def test_one_bound_at_gamma_one_beside_an_entry_of_minus_1e12():
    """Found by the long property run: k = 13 of 19, gamma 1; s_1 = -1e12 on element 2 (where
    s_0 = 1), 1 on 12, -1 on 13..16, -1e-5 on 17, 0 elsewhere; s_0 = -1 on 18. The walk
    updated <s_1, x> of the set that swaps element 2 for 17 as -999999999999 + (1e12 - 1e-5):
    the -1e-5 is below the ulp of 1e12, so the set, 1e-5 short, counted as meeting the bound,
    and the walk stopped at lambda = 1e-12 with element 17 kept (a SolverError: primal 1e-5;
    HiGHS returns the same point). Such an update is summed anew now: lambda = 1e5, element
    18 kept, objective -1."""
    scores = np.zeros((2, 19))
    scores[0, [2, 18]] = [1.0, -1.0]
    scores[1, [2, 12, 13, 14, 15, 16, 17]] = [-1e12, 1.0, -1.0, -1.0, -1.0, -1.0, -1e-5]
    result = _solve(Case(scores, 13, gamma=[1.0], label="-1e12 beside -1e-5"))
    assert result.certificate.passed and result.objective == pytest.approx(-1.0, abs=1e-12)
    assert result.mask[18] and not result.mask[17]
    assert result.multipliers[0] == pytest.approx(1e5, rel=1e-9)



def test_one_bound_whose_last_swap_is_lost_beside_an_entry_of_minus_1e12():
    """Found by a review of the fix above: k = 3 of 7, gamma 1; s_1 = -1e12 and -1e-5 on
    elements 0 and 1 (s_0 = 2^-40 times them), 1 on element 2, 0 on 3 and 4. The walk ends
    between {0, 1, 2} and {2, 3, 4}; the swaps' running sums put 1e12 + 1e-5 at 1e12, so the
    mix stopped after the first pair with element 1 kept, 1e-5 short of the bound (a
    SolverError, primal 1e-5). Each pair is now checked on the point: objective 10."""
    tiny = 2.0 ** -40
    scores = np.array([[tiny * 1e12, tiny * 1e-5, 10.0, 0.0, 0.0, -10.0, -10.0],
                       [-1e12, -1e-5, 1.0, 0.0, 0.0, 0.0, 0.0]])
    result = _solve(Case(scores, 3, gamma=[1.0], label="-1e12 in the last swap"))
    assert result.certificate.passed and result.objective == pytest.approx(10.0, abs=1e-12)
    assert result.mask.tolist() == [False, False, True, True, True, False, False]
