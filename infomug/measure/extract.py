"""Run the unmasked encoder over eval data and keep pooled features per layer, cached on disk.

    features = extract_features(model, build_dataset(data, "eval"), layers="all", n=10_000,
                                cache_dir=report / "features", data_key=json.dumps(...))
    features.layers["block_5"]      # [N, D] float32
    features.labels["shape"]        # [N] int64 (float64 for continuous labels)

Features are cached on disk, one folder per (weights, data, pool, N) (`infomug.measure.feature_cache`).
Asking for more layers later runs the model for the new ones only and adds them.

Under ``torch.distributed`` rank ``r`` encodes samples ``r, r + W, ...``; the features are gathered so
that every rank returns the same full, index-ordered `Features`, and only rank 0 writes the cache.
"""

from __future__ import annotations

import copy
import logging
import numbers
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset
from tqdm.auto import tqdm

from infomug import dist
from infomug.data import WebDatasetShards, is_skipped

from .feature_cache import FeaturePass, cache_identity, feature_cache_key, read_cache, write_cache
from .sources import LoadedModel
from .taps import Tap, make_tap, parse_pools

logger = logging.getLogger(__name__)


@dataclass
class Features:
    """Pooled features of ``N`` images, with what the data says about each image.

    Attributes:
        layers: Tap name -> ``[N, D]`` float32, in tap order.
        labels: Label name -> ``[N]`` (int64 for discrete labels, float64 for continuous ones); the
            names every sample carries.
        captions: ``[N]`` captions.
        indices: ``[N]`` int64 dataset indices (map-style) or stream positions, ascending.
        seconds: Extraction wall time (0 on a full cache hit).
        from_cache: True when nothing was computed.
        grids: Tap name -> ``[N, T, D]`` float32 token grid (prefix tokens first) of the layers asked
            for with ``grid_layers``; ``[N, 1, D]`` for layers whose output is one vector per image.
        images: ``[N, C, H, W]`` uint8 images quantised as ``round(255 x)`` when asked for, else None.
    """

    layers: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    captions: list[str]
    indices: np.ndarray
    seconds: float
    from_cache: bool
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    images: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of images."""
        return int(self.indices.shape[0])


def extract_features(
    model: LoadedModel,
    dataset: Dataset | IterableDataset,
    *,
    layers: str | Sequence[int] | Sequence[str] | None,
    pool: str = "token",
    n: int,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    cache_dir: Path | None = None,
    data_key: str = "",
    progress: bool | None = None,
    num_workers: int = 0,
    grid_layers: Sequence[str] = (),
    keep_images: bool = False,
) -> Features:
    """Pooled features of the first ``n`` samples for every tapped layer, from the cache when it has them.

    The encoder is put in eval mode and moved to ``device`` (in place; its training flag is restored
    after) and run without gradients on unmasked images.

    Args:
        model: The model to read.
        dataset: What ``infomug.data.build_dataset(config, "eval")`` returns: map-style (its first
            ``min(n, len)`` samples) or an `IterableDataset` (the first ``n`` of the stream; under
            ``torch.distributed`` every rank reads the whole stream, a `WebDatasetShards` unsplit).
            Samples are ``{"image": [3, H, W], "caption": str, "labels": {name: number}}``.
        layers: Layer spec of `infomug.measure.taps.make_tap` (``"all"``, ``"last"``, ``"0,3"``, module
            names...).
        pool: ``"token"`` (class token) or ``"avg"`` (patch-token mean).
        n: Samples wanted, >= 2.
        batch_size: Images per forward pass.
        device: Where the encoder runs.
        cache_dir: Parent folder of the feature caches; None = no cache.
        data_key: Identifies the data and split (stored in ``meta.json`` and part of the key); required
            with ``cache_dir``, or two datasets would share one cache.
        progress: tqdm bar over batches; None = only when stderr is a terminal.
        num_workers: DataLoader worker processes.
        grid_layers: Tap names whose whole token grid is kept as well, for decoders (float32: float16
            rounding would break the decoders' invariance to linear maps of the features; a 10,000-image
            grid of 65 tokens of width 192 is 0.5 GB).
        keep_images: Keep the images (uint8), for decoders that reconstruct them: the samples' normalised
            images mapped back to pixels by the dataset's ``mean`` and ``std`` attributes (what
            `build_dataset` sets), or taken as pixels in [0, 1] when it has none.

    Returns:
        `Features`, rows ordered by dataset index.

    Raises:
        ValueError: ``n < 2``, ``batch_size < 1``, ``cache_dir`` without ``data_key``, fewer than 2 samples
            in the data, an unknown pool or bad layer spec, a non-numeric label, non-finite features
            (naming the layer), or kept images that are not pixels in [0, 1] once un-normalised.
    """
    started = time.perf_counter()
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    n = int(n)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pool = ",".join(parse_pools(pool))  # one spelling per choice: the cache key
    if cache_dir is not None and not data_key:
        raise ValueError("cache_dir needs a data_key naming the data and split (the cache's key)")
    if isinstance(dataset, IterableDataset):
        count = n
    else:
        if len(dataset) < 2:
            raise ValueError(f"the dataset has {len(dataset)} samples; measuring needs at least 2")
        count = min(n, len(dataset))
    tap = make_tap(model, layers, pool)
    names = list(tap.names)
    unknown = [name for name in grid_layers if name not in names]
    if unknown:
        raise ValueError(f"grid_layers {unknown} are not tapped layers {names}")
    grid_names = [name for name in names if name in set(grid_layers)]

    folder = Path(cache_dir) / feature_cache_key(model, data_key, pool, count) if cache_dir else None
    expected = cache_identity(model, data_key, pool, count)
    cache = read_cache(folder, expected, names) if folder is not None else None
    missing = [
        name
        for name in names
        if cache is None or name not in cache.layers or (name in grid_names and name not in cache.grids)
    ]
    if keep_images and not missing and (cache is None or cache.images is None):
        missing = names[-1:]  # one more pass, for the images
    if folder is not None and dist.is_distributed():
        # Ranks must agree, or one would return from the cache while the others wait in the gather.
        missing_anywhere = set().union(*_all_gather(missing))
        missing = [name for name in names if name in missing_anywhere]
    if not missing:
        assert cache is not None
        return Features(
            layers={name: cache.layers[name] for name in names},
            labels=cache.labels,
            captions=cache.captions,
            indices=cache.indices,
            seconds=0.0,
            from_cache=True,
            grids={name: cache.grids[name] for name in grid_names},
            images=cache.images if keep_images else None,
        )

    def run(chosen: list[str]) -> FeaturePass:
        grids = [name for name in grid_names if name in chosen]
        return _extract(
            model,
            tap.select(chosen),
            dataset,
            count,
            batch_size,
            device,
            num_workers,
            progress,
            grids,
            keep_images,
        )

    computed = run(missing)
    reused = [name for name in names if name not in missing]
    if reused and _any_rank(not np.array_equal(cache.indices, computed.indices)):
        logger.warning("the feature cache %s holds other samples than the data gives: rebuilding it", folder)
        cache, missing, reused = None, names, []
        computed = run(names)
    for name, array in computed.layers.items():
        _check_finite(name, array, model.name)
    features = Features(
        layers={
            name: computed.layers[name] if name in computed.layers else cache.layers[name] for name in names
        },
        labels=computed.labels,
        captions=computed.captions,
        indices=computed.indices,
        seconds=time.perf_counter() - started,
        from_cache=False,
        grids={
            name: computed.grids[name] if name in computed.grids else cache.grids[name] for name in grid_names
        },
        images=(computed.images if computed.images is not None else cache.images) if keep_images else None,
    )
    if folder is not None:
        try:
            if dist.is_main_process():
                write_cache(
                    folder, {**expected, "source": model.source, "model": model.name}, cache, computed
                )
        finally:
            if dist.is_distributed():
                torch_dist.barrier()  # the next call on any rank sees the finished cache
    return features


# -- one pass over the data ----------------------------------------------------------------------------


def _extract(
    model: LoadedModel,
    tap: Tap,
    dataset: Dataset | IterableDataset,
    count: int,
    batch_size: int,
    device: str | torch.device,
    num_workers: int,
    progress: bool | None,
    grid_names: Sequence[str] = (),
    keep_images: bool = False,
) -> FeaturePass:
    rank, world = dist.rank(), dist.world_size()
    encoder = model.encoder
    was_training = encoder.training
    encoder.to(device).eval()
    disable = (not progress if progress is not None else not sys.stderr.isatty()) or rank != 0
    indices: list[np.ndarray] = []
    captions: list[str] = []
    labels: list[dict[str, Any]] = []
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in tap.names}
    grid_chunks: dict[str, list[np.ndarray]] = {name: [] for name in grid_names}
    image_chunks: list[np.ndarray] = []
    try:
        batches, total = _batches(dataset, count, batch_size, num_workers, rank, world)
        with torch.inference_mode():
            for positions, images, batch_captions, batch_labels in tqdm(
                batches, total=total, desc=f"features {model.name}", disable=disable, leave=False
            ):
                if grid_names:
                    raw = tap.tokens(images.to(device, non_blocking=True))
                    outputs = tap.pool_tokens(raw)
                    for name in grid_names:
                        grid_chunks[name].append(_as_grid(raw[tap.layer_of(name)]).cpu().numpy())
                else:
                    outputs = tap(images.to(device, non_blocking=True))
                for name in tap.names:
                    chunks[name].append(outputs[name].cpu().numpy())
                if keep_images:
                    image_chunks.append(quantised(pixels_of(images, dataset)))
                indices.append(positions)
                captions += batch_captions
                labels += batch_labels
    finally:
        encoder.train(was_training)
    local = (
        np.concatenate(indices) if indices else np.zeros(0, np.int64),
        captions,
        labels,
        {name: np.concatenate(parts) for name, parts in chunks.items() if parts},
        {name: np.concatenate(parts) for name, parts in grid_chunks.items() if parts},
        np.concatenate(image_chunks) if image_chunks else None,
    )
    parts = _all_gather(local) if world > 1 else [local]
    order_index = np.concatenate([part[0] for part in parts])
    if order_index.size < 2:
        raise ValueError(f"the data gave {order_index.size} samples; measuring needs at least 2")
    order = np.argsort(order_index, kind="stable")
    all_captions = [caption for part in parts for caption in part[1]]
    all_labels = [label for part in parts for label in part[2]]
    layers = {
        name: np.ascontiguousarray(
            np.concatenate([part[3][name] for part in parts if name in part[3]])[order], dtype=np.float32
        )
        for name in tap.names
    }
    grids = {
        name: np.ascontiguousarray(
            np.concatenate([part[4][name] for part in parts if name in part[4]])[order]
        )
        for name in grid_names
    }
    images = None
    if keep_images:
        images = np.ascontiguousarray(np.concatenate([p[5] for p in parts if p[5] is not None])[order])
    return FeaturePass(
        layers=layers,
        labels=_label_arrays([all_labels[i] for i in order]),
        captions=[all_captions[i] for i in order],
        indices=order_index[order].astype(np.int64),
        grids=grids,
        images=images,
    )


# How far un-normalised pixels may stray outside [0, 1] (float error of the normalisation round trip).
PIXEL_SLACK = 1e-3


def pixels_of(images: torch.Tensor, dataset: Any) -> torch.Tensor:
    """``[B, C, H, W]`` normalised images -> pixels in [0, 1], by the ``mean`` / ``std`` (one per channel)
    that ``dataset`` normalised them with; images of a dataset without them are taken as pixels already.

    Raises:
        ValueError: for pixels outside [0, 1] (beyond float error): the dataset's statistics are not the
            ones its images were normalised with, or its images are not pixels.
    """
    mean, std = getattr(dataset, "mean", None), getattr(dataset, "std", None)
    pixels = images.float()
    if mean is not None and std is not None:
        shape = (1, -1, 1, 1)
        pixels = pixels * torch.as_tensor(std, dtype=torch.float32).view(shape)
        pixels = pixels + torch.as_tensor(mean, dtype=torch.float32).view(shape)
    low, high = float(pixels.min()), float(pixels.max())
    if low < -PIXEL_SLACK or high > 1.0 + PIXEL_SLACK:
        raise ValueError(
            f"images to keep span [{low:.3f}, {high:.3f}] after un-normalising (mean {mean}, std {std}):"
            " pixels must lie in [0, 1]; give the dataset the mean and std its images are normalised with"
        )
    return pixels


def quantised(images: torch.Tensor) -> np.ndarray:
    """``[B, C, H, W]`` images in [0, 1] -> uint8 ``round(255 x)`` (values outside [0, 1] are clipped)."""
    return torch.round(images.float().clamp(0.0, 1.0) * 255.0).to(torch.uint8).cpu().numpy()


def _as_grid(output: torch.Tensor) -> torch.Tensor:
    """A tap's raw output as a float32 token grid ``[B, T, D]`` (``[B, D]`` becomes ``[B, 1, D]``)."""
    if output.dim() == 2:
        output = output[:, None]
    if output.dim() != 3:
        raise ValueError(f"cannot keep a token grid of shape {tuple(output.shape)}: expected [B, T, D]")
    return output.detach().to(torch.float32)


Batch = tuple[np.ndarray, torch.Tensor, list[str], list[dict[str, Any]]]


def _batches(
    dataset: Dataset | IterableDataset, count: int, batch_size: int, num_workers: int, rank: int, world: int
) -> tuple[Iterator[Batch], int | None]:
    """This rank's batches ``(positions, images, captions, labels)`` and their number when known."""
    if not isinstance(dataset, IterableDataset):
        positions = np.arange(rank, count, world, dtype=np.int64)
        loader = DataLoader(
            Subset(dataset, positions.tolist()),
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=_collate,
        )
        starts = range(0, len(positions), batch_size)
        batches = (
            (positions[s : s + batch_size][keep], *batch)
            for s, (keep, *batch) in zip(starts, loader, strict=True)
            if keep.any()
        )
        return batches, len(loader)
    if world > 1:
        # Every rank reads the whole stream and keeps its own positions, so the samples (and their
        # order) do not depend on how the shards would have been split over ranks.
        dataset = unsplit_stream(dataset)
    stream = DataLoader(dataset, batch_size=None, num_workers=num_workers) if num_workers else dataset
    mine = ((i, s) for i, s in enumerate(islice(iter(stream), count)) if i % world == rank)
    return _group(mine, batch_size), None


def unsplit_stream(dataset: Dataset | IterableDataset) -> Dataset | IterableDataset:
    """``dataset``, or for a `WebDatasetShards` a copy that reads every shard whatever the process's rank."""
    if not isinstance(dataset, WebDatasetShards):
        return dataset
    whole = copy.copy(dataset)
    whole.rank, whole.world_size = 0, 1
    return whole


def _group(samples: Iterator[tuple[int, dict]], batch_size: int) -> Iterator[Batch]:
    while chunk := list(islice(samples, batch_size)):
        keep, *batch = _collate([s for _, s in chunk])
        if keep.any():
            yield (np.array([i for i, _ in chunk], dtype=np.int64)[keep], *batch)


def _collate(samples: Sequence[dict]) -> tuple[np.ndarray, torch.Tensor, list[str], list[dict[str, Any]]]:
    """``(kept [B] bool, images, captions, labels)`` of the samples that are not `Skipped` markers (a bad
    sample of a map-style dataset: measured once would be the next good one measured twice)."""
    keep = np.array([not is_skipped(sample) for sample in samples], dtype=bool)
    samples = [sample for sample in samples if not is_skipped(sample)]
    if not samples:
        return keep, torch.zeros(0), [], []
    shapes = {tuple(sample["image"].shape) for sample in samples}
    if len(shapes) > 1:
        raise ValueError(f"images in one batch must share a shape (use a resizing transform), got {shapes}")
    images = torch.stack([sample["image"] for sample in samples]).float()
    captions = [sample["caption"] for sample in samples]
    return keep, images, captions, [dict(sample["labels"]) for sample in samples]


def _label_arrays(labels: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """``{name: [N]}`` for the names every sample has: int64 when all values are integers, else float64."""
    shared = set(labels[0]) if labels else set()
    for row in labels[1:]:
        shared &= set(row)
    arrays = {}
    for name in sorted(shared):
        values = [row[name] for row in labels]
        if not all(isinstance(value, numbers.Real) for value in values):
            raise ValueError(f"label {name!r} has a non-numeric value: {values[:5]}")
        integral = all(isinstance(value, numbers.Integral) for value in values)
        arrays[name] = np.asarray(values, dtype=np.int64 if integral else np.float64)
    return arrays


def _check_finite(name: str, array: np.ndarray, model_name: str) -> None:
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise ValueError(
            f"layer {name!r} of {model_name} has non-finite features in {int(bad.sum())} of {len(bad)} "
            "images (a diverged checkpoint?)"
        )


def _all_gather(obj: Any) -> list[Any]:
    gathered: list[Any] = [None] * dist.world_size()
    torch_dist.all_gather_object(gathered, obj)
    return gathered


def _any_rank(flag: bool) -> bool:
    return any(_all_gather(flag)) if dist.is_distributed() else flag
