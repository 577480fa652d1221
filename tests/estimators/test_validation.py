"""Every estimator refuses bad input with an error that names the problem."""

import numpy as np
import pytest
import torch

import estimators

rng = np.random.default_rng(0)
GOOD_X, GOOD_Y = rng.normal(size=(50, 2)), rng.normal(size=(50, 1))
LABELS = rng.integers(0, 3, size=50)

PAIRED = {
    "ksg": estimators.ksg_mi,
    "ksg2": lambda x, y, **kw: estimators.ksg_mi(x, y, algorithm=2, **kw),
    "mixed": estimators.mixed_mi,
    "gaussian": estimators.gaussian_mi,
    "copula": estimators.gaussian_copula_mi,
    "ross": lambda x, y, **kw: estimators.ross_mi(x, LABELS[: len(y)], **kw),
}


def with_nan(array, value=np.nan):
    array = array.copy()
    array[7, 0] = value
    return array


@pytest.mark.parametrize("name", sorted(PAIRED))
def test_nan_and_inf_name_the_first_bad_cell(name):
    with pytest.raises(ValueError, match=r"NaN.*row 7, column 0"):
        PAIRED[name](with_nan(GOOD_X), GOOD_Y)
    with pytest.raises(ValueError, match="infinite"):
        PAIRED[name](with_nan(GOOD_X, np.inf), GOOD_Y)


@pytest.mark.parametrize("name", sorted(PAIRED))
def test_mismatched_lengths(name):
    with pytest.raises(ValueError, match="mismatched lengths: x has 50, .* has 49"):
        PAIRED[name](GOOD_X, GOOD_Y[:49])


@pytest.mark.parametrize("name", sorted(PAIRED))
def test_wrong_rank(name):
    with pytest.raises(ValueError, match=r"shape \[N\] or \[N, d\]"):
        PAIRED[name](GOOD_X.reshape(50, 2, 1), GOOD_Y)


@pytest.mark.parametrize("name", ["ksg", "ksg2", "gaussian", "copula", "ross"])
def test_constant_columns(name):
    constant = GOOD_X.copy()
    constant[:, 1] = 3.0
    with pytest.raises(ValueError, match="column 1 is constant"):
        PAIRED[name](constant, GOOD_Y)


@pytest.mark.parametrize("name", ["ksg", "ksg2", "mixed", "ross"])
def test_fewer_samples_than_neighbours_plus_one(name):
    with pytest.raises(ValueError, match="too few samples: 3, .* needs at least 4"):
        PAIRED[name](GOOD_X[:3], GOOD_Y[:3])


def test_kl_entropy_refuses_too_few_samples_and_bad_k():
    with pytest.raises(ValueError, match="too few samples: 5"):
        estimators.kl_entropy(GOOD_X[:5], k=5)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            estimators.kl_entropy(GOOD_X, k=bad)


@pytest.mark.parametrize("bad", [np.array([1 + 2j] * 50), np.array(["a"] * 50), np.zeros((0, 2))])
def test_non_numeric_or_empty_arrays(bad):
    with pytest.raises((TypeError, ValueError), match="complex|dtype|empty"):
        estimators.ksg_mi(bad, GOOD_Y[: len(bad)] if len(bad) else GOOD_Y[:0])


def test_unknown_options():
    with pytest.raises(ValueError, match="algorithm"):
        estimators.ksg_mi(GOOD_X, GOOD_Y, algorithm=3)
    with pytest.raises(ValueError, match="on_ties"):
        estimators.ksg_mi(GOOD_X, GOOD_Y, on_ties="ignore")
    with pytest.raises(ValueError, match="backend"):
        estimators.ksg_mi(GOOD_X, GOOD_Y, backend="annoy")
    with pytest.raises(ValueError, match="unknown method 'mutual'"):
        estimators.estimate(GOOD_X, GOOD_Y, method="mutual")
    with pytest.raises(ValueError, match="unknown method"):
        estimators.estimate_entropy(GOOD_X, method="ksg")


def test_torch_tensors_are_accepted_like_arrays():
    from_numpy = estimators.ksg_mi(GOOD_X, GOOD_Y, uncertainty=False).value
    from_torch = estimators.ksg_mi(
        torch.from_numpy(GOOD_X), torch.from_numpy(GOOD_Y), uncertainty=False
    ).value
    assert from_numpy == from_torch


def test_integer_arrays_and_lists_are_accepted():
    x = rng.integers(0, 1000, size=(200, 2))
    estimate = estimators.ksg_mi(x.tolist(), (x[:, 0] + rng.integers(0, 50, size=200)).tolist())
    assert np.isfinite(estimate.value)
