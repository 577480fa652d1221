"""Bad samples are skipped, counted by reason, and never silent.

Web-scale image-text data always holds some broken pairs: images that do not decode, truncated
downloads, missing or empty captions. Readers in `infomug.data` skip such a sample, count it under a
reason from `REASONS`, log a warning the first time a reason occurs (with the sample's key) and expose
the counts as ``dataset.bad_samples`` (a `BadSampleCounts`).

The counts must survive DataLoader worker processes, whose Python objects are copies. So a
`BadSampleTracker` allocates its counters as shared-memory tensors in ``__init__``, before workers
fork (or before the dataset is pickled for spawned workers), with one row per process: row 0 for the
main process, row ``1 + worker_id`` for each worker. A process writes only its own row, so there are
no races and no locks; the caller sums the rows.

`FallbackDataset` is the map-style base, and it skips, never substitutes. Samples found bad while the
listing is read (a missing, empty or over-long caption, a path outside the image root) are left out of
the index and counted then, once. A sample found bad when it is loaded (an image that does not decode)
cannot leave an index a sampler already holds: ``dataset[i]`` returns a `Skipped` marker, counted each time
it is asked for (so one pass counts it once), which `CaptionCollate` and the survey drop, so that no other
sample appears twice in an epoch and statistics are computed over real samples only.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset, get_worker_info

from .sample import Sample

logger = logging.getLogger(__name__)

REASONS: tuple[str, ...] = (
    "unreadable_image",
    "truncated_image",
    "missing_image",
    "missing_caption",
    "empty_caption",
    "caption_too_long",
    "bad_labels",
    "corrupt_shard",
    "not_a_regular_file",
    "image_too_large",
    "outside_root",
    "bad_caption_encoding",
)
"""Why a sample was skipped. ``corrupt_shard``: a tar cut short or with an unreadable member header (the key
names the byte where its damage starts; what follows is lost), or holding fewer samples than the
``_stats.json`` img2dataset wrote beside it lists. ``not_a_regular_file``: an image path naming a directory,
a device, a FIFO or a socket. ``image_too_large``: an image file over ``data.max_image_bytes``.
``outside_root``: an image path that resolves outside the image root (``data.allow_outside_root`` allows
it). ``bad_caption_encoding``: a caption that is not UTF-8."""

DEFAULT_MAX_CAPTION_CHARS = 1000
DEFAULT_MAX_WORKERS = 32
_KEY_BYTES = 256


class BadSample(Exception):
    """Raised inside a reader for one sample that must be skipped.

    Attributes:
        reason: one of `REASONS`.
        key: where the sample lives (``shard.tar:KEY``, ``file.csv row 7: img.jpg``, a path).
        detail: the underlying error, for the log.
    """

    def __init__(self, reason: str, key: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown bad-sample reason {reason!r}; expected one of {REASONS}")
        super().__init__(f"{reason}: {key}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.key = key
        self.detail = detail


def caption_problem(caption: str | None, max_caption_chars: int) -> str | None:
    """The reason ``caption`` is unusable, or None if it is fine.

    Args:
        caption: the caption, or None when the sample has none.
        max_caption_chars: longest caption accepted, in characters after stripping whitespace.

    Returns:
        ``"missing_caption"``, ``"empty_caption"`` (empty or whitespace only), ``"caption_too_long"``
        or None.
    """
    if caption is None:
        return "missing_caption"
    stripped = caption.strip()
    if not stripped:
        return "empty_caption"
    if len(stripped) > max_caption_chars:
        return "caption_too_long"
    return None


@dataclass(frozen=True)
class BadSampleCounts:
    """How many samples were skipped, by reason.

    Attributes:
        counts: ``{reason: count}`` for every reason in `REASONS` (zeros included).
        examples: ``{reason: [key, ...]}``: the first few keys skipped for each reason that occurred.
    """

    counts: dict[str, int]
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of skipped samples over all reasons."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        if self.total == 0:
            return "no bad samples"
        parts = ", ".join(f"{reason}: {count}" for reason, count in self.counts.items() if count)
        return f"{self.total} bad samples ({parts})"


class BadSampleTracker:
    """Per-process counters of skipped samples in shared memory; see the module docstring.

    Args:
        source: what the counts are about (a CSV path, a shard pattern), for log messages.
        max_workers: most DataLoader workers the counters have rows for.
        max_examples: keys kept per reason and process.

    Raises:
        ValueError: if ``max_workers < 0`` or ``max_examples < 1``.
    """

    def __init__(self, source: str, max_workers: int = DEFAULT_MAX_WORKERS, max_examples: int = 5) -> None:
        if max_workers < 0:
            raise ValueError(f"max_workers must be >= 0, got {max_workers}")
        if max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {max_examples}")
        self.source = source
        self.max_workers = max_workers
        self.max_examples = max_examples
        rows = max_workers + 1
        self._counts = torch.zeros(rows, len(REASONS), dtype=torch.int64).share_memory_()
        # Keys as fixed-width UTF-8 bytes, so that examples also cross process boundaries.
        self._examples = torch.zeros(
            rows, len(REASONS), max_examples, _KEY_BYTES, dtype=torch.uint8
        ).share_memory_()

    def _row(self) -> int:
        info = get_worker_info()
        if info is None:
            return 0
        if info.id >= self.max_workers:
            raise ValueError(
                f"DataLoader worker {info.id} has no bad-sample counter row: the dataset was built with "
                f"max_workers={self.max_workers}; build it with max_workers >= num_workers"
            )
        return 1 + info.id

    def check_worker(self) -> None:
        """Fail now, not at the first bad sample mid-epoch, if this worker has no counter row.

        Raises:
            ValueError: if the calling DataLoader worker's id is ``>= max_workers``.
        """
        self._row()

    def record(self, reason: str, key: str, detail: str = "") -> None:
        """Count one skipped sample in this process's row; warn the first time its reason occurs.

        Raises:
            ValueError: for a reason not in `REASONS`, or a worker id past ``max_workers``.
        """
        if reason not in REASONS:
            raise ValueError(f"unknown bad-sample reason {reason!r}; expected one of {REASONS}")
        row, column = self._row(), REASONS.index(reason)
        # Another process may warn for the same reason at the same moment; at most one extra warning.
        if int(self._counts[:, column].sum()) == 0:
            logger.warning(
                "%s: skipping bad sample (%s) %s%s; further ones are counted in .bad_samples",
                self.source,
                reason,
                key,
                f": {detail}" if detail else "",
            )
        seen = int(self._counts[row, column])
        if seen < self.max_examples:
            encoded = key.encode("utf-8")[:_KEY_BYTES]
            slot = self._examples[row, column, seen]
            slot.zero_()
            if encoded:
                slot[: len(encoded)] = torch.frombuffer(bytearray(encoded), dtype=torch.uint8)
        self._counts[row, column] += 1

    def snapshot(self, this_process_only: bool = False) -> BadSampleCounts:
        """Counts summed over the main process and every worker (or only the calling process)."""
        rows = [self._row()] if this_process_only else range(self._counts.shape[0])
        counts = {reason: 0 for reason in REASONS}
        examples: dict[str, list[str]] = {}
        for row in rows:
            for column, reason in enumerate(REASONS):
                count = int(self._counts[row, column])
                counts[reason] += count
                for slot in range(min(count, self.max_examples)):
                    kept = examples.setdefault(reason, [])
                    if len(kept) < self.max_examples:
                        raw = bytes(self._examples[row, column, slot].tolist()).rstrip(b"\0")
                        kept.append(raw.decode("utf-8", errors="ignore"))
        return BadSampleCounts(counts, examples)

    def reset(self) -> None:
        """Zero every row (call in the main process while no worker is running)."""
        self._counts.zero_()
        self._examples.zero_()

    def log_summary(self, context: str, this_process_only: bool = False) -> BadSampleCounts:
        """Log the counts (a warning if any sample was skipped) and return them."""
        counts = self.snapshot(this_process_only)
        level = logging.WARNING if counts.total else logging.DEBUG
        logger.log(level, "%s (%s): %s", self.source, context, counts)
        return counts


class Skipped(dict):
    """What a `FallbackDataset` returns for an index found bad when loaded: a marker to drop, not a sample.

    Collates (`infomug.data.collate.CaptionCollate`) and `infomug.data.survey.iter_samples` drop it. It
    holds the next good sample's fields only so that code which stacks samples without looking still runs;
    such code sees that sample twice.
    """


def is_skipped(sample: object) -> bool:
    """Whether ``sample`` is a `Skipped` marker, which must not be trained on or counted as data."""
    return isinstance(sample, Skipped)


class FallbackDataset(Dataset):
    """Map-style base that skips bad samples; see the module docstring.

    Subclasses list only the samples that passed the checks made while reading the listing (counting the
    others with `_count_unlisted`), implement ``__len__`` and ``_load(index) -> Sample``, which raises
    `BadSample`. For a bad index ``i``, ``dataset[i]`` is a `Skipped` marker holding the first good sample
    among ``i + 1, i + 2, ...`` (modulo the length). Samples found bad are remembered per process and not
    decoded again.

    Args:
        source: the file the samples come from, named in errors and logs.
        max_workers: most DataLoader workers the bad-sample counters have rows for.
    """

    def __init__(self, source: str, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        self.source = source
        self._tracker = BadSampleTracker(source, max_workers)
        self._known_bad: dict[int, BadSample] = {}

    @property
    def bad_samples(self) -> BadSampleCounts:
        """Skipped samples so far, over the main process and all workers, by reason."""
        return self._tracker.snapshot()

    def log_bad_samples(self, context: str = "so far") -> BadSampleCounts:
        """Log a summary of the skipped samples (call at the end of an epoch) and return it."""
        return self._tracker.log_summary(context)

    def _load(self, index: int) -> Sample:
        raise NotImplementedError

    def _count_unlisted(self, bad: BadSample) -> None:
        """Count a sample found bad while reading the listing, and so never given an index."""
        self._tracker.record(bad.reason, bad.key, bad.detail)

    def __getitem__(self, index: int) -> Sample:
        self._tracker.check_worker()
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for {size} samples of {self.source}")
        index %= size
        for step in range(size):
            position = (index + step) % size
            bad = self._known_bad.get(position)
            if bad is None:
                try:
                    sample = self._load(position)
                    return sample if step == 0 else Skipped(sample)
                except BadSample as error:
                    bad = error
                    self._known_bad[position] = bad
            if step == 0:
                self._tracker.record(bad.reason, bad.key, bad.detail)
        # Only the index asked for is counted in `bad_samples`; the message counts every sample tried.
        reasons = Counter(bad.reason for bad in self._known_bad.values())
        found = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
        example = self._known_bad[index]
        raise ValueError(f"every one of the {size} samples of {self.source} is bad ({found}); e.g. {example}")
