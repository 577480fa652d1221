"""Benchmark: samples/s of the shapes world and of every reader of users' data, in one run.

Run:  python experiments/bench_data.py            (about 1 minute on 2 CPU cores)
      python experiments/bench_data.py --quick    (fewer samples, a smoke run)

Part 1, the world generator on ONE core (``torch.set_num_threads(1)``; target >= 5,000 images/s at 32x32):
one sample at a time, batched (``__getitems__``, what a DataLoader with a batch size calls), and through
a DataLoader with the pre-training transform at 0 and 2 workers.

Part 2, each reader (WebDataset shards, TSV, COCO, image folder) through a DataLoader with the collate
the trainer uses, at 0 and 2 workers, on JPEGs written to a temporary folder: small (32x32, the CPU
preset) and photo-sized (256x256 resized to 224, the paper's). Every rate is also given as a ratio to a
reference measured in the same run: a bare loop of PIL decodes of the same JPEG bytes held in memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tarfile
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from infomug.data import (
    ByteTokenizer,
    CaptionCollate,
    CocoCaptions,
    CsvPairs,
    DataConfig,
    ImageFolder,
    ShapesWorld,
    WebDatasetShards,
    WorldConfig,
    build_dataset,
    eval_transform,
)
from infomug.data.build import IMAGENET_MEAN, IMAGENET_STD

WORLD_TARGET = 5000.0
SHARDS = 8


def per_second(count: int, start: float) -> float:
    return count / (time.perf_counter() - start)


def world_rates(image_size: int, batches: int) -> dict[str, float]:
    world = ShapesWorld(WorldConfig(image_size=image_size, irrelevant_caption_fraction=0.2))
    world.__getitems__(list(range(256)))  # warm-up
    start = time.perf_counter()
    for b in range(batches):
        world.__getitems__(list(range(b * 256, (b + 1) * 256)))
    rates = {"batched (__getitems__, 256)": per_second(batches * 256, start)}
    singles = min(2000, batches * 256)
    start = time.perf_counter()
    for i in range(singles):
        world[i]
    rates["one at a time (world[i])"] = per_second(singles, start)
    config = DataConfig(image_size=image_size, world={"image_size": image_size, "size": batches * 256})
    for workers in (0, 2):
        dataset = build_dataset(config, augmentation="pretrain")
        loader = DataLoader(dataset, batch_size=256, num_workers=workers, collate_fn=CaptionCollate(None))
        start = time.perf_counter()
        count = sum(batch["image"].shape[0] for batch in loader)
        rates[f"DataLoader + pretrain crop, {workers} workers"] = per_second(count, start)
    return rates


def write_user_data(root: str, count: int, side: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    jpegs = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        jpegs.append(buffer.getvalue())
    captions = [f"photo {i} of a red circle on a table" for i in range(count)]
    os.makedirs(f"{root}/images")
    for c in range(10):
        os.makedirs(f"{root}/folder/class{c}")
    for i, data in enumerate(jpegs):
        with open(f"{root}/images/{i:05d}.jpg", "wb") as handle:
            handle.write(data)
        with open(f"{root}/folder/class{i % 10}/{i:05d}.jpg", "wb") as handle:
            handle.write(data)
    with open(f"{root}/pairs.tsv", "w") as handle:
        handle.write(
            "filepath\ttitle\n" + "".join(f"images/{i:05d}.jpg\t{c}\n" for i, c in enumerate(captions))
        )
    coco = {
        "images": [{"id": i, "file_name": f"{i:05d}.jpg"} for i in range(count)],
        "annotations": [{"image_id": i, "caption": c} for i, c in enumerate(captions)],
    }
    with open(f"{root}/captions.json", "w") as handle:
        json.dump(coco, handle)
    per_shard = count // SHARDS
    for s in range(SHARDS):
        with tarfile.open(f"{root}/{s:05d}.tar", "w") as tar:
            for i in range(s * per_shard, (s + 1) * per_shard):
                for extension, data in (("jpg", jpegs[i]), ("txt", captions[i].encode())):
                    info = tarfile.TarInfo(f"{i:05d}.{extension}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return jpegs


def reference_decode(jpegs: list[bytes]) -> float:
    start = time.perf_counter()
    for data in jpegs:
        with Image.open(io.BytesIO(data)) as image:
            torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float().div(255)
    return per_second(len(jpegs), start)


def reader_rates(root: str, count: int, out_size: int) -> dict[tuple[str, int], float]:
    transform = eval_transform(out_size, IMAGENET_MEAN, IMAGENET_STD)
    makers: dict[str, Callable[[], object]] = {
        "webdataset (8 shards)": lambda: WebDatasetShards(
            f"{root}/{{00000..{SHARDS - 1:05d}}}.tar", transform=transform, rank=0, world_size=1
        ),
        "csv/tsv": lambda: CsvPairs(f"{root}/pairs.tsv", transform=transform),
        "coco": lambda: CocoCaptions(f"{root}/captions.json", f"{root}/images", transform=transform),
        "imagefolder": lambda: ImageFolder(f"{root}/folder", transform=transform),
    }
    rates = {}
    for name, make in makers.items():
        collate = CaptionCollate(None) if name == "imagefolder" else CaptionCollate(ByteTokenizer(), 64)
        for workers in (0, 2):
            loader = DataLoader(make(), batch_size=64, num_workers=workers, collate_fn=collate)
            start = time.perf_counter()
            seen = sum(batch["image"].shape[0] for batch in loader)
            if seen != count:
                raise RuntimeError(f"{name} read {seen} samples, expected {count}")
            rates[(name, workers)] = per_second(seen, start)
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    machine = platform.processor() or platform.machine()
    print(f"# data benchmark: {machine}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    batches = 8 if args.quick else 40

    print(f"\n## World generator, one core (target {WORLD_TARGET:,.0f} images/s at 32x32)\n")
    print("| path | 32x32 images/s | / target | 64x64 images/s |\n|---|---|---|---|")
    small, large = world_rates(32, batches), world_rates(64, batches // 2)
    for path, rate in small.items():
        print(f"| {path} | {rate:,.0f} | {rate / WORLD_TARGET:.1f}x | {large[path]:,.0f} |")

    for side, out_size, count in ((32, 32, 2000), (256, 224, 400)):
        count = (count // 4 if args.quick else count) // SHARDS * SHARDS
        with tempfile.TemporaryDirectory() as root:
            jpegs = write_user_data(root, count, side)
            reference = reference_decode(jpegs)
            rates = reader_rates(root, count, out_size)
        print(f"\n## Readers, {count} JPEGs of {side}x{side} -> {out_size}x{out_size}, batch 64\n")
        print(f"reference (bare PIL decode of the same bytes in memory, 1 process): {reference:,.0f} /s\n")
        print("| reader | 0 workers: samples/s | / reference | 2 workers: samples/s | / reference |")
        print("|---|---|---|---|---|")
        for name in dict.fromkeys(name for name, _ in rates):
            zero, two = rates[(name, 0)], rates[(name, 2)]
            print(f"| {name} | {zero:,.0f} | {zero / reference:.2f} | {two:,.0f} | {two / reference:.2f} |")


if __name__ == "__main__":
    main()
