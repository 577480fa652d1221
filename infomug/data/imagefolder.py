"""Image-only data for MAE and SimCLR runs and for linear probes, in one of two layouts:

- ``root/CLASS/**/*.jpg`` (torchvision's ImageFolder layout): class names are the sorted sub-folder names
  of ``root`` and ``labels["class"]`` their index, as in torchvision;
- ``root/*.jpg`` (a flat folder of photos): the images directly under ``root``, not its sub-folders, with
  no label (``labels`` is ``{}``).

A root whose sub-folders hold images is the class layout (images beside the class folders are left out,
with a warning); one whose sub-folders hold none (or that has none) is flat. Captions are ``""`` and
``has_captions`` is False, so a caption objective can refuse the dataset early. Unreadable images are
skipped and counted (`infomug.data.bad_samples.FallbackDataset`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .bad_samples import DEFAULT_MAX_WORKERS, FallbackDataset
from .decode import DEFAULT_MAX_IMAGE_BYTES, IMAGE_EXTENSIONS, Transform, apply_transform, load_image_file
from .sample import Sample

logger = logging.getLogger(__name__)


class ImageFolder(FallbackDataset):
    """Map-style dataset of the images under ``root``'s class folders, searched recursively, or, when no
    sub-folder holds an image, of the images directly under ``root`` (unlabelled).

    Args:
        root: folder with one sub-folder per class, or a flat folder of images.
        transform: applied to each float ``[3, H, W]`` image in [0, 1]; None keeps it.
        extensions: file extensions taken as images (case-insensitive, without dot).
        max_image_bytes: larger image files are skipped as ``image_too_large``.
        max_workers: most DataLoader workers the bad-sample counters have rows for.

    Raises:
        FileNotFoundError: if ``root`` does not exist.
        ValueError: if ``root`` holds no image, in its class folders or directly under it.

    Attributes:
        classes: sorted class names; ``labels["class"]`` indexes them (``[]`` for a flat folder).
        class_to_idx: ``{name: index}``.
        labelled: True for the class layout, False for a flat folder (samples' ``labels`` are ``{}``).
        has_captions: False.
        bad_samples: `BadSampleCounts`, workers included.
    """

    has_captions = False

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        transform: Transform | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}")
        if max_image_bytes < 1:
            raise ValueError(f"max_image_bytes must be >= 1, got {max_image_bytes}")
        super().__init__(str(root), max_workers)
        self.root = root
        self.max_image_bytes = max_image_bytes
        self.transform = transform
        suffixes = {"." + extension.lower().lstrip(".") for extension in extensions}
        folders = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
        in_folders = {name: _images_in((root / name).rglob("*"), suffixes) for name in folders}
        beside = _images_in(root.iterdir(), suffixes)
        self._files: list[tuple[Path, int | None]] = []
        if any(in_folders.values()):
            self.classes = folders
            self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
            for name, index in self.class_to_idx.items():
                if not in_folders[name]:
                    logger.warning(
                        "%s: class folder %r holds no image; its index %d stays unused", root, name, index
                    )
                self._files.extend((path, index) for path in in_folders[name])
            if beside:
                logger.warning(
                    "%s: %d images lie beside the class folders, not in one, and are left out (e.g. %s)",
                    root,
                    len(beside),
                    beside[0].name,
                )
        else:
            self.classes, self.class_to_idx = [], {}
            self._files.extend((path, None) for path in beside)
        if not self._files:
            raise ValueError(
                f"{root}: no image with extension in {sorted(suffixes)}, neither directly under it (a flat"
                " folder, root/image.jpg) nor in class sub-folders (root/CLASS/image.jpg)"
            )

    @property
    def labelled(self) -> bool:
        """True for the class layout (``labels["class"]``), False for a flat folder (no label)."""
        return bool(self.classes)

    def __len__(self) -> int:
        return len(self._files)

    @property
    def files(self) -> list[tuple[Path, int | None]]:
        """``(image path, class index)`` of every image found, in sample order; the index is None in a flat
        folder."""
        return list(self._files)

    def _load(self, index: int) -> Sample:
        path, label = self._files[index]
        image = load_image_file(path, max_bytes=self.max_image_bytes)
        labels = {} if label is None else {"class": label}
        return {"image": apply_transform(image, self.transform), "caption": "", "labels": labels}


def _images_in(paths: Iterable[Path], suffixes: set[str]) -> list[Path]:
    return sorted(path for path in paths if path.suffix.lower() in suffixes and path.is_file())
