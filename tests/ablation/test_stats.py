import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from infomug.ablation.stats import EXACT_UP_TO, Summary, spearman, t_interval

# Two-sided 95% Student-t quantiles t_{0.975, df} from a printed table (not from scipy).
T_975 = {1: 12.706204736174707, 2: 4.302652729911275, 4: 2.7764451051977987}


def test_t_interval_matches_the_hand_computation():
    # [1, 2, 3]: mean 2, sample std 1, so half-width = t_{0.975,2} * 1 / sqrt(3) = 2.484.
    summary = t_interval([1.0, 2.0, 3.0])
    assert summary.mean == 2.0
    assert summary.half_width == pytest.approx(T_975[2] / math.sqrt(3), rel=1e-9)
    assert round(summary.half_width, 3) == 2.484
    assert summary.n == 3
    assert summary.values == (1.0, 2.0, 3.0)
    assert summary.interval == pytest.approx((2.0 - 2.48414, 2.0 + 2.48414), abs=1e-5)


@pytest.mark.parametrize(
    "values",
    [[0.5, 0.7], [10.0, 12.0, 11.0, 15.0, 9.0]],
)
def test_t_interval_at_other_sizes(values):
    n = len(values)
    std = float(np.std(values, ddof=1))
    summary = t_interval(values)
    assert summary.mean == pytest.approx(sum(values) / n, rel=1e-12)
    assert summary.half_width == pytest.approx(T_975[n - 1] * std / math.sqrt(n), rel=1e-9)


def test_t_interval_at_other_confidence():
    # 90%: t_{0.95, 2} = 2.919986 (table).
    assert t_interval([1.0, 2.0, 3.0], confidence=0.90).half_width == pytest.approx(
        2.919985580355516 / math.sqrt(3), rel=1e-9
    )


def test_one_seed_has_no_interval_rather_than_a_zero_one():
    summary = t_interval([0.42])
    assert summary.mean == 0.42
    assert math.isnan(summary.half_width)
    assert summary.n == 1
    assert all(math.isnan(end) for end in summary.interval)


def test_identical_seeds_have_a_zero_interval():
    # Zero spread over several seeds is a measured 0, unlike one seed.
    assert t_interval([0.3, 0.3, 0.3]).half_width == 0.0


def test_an_infinite_value_gives_an_infinite_mean_and_no_interval():
    summary = t_interval([1.0, math.inf, 2.0])
    assert summary.mean == math.inf
    assert math.isnan(summary.half_width)


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]]])
def test_t_interval_rejects_no_values(bad):
    with pytest.raises(ValueError, match="non-empty"):
        t_interval(bad)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95])
def test_t_interval_rejects_a_confidence_outside_0_1(confidence):
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=confidence)


def test_summary_round_trips_through_a_dict_with_nan():
    for summary in (t_interval([1.0, 2.5, 4.0]), t_interval([3.0])):
        again = Summary.from_dict(summary.to_dict())
        assert again.mean == summary.mean and again.n == summary.n and again.values == summary.values
        assert again.half_width == summary.half_width or math.isnan(again.half_width)


def test_spearman_of_a_monotone_set_is_one():
    x = [0.1, 0.4, 0.5, 2.0, 9.0, 10.0]
    assert spearman(x, [v**3 + 1 for v in x]).rho == pytest.approx(1.0)
    assert spearman(x, [-math.exp(v) for v in x]).rho == pytest.approx(-1.0)
    assert spearman(x, x).n == 6


def test_spearman_exact_p_values_by_hand_count():
    # n = 3, a perfect order: 2 of the 3! orderings reach |rho| = 1, so p = 1/3 (scipy's t approximation
    # says 0).
    assert spearman([1, 2, 3], [4, 5, 6]).p_value == pytest.approx(1 / 3)
    # n = 5, y = [2, 1, 4, 3, 5]: sum d^2 = 4, rho = 1 - 6 * 4 / 120 = 0.8. Orderings with sum d^2 <= 4:
    # the identity, 4 adjacent swaps, 3 pairs of disjoint adjacent swaps = 8 of 120; by symmetry as many
    # reach rho <= -0.8, so the two-sided p is 16 / 120.
    result = spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert result.rho == pytest.approx(0.8)
    assert result.p_value == pytest.approx(16 / 120)


def test_spearman_beyond_the_exact_range_uses_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=EXACT_UP_TO + 5)
    y = x + rng.normal(size=x.size)
    result = spearman(x, y)
    reference = spearmanr(x, y)
    assert result.rho == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)


def test_spearman_p_value_of_a_perfect_order_beyond_the_exact_range():
    # scipy's t approximation gives 0; a permutation test cannot go below 2 / n! (the order and its reverse).
    n = EXACT_UP_TO + 2
    result = spearman(range(n), range(n))
    assert result.rho == pytest.approx(1.0)
    assert result.p_value == pytest.approx(2 / math.factorial(n))


def test_spearman_is_undefined_for_too_few_or_constant_points():
    assert math.isnan(spearman([1.0, 2.0], [1.0, 2.0]).rho)
    constant = spearman([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0])
    assert math.isnan(constant.rho) and math.isnan(constant.p_value) and constant.n == 4


def test_spearman_leaves_out_non_finite_pairs():
    result = spearman([1.0, 2.0, math.nan, 3.0, 4.0], [1.0, 2.0, 3.0, math.inf, 5.0])
    assert result.n == 3
    assert result.rho == pytest.approx(1.0)


def test_spearman_rejects_unpaired_lists():
    with pytest.raises(ValueError, match="same length"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])
