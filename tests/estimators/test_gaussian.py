"""Gaussian (CCA) and Gaussian-copula estimates, exact on Gaussian data up to sampling error."""

import numpy as np
import pytest

import estimators
from estimators.gaussian import log_det_bias
from estimators.samplers import GaussianSampler, TransformedSampler, half_cube


@pytest.mark.parametrize("sampler", [GaussianSampler.sparse(1, 1, 0.6), GaussianSampler.dense(5, 3, 0.3)])
def test_exact_on_gaussian_data(sampler):
    estimate = estimators.gaussian_mi(*sampler.sample(3000, rng=0))
    # bias-corrected: only sampling noise is left, so 4 standard errors
    assert abs(estimate.value - sampler.mutual_information()) <= 4 * estimate.stderr


def test_bias_correction_centres_independent_high_dimensional_data():
    rng = np.random.default_rng(1)
    plain, corrected = [], []
    for _ in range(10):
        x, y = rng.normal(size=(300, 10)), rng.normal(size=(300, 10))
        plain.append(estimators.gaussian_mi(x, y, bias_correction=False, uncertainty=False).value)
        corrected.append(estimators.gaussian_mi(x, y, uncertainty=False).value)
    # plug-in bias is about dx * dy / (2N) = 0.17 nats; the Wishart correction removes it
    assert np.mean(plain) > 0.12
    assert abs(np.mean(corrected)) < 0.02


def test_log_det_bias_matches_simulation():
    rng = np.random.default_rng(2)
    draws = [np.linalg.slogdet(np.cov(rng.normal(size=(3, 20))))[1] for _ in range(4000)]
    assert np.mean(draws) == pytest.approx(log_det_bias(20, 3), abs=0.03)


def test_copula_sees_through_monotone_transforms():
    def lognormal(t):
        return np.exp(1.5 * t)

    sampler = TransformedSampler(GaussianSampler.sparse(2, 2, 0.6), half_cube, lognormal)
    x, y = sampler.sample(3000, rng=3)
    copula = estimators.gaussian_copula_mi(x, y)
    assert abs(copula.value - sampler.mutual_information()) <= 0.01 + 4 * copula.stderr
    # the Gaussian estimate on the bent data is far off: this is what the copula is for
    assert estimators.gaussian_mi(x, y, uncertainty=False).value < sampler.mutual_information() - 0.15


def test_exact_linear_relation_is_infinite():
    x = np.random.default_rng(4).normal(size=(200, 2))
    estimate = estimators.gaussian_mi(x, 3 * x[:, :1] + 1)
    assert estimate.value == np.inf and estimate.warnings


def test_gaussian_entropy_is_exact_and_labelled_as_an_upper_bound():
    sampler = GaussianSampler.dense(3, 1, 0.5)
    x, _ = sampler.sample(3000, rng=5)
    estimate = estimators.gaussian_entropy(x)
    assert estimate.kind == "upper_bound"
    assert abs(estimate.value - sampler.entropy_x()) <= 4 * estimate.stderr


def test_too_few_samples_for_the_dimension():
    with pytest.raises(ValueError, match="too few samples"):
        estimators.gaussian_mi(np.random.default_rng(0).normal(size=(5, 3)), np.arange(5.0))
