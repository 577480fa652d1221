"""The shifted shapes world: an out-of-distribution downstream task for fine-tuning and transfer.

It is the shapes world's generator (`world_factors`, `world_render`) with the appearance moved away from
what an encoder saw during pre-training, so that a downstream probe or fine-tune measures how well the
learned factors *transfer*, not how well the pre-training images were memorised:

* **palette**: 8 other object colours (`SHIFTED_COLOURS`: pastel and dark tones), each at least ~80 RGB
  units (of 255) from every pre-training colour, from each other and from every background tone;
* **textures**: 4 other background textures (`SHIFTED_TEXTURES`), none of them in the pre-training world;
* **background tones**: mid-grey and washed out (HSV saturation 0.2, values 0.45 / 0.60) instead of dark
  and tinted (0.5, values 0.18 / 0.32); the two worlds' background channel ranges do not overlap;
* **object size**: circumradius U[0.28, 0.40) image sides instead of U[0.12, 0.30), so objects are larger
  (``size_bin`` is thirds of the new range);
* **one object** per image, always; no captions.

Shapes, positions, rotations and every factor law are unchanged, and labels are exact: the six discrete
labels in `LABEL_NAMES` are independent and uniform, so `ShiftedWorld.factor_entropies` is log K each.
Sample ``i`` of a split is a pure function of ``(seed, split, i)``, as in `ShapesWorld`.

    world = ShiftedWorld(ShiftedWorldConfig(seed=0), split="train")
    x, y = world.images(range(64)), world.labels(range(64))["shape"]   # [64, 3, 32, 32], [64]
    x = (x - torch.tensor(world.mean).view(1, 3, 1, 1)) / torch.tensor(world.std).view(1, 3, 1, 1)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import world_factors as wf
from .world_render import Renderer, channel_statistics

SPLITS = ("train", "eval")
LABEL_NAMES = ("shape", "colour", "size_bin", "position_bin", "rotation_bin", "background")
# As many colours and textures as the pre-training world, so `sample_factors`'s ``colour`` and
# ``background`` labels index them directly and keep their uniform laws.
SHIFTED_COLOURS = {
    "pink": (255, 160, 200),
    "teal": (0, 130, 140),
    "olive": (110, 150, 0),
    "navy": (10, 30, 110),
    "maroon": (90, 5, 30),
    "lime": (160, 255, 100),
    "lavender": (175, 160, 250),
    "brown": (155, 75, 0),
}
SHIFTED_COLOUR_NAMES = tuple(SHIFTED_COLOURS)
SHIFTED_TEXTURES = ("diagonal stripes", "dots", "coarse checkerboard", "fine horizontal stripes")
SHIFTED_SIZE_RANGE = (0.28, 0.40)
SHIFTED_BACKGROUND_SATURATION = 0.2
SHIFTED_BACKGROUND_VALUES = (0.45, 0.60)
CHUNK = 256  # samples rendered at once; bounds memory for large images
STATISTICS_SAMPLES = 2048


@dataclass
class ShiftedWorldConfig:
    """Settings of a shifted shapes world. Plain types only, so it round-trips through YAML.

    Attributes:
        seed: non-negative integer; the whole dataset is a function of it.
        size: number of training samples.
        eval_size: number of eval samples (a separate random stream, independent of the training one).
        image_size: image side in pixels, at least 16.

    Raises:
        ValueError: for a non-integer value or one outside the ranges above.
    """

    seed: int = 0
    size: int = 10_000
    eval_size: int = 2_000
    image_size: int = 32

    def __post_init__(self) -> None:
        for name in ("seed", "size", "eval_size", "image_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.size < 1 or self.eval_size < 1:
            raise ValueError(f"size and eval_size must be >= 1, got {self.size} and {self.eval_size}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {self.image_size}")


def shifted_renderer(image_size: int) -> Renderer:
    """A `Renderer` in the shifted world's appearance (palette, textures, background tones)."""
    return Renderer(
        image_size,
        palette=np.array(list(SHIFTED_COLOURS.values()), dtype=np.float32) / 255.0,
        textures=SHIFTED_TEXTURES,
        background_saturation=SHIFTED_BACKGROUND_SATURATION,
        background_values=SHIFTED_BACKGROUND_VALUES,
    )


class ShiftedWorld:
    """One split of the shifted shapes world: images and exact factor labels, addressed by index.

    Args:
        config: a `ShiftedWorldConfig` (default settings if ``None``).
        split: ``"train"`` (``config.size`` samples) or ``"eval"`` (``config.eval_size``).

    Attributes:
        config: the settings.
        split: the split's name.
        mean, std: per-channel statistics of images in [0, 1] (tuples of 3 floats, 4 decimals), from a
            fixed sample of 2048 images of the ``"shifted_statistics"`` stream; they depend on the image
            size only.

    Raises:
        ValueError: for an unknown split.
    """

    def __init__(self, config: ShiftedWorldConfig | None = None, split: str = "train") -> None:
        self.config = config if config is not None else ShiftedWorldConfig()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self._length = self.config.size if split == "train" else self.config.eval_size
        self._key = wf.stream_key(self.config.seed, f"shifted_{split}")
        self._renderer = shifted_renderer(self.config.image_size)

    def __len__(self) -> int:
        return self._length

    @property
    def label_names(self) -> tuple[str, ...]:
        """Names of the labels `labels` returns, in order."""
        return LABEL_NAMES

    # -- generation --------------------------------------------------------------------------------

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + self._length, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self._length):
            raise IndexError(f"index out of range for a {self.split} shifted world of {self._length} samples")
        return idx

    @staticmethod
    def _factors(key: int, idx: np.ndarray) -> dict[str, np.ndarray]:
        return wf.sample_factors(wf.uniforms(key, idx), 1, 0.0, size_range=SHIFTED_SIZE_RANGE)

    def _render(self, key: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(images [B, 3, S, S], coverage [B, S, S])`` float32, rendered ``CHUNK`` samples at a time."""
        size = self.config.image_size
        images, coverage = [np.empty((0, 3, size, size), np.float32)], [np.empty((0, size, size), np.float32)]
        for start in range(0, idx.size, CHUNK):
            image, alpha = self._renderer.render(self._factors(key, idx[start : start + CHUNK]))
            images.append(image)
            coverage.append(alpha)
        return np.concatenate(images), np.concatenate(coverage)

    @functools.cached_property
    def _statistics(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        key = wf.stream_key(0, "shifted_statistics")
        return channel_statistics(lambda idx: self._render(key, idx)[0], STATISTICS_SAMPLES, CHUNK)

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean of images in [0, 1] (computed on first use)."""
        return self._statistics[0]

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel standard deviation of images in [0, 1] (computed on first use)."""
        return self._statistics[1]

    def images(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``[B, 3, S, S]`` float32 images in [0, 1], not normalised.

        Raises:
            IndexError: for an index outside ``[-len, len)``.
        """
        return torch.from_numpy(self._render(self._key, self._check_indices(indices))[0])

    def raw_images(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``[B, 3, S, S]`` uint8 images as rendered (for plots)."""
        return (self.images(indices) * 255.0).round_().clamp_(0, 255).to(torch.uint8)

    def coverage(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``[B, S, S]`` float32 in [0, 1]: the fraction of each pixel the object covers (its mask).

        Raises:
            IndexError: for an index outside ``[-len, len)``.
        """
        return self._render(self._key, self._check_indices(indices))[1]

    def labels(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """``{label: [B] int64}`` for every name in `LABEL_NAMES`, without rendering (fast).

        Raises:
            IndexError: for an index outside ``[-len, len)``.
        """
        factors = self._factors(self._key, self._check_indices(indices))
        return {name: factors[name].astype(np.int64) for name in LABEL_NAMES}

    # -- ground truth ------------------------------------------------------------------------------

    def factor_classes(self) -> dict[str, tuple[str, ...]]:
        """Class names of every label, in index order."""
        return {
            "shape": wf.SHAPES,
            "colour": SHIFTED_COLOUR_NAMES,
            "size_bin": wf.SIZE_BINS,
            "position_bin": wf.POSITION_BINS,
            "rotation_bin": wf.ROTATION_BINS,
            "background": SHIFTED_TEXTURES,
        }

    def factor_entropies(self) -> dict[str, float]:
        """Exact Shannon entropy of every label in nats: log K, since each label is uniform over K classes.

        These are the ceilings for I(T; label) of a representation T of the image.
        """
        return {name: math.log(len(classes)) for name, classes in self.factor_classes().items()}
