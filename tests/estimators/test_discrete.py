"""Plug-in discrete estimators against exact values of a known joint distribution."""

import math

import numpy as np
import pytest

import estimators


def noisy_channel(n, rng, keep=0.8, levels=4):
    """X ~ U{0..levels-1}; Y = X with probability keep, else uniform. Returns samples and exact I."""
    x = rng.integers(0, levels, size=n)
    y = np.where(rng.random(n) < keep, x, rng.integers(0, levels, size=n))
    p_same = keep + (1 - keep) / levels
    p_other = (1 - keep) / levels
    h_y_given_x = -(p_same * math.log(p_same) + (levels - 1) * p_other * math.log(p_other))
    return x, y, math.log(levels) - h_y_given_x


def test_mutual_information_of_a_noisy_channel():
    x, y, truth = noisy_channel(5000, np.random.default_rng(0))
    estimate = estimators.discrete_mi(x, y)
    # Miller-Madow leaves O(1/N^2) bias; 4 standard errors cover the noise.
    assert abs(estimate.value - truth) <= 4 * estimate.stderr
    assert estimate.ceiling == pytest.approx(math.log(4), abs=0.01)


def test_miller_madow_removes_most_of_the_bias_under_independence():
    rng = np.random.default_rng(1)
    plug_in, corrected = [], []
    for _ in range(20):
        x, y = rng.integers(0, 10, size=400), rng.integers(0, 10, size=400)
        plug_in.append(estimators.discrete_mi(x, y, correction="none", uncertainty=False).value)
        corrected.append(estimators.discrete_mi(x, y, uncertainty=False).value)
    # plug-in bias is about (10 - 1)^2 / (2 * 400) = 0.10 nats; Miller-Madow subtracts that term
    assert np.mean(plug_in) == pytest.approx(81 / 800, abs=0.02)
    assert abs(np.mean(corrected)) < 0.02


def test_entropy_of_a_uniform_variable():
    labels = np.random.default_rng(2).integers(0, 8, size=4000)
    estimate = estimators.discrete_entropy(labels)
    assert estimate.quantity == "entropy" and estimate.ceiling == pytest.approx(math.log(8))
    assert abs(estimate.value - math.log(8)) <= 4 * estimate.stderr + 1e-3


def test_rows_are_joint_labels_and_undersampling_is_flagged():
    rng = np.random.default_rng(3)
    pairs = rng.integers(0, 30, size=(100, 2))
    estimate = estimators.discrete_entropy(pairs, uncertainty=False)
    assert estimate.params["values_seen"] == len({tuple(row) for row in pairs})
    assert any("undersampled" in text for text in estimate.warnings)


def test_bad_input():
    with pytest.raises(ValueError, match="mismatched lengths"):
        estimators.discrete_mi([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="correction"):
        estimators.discrete_mi([1, 2], [1, 2], correction="jackknife")
    with pytest.raises(ValueError, match="NaN"):
        estimators.discrete_entropy([1.0, np.nan])
