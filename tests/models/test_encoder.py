"""Masked ViT encoder: masking counts and inverse, reproducibility, the timm feature API, fixed positions."""

import pytest
import torch

from infomug.models import MaskedViTEncoder, random_masking
from infomug.models.pos_embed import sincos_2d


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)


@pytest.mark.parametrize("ratio, kept", [(0.75, 4), (0.5, 8), (0.6, 6), (0.0, 16), (0.9, 1)])
def test_masking_keeps_exactly_the_asked_number_and_ids_restore_inverts(ratio, kept):
    x = torch.randn(5, 16, 8)
    visible, mask, ids_restore = random_masking(x, ratio, torch.Generator().manual_seed(1))
    assert visible.shape == (5, kept, 8)
    assert torch.equal(mask.sum(dim=1), torch.full((5,), 16.0 - kept))
    # Rebuild the full sequence from the visible tokens (zeros elsewhere) and undo the shuffle.
    shuffled = torch.cat([visible, torch.zeros(5, 16 - kept, 8)], dim=1)
    restored = torch.gather(shuffled, 1, ids_restore[:, :, None].expand(-1, -1, 8))
    keep = (1 - mask)[:, :, None]
    assert torch.equal(restored, x * keep)
    # Each kept token appears exactly once: the visible rows are exactly the unmasked rows of x.
    assert torch.equal(x[mask == 0].reshape(5, kept, 8).sort(dim=1).values, visible.sort(dim=1).values)


def test_masking_differs_per_sample_and_repeats_with_the_generator():
    x = torch.randn(8, 16, 4)
    _, mask_a, _ = random_masking(x, 0.75, torch.Generator().manual_seed(3))
    _, mask_b, _ = random_masking(x, 0.75, torch.Generator().manual_seed(3))
    _, mask_c, _ = random_masking(x, 0.75, torch.Generator().manual_seed(4))
    assert torch.equal(mask_a, mask_b)
    assert not torch.equal(mask_a, mask_c)
    assert len({tuple(row.tolist()) for row in mask_a}) > 1


@pytest.mark.parametrize("ratio", [1.0, -0.1, 0.99])
def test_masking_rejects_ratios_that_keep_nothing(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(torch.randn(2, 16, 4), ratio)


def test_forward_masked_shapes_and_reproducibility(encoder):
    images = torch.randn(3, 3, 16, 16)
    latent, mask, ids = encoder.forward_masked(images, 0.75, torch.Generator().manual_seed(0))
    assert latent.shape == (3, 1 + 4, 32) and mask.shape == (3, 16) and ids.shape == (3, 16)
    assert torch.isfinite(latent).all()
    again, _, _ = encoder.forward_masked(images, 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(latent, again)


def test_unmasked_forward_masked_is_forward_features_up_to_the_shuffle(encoder):
    images = torch.randn(2, 3, 16, 16)
    latent, mask, ids_restore = encoder.forward_masked(images, 0.0, torch.Generator().manual_seed(0))
    assert mask.sum() == 0
    patches = torch.gather(latent[:, 1:], 1, ids_restore[:, :, None].expand(-1, -1, 32))
    features = encoder.forward_features(images)
    assert features.shape == (2, 17, 32)
    torch.testing.assert_close(torch.cat([latent[:, :1], patches], dim=1), features, atol=1e-5, rtol=1e-5)


def test_forward_intermediates_match_the_blocks(encoder):
    images = torch.randn(2, 3, 16, 16)
    everything = encoder.forward_intermediates(images)
    assert len(everything) == 2 and all(t.shape == (2, 17, 32) for t in everything)
    last_normed = encoder.forward_intermediates(images, indices=[1], norm=True)
    torch.testing.assert_close(last_normed[0], encoder.forward_features(images))
    first = encoder.forward_intermediates(images, indices=[0])[0]
    vit = encoder.vit
    manual = vit.blocks[0](vit._pos_embed(vit.patch_embed(images)))
    torch.testing.assert_close(first, manual)


def test_positions_are_fixed_sincos_with_a_zero_class_position(encoder):
    pos = encoder.vit.pos_embed
    assert not pos.requires_grad
    torch.testing.assert_close(pos[0], sincos_2d(32, (4, 4)))
    assert torch.equal(pos[0, 0], torch.zeros(32))


def test_pooling_and_bad_input(encoder):
    images = torch.randn(2, 3, 16, 16)
    tokens = encoder.forward_features(images)
    assert torch.equal(encoder.pooled(images, "token"), tokens[:, 0])
    torch.testing.assert_close(encoder.pooled(images, "avg"), tokens[:, 1:].mean(dim=1))
    with pytest.raises(ValueError, match="pool"):
        encoder.pooled(images, "max")
    with pytest.raises(ValueError, match="expected images"):
        encoder.forward_masked(torch.randn(2, 3, 32, 32), 0.75)
    with pytest.raises(ValueError, match="does not divide"):
        MaskedViTEncoder(img_size=18, patch_size=4, embed_dim=32, depth=1, num_heads=2)


def test_forward_masked_honours_timm_gradient_checkpointing(encoder):
    # timm's switch must reach the training path too, or enabling it at ViT-B scale silently saves nothing.
    calls = []
    encoder.vit.blocks[0].attn.qkv.register_forward_hook(lambda *_: calls.append(1))
    images = torch.randn(2, 3, 16, 16)
    plain, _, _ = encoder.forward_masked(images, 0.75, torch.Generator().manual_seed(0))
    plain.sum().backward()
    assert len(calls) == 1
    encoder.vit.set_grad_checkpointing(True)
    checkpointed, _, _ = encoder.forward_masked(images, 0.75, torch.Generator().manual_seed(0))
    checkpointed.sum().backward()
    assert len(calls) == 3  # forward, then re-run during backward
    torch.testing.assert_close(checkpointed, plain, rtol=0, atol=0)


def test_given_noise_fixes_the_mask_keeping_the_lowest_noise_patches():
    x = torch.randn(3, 16, 4)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(5))
    _, mask, ids_restore = random_masking(x, 0.75, noise=noise)
    # MAE keeps the patches of lowest noise: here the 4 smallest of each row.
    kept = torch.zeros(3, 16)
    kept.scatter_(1, noise.argsort(dim=1)[:, :4], 1.0)
    assert torch.equal(mask, 1 - kept)
    # The mask ignores any generator once noise is given.
    _, again, _ = random_masking(x, 0.75, torch.Generator().manual_seed(99), noise=noise)
    assert torch.equal(again, mask)


def test_same_noise_gives_the_same_mask_as_a_generator_that_drew_it(encoder):
    x = torch.randn(4, 16, 8)
    noise = torch.rand(4, 16, generator=torch.Generator().manual_seed(7))
    drawn = random_masking(x, 0.5, torch.Generator().manual_seed(7))
    given = random_masking(x, 0.5, noise=noise)
    for a, b in zip(drawn, given, strict=True):
        assert torch.equal(a, b)
    images = torch.randn(4, 3, 16, 16)
    latent_drawn, mask_drawn, _ = encoder.forward_masked(images, 0.5, torch.Generator().manual_seed(7))
    latent_given, mask_given, _ = encoder.forward_masked(images, 0.5, noise=noise)
    assert torch.equal(mask_drawn, mask_given)
    assert torch.equal(latent_drawn, latent_given)


@pytest.mark.parametrize("shape", [(3, 16), (4, 15), (4, 16, 1), (64,)])
def test_noise_of_the_wrong_shape_is_refused(encoder, shape):
    with pytest.raises(ValueError, match=r"mask noise must be \[B, L\] = \[4, 16\]"):
        random_masking(torch.randn(4, 16, 8), 0.75, noise=torch.rand(shape))
    with pytest.raises(ValueError, match="mask noise"):
        encoder.forward_masked(torch.randn(4, 3, 16, 16), 0.75, noise=torch.rand(shape))
