"""method="auto" picks by ties, dimension and N, reports why, and lists every candidate."""

import numpy as np
import pytest

import estimators
from estimators.samplers import GaussianSampler, StudentTSampler, TransformedSampler, half_cube


def test_low_dimensions_use_ksg():
    sampler = GaussianSampler.sparse(2, 2, 0.6)
    estimate = estimators.estimate(*sampler.sample(2000, rng=0))
    assert estimate.method == "ksg1" and "KSG is nearly unbiased" in estimate.params["auto_reason"]
    assert estimate.warnings[-1].startswith("auto chose ksg1")


def test_high_dimensional_gaussian_copula_is_exact_and_challengers_are_listed():
    sampler = TransformedSampler(GaussianSampler.sparse(25, 25, 0.5, n_interacting=5), half_cube, half_cube)
    estimate = estimators.auto_mi(*sampler.sample(4000, rng=1))
    assert estimate.method == "copula"
    assert set(estimate.params["auto_candidates"]) == {"copula", "infonce"}
    # the copula is exact here: only sampling noise remains
    assert abs(estimate.value - sampler.mutual_information()) <= 4 * estimate.stderr


def test_a_challenger_replaces_the_copula_when_dependence_is_not_gaussian():
    # Student-t with identity dispersion: zero correlation, 0.18 nats through the shared scale.
    sampler = StudentTSampler(np.eye(6), dim_x=3, dof=3)
    estimate = estimators.auto_mi(*sampler.sample(5000, rng=0))
    copula = estimate.params["auto_candidates"]["copula"]["value"]
    truth = sampler.mutual_information()
    assert estimate.method in ("ksg1", "infonce")
    assert abs(estimate.value - truth) < abs(copula - truth)
    assert "copula misses part of it" in estimate.params["auto_reason"]


def test_atoms_are_routed_and_small_samples_fall_back_to_ksg():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=1000)
    routed = estimators.auto_mi(rng.normal(size=(1000, 4)) + labels[:, None], labels)
    assert routed.method == "ross" and "atoms" in routed.params["auto_reason"]
    # N = dim + 1: too few for a covariance, enough to tell a linear relation from the sample's rank.
    few = estimators.auto_mi(rng.normal(size=(41, 20)), rng.normal(size=(41, 20)))
    assert few.method == "ksg1" and "too small for a covariance" in few.params["auto_reason"]
    assert np.isfinite(few.value)
    with pytest.raises(ValueError, match="too few samples for this dimension"):  # was reported as inf
        estimators.auto_mi(rng.normal(size=(30, 20)), rng.normal(size=(30, 20)))


def test_neural_challenger_can_be_switched_off():
    x, y = GaussianSampler.sparse(5, 5, 0.5).sample(2000, rng=3)
    estimate = estimators.auto_mi(x, y, neural=False)
    assert set(estimate.params["auto_candidates"]) == {"copula"}


def test_bad_input_is_refused_before_any_estimator_runs():
    with pytest.raises(ValueError, match="mismatched lengths"):
        estimators.auto_mi(np.zeros((10, 2)), np.zeros((9, 2)))
