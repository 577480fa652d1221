import math

import numpy as np
import pytest

from infomug.measure.information import (
    bag_of_words,
    caption_information,
    caption_vocabulary,
    effective_rank,
    feature_entropy,
    gaussian_entropy_ceiling,
    input_information,
    label_information,
    pca_whiten,
    plug_in_entropy,
    subsample_rows,
)
from infomug.measure.probes import linear_probes, split_indices

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


def test_label_information_bounds_and_their_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 1000)
    features = (np.eye(4)[labels] * 10 + rng.standard_normal((1000, 4))).astype(np.float32)
    train, test = split_indices(1000, 0.3, seed=0)
    probe = linear_probes(features, {"y": labels}, train, test, max_iter=100, weight_decay=1e-4)["y"]
    exact, notes = label_information(
        probe, labels[test], labels, entropy=math.log(4), k=3, uncertainty=True, seed=0
    )
    assert notes == [] and set(exact) == {"probe_cross_entropy", "knn_on_probe_logits"}
    for estimate in exact.values():
        assert estimate.kind == "lower_bound" and estimate.ceiling == pytest.approx(math.log(4))
        # Classes 10 sigma apart: T determines Y, so both bounds reach H(Y) (tolerance 0.1 nats).
        assert estimate.value == pytest.approx(math.log(4), abs=max(0.1, 3 * estimate.stderr))
    knn = exact["knn_on_probe_logits"]
    assert knn.params["projection"] == "linear_probe_logits" and knn.method == "ross"
    assert any("lower bound on I(T; Y)" in w for w in knn.warnings)
    assert not any("plug-in" in w for w in knn.warnings)

    plug_in, _ = label_information(probe, labels[test], labels, entropy=None, k=3, uncertainty=False, seed=0)
    for estimate in plug_in.values():
        assert estimate.ceiling == pytest.approx(plug_in_entropy(labels))
        assert any("plug-in entropy" in w for w in estimate.warnings)
    assert math.isnan(plug_in["knn_on_probe_logits"].stderr)


def test_label_information_warns_when_the_probe_did_not_converge():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    features = (np.eye(4)[labels] * 2 + rng.standard_normal((400, 4))).astype(np.float32)
    train, test = split_indices(400, 0.3, seed=0)
    probe = linear_probes(features, {"y": labels}, train, test, max_iter=1, weight_decay=1e-4)["y"]
    assert not probe.converged
    estimates, _ = label_information(
        probe, labels[test], labels, entropy=math.log(4), k=3, uncertainty=False, seed=0
    )
    for estimate in estimates.values():
        assert any("stopped at its iteration limit" in w for w in estimate.warnings)


def test_label_information_drops_the_constant_logit_of_an_unseen_class():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    features = (np.eye(3)[labels] * 8 + rng.standard_normal((600, 3))).astype(np.float32)
    train, test = split_indices(600, 0.3, seed=0)
    labels[test[:3]] = 9
    probe = linear_probes(features, {"y": labels}, train, test, max_iter=100, weight_decay=1e-4)["y"]
    estimates, _ = label_information(
        probe, labels[test], labels, entropy=None, k=3, uncertainty=False, seed=0
    )
    assert estimates["knn_on_probe_logits"].params["logit_columns"] == 3
    assert math.isfinite(estimates["probe_cross_entropy"].value)


def test_plug_in_entropy_and_subsample_rows():
    assert plug_in_entropy(np.array([0, 0, 1, 1])) == pytest.approx(math.log(2))
    assert plug_in_entropy(np.array([3, 3, 3])) == 0.0
    rows = subsample_rows(100, 30, seed=0)
    assert len(rows) == 30 and len(set(rows.tolist())) == 30 and np.all(np.diff(rows) > 0)
    assert np.array_equal(subsample_rows(10, 30, seed=0), np.arange(10))


def test_rankme_isotropic_gaussian_is_near_full_rank():
    features = np.random.default_rng(2).standard_normal((2000, 16))
    score = effective_rank(features, uncertainty=True, seed=0)
    # Singular values of a 2000 x 16 Gaussian matrix agree to ~10%, so RankMe is within 10% of 16.
    assert score.value == pytest.approx(16, rel=0.1) and score.value <= 16
    assert score.method == "rankme" and score.params["max"] == 16 and score.baseline is None
    assert math.isfinite(score.stderr) and score.stderr < 0.5
    assert "a proxy, not information" in score.warnings[0]
    assert "compare within one objective only (RankMe's authors' caveat)" in score.warnings[0]


def test_rankme_rank_three_data():
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.standard_normal((16, 3)))[0].T  # 3 orthonormal directions in R^16
    features = rng.standard_normal((2000, 3)) @ basis
    score = effective_rank(features, uncertainty=False, seed=0)
    # Three singular values equal to ~1/sqrt(2000) relative, thirteen exactly 0 (each adds ~1.6e-6 via
    # the 1e-7 epsilon): RankMe = 3 within 0.05.
    assert score.value == pytest.approx(3.0, abs=0.05)
    assert math.isnan(score.stderr)
    # A smooth measure: spreads 3, 1, 0.3 along the three directions give exp(H(p)), p = (3, 1, 0.3) / 4.3.
    spread = np.array([3.0, 1.0, 0.3])
    stretched = effective_rank((rng.standard_normal((2000, 3)) * spread) @ basis, uncertainty=False, seed=0)
    p = spread / spread.sum()
    assert stretched.value == pytest.approx(math.exp(-(p * np.log(p)).sum()), abs=0.05)
    assert stretched.value < 2.5


def test_noisy_channel_sweep_is_wired():
    # Features on two points +-1 and noise 0.01 x the scale: the channel carries H(f(X)) = log 2.
    signs = np.where(np.random.default_rng(4).random(400) < 0.5, -1.0, 1.0)[:, None]
    estimates = input_information(
        signs, relative_sigmas=(0.01, 0.3), max_samples=300, uncertainty=False, seed=0
    )
    assert [e.params["relative_sigma"] for e in estimates] == pytest.approx([0.01, 0.3])
    assert all(e.n == 300 and e.method == "noisy_channel" for e in estimates)
    assert estimates[0].value == pytest.approx(math.log(2), abs=0.01)
    assert estimates[1].value < estimates[0].value


def test_noisy_channel_levels_are_exactly_the_ones_asked_for():
    # For these features the estimator's sigma / scale gives 3.0000000000000004, which the summary table
    # and the plots would show as a second "sigma = 3" next to the other layers' 3.0.
    features = np.random.default_rng(2).standard_normal((100, 3)) * 1.7
    levels = (0.1, 0.3, 1.0, 3.0)
    estimates = input_information(
        features, relative_sigmas=levels, max_samples=100, uncertainty=False, seed=0
    )
    for whiten in (True, False):
        estimates = input_information(
            features, relative_sigmas=levels, max_samples=100, uncertainty=False, seed=0, whiten=whiten
        )
        assert [e.params["relative_sigma"] for e in estimates] == list(levels)
        assert all(
            e.params["sigma"] == pytest.approx(level * e.params["feature_scale"])
            for e, level in zip(estimates, levels, strict=True)
        )
    # Whitened, sigma is absolute in unit-variance coordinates: the level itself.
    assert [e.params["sigma"] for e in estimates_whitened(features, levels)] == list(levels)


def test_caption_critic_trains_on_the_device_asked_for(monkeypatch):
    # neural_mi's own default is CUDA whenever torch sees a GPU, whatever device the measurement runs on.
    import estimators.neural.estimator as neural

    def default_device(_):
        raise AssertionError("neural_mi chose the device itself")

    monkeypatch.setattr(neural, "_default_device", default_device)
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 4, 200)
    features = (np.eye(4)[labels] * 3 + rng.standard_normal((200, 4))).astype(np.float32)
    captions = [f"a {COLOURS[c]} shape" for c in labels]
    estimate, reason = caption_information(
        features, captions, batch_size=16, max_steps=5, seed=0, progress=False, device="cpu"
    )
    assert reason is None and estimate.params["device"] == "cpu"


def test_feature_entropy_matches_the_gaussian_closed_form_after_scaling():
    rng = np.random.default_rng(5)
    covariance = np.array([[4.0, 1.0], [1.0, 1.0]])
    features = rng.multivariate_normal([3.0, -1.0], covariance, size=2000)
    estimate, reason = feature_entropy(
        features, k=3, max_samples=2000, uncertainty=True, seed=0, whiten=False
    )
    assert reason is None
    scale = estimate.params["feature_scale"]
    assert scale == pytest.approx(math.sqrt(features.var(axis=0).mean()))
    # h(T / s) = h(T) - d log s; tolerance 0.1 nats (Kozachenko-Leonenko bias in 2-D at N=2000 is ~0.02).
    expected = 0.5 * np.linalg.slogdet(2 * math.pi * math.e * covariance)[1] - 2 * math.log(scale)
    assert estimate.value == pytest.approx(expected, abs=0.1)
    assert estimate.params["scale_normalised"] is True and estimate.quantity == "entropy"
    assert estimate.params["whitened"] is False and estimate.params["role"] == "geometry_diagnostic"
    assert any("scale-dependent" in w and "geometry diagnostic" in w for w in estimate.warnings)


def test_feature_entropy_uses_at_most_max_samples_and_reports_failures():
    features = np.random.default_rng(6).standard_normal((500, 3))
    estimate, _ = feature_entropy(features, k=3, max_samples=200, uncertainty=False, seed=0)
    assert estimate.n == 200
    features[:, 1] = 2.0
    estimate, reason = feature_entropy(
        features, k=3, max_samples=200, uncertainty=False, seed=0, whiten=False
    )
    assert estimate is None and "constant" in reason
    # Whitening drops the dead direction: H of the 2-dimensional support, said so.
    estimate, reason = feature_entropy(features, k=3, max_samples=200, uncertainty=False, seed=0)
    assert reason is None and estimate.params["dropped_dims"] == 1 and estimate.params["whitened_dims"] == 2
    for whiten in (True, False):
        estimate, reason = feature_entropy(
            np.ones((50, 2)), k=3, max_samples=200, uncertainty=False, seed=0, whiten=whiten
        )
        assert estimate is None and "no spread" in reason


def test_bag_of_words_vocabulary_counts_and_order():
    captions = ["A red circle", "a blue circle.", "a red red square", "green"]
    assert caption_vocabulary(captions) == ["a", "circle", "red"]
    counts = bag_of_words(captions)
    assert counts.dtype == np.float32
    np.testing.assert_array_equal(counts, [[1, 1, 1], [1, 1, 0], [1, 0, 2], [0, 0, 0]])
    assert bag_of_words(captions[::-1]).tolist() == counts[::-1].tolist()


def test_caption_information_sees_captions_that_depend_on_the_features():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 8, 2000)
    features = (np.eye(8)[labels] * 3 + rng.standard_normal((2000, 8))).astype(np.float32)
    captions = [f"a {COLOURS[c]} shape" for c in labels]
    shuffled = [captions[i] for i in rng.permutation(2000)]
    options = {"batch_size": 64, "max_steps": 200, "seed": 0, "progress": False}
    real, reason = caption_information(features, captions, **options)
    assert reason is None
    noise, _ = caption_information(features, shuffled, **options)
    # I(T; caption) = I(T; Y) <= log 8 = 2.08 nats, about 1.8 for these overlapping blobs; the shuffled
    # captions carry 0 (tolerance 0.1 nats or 3 standard errors).
    assert 1.2 < real.value <= math.log(8) + 3 * real.stderr
    assert abs(noise.value) <= max(0.1, 3 * noise.stderr)
    assert real.kind == "lower_bound" and real.ceiling == pytest.approx(math.log(64))
    assert (
        real.params["text_feature"] == "bag_of_words" and real.params["vocabulary"] == 8
    )  # "a", "shape" constant
    assert any("I(T; words of the caption) <= I(T; caption)" in w for w in real.warnings)


def test_caption_information_declines_with_a_reason():
    features = np.random.default_rng(8).standard_normal((100, 4))
    estimate, reason = caption_information(features, ["same words"] * 100, batch_size=8, max_steps=5, seed=0)
    assert estimate is None and "varying word" in reason
    captions = [f"a {COLOURS[i % 8]} shape" for i in range(100)]
    estimate, reason = caption_information(features, captions, batch_size=64, max_steps=5, seed=0)
    assert estimate is None and "too few samples" in reason
    with pytest.raises(ValueError, match="paired"):
        caption_information(features, captions[:50], batch_size=8, max_steps=5, seed=0)


# -- geometry diagnostics on whitened features ---------------------------------------------------------


def estimates_whitened(features, levels, **options):
    options = {"max_samples": len(features), "uncertainty": False, "seed": 0, **options}
    return input_information(features, relative_sigmas=levels, **options)


def blob_mixture(n: int = 500, d: int = 8, seed: int = 0) -> np.ndarray:
    """Four correlated, overlapping blobs: non-Gaussian features with distinct fourth moments."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, d)) * 2
    return centres[rng.integers(0, 4, n)] + rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.5


def linear_maps(d: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Invertible maps a probe does not notice: per-dimension scales over 1e-2..1e2, a rotation, a mix."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(-2, 2, d)
    rng.shuffle(scales)
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return {"rescale": np.diag(scales), "rotation": rotation, "general": rotation @ np.diag(scales)}


def test_pca_whiten_gives_unit_covariance_and_drops_dead_directions():
    features = blob_mixture(400, 6)
    features = np.concatenate([features, features[:, :1] * 3.0 - features[:, 1:2]], axis=1)  # rank 6 of 7
    whitened = pca_whiten(features)
    assert whitened.features.shape == (400, 6) and (whitened.dim, whitened.dropped) == (7, 1)
    np.testing.assert_allclose(whitened.features.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.cov(whitened.features.T, bias=True), np.eye(6), atol=1e-10)
    assert (whitened.features**3).sum(axis=0).min() > 0  # the sign convention
    with pytest.raises(ValueError, match="no variance"):
        pca_whiten(np.ones((10, 3)))


@pytest.mark.parametrize("name", ["rescale", "rotation", "general"])
def test_whitened_channel_and_entropy_are_invariant_to_invertible_linear_maps(name):
    # The whitened features of T and A T are the same up to rounding (pca_whiten's canonical rotation), so
    # the estimates agree far inside their standard error: 1e-6 relative (observed: ~1e-12).
    features = blob_mixture()
    mapped = features @ linear_maps(8)[name]
    levels = (0.3, 1.0, 3.0)
    base = estimates_whitened(features, levels, uncertainty=True)
    moved = estimates_whitened(mapped, levels, uncertainty=True)
    for before, after in zip(base, moved, strict=True):
        assert before.stderr > 0 and abs(after.value - before.value) < before.stderr
        assert after.value == pytest.approx(before.value, rel=1e-6)
    entropy, _ = feature_entropy(features, k=3, max_samples=500, uncertainty=False, seed=0)
    entropy_mapped, _ = feature_entropy(mapped, k=3, max_samples=500, uncertainty=False, seed=0)
    assert entropy_mapped.value == pytest.approx(entropy.value, rel=1e-6)


def test_unwhitened_channel_moves_under_a_rescaling_a_probe_ignores():
    # The old behaviour (sigma relative to the RMS scale): the largest scale (1e2) sets the noise, drowning
    # every other dimension, so I drops by far more than its standard error (observed 1.2 nats, ~15 se).
    features = blob_mixture()
    rescaled = features @ linear_maps(8)["rescale"]
    before = estimates_whitened(features, (1.0,), uncertainty=True, whiten=False)[0]
    after = estimates_whitened(rescaled, (1.0,), uncertainty=True, whiten=False)[0]
    assert before.params["whitened"] is False and before.params["relative_sigma"] == 1.0
    assert before.value - after.value > 5 * before.stderr
    raw_entropy, _ = feature_entropy(features, k=3, max_samples=500, uncertainty=False, seed=0, whiten=False)
    moved, _ = feature_entropy(rescaled, k=3, max_samples=500, uncertainty=False, seed=0, whiten=False)
    assert abs(moved.value - raw_entropy.value) > 1.0


def test_channel_estimates_are_labelled_geometry_diagnostics():
    features = blob_mixture(200, 4)
    for whiten in (True, False):
        for estimate in estimates_whitened(features, (0.3, 1.0), whiten=whiten):
            assert estimate.params["role"] == "geometry_diagnostic"
            assert estimate.params["whitened"] is whiten
            assert estimate.params["sigma"] > 0 and estimate.params["relative_sigma"] in (0.3, 1.0)
            assert any(
                "a property of sigma and the feature distribution (geometry diagnostic), not of what the"
                " features keep; compare only at equal sigma" in w
                for w in estimate.warnings
            )
    whitened = estimates_whitened(features, (1.0,))[0]
    assert whitened.params["whitened_dims"] == 4 and whitened.params["dropped_dims"] == 0
    assert whitened.params["feature_scale"] == pytest.approx(1.0)


def test_whitened_entropy_of_a_gaussian_is_the_unit_gaussian_entropy():
    # Whitening any Gaussian gives N(0, I): H = (d/2) log(2 pi e) = 2.84 nats in 2-D, whatever the
    # covariance; tolerance 0.1 nats (Kozachenko-Leonenko bias in 2-D at N=2000 is ~0.02).
    rng = np.random.default_rng(5)
    features = rng.multivariate_normal([3.0, -1.0], [[4.0, 1.0], [1.0, 1.0]], size=2000)
    estimate, reason = feature_entropy(features, k=3, max_samples=2000, uncertainty=False, seed=0)
    assert reason is None and estimate.params["whitened"] is True
    assert estimate.params["role"] == "geometry_diagnostic"
    assert estimate.value == pytest.approx(gaussian_entropy_ceiling(2), abs=0.1)
    assert estimate.params["gaussian_ceiling"] == pytest.approx(math.log(2 * math.pi * math.e))
    assert any("geometry diagnostic" in w for w in estimate.warnings)
