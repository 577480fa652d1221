"""Image-caption pairs listed in a CSV/TSV file, with open_clip's defaults.

open_clip's ``--train-data pairs.csv`` reads a tab-separated file with columns ``filepath`` and
``title``; the same file works here unchanged::

    filepath        title
    images/0.jpg    a red circle on a blue background

Relative image paths: open_clip opens each path as written, so they resolve against the working
directory. Here they resolve against ``image_root`` if given; else against the working directory
(open_clip's rule) or the CSV's folder, whichever holds more of the first `PATH_CHECKS` relative paths
(ties go to open_clip's rule). The rule used is logged and kept as ``path_rule``.

Rows with a missing, empty or over-long caption, or an image path outside the image root, are found while
the file is read: they are left out and counted. Unreadable or missing images are found when loaded: the
row is a `Skipped` marker the collate drops, and is counted (see `infomug.data.bad_samples`). No row is
ever replaced by another. With ``require_caption=False`` (image-only objectives) the caption column may be
absent and rows without a caption are kept, with caption ``""``.

A TSV may come from anywhere, so an image path is read only if it names a regular file (not
``/dev/zero``, not a FIFO) of at most ``max_image_bytes``, and, unless ``allow_outside_root``, resolves
(``..``, an absolute path, a symlink) inside the image root (see `infomug.data.decode.load_image_file`).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .bad_samples import (
    DEFAULT_MAX_CAPTION_CHARS,
    DEFAULT_MAX_WORKERS,
    BadSample,
    FallbackDataset,
    caption_problem,
)
from .decode import DEFAULT_MAX_IMAGE_BYTES, Transform, apply_transform, load_image_file, spelled_inside
from .sample import Sample

logger = logging.getLogger(__name__)

PATH_CHECKS = 64
"""Relative image paths looked up to choose the folder they resolve against (a stat each, twice)."""


def _parse_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def resolve_image_root(
    csv_path: str | os.PathLike, images: Sequence[str], image_root: str | os.PathLike | None = None
) -> tuple[Path, str]:
    """The folder the relative paths among ``images`` resolve against, and a sentence saying which rule.

    ``image_root`` if given; else the working directory (open_clip's rule) unless the CSV's folder holds
    more of the first `PATH_CHECKS` relative paths. Both folders are absolute, so that a later change of
    working directory (a notebook, a DataLoader worker) does not move the images.

    Args:
        csv_path: the CSV/TSV file.
        images: the image column, as written.
        image_root: an explicit folder (``data.image_root``).

    Returns:
        ``(folder, rule)``; ``rule`` names the folder and, when detected, how many paths exist where.
    """
    if image_root is not None:
        return Path(image_root), f"relative image paths resolve against image_root {image_root}"
    cwd, folder = Path.cwd(), Path(csv_path).resolve().parent
    relative = [image for image in images if image and not os.path.isabs(image)][:PATH_CHECKS]
    if not relative:
        return cwd, "image paths are absolute"
    if folder == cwd:
        return cwd, f"relative image paths resolve against the working directory {cwd}, the CSV's folder"
    in_cwd = sum((cwd / image).is_file() for image in relative)
    in_folder = sum((folder / image).is_file() for image in relative)
    if in_cwd == in_folder == 0:
        logger.warning(
            "%s: none of the first %d relative image paths (e.g. %s) exists under the working directory %s"
            " or the CSV's folder %s; set data.image_root to the folder they are relative to",
            csv_path,
            len(relative),
            relative[0],
            cwd,
            folder,
        )
    checked = f"of the first {len(relative)} relative paths"
    if in_folder > in_cwd:
        return folder, (
            f"relative image paths resolve against the CSV's folder {folder} ({in_folder} {checked} exist"
            f" there, {in_cwd} under the working directory {cwd}; data.image_root overrides)"
        )
    return cwd, (
        f"relative image paths resolve against the working directory {cwd}, open_clip's rule ({in_cwd}"
        f" {checked} exist there, {in_folder} under the CSV's folder {folder}; data.image_root overrides)"
    )


class CsvPairs(FallbackDataset):
    """Map-style dataset of ``(image file, caption)`` rows.

    Args:
        path: the CSV/TSV file.
        transform: applied to each float ``[3, H, W]`` image in [0, 1]; None keeps it.
        img_key: column of image paths (open_clip's ``--csv-img-key``).
        caption_key: column of captions (``--csv-caption-key``).
        separator: field separator (``--csv-separator``); ``","`` for CSV.
        image_root: folder relative paths are resolved against; None = the working directory or the
            CSV's folder, detected (see `resolve_image_root`).
        label_keys: numeric columns kept as ``labels`` (int if they parse as int, else float); a row
            whose value does not parse is skipped as ``bad_labels``.
        require_caption: skip rows without a usable caption; False for image-only objectives (the
            caption column may then be missing; captions are ``""`` where absent).
        max_caption_chars: longer captions are skipped as ``caption_too_long``.
        max_image_bytes: larger image files are skipped as ``image_too_large``.
        allow_outside_root: read image paths that resolve outside the image root (else skipped as
            ``outside_root``).
        max_workers: most DataLoader workers the bad-sample counters have rows for.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if a named column is missing, the file has no rows, no row is usable, or
            ``max_image_bytes < 1``.

    Attributes:
        has_captions: ``require_caption``.
        image_root: the folder relative image paths resolve against.
        path_rule: a sentence saying which folder that is and why.
        bad_samples: `BadSampleCounts`, workers included.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        transform: Transform | None = None,
        img_key: str = "filepath",
        caption_key: str = "title",
        separator: str = "\t",
        image_root: str | os.PathLike | None = None,
        label_keys: Sequence[str] = (),
        require_caption: bool = True,
        max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        allow_outside_root: bool = False,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"CSV file not found: {path}")
        if max_caption_chars < 1:
            raise ValueError(f"max_caption_chars must be >= 1, got {max_caption_chars}")
        if max_image_bytes < 1:
            raise ValueError(f"max_image_bytes must be >= 1, got {max_image_bytes}")
        if isinstance(label_keys, str):
            raise ValueError("label_keys must be a sequence of column names, not a single string")
        super().__init__(str(path), max_workers)
        self.path = path
        self.transform = transform
        self.has_captions = require_caption
        # utf-8-sig: spreadsheet programs start UTF-8 files with a byte-order mark, which would otherwise
        # stick to the first column's name (pandas, which open_clip reads with, drops it too).
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=separator)
            columns = reader.fieldnames or []
            needed = (img_key, caption_key) if require_caption or caption_key in columns else (img_key,)
            for column in (*needed, *label_keys):
                if column not in columns:
                    raise ValueError(
                        f"{path}: no column {column!r} (columns: {columns}, separator {separator!r}); "
                        "set img_key / caption_key / separator to match the file"
                    )
            rows = [(reader.line_num, row) for row in reader]
        if not rows:
            raise ValueError(f"{path} has a header but no rows")
        self.image_root, self.path_rule = resolve_image_root(
            path, [row.get(img_key) or "" for _, row in rows], image_root
        )
        logger.info("%s: %s", path, self.path_rule)
        self.max_image_bytes = max_image_bytes
        self._root = None if allow_outside_root else self.image_root
        self._images: list[Path] = []
        self._captions: list[str] = []
        self._labels: list[dict[str, int | float]] = []
        self._lines: list[int] = []
        unlisted: Counter[str] = Counter()
        for line, row in rows:
            name = f"{path} line {line}: {row.get(img_key)}"
            image, caption = row.get(img_key), row.get(caption_key)
            try:
                problem = caption_problem(caption, max_caption_chars)
                if problem is not None and (require_caption or problem == "caption_too_long"):
                    raise BadSample(problem, name)
                if not image:
                    raise BadSample("missing_image", name, "empty image path")
                if self._root is not None and not spelled_inside(self.image_root / image, self._root):
                    raise BadSample(
                        "outside_root",
                        name,
                        f"outside the image root {self._root}; set data.allow_outside_root=true to read it",
                    )
                try:
                    labels = {key: _parse_number(row[key]) for key in label_keys}
                except (TypeError, ValueError) as error:
                    raise BadSample("bad_labels", name, str(error)) from error
            except BadSample as bad:
                self._count_unlisted(bad)
                unlisted[bad.reason] += 1
                continue
            self._images.append(self.image_root / image)
            self._captions.append((caption or "").strip())
            self._labels.append(labels)
            self._lines.append(line)
        if not self._images:
            found = ", ".join(f"{reason}: {count}" for reason, count in sorted(unlisted.items()))
            hint = (
                "; set data.image_root to the folder that holds the images, or data.allow_outside_root=true"
                if "outside_root" in unlisted
                else ""
            )
            raise ValueError(f"{path}: none of the {len(rows)} rows is usable ({found}){hint}")

    def __len__(self) -> int:
        return len(self._captions)

    def _load(self, index: int) -> Sample:
        name = f"{self.path} line {self._lines[index]}: {self._images[index]}"
        image = load_image_file(self._images[index], name, root=self._root, max_bytes=self.max_image_bytes)
        return {
            "image": apply_transform(image, self.transform),
            "caption": self._captions[index],
            "labels": dict(self._labels[index]),
        }
