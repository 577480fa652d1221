import math

import pytest
import torch
from torch import nn

from infomug.models import MAEDecoder, MaskedViTEncoder


def xavier_std(weight: torch.Tensor) -> float:
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    return math.sqrt(2.0 / (fan_in + fan_out))


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    encoder = MaskedViTEncoder(img_size=32, patch_size=4, embed_dim=192, depth=2, num_heads=3)
    decoder = MAEDecoder((8, 8), 4, 3, encoder_dim=192, width=128, depth=1, num_heads=4)
    return encoder, decoder


def test_linear_layers_follow_mae_xavier_init_with_zero_bias(parts):
    # timm's default (truncated normal, std 0.02) would give std 0.02 where xavier gives 0.05 for qkv.
    for module in parts:
        for layer in (m for m in module.modules() if isinstance(m, nn.Linear)):
            expected = xavier_std(layer.weight)
            assert layer.weight.std().item() == pytest.approx(expected, rel=0.1)
            assert layer.weight.abs().max().item() <= math.sqrt(3) * expected + 1e-6
            assert torch.count_nonzero(layer.bias) == 0


def test_norms_patch_embedding_and_tokens_follow_mae(parts):
    encoder, decoder = parts
    for module in parts:
        for norm in (m for m in module.modules() if isinstance(m, nn.LayerNorm)):
            assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
            assert norm.eps == 1e-6
    kernel = encoder.vit.patch_embed.proj.weight
    assert kernel.std().item() == pytest.approx(xavier_std(kernel), rel=0.1)
    assert encoder.vit.cls_token.std().item() == pytest.approx(0.02, rel=0.3)
    assert decoder.mask_token.std().item() == pytest.approx(0.02, rel=0.3)
