"""Reconstruction grid: the PNG exists with the documented size; visible patches are pasted back."""

import pytest
import torch
from PIL import Image

from infomug.models import reconstruct, save_reconstruction_grid
from infomug.models.mae_decoder import patchify
from infomug.objectives import MAEObjective


@pytest.mark.parametrize("scale, padding", [(1, 2), (3, 0)])
def test_png_has_the_expected_size(tmp_path, tiny_config, scale, padding):
    objective = MAEObjective(tiny_config)
    path = save_reconstruction_grid(
        objective,
        torch.randn(5, 3, 16, 16),
        tmp_path / "samples" / "grid.png",
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        generator=torch.Generator().manual_seed(0),
        scale=scale,
        padding=padding,
    )
    with Image.open(path) as image:
        assert image.size == (5 * 16 * scale + 6 * padding, 3 * 16 * scale + 4 * padding)
        assert image.mode == "RGB"


def test_visible_patches_are_pasted_back_and_masked_ones_blanked(tiny_config):
    objective = MAEObjective(tiny_config)
    images = torch.randn(2, 3, 16, 16)
    masked, reconstructed = reconstruct(objective, images, torch.Generator().manual_seed(0))
    _, mask, _ = objective.encoder.forward_masked(
        images, objective.mask_ratio, torch.Generator().manual_seed(0)
    )
    visible = mask == 0
    assert torch.equal(patchify(reconstructed, 4)[visible], patchify(images, 4)[visible])
    assert torch.equal(patchify(masked, 4)[visible], patchify(images, 4)[visible])
    assert torch.equal(patchify(masked, 4)[~visible], torch.zeros_like(patchify(masked, 4)[~visible]))


def test_wrong_statistics_are_named(tmp_path, tiny_config):
    with pytest.raises(ValueError, match="mean and std"):
        save_reconstruction_grid(
            MAEObjective(tiny_config), torch.randn(1, 3, 16, 16), tmp_path / "g.png", (0.5,), (0.2,)
        )


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_masked_patches_are_the_prediction_in_pixel_space(tiny_config, norm_pix_loss):
    torch.manual_seed(0)
    objective = MAEObjective(tiny_config.replace(norm_pix_loss=norm_pix_loss))
    images = torch.randn(2, 3, 16, 16)
    _, reconstructed = reconstruct(objective, images, torch.Generator().manual_seed(0))
    with torch.no_grad():
        latent, mask, ids_restore = objective.encoder.forward_masked(
            images, objective.mask_ratio, torch.Generator().manual_seed(0)
        )
        pred = objective.pixel_decoder(latent, ids_restore)
    target = patchify(images, 4)
    if norm_pix_loss:
        # The training target was (x - mean) / sqrt(var + 1e-6) per patch; invert it with that patch's stats.
        pred = pred * (target.var(dim=-1, keepdim=True) + 1e-6).sqrt() + target.mean(dim=-1, keepdim=True)
    removed = mask == 1
    torch.testing.assert_close(patchify(reconstructed, 4)[removed], pred[removed])
