"""Training batches whose order and augmentations are functions of (seed, epoch, position) alone.

That makes three things hold at once: a run killed and resumed sees the same batches as an uninterrupted
one; the number of DataLoader workers does not change the data; and a global batch is the same whether
one process reads it or several (each process reads a contiguous slice of every global batch), so a
``torchrun`` run reproduces the single-process run with the same global batch.

Map-style datasets are shuffled by `GlobalBatchSampler` and resumed by skipping indices; iterable
datasets (WebDataset shards, split by rank and worker by the reader) are resumed by reading and dropping
the batches already consumed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from infomug import dist

from .rng import derive_seed

logger = logging.getLogger(__name__)


class _SeededTransform:
    """A dataset's transform, reseeded before each call from a queue of seeds its owner fills."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform
        self.seeds: Iterator[int] = iter(())

    def __call__(self, image: Any) -> Any:
        seed = next(self.seeds, None)
        if seed is not None:
            # The CPU generator alone: torch.manual_seed also seeds every accelerator backend and costs
            # ~100 us, more than the 32x32 transform it seeds.
            torch.default_generator.manual_seed(seed)
        return self.transform(image)


class SeededBatches(Dataset):
    """Map-style dataset wrapper: each sample's random augmentation is seeded by (seed, epoch, index).

    Seeded per sample, not per batch: under torchrun each process fetches only its slice of the global
    batch, and must augment each of its samples as one process fetching all of it would. A dataset that
    fetches batches itself (``__getitems__``, as the shapes world renders in batches) and applies its
    ``transform`` once per sample in order keeps its batched fetch: the transform is wrapped to be reseeded
    before each call. Others are fetched one index at a time under that index's seed. The global torch
    generator is forked around the fetch, so the caller's generator is untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0
        self._transform: _SeededTransform | None = None
        batched = hasattr(dataset, "__getitems__") and getattr(dataset, "transform", None) is not None
        if batched:
            if not isinstance(dataset.transform, _SeededTransform):
                dataset.transform = _SeededTransform(dataset.transform)
            self._transform = dataset.transform

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _seed(self, index: int) -> int:
        return derive_seed(self.seed, "augment", self.epoch, int(index))

    def __getitems__(self, indices: Sequence[int]) -> list:
        with torch.random.fork_rng(devices=[]):
            if self._transform is not None:
                self._transform.seeds = iter([self._seed(index) for index in indices])
                try:
                    return list(self.dataset.__getitems__([int(index) for index in indices]))
                finally:
                    self._transform.seeds = iter(())
            samples = []
            for index in indices:
                torch.default_generator.manual_seed(self._seed(index))
                samples.append(self.dataset[int(index)])
            return samples

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]


class SeededStream(IterableDataset):
    """Iterable dataset wrapper: the n-th sample a reader yields is augmented under a seed of
    (seed, epoch, rank, worker, n)."""

    def __init__(self, dataset: IterableDataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        samples = iter(self.dataset)
        count = 0
        while True:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(
                    derive_seed(self.seed, "augment", self.epoch, dist.rank(), worker, count)
                )
                try:
                    sample = next(samples)
                except StopIteration:
                    return
            count += 1
            yield sample


class GlobalBatchSampler:
    """Batches of indices for one process: a seeded permutation per epoch, cut into global batches.

    Every epoch shuffles ``range(length)`` with a generator seeded by (seed, epoch) (the same on every
    process), drops the last incomplete global batch, and gives process ``rank`` the contiguous slice
    ``[rank * B_local, (rank + 1) * B_local)`` of each global batch of ``B_local * world_size`` indices.

    Args:
        length: dataset size.
        local_batch: ``B_local``, indices per yielded batch.
        rank, world_size: this process and the number of processes.
        seed: order seed.
        shuffle: False keeps ``0, 1, 2, ...`` (evaluation).

    Raises:
        ValueError: if the dataset holds fewer samples than one global batch.
    """

    def __init__(
        self, length: int, local_batch: int, rank: int, world_size: int, seed: int, shuffle: bool = True
    ) -> None:
        global_batch = local_batch * world_size
        if length < global_batch:
            raise ValueError(
                f"the dataset has {length} samples, fewer than one global batch of {global_batch}"
                f" ({world_size} process(es) x {local_batch})"
            )
        self.length, self.local_batch, self.rank, self.world_size = length, local_batch, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.batches_per_epoch = length // global_batch
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        """Yield epoch ``epoch``'s batches from batch ``start`` on."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "order", self.epoch))
            order = torch.randperm(self.length, generator=generator)
        else:
            order = torch.arange(self.length)
        global_batch = self.local_batch * self.world_size
        for batch in range(self.start, self.batches_per_epoch):
            first = batch * global_batch + self.rank * self.local_batch
            yield order[first : first + self.local_batch].tolist()


class TrainBatches:
    """An endless stream of one process's micro-batches, with a resumable position (epoch, batch).

    Args:
        dataset: a map-style or iterable dataset of `Sample`.
        collate: turns a list of samples into a batch dict.
        local_batch: samples per micro-batch on this process.
        seed: data-order and augmentation seed.
        num_workers: DataLoader workers.
        pin_memory: pin batches for a faster host-to-GPU copy.
        epoch, batch: where to start (a checkpoint's position).

    Raises:
        ValueError: from `GlobalBatchSampler` when the dataset is smaller than a global batch, or on
            iteration when an iterable dataset yields no full batch in an epoch.
    """

    def __init__(
        self,
        dataset: Dataset | IterableDataset,
        collate: Callable[[list], dict],
        local_batch: int,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        epoch: int = 0,
        batch: int = 0,
    ) -> None:
        self.iterable = isinstance(dataset, IterableDataset)
        self.dataset = SeededStream(dataset, seed) if self.iterable else SeededBatches(dataset, seed)
        self.collate, self.local_batch, self.seed = collate, local_batch, seed
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.sampler = None
        if not self.iterable:
            self.sampler = GlobalBatchSampler(len(dataset), local_batch, dist.rank(), dist.world_size(), seed)
        self.epoch, self.batch = epoch, batch
        self._iterator: Iterator[dict] | None = None

    @property
    def batches_per_epoch(self) -> int | None:
        """Micro-batches per epoch per process (None for an iterable dataset, whose length is unknown)."""
        return None if self.sampler is None else self.sampler.batches_per_epoch

    def position(self) -> dict[str, int]:
        """``{"epoch", "batch"}`` of the next micro-batch (saved in checkpoints)."""
        return {"epoch": self.epoch, "batch": self.batch}

    def _open(self) -> Iterator[dict]:
        self.dataset.set_epoch(self.epoch)
        # An own generator for the workers' base seed: drawing it from the global one (DataLoader's
        # default) would shift the global state differently in a resumed run than in an uninterrupted one.
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "loader", self.epoch))
        options: dict[str, Any] = dict(
            collate_fn=self.collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=generator,
        )
        if self.sampler is not None:
            self.sampler.set_position(self.epoch, self.batch)
            return iter(DataLoader(self.dataset, batch_sampler=self.sampler, **options))
        loader = iter(DataLoader(self.dataset, batch_size=self.local_batch, drop_last=True, **options))
        if self.batch:
            logger.info("resuming epoch %d of a stream: reading past %d batches", self.epoch, self.batch)
        for _ in range(self.batch):
            if next(loader, None) is None:
                raise ValueError(f"the data stream ended before the resumed position (batch {self.batch})")
        return loader

    def _next_or_none(self) -> dict | None:
        batch = next(self._iterator, None)
        if self.iterable and not every_process_has(batch):
            return None
        return batch

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        for _ in range(2):
            if self._iterator is None:
                self._iterator = self._open()
            batch = self._next_or_none()
            if batch is not None:
                self.batch += 1
                return batch
            if self.batch == 0:
                break
            self.epoch, self.batch, self._iterator = self.epoch + 1, 0, None
        raise ValueError(
            f"epoch {self.epoch} yielded no full batch of {self.local_batch} samples on this process:"
            " the dataset (or this process's share of the shards) is too small"
        )


def every_process_has(batch: dict | None) -> bool:
    """Whether ``batch`` is not None on every process (on one process: whether it is not None).

    Shards of unequal size give processes different numbers of batches; every process must stop at the
    same batch or the next collective (DDP's gradient all-reduce, a gathered loss) hangs, so all stop when
    one runs out. A collective under `torch.distributed`: every process must call it.
    """
    if not dist.is_distributed():
        return batch is not None
    has_batch = torch.tensor([0 if batch is None else 1], dtype=torch.int32)
    if torch.distributed.get_backend() == "nccl":
        has_batch = has_batch.cuda()
    torch.distributed.all_reduce(has_batch, op=torch.distributed.ReduceOp.MIN)
    return int(has_batch.item()) == 1


def eval_batches(
    dataset: Dataset | IterableDataset,
    collate: Callable[[list], dict],
    local_batch: int,
    count: int,
    seed: int,
    num_workers: int = 0,
) -> Iterator[dict]:
    """The first ``count`` micro-batches of an eval split for this process, the same at every call.

    Map-style datasets are read in order, each process taking its slice of every global batch; the
    augmentation (two views for SimCLR) is seeded, so each call sees the same images. An iterable split
    stops, on every process, at the first batch one process lacks (see `every_process_has`), so under
    `torch.distributed` every process must iterate it to the end together.

    Raises:
        ValueError: if a map-style eval split is smaller than one global batch.
    """
    options: dict[str, Any] = dict(
        collate_fn=collate, num_workers=num_workers, generator=torch.Generator().manual_seed(seed)
    )
    iterable = isinstance(dataset, IterableDataset)
    if iterable:
        loader = DataLoader(SeededStream(dataset, seed), batch_size=local_batch, drop_last=True, **options)
    else:
        sampler = GlobalBatchSampler(
            len(dataset), local_batch, dist.rank(), dist.world_size(), seed, shuffle=False
        )
        loader = DataLoader(SeededBatches(dataset, seed), batch_sampler=sampler, **options)
    batches = iter(loader)
    for _ in range(count):
        batch = next(batches, None)
        # A map-style split gives every process the same number of batches: no need to agree.
        done = not every_process_has(batch) if iterable else batch is None
        if done:
            return
        yield batch


def first_samples(
    dataset: Dataset | IterableDataset, collate: Callable[[list], dict], count: int, seed: int
) -> dict | None:
    """The first ``count`` samples of ``dataset`` (all of them if it holds fewer) as one batch.

    Augmentations are seeded as in `eval_batches`, so each call gives the same images (for a map-style
    dataset, whatever the number of processes; a stream gives this process's share of its shards). No
    collective: one process may call it alone (the main process, for sample PNGs).

    Returns:
        ``collate`` of the samples, or None if the dataset yields none.
    """
    if isinstance(dataset, IterableDataset):
        samples = list(itertools.islice(SeededStream(dataset, seed), count))
    else:
        indices = list(range(min(count, len(dataset))))
        samples = SeededBatches(dataset, seed).__getitems__(indices) if indices else []
    return collate(samples) if samples else None
