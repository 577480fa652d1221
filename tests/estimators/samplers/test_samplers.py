"""Closed forms of the samplers against Monte Carlo over their own densities.

I(X; Y) = E[log p(x, y) - log p(x) - log p(y)] and h = -E[log p]: the Monte Carlo mean over
200,000 draws has a standard error we compute; a closed form more than 5 of those away fails.
"""

import math

import numpy as np
import pytest
from scipy import stats

from estimators.samplers import (
    AdditiveUniformSampler,
    GaussianSampler,
    Spiral,
    StudentTSampler,
    TransformedSampler,
    asinh,
    half_cube,
    normal_cdf,
)

DRAWS = 200_000


def assert_monte_carlo(samples, closed_form):
    mean, stderr = samples.mean(), samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(mean - closed_form) <= 5 * stderr + 1e-9, (mean, closed_form, stderr)


def split_logpdf(distribution_of, covariance, dim_x, x, y):
    joint = distribution_of(covariance).logpdf(np.hstack([x, y]))
    marginal_x = distribution_of(covariance[:dim_x, :dim_x]).logpdf(x)
    marginal_y = distribution_of(covariance[dim_x:, dim_x:]).logpdf(y)
    return joint, marginal_x, marginal_y


@pytest.mark.parametrize(
    "sampler",
    [GaussianSampler.dense(2, 3, 0.4), GaussianSampler.sparse(3, 2, 0.8, n_interacting=2)],
    ids=["dense", "sparse"],
)
def test_gaussian_closed_forms(sampler):
    x, y = sampler.sample(DRAWS, rng=0)
    joint, px, py = split_logpdf(
        lambda c: stats.multivariate_normal(np.zeros(len(c)), c), sampler.covariance, sampler.dim_x, x, y
    )
    assert_monte_carlo(joint - px - py, sampler.mutual_information())
    assert_monte_carlo(-px, sampler.entropy_x())
    assert_monte_carlo(-joint, sampler.entropy_joint())


def test_sparse_gaussian_formula():
    assert GaussianSampler.sparse(4, 6, 0.5, n_interacting=3).mutual_information() == pytest.approx(
        -1.5 * math.log(1 - 0.25)
    )


@pytest.mark.parametrize("dof", [1.5, 4.0])
def test_student_t_closed_forms(dof):
    dispersion = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.0]])
    sampler = StudentTSampler(dispersion, dim_x=1, dof=dof)
    x, y = sampler.sample(DRAWS, rng=1)
    joint, px, py = split_logpdf(
        lambda c: stats.multivariate_t(np.zeros(len(c)), c, df=dof), dispersion, 1, x, y
    )
    assert_monte_carlo(joint - px - py, sampler.mutual_information())
    assert_monte_carlo(-py, sampler.entropy_y())


def test_student_t_is_dependent_even_with_identity_dispersion():
    assert StudentTSampler(np.eye(2), dim_x=1, dof=3).mutual_information() > 0.01


@pytest.mark.parametrize("noise", [0.2, 0.5, 1.5])
def test_additive_uniform_closed_forms(noise):
    sampler = AdditiveUniformSampler(2, noise)
    x, y = sampler.sample(DRAWS, rng=2)
    # p(y) per coordinate: the length of [y - noise, y + noise] inside [0, 1], over 2 * noise
    p_y = ((np.minimum(y + noise, 1.0) - np.maximum(y - noise, 0.0)) / (2 * noise)).prod(axis=1)
    log_p_y_given_x = -2 * math.log(2 * noise)
    assert_monte_carlo(log_p_y_given_x - np.log(p_y), sampler.mutual_information())
    assert_monte_carlo(-np.log(p_y), sampler.entropy_y())


@pytest.mark.parametrize("transform", [normal_cdf, asinh, half_cube])
def test_elementwise_transforms_are_strictly_increasing(transform):
    grid = np.linspace(-5, 5, 1001)
    assert np.all(np.diff(transform(grid)) > 0)


def test_spiral_is_invertible_and_keeps_the_norm():
    x = np.random.default_rng(3).normal(size=(100, 3))
    spiral = Spiral(3, speed=0.7)
    y = spiral(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1))
    np.testing.assert_allclose(Spiral(3, speed=-0.7)(y), x, atol=1e-12)


def test_transformed_sampler_keeps_mutual_information_and_has_no_closed_entropy():
    base = GaussianSampler.sparse(2, 2, 0.5)
    sampler = TransformedSampler(base, Spiral(2), half_cube)
    x, y = sampler.sample(10, rng=4)
    assert x.shape == (10, 2) and y.shape == (10, 2)
    assert sampler.mutual_information() == base.mutual_information()
    with pytest.raises(NotImplementedError, match="no closed-form"):
        sampler.entropy_x()


def test_samples_are_reproducible_and_shaped():
    sampler = GaussianSampler.dense(3, 2, 0.2)
    x1, y1 = sampler.sample(7, rng=5)
    x2, _ = sampler.sample(7, rng=np.random.default_rng(5))
    assert x1.shape == (7, 3) and y1.shape == (7, 2)
    np.testing.assert_array_equal(x1, x2)
    assert sampler.mutual_information_bits() == pytest.approx(sampler.mutual_information() / math.log(2))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="positive definite"):
        GaussianSampler(np.array([[1.0, 2.0], [2.0, 1.0]]), dim_x=1)
    with pytest.raises(ValueError, match="dense correlation"):
        GaussianSampler.dense(2, 2, -0.5)
    with pytest.raises(ValueError, match="n_interacting"):
        GaussianSampler.sparse(2, 2, 0.5, n_interacting=3)
    with pytest.raises(ValueError, match="dim_x"):
        GaussianSampler(np.eye(3), dim_x=3)
    with pytest.raises(ValueError, match="dof"):
        StudentTSampler(np.eye(2), 1, dof=0)
    with pytest.raises(ValueError, match="noise"):
        AdditiveUniformSampler(1, 0.0)
    with pytest.raises(ValueError, match="2 dimensions"):
        Spiral(1)
    with pytest.raises(ValueError, match="positive integer"):
        GaussianSampler.dense(1, 1, 0.5).sample(0)
