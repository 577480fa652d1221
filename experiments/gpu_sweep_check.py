"""The GPU path of `infomug ablate`, checked end to end at a size that fits in minutes.

1. ``--part webdataset``: writes WebDataset shards of the embedded world (PNG + caption + JSON factor labels),
   then runs ``experiments/configs/ablation_gpu.yaml`` on them, shortened (``--steps`` steps of ``--batch``
   images, one seed) but at its real model size (ViT-B/16, 224 px, CLIP's BPE, bf16 on CUDA), measuring
   every checkpoint on the eval shards' labels.
2. ``--part cpu-config``: runs the CPU sweep ``experiments/configs/ablation_cpu.yaml`` unchanged on
   ``--device`` with ``--processes`` parallel shards of its runs, then writes its report.

Usage:
    python experiments/gpu_sweep_check.py --out /tmp/gpu_check --part webdataset --part cpu-config

Prints the wall time of each part. ``--smoke`` shrinks everything so the script runs on a CPU in seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
LABELS = ("shape", "colour", "position_bin", "size_bin")


def write_world_shards(folder: Path, split: str, shards: int, per_shard: int, image_size: int) -> str:
    """Write ``shards`` tar files of world samples; returns their brace pattern."""
    from infomug.data.world import ShapesWorld, WorldConfig

    world = ShapesWorld(WorldConfig(image_size=image_size, size=shards * per_shard), split=split)
    folder.mkdir(parents=True, exist_ok=True)
    index = 0
    for shard in range(shards):
        with tarfile.open(folder / f"{split}-{shard:03d}.tar", "w") as tar:
            for _ in range(per_shard):
                sample = world[index]
                pixels = (sample["image"].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="PNG")
                labels = {key: int(sample["labels"][key]) for key in LABELS}
                members = {
                    "png": buffer.getvalue(),
                    "txt": sample["caption"].encode(),
                    "json": json.dumps(labels).encode(),
                }
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"{index:06d}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                index += 1
    return str(folder / f"{split}-{{000..{shards - 1:03d}}}.tar")


def ablate(*options: str) -> None:
    command = [sys.executable, "-m", "infomug", "ablate", "--no-progress", *options]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def webdataset_part(args: argparse.Namespace) -> None:
    shards = args.out / "shards"
    size = 32 if args.smoke else 64
    train = write_world_shards(shards, "train", 2 if args.smoke else 4, 64 if args.smoke else 512, size)
    evaluation = write_world_shards(shards, "eval", 1, 128 if args.smoke else 1024, size)
    spec = yaml.safe_load((REPO / "experiments/configs/ablation_gpu.yaml").read_text())
    spec["base"] = str(REPO / "experiments/configs" / spec["base"])
    spec["seeds"] = [0]
    spec["overrides"] = [
        f"data.path={train}",
        f"data.eval_path={evaluation}",
        "data.shuffle_buffer=256",
        f"train.steps={args.steps}",
        f"train.batch_size={args.batch}",
        "optim.warmup_steps=1",
        "train.eval_every=0",
        "train.sample_every=0",
        "train.checkpoint_every=0",
        f"train.num_workers={0 if args.smoke else 6}",
        f"train.device={args.device}",
        f"train.precision={'fp32' if args.smoke else 'bf16'}",
    ]
    if args.smoke:
        spec["overrides"] += ["model.depth=1", "model.embed_dim=64", "model.num_heads=2", "model.img_size=32",
                              "data.image_size=32", "model.patch_size=8"]  # fmt: skip
    spec["measure"] = {
        "budget": "quick",
        "budget_set": {"images": 128 if args.smoke else 1024, "caption_steps": 50, "decoder_samples": 128},
        "layers": "last",
        "data": "webdataset",
        "data_overrides": [
            f"eval_path={evaluation}",
            f"label_keys=[{', '.join(LABELS)}]",
            f"image_size={32 if args.smoke else 224}",
        ],
    }
    path = args.out / "ablation_gpu_short.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    started = time.perf_counter()
    ablate("--config", str(path), "--out", str(args.out / "sweep_webdataset"))
    print(f"webdataset part: {time.perf_counter() - started:.1f} s", flush=True)


def cpu_config_part(args: argparse.Namespace) -> None:
    out = args.out / "sweep_cpu_config"
    options = ["--config", str(REPO / "experiments/configs/ablation_cpu.yaml"), "--out", str(out)]
    options += ["--device", args.device]
    if args.smoke:
        options += ["--set", "train.steps=3", "--set", "optim.warmup_steps=1", "--seeds", "0"]
        options += ["--budget-set", "images=200", "--budget-set", "caption_steps=20", "--only", "mae-*"]
    started = time.perf_counter()
    # The first call writes the plan; then the shards run side by side, and one last call writes the report.
    processes = []
    # Each process would otherwise start one thread per core for its CPU work (probes, kNN estimators):
    # on an H200 machine's 16 cores, 4 shards stalled the first measurement for minutes.
    threads = max(1, (os.cpu_count() or 1) // args.processes)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for index in range(args.processes):
        command = [sys.executable, "-m", "infomug", "ablate", "--no-progress", *options]
        command += ["--shard", f"{index}/{args.processes}"]
        log = open(args.out / f"cpu_config_shard{index}.log", "w")  # noqa: SIM115 - closed below
        processes.append(
            (subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT), log)
        )
        if index == 0:
            time.sleep(5)
    failed = stopped = 0
    for process, log in processes:
        try:
            failed += process.wait(timeout=max(1.0, started + args.deadline - time.perf_counter())) != 0
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()
            stopped += 1
        log.close()
    seconds = time.perf_counter() - started
    print(f"cpu-config part: {seconds:.1f} s ({failed} shards failed, {stopped} stopped at the deadline)")
    ablate("--out", str(out), "--report")


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--part", action="append", choices=("webdataset", "cpu-config"), required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=1e9, help="seconds before cpu-config shards stop")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    for part in args.part:
        {"webdataset": webdataset_part, "cpu-config": cpu_config_part}[part](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
