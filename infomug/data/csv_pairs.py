"""Image-caption pairs listed in a CSV/TSV file, with open_clip's defaults.

open_clip's ``--train-data pairs.csv`` reads a tab-separated file with columns ``filepath`` and
``title``; the same file works here unchanged::

    filepath        title
    images/0.jpg    a red circle on a blue background

Relative image paths are resolved against the CSV's folder (or ``image_root``). Rows with a missing,
empty or over-long caption are found while the file is read; unreadable or missing images when they
are loaded. Either way a bad row returns the next good one and is counted (see
`infomug.data.bad_samples.FallbackDataset`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from .bad_samples import (
    DEFAULT_MAX_CAPTION_CHARS,
    DEFAULT_MAX_WORKERS,
    BadSample,
    FallbackDataset,
    caption_problem,
)
from .decode import Transform, apply_transform, load_image_file
from .sample import Sample


def _parse_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


class CsvPairs(FallbackDataset):
    """Map-style dataset of ``(image file, caption)`` rows.

    Args:
        path: the CSV/TSV file.
        transform: applied to each float ``[3, H, W]`` image in [0, 1]; None keeps it.
        img_key: column of image paths (open_clip's ``--csv-img-key``).
        caption_key: column of captions (``--csv-caption-key``).
        separator: field separator (``--csv-separator``); ``","`` for CSV.
        image_root: folder relative paths are resolved against; default the CSV's folder.
        label_keys: numeric columns kept as ``labels`` (int if they parse as int, else float); a row
            whose value does not parse is skipped as ``bad_labels``.
        max_caption_chars: longer captions are skipped as ``caption_too_long``.
        max_workers: most DataLoader workers the bad-sample counters have rows for.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if a named column is missing, the file has no rows, or no row has a usable caption.

    Attributes:
        has_captions: True.
        bad_samples: `BadSampleCounts`, workers included.
    """

    has_captions = True

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
        max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"CSV file not found: {path}")
        if max_caption_chars < 1:
            raise ValueError(f"max_caption_chars must be >= 1, got {max_caption_chars}")
        if isinstance(label_keys, str):
            raise ValueError("label_keys must be a sequence of column names, not a single string")
        super().__init__(str(path), max_workers)
        self.path = path
        self.transform = transform
        self.image_root = Path(image_root) if image_root is not None else path.parent
        # utf-8-sig: spreadsheet programs start UTF-8 files with a byte-order mark, which would otherwise
        # stick to the first column's name (pandas, which open_clip reads with, drops it too).
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=separator)
            columns = reader.fieldnames or []
            for column in (img_key, caption_key, *label_keys):
                if column not in columns:
                    raise ValueError(
                        f"{path}: no column {column!r} (columns: {columns}, separator {separator!r}); "
                        "set img_key / caption_key / separator to match the file"
                    )
            rows = [(reader.line_num, row) for row in reader]
        if not rows:
            raise ValueError(f"{path} has a header but no rows")
        self._images: list[Path] = []
        self._captions: list[str] = []
        self._labels: list[dict[str, int | float]] = []
        self._lines: list[int] = []
        for index, (line, row) in enumerate(rows):
            name = f"{path} line {line}: {row.get(img_key)}"
            self._lines.append(line)
            image, caption = row.get(img_key), row.get(caption_key)
            self._images.append(self.image_root / image if image else Path())
            self._captions.append((caption or "").strip())
            self._labels.append({})
            problem = caption_problem(caption, max_caption_chars)
            if problem is not None:
                self._mark_bad(index, BadSample(problem, name))
            elif not image:
                self._mark_bad(index, BadSample("missing_image", name, "empty image path"))
            else:
                try:
                    self._labels[index] = {key: _parse_number(row[key]) for key in label_keys}
                except (TypeError, ValueError) as error:
                    self._mark_bad(index, BadSample("bad_labels", name, str(error)))
        if len(self._known_bad) == len(rows):
            reasons = sorted({bad.reason for bad in self._known_bad.values()})
            raise ValueError(f"{path}: none of the {len(rows)} rows is usable ({', '.join(reasons)})")

    def __len__(self) -> int:
        return len(self._captions)

    def _load(self, index: int) -> Sample:
        name = f"{self.path} line {self._lines[index]}: {self._images[index]}"
        image = load_image_file(self._images[index], name)
        return {
            "image": apply_transform(image, self.transform),
            "caption": self._captions[index],
            "labels": dict(self._labels[index]),
        }
