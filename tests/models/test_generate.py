"""Caption generation: strings out, greedy deterministic, top-k reproducible with a generator."""

import pytest
import torch

from infomug.data.tokenizers import ByteTokenizer
from infomug.models import generate_captions
from infomug.objectives import MUGObjective, create_model


@pytest.fixture
def mug(tiny_config):
    torch.manual_seed(0)
    return MUGObjective(tiny_config)


def test_greedy_returns_strings_and_is_deterministic(mug):
    images = torch.randn(3, 3, 16, 16)
    first = generate_captions(mug, None, images, ByteTokenizer(), max_len=8)
    assert len(first) == 3 and all(isinstance(c, str) for c in first)
    assert generate_captions(mug, mug.encoder, images, ByteTokenizer(), max_len=8) == first
    assert generate_captions(mug.caption_decoder, mug.encoder, images, ByteTokenizer(), max_len=8) == first
    assert mug.training


def test_greedy_follows_the_argmax_of_the_unmasked_latent(mug):
    images = torch.randn(1, 3, 16, 16)
    tokenizer = ByteTokenizer()
    latent = mug.encoder.forward_features(images)
    tokens = torch.tensor([[tokenizer.bos_id]])
    for _ in range(4):
        next_id = mug.caption_decoder.logits(tokens, latent)[:, -1].argmax(-1)
        tokens = torch.cat([tokens, next_id[:, None]], dim=1)
    ids = tokens[0, 1:].tolist()
    ids = ids[: ids.index(tokenizer.eos_id)] if tokenizer.eos_id in ids else ids
    assert generate_captions(mug, None, images, tokenizer, max_len=4) == [tokenizer.decode(ids)]


def test_top_k_repeats_with_the_generator(mug):
    images = torch.randn(4, 3, 16, 16)
    kwargs = dict(max_len=10, strategy="top_k", k=20, temperature=2.0)
    a = generate_captions(
        mug, None, images, ByteTokenizer(), generator=torch.Generator().manual_seed(1), **kwargs
    )
    b = generate_captions(
        mug, None, images, ByteTokenizer(), generator=torch.Generator().manual_seed(1), **kwargs
    )
    assert a == b and all(isinstance(c, str) for c in a)


def test_bad_requests_are_named(mug, tiny_config):
    images = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="max_len"):
        generate_captions(mug, None, images, ByteTokenizer(), max_len=16)
    with pytest.raises(ValueError, match="strategy"):
        generate_captions(mug, None, images, ByteTokenizer(), strategy="beam")
    with pytest.raises(ValueError, match="no caption decoder"):
        generate_captions(create_model(tiny_config, objective="mae"), None, images, ByteTokenizer())
    small = MUGObjective(tiny_config.replace(vocab_size=100))
    with pytest.raises(ValueError, match="tokenizer has 259 ids"):
        generate_captions(small, None, images, ByteTokenizer())
