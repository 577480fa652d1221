"""Noisy-channel I(X; f(X) + sigma Z) against the Gaussian closed form 1/2 log det(I + Sigma / sigma^2).

Tolerances: the sample-propagation estimator's bias comes from replacing the feature distribution by
N samples; measured at N = 3000 it is below 0.01 nats in 1 and 2 dimensions and +0.06 nats in 5
dimensions at sigma = 1 x the feature scale. Checks allow that plus 4 reported standard errors.
"""

import math

import numpy as np
import pytest
import torch

from estimators.noisy_channel import (
    feature_scale,
    kolchinsky_tracey_bounds,
    noisy_channel_mi,
    noisy_channel_sweep,
)


def gaussian_features(dim, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim))
    covariance = mixing @ mixing.T / dim + 0.2 * np.eye(dim)
    return rng.multivariate_normal(np.zeros(dim), covariance, size=n), covariance


def truth(covariance, sigma):
    return 0.5 * np.linalg.slogdet(np.eye(len(covariance)) + covariance / sigma**2)[1]


@pytest.mark.parametrize(
    "dim, relative, bias", [(1, 0.3, 0.02), (1, 1.0, 0.02), (2, 0.3, 0.02), (2, 1.0, 0.02), (5, 1.0, 0.1)]
)
def test_gaussian_features_match_the_closed_form(dim, relative, bias):
    features, covariance = gaussian_features(dim)
    estimate = noisy_channel_mi(features, relative_sigma=relative)
    sigma = estimate.params["sigma"]
    assert sigma == pytest.approx(relative * float(np.sqrt(features.var(axis=0).mean())))
    assert estimate.params["feature_scale"] == pytest.approx(feature_scale(torch.from_numpy(features)))
    assert abs(estimate.value - truth(covariance, sigma)) <= bias + 4 * estimate.stderr


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("relative", [0.3, 1.0])
def test_kolchinsky_tracey_bounds_bracket_the_truth_and_the_estimate(dim, relative):
    features, covariance = gaussian_features(dim)
    estimate = noisy_channel_mi(features, relative_sigma=relative, uncertainty=False)
    bounds = kolchinsky_tracey_bounds(features, relative_sigma=relative)
    assert bounds.lower <= truth(covariance, estimate.params["sigma"]) <= bounds.upper
    assert bounds.lower <= estimate.value <= bounds.upper
    assert (estimate.params["kt_lower"], estimate.params["kt_upper"]) == (bounds.lower, bounds.upper)


def test_the_value_is_a_property_of_sigma_and_says_so():
    features, _ = gaussian_features(3, n=1000)
    sweep = noisy_channel_sweep(features, relative_sigmas=(0.001, 0.1, 1.0, 100.0), uncertainty=False)
    values = [estimate.value for estimate in sweep]
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(math.log(1000), abs=0.01)  # tiny noise: every sample told apart
    assert abs(values[-1]) < 0.01  # overwhelming noise: nothing gets through
    assert all("property of the noise" in estimate.warnings[0] for estimate in sweep)
    assert any("measures the sample size" in text for text in sweep[0].warnings)
    assert sweep[0].ceiling == pytest.approx(math.log(1000))


def test_relative_sigma_makes_the_estimate_unit_free():
    features, _ = gaussian_features(2, n=500)
    plain = noisy_channel_mi(features, relative_sigma=0.5, uncertainty=False).value
    rescaled = noisy_channel_mi(features * 1000.0, relative_sigma=0.5, uncertainty=False).value
    assert rescaled == pytest.approx(plain, abs=1e-9)


def test_bad_noise_levels_and_features():
    features, _ = gaussian_features(2, n=100)
    with pytest.raises(ValueError, match="exactly one"):
        noisy_channel_mi(features)
    with pytest.raises(ValueError, match="exactly one"):
        noisy_channel_mi(features, sigma=1.0, relative_sigma=1.0)
    with pytest.raises(ValueError, match="positive"):
        noisy_channel_mi(features, sigma=-1.0)
    with pytest.raises(ValueError, match="zero variance"):
        noisy_channel_mi(np.ones((50, 3)), sigma=1.0)
    with pytest.raises(ValueError, match="NaN"):
        noisy_channel_mi(np.full((50, 2), np.nan), sigma=1.0)
    with pytest.raises(ValueError, match="draws"):
        noisy_channel_mi(features, sigma=1.0, draws=0)
