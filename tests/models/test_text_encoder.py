"""Text encoder: feature read at the eos position, blind to padding."""

import torch

from infomug.models import TextEncoder


def test_feature_is_the_final_norm_state_at_eos_and_ignores_padding():
    torch.manual_seed(0)
    encoder = TextEncoder(vocab_size=40, context_length=8, width=16, depth=2, num_heads=2)
    tokens = torch.randint(0, 40, (3, 8))
    lengths = torch.tensor([8, 5, 2])
    features = encoder(tokens, lengths)
    assert features.shape == (3, 16) and torch.isfinite(features).all()
    for b, n in enumerate(lengths.tolist()):
        alone = encoder(tokens[b : b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(features[b : b + 1], alone, rtol=1e-5, atol=1e-6)
    repadded = tokens.clone()
    repadded[1, 5:] = 0
    repadded[2, 2:] = 39
    torch.testing.assert_close(encoder(repadded, lengths), features, rtol=0, atol=1e-6)
    changed = tokens.clone()
    changed[1, 3] = (changed[1, 3] + 1) % 40
    assert not torch.allclose(encoder(changed, lengths)[1], features[1])


def test_ids_outside_the_vocabulary_are_named():
    import pytest

    encoder = TextEncoder(vocab_size=40, context_length=8, width=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="vocabulary of 40"):
        encoder(torch.full((2, 8), 40), torch.tensor([8, 3]))


def test_int32_tokens_and_lengths_give_the_same_features():
    torch.manual_seed(0)
    encoder = TextEncoder(vocab_size=40, context_length=8, width=16, depth=1, num_heads=2)
    tokens, lengths = torch.randint(0, 40, (3, 8)), torch.tensor([8, 5, 2])
    assert torch.equal(encoder(tokens.int(), lengths.int()), encoder(tokens, lengths))
