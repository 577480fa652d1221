"""WebDataset tar shards (as img2dataset writes them) read with the standard library's ``tarfile``.

A shard is a tar whose members are grouped into samples by key, the member's path up to the first dot
of its basename: ``000/0001.jpg``, ``000/0001.txt`` and ``000/0001.json`` form the sample
``000/0001``. Images are ``.jpg``, ``.jpeg``, ``.png``, ``.webp`` (others PIL reads too), captions
``.txt``, metadata ``.json``; a ``.cls`` member (a class index) is tolerated and readable as the label
``"cls"``. Other members are ignored.

Why not the ``webdataset`` package: its error handlers (``warn_and_continue`` and friends) skip bad
samples without counting them, and its node/worker splitters are separate, composable pieces whose
exact coverage depends on how they are stacked. Here the whole path is ~300 lines we control: every
skipped sample is counted by reason in shared memory (`infomug.data.bad_samples`), the split over
ranks and workers is one rule that is tested to read every sample exactly once, and there is no
extra dependency. Only local files are read (no ``http://``, ``s3://`` or ``pipe:`` URLs).

Damage: a shard cut short or with an unreadable header is counted as ``corrupt_shard`` under the key and
byte where its damage starts (see `infomug.data.tar_shard`), once, by one reader; the samples before it
are read.

Order: with ``shuffle_shards`` (training) the shard order and the order of the samples within each shard
are drawn anew each epoch from (seed, epoch), the same on every rank and worker. Shuffling within the
shard matters: with one shard per reader and no shuffle buffer, a ``drop_last`` loader would otherwise drop
the same tail every epoch, and those samples would never be trained on. The shard's headers are listed
first, then its samples read in that order, a seek each (local files); a compressed shard, which only reads
forward cheaply, is rotated to start at a random sample instead.

Splitting: readers are ``world_size x num_workers``; reader ``rank * num_workers + worker`` reads
shards ``reader, reader + readers, ...`` of the epoch's (shuffled) shard list. With fewer shards than
readers, every reader streams every shard and keeps the samples whose running index ``i`` satisfies
``i % readers == reader``: still every sample exactly once, at the price of each reader reading all
bytes. Shards of unequal size give ranks unequal sample counts; DDP training should cap steps per
epoch.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from braceexpand import braceexpand
from torch.utils.data import IterableDataset, get_worker_info

from infomug import dist

from .bad_samples import (
    DEFAULT_MAX_CAPTION_CHARS,
    DEFAULT_MAX_WORKERS,
    BadSample,
    BadSampleCounts,
    BadSampleTracker,
    caption_problem,
)
from .decode import IMAGE_EXTENSIONS, Transform, apply_transform, decode_image
from .sample import Sample
from .tar_shard import list_shard

logger = logging.getLogger(__name__)

ShardSpec = str | os.PathLike | Sequence[str | os.PathLike]


def expand_shards(shards: ShardSpec) -> list[str]:
    """The shard paths named by a brace pattern, a ``::``-separated string, or a list of either.

    Example: ``"data/{00000..00002}.tar::extra.tar"`` -> ``["data/00000.tar", "data/00001.tar",
    "data/00002.tar", "extra.tar"]``.

    Raises:
        ValueError: if nothing is left after expansion.
    """
    if isinstance(shards, str | os.PathLike):
        parts = os.fspath(shards).split("::")
    else:
        parts = [os.fspath(part) for part in shards]
    expanded = [path for part in parts if part.strip() for path in braceexpand(part.strip())]
    if not expanded:
        raise ValueError(f"no shards in {shards!r}")
    return expanded


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the arguments if given, else ``torch.distributed`` if initialised, else
    the ``RANK`` / ``WORLD_SIZE`` environment variables, else ``(0, 1)``.

    Raises:
        ValueError: if only one of the arguments is given or ``not 0 <= rank < world_size``.
    """
    if (rank is None) != (world_size is None):
        raise ValueError(
            f"give both rank and world_size or neither, got rank={rank}, world_size={world_size}"
        )
    if rank is None:
        if dist.is_distributed():
            rank, world_size = dist.rank(), dist.world_size()
        else:
            rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    return rank, world_size


@dataclass(frozen=True)
class _Parsed:
    image: bytes
    caption: str
    labels: dict[str, int | float]


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


class WebDatasetShards(IterableDataset):
    """Image-caption samples streamed from WebDataset tar shards; see the module docstring.

    Args:
        shards: shard paths: a brace pattern (``"shards/{00000..00099}.tar"``), a ``::``-separated
            string or a list (see `expand_shards`).
        transform: applied to each float ``[3, H, W]`` image in [0, 1]; None keeps it.
        label_keys: numeric fields of each sample's ``.json`` kept as ``labels``; ``"cls"`` reads the
            ``.cls`` member. A sample missing one, or with a non-number, is skipped as ``bad_labels``.
        require_caption: skip samples without a usable ``.txt``; False for image-only shards (caption
            ``""`` where absent).
        max_caption_chars: longer captions are skipped as ``caption_too_long``.
        shuffle_shards: shuffle the shard order, and the samples within each shard, each epoch, the same
            way on every rank and worker.
        shuffle_buffer: if > 1, shuffle samples through a buffer of this many within each reader.
        seed: seed of both shuffles; with ``set_epoch`` they differ per epoch, repeatably.
        rank, world_size: override the distributed setup (see `resolve_rank`); resolved at iteration.
        max_workers: most DataLoader workers the bad-sample counters have rows for.

    Raises:
        FileNotFoundError: naming the first shard that does not exist.
        ValueError: for no shards, a remote URL, a negative ``shuffle_buffer`` or a non-positive
            ``max_caption_chars``; while iterating, naming a shard in which every sample is bad.

    Attributes:
        has_captions: ``require_caption``.
        bad_samples: `BadSampleCounts` over all epochs, workers included.
    """

    def __init__(
        self,
        shards: ShardSpec,
        *,
        transform: Transform | None = None,
        label_keys: Sequence[str] = (),
        require_caption: bool = True,
        max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        shuffle_shards: bool = True,
        shuffle_buffer: int = 0,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        super().__init__()
        self.shards = expand_shards(shards)
        for shard in self.shards:
            if "://" in shard or shard.startswith("pipe:"):
                raise ValueError(f"only local shard files are supported, got {shard!r}")
            if not os.path.isfile(shard):
                raise FileNotFoundError(f"shard not found: {shard}")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        if max_caption_chars < 1:
            raise ValueError(f"max_caption_chars must be >= 1, got {max_caption_chars}")
        if isinstance(label_keys, str):
            raise ValueError("label_keys must be a sequence of names, not a single string")
        if rank is not None or world_size is not None:
            resolve_rank(rank, world_size)
        self.transform = transform
        self.label_keys = tuple(label_keys)
        self.require_caption = require_caption
        self.has_captions = require_caption
        self.max_caption_chars = max_caption_chars
        self.shuffle_shards = shuffle_shards
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        source = (
            self.shards[0] if len(self.shards) == 1 else f"{self.shards[0]} .. ({len(self.shards)} shards)"
        )
        self._tracker = BadSampleTracker(source, max_workers)

    @property
    def bad_samples(self) -> BadSampleCounts:
        """Skipped samples so far, over the main process and all workers, by reason."""
        return self._tracker.snapshot()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shard order and shuffle. Call before creating the DataLoader iterator
        (with ``persistent_workers=True`` workers keep the epoch they started with)."""
        self.epoch = int(epoch)

    def epoch_shards(self) -> list[str]:
        """This epoch's shard order, identical on every rank and worker."""
        shards = list(self.shards)
        if self.shuffle_shards:
            random.Random(f"shards:{self.seed}:{self.epoch}").shuffle(shards)
        return shards

    def __iter__(self) -> Iterator[Sample]:
        self._tracker.check_worker()
        rank, world_size = resolve_rank(self.rank, self.world_size)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        readers, reader = world_size * workers, rank * workers + worker
        shards = self.epoch_shards()
        if len(shards) >= readers:
            samples = self._read(shards[reader::readers], 0, 1)
        else:
            samples = self._read(shards, reader, readers)
        if self.shuffle_buffer > 1:
            rng = random.Random(f"samples:{self.seed}:{self.epoch}:{reader}")
            samples = _buffer_shuffle(samples, self.shuffle_buffer, rng)
        yield from samples
        self._tracker.log_summary(f"reader {reader} of {readers}, all epochs up to {self.epoch}", True)

    def _read(self, shards: list[str], reader: int, readers: int) -> Iterator[Sample]:
        """Samples of ``shards``; with ``readers > 1`` only those at positions ``reader`` mod ``readers``."""
        position = 0
        for shard in shards:
            if not os.path.isfile(shard):
                raise FileNotFoundError(f"shard not found: {shard}")
            good, good_elsewhere, reasons = 0, False, Counter()
            with list_shard(shard) as listing:
                samples = list(listing.samples)
                if self.shuffle_shards and samples:
                    rng = random.Random(f"within:{self.seed}:{self.epoch}:{shard}")
                    if listing.compressed:
                        # Read forward but once (a backward seek decompresses it again): a rotation.
                        start = rng.randrange(len(samples))
                        samples = samples[start:] + samples[:start]
                    else:
                        rng.shuffle(samples)
                if listing.damage is not None:
                    reasons["corrupt_shard"] += 1
                    # Every reader lists the same damage, so one of them counts it.
                    if (position + len(samples)) % readers == reader:
                        damage = listing.damage
                        self._tracker.record("corrupt_shard", damage.where(shard), damage.detail)
                for key, members in samples:
                    mine = position % readers == reader
                    position += 1
                    name = f"{shard}:{key}"
                    try:
                        parsed = self._parse(name, listing.read(name, members))
                        if not mine:
                            # Not decoded: whether another reader's sample is good is only known roughly.
                            good_elsewhere = True
                            continue
                        image = decode_image(parsed.image, name)
                    except BadSample as bad:
                        reasons[bad.reason] += 1
                        if mine:
                            self._tracker.record(bad.reason, bad.key, bad.detail)
                        continue
                    good += 1
                    yield {
                        "image": apply_transform(image, self.transform),
                        "caption": parsed.caption,
                        "labels": parsed.labels,
                    }
            if good == 0 and not good_elsewhere:
                found = ", ".join(f"{reason}: {count}" for reason, count in reasons.items()) or "no samples"
                raise ValueError(f"shard {shard} has no usable sample ({found})")

    def _parse(self, name: str, group: dict[str, bytes]) -> _Parsed:
        """Everything but the image decode. Raises `BadSample`."""
        extension = next((ext for ext in IMAGE_EXTENSIONS if ext in group), None)
        if extension is None:
            raise BadSample("missing_image", name, f"members: {sorted(group)}")
        text = group.get("txt")
        try:
            caption = None if text is None else text.decode("utf-8")
        except UnicodeDecodeError as error:
            if self.require_caption:  # kept with replacement characters, it would train on mojibake
                raise BadSample("bad_caption_encoding", name, str(error)) from None
            caption = None  # image-only: the image is good, the caption unread
        problem = caption_problem(caption, self.max_caption_chars)
        if problem is not None and (self.require_caption or problem == "caption_too_long"):
            raise BadSample(problem, name)
        return _Parsed(group[extension], (caption or "").strip(), self._labels(name, group))

    def _labels(self, name: str, group: dict[str, bytes]) -> dict[str, int | float]:
        if not self.label_keys:
            return {}
        labels: dict[str, int | float] = {}
        metadata: dict | None = None
        for label in self.label_keys:
            if label == "cls":
                try:
                    labels[label] = int(group["cls"].decode("utf-8").strip())
                except (KeyError, ValueError, UnicodeDecodeError) as error:
                    raise BadSample("bad_labels", name, f"no integer .cls member ({error})") from error
                continue
            if metadata is None:
                try:
                    metadata = json.loads(group["json"])
                except (KeyError, ValueError) as error:
                    raise BadSample("bad_labels", name, f"no readable .json member ({error})") from error
                if not isinstance(metadata, dict):
                    raise BadSample("bad_labels", name, ".json is not an object")
            value = _number(metadata.get(label))
            if value is None:
                raise BadSample("bad_labels", name, f"{label!r} is {metadata.get(label)!r}, not a number")
            labels[label] = value
        return labels


def _buffer_shuffle(samples: Iterator[Sample], size: int, rng: random.Random) -> Iterator[Sample]:
    """Yield ``samples`` in an order shuffled through a buffer of ``size``."""
    buffer: list[Sample] = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= size:
            index = rng.randrange(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer
