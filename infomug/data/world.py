"""The embedded captioned shapes world: image-caption pairs whose information content is known exactly.

Each sample is one or two shapes on a textured, tinted background, with a caption that names some of the
first object's factors (`world_captions`). Factors are drawn independently with known laws
(`world_factors`), so `ShapesWorld.factor_entropies` is exact, and the caption process is simple enough
that `ShapesWorld.caption_information` is exact too (`world_information`), caption noise included:

* ``irrelevant_caption_fraction``: a caption is replaced by the caption of an independently drawn decoy
  sample (web alt text about something else);
* ``partial_caption_fraction``: a caption mentions only one factor.

Sample ``i`` of a split is a pure function of ``(seed, split, i)`` and the config: the same in any order
of access, in any DataLoader worker, alone or in a batch. Train and eval draw from different streams.

Images are rendered as float ``[3, S, S]`` in [0, 1]; ``transform`` receives that tensor and must return
the normalised image (`infomug.data.transforms` builds such transforms from ``world.mean``/``world.std``).
Without a transform the world normalises with its own statistics. Labels describe the *untransformed*
image: a crop moves "top left", a horizontal flip swaps left and right (build world transforms with
``hflip=False``).

    world = ShapesWorld(WorldConfig(seed=0, irrelevant_caption_fraction=0.2))
    sample = world[3]  # {"image": [3, 32, 32], "caption": "a small red star in the top left", "labels": ...}
    world.factor_entropies()["shape"], world.caption_information()["shape"]   # nats
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from . import world_factors as wf
from .sample import Sample
from .world_captions import (
    CAPTION_FACTORS,
    DEFAULT_MENTION_PROBABILITIES,
    active_factors,
    caption_values,
    draw_mentions,
    write_caption,
)
from .world_information import (
    caption_content_entropy,
    caption_entropy,
    caption_information,
    caption_information_total,
)
from .world_render import Renderer, channel_statistics

logger = logging.getLogger(__name__)

SPLITS = ("train", "eval")
LABEL_NAMES = (
    "shape",
    "colour",
    "size",
    "size_bin",
    "position_x",
    "position_y",
    "position_bin",
    "rotation",
    "rotation_bin",
    "num_objects",
    "shape_2",
    "colour_2",
    "size_bin_2",
    "position_bin_2",
    "background",
    "background_hue",
    "caption_is_irrelevant",
    "caption_is_partial",
)
CHUNK = 256  # samples rendered at once; bounds memory for large images
STATISTICS_SAMPLES = 2048


@dataclass
class WorldConfig:
    """Settings of a shapes world. Plain types only, so it round-trips through YAML.

    Attributes:
        seed: non-negative integer; the whole dataset is a function of it.
        size: number of training samples.
        eval_size: number of eval samples (a separate random stream, independent of the training one).
        image_size: image side in pixels, at least 16.
        max_objects: 1 or 2.
        second_object_probability: P(two objects) when ``max_objects == 2``.
        irrelevant_caption_fraction: probability that a caption belongs to an independent decoy sample.
        partial_caption_fraction: probability that a caption mentions exactly one factor.
        mention_probabilities: clean-caption probability of mentioning each caption factor
            (`world_captions.CAPTION_FACTORS`); missing keys take the defaults.
        mean, std: per-channel normalisation statistics of images in [0, 1]; ``None`` = computed by
            `ShapesWorld` from a fixed sample of 2048 images (the resolved values land in
            ``ShapesWorld.config``).

    Raises:
        ValueError: for any value outside the ranges above or an unknown caption factor.
    """

    seed: int = 0
    size: int = 50_000
    eval_size: int = 10_000
    image_size: int = 32
    max_objects: int = 2
    second_object_probability: float = 0.5
    irrelevant_caption_fraction: float = 0.0
    partial_caption_fraction: float = 0.0
    mention_probabilities: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_MENTION_PROBABILITIES)
    )
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("seed", "size", "eval_size", "image_size", "max_objects"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.size < 1 or self.eval_size < 1:
            raise ValueError(f"size and eval_size must be >= 1, got {self.size} and {self.eval_size}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {self.image_size}")
        if self.max_objects not in (1, 2):
            raise ValueError(f"max_objects must be 1 or 2, got {self.max_objects}")
        for name in ("second_object_probability", "irrelevant_caption_fraction", "partial_caption_fraction"):
            _check_probability(name, getattr(self, name))
        unknown = set(self.mention_probabilities) - set(CAPTION_FACTORS)
        if unknown:
            raise ValueError(f"unknown caption factors {sorted(unknown)}; expected some of {CAPTION_FACTORS}")
        self.mention_probabilities = {**DEFAULT_MENTION_PROBABILITIES, **self.mention_probabilities}
        for name, value in self.mention_probabilities.items():
            _check_probability(f"mention_probabilities[{name!r}]", value)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) != 3:
                raise ValueError(f"{name} must have 3 channels, got {value!r}")
            setattr(self, name, tuple(float(v) for v in value))
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")


def _check_probability(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


class ShapesWorld(Dataset):
    """The captioned shapes world as a map-style dataset of `Sample`.

    Args:
        config: a `WorldConfig` (default settings if ``None``).
        transform: maps a float ``[3, S, S]`` image in [0, 1] to the normalised image (or ``[2, 3, S, S]``
            views); ``None`` = normalise with ``mean``/``std``.
        split: ``"train"`` (``config.size`` samples) or ``"eval"`` (``config.eval_size``).

    Attributes:
        config: the config with ``mean``/``std`` resolved.
        mean, std: per-channel normalisation statistics (tuples of 3 floats).

    Raises:
        ValueError: for an unknown split.
    """

    has_captions = True

    def __init__(
        self,
        config: WorldConfig | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        split: str = "train",
    ) -> None:
        config = config if config is not None else WorldConfig()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.transform = transform
        self._length = config.size if split == "train" else config.eval_size
        self._key = wf.stream_key(config.seed, split)
        self._decoy_key = wf.stream_key(config.seed, f"{split}_decoy")
        self._renderer = Renderer(config.image_size)
        self._active = active_factors(config.max_objects)
        self.config = config
        if config.mean is None or config.std is None:
            mean, std = self._statistics()
            logger.debug("shapes world statistics at %d px: mean %s std %s", config.image_size, mean, std)
            self.config = replace(config, mean=config.mean or mean, std=config.std or std)
        self.mean: tuple[float, float, float] = self.config.mean
        self.std: tuple[float, float, float] = self.config.std
        self._mean_tensor = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std_tensor = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return self._length

    # -- generation --------------------------------------------------------------------------------

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + self._length, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self._length):
            raise IndexError(f"index out of range for a {self.split} world of {self._length} samples")
        return idx

    def _factors(self, key: int, idx: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        u = wf.uniforms(key, idx)
        return u, wf.sample_factors(u, self.config.max_objects, self.config.second_object_probability)

    def _statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        key = wf.stream_key(0, "statistics")

        def render(idx: np.ndarray) -> np.ndarray:
            u, factors = self._factors(key, idx)
            return self._renderer.render(factors, wf.second_object_geometry(u))[0]

        return channel_statistics(render, STATISTICS_SAMPLES, CHUNK)

    def _captions(
        self, idx: np.ndarray, u: np.ndarray, factors: dict[str, np.ndarray]
    ) -> tuple[list[str], dict[str, np.ndarray]]:
        irrelevant = u[:, wf.COLUMNS["irrelevant"]] < self.config.irrelevant_caption_fraction
        source_u, source = u, factors
        if irrelevant.any():
            decoy_u, decoy = self._factors(self._decoy_key, idx)
            source_u = np.where(irrelevant[:, None], decoy_u, u)
            source = {name: np.where(irrelevant, decoy[name], factors[name]) for name in factors}
        mentions, partial = draw_mentions(
            source_u, self.config.mention_probabilities, self.config.partial_caption_fraction, self._active
        )
        captions = [
            write_caption(caption_values(source, mentions, row), source_u[row]) for row in range(idx.size)
        ]
        labels = {**factors, "caption_is_irrelevant": irrelevant.astype(np.int64)}
        labels["caption_is_partial"] = partial.astype(np.int64)
        return captions, labels

    def captions_and_labels(
        self, indices: Sequence[int] | np.ndarray
    ) -> tuple[list[str], dict[str, np.ndarray]]:
        """Captions and labels of ``indices`` without rendering images (fast; for measurement).

        Returns:
            ``(captions, {label: [B] array})``; int64 arrays for discrete labels, float64 for continuous.

        Raises:
            IndexError: for an index outside ``[-len, len)``.
        """
        idx = self._check_indices(indices)
        return self._captions(idx, *self._factors(self._key, idx))

    def images(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``[B, 3, S, S]`` float32 images in [0, 1], before any transform or normalisation.

        Raises:
            IndexError: for an index outside ``[-len, len)``.
        """
        idx = self._check_indices(indices)
        chunks = []
        for start in range(0, idx.size, CHUNK):
            u, factors = self._factors(self._key, idx[start : start + CHUNK])
            chunks.append(self._renderer.render(factors, wf.second_object_geometry(u))[0])
        size = self.config.image_size
        return torch.from_numpy(np.concatenate(chunks)) if chunks else torch.empty(0, 3, size, size)

    def raw_images(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``[B, 3, S, S]`` uint8 images as rendered (for plots)."""
        return (self.images(indices) * 255.0).round_().clamp_(0, 255).to(torch.uint8)

    def raw_image(self, index: int) -> torch.Tensor:
        """``[3, S, S]`` uint8 image of one sample (for plots)."""
        return self.raw_images([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        """Samples of ``indices``, rendered in batches (DataLoader fetches a batch through this).

        Raises:
            IndexError: for an index outside ``[-len, len)``.
        """
        idx = self._check_indices(indices)
        samples: list[Sample] = []
        for start in range(0, idx.size, CHUNK):
            chunk = idx[start : start + CHUNK]
            u, factors = self._factors(self._key, chunk)
            captions, labels = self._captions(chunk, u, factors)
            images = torch.from_numpy(self._renderer.render(factors, wf.second_object_geometry(u))[0])
            if self.transform is None:
                views = list(((images - self._mean_tensor) / self._std_tensor).unbind(0))
            else:
                views = [self.transform(image) for image in images.unbind(0)]
            columns = {name: labels[name].tolist() for name in LABEL_NAMES}
            samples += [
                Sample(image=view, caption=caption, labels={name: columns[name][row] for name in LABEL_NAMES})
                for row, (view, caption) in enumerate(zip(views, captions, strict=True))
            ]
        return samples

    def __getitem__(self, index: int) -> Sample:
        return self.__getitems__([index])[0]

    # -- ground truth ------------------------------------------------------------------------------

    @property
    def label_names(self) -> tuple[str, ...]:
        """Names of every label a sample carries."""
        return LABEL_NAMES

    def factor_classes(self) -> dict[str, tuple[str, ...]]:
        """Class names of the discrete factor labels, in index order; continuous labels are absent."""
        flags = {"caption_is_irrelevant": ("no", "yes"), "caption_is_partial": ("no", "yes")}
        return {**wf.factor_classes(self.config.max_objects), **flags}

    def factor_entropies(self) -> dict[str, float]:
        """Exact entropy of every label in nats.

        Discrete labels: Shannon entropy. Continuous labels (``size``, ``position_x``, ``position_y``,
        ``rotation``, ``background_hue``): differential entropy in nats of their uniform law, in image
        sides or radians, so possibly negative. These are the ceilings for I(T; label) of discrete labels.
        """
        cfg = self.config
        entropies = wf.factor_entropies(cfg.max_objects, cfg.second_object_probability)
        entropies["caption_is_irrelevant"] = wf.binary_entropy(cfg.irrelevant_caption_fraction)
        entropies["caption_is_partial"] = wf.binary_entropy(cfg.partial_caption_fraction)
        return {name: entropies[name] for name in LABEL_NAMES}

    def caption_information(self) -> dict[str, float]:
        """Exact I(caption; label) in nats for every label, caption noise included.

        Zero for labels captions never mention (background, background hue). The second object's
        labels carry I(caption; num_objects): their ``"none"`` class means one object. See
        `world_information`.
        """
        cfg = self.config
        return caption_information(
            cfg.max_objects,
            cfg.second_object_probability,
            cfg.irrelevant_caption_fraction,
            cfg.partial_caption_fraction,
            cfg.mention_probabilities,
            LABEL_NAMES,
        )

    def caption_content_entropy(self) -> float:
        """Exact entropy in nats of a caption's factor content (which factors it names, and their bins).

        It bounds `caption_information_total` from above: for clean captions the two differ by the entropy of
        the mention set (which factors are named is random and says nothing about the image).
        """
        cfg = self.config
        return caption_content_entropy(
            cfg.max_objects,
            cfg.second_object_probability,
            cfg.partial_caption_fraction,
            cfg.mention_probabilities,
        )

    def caption_entropy(self) -> float:
        """Exact entropy of the caption string in nats, wording included (see `world_information`).

        This is the H(caption) a Barber-Agakov bound on I(T; caption) needs: a caption decoder's mean
        cross-entropy per caption (nats, summed over its tokens) subtracted from it lower-bounds the
        information. Caption noise does not change it (a decoy's caption has the same law).
        """
        cfg = self.config
        return caption_entropy(
            cfg.max_objects,
            cfg.second_object_probability,
            cfg.partial_caption_fraction,
            cfg.mention_probabilities,
        )

    def caption_information_total(self) -> float:
        """Exact I(caption; all factors) in nats: the ceiling on I(image; caption) and on I(T; caption)."""
        cfg = self.config
        return caption_information_total(
            cfg.max_objects,
            cfg.second_object_probability,
            cfg.irrelevant_caption_fraction,
            cfg.partial_caption_fraction,
            cfg.mention_probabilities,
        )
