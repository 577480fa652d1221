import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import estimators
from infomug.measure.probes import (
    PROBE_TOLERANCE_CHANGE,
    PROBE_TOLERANCE_GRAD,
    encode_labels,
    knn_accuracies,
    linear_probes,
    majority_rate,
    split_indices,
    standardise,
)


def blobs(n: int, classes: int, dim: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: class c centred at separation * e_c, unit noise; labels uniform."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    means = np.zeros((classes, dim))
    means[np.arange(classes), np.arange(classes)] = separation
    return (means[labels] + rng.standard_normal((n, dim))).astype(np.float32), labels


def test_split_indices_partition_and_seed():
    train, test = split_indices(100, 0.3, seed=1)
    assert len(test) == 30 and len(train) == 70
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    again = split_indices(100, 0.3, seed=1)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    assert not np.array_equal(split_indices(100, 0.3, seed=2)[1], test)


@pytest.mark.parametrize("n, fraction", [(3, 0.3), (10, 0.05), (10, 0.95)])
def test_split_indices_rejects_tiny_parts(n, fraction):
    with pytest.raises(ValueError, match="at least 2 samples"):
        split_indices(n, fraction, seed=0)


def test_separable_blobs_probe_is_perfect_and_bound_reaches_entropy():
    # 4 classes 12 sigma apart: a linear probe is right everywhere and nearly certain, so the
    # Barber-Agakov bound H(Y) - CE must come within 0.05 nats of H(Y) = log 4.
    features, labels = blobs(2000, 4, 8, separation=12.0)
    train, test = split_indices(2000, 0.3, seed=0)
    probe = linear_probes(features, {"y": labels}, train, test, max_iter=100, weight_decay=1e-4)["y"]
    assert probe.accuracy.value >= 0.995
    assert probe.accuracy.method == "linear_probe"
    assert probe.accuracy.baseline == pytest.approx(majority_rate(labels[test]))
    assert probe.logits.shape == (600, 4) and probe.cross_entropy.shape == (600,)
    bound = estimators.barber_agakov_bound(probe.cross_entropy, math.log(4))
    assert bound.value == pytest.approx(math.log(4), abs=0.05)


def test_probe_on_independent_features_scores_the_majority_rate():
    rng = np.random.default_rng(3)
    labels = rng.choice(3, size=2000, p=[0.5, 0.3, 0.2])
    features = rng.standard_normal((2000, 8)).astype(np.float32)
    train, test = split_indices(2000, 0.3, seed=0)
    probe = linear_probes(features, {"y": labels}, train, test, max_iter=100, weight_decay=1e-4)["y"]
    accuracy = probe.accuracy
    assert accuracy.stderr == pytest.approx(math.sqrt(accuracy.value * (1 - accuracy.value) / 600))
    assert abs(accuracy.value - accuracy.baseline) <= 3 * accuracy.stderr
    entropy = float(-(np.array([0.5, 0.3, 0.2]) * np.log([0.5, 0.3, 0.2])).sum())
    bound = estimators.barber_agakov_bound(probe.cross_entropy, entropy)
    # A lower bound on I = 0: it may dip below 0 (the probe overfits noise) but must not claim more.
    assert bound.value <= 3 * bound.stderr


def test_cross_entropy_matches_sklearn_logistic_regression():
    # Same objective: mean CE + wd/2 |W|^2 on standardised features equals sklearn's
    # |W|^2 / 2 + C * sum CE with C = 1 / (n_train * wd) (intercept unpenalised in both).
    features, labels = blobs(300, 3, 5, separation=1.5, seed=4)
    train, test = split_indices(300, 0.3, seed=0)
    weight_decay = 1e-2
    probe = linear_probes(features, {"y": labels}, train, test, max_iter=500, weight_decay=weight_decay)["y"]
    x_train, x_test = standardise(
        torch.as_tensor(features[train]).double(), torch.as_tensor(features[test]).double()
    )
    reference = LogisticRegression(C=1.0 / (len(train) * weight_decay), tol=1e-10, max_iter=10_000)
    reference.fit(x_train.numpy(), labels[train])
    expected = -np.log(reference.predict_proba(x_test.numpy())[np.arange(len(test)), labels[test]])
    np.testing.assert_allclose(probe.cross_entropy, expected, atol=1e-4)


def test_class_seen_only_in_test_gets_finite_cross_entropy():
    features, labels = blobs(400, 3, 4, separation=6.0, seed=5)
    train, test = split_indices(400, 0.3, seed=0)
    labels = labels.copy()
    labels[test[:5]] = 7  # a class the train split never sees
    probe = linear_probes(features, {"y": labels}, train, test, max_iter=100, weight_decay=1e-4)["y"]
    assert probe.unseen_classes == (7,)
    assert list(probe.classes) == [0, 1, 2, 7] and probe.logits.shape == (120, 4)
    assert np.isfinite(probe.cross_entropy).all()
    # Its logit is one learned constant, below the seen classes': those 5 samples are misclassified.
    assert np.ptp(probe.logits[:, 3]) == 0
    assert probe.cross_entropy[:5].min() > 1.0
    assert any("never occur in the train split" in w for w in probe.accuracy.warnings)


def test_several_labels_share_one_run_and_match_separate_runs():
    features, labels = blobs(600, 3, 6, separation=2.0, seed=6)
    other = (features[:, 4] > 0).astype(np.int64)
    train, test = split_indices(600, 0.3, seed=0)
    joint = linear_probes(features, {"a": labels, "b": other}, train, test, max_iter=300, weight_decay=1e-3)
    alone = linear_probes(features, {"b": other}, train, test, max_iter=300, weight_decay=1e-3)
    # The heads share no parameter, so the joint optimum is each head's own optimum.
    np.testing.assert_allclose(joint["b"].cross_entropy, alone["b"].cross_entropy, atol=1e-3)


def test_probe_rejects_a_constant_label():
    features, _ = blobs(100, 2, 3, 1.0)
    train, test = split_indices(100, 0.3, seed=0)
    with pytest.raises(ValueError, match="single class"):
        linear_probes(features, {"y": np.zeros(100, dtype=np.int64)}, train, test, max_iter=5, weight_decay=0)


def test_knn_two_separated_clusters_is_perfect():
    features, labels = blobs(500, 2, 4, separation=20.0, seed=7)
    features = features - features.mean(axis=0)  # cosine similarity needs the clusters apart in angle
    train, test = split_indices(500, 0.3, seed=0)
    score = knn_accuracies(features, {"y": labels}, train, test, k=20, temperature=0.07)["y"]
    assert score.value == 1.0 and score.method == "knn"
    assert score.params["k"] == 20 and score.params["temperature"] == 0.07


def test_knn_weighted_vote_by_hand():
    # Bank at angles 0, 10, 20 and 180 degrees, classes A, B, B, A; the query at 0 degrees is class A.
    # Its k=3 neighbours have cosines 1 (A), cos 10 = 0.985 (B), cos 20 = 0.940 (B).
    # T = 0.01: exp(100) > exp(98.5) + exp(94.0), A wins. T = 1: e^1 = 2.72 < e^0.985 + e^0.940 = 5.24,
    # B wins (as the plain majority would).
    angles = np.radians([0.0, 10.0, 20.0, 180.0, 0.0])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.array([[1], [2], [0.5], [3], [7]])
    labels = np.array([0, 1, 1, 0, 0])
    train, test = np.arange(4), np.array([4])
    sharp = knn_accuracies(features, {"y": labels}, train, test, k=3, temperature=0.01)["y"]
    soft = knn_accuracies(features, {"y": labels}, train, test, k=3, temperature=1.0)["y"]
    assert sharp.value == 1.0 and soft.value == 0.0


def test_knn_caps_k_at_the_bank_size_and_validates():
    features, labels = blobs(40, 2, 3, separation=5.0)
    train, test = split_indices(40, 0.5, seed=0)
    assert knn_accuracies(features, {"y": labels}, train, test, k=100, temperature=0.1)["y"].params["k"] == 20
    with pytest.raises(ValueError, match="temperature"):
        knn_accuracies(features, {"y": labels}, train, test, k=3, temperature=0.0)


def test_encode_labels_and_majority_rate():
    codes, classes = encode_labels(np.array([5, -1, 5, 3]))
    assert codes.tolist() == [2, 0, 2, 1] and classes.tolist() == [-1, 3, 5]
    assert majority_rate(codes) == 0.5


def test_knn_vote_survives_a_temperature_whose_exponential_overflows():
    # The by-hand geometry with the classes swapped: the nearest neighbour (cosine 1) is the query's class,
    # the next two (0.985, 0.940) the other. At T = 1e-3, exp(s / T) is inf for all three, so a naive vote
    # ties at inf and picks class 0; relative to the nearest, the weights are 1, e^-15 and e^-60.
    angles = np.radians([0.0, 10.0, 20.0, 180.0, 0.0])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([1, 0, 0, 1, 1])
    score = knn_accuracies(features, {"y": labels}, np.arange(4), np.array([4]), k=3, temperature=1e-3)["y"]
    assert score.value == 1.0


def test_probe_says_when_lbfgs_stops_at_its_iteration_limit():
    features, labels = blobs(300, 3, 5, separation=1.5, seed=4)
    train, test = split_indices(300, 0.3, seed=0)
    short = linear_probes(features, {"y": labels}, train, test, max_iter=2, weight_decay=1e-2)["y"]
    assert not short.converged and short.accuracy.params["iterations"] <= 2
    assert short.accuracy.params["converged"] is False
    assert any("iteration limit (max_iter=2)" in w for w in short.accuracy.warnings)
    # The same fit as sklearn's (see above) converges on its tolerance well before 500 iterations.
    full = linear_probes(features, {"y": labels}, train, test, max_iter=500, weight_decay=1e-2)["y"]
    assert full.converged and full.accuracy.params["iterations"] < 500
    assert not any("iteration limit" in w for w in full.accuracy.warnings)
    params = full.accuracy.params
    assert params["converged"] is True
    assert (
        params["tolerance_grad"] == PROBE_TOLERANCE_GRAD
        and params["tolerance_change"] == PROBE_TOLERANCE_CHANGE
    )
    assert params["loss_scale"] == pytest.approx(math.log(3))
    # Stopped on its gradient or change tolerance: the gradient is small (it is ~1 at W = 0).
    assert params["grad_max"] < 1e-4 and short.accuracy.params["grad_max"] > params["grad_max"]


def test_probe_runs_to_its_tolerance_and_the_tolerance_decides_when_it_stops():
    # Overlapping blobs of 3 labels: a smooth, strongly convex objective, so L-BFGS converges; a looser
    # tolerance stops it sooner, near the optimum (held-out cross-entropies within 0.01 nats; 0.002 seen).
    features, labels = blobs(1500, 4, 10, separation=2.0, seed=8)
    other = (features[:, 5] + features[:, 0] > 1).astype(np.int64)
    train, test = split_indices(1500, 0.3, seed=0)
    options = {"max_iter": 2000, "weight_decay": 1e-4}
    tight = linear_probes(features, {"y": labels, "z": other}, train, test, **options)
    loose = linear_probes(features, {"y": labels, "z": other}, train, test, tolerance_grad=1e-3, **options)
    for probe in (*tight.values(), *loose.values()):
        assert probe.converged and probe.accuracy.params["converged"] is True
        assert not any("iteration limit" in w for w in probe.accuracy.warnings)
    assert loose["y"].accuracy.params["iterations"] < tight["y"].accuracy.params["iterations"]
    assert tight["y"].accuracy.params["loss_scale"] == pytest.approx(math.log(4) + math.log(2))
    np.testing.assert_allclose(loose["y"].cross_entropy.mean(), tight["y"].cross_entropy.mean(), atol=1e-2)
    with pytest.raises(ValueError, match="tolerances must be positive"):
        linear_probes(features, {"y": labels}, train, test, tolerance_grad=0.0, **options)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        linear_probes(features, {"y": labels}, train, test, max_iter=0, weight_decay=0.0)


def test_standardised_knn_is_not_fooled_by_one_huge_noise_dimension():
    # Four classes 6 sigma apart in 8 dimensions around a common offset of 20, plus one pure-noise dimension
    # of std 1000: the cosine of the raw features is mostly the noise's (accuracy ~0.6 seen), standardised
    # features see the classes again (1.0 seen, as without the noise).
    features, labels = blobs(600, 4, 8, separation=6.0, seed=9)
    features = features - features.mean(axis=0) + 20.0
    noise = np.random.default_rng(10).standard_normal((600, 1)) * 1000.0
    noisy = np.concatenate([features, noise], axis=1)
    train, test = split_indices(600, 0.3, seed=0)
    options = {"k": 20, "temperature": 0.07}
    clean = knn_accuracies(features, {"y": labels}, train, test, **options)["y"]
    raw = knn_accuracies(noisy, {"y": labels}, train, test, **options)["y"]
    standardized = knn_accuracies(noisy, {"y": labels}, train, test, standardize=True, **options)["y"]
    assert clean.value >= 0.99 and standardized.value >= 0.98
    assert raw.value < 0.8 and raw.value < standardized.value - 5 * raw.stderr
    assert standardized.method == "knn_standardized" and standardized.params["standardized"] is True
    assert raw.method == "knn" and raw.params["standardized"] is False


def test_the_whitened_preconditioner_reaches_sklearns_probe_on_correlated_features_in_few_iterations():
    # Nearly collinear features (a ViT's are far from isotropic): standardising leaves their correlation,
    # which slows L-BFGS on W; solving in whitened coordinates is the same objective, hence the same
    # probe as sklearn's, reached in few iterations. A constant-sum column pair (rank deficiency) is fine.
    features, labels = blobs(400, 3, 4, separation=1.5, seed=3)
    rng = np.random.default_rng(0)
    mixed = features @ (np.eye(4) + 0.98 * rng.standard_normal((4, 4)))
    mixed = np.hstack([mixed, mixed[:, :1] * 0.999 + 1e-3 * rng.standard_normal((400, 1)), -mixed[:, :1]])
    train, test = split_indices(400, 0.3, seed=0)
    weight_decay = 1e-3
    probe = linear_probes(mixed, {"y": labels}, train, test, max_iter=200, weight_decay=weight_decay)["y"]
    assert probe.converged and probe.accuracy.params["preconditioner"] == "whitened"
    assert probe.accuracy.params["iterations"] < 100
    x_train, x_test = standardise(
        torch.as_tensor(mixed[train]).double(), torch.as_tensor(mixed[test]).double()
    )
    reference = LogisticRegression(C=1.0 / (len(train) * weight_decay), tol=1e-12, max_iter=100_000)
    reference.fit(x_train.numpy(), labels[train])
    expected = -np.log(reference.predict_proba(x_test.numpy())[np.arange(len(test)), labels[test]])
    np.testing.assert_allclose(probe.cross_entropy, expected, atol=2e-3)
