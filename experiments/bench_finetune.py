"""Benchmark: the time of one fine-tune per task and mode at the default recipe, against the encoder's rate.

Run:  python experiments/bench_finetune.py --ckpt runs/mae          (about 12 minutes on 2 quiet cores)
      python experiments/bench_finetune.py --tasks world_captioned   (the target only)

One fit per task and mode through `infomug.finetune.finetune` at the default recipe (``full``: 300 steps
of 64, ``partial``: the last 2 blocks, 300 steps; ``linear``: L-BFGS on frozen features) with the whole
training pool (10,000 world images less the 1,000 of validation; all 1,437 digits' training images), one
learning rate (1e-3) and one seed: the cost of one cell of the grid. Without ``--ckpt`` the CPU preset
encoder (``mae_vit_tiny_patch4_32``) is used at its random initialisation: the cost does not depend on the
weights.

References measured in the same run, on the same threads: the encoder's own forward + backward + AdamW
step on a synthetic batch of full images (what one fine-tuning step costs at least) and MAE's masked
forward + backward (75% of patches removed: the trainer's encoder step). Printed: seconds per fit,
training images/s, and the ratio of the fine-tune's images/s to each reference.
Target: full fine-tune on 10,000 world images <= 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch

from infomug.finetune import build_settings, finetune
from infomug.finetune.classifier import backbone_of
from infomug.measure.sources import from_module, load_model
from infomug.models.presets import get_config
from infomug.objectives import build_objective

TARGET_SECONDS = 300.0
BATCH = 64


def encoder_rates(encoder: torch.nn.Module, repeats: int = 5) -> tuple[float, float]:
    """Images/s of (full-image forward + backward + AdamW, masked 75% forward + backward), best of repeats."""
    encoder = encoder.train()
    optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=1e-4)
    images = torch.randn(BATCH, 3, *backbone_of(encoder).patch_embed.img_size)

    def full() -> None:
        loss = encoder.forward_features(images).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def masked() -> None:
        latent, _, _ = encoder.forward_masked(images, 0.75)
        optimizer.zero_grad(set_to_none=True)
        latent.square().mean().backward()

    rates = []
    for step in (full, masked):
        step()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        rates.append(BATCH / min(times))
    return rates[0], rates[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", default=None, help="a run folder (default: the CPU preset, random init)")
    parser.add_argument(
        "--tasks", default="world_captioned,world_uncaptioned,shifted_world,digits", help="comma-separated"
    )
    parser.add_argument("--modes", default="full,partial,linear", help="comma-separated")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ckpt is None:
        torch.manual_seed(0)
        encoder = build_objective(get_config("mae_vit_tiny_patch4_32")).encoder
        model = from_module(encoder, "mae_vit_tiny_patch4_32 (random init)")
    else:
        model = load_model(args.ckpt)
    full_rate, masked_rate = encoder_rates(model.encoder)
    print(f"threads {torch.get_num_threads()}; encoder forward+backward at batch {BATCH}:")
    print(f"  full images {full_rate:.0f} images/s, MAE masked (75%) {masked_rate:.0f} images/s")
    rows = []
    for task in args.tasks.split(","):
        for mode in args.modes.split(","):
            settings = build_settings(
                ["full.lr_grid=[0.001]", "partial.lr_grid=[0.001]", "linear.weight_decay_grid=[0.001]"],
                tasks=(task,),
                modes=(mode,),
                label_budgets=(0,),
                seeds=1,
                from_scratch=False,
            )
            start = time.perf_counter()
            report = finetune([model], settings, progress=False)
            total = time.perf_counter() - start
            (fit,) = report.fits
            rows.append((task, mode, fit, total))
            rate = fit.images_per_second
            ratio = f"{rate / full_rate:.2f} / {rate / masked_rate:.2f}" if math.isfinite(rate) else "—"
            print(
                f"{task:18s} {mode:8s} {fit.train_images:6d} labelled images, {fit.steps:4d} steps:"
                f" fit {fit.seconds:6.1f} s (with task build {total:6.1f} s), {rate:6.1f} images/s,"
                f" vs full / masked encoder step {ratio}, test accuracy {100 * fit.test_mean:.1f}%"
            )
    world_full = [r for r in rows if r[0] == "world_captioned" and r[1] == "full"]
    if world_full:
        seconds = world_full[0][2].seconds
        verdict = "PASS" if seconds <= TARGET_SECONDS else "FAIL"
        print(
            f"target: full fine-tune on 10,000 world images <= {TARGET_SECONDS:.0f} s:"
            f" {seconds:.0f} s {verdict}"
        )
    full_rates = [r[2].images_per_second for r in rows if r[1] == "full"]
    if full_rates:
        print(f"median full fine-tune rate {statistics.median(full_rates):.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
