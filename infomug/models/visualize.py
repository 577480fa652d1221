"""A PNG grid of MAE/MUG reconstructions: original / masked / reconstructed, one column per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .mae_decoder import patch_statistics, patchify, unpatchify


@torch.no_grad()
def reconstruct(
    objective: nn.Module, images: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked and reconstructed images in the input's (normalised) space.

    The prediction is un-normalised with each patch's own mean and standard deviation when the
    objective regresses normalised pixels (``norm_pix_loss``), as MAE's visualisations do; visible
    patches are pasted back unchanged.

    Args:
        objective: anything with ``.encoder``, ``.pixel_decoder``, ``.mask_ratio``, ``.norm_pix_loss``
            (the ``mae`` and ``mug`` objectives).
        images: ``[B, C, H, W]`` normalised images.
        generator: draws the mask.

    Returns:
        ``(masked [B, C, H, W], reconstructed [B, C, H, W])``; masked patches are 0 in ``masked``.

    Raises:
        ValueError: if ``objective`` has no pixel decoder.
    """
    decoder = getattr(objective, "pixel_decoder", None)
    if decoder is None or not hasattr(objective, "encoder"):
        raise ValueError(f"{type(objective).__name__} has no pixel decoder (use a mae or mug objective)")
    was_training = objective.training
    objective.eval()
    try:
        latent, mask, ids_restore = objective.encoder.forward_masked(images, objective.mask_ratio, generator)
        pred = decoder(latent, ids_restore)
    finally:
        objective.train(was_training)
    patch = objective.encoder.patch_size
    target = patchify(images, patch)
    if objective.norm_pix_loss:
        mean, std = patch_statistics(target)
        pred = pred * std + mean
    keep = (1 - mask)[:, :, None]
    grid, chans = objective.encoder.grid_size, images.shape[1]
    masked = unpatchify(target * keep, patch, grid, chans)
    reconstructed = unpatchify(target * keep + pred * (1 - keep), patch, grid, chans)
    return masked, reconstructed


def save_reconstruction_grid(
    objective: nn.Module,
    images: torch.Tensor,
    path: str | Path,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator | None = None,
    scale: int = 1,
    padding: int = 2,
) -> Path:
    """Write rows original / masked / reconstructed as an RGB (or grey) PNG.

    Images are un-normalised with the dataset ``mean``/``std`` and clipped to ``[0, 1]``. The PNG is
    ``B * W * scale + (B + 1) * padding`` pixels wide and ``3 * H * scale + 4 * padding`` high, on white.

    Args:
        objective: a ``mae`` or ``mug`` objective (see `reconstruct`).
        images: ``[B, C, H, W]`` normalised images, ``C`` 1 or 3.
        path: output file, parent folders created.
        mean, std: per-channel dataset statistics used by the normalisation (length ``C``).
        generator: draws the mask.
        scale: integer nearest-neighbour upscaling (for 32x32 images).
        padding: pixels between cells.

    Returns:
        ``path``.

    Raises:
        ValueError: for ``C`` not in (1, 3), statistics of the wrong length, or ``scale < 1``/``padding < 0``.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [B, 1 or 3, H, W], got {tuple(images.shape)}")
    chans = images.shape[1]
    if len(mean) != chans or len(std) != chans:
        raise ValueError(f"mean and std need {chans} values, got {len(mean)} and {len(std)}")
    if scale < 1 or padding < 0:
        raise ValueError(f"scale must be >= 1 and padding >= 0, got {scale}, {padding}")
    masked, reconstructed = reconstruct(objective, images, generator)
    mean_t = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    rows = [(x.detach().float().cpu() * std_t + mean_t).clamp(0, 1) for x in (images, masked, reconstructed)]
    batch, _, height, width = images.shape
    cell_h, cell_w = height * scale, width * scale
    canvas = np.ones((3 * cell_h + 4 * padding, batch * cell_w + (batch + 1) * padding, chans), np.float32)
    for r, row in enumerate(rows):
        row = row.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
        for c in range(batch):
            top, left = padding + r * (cell_h + padding), padding + c * (cell_w + padding)
            canvas[top : top + cell_h, left : left + cell_w] = row[c].permute(1, 2, 0).numpy()
    pixels = (canvas * 255).round().astype(np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if chans == 1 else pixels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
