"""Named downstream tasks: labelled images to fine-tune on, each split into a training pool and a test set.

=====================  ===========================================================================
task                   what it tests
=====================  ===========================================================================
``world_captioned``    the pre-training world's factors that captions name (shape, colour, size,
                       position): what a caption can teach
``world_uncaptioned``  factors captions never name (background texture, the second object's shape and
                       colour): the paper's break condition, information a caption cannot supply
``shifted_world``      the same generator with another palette, textures and object sizes, one object
                       per image (`infomug.data.world_shifted`): out of the pre-training distribution
``digits``             scikit-learn's handwritten digits, upsampled: another domain (no download)
``folder:PATH``        the user's ImageFolder (``PATH/CLASS/*.jpg``), label ``class``
``csv:PATH[:COLUMN]``  the user's CSV/TSV with a ``filepath`` column and a label column (``label``)
=====================  ===========================================================================

A user CSV's relative ``filepath``s resolve as the training reader resolves them
(`infomug.data.csv_pairs.resolve_image_root`): against the working directory, open_clip's rule, unless the
CSV's own folder holds more of them. A folder task needs class sub-folders: a flat folder of photos has
no label to fine-tune on.

World tasks train on the world's training stream (images the encoder was pre-trained on, as ImageNet
fine-tuning reuses ImageNet) and test on its eval stream. Images are kept as uint8 ``[N, 3, S, S]``;
`Task.augmentation` says which augmentation keeps the labels true (world labels describe positions and
colours, so their tasks take none).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infomug.data import DigitsConfig, DigitsDataset, ImageFolder, ShapesWorld, WorldConfig
from infomug.data.bad_samples import BadSample
from infomug.data.csv_pairs import resolve_image_root
from infomug.data.decode import load_image_file
from infomug.data.world_shifted import ShiftedWorld, ShiftedWorldConfig

logger = logging.getLogger(__name__)

BUILTIN_TASKS = ("world_captioned", "world_uncaptioned", "shifted_world", "digits")
DEFAULT_TASKS = ("world_captioned", "world_uncaptioned", "shifted_world", "digits")
CAPTIONED_LABELS = ("shape", "colour", "size_bin", "position_bin")
UNCAPTIONED_LABELS = ("background", "shape_2", "colour_2")
SHIFTED_LABELS = ("shape", "colour", "size_bin", "position_bin")
USER_TEST_FRACTION = 0.2
_USER_SPLIT_SEED = 20261204  # fixed, so every encoder is tested on the same user images
_CHUNK = 1024


@dataclass(frozen=True)
class Augmentation:
    """Augmentation that keeps a task's labels true.

    Attributes:
        crop_scale: range of a random resized crop's area, or None for no crop.
        hflip: flip horizontally with probability 1/2.
    """

    crop_scale: tuple[float, float] | None = None
    hflip: bool = False

    @property
    def none(self) -> bool:
        return self.crop_scale is None and not self.hflip


@dataclass
class Task:
    """A labelled image task.

    Attributes:
        name: the task's name (``"digits"``, ``"folder:/data/birds"``).
        description: one line for tables.
        train_images, test_images: ``[N, 3, S, S]`` uint8.
        train_labels, test_labels: ``{label: [N] int64}`` class indices.
        classes: ``{label: class names}`` in index order; every label has at least 2 classes.
        augmentation: what keeps the labels true (see `Augmentation`).
        domain: ``"pre-training world"``, ``"shifted world"``, ``"digits"`` or ``"user"``.
    """

    name: str
    description: str
    train_images: torch.Tensor
    train_labels: dict[str, np.ndarray]
    test_images: torch.Tensor
    test_labels: dict[str, np.ndarray]
    classes: dict[str, tuple[str, ...]]
    augmentation: Augmentation = field(default_factory=Augmentation)
    domain: str = "user"

    def __post_init__(self) -> None:
        for split, images, labels in (
            ("train", self.train_images, self.train_labels),
            ("test", self.test_images, self.test_labels),
        ):
            if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(
                    f"task {self.name!r}: {split} images must be uint8 [N, 3, S, S], got"
                    f" {images.dtype} {tuple(images.shape)}"
                )
            if not labels:
                raise ValueError(f"task {self.name!r} has no labels")
            for label, values in labels.items():
                if values.shape != (images.shape[0],):
                    raise ValueError(
                        f"task {self.name!r}: label {label!r} has shape {values.shape} for"
                        f" {images.shape[0]} {split} images"
                    )
        for label in self.train_labels:
            if len(self.classes.get(label, ())) < 2:
                raise ValueError(f"task {self.name!r}: label {label!r} needs at least 2 classes")

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.train_labels)


def build_task(spec: str, image_size: int, train_size: int = 10_000, test_size: int = 2_000) -> Task:
    """The task a name or ``folder:PATH`` / ``csv:PATH[:COLUMN]`` spec names, rendered at ``image_size``.

    Args:
        spec: one of `BUILTIN_TASKS`, ``folder:PATH`` or ``csv:PATH[:COLUMN]``.
        image_size: side in pixels of the encoder's input; user images are resized (bicubic, short side)
            and centre-cropped to it.
        train_size, test_size: images of the generated worlds' training pool and test set (digits and
            user data use all they have).

    Raises:
        ValueError: for an unknown task, sizes below 2, or user data with fewer than 2 classes.
        FileNotFoundError: for a user path that does not exist.
    """
    if train_size < 2 or test_size < 2:
        raise ValueError(f"train_size and test_size must be >= 2, got {train_size} and {test_size}")
    if spec in ("world_captioned", "world_uncaptioned"):
        return _world_task(spec, image_size, train_size, test_size)
    if spec == "shifted_world":
        return _shifted_task(image_size, train_size, test_size)
    if spec == "digits":
        return _digits_task(image_size)
    kind, _, rest = spec.partition(":")
    if kind == "folder" and rest:
        return _folder_task(spec, Path(rest), image_size)
    if kind == "csv" and rest:
        path, _, column = rest.partition(":")
        return _csv_task(spec, Path(path), column or "label", image_size)
    raise ValueError(
        f"unknown task {spec!r}: use one of {', '.join(BUILTIN_TASKS)}, folder:PATH or csv:PATH[:COLUMN]"
    )


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def _generated_split(
    world: ShapesWorld | ShiftedWorld, n: int, labels_of: Callable, names: tuple[str, ...]
) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The first ``n`` images of a generated world as uint8, and the labels ``names`` of them."""
    index = np.arange(n)
    images = torch.cat([_to_uint8(world.images(index[i : i + _CHUNK])) for i in range(0, n, _CHUNK)])
    labels = labels_of(index)
    return images, {label: labels[label].astype(np.int64) for label in names}


def _world_task(name: str, image_size: int, train_size: int, test_size: int) -> Task:
    config = WorldConfig(seed=0, size=train_size, eval_size=test_size, image_size=image_size)
    train, test = ShapesWorld(config, split="train"), ShapesWorld(config, split="eval")
    names = CAPTIONED_LABELS if name == "world_captioned" else UNCAPTIONED_LABELS
    classes = train.factor_classes()
    train_images, train_labels = _generated_split(
        train, train_size, lambda index: train.captions_and_labels(index)[1], names
    )
    test_images, test_labels = _generated_split(
        test, test_size, lambda index: test.captions_and_labels(index)[1], names
    )
    captioned = name == "world_captioned"
    return Task(
        name=name,
        description=(
            "pre-training world, factors captions name"
            if captioned
            else "pre-training world, never captioned"
        ),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes={label: classes[label] for label in names},
        domain="pre-training world",
    )


def _shifted_task(image_size: int, train_size: int, test_size: int) -> Task:
    config = ShiftedWorldConfig(seed=0, size=train_size, eval_size=test_size, image_size=image_size)
    train, test = ShiftedWorld(config, split="train"), ShiftedWorld(config, split="eval")
    classes = train.factor_classes()
    train_images, train_labels = _generated_split(train, train_size, train.labels, SHIFTED_LABELS)
    test_images, test_labels = _generated_split(test, test_size, test.labels, SHIFTED_LABELS)
    return Task(
        name="shifted_world",
        description="shifted world: new palette, textures and sizes, one object",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes={label: classes[label] for label in SHIFTED_LABELS},
        domain="shifted world",
    )


def _digits_task(image_size: int) -> Task:
    config = DigitsConfig(image_size=image_size)
    parts = {}
    for split in ("train", "eval"):
        dataset = DigitsDataset(config, split=split)
        images = torch.stack([dataset.image(i) for i in range(len(dataset))])
        parts[split] = (_to_uint8(images), {"digit": dataset.targets})
    return Task(
        name="digits",
        description="handwritten digits (scikit-learn), another domain",
        train_images=parts["train"][0],
        train_labels=parts["train"][1],
        test_images=parts["eval"][0],
        test_labels=parts["eval"][1],
        classes={"digit": tuple(str(d) for d in range(10))},
        augmentation=Augmentation(crop_scale=(0.6, 1.0), hflip=False),  # a flip turns some digits into others
        domain="digits",
    )


def _fit_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """``[3, H, W]`` float in [0, 1] -> ``[3, size, size]``: resize the short side, centre crop."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    resized = F.interpolate(
        image[None],
        size=(max(size, round(height * scale)), max(size, round(width * scale))),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    )[0]
    top, left = (resized.shape[-2] - size) // 2, (resized.shape[-1] - size) // 2
    return resized[:, top : top + size, left : left + size].clamp_(0.0, 1.0)


def _user_task(spec: str, images: list[torch.Tensor], labels: list[str], image_size: int, label: str) -> Task:
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"task {spec!r}: found {len(names)} class(es); a task needs at least 2")
    codes = np.array([names.index(value) for value in labels], dtype=np.int64)
    stack = _to_uint8(torch.stack([_fit_side(image, image_size) for image in images]))
    rng = np.random.default_rng(_USER_SPLIT_SEED)
    test = np.zeros(codes.size, dtype=bool)
    for code in range(len(names)):
        members = rng.permutation(np.flatnonzero(codes == code))
        test[members[: int(round(USER_TEST_FRACTION * members.size))]] = True
    if test.sum() < 2 or (~test).sum() < 2:
        raise ValueError(f"task {spec!r}: {codes.size} images are too few to hold out a test set")
    return Task(
        name=spec,
        description=f"user data ({codes.size} images, {len(names)} classes)",
        train_images=stack[torch.from_numpy(~test)],
        train_labels={label: codes[~test]},
        test_images=stack[torch.from_numpy(test)],
        test_labels={label: codes[test]},
        classes={label: tuple(names)},
        augmentation=Augmentation(crop_scale=(0.2, 1.0), hflip=True),  # MAE's fine-tuning crop and flip
        domain="user",
    )


def _folder_task(spec: str, root: Path, image_size: int) -> Task:
    folder = ImageFolder(root)
    if not folder.labelled:
        raise ValueError(
            f"task {spec!r}: {root} is a flat folder of images, with no label to fine-tune on; put each"
            " class's images in a sub-folder of its own (PATH/CLASS/image.jpg)"
        )
    images, labels = [], []
    for path, code in folder.files:
        try:
            images.append(load_image_file(path))
        except BadSample as problem:
            logger.warning("task %s: skipping %s (%s)", spec, path, problem)
            continue
        labels.append(folder.classes[code])
    return _user_task(spec, images, labels, image_size, "class")


def _csv_task(spec: str, path: Path, column: str, image_size: int) -> Task:
    if not path.is_file():
        raise FileNotFoundError(f"task {spec!r}: no file {path}")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=delimiter))
    header = set(rows[0]) if rows else set()
    for needed in ("filepath", column):
        if needed not in header:
            raise ValueError(f"task {spec!r}: {path} has no column {needed!r} (columns: {sorted(header)})")
    # The training reader's rule, so that a CSV that trains also fine-tunes from the same directory.
    image_root, rule = resolve_image_root(path, [row["filepath"] or "" for row in rows])
    logger.info("task %s: %s", spec, rule)
    images, labels = [], []
    for row in rows:
        value = (row[column] or "").strip()
        file = Path(row["filepath"] or "")
        file = file if file.is_absolute() else image_root / file
        if not value:
            logger.warning("task %s: skipping %s (empty label)", spec, file)
            continue
        try:
            images.append(load_image_file(file))
        except BadSample as problem:
            logger.warning("task %s: skipping %s (%s)", spec, file, problem)
            continue
        labels.append(value)
    return _user_task(spec, images, labels, image_size, column)
