"""The one sample format every dataset in `infomug.data` returns."""

from __future__ import annotations

from typing import TypedDict

import torch


class Sample(TypedDict):
    """One image-text pair.

    Keys:
        image: float32 ``[3, H, W]`` after the dataset's transform (normalised), or ``[2, 3, H, W]`` when a
            two-view transform (SimCLR) is used.
        caption: the caption; ``""`` for image-only datasets (which report ``has_captions = False``).
        labels: ``{name: int | float}``: class index, world factors, ... (may be empty).
    """

    image: torch.Tensor
    caption: str
    labels: dict[str, int | float]
