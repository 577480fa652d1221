"""Benchmark: forward + backward time per image and parameter count of each objective at the CPU preset.

Run:  python experiments/bench_models.py          (about a minute on 2 CPU cores)
      python experiments/bench_models.py --quick    (smaller batch, fewer repeats: a smoke run)

All four objectives are timed in one process on the same batch size, after a warm-up, as the median of
several repeats of ``zero_grad; forward; backward``, the objectives taking turns in each round. MUG's
time is also given as a ratio to MAE's from the same run (target: <= 1.3x at lambda_L > 0 with captions
padded to the full context length, which is what `infomug.data.tokenizers.encode_batch` produces).
Writes experiments/results/models.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from infomug.objectives import create_model

OBJECTIVES = ("mae", "mug", "clip", "simclr")
RESULTS = Path(__file__).parent / "results" / "models.md"


def make_batch(objective: str, config, batch_size: int, generator: torch.Generator) -> dict:
    size = (config.in_chans, config.img_size, config.img_size)
    shape = (batch_size, 2, *size) if objective == "simclr" else (batch_size, *size)
    return {
        "image": torch.randn(shape, generator=generator),
        "tokens": torch.randint(
            0, config.vocab_size, (batch_size, config.context_length), generator=generator
        ),
        "lengths": torch.randint(2, config.context_length + 1, (batch_size,), generator=generator),
    }


def one_step(model: torch.nn.Module, batch: dict, generator: torch.Generator) -> float:
    """Seconds of one zero_grad + forward + backward."""
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    model(batch, generator=generator)["loss"].backward()
    return time.perf_counter() - start


def time_interleaved(setups: dict[str, tuple], warmup: int, repeats: int) -> dict[str, float]:
    """Median step seconds per objective, the objectives taking turns within each round.

    Taking turns spreads any load from other processes over all objectives alike, so the ratios to
    MAE stay meaningful on a shared machine.
    """
    generator = torch.Generator().manual_seed(0)
    for model, batch in setups.values():
        for _ in range(warmup):
            one_step(model, batch, generator)
    times: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(repeats):
        for name, (model, batch) in setups.items():
            times[name].append(one_step(model, batch, generator))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vit_tiny_patch4_32", help="size suffix of the presets")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="batch 16, 3 repeats; results not written")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.repeats = 16, 3
    # The CPUs this process may run on: os.cpu_count() counts the host's under a CPU affinity limit.
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    setups = {}
    for objective in OBJECTIVES:
        torch.manual_seed(0)
        model = create_model(f"{objective}_{args.preset}")
        setups[objective] = (
            model,
            make_batch(objective, model.config, args.batch_size, torch.Generator().manual_seed(0)),
        )
    seconds = time_interleaved(setups, warmup=2 if args.quick else 3, repeats=args.repeats)
    rows, per_image = [], {}
    for objective, (model, _) in setups.items():
        images = args.batch_size * (2 if objective == "simclr" else 1)
        per_image[objective] = seconds[objective] / args.batch_size
        parameters = sum(p.numel() for p in model.parameters())
        encoder = sum(p.numel() for p in model.encoder.parameters())
        rows.append((objective, parameters, encoder, seconds[objective], images))
    config = model.config
    lines = [
        f"| objective | parameters (M) | of which encoder (M) | step (s, batch {args.batch_size}) "
        "| ms / sample | images through the encoder per step | time / MAE |",
        "|---|---|---|---|---|---|---|",
    ]
    for objective, parameters, encoder, seconds, images in rows:
        ratio = per_image[objective] / per_image["mae"]
        lines.append(
            f"| {objective} | {parameters / 1e6:.2f} | {encoder / 1e6:.2f} | {seconds:.3f} "
            f"| {1e3 * per_image[objective]:.2f} | {images} | {ratio:.2f} |"
        )
    table = "\n".join(lines)
    mug_ratio = per_image["mug"] / per_image["mae"]
    header = (
        f"Preset: `*_{args.preset}` ({config.img_size}x{config.img_size}, patch {config.patch_size}, "
        f"width {config.embed_dim}, depth {config.depth}; mask ratio {config.mask_ratio}; captions padded to "
        f"{config.context_length} tokens, vocabulary {config.vocab_size}). Median of {args.repeats} steps "
        f"after warm-up, {threads} torch threads."
    )
    print(header + "\n\n" + table + f"\n\nMUG / MAE time per image: {mug_ratio:.2f} (target <= 1.3)")
    if args.quick:
        return 0
    load = os.getloadavg()[0]
    machine = (
        f"{threads} CPU cores ({platform.processor() or platform.machine()}), no GPU, "
        f"1-minute load average {load:.1f} at the end"
    )
    command = " ".join(["python experiments/bench_models.py", *(sys.argv[1:] if argv is None else argv)])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Model benchmark\n\n"
        f"Command: `{command}` (from the repository root)\n"
        f"Machine: {machine}; python {platform.python_version()}, torch {torch.__version__}.\n\n"
        f"{header}\n\n{table}\n\n"
        "## Target (issue)\n\n"
        "| target | measured | verdict |\n|---|---|---|\n"
        f"| MUG forward+backward <= 1.3x MAE's at lambda_L > 0 | {mug_ratio:.2f}x "
        f"| {'met' if mug_ratio <= 1.3 else 'not met'} |\n\n"
        "## Reading\n\n"
        f"{reading(per_image, config)}\n"
    )
    print(f"\nwrote {RESULTS}")
    return 0


def reading(per_image: dict[str, float], config) -> str:
    mug = per_image["mug"] / per_image["mae"]
    patches = (config.img_size // config.patch_size) ** 2
    latent = 1 + int(patches * (1 - config.mask_ratio))
    clip = per_image["clip"] / per_image["mae"]
    simclr = per_image["simclr"] / per_image["mae"]
    return (
        f"* MUG costs {mug:.2f}x MAE per sample: both encode only the visible patches once, and the "
        f"caption decoder ({config.caption_unimodal_layers} + {config.caption_multimodal_layers} layers at "
        f"width {config.caption_width} over {config.context_length - 1} input tokens, cross-attending to "
        f"{latent} latent tokens) adds less than the encoder and pixel decoder cost.\n"
        f"* CLIP ({clip:.2f}x) and SimCLR ({simclr:.2f}x) encode every patch of the unmasked image, and "
        f"SimCLR does so for two views: {1 + patches} (2 x {1 + patches}) encoder tokens per sample against "
        f"{latent} for the masked objectives; "
        "compare objectives at equal wall-clock with these ratios in mind.\n"
        "* Times are for this machine and batch size only; ratios measured in the same run are the "
        "portable numbers."
    )


if __name__ == "__main__":
    raise SystemExit(main())
