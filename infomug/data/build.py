"""One config for every data source, and the function that turns it into a dataset with its transform.

The trainer and `infomug measure` build data only through `build_dataset`, so a run's config names its data
completely: the embedded world, scikit-learn's digits, or a user's WebDataset shards, CSV/TSV, COCO
captions or image folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset, IterableDataset

from .coco import CocoCaptions
from .csv_pairs import CsvPairs
from .digits import DigitsConfig, DigitsDataset
from .imagefolder import ImageFolder
from .transforms import eval_transform, pretrain_transform, two_view_transform
from .webdataset import WebDatasetShards
from .world import ShapesWorld, WorldConfig

logger = logging.getLogger(__name__)

SOURCES = ("world", "digits", "webdataset", "csv", "coco", "imagefolder")
AUGMENTATIONS = ("pretrain", "two_view", "eval")
SPLITS = ("train", "eval")
# The statistics timm and MAE normalise ImageNet-like photographs with; used for users' data unless set.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DataConfig:
    """Where the images and captions come from and how they are augmented. Plain types only.

    Attributes:
        source: one of ``SOURCES``.
        path: training data of a user source: a shard pattern (``shards/{00000..00099}.tar``), a CSV/TSV
            file, a COCO captions JSON, or an image-folder root. Unused by ``world`` and ``digits``.
        eval_path: the same for the eval split (required to build a user source's eval split).
        image_root: COCO's image folder, or the folder relative CSV paths resolve against; ``None`` = the
            working directory (open_clip's rule) or the CSV's folder, whichever holds the images.
        image_size: side of the images the encoder sees, in pixels.
        crop_scale: area range of the random resized crop used by ``pretrain`` and ``two_view``;
            ``None`` = the recipes' (MAE 0.2-1 for ``pretrain``, SimCLR 0.08-1 for ``two_view``) on users'
            photographs, and on the generated sources no crop for ``pretrain`` (a crop would make captions
            such as "small" or "top left" false, and the exact information values describe uncropped
            images) and 0.2-1 for ``two_view`` (contrastive learning needs crops; it reads no caption).
        hflip: random horizontal flips; ``None`` = off for ``world`` and ``digits`` (their captions and
            digits are not mirror-symmetric: "left" would become wrong), on for users' photographs.
        mean, std: per-channel normalisation of images in [0, 1]; ``None`` = the source's own statistics
            (world, digits) or ImageNet's (users' data).
        csv_img_key, csv_caption_key, csv_separator: open_clip's column names and separator.
        label_keys: numeric metadata fields (WebDataset JSON, CSV columns) kept as labels.
        max_caption_chars: longer captions are skipped and counted.
        max_image_bytes: larger image files (CSV, COCO, image folder) are skipped and counted; so are paths
            that are not regular files (``/dev/zero``, a FIFO).
        allow_outside_root: read CSV/TSV and COCO image paths that resolve (``..``, absolute, a symlink)
            outside the image root; by default they are skipped and counted, as a listing may come from
            anywhere.
        shuffle_buffer: WebDataset sample shuffle buffer (0 = none; the training split's shard order and
            the samples within each shard are shuffled each epoch either way).
        shuffle_seed: seed of the WebDataset shard and sample order (the same on every rank).
        world: the embedded world's settings (``world.image_size`` is its render size).
        digits: the digits dataset's settings.

    Raises:
        ValueError: for an unknown source, a user source without ``path``, or a bad crop scale.
    """

    source: str = "world"
    path: str | None = None
    eval_path: str | None = None
    image_root: str | None = None
    image_size: int = 32
    crop_scale: tuple[float, float] | None = None
    hflip: bool | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    csv_separator: str = "\t"
    label_keys: list[str] = field(default_factory=list)
    max_caption_chars: int = 1000
    max_image_bytes: int = 64 * 2**20
    allow_outside_root: bool = False
    shuffle_buffer: int = 0
    shuffle_seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)
    digits: DigitsConfig = field(default_factory=DigitsConfig)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data source must be one of {SOURCES}, got {self.source!r}")
        if self.source not in ("world", "digits") and not self.path:
            raise ValueError(f"data source {self.source!r} needs `path` (its files), got none")
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8, got {self.image_size!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if not isinstance(self.max_image_bytes, int) or self.max_image_bytes < 1:
            raise ValueError(f"max_image_bytes must be a positive integer, got {self.max_image_bytes!r}")
        if isinstance(self.world, dict):
            self.world = WorldConfig(**self.world)
        if isinstance(self.digits, dict):
            self.digits = DigitsConfig(**self.digits)

    @property
    def synthetic(self) -> bool:
        """True for the embedded sources, which generate their data and know its statistics."""
        return self.source in ("world", "digits")


def crop_scale(config: DataConfig, augmentation: str) -> tuple[float, float]:
    """The crop-area range ``augmentation`` uses under ``config`` (see `DataConfig.crop_scale`)."""
    if config.crop_scale is not None:
        return (float(config.crop_scale[0]), float(config.crop_scale[1]))
    if augmentation == "two_view":
        return (0.2, 1.0) if config.synthetic else (0.08, 1.0)
    return (1.0, 1.0) if config.synthetic else (0.2, 1.0)


def make_transform(
    config: DataConfig, augmentation: str, mean: Sequence[float], std: Sequence[float]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The transform of float ``[3, H, W]`` images in [0, 1] for ``augmentation`` (one of ``AUGMENTATIONS``).

    Returns ``[3, S, S]`` (``pretrain``, ``eval``) or ``[2, 3, S, S]`` (``two_view``), normalised.

    Raises:
        ValueError: for an unknown augmentation.
    """
    hflip = (not config.synthetic) if config.hflip is None else config.hflip
    size = config.image_size
    if augmentation == "pretrain":
        return pretrain_transform(size, mean, std, scale=crop_scale(config, augmentation), hflip=hflip)
    if augmentation == "two_view":
        return two_view_transform(size, mean, std, scale=crop_scale(config, augmentation), hflip=hflip)
    if augmentation == "eval":
        return eval_transform(size, mean, std)
    raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {augmentation!r}")


def data_normalisation(config: DataConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` `build_dataset` normalises ``config``'s images with, without reading
    users' files: ``config.mean``/``std`` when set, else the embedded source's own statistics (the world's
    at its render size, the digits' training split), else ImageNet's (users' photographs)."""
    if config.mean is not None and config.std is not None:
        return tuple(config.mean), tuple(config.std)
    if config.source == "world":
        own = ShapesWorld(config.world, split="train")
    elif config.source == "digits":
        own = DigitsDataset(config.digits, split="train")
    else:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(own.mean), tuple(own.std)


def build_dataset(
    config: DataConfig,
    split: str = "train",
    augmentation: str | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    require_captions: bool = True,
) -> Dataset | IterableDataset:
    """The dataset ``config`` names, for ``split``, returning `Sample`s with the asked augmentation.

    Args:
        config: a `DataConfig`.
        split: ``"train"`` or ``"eval"``; users' sources read ``path`` or ``eval_path``.
        augmentation: one of ``AUGMENTATIONS``; ``None`` = ``pretrain`` for train and ``eval`` for eval.
        require_captions: skip and count WebDataset samples and CSV rows without a usable caption; False
            for objectives that read no caption (``mae``, ``simclr``), which then train on image-only
            shards and CSVs (caption ``""``). The other sources are unaffected.
        rank, world_size: WebDataset shard split; ``None`` = from `torch.distributed` or the environment.

    Returns:
        A map-style dataset (world, digits, csv, coco, imagefolder) or an `IterableDataset`
        (webdataset); each has ``mean``/``std`` attributes set to the statistics it normalises with.

    Raises:
        ValueError: for an unknown split or augmentation, or a user source with no ``eval_path`` for eval.
        FileNotFoundError: if a user source's files do not exist.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    augmentation = augmentation or ("pretrain" if split == "train" else "eval")
    if config.synthetic:
        own = config.world if config.source == "world" else config.digits
        if own.image_size < config.image_size:
            # Easy to miss: `image_size` alone leaves the render size at its default, and the transform
            # then upsamples blurry images instead of rendering sharp ones.
            logger.warning(
                "data.%s.image_size=%d is smaller than data.image_size=%d: images are upsampled; set "
                "data.%s.image_size=%d to generate them at full resolution",
                config.source,
                own.image_size,
                config.image_size,
                config.source,
                config.image_size,
            )
    if config.source == "world":
        dataset = ShapesWorld(config.world, split=split)
    elif config.source == "digits":
        dataset = DigitsDataset(config.digits, split=split)
    else:
        dataset = _user_dataset(config, split, rank, world_size, require_captions)
    mean = config.mean or getattr(dataset, "mean", None) or IMAGENET_MEAN
    std = config.std or getattr(dataset, "std", None) or IMAGENET_STD
    dataset.mean, dataset.std = tuple(mean), tuple(std)
    dataset.transform = make_transform(config, augmentation, mean, std)
    return dataset


def _user_dataset(
    config: DataConfig, split: str, rank: int | None, world_size: int | None, require_captions: bool
) -> Dataset | IterableDataset:
    path = config.path if split == "train" else config.eval_path
    if path is None:
        raise ValueError(f"data source {config.source!r} has no eval_path; set data.eval_path to evaluate")
    if config.source == "webdataset":
        return WebDatasetShards(
            path,
            label_keys=tuple(config.label_keys),
            require_caption=require_captions,
            max_caption_chars=config.max_caption_chars,
            shuffle_shards=split == "train",
            shuffle_buffer=config.shuffle_buffer if split == "train" else 0,
            seed=config.shuffle_seed,
            rank=rank,
            world_size=world_size,
        )
    if config.source == "csv":
        return CsvPairs(
            path,
            img_key=config.csv_img_key,
            caption_key=config.csv_caption_key,
            separator=config.csv_separator,
            image_root=config.image_root,
            label_keys=tuple(config.label_keys),
            require_caption=require_captions,
            max_caption_chars=config.max_caption_chars,
            max_image_bytes=config.max_image_bytes,
            allow_outside_root=config.allow_outside_root,
        )
    if config.source == "coco":
        if config.image_root is None:
            raise ValueError("data source 'coco' needs image_root (the folder of the images)")
        return CocoCaptions(
            path,
            config.image_root,
            max_caption_chars=config.max_caption_chars,
            max_image_bytes=config.max_image_bytes,
            allow_outside_root=config.allow_outside_root,
        )
    return ImageFolder(path, max_image_bytes=config.max_image_bytes)
