"""The caption decoder: its loss against a naive reference, its bound against a closed-form entropy,
zero usable information under independence, invariance under invertible maps, honest tokenization."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infomug.measure.usable.caption import (
    CaptionDecoder,
    bucketed_caption_losses,
    caption_baseline,
    caption_information,
    caption_losses,
    tokenize_captions,
)
from infomug.measure.usable.fitting import DecoderSettings, seeded
from infomug.measure.usable.splits import Splits

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("disk", "square", "star", "cross")
# H(caption) of "a {colour} {shape}" with independent uniform factors: the caption is a bijection of them.
ENTROPY = math.log(len(COLOURS) * len(SHAPES))
N = 600
# A tiny budget: 360 train captions of 3 words; the one-hot decoder reaches CE ~ 0.01 nats by epoch 12.
SETTINGS = DecoderSettings(width=32, max_epochs=12, patience=3, batch_size=64, lr=1e-2)


def small_world(n: int = N, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Captions "a {colour} {shape}" and ``[n, 2, 4]`` features: one token per factor, one-hot plus noise.

    The noise (std 0.1) keeps the features full rank, so the canonical basis drops no direction and a
    rotation of the inputs cannot reach a direction the original lacked.
    """
    rng = np.random.default_rng(seed)
    colour, shape = rng.integers(len(COLOURS), size=n), rng.integers(len(SHAPES), size=n)
    captions = [f"a {COLOURS[c]} {SHAPES[s]}" for c, s in zip(colour, shape, strict=True)]
    x = np.zeros((n, 2, 4), dtype=np.float32)
    x[np.arange(n), 0, colour] = 1.0
    x[np.arange(n), 1, shape] = 1.0
    x += 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    return captions, x


@pytest.fixture(scope="module")
def world() -> tuple[list[str], np.ndarray, Splits, np.ndarray]:
    captions, x = small_world()
    splits = Splits.make(N, test_fraction=0.3, val_fraction=0.1, seed=0)
    baseline = caption_baseline(captions, splits, settings=SETTINGS, progress=False)
    return captions, x, splits, baseline


@pytest.fixture(scope="module")
def informed(world):
    captions, x, splits, baseline = world
    return caption_information(
        x, captions, splits, caption_entropy=ENTROPY, baseline=baseline, settings=SETTINGS, progress=False
    )


def test_barber_agakov_bound_approaches_the_exact_entropy(informed) -> None:
    # The features determine the caption, so H(caption | T) = 0 and the bound H - CE can reach H; CE >= 0
    # makes it at most H. 0.15 nats is ~5% of H = 2.77 and ~20 of its stderrs, what 12 epochs leave.
    estimate = informed.estimate
    assert estimate.kind == "lower_bound"
    assert estimate.method == "caption_decoder"
    assert ENTROPY - 0.15 < estimate.value <= ENTROPY + 1e-9
    assert estimate.params["cross_entropy"] == pytest.approx(ENTROPY - estimate.value)
    assert estimate.n == informed.test_rows.size == 180
    assert {"layers", "width", "heads", "tokenizer", "vocab_size", "context_length", "basis_dim"} <= set(
        estimate.params
    )
    assert estimate.params["tokenizer"] == "bpe"


def test_baseline_models_the_caption_law(world) -> None:
    # Without features the best the family can do is the entropy itself: 16 equiprobable captions. Over
    # 180 test captions the empirical CE of even the true law has stderr ~0.05 nats (a 4x4 grid's
    # counts), so 0.25 nats leaves room for that and for a 12-epoch fit.
    _, _, _, baseline = world
    assert baseline.shape == (180,)
    assert abs(baseline.mean() - ENTROPY) < 0.25


def test_informative_features_beat_independent_ones(world, informed) -> None:
    captions, x, splits, baseline = world
    noise = np.random.default_rng(1).standard_normal(x.shape)
    independent = caption_information(
        noise, captions, splits, baseline=baseline, settings=SETTINGS, progress=False
    ).estimate
    assert independent.kind == "point"
    assert any("relative to the caption decoder family" in w for w in independent.warnings)
    # Usable information of independent features is 0 in population; a decoder can only overfit them.
    assert independent.value < 3 * independent.stderr
    assert independent.value == pytest.approx(independent.params["usable_information"])
    assert informed.estimate.params["usable_information"] > independent.value + 2.0


def test_invariant_to_rescaling_and_rotation(world, informed) -> None:
    captions, x, splits, baseline = world
    rng = np.random.default_rng(2)
    scales = np.exp(rng.uniform(-3.0, 3.0, size=x.shape[-1]))
    rotation, _ = np.linalg.qr(rng.standard_normal((x.shape[-1], x.shape[-1])))
    reference = informed.estimate
    for mapped in (x * scales, x @ rotation):
        estimate = caption_information(
            mapped,
            captions,
            splits,
            caption_entropy=ENTROPY,
            baseline=baseline,
            settings=SETTINGS,
            progress=False,
        ).estimate
        # The canonical basis gives the same coordinates up to float error, so only that float error
        # (through a seeded fit) separates the two: far below one stderr.
        assert abs(estimate.value - reference.value) < reference.stderr


def test_per_caption_loss_matches_a_naive_reference() -> None:
    vocab, context = 11, 8
    with seeded(0):
        decoder = CaptionDecoder(vocab, context, width=16, heads=2, feature_dim=5, memory_tokens=3).eval()
    captions = [[1, 4, 7, 2], [1, 3, 2], [1, 9, 9, 9, 5, 6, 2]]  # bos = 1, eos = 2, then padding 0
    tokens = torch.zeros(len(captions), context, dtype=torch.long)
    for row, ids in enumerate(captions):
        tokens[row, : len(ids)] = torch.tensor(ids)
    lengths = torch.tensor([len(ids) for ids in captions])
    features = torch.randn(len(captions), 3, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        losses = caption_losses(decoder, tokens, lengths, features)
        bucketed = bucketed_caption_losses(decoder, tokens, lengths, features, micro_batch=1)
        for row, ids in enumerate(captions):
            # One caption alone, no padding, one prefix at a time: the sum of -log p(next | prefix).
            naive = 0.0
            for t in range(1, len(ids)):
                logits = decoder(torch.tensor([ids[:t]]), features[row : row + 1])[0, -1]
                naive -= F.log_softmax(logits, dim=-1)[ids[t]].item()
            assert losses[row].item() == pytest.approx(naive, rel=1e-5, abs=1e-5)  # float32 sums
    torch.testing.assert_close(bucketed, losses)


def test_baseline_decoder_reads_no_features() -> None:
    with seeded(0):
        decoder = CaptionDecoder(7, 6, width=8, heads=2)
    tokens = torch.tensor([[1, 3, 4, 2, 0, 0], [1, 5, 2, 0, 0, 0]])
    logits = decoder(tokens)
    assert logits.shape == (2, 6, 7)
    assert torch.isfinite(logits).all()


def test_tokenization_is_lossless_and_falls_back_to_bytes() -> None:
    captions, _ = small_world(40)
    splits = Splits.make(40, test_fraction=0.3, val_fraction=0.1, seed=0)
    coding = tokenize_captions(captions, splits)
    assert coding.tokenizer == "bpe"
    assert coding.fits.all()
    # The BPE lowercases, so "A" would not come back: the tokenization must switch to bytes.
    shouting = [caption.upper() if row == 3 else caption for row, caption in enumerate(captions)]
    coding = tokenize_captions(shouting, splits)
    assert coding.tokenizer == "byte"
    assert coding.vocab_size == 259
    assert bytes(coding.tokens[3, 1 : int(coding.lengths[3]) - 1].tolist()).decode() == shouting[3]


def test_long_test_captions_are_excluded_and_counted(world, caplog) -> None:
    captions, x, splits, _ = world
    row = int(splits.test[0])
    longer = list(captions)
    longer[row] = " ".join([captions[row]] * 20)  # far beyond the longest train caption plus the margin
    settings = DecoderSettings(width=16, max_epochs=1, batch_size=128)
    with caplog.at_level(logging.WARNING, logger="infomug.measure.usable.caption"):
        baseline = caption_baseline(longer, splits, settings=settings, progress=False)
    assert baseline.shape == (splits.test.size - 1,)
    assert "excluded, not truncated" in caplog.text
    result = caption_information(x, longer, splits, baseline=baseline, settings=settings, progress=False)
    assert row not in result.test_rows
    assert result.estimate.params["n_test_excluded"] == 1
    assert any("1 of the 180 test captions" in w and "excluded" in w for w in result.estimate.warnings)


def test_flat_features_and_torch_inputs_are_read(world) -> None:
    captions, x, splits, _ = world
    settings = DecoderSettings(width=16, max_epochs=1, batch_size=128)
    result = caption_information(torch.from_numpy(x.reshape(N, -1)), captions, splits, settings=settings)
    assert result.estimate.params["memory_tokens"] == 1
    assert result.estimate.params["basis_dim"] == 8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c, x: (c[:-1], x), "captions for"),
        (lambda c, x: ([], x[:0]), "empty"),
        (lambda c, x: ("a red disk", x), "single string"),
        (lambda c, x: ([*c[:-1], 3], x), "not a string"),
        (lambda c, x: (c, np.where(np.arange(N)[:, None, None] == 5, np.nan, x)), "NaN"),
        (lambda c, x: (c, x[..., None]), r"\[N, M, D\]"),
        (lambda c, x: (c, x.astype(str)), "numeric"),
    ],
)
def test_bad_inputs_raise(world, change, message) -> None:
    captions, x, splits, _ = world
    bad_captions, bad_x = change(captions, x)
    with pytest.raises(ValueError, match=message):
        caption_information(bad_x, bad_captions, splits, settings=SETTINGS)


def test_bad_baseline_entropy_and_splits_raise(world) -> None:
    captions, x, splits, baseline = world
    with pytest.raises(ValueError, match="baseline must be"):
        caption_information(x, captions, splits, baseline=baseline[:-1], settings=SETTINGS)
    with pytest.raises(ValueError, match="caption_entropy"):
        caption_information(x, captions, splits, caption_entropy=-1.0, baseline=baseline)
    small = Splits.make(N + 50, test_fraction=0.3, val_fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="outside"):
        caption_information(x, captions, small, baseline=baseline)
    with pytest.raises(ValueError, match="empty"):
        caption_baseline([], splits)
