"""MAE pixel decoder: patchify round trip, output shape, loss only on masked patches, norm_pix targets."""

import pytest
import torch

from infomug.models import MAEDecoder, MaskedViTEncoder, masked_patch_loss, patchify, unpatchify


def test_patchify_round_trip_and_layout():
    images = torch.randn(2, 3, 8, 12)
    patches = patchify(images, 4)
    assert patches.shape == (2, 6, 48)
    # Patch (row 1, col 2) is the 6th in row-major order; within it channels vary fastest.
    block = images[0, :, 4:8, 8:12]
    assert torch.equal(patches[0, 5], block.permute(1, 2, 0).reshape(-1))
    assert torch.equal(unpatchify(patches, 4, (2, 3)), images)
    with pytest.raises(ValueError, match="cannot cut"):
        patchify(torch.randn(1, 3, 10, 8), 4)


def test_decoder_predicts_every_patch():
    torch.manual_seed(0)
    encoder = MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    decoder = MAEDecoder(encoder.grid_size, 4, 3, encoder_dim=32, width=24, depth=1, num_heads=2)
    latent, mask, ids = encoder.forward_masked(torch.randn(3, 3, 16, 16), 0.75)
    pred = decoder(latent, ids)
    assert pred.shape == (3, 16, 48) and torch.isfinite(pred).all()
    with pytest.raises(ValueError, match="do not match"):
        decoder(latent, ids[:, :8])


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_loss_counts_masked_patches_only_and_matches_a_loop(norm_pix_loss):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 8, 8, generator=generator)
    pred = torch.randn(2, 4, 48, generator=generator)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    loss = masked_patch_loss(images, pred, mask, 4, norm_pix_loss)
    total = 0.0
    for b in range(2):
        for p in range(4):
            if mask[b, p]:
                row, col = divmod(p, 2)
                target = (
                    images[b, :, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4].permute(1, 2, 0).reshape(-1)
                )
                if norm_pix_loss:
                    target = (target - target.mean()) / (target.var() + 1e-6) ** 0.5
                total += float(((pred[b, p] - target) ** 2).mean())
    assert float(loss) == pytest.approx(total / 4, rel=1e-6)
    changed = pred.clone()
    changed[mask == 0] += 5.0
    assert torch.equal(masked_patch_loss(images, changed, mask, 4, norm_pix_loss), loss)


def test_low_precision_inputs_give_a_float32_loss_with_an_exact_patch_count():
    # 3 x 147 = 441 masked patches is not a bfloat16 number (8 significant bits): a loss reduced in
    # bfloat16 would divide by 440 or 442 and round the result to 3 significant digits.
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, 56, 56, generator=generator).bfloat16()
    pred = torch.randn(3, 196, 48, generator=generator).bfloat16()
    mask = torch.zeros(3, 196, dtype=torch.bfloat16)
    mask[:, :147] = 1
    loss = masked_patch_loss(images, pred, mask, 4, norm_pix_loss=False)
    assert loss.dtype == torch.float32
    reference = masked_patch_loss(images.double(), pred.double(), mask.double(), 4, norm_pix_loss=False)
    # float32 arithmetic on the same bfloat16 values: agreement to float32 rounding, not bfloat16's 4e-3.
    assert float(loss) == pytest.approx(float(reference), rel=1e-5)
