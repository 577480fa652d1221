"""MUG (Zhao et al. 2023, "Vision Learners Meet Web Image-Text Pairs"): MAE plus caption generation.

One masked encoding feeds both decoders: the MAE pixel decoder and an autoregressive caption decoder
that cross-attends to the same visible-patch latent. Loss = lambda_V * pixel + lambda_L * caption
(paper: lambda_V = 1, lambda_L = 0.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from infomug.models import ModelConfig

from .batch import get_images, get_tokens
from .mae import MAEObjective
from .parts import build_caption_decoder


class MUGObjective(MAEObjective):
    """`MAEObjective` plus a caption decoder; with ``caption_loss_weight = 0`` it *is* MAE.

    The caption decoder is built after the encoder and pixel decoder, so under the same seed those
    two start identical to `MAEObjective`'s, and with lambda_L = 0 the loss and every encoder and
    pixel-decoder gradient match MAE's exactly (the caption term contributes an exact zero).

    Args:
        config: sizes, ``mask_ratio``, ``pixel_loss_weight`` (lambda_V), ``caption_loss_weight`` (lambda_L).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.pixel_loss_weight = config.pixel_loss_weight
        self.caption_loss_weight = config.caption_loss_weight
        self.caption_decoder = build_caption_decoder(config)

    def forward(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_pixel", "loss_caption", "pred", "mask"}``.

        ``batch`` needs ``image [B, C, H, W]``, ``tokens [B, T]`` and ``lengths [B]``; an optional
        ``mask_noise [B, L]`` fixes the mask. ``loss_caption`` is the per-token cross-entropy (nats) over
        real caption tokens; under `torch.distributed` it is normalised by the token count of all
        processes (see `CaptionDecoder.loss`), so every process must call ``forward`` together.

        Raises:
            ValueError: for missing keys or malformed images/tokens.
        """
        images = get_images(batch)
        tokens, lengths = get_tokens(batch)
        out = self.masked_pass(images, generator, batch.get("mask_noise"))
        loss_caption = self.caption_decoder.loss(tokens, lengths, out["latent"], across_processes=True)
        loss = self.pixel_loss_weight * out["loss_pixel"] + self.caption_loss_weight * loss_caption
        return {
            "loss": loss,
            "loss_pixel": out["loss_pixel"],
            "loss_caption": loss_caption,
            "pred": out["pred"],
            "mask": out["mask"],
        }
