"""Look at a dataset before training on it: how many samples are usable, how many carry a caption and so
which objectives the data serves, what the captions look like, what the embedded data's factors are worth in
nats, and a grid of images with their captions.

`infomug data` prints a `DataSurvey`; the library calls are `survey_dataset` and `save_sample_grid`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset
from tqdm.auto import tqdm

from .bad_samples import BadSampleCounts, is_skipped
from .sample import Sample


@dataclass
class DataSurvey:
    """What a pass over (part of) a dataset found.

    Attributes:
        name: what was surveyed (source and path).
        samples: usable samples among those read (bad ones are skipped, never replaced by another).
        image_shape: shape of the (transformed) images, ``[3, S, S]``.
        caption_chars: ``{"min", "median", "max"}`` caption length in characters ({} if image-only).
        captions: the first few captions, in order.
        labels: label names every sample carries.
        bad_samples: counts by reason, with examples (None for generated data, which has none).
        factor_entropies: exact entropy of each factor in nats, where the data knows it.
        caption_information: exact I(caption; factor) in nats, where the data knows it.
        captioned: usable samples with a non-empty caption.
        serves: ``{objective: samples it would train on}`` for the objectives asked about: all usable
            samples for an image-only objective, the captioned ones for a caption objective (0: not served).
        path_rule: where a CSV's relative image paths resolve, and why ("" for other sources).
    """

    name: str
    samples: int
    image_shape: tuple[int, ...]
    caption_chars: dict[str, float]
    captions: list[str]
    labels: list[str]
    bad_samples: BadSampleCounts | None = None
    factor_entropies: dict[str, float] = field(default_factory=dict)
    caption_information: dict[str, float] = field(default_factory=dict)
    captioned: int = 0
    serves: dict[str, int] = field(default_factory=dict)
    path_rule: str = ""

    def served(self) -> str:
        """E.g. ``"serves mae, simclr; not mug, clip"``: which of `serves` train on this data, and on what."""
        every = [name for name, count in self.serves.items() if count == self.samples]
        some = [name for name, count in self.serves.items() if 0 < count < self.samples]
        none = [name for name, count in self.serves.items() if count == 0]
        parts = [f"serves {', '.join(every)}"] if every else []
        if some:
            skipped = self.samples - self.captioned
            parts.append(
                f"{', '.join(some)} on the {self.captioned:,} captioned (the other {skipped:,} skipped)"
            )
        if none:
            parts.append(f"not {', '.join(none)}")
        return "; ".join(parts)

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.samples:,} good samples, images {list(self.image_shape)}"]
        if self.serves:
            lines.append(f"captions: {self.captioned:,} of {self.samples:,} samples \u2192 {self.served()}")
        if self.path_rule:
            lines.append(f"image paths: {self.path_rule}")
        if self.caption_chars:
            stats = ", ".join(f"{key} {value:g}" for key, value in self.caption_chars.items())
            lines.append(f"caption length (characters): {stats}")
        if self.bad_samples is not None:
            lines.append(f"bad samples: {self.bad_samples}")
            for reason, keys in self.bad_samples.examples.items():
                lines.append(f"  {reason}: e.g. {', '.join(map(str, keys[:3]))}")
        if self.labels:
            lines.append(f"labels: {', '.join(self.labels)}")
        if self.factor_entropies:
            lines.append("factor                 H(factor) nats   I(caption; factor) nats")
            for name, entropy in self.factor_entropies.items():
                # "+ 0.0" turns a -0.0 (a constant factor) into 0.0.
                entropy, information = entropy + 0.0, self.caption_information.get(name, math.nan) + 0.0
                lines.append(f"  {name:<20} {entropy:>14.4f}   {information:>22.4f}")
            lines.append("  (continuous factors: differential entropy, can be negative)")
        lines += [f"  \u201c{caption}\u201d" for caption in self.captions]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of everything above."""
        bad = None
        if self.bad_samples is not None:
            bad = {"counts": self.bad_samples.counts, "examples": self.bad_samples.examples}
        return {
            "name": self.name,
            "samples": self.samples,
            "image_shape": list(self.image_shape),
            "caption_chars": self.caption_chars,
            "captions": self.captions,
            "labels": self.labels,
            "bad_samples": bad,
            "factor_entropies": self.factor_entropies,
            "caption_information": self.caption_information,
            "captioned": self.captioned,
            "serves": self.serves,
            "path_rule": self.path_rule,
        }


def iter_samples(dataset: Dataset | IterableDataset, limit: int | None = None) -> Iterable[Sample]:
    """The first ``limit`` usable samples (all if None) of a map-style or iterable dataset, in order.

    A map-style reader's `Skipped` markers (bad samples, counted by the reader) are left out.
    """
    if isinstance(dataset, IterableDataset):
        return itertools.islice(dataset, limit)
    samples = (dataset[index] for index in range(len(dataset)))
    return itertools.islice((sample for sample in samples if not is_skipped(sample)), limit)


def survey_dataset(
    dataset: Dataset | IterableDataset,
    name: str,
    limit: int | None = None,
    show: int = 5,
    *,
    objectives: Sequence[str] = (),
    caption_objectives: Sequence[str] = (),
) -> DataSurvey:
    """Read up to ``limit`` samples (all if None) and summarise them.

    Bad samples are skipped and counted by the readers themselves; the survey reports their counts. To
    say which objectives the data serves, build the dataset with ``require_captions=False`` (see
    `infomug.data.build_dataset`), so that samples without a caption are read, not skipped.

    Args:
        dataset: any dataset of `Sample` (map-style or iterable).
        name: label for the report.
        limit: most samples to read.
        show: how many captions to keep as examples.
        objectives: objective names to report on in `DataSurvey.serves` (none: no report).
        caption_objectives: those among ``objectives`` that need a caption per sample.

    Returns:
        A `DataSurvey`.

    Raises:
        ValueError: if ``limit`` is not positive, or no sample could be read.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    count, captioned, image_shape, lengths, captions, labels = 0, 0, (), [], [], None
    total = None if isinstance(dataset, IterableDataset) else min(limit or len(dataset), len(dataset))
    for sample in tqdm(iter_samples(dataset, limit), total=total, desc=name, disable=None, leave=False):
        count += 1
        image_shape = tuple(sample["image"].shape)
        if sample["caption"]:
            captioned += 1
            lengths.append(len(sample["caption"]))
            if len(captions) < show:
                captions.append(sample["caption"])
        names = set(sample["labels"])
        labels = names if labels is None else labels & names
    bad_samples = getattr(dataset, "bad_samples", None)
    if count <= 0:
        raise ValueError(f"{name}: no usable sample")
    caption_chars = {}
    if lengths:
        caption_chars = {"min": min(lengths), "median": float(np.median(lengths)), "max": max(lengths)}
    known = getattr(dataset, "factor_entropies", None)
    information = getattr(dataset, "caption_information", None)
    return DataSurvey(
        name=name,
        samples=count,
        image_shape=image_shape,
        caption_chars=caption_chars,
        captions=captions,
        labels=sorted(labels or ()),
        bad_samples=bad_samples,
        factor_entropies=dict(known()) if callable(known) else {},
        caption_information=dict(information()) if callable(information) else {},
        captioned=captioned,
        serves={
            objective: captioned if objective in caption_objectives else count for objective in objectives
        },
        path_rule=getattr(dataset, "path_rule", ""),
    )


def save_sample_grid(
    samples: Sequence[Sample],
    path: str | os.PathLike,
    mean: Sequence[float],
    std: Sequence[float],
    columns: int = 4,
) -> None:
    """Save images with their captions underneath as a PNG.

    Args:
        samples: `Sample`s whose images are normalised ``[3, S, S]`` (a two-view image shows its first view).
        path: the PNG to write (folders are created).
        mean, std: the statistics the images were normalised with.
        columns: images per row.

    Raises:
        ValueError: if ``samples`` is empty or ``columns`` is not positive.
    """
    if not samples:
        raise ValueError("no samples to draw")
    if columns < 1:
        raise ValueError(f"columns must be positive, got {columns}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(samples) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    shift = torch.tensor(mean).view(3, 1, 1)
    scale = torch.tensor(std).view(3, 1, 1)
    for axis in axes.flat:
        axis.axis("off")
    for axis, sample in zip(axes.flat, samples, strict=False):
        image = sample["image"][0] if sample["image"].dim() == 4 else sample["image"]
        pixels = (image * scale + shift).clamp(0, 1).permute(1, 2, 0).numpy()
        axis.imshow(pixels, interpolation="nearest")
        axis.set_title(_wrap(sample["caption"] or "(no caption)"), fontsize=7)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _wrap(text: str, width: int = 34, lines: int = 3) -> str:
    words, out, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    out.append(line)
    return "\n".join(out[:lines]) + (" ..." if len(out) > lines else "")
