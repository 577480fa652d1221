"""CLIP-style objective (Radford et al. 2021): symmetric image-text InfoNCE with a learned temperature."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from infomug.models import ModelConfig

from .batch import get_images, get_tokens
from .contrastive import clip_loss
from .parts import build_encoder, build_text_encoder

MAX_LOGIT_SCALE = math.log(100.0)


class CLIPObjective(nn.Module):
    """Unmasked image encoder + causal text encoder, linear projections to a shared space, InfoNCE.

    The image feature is the class token (``pool="token"``) or the patch mean (``"avg"``); the text
    feature is the final-norm state at the eos position. The learned log logit scale starts at
    ``log(1 / clip_initial_temperature)`` and is clamped at ``log 100`` in the forward pass.

    Args:
        config: sizes, ``projection_dim``, ``pool``, ``clip_initial_temperature``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.pool = config.pool
        self.encoder = build_encoder(config)
        self.text_encoder = build_text_encoder(config)
        self.image_projection = nn.Linear(config.embed_dim, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(config.text_width, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.clip_initial_temperature)))

    def forward(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_contrastive", "logit_scale"}``; ``generator`` is unused (no randomness).

        ``logit_scale`` is the clamped, exponentiated scale (1 / temperature), detached, for logging.

        Raises:
            ValueError: for missing keys or malformed images/tokens.
        """
        images = get_images(batch)
        tokens, lengths = get_tokens(batch)
        image_features = self.image_projection(self.encoder.pooled(images, self.pool))
        text_features = self.text_projection(self.text_encoder(tokens, lengths))
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        loss = clip_loss(image_features, text_features, scale)
        return {"loss": loss, "loss_contrastive": loss, "logit_scale": scale.detach()}
