"""COCO Captions (``annotations/captions_train2017.json`` + ``train2017/*.jpg``) as image-caption pairs.

The JSON holds ``images: [{id, file_name, ...}]`` and ``annotations: [{image_id, caption, ...}]``
(about five captions per image). By default there is one sample per annotation, so an epoch sees each
image about five times with different captions; ``per_image=True`` gives one sample per image with its
first caption (file order), for evaluation. ``labels["image_id"]`` carries COCO's image id, which
groups the captions of one image (retrieval metrics need it).

Bad samples are skipped and counted as in `infomug.data.bad_samples.FallbackDataset`: annotations with
an unusable caption or an unknown ``image_id`` while the JSON is read, unreadable images when loaded.
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
from .decode import Transform, apply_transform, load_image_file
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
        max_workers: most DataLoader workers the bad-sample counters have rows for.

    Raises:
        FileNotFoundError: if ``annotations`` or ``image_root`` does not exist.
        ValueError: if the JSON does not have the COCO captions layout, or no sample is usable.

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
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        annotations, image_root = Path(annotations), Path(image_root)
        if not annotations.is_file():
            raise FileNotFoundError(f"COCO annotations file not found: {annotations}")
        if not image_root.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {image_root}")
        if max_caption_chars < 1:
            raise ValueError(f"max_caption_chars must be >= 1, got {max_caption_chars}")
        super().__init__(str(annotations), max_workers)
        self.transform = transform
        self.per_image = per_image
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
        if not self._samples:
            raise ValueError(f"{annotations} lists no {'images' if per_image else 'annotations'}")
        if len(self._known_bad) == len(self._samples):
            reasons = sorted({bad.reason for bad in self._known_bad.values()})
            raise ValueError(f"{annotations}: none of the {len(self._samples)} samples is usable ({reasons})")

    def _add(self, image_id: int, path: Path | None, caption: str | None, max_caption_chars: int) -> None:
        index = len(self._samples)
        name = f"image_id {image_id}: {path}"
        self._samples.append((image_id, path or Path(), (caption or "").strip()))
        problem = caption_problem(caption, max_caption_chars)
        if path is None:
            self._mark_bad(index, BadSample("missing_image", name, "image_id not in images[]"))
        elif problem is not None:
            self._mark_bad(index, BadSample(problem, name))

    def __len__(self) -> int:
        return len(self._samples)

    def _load(self, index: int) -> Sample:
        image_id, path, caption = self._samples[index]
        image = load_image_file(path, f"image_id {image_id}: {path}")
        return {
            "image": apply_transform(image, self.transform),
            "caption": caption,
            "labels": {"image_id": image_id},
        }
