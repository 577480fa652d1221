"""Barber-Agakov bounds: with the true posterior as decoder the bound equals the mutual information."""

import math

import numpy as np
import pytest
import torch

from estimators import Estimate
from estimators.decoder_bounds import barber_agakov_bound, gaussian_nll, sequence_nll


def test_discrete_channel_with_the_true_posterior_is_tight():
    # A ~ U{0..3}; T = A with probability 0.8, else uniform. The posterior q(a|t) is known exactly.
    rng, n, keep = np.random.default_rng(0), 20_000, 0.8
    a = rng.integers(0, 4, size=n)
    t = np.where(rng.random(n) < keep, a, rng.integers(0, 4, size=n))
    p_same = keep + (1 - keep) / 4
    q = np.where(a == t, p_same, (1 - p_same) / 3)
    exact = math.log(4) + p_same * math.log(p_same) + (1 - p_same) * math.log((1 - p_same) / 3)
    bound = barber_agakov_bound(-np.log(q), math.log(4))
    assert bound.kind == "lower_bound" and bound.ceiling == pytest.approx(math.log(4))
    assert abs(bound.value - exact) <= 4 * bound.stderr


def test_gaussian_channel_with_the_true_posterior_is_tight():
    # A ~ N(0, 1), T = A + N(0, s^2): the posterior is N(t / (1 + s^2), s^2 / (1 + s^2)).
    rng, n, s2 = np.random.default_rng(1), 20_000, 0.25
    a = rng.normal(size=n)
    t = a + math.sqrt(s2) * rng.normal(size=n)
    posterior_variance = s2 / (1 + s2)
    nll = gaussian_nll((a - t / (1 + s2))[:, None], posterior_variance)
    bound = barber_agakov_bound(nll, 0.5 * math.log(2 * math.pi * math.e), discrete=False)
    assert bound.ceiling is None
    assert abs(bound.value - 0.5 * math.log(1 + 1 / s2)) <= 4 * bound.stderr


def test_entropy_uncertainty_adds_to_the_error_bar():
    nll = np.random.default_rng(2).normal(1.0, 0.1, size=400)
    exact = barber_agakov_bound(nll, 2.0)
    estimated = barber_agakov_bound(nll, Estimate(2.0, 0.05, 400, "discrete", quantity="entropy"))
    assert estimated.stderr == pytest.approx(math.sqrt(exact.stderr**2 + 0.05**2))
    assert estimated.value == exact.value == pytest.approx(2.0 - nll.mean())


def test_a_decoder_worse_than_the_marginal_is_flagged_not_clipped():
    bound = barber_agakov_bound(np.full(10, 3.0), 1.0)
    assert bound.value == pytest.approx(-2.0) and "says nothing" in bound.warnings[0]


def test_sequence_nll_sums_tokens_up_to_each_length():
    tokens = torch.tensor([[1.0, 2.0, 4.0], [0.5, 0.5, 9.0]])
    assert sequence_nll(tokens, [3, 2]).tolist() == [7.0, 1.0]
    with pytest.raises(ValueError, match="lengths must be within"):
        sequence_nll(tokens, [4, 1])


def test_gaussian_nll_formula_and_errors():
    residuals = np.array([[0.0, 1.0]])
    expected = 0.5 / 2.0 + math.log(2 * math.pi * 2.0)
    assert gaussian_nll(residuals, 2.0).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="variance"):
        gaussian_nll(residuals, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        barber_agakov_bound([1.0, float("nan")], 1.0)
    with pytest.raises(ValueError, match=r"\[N\] vector"):
        barber_agakov_bound(np.ones((2, 2)), 1.0)
