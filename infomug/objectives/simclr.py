"""SimCLR-style objective (Chen et al. 2020): NT-Xent between two augmented views of each image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from infomug.models import ModelConfig

from .batch import get_images
from .contrastive import nt_xent_loss
from .parts import build_encoder


class SimCLRObjective(nn.Module):
    """Unmasked encoder, pooled feature, projection MLP (Linear-ReLU-Linear), NT-Xent.

    ``batch["image"]`` is ``[B, 2, C, H, W]`` (the two-view transform stacks the views); both views
    go through the encoder in one pass. The head has no batch norm, so it needs no cross-process sync.

    Args:
        config: sizes, ``pool``, ``projection_dim``, ``temperature``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.pool = config.pool
        self.temperature = config.temperature
        self.encoder = build_encoder(config)
        self.projection = nn.Sequential(
            nn.Linear(config.embed_dim, config.embed_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.embed_dim, config.projection_dim),
        )

    def forward(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_contrastive"}``; ``generator`` is unused (augmentation happens in the data).

        Raises:
            ValueError: if ``batch["image"]`` is not ``[B, 2, C, H, W]``.
        """
        images = get_images(batch, views=2)
        batch_size = images.shape[0]
        features = self.encoder.pooled(images.flatten(0, 1), self.pool)  # [2B, D], views interleaved
        z = self.projection(features).view(batch_size, 2, -1)
        loss = nt_xent_loss(z[:, 0], z[:, 1], self.temperature)
        return {"loss": loss, "loss_contrastive": loss}
