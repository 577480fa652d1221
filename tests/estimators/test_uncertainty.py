"""Error bars that mean what they say: over repeated draws, (estimate - mean) / stderr has spread 1.

Tolerance: with 40 draws the sample spread of z has a standard error of about 1/sqrt(2 * 39) = 0.11,
so [0.7, 1.4] is about 3 of those around the values measured (0.9 to 1.2); error bars wrong by a
factor of 1.4 in either direction fail.
"""

import math

import numpy as np
import pytest
import torch

import estimators
from estimators.samplers import AdditiveUniformSampler, GaussianSampler
from estimators.uncertainty import subsample_spread

DRAWS = 40


@pytest.mark.parametrize(
    "name, run",
    [
        ("ksg", lambda x, y: estimators.ksg_mi(x, y)),
        ("gaussian", lambda x, y: estimators.gaussian_mi(x, y)),
        ("kl", lambda x, y: estimators.kl_entropy(x)),
    ],
)
def test_standard_errors_are_calibrated(name, run):
    sampler = GaussianSampler.sparse(1, 1, 0.6)
    results = [run(*sampler.sample(500, rng=10_000 + draw)) for draw in range(DRAWS)]
    values = np.array([r.value for r in results])
    z = (values - values.mean()) / np.array([r.stderr for r in results])
    assert 0.7 <= z.std(ddof=1) <= 1.4, z.std(ddof=1)


def test_calibrated_on_bounded_non_gaussian_data():
    sampler = AdditiveUniformSampler(1, 0.3)
    results = [estimators.ksg_mi(*sampler.sample(1000, rng=20_000 + draw)) for draw in range(DRAWS)]
    values = np.array([r.value for r in results])
    z = (values - values.mean()) / np.array([r.stderr for r in results])
    assert 0.7 <= z.std(ddof=1) <= 1.4, z.std(ddof=1)


def test_uses_disjoint_parts_and_scales_variance_by_size():
    """A mean of N iid unit-variance values has stderr 1/sqrt(N); disjoint parts recover it."""
    data = torch.from_numpy(np.random.default_rng(0).normal(size=4000))
    seen = []

    def mean_of(index):
        seen.append(index)
        return float(data[index].mean())

    spread = subsample_spread(
        mean_of, 4000, float(data.mean()), torch.Generator().manual_seed(0), min_size=10
    )
    assert spread.stderr == pytest.approx(1 / math.sqrt(4000), rel=0.3)
    assert spread.splits == (2, 3, 4, 5, 6, 7, 8)
    for parts in spread.splits:  # parts of one split never share a sample
        group = [index for index in seen if len(index) == 4000 // parts][:parts]
        assert len(torch.cat(group).unique()) == parts * (4000 // parts)


def test_too_few_samples_give_nan_and_say_so():
    spread = subsample_spread(lambda index: 0.0, 30, 0.0, torch.Generator().manual_seed(0), min_size=20)
    assert math.isnan(spread.stderr) and "too few" in spread.warnings[0]


def test_a_drifting_estimate_is_flagged():
    # 10+10-D KSG at N = 2000 still moves with N (its bias depends on N): the error bar must say it
    # covers noise only.
    x, y = GaussianSampler.sparse(10, 10, 0.9).sample(2000, rng=0)
    estimate = estimators.ksg_mi(x, y)
    assert any("moves with sample size" in text for text in estimate.warnings)
