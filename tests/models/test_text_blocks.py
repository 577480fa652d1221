"""Token-batch validation shared by the caption decoder and the text encoder."""

import pytest
import torch

from infomug.models.text_blocks import CausalSelfAttention, check_tokens


@pytest.mark.parametrize(
    "tokens, lengths, message",
    [
        (torch.zeros(2, 5, dtype=torch.long), torch.tensor([2, 6]), "length"),
        (torch.zeros(2, 5, dtype=torch.long), torch.tensor([1, 3]), "length"),
        (torch.zeros(2, 9, dtype=torch.long), torch.tensor([2, 3]), "context length"),
        (torch.zeros(2, 5), torch.tensor([2, 3]), "integer"),
        (torch.zeros(2, 5, dtype=torch.long), torch.tensor([2, 3, 4]), "does not match"),
    ],
)
def test_check_tokens_names_the_problem(tokens, lengths, message):
    with pytest.raises(ValueError, match=message):
        check_tokens(tokens, lengths, context_length=8)


def test_causal_attention_matches_an_explicit_mask():
    torch.manual_seed(0)
    attention = CausalSelfAttention(8, 2)
    x = torch.randn(2, 5, 8)
    q, k, v = attention.qkv(x).reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / 2.0
    scores = scores.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    expected = attention.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(attention(x), expected)


@pytest.mark.parametrize("bad_id", [-1, 8])
def test_check_tokens_names_ids_outside_the_vocabulary(bad_id):
    tokens = torch.zeros(2, 5, dtype=torch.long)
    tokens[1, 4] = bad_id  # padding too goes through the embedding, so it must be in range as well
    with pytest.raises(ValueError, match="vocabulary"):
        check_tokens(tokens, torch.tensor([2, 3]), context_length=8, vocab_size=8)
    check_tokens(tokens.clamp(0, 7), torch.tensor([2, 3]), context_length=8, vocab_size=8)


def test_check_tokens_names_non_integer_lengths():
    with pytest.raises(ValueError, match="lengths must be integer"):
        check_tokens(torch.zeros(2, 5, dtype=torch.long), torch.tensor([2.0, 3.0]), context_length=8)


def test_check_tokens_names_lengths_left_on_another_device():
    # The "meta" device stands in for a GPU: tokens moved to it, lengths forgotten on the CPU.
    with pytest.raises(ValueError, match="lengths are on cpu but tokens on meta"):
        check_tokens(torch.zeros(2, 5, dtype=torch.long, device="meta"), torch.tensor([2, 3]), 8)
