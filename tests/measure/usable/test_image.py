import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from infomug.measure.usable.fitting import DecoderSettings
from infomug.measure.usable.image import (
    METHOD,
    discretised_gaussian_log_prob,
    image_baseline,
    image_information,
    stable_log_prob,
)
from infomug.measure.usable.splits import Splits
from infomug.models.mae_decoder import patchify

# A small budget for 8x8 grey images in 4-pixel patches (4 patches of 16 pixels).
SETTINGS = DecoderSettings(width=32, max_epochs=40, patience=3, batch_size=64, lr=1e-2)
N, PATCH = 400, 4


@pytest.fixture(scope="module")
def data():
    """Random 8-bit images, their patches as a token grid (M = G = 4), and the shared baseline."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, 1, 8, 8)) / 255.0
    patches = patchify(torch.as_tensor(images), PATCH).numpy()  # [N, 4, 16]
    splits = Splits.make(N, test_fraction=0.3, val_fraction=0.1, seed=0)
    baseline = image_baseline(images, splits, patch=PATCH, settings=SETTINGS, progress=False)
    return images, patches, splits, baseline


def scipy_masses(mean: float, scale: float) -> np.ndarray:
    edges = np.concatenate([[-np.inf], (np.arange(255) + 0.5) / 255, [np.inf]])
    return np.diff(norm.cdf(edges, loc=mean, scale=scale))


CASES = [
    (0.5, 0.2),
    (0.01, 1e-3),
    (0.99, 0.004),
    (-0.3, 0.05),
    (1.4, 0.01),
    (0.5, 5.0),
    (0.3, 1e-4),
    (0.7, 0.002),
]


@pytest.mark.parametrize(("mean", "scale"), CASES)
def test_discretised_gaussian_matches_scipy(mean, scale):
    levels = torch.arange(256)
    for function in (discretised_gaussian_log_prob, stable_log_prob):
        log_prob = function(
            levels, torch.tensor(mean, dtype=torch.float64), torch.tensor(math.log(scale)).double()
        )
        masses = log_prob.exp().numpy()
        # float64 throughout: 1e-6 is the brief's tolerance, far above float64 error (~1e-15) and far
        # below any mistake in a bin edge (a shift of 1/255 moves masses by O(1e-2) at these scales).
        np.testing.assert_allclose(masses, scipy_masses(mean, scale), rtol=0, atol=1e-6)
        assert masses.sum() == pytest.approx(1.0, abs=1e-9)  # the 256 bins partition the real line
        assert (log_prob <= 0).all()


def test_float32_fast_path_and_gradients_agree_with_the_log_space_path():
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (4000,), generator=generator)
    levels[:50], levels[50:100] = 0, 255
    # means inside and outside the pixel range, scales from a tenth of a bin to many times the range:
    # every branch (erfc difference, float64 redo in the tails, midpoint rule, open edges)
    mean = torch.rand(4000, generator=generator, dtype=torch.float64) * 1.6 - 0.3
    log_scale = torch.rand(4000, generator=generator, dtype=torch.float64) * 11 - 9
    mean.requires_grad_()
    log_scale.requires_grad_()
    reference = stable_log_prob(levels, mean, log_scale)
    grads = torch.autograd.grad(reference.sum(), (mean, log_scale))
    for dtype, tolerance in ((torch.float64, 1e-7), (torch.float32, 3e-3)):
        # The erfc difference is used while the mass is at least RELATIVE_FLOOR (1e-8 in float64, 1e-3 in
        # float32) of the larger erfc, so it keeps eps / floor of relative precision: ~2e-8 in float64 and
        # ~1e-4 in float32, on log P and its gradients; the tolerances leave a factor 5-30 over that.
        m, s = mean.detach().to(dtype).requires_grad_(), log_scale.detach().to(dtype).requires_grad_()
        log_prob = discretised_gaussian_log_prob(levels, m, s)
        fast = torch.autograd.grad(log_prob.sum(), (m, s))
        assert log_prob.dtype == dtype
        relative = (log_prob.double() - reference).abs() / (reference.abs() + 1)
        assert relative.max() < tolerance
        for got, want in zip(fast, grads, strict=True):
            assert torch.isfinite(got).all()
            assert ((got.double() - want).abs() / (want.abs() + 1)).max() < tolerance


def test_patch_tokens_carry_the_image_and_noise_does_not(data):
    images, patches, splits, baseline = data
    oracle = image_information(patches, images, splits, baseline=baseline, patch=PATCH, settings=SETTINGS)
    noise = np.random.default_rng(1).normal(size=patches.shape)
    blind = image_information(noise, images, splits, baseline=baseline, patch=PATCH, settings=SETTINGS)
    pixels = 64
    # Independent tokens: zero in truth, so within 3 standard errors of it, or below (the decoder over-fits
    # a little where the baseline has no input to over-fit to).
    assert blind.estimate.value < 3 * blind.estimate.stderr
    # The patches determine every pixel: the decoder narrows each pixel's Gaussian from the uniform
    # spread (~5.7 nats a pixel) to a few levels; ask for at least 1 nat a pixel, and far above the blind.
    assert oracle.estimate.value > pixels * 1.0
    assert oracle.estimate.value > blind.estimate.value + 20 * oracle.estimate.stderr
    estimate = oracle.estimate
    assert estimate.kind == "point" and estimate.method == METHOD
    assert estimate.ceiling == pytest.approx(baseline.mean())
    assert estimate.value <= estimate.ceiling
    assert "decoder family" in estimate.params["relative_to"]
    assert any("relative to" in warning for warning in estimate.warnings)
    assert estimate.params["tokens"] == 4 and estimate.params["patches"] == 4
    assert estimate.params["baseline_bits_per_dim"] == pytest.approx(baseline.mean() / (pixels * math.log(2)))
    assert estimate.params["fit"]["converged"]
    np.testing.assert_array_equal(oracle.test_rows, splits.test)


def test_baseline_of_uniform_pixels(data):
    images, _, splits, baseline = data
    assert baseline.shape == splits.test.shape and (baseline > 0).all()
    bits = baseline.mean() / (64 * math.log(2))
    # Uniform levels have 8 bits a pixel, which no Gaussian beats; the best one (variance 1/12 of the
    # range) pays 8 + log2(2 pi e / 12) / 2 = 8.25 bits; allow a little for fit and sampling error.
    assert 8.0 < bits < 8.4


def test_invertible_maps_of_the_tokens_leave_the_value(data):
    images, patches, splits, baseline = data
    rng = np.random.default_rng(2)
    tokens = patches[:, :, :6] + 0.05 * rng.normal(size=(N, 4, 6))  # partial, noisy information
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    mapped = (tokens * 10.0 ** rng.uniform(-2, 2, 6)) @ rotation
    first = image_information(tokens, images, splits, baseline=baseline, patch=PATCH, settings=SETTINGS)
    second = image_information(mapped, images, splits, baseline=baseline, patch=PATCH, settings=SETTINGS)
    assert first.estimate.value > 3 * first.estimate.stderr  # there is something to be invariant about
    # The same decoder input up to float error and the same seed: the values agree inside the stderr.
    assert abs(first.estimate.value - second.estimate.value) < min(
        first.estimate.stderr, second.estimate.stderr
    )


def test_pooled_vectors_are_one_token(data):
    images, patches, splits, baseline = data
    pooled = patches.mean(axis=1)  # [N, 16]
    out = image_information(pooled, images, splits, baseline=baseline, patch=PATCH, settings=SETTINGS)
    assert out.estimate.params["tokens"] == 1
    assert np.isfinite(out.per_sample).all()


def test_errors(data):
    images, patches, splits, baseline = data
    with pytest.raises(ValueError, match=r"\[N, M, D\]"):
        image_information(patches[..., None], images, splits, baseline=baseline, patch=PATCH)
    bad = patches.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        image_information(bad, images, splits, baseline=baseline, patch=PATCH)
    with pytest.raises(ValueError, match="divide"):
        image_information(patches, images, splits, baseline=baseline, patch=3)
    with pytest.raises(ValueError, match="divide"):
        image_baseline(images[:, :, :6], splits, patch=PATCH)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        image_baseline(images[:, 0], splits, patch=PATCH)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        image_baseline(images * 255, splits, patch=PATCH)
    with pytest.raises(ValueError, match="inputs but"):
        image_information(patches[:-1], images, splits, baseline=baseline, patch=PATCH)
    with pytest.raises(ValueError, match="baseline must be"):
        image_information(patches, images, splits, baseline=baseline[:-1], patch=PATCH)
