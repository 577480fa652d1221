import math

import numpy as np
import pytest

from infomug.measure.usable.factors import METHOD, factor_information
from infomug.measure.usable.fitting import DecoderSettings
from infomug.measure.usable.splits import Splits

# A small budget: these problems are learnt in a few dozen steps.
SETTINGS = DecoderSettings(width=32, max_epochs=60, patience=4, batch_size=128, lr=1e-2)
N = 1500


@pytest.fixture(scope="module")
def world():
    """Labels of the world's kind: 8 and 2 uniform classes (exact H = log 8, log 2), and 3 skewed ones."""
    rng = np.random.default_rng(0)
    labels = {
        "shape": rng.integers(0, 8, N),
        "flip": rng.integers(0, 2, N),
        "size": rng.choice([10, 20, 30], size=N, p=[0.6, 0.3, 0.1]),
    }
    entropies = {"shape": math.log(8), "flip": math.log(2)}
    return labels, entropies, Splits.make(N, test_fraction=0.3, val_fraction=0.1, seed=0)


def one_hot(values: np.ndarray) -> np.ndarray:
    return (values[:, None] == np.unique(values)[None, :]).astype(np.float32)


def test_oracle_features_reach_the_entropy(world):
    labels, entropies, splits = world
    features = np.concatenate([one_hot(values) for values in labels.values()], axis=1)  # [N, 13]
    out = factor_information(features, labels, splits, entropies=entropies, settings=SETTINGS, progress=False)
    for name in ("shape", "flip"):
        estimate = out[name].estimate
        # The features determine the label, so CE -> 0 and the bound -> H; 0.05 nats is the brief's
        # allowance for the finite fit (a decoder that is 99% sure of the right class pays 0.01 nats).
        assert estimate.value == pytest.approx(entropies[name], abs=0.05)
        assert estimate.value <= estimate.ceiling + 1e-9
        assert estimate.kind == "lower_bound" and estimate.method == METHOD
        assert estimate.ceiling == pytest.approx(entropies[name])
        assert estimate.params["entropy_source"] == "exact"
        assert not any("plug-in" in warning for warning in estimate.warnings)
        assert out[name].per_sample.shape == splits.test.shape
        np.testing.assert_array_equal(out[name].test_rows, splits.test)
    size = out["size"].estimate
    assert size.params["entropy_source"] == "plug_in"
    assert any("plug-in" in warning for warning in size.warnings)
    p = np.array([0.6, 0.3, 0.1])
    assert size.ceiling == pytest.approx(-(p * np.log(p)).sum(), abs=0.03)  # sampling error of the plug-in
    params = out["shape"].estimate.params
    # centred, each one-hot block loses a dimension (its columns sum to 1): 7 + 1 + 2 remain
    assert params["basis_dropped"] == 3 and params["basis_dims"] == 10
    assert params["hidden_width"] == SETTINGS.width and params["fit"]["converged"]


def test_independent_features_give_no_information(world):
    labels, entropies, splits = world
    features = np.random.default_rng(1).normal(size=(N, 16))
    out = factor_information(features, labels, splits, entropies=entropies, settings=SETTINGS, progress=False)
    for name, result in out.items():
        estimate = result.estimate
        # Zero in truth: the held-out mean lies within 3 standard errors of it (a 0.3% false alarm rate
        # each), or below (an over-fit decoder pays on the test rows; a plug-in H of the whole array
        # is no more than the test rows' CE on average).
        assert estimate.value < 3 * estimate.stderr, name
        assert estimate.value > -0.15, name  # nor far below (-0.07 at worst here): early stopping works


def test_invertible_maps_of_the_features_leave_the_values(world):
    labels, entropies, splits = world
    rng = np.random.default_rng(2)
    signal = np.concatenate([one_hot(values) for values in labels.values()], axis=1) @ rng.normal(
        size=(13, 6)
    )
    features = np.tanh(signal) + rng.normal(size=(N, 6))  # partly informative, non-Gaussian
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    mapped = (features * 10.0 ** rng.uniform(-2, 2, 6)) @ rotation + 3.0
    first = factor_information(
        features, labels, splits, entropies=entropies, settings=SETTINGS, progress=False
    )
    second = factor_information(
        mapped, labels, splits, entropies=entropies, settings=SETTINGS, progress=False
    )
    for name in labels:
        a, b = first[name].estimate, second[name].estimate
        assert a.value > 3 * a.stderr, name  # there is something to be invariant about
        # The canonical basis gives the decoder the same input up to float error, and it trains from the
        # same seed: the values agree far inside their standard error.
        assert abs(a.value - b.value) < min(a.stderr, b.stderr), name


def test_errors(world):
    labels, entropies, splits = world
    features = np.random.default_rng(3).normal(size=(N, 4))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        factor_information(features[:, None, :], labels, splits)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        factor_information(features[:, 0], labels, splits)
    bad = features.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        factor_information(bad, labels, splits)
    with pytest.raises(ValueError, match="rows"):
        factor_information(features, {"shape": labels["shape"][:-1]}, splits)
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        factor_information(features, {"constant": np.zeros(N, dtype=int)}, splits)
    with pytest.raises(ValueError, match="not discrete"):
        factor_information(features, {"real": np.linspace(0, 1, N)}, splits)
    with pytest.raises(ValueError, match="at least one label"):
        factor_information(features, {}, splits)
    with pytest.raises(ValueError, match="outside"):
        factor_information(features[:100], {k: v[:100] for k, v in labels.items()}, splits)
