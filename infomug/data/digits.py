"""scikit-learn's handwritten digits as a small captioned dataset (no download: the data ships with sklearn).

1,797 grey 8x8 images (UCI optical digits, values 0-16) upsampled bilinearly to ``image_size``, copied to
three channels, with a template caption naming the digit. The train/eval split is a fixed permutation
(independent of the caption seed), stratified by class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .sample import Sample

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = (
    "a handwritten digit {word}",
    "the number {digit}, handwritten",
    "a scanned handwritten {word}",
    "a picture of the digit {digit}",
    "handwritten {digit}",
    "the digit {word}, written by hand",
)
SPLITS = ("train", "eval")
_SPLIT_SEED = 20230117  # fixed, so every run agrees on which images are held out


@dataclass
class DigitsConfig:
    """Settings of the digits dataset.

    Attributes:
        seed: non-negative; chooses each image's caption template.
        image_size: output side in pixels, at least 8.
        eval_fraction: share of each class held out for the eval split, in (0, 1).

    Raises:
        ValueError: for values outside those ranges.
    """

    seed: int = 0
    image_size: int = 32
    eval_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8, got {self.image_size!r}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")


def split_indices(targets: np.ndarray, eval_fraction: float) -> dict[str, np.ndarray]:
    """Deterministic stratified split of ``targets`` ``[N]``: ``{"train": idx, "eval": idx}``, each sorted."""
    rng = np.random.default_rng(_SPLIT_SEED)
    held_out = []
    for digit in np.unique(targets):
        members = np.flatnonzero(targets == digit)
        held_out.append(rng.permutation(members)[: round(eval_fraction * members.size)])
    eval_idx = np.sort(np.concatenate(held_out))
    return {"train": np.setdiff1d(np.arange(targets.size), eval_idx), "eval": eval_idx}


def digit_caption(digit: int, seed: int, index: int) -> str:
    """The caption of image ``index`` (an index into the full 1,797-image set) showing ``digit``."""
    template = TEMPLATES[int(np.random.default_rng([seed, index]).integers(len(TEMPLATES)))]
    return template.format(word=DIGIT_WORDS[digit], digit=digit)


class DigitsDataset(Dataset):
    """Captioned handwritten digits as a map-style dataset of `Sample` with labels ``{"digit": int}``.

    Args:
        config: a `DigitsConfig` (defaults if ``None``).
        transform: maps a float ``[3, S, S]`` image in [0, 1] to the normalised image; ``None`` =
            normalise with ``mean``/``std``.
        split: ``"train"`` or ``"eval"``.

    Attributes:
        mean, std: per-channel statistics of the training split's images in [0, 1].

    Raises:
        ValueError: for an unknown split.
    """

    has_captions = True

    def __init__(
        self,
        config: DigitsConfig | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        split: str = "train",
    ) -> None:
        from sklearn.datasets import load_digits

        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.config = config if config is not None else DigitsConfig()
        self.split = split
        self.transform = transform
        data = load_digits()
        targets = data.target.astype(np.int64)
        splits = split_indices(targets, self.config.eval_fraction)
        pixels = torch.from_numpy(data.images.astype(np.float32) / 16.0)[:, None]  # [N, 1, 8, 8] in [0, 1]
        size = self.config.image_size
        upsampled = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
        train = upsampled[torch.from_numpy(splits["train"])]
        mean, std = float(train.mean()), float(train.std())
        self.mean: tuple[float, float, float] = (mean,) * 3
        self.std: tuple[float, float, float] = (std,) * 3
        self._source_index = splits[split]
        self._images = upsampled[torch.from_numpy(self._source_index)].clamp_(0.0, 1.0)
        self._targets = targets[self._source_index]

    def __len__(self) -> int:
        return int(self._targets.size)

    def image(self, index: int) -> torch.Tensor:
        """``[3, S, S]`` float32 image in [0, 1] before any transform."""
        return self._images[index].expand(3, -1, -1).clone()

    def raw_image(self, index: int) -> torch.Tensor:
        """``[3, S, S]`` uint8 image (for plots)."""
        return (self.image(index) * 255.0).round_().to(torch.uint8)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} {self.split} digits")
        index = index % len(self)
        image = self.image(index)
        if self.transform is None:
            image = (image - self.mean[0]) / self.std[0]
        else:
            image = self.transform(image)
        digit = int(self._targets[index])
        caption = digit_caption(digit, self.config.seed, int(self._source_index[index]))
        return Sample(image=image, caption=caption, labels={"digit": digit})

    @property
    def targets(self) -> np.ndarray:
        """``[N]`` int64 digit of every sample of the split."""
        return self._targets.copy()

    def factor_entropies(self) -> dict[str, float]:
        """``{"digit": H}``: empirical (plug-in) entropy of this split's digit frequencies, in nats."""
        counts = np.bincount(self._targets, minlength=10)
        p = counts[counts > 0] / counts.sum()
        return {"digit": float(-(p * np.log(p)).sum())}

    def caption_information(self) -> dict[str, float]:
        """``{"digit": I(caption; digit)}``: every caption names the digit, so it equals H(digit)."""
        return self.factor_entropies()
