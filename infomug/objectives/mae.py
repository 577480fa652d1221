"""MAE (He et al. 2022): reconstruct the pixels of masked patches from the visible ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from infomug.models import ModelConfig, masked_patch_loss

from .batch import get_images
from .parts import build_encoder, build_pixel_decoder


class MAEObjective(nn.Module):
    """Masked ViT encoder + MAE pixel decoder; loss = MSE on the masked patches.

    Parts are built encoder first, then pixel decoder, so that `MUGObjective` (which adds its caption
    decoder last) starts from identical weights under the same seed.

    Args:
        config: sizes, ``mask_ratio`` and ``norm_pix_loss``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.mask_ratio = config.mask_ratio
        self.norm_pix_loss = config.norm_pix_loss
        self.encoder = build_encoder(config)
        self.pixel_decoder = build_pixel_decoder(config, self.encoder)

    def masked_pass(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One masked encoding and its pixel prediction (mask from ``noise [B, L]`` if given, else drawn).

        Returns:
            ``latent [B, 1 + L_vis, D]``, ``mask [B, L]`` (1 = removed), ``ids_restore [B, L]``,
            ``pred [B, L, p*p*C]`` and ``loss_pixel`` (scalar).
        """
        latent, mask, ids_restore = self.encoder.forward_masked(images, self.mask_ratio, generator, noise)
        pred = self.pixel_decoder(latent, ids_restore)
        loss_pixel = masked_patch_loss(images, pred, mask, self.encoder.patch_size, self.norm_pix_loss)
        return {
            "latent": latent,
            "mask": mask,
            "ids_restore": ids_restore,
            "pred": pred,
            "loss_pixel": loss_pixel,
        }

    def forward(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Loss for ``batch["image"] [B, C, H, W]``; an optional ``batch["mask_noise"] [B, L]`` fixes the
        mask.

        Returns:
            ``{"loss", "loss_pixel", "pred" [B, L, p*p*C], "mask" [B, L]}``; ``loss = loss_pixel``.

        Raises:
            ValueError: if the batch has no images of the configured shape.
        """
        out = self.masked_pass(get_images(batch), generator, batch.get("mask_noise"))
        return {
            "loss": out["loss_pixel"],
            "loss_pixel": out["loss_pixel"],
            "pred": out["pred"],
            "mask": out["mask"],
        }
