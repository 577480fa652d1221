"""COCO Captions (``annotations/captions_train2017.json`` + ``train2017/*.jpg``) as image-caption pairs.

The JSON holds ``images: [{id, file_name, ...}]`` and ``annotations: [{image_id, caption, ...}]``
(about five captions per image). By default there is one sample per annotation, so an epoch sees each
image about five times with different captions; ``per_image=True`` gives one sample per image with its
first caption (file order), for evaluation. ``labels["image_id"]`` carries COCO's image id, which
groups the captions of one image (retrieval metrics need it).

Bad samples are skipped and counted as in `infomug.data.bad_samples.FallbackDataset`: annotations with
an unusable caption, an unknown ``image_id`` or a ``file_name`` outside ``image_root`` are left out while
the JSON is read, unreadable images are dropped when loaded. Images are read as a TSV's are (regular files
only, at most ``max_image_bytes``; see `infomug.data.decode.load_image_file`).
"""

from __future__ import annotations

import json
import os
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


class CocoCaptions(FallbackDataset):
    """Map-style dataset over a COCO captions JSON.

    Args:
        annotations: the captions JSON file.
        image_root: folder holding the images named by ``file_name``.
        transform: applied to each float ``[3, H, W]`` image in [0, 1]; None keeps it.
        per_image: one sample per image with its first usable caption (file order), instead of one per
            annotation. Images with no usable caption are skipped as ``missing_caption``.
        max_caption_chars: longer captions are skipped as ``caption_too_long``.
        max_image_bytes: larger image files are skipped as ``image_too_large``.
        allow_outside_root: read ``file_name``s that resolve outside ``image_root`` (else skipped as
            ``outside_root``).
        max_workers: most DataLoader workers the bad-sample counters have rows for.

    Raises:
        FileNotFoundError: if ``annotations`` or ``image_root`` does not exist.
        ValueError: if the JSON does not have the COCO captions layout, no sample is usable, or
            ``max_image_bytes < 1``.

    Attributes:
        has_captions: True.
        bad_samples: `BadSampleCounts`, workers included.
    """

    has_captions = True

    def __init__(
        self,
        annotations: str | os.PathLike,
        image_root: str | os.PathLike,
        *,
        transform: Transform | None = None,
        per_image: bool = False,
        max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        allow_outside_root: bool = False,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        annotations, image_root = Path(annotations), Path(image_root)
        if not annotations.is_file():
            raise FileNotFoundError(f"COCO annotations file not found: {annotations}")
        if not image_root.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {image_root}")
        if max_caption_chars < 1:
            raise ValueError(f"max_caption_chars must be >= 1, got {max_caption_chars}")
        if max_image_bytes < 1:
            raise ValueError(f"max_image_bytes must be >= 1, got {max_image_bytes}")
        super().__init__(str(annotations), max_workers)
        self.transform = transform
        self.per_image = per_image
        self.max_image_bytes = max_image_bytes
        self._root = None if allow_outside_root else image_root
        try:
            content = json.loads(annotations.read_text(encoding="utf-8"))
            files = {int(image["id"]): str(image["file_name"]) for image in content["images"]}
            pairs = [(int(note["image_id"]), note.get("caption")) for note in content["annotations"]]
            pairs = [(image_id, text if isinstance(text, str) else None) for image_id, text in pairs]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{annotations} is not a COCO captions file (need images[{{id, file_name}}] and "
                f"annotations[{{image_id, caption}}]): {type(error).__name__}: {error}"
            ) from error
        self._samples: list[tuple[int, Path, str]] = []
        self._unlisted: set[str] = set()
        if per_image:
            first: dict[int, str] = {}
            for image_id, caption in pairs:
                if image_id not in first and caption_problem(caption, max_caption_chars) is None:
                    first[image_id] = caption.strip()
            for image_id, file_name in files.items():
                self._add(image_id, image_root / file_name, first.get(image_id), max_caption_chars)
        else:
            for image_id, caption in pairs:
                file_name = files.get(image_id)
                path = image_root / file_name if file_name is not None else None
                self._add(image_id, path, caption, max_caption_chars)
        listed = len(files) if per_image else len(pairs)
        if listed == 0:
            raise ValueError(f"{annotations} lists no {'images' if per_image else 'annotations'}")
        if not self._samples:
            reasons = sorted(self._unlisted)
            raise ValueError(f"{annotations}: none of the {listed} samples is usable ({reasons})")

    def _add(self, image_id: int, path: Path | None, caption: str | None, max_caption_chars: int) -> None:
        name = f"image_id {image_id}: {path}"
        problem = caption_problem(caption, max_caption_chars)
        if path is None:
            bad = BadSample("missing_image", name, "image_id not in images[]")
        elif problem is not None:
            bad = BadSample(problem, name)
        elif self._root is not None and not spelled_inside(path, self._root):
            bad = BadSample(
                "outside_root", name, f"outside {self._root}; set data.allow_outside_root=true to read it"
            )
        else:
            self._samples.append((image_id, path, caption.strip()))
            return
        self._count_unlisted(bad)
        self._unlisted.add(bad.reason)

    def __len__(self) -> int:
        return len(self._samples)

    def _load(self, index: int) -> Sample:
        image_id, path, caption = self._samples[index]
        name = f"image_id {image_id}: {path}"
        image = load_image_file(path, name, root=self._root, max_bytes=self.max_image_bytes)
        return {
            "image": apply_transform(image, self.transform),
            "caption": caption,
            "labels": {"image_id": image_id},
        }
