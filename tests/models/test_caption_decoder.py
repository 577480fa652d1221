"""Caption decoder: no peeking at future tokens, padding excluded by length, loss against a loop, ties."""

import pytest
import torch
import torch.nn.functional as F

from infomug.models import CaptionDecoder


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return CaptionDecoder(
        vocab_size=50,
        context_length=12,
        width=32,
        unimodal_layers=1,
        multimodal_layers=2,
        num_heads=4,
        image_dim=24,
    )


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 50, (3, 10), generator=generator)
    lengths = torch.tensor([10, 4, 2])
    latent = torch.randn(3, 5, 24, generator=generator)
    return tokens, lengths, latent


def test_logits_shape_and_tied_projection(decoder):
    tokens, _, latent = batch()
    logits = decoder.logits(tokens, latent)
    assert logits.shape == (3, 10, 50) and torch.isfinite(logits).all()
    torch.testing.assert_close(
        logits, decoder.hidden_states(tokens, latent) @ decoder.token_embedding.weight.T
    )
    vocab_shaped = [n for n, p in decoder.named_parameters() if p.shape == (50, 32)]
    assert vocab_shaped == ["token_embedding.weight"]  # no separate output matrix: it is tied


@pytest.mark.parametrize("t", [0, 3, 8])
def test_changing_token_t_plus_1_leaves_earlier_logits_unchanged(decoder, t):
    tokens, _, latent = batch()
    changed = tokens.clone()
    changed[:, t + 1] = (changed[:, t + 1] + 7) % 50
    before, after = decoder.logits(tokens, latent), decoder.logits(changed, latent)
    torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, t + 1], after[:, t + 1])


def test_the_image_reaches_the_logits(decoder):
    tokens, _, latent = batch()
    assert not torch.allclose(decoder.logits(tokens, latent), decoder.logits(tokens, latent + 1.0))


def test_loss_matches_a_per_token_loop(decoder):
    tokens, lengths, latent = batch()
    loss = decoder.loss(tokens, lengths, latent)
    terms = []
    for b in range(3):
        n = int(lengths[b])
        logits = decoder.logits(tokens[b : b + 1, : n - 1], latent[b : b + 1])[0]
        terms += [F.cross_entropy(logits[t], tokens[b, t + 1]) for t in range(n - 1)]
    assert len(terms) == 9 + 3 + 1
    torch.testing.assert_close(loss, torch.stack(terms).mean(), rtol=1e-5, atol=1e-6)


def test_pad_tokens_do_not_change_the_loss_even_when_pad_is_a_real_id(decoder):
    tokens, lengths, latent = batch()
    padded = tokens.clone()
    for b, n in enumerate(lengths.tolist()):
        padded[b, n:] = 0  # CLIP's pad id 0 is also the token "!": only lengths can say where padding starts
    other = padded.clone()
    for b, n in enumerate(lengths.tolist()):
        other[b, n:] = torch.arange(n, 10) % 50
    assert torch.equal(decoder.loss(padded, lengths, latent), decoder.loss(other, lengths, latent))
    shorter = lengths.clamp(max=3)
    assert not torch.equal(decoder.loss(padded, lengths, latent), decoder.loss(padded, shorter, latent))


def test_bad_inputs_are_named(decoder):
    tokens, lengths, latent = batch()
    with pytest.raises(ValueError, match="context"):
        decoder.loss(torch.zeros(3, 13, dtype=torch.long), lengths, latent)
    with pytest.raises(ValueError, match="image_latent"):
        decoder.logits(tokens, latent[:2])
    with pytest.raises(ValueError, match="multimodal_layers"):
        CaptionDecoder(50, 12, 32, 1, 0, 4, 32)


def test_a_tokenizer_larger_than_the_vocabulary_is_named_not_an_index_error(decoder):
    tokens, lengths, latent = batch()
    tokens[0, 2] = 50  # e.g. CLIP's BPE ids fed to a decoder sized for a 512-id tokenizer
    with pytest.raises(ValueError, match="vocabulary of 50"):
        decoder.loss(tokens, lengths, latent)


def test_int32_tokens_and_lengths_give_the_int64_loss(decoder):
    # check_tokens accepts int32 batches, so the loss must too (cross_entropy wants int64 targets).
    tokens, lengths, latent = batch()
    loss = decoder.loss(tokens.int(), lengths.int(), latent)
    assert torch.equal(loss, decoder.loss(tokens, lengths, latent))
