"""Image-only data laid out as ``root/CLASS/**/*.jpg`` (torchvision's ImageFolder layout), for MAE and
SimCLR runs and for linear probes.

Class names are the sorted sub-folder names of ``root`` and ``labels["class"]`` their index, as in
torchvision. Captions are ``""`` and ``has_captions`` is False, so a caption objective can refuse the
dataset early. Unreadable images are skipped and counted (`infomug.data.bad_samples.FallbackDataset`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .bad_samples import DEFAULT_MAX_WORKERS, FallbackDataset
from .decode import IMAGE_EXTENSIONS, Transform, apply_transform, load_image_file
from .sample import Sample

logger = logging.getLogger(__name__)


class ImageFolder(FallbackDataset):
    """Map-style dataset of the images under ``root``'s class folders, searched recursively.

    Args:
        root: folder with one sub-folder per class.
        transform: applied to each float ``[3, H, W]`` image in [0, 1]; None keeps it.
        extensions: file extensions taken as images (case-insensitive, without dot).
        max_workers: most DataLoader workers the bad-sample counters have rows for.

    Raises:
        FileNotFoundError: if ``root`` does not exist.
        ValueError: if ``root`` has no class folder or no image.

    Attributes:
        classes: sorted class names; ``labels["class"]`` indexes them.
        class_to_idx: ``{name: index}``.
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
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}")
        super().__init__(str(root), max_workers)
        self.root = root
        self.transform = transform
        self.classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
        if not self.classes:
            raise ValueError(f"{root} has no class sub-folders (expected root/CLASS/image.jpg)")
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        suffixes = {"." + extension.lower().lstrip(".") for extension in extensions}
        self._files: list[tuple[Path, int]] = []
        for name, index in self.class_to_idx.items():
            found = sorted(
                path
                for path in (root / name).rglob("*")
                if path.suffix.lower() in suffixes and path.is_file()
            )
            if not found:
                logger.warning(
                    "%s: class folder %r holds no image; its index %d stays unused", root, name, index
                )
            self._files.extend((path, index) for path in found)
        if not self._files:
            raise ValueError(f"{root}: no image with extension in {sorted(suffixes)} under its class folders")

    def __len__(self) -> int:
        return len(self._files)

    @property
    def files(self) -> list[tuple[Path, int]]:
        """``(image path, class index)`` of every image found, in sample order."""
        return list(self._files)

    def _load(self, index: int) -> Sample:
        path, label = self._files[index]
        image = load_image_file(path)
        return {"image": apply_transform(image, self.transform), "caption": "", "labels": {"class": label}}
