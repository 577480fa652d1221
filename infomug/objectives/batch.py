"""Reading the collated batch: ``{"image", "tokens", "lengths", "labels", "captions"}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def get_images(batch: Mapping[str, Any], views: int | None = None) -> torch.Tensor:
    """``batch["image"]``: ``[B, C, H, W]``, or ``[B, views, C, H, W]`` when ``views`` is given.

    Raises:
        ValueError: if the key is missing or the shape is wrong.
    """
    if "image" not in batch:
        raise ValueError(f"batch has no 'image' (keys: {sorted(batch)})")
    images = batch["image"]
    if views is None and images.dim() != 4:
        raise ValueError(f"expected batch['image'] [B, C, H, W], got shape {tuple(images.shape)}")
    if views is not None and (images.dim() != 5 or images.shape[1] != views):
        raise ValueError(
            f"expected batch['image'] [B, {views}, C, H, W] (a {views}-view transform), "
            f"got {tuple(images.shape)}"
        )
    return images


def get_tokens(batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens [B, T], lengths [B])`` from the batch.

    Raises:
        ValueError: if either key is missing (the dataset has no captions, or the collate dropped them).
    """
    missing = [key for key in ("tokens", "lengths") if key not in batch]
    if missing:
        raise ValueError(f"batch lacks {missing}: this objective needs tokenised captions")
    return batch["tokens"], batch["lengths"]
