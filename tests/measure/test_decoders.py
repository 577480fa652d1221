"""Decoder bounds on the tiny MUG checkpoint: conventions pinned against the model's own loss and by hand.

Tolerances: per-caption NLLs are float32 cross-entropies summed in float64, so they match the decoder's
float32 mean loss and a naive per-token loop to 1e-5 nats; the bound is an exact function of them (1e-9).
Pixel bounds with substituted predictions are checked against closed forms (Gaussian NLLs, Gaussian
mutual information) within a few standard errors, each tolerance stated where it is used.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset

from infomug.data import CaptionCollate, build_dataset, build_tokenizer
from infomug.measure.decoders import caption_cross_entropy, caption_decoder_bound
from infomug.measure.pixel_decoder import pixel_decoder_bound
from infomug.models.mae_decoder import patch_statistics, patchify
from infomug.objectives import build_objective
from infomug.train.checkpoint import load_model_weights, read_checkpoint_info
from infomug.train.checkpoint_folders import resolve_checkpoint
from infomug.train.config import config_from_dict, load_config


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    step = resolve_checkpoint(tiny_checkpoint)
    config = config_from_dict(read_checkpoint_info(step).config)
    objective = build_objective(config.model)
    load_model_weights(objective, step)
    dataset = build_dataset(config.data, "eval")
    tokenizer = build_tokenizer("bpe", path=step / "tokenizer.json")
    return objective, dataset, tokenizer


@pytest.fixture(scope="module")
def clip(tiny_measure_overrides):
    return build_objective(load_config(None, [*tiny_measure_overrides, "model.objective=clip"]).model)


def first_batch(objective, dataset, tokenizer, n):
    collate = CaptionCollate(tokenizer, context_length=objective.config.context_length)
    return collate(dataset.__getitems__(list(range(n))))


def naive_caption_nll(decoder, tokens, length, latent):
    logits = decoder.logits(tokens[None, : length - 1], latent[None])[0]
    log_p = F.log_softmax(logits.double(), dim=-1)
    return -sum(float(log_p[t, tokens[t + 1]]) for t in range(length - 1))


def test_per_caption_nll_is_the_decoder_loss_unreduced(tiny):
    objective, dataset, tokenizer = tiny
    batch = first_batch(objective, dataset, tokenizer, 48)
    tokens, lengths = batch["tokens"], batch["lengths"]
    with torch.no_grad():
        latent = objective.encoder.forward_features(batch["image"])
        loss = float(objective.caption_decoder.loss(tokens, lengths, latent))
        # Batches of 20 (48 = 20 + 20 + 8) do not change the result.
        nll = caption_cross_entropy(objective, dataset, tokenizer, n=48, batch_size=20, masked=False)
        naive = [
            naive_caption_nll(objective.caption_decoder, tokens[i], int(lengths[i]), latent[i])
            for i in (0, 7)
        ]
    assert nll.shape == (48,) and nll.dtype == np.float64
    # Every token after bos up to and including eos is predicted: token-weighted mean = the training loss.
    assert nll.sum() / float((lengths - 1).sum()) == pytest.approx(loss, abs=1e-5)
    assert nll[[0, 7]] == pytest.approx(naive, abs=1e-5)


def test_masked_latents_are_the_ones_the_loss_would_see(tiny, monkeypatch):
    objective, dataset, tokenizer = tiny
    encoder = objective.encoder
    seen = []
    original = encoder.forward_masked

    def recording(images, mask_ratio, generator=None, noise=None):
        out = original(images, mask_ratio, generator, noise)
        seen.append((images, mask_ratio, out))
        return out

    monkeypatch.setattr(encoder, "forward_masked", recording)
    nll = caption_cross_entropy(objective, dataset, tokenizer, n=32, batch_size=32)
    (images, mask_ratio, (latent, mask, _)) = seen[0]
    assert mask_ratio == objective.mask_ratio == 0.75
    assert (mask.sum(dim=1) == 12).all()  # 16 patches, 12 removed
    batch = first_batch(objective, dataset, tokenizer, 32)
    assert torch.equal(images, batch["image"])
    with torch.no_grad():
        loss = float(objective.caption_decoder.loss(batch["tokens"], batch["lengths"], latent))
    assert nll.sum() / float((batch["lengths"] - 1).sum()) == pytest.approx(loss, abs=1e-5)


def test_caption_bound_is_exact_entropy_minus_mean_nll(tiny):
    objective, dataset, tokenizer = tiny
    entropy = dataset.caption_entropy()
    estimate = caption_decoder_bound(objective, dataset, tokenizer, n=1000, caption_entropy=entropy)
    nll = caption_cross_entropy(objective, dataset, tokenizer, n=1000)
    assert nll.size == estimate.n == len(dataset) == 256  # n is capped by the eval split
    assert estimate.value == pytest.approx(entropy - nll.mean(), abs=1e-9)
    assert estimate.stderr == pytest.approx(nll.std(ddof=1) / math.sqrt(nll.size), rel=1e-9)
    assert estimate.kind == "lower_bound" and estimate.ceiling == entropy
    assert estimate.params["masked"] is True and estimate.params["mask_ratio"] == 0.75
    assert estimate.params["tokenizer"] == "bpe" and estimate.params["layer"] == "last (final norm)"
    assert estimate.params["n"] == 256
    # Four training steps leave the decoder far from H(caption): the bound is negative and says so.
    assert estimate.value < 0 and any("worse than its marginal" in w for w in estimate.warnings)

    unmasked = caption_decoder_bound(
        objective, dataset, tokenizer, n=64, caption_entropy=entropy, masked=False
    )
    assert math.isfinite(unmasked.value) and unmasked.params["masked"] is False
    assert any("unmasked" in w for w in unmasked.warnings)


def test_caption_bound_is_seeded(tiny):
    objective, dataset, tokenizer = tiny
    entropy = dataset.caption_entropy()

    def run(seed):
        return caption_decoder_bound(objective, dataset, tokenizer, n=64, caption_entropy=entropy, seed=seed)

    assert run(3).value == run(3).value
    assert run(3).value != run(4).value  # the masks differ


def test_iterable_datasets_give_the_same_nlls(tiny):
    objective, dataset, tokenizer = tiny

    class Stream(IterableDataset):
        def __iter__(self):
            return (dataset[i] for i in range(len(dataset)))

    mapped = caption_cross_entropy(objective, dataset, tokenizer, n=40, batch_size=16)
    streamed = caption_cross_entropy(objective, Stream(), tokenizer, n=40, batch_size=16)
    assert streamed.shape == (40,)
    np.testing.assert_allclose(streamed, mapped, atol=1e-9)


def test_unknown_caption_entropy_and_objectives_without_decoders_raise(tiny, clip):
    objective, dataset, tokenizer = tiny
    with pytest.raises(ValueError, match=r"H\(caption\) unknown"):
        caption_decoder_bound(objective, dataset, tokenizer, n=8, caption_entropy=None)
    with pytest.raises(ValueError, match="lacks caption_decoder, mask_ratio"):
        caption_decoder_bound(clip, dataset, tokenizer, n=8, caption_entropy=1.0)
    with pytest.raises(ValueError, match="lacks caption_decoder"):
        caption_cross_entropy(clip, dataset, tokenizer, n=8)
    with pytest.raises(ValueError, match="lacks pixel_decoder, masked_pass, mask_ratio, norm_pix_loss"):
        pixel_decoder_bound(clip, dataset, n=8)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        caption_cross_entropy(objective, dataset, tokenizer, n=0)
    with pytest.raises(ValueError, match="at least 10 images"):
        pixel_decoder_bound(objective, dataset, n=8)


def patch_targets(images, patch_size, normalise):
    """The pixel loss's targets ``[B, L, p * p * C]``: per-patch normalised when ``normalise``."""
    patches = patchify(images, patch_size).double()
    if not normalise:
        return patches
    mean, std = patch_statistics(patches)
    return (patches - mean) / std


def with_prediction(objective, monkeypatch, predict):
    """Replace the pixel decoder's prediction of masked patches by ``predict(targets, call number)``, and of
    visible patches by a wild guess (target + 5), which no bound may read."""
    original = objective.masked_pass
    calls = []

    def patched(images, generator=None, noise=None):
        out = original(images, generator, noise)
        target = patch_targets(images, objective.encoder.patch_size, objective.norm_pix_loss)
        masked = out["mask"][..., None].bool()
        out["pred"] = torch.where(masked, predict(target, len(calls)), target + 5.0).float()
        calls.append(out["mask"])
        return out

    monkeypatch.setattr(objective, "masked_pass", patched)
    return calls


def independent_noise(seed=0, flat=False):
    """N(0, 1) predictions independent of everything; ``flat``: one value per channel of each patch."""
    generator = torch.Generator().manual_seed(seed)

    def predict(target, _):
        if not flat:
            return torch.randn(target.shape, generator=generator).double()
        batch, length, dim = target.shape
        colours = torch.randn(batch, length, 1, 3, generator=generator).double()
        return colours.expand(batch, length, dim // 3, 3).reshape(target.shape)

    return predict


class FlatPatches(Dataset):
    """16x16 images of flat 4x4 patches, each patch's colour i.i.d. N(0, I_3): the per-channel mean of any
    patch is exactly N(0, I_3), so I(g(A); g(A) + sigma Z) = 3/2 log(1 + 1 / sigma^2) is known."""

    def __init__(self, n):
        colours = torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        self.images = colours.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "caption": "", "labels": {}}


def gaussian_entropy(variance, dims=3):
    return 0.5 * dims * math.log(2 * math.pi * math.e * variance)


def test_pixel_bound_gaussian_nll_by_hand(tiny, monkeypatch):
    objective, dataset, _ = tiny
    # Per-channel means in image space (norm_pix_loss off). Predictions off by 0.5 per value on the first
    # 64 images (the fit half) and by 1.0 on the next 64 move every channel mean by as much; a dither of
    # 1e-6 x the spread leaves the fitted variance 0.25 (to ~1e-6), so each held-out patch's NLL is
    # 3 (1 / (2 * 0.25) + log(2 pi 0.25) / 2) whatever patch was picked.
    monkeypatch.setattr(objective, "norm_pix_loss", False)
    with_prediction(objective, monkeypatch, lambda target, call: target + (0.5 if call == 0 else 1.0))
    estimate = pixel_decoder_bound(objective, dataset, n=128, batch_size=64, dither=1e-6)
    by_hand = 3 * (1 / (2 * 0.25) + 0.5 * math.log(2 * math.pi * 0.25))
    assert estimate.params["variance"] == pytest.approx([0.25] * 3, rel=1e-5)
    assert estimate.params["cross_entropy"] == pytest.approx(by_hand, rel=1e-5)
    assert estimate.value == pytest.approx(estimate.params["entropy"] - by_hand, rel=1e-5)
    assert estimate.n == estimate.params["held_out_samples"] == 64 and estimate.params["fit_samples"] == 64
    assert estimate.kind == "lower_bound" and estimate.ceiling is None
    assert estimate.params["target"] == "patch_channel_mean" and estimate.params["dims"] == 3
    assert estimate.params["norm_pix_loss"] is False and estimate.params["dither"] == 1e-6
    assert any("data processing" in w for w in estimate.warnings)
    assert any("nats per masked patch" in w for w in estimate.warnings)


def test_pixel_bound_known_answer_on_gaussian_patch_colours(tiny, monkeypatch):
    objective, _, _ = tiny
    monkeypatch.setattr(objective, "norm_pix_loss", False)
    data = FlatPatches(1000)
    # Exact prediction: q matches the dither's law, so the bound is I(g(A); A') = 3/2 log(1 + 1/sigma^2)
    # with sigma in units of the true colour std 1 (~9.0 nats at dither 0.05). Tolerance: 4 standard
    # errors (KL's and the NLL's, ~0.07 at 500 held-out points) plus 0.1 nats for KL's bias in 3-D.
    with monkeypatch.context() as patch:
        with_prediction(objective, patch, lambda target, _: target)
        exact = pixel_decoder_bound(objective, data, n=1000)
    sigma = exact.params["dither_sigma"]
    assert sigma == pytest.approx(0.05, rel=0.1)  # 0.05 x the sample spread of N(0, 1) colours
    assert exact.value == pytest.approx(1.5 * math.log(1 + 1 / sigma**2), abs=4 * exact.stderr + 0.1)
    # Independent flat N(0, I) colours as predictions: the fitted variance is 2 + sigma^2 per channel, so
    # the bound is 3/2 log((1 + sigma^2) / (2 + sigma^2)) = -1.04 nats, below zero as it must be.
    with monkeypatch.context() as patch:
        with_prediction(objective, patch, independent_noise(flat=True))
        noise = pixel_decoder_bound(objective, data, n=1000)
    assert noise.value == pytest.approx(1.5 * math.log((1 + sigma**2) / (2 + sigma**2)), abs=4 * noise.stderr)


def test_pixel_bound_exact_and_independent_predictions_on_the_world(tiny, monkeypatch):
    objective, dataset, _ = tiny
    assert objective.norm_pix_loss  # every preset's default: the principal-directions target
    with monkeypatch.context() as patch:
        with_prediction(objective, patch, lambda target, _: target)
        exact = pixel_decoder_bound(objective, dataset, n=256)
    with monkeypatch.context() as patch:
        # Normalised patches have mean 0, so the principal directions are orthogonal to a constant offset.
        with_prediction(objective, patch, lambda target, _: target + 0.5)
        offset = pixel_decoder_bound(objective, dataset, n=256)
    with monkeypatch.context() as patch:
        with_prediction(objective, patch, independent_noise())
        noise = pixel_decoder_bound(objective, dataset, n=256)
    held_out = exact.params["held_out_samples"]
    assert exact.params["target"] == "patch_pca3" and exact.params["dims"] == 3 and held_out == 128
    # An exact prediction leaves only the dither in the residual: the cross-entropy is h(sigma Z) up to
    # the held-out mean of a chi-square(3) / 2 (standard error sqrt(1.5 / N); 4 of them allowed), so the
    # bound is the KL entropy of A' minus h(sigma Z), i.e. the target's own ceiling I(g(A); A').
    tolerance = 4 * math.sqrt(1.5 / held_out)
    noise_entropy = gaussian_entropy(exact.params["dither_sigma"] ** 2)
    assert exact.params["cross_entropy"] == pytest.approx(noise_entropy, abs=tolerance)
    assert exact.value == pytest.approx(exact.params["ceiling_estimate"], abs=tolerance)
    assert exact.value > 4.0  # large: the dither is 1/20 of the target's spread
    assert offset.value == pytest.approx(exact.value, abs=1e-5)  # predictions are float32
    # A prediction independent of the patch proves nothing: <= 0 up to 3 standard errors.
    assert noise.params["entropy"] == exact.params["entropy"]  # same images, masks, picks and dither
    assert noise.value <= 3 * noise.stderr


def test_pixel_bound_falls_as_the_prediction_worsens_and_is_seeded(tiny, monkeypatch):
    objective, dataset, _ = tiny
    plain = pixel_decoder_bound(objective, dataset, n=256, seed=1)
    assert math.isfinite(plain.value) and math.isfinite(plain.stderr)
    assert plain.value == pixel_decoder_bound(objective, dataset, n=256, seed=1).value
    assert plain.value != pixel_decoder_bound(objective, dataset, n=256, seed=2).value

    noise = torch.Generator().manual_seed(0)
    bounds = {}
    for name, scale in (("close", 0.1), ("noisy", 1.0)):
        with monkeypatch.context() as patch:
            with_prediction(
                objective, patch, lambda t, _, s=scale: t + s * torch.randn(t.shape, generator=noise).double()
            )
            bounds[name] = pixel_decoder_bound(objective, dataset, n=256, seed=1)
    # Same images, masks, picks and dither, so the same h(A') estimate: only the cross-entropy moves.
    assert len({b.params["entropy"] for b in (plain, *bounds.values())}) == 1
    assert bounds["close"].value > bounds["noisy"].value
    # Isotropic N(0, 0.01) errors stay N(0, 0.01) on the 3 orthonormal principal directions, so the
    # residual variance is 0.01 + sigma^2 per dimension and the cross-entropy that Gaussian's entropy, up
    # to 4 standard errors of the held-out mean (sqrt(1.5 / 128)) plus the fitted variance's error.
    sigma = bounds["close"].params["dither_sigma"]
    assert bounds["close"].params["cross_entropy"] == pytest.approx(
        gaussian_entropy(0.01 + sigma**2), abs=4 * math.sqrt(1.5 / 128) + 0.1
    )


def test_pixel_bound_runs_on_both_targets_untouched(tiny):
    objective, dataset, _ = tiny
    pca = pixel_decoder_bound(objective, dataset, n=256)
    assert pca.params["target"] == "patch_pca3" and pca.params["norm_pix_loss"] is True
    assert pca.params["target_space"] == "per-patch normalised pixels"
    assert 0 < pca.params["explained_variance"] <= 1 and len(pca.params["variance"]) == 3
    # sigma is relative to the spread of g(A) on the fit half, which the dither does not change.
    double = pixel_decoder_bound(objective, dataset, n=256, dither=0.1)
    assert double.params["dither_sigma"] == pytest.approx(2 * pca.params["dither_sigma"], rel=1e-12)
    raw = build_objective(
        replace(objective.config, norm_pix_loss=False)
    )  # untrained: only the path is tested
    mean = pixel_decoder_bound(raw, dataset, n=256)
    assert mean.params["target"] == "patch_channel_mean" and mean.params["norm_pix_loss"] is False
    assert mean.params["target_space"] == "image pixels" and mean.params["dims"] == 3
    for estimate in (pca, mean):
        assert math.isfinite(estimate.value) and math.isfinite(estimate.params["ceiling_estimate"])
    for dither in (0, -0.1, math.nan):
        with pytest.raises(ValueError, match="dither must be a positive number"):
            pixel_decoder_bound(objective, dataset, n=64, dither=dither)


def test_masks_are_drawn_for_the_images_there_are(tiny, monkeypatch):
    # n is "at most": asking for a million images of a 256-image split must not draw [10^6, L] mask noise.
    import infomug.measure.decoders as decoders
    import infomug.measure.pixel_decoder as pixel

    objective, dataset, tokenizer = tiny
    drawn, original = [], decoders.mask_draws

    def recording(objective, n, seed):
        drawn.append(n)
        return original(objective, n, seed)

    for module in (decoders, pixel):
        monkeypatch.setattr(module, "mask_draws", recording)
    nll = caption_cross_entropy(objective, dataset, tokenizer, n=10**6, batch_size=256)
    bound = pixel_decoder_bound(objective, dataset, n=10**6, batch_size=256)
    assert drawn == [256, 256] and nll.shape == (256,) and bound.n == 128


class PositionalPatches(Dataset):
    """16x16 images of flat 4x4 patches whose colour depends on the patch's position: patch j (of 16) is
    grey level (j - 7.5) / 2.5 on every channel plus N(0, 0.3^2) per channel. ``mean_image`` is the
    noiseless image, the same for every sample."""

    def __init__(self, n):
        levels = ((torch.arange(16, dtype=torch.float32) - 7.5) / 2.5).reshape(1, 1, 4, 4)
        self.mean_image = levels.expand(1, 3, 4, 4).repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)[0]
        colours = levels + 0.3 * torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(1))
        self.images = colours.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "caption": "", "labels": {}}


def test_pixel_bound_counts_what_the_position_alone_says(tiny, monkeypatch):
    objective, _, _ = tiny
    monkeypatch.setattr(objective, "norm_pix_loss", False)
    data = PositionalPatches(512)
    # A decoder that ignores the image and predicts each position's mean colour: the bound is then
    # I(J; A') > 0, information about the patch that T does not carry. It must say so.
    mean = patchify(data.mean_image[None], objective.encoder.patch_size).double()
    with_prediction(objective, monkeypatch, lambda target, _: mean.expand_as(target))
    estimate = pixel_decoder_bound(objective, data, n=512)
    assert estimate.value > 1.0 and estimate.value > 4 * estimate.stderr
    assert any("what the position alone says of the patch" in w for w in estimate.warnings)


def test_the_decoder_bounds_read_each_good_sample_once_and_no_skipped_marker():
    from infomug.data.bad_samples import Skipped
    from infomug.measure.decoders import sample_batches

    good = [{"image": i, "caption": f"c{i}", "labels": {}} for i in range(5)]
    data = [good[0], Skipped(good[2]), good[2], Skipped(good[4]), good[4]]
    batches = list(sample_batches(data, 5, 2))
    assert [[s["caption"] for s in batch] for batch in batches] == [["c0"], ["c2"], ["c4"]]
