"""Presets: every name resolves to a valid config; the paper and CPU presets have the stated sizes."""

import pytest

from infomug.models import ModelConfig, get_config, list_presets


def test_every_objective_has_each_size():
    names = set(list_presets())
    for objective in ("mae", "mug", "clip", "simclr"):
        for base in ("vit_tiny_patch4_32", "vit_tiny_patch8_64", "vit_base_patch16_224"):
            assert f"{objective}_{base}" in names
            assert get_config(f"{objective}_{base}").objective == objective


def test_paper_and_cpu_sizes():
    base = get_config("mug_vit_base_patch16_224")
    assert (base.img_size, base.patch_size, base.embed_dim, base.depth, base.num_heads) == (
        224,
        16,
        768,
        12,
        12,
    )
    assert (base.decoder_width, base.decoder_depth, base.vocab_size, base.context_length) == (
        512,
        8,
        49408,
        77,
    )
    assert (base.pixel_loss_weight, base.caption_loss_weight, base.mask_ratio) == (1.0, 0.1, 0.75)
    tiny = get_config("mug_vit_tiny_patch4_32")
    assert (tiny.img_size, tiny.patch_size, tiny.embed_dim, tiny.depth, tiny.num_heads) == (32, 4, 192, 6, 3)
    assert (tiny.caption_unimodal_layers, tiny.caption_multimodal_layers, tiny.context_length) == (1, 1, 32)


def test_overrides_and_other_inputs():
    assert get_config("mae_vit_tiny_patch4_32", depth=2).depth == 2
    assert get_config(ModelConfig(depth=3)).depth == 3
    assert get_config({"depth": 4}, num_heads=4, embed_dim=64).embed_dim == 64
    with pytest.raises(ValueError, match="unknown model preset"):
        get_config("mug_vit_huge")
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        get_config("mug_vit_tiny_patch4_32", bogus=1)
