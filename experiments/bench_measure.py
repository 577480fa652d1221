"""Benchmark: what `infomug measure` costs, stage by stage, at the default budget on 10,000 images.

Run:  python experiments/bench_measure.py --ckpt runs/mug        (a CPU-preset checkpoint; ~3 minutes)
      python experiments/bench_measure.py                         (trains a 30-step CPU-preset MUG first)
      python experiments/bench_measure.py --images 1000 --quick   (a smoke run, not written)

Measures, on the checkpoint's eval data (the embedded world at 32x32, ``mug_vit_tiny_patch4_32``):

1. ``measure(ckpt, budget="quick")`` from a cold feature cache: wall time of each stage (extraction,
   then per layer: linear probe, k-NN, I(T; label), noisy channel, H(T), RankMe, InfoNCE caption; then
   the decoder bounds), summed over layers. Target: <= 180 s in total on 2 CPU cores.
2. The same measurement again from the warm cache (what re-measuring with other settings costs).
3. References measured in the same run: each stage as a share of the total, and extraction's encoder
   FLOP/s against an fp32 matmul peak (best ``torch.mm`` at 1024^3 and 2048^3) on the same threads.

Writes ``--out`` (default experiments/results/measure.md) unless ``--quick``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.bench_train import available_cores, cpu_model, verdict  # noqa: E402
from experiments.compute_rates import count_flops, matmul_peak  # noqa: E402
from infomug.measure import get_budget, load_checkpoint, measure  # noqa: E402
from infomug.measure.results import Report  # noqa: E402

TARGET_SECONDS = 180.0
STAGES = ("probe", "knn", "label_information", "channel", "entropy", "rank", "caption")
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "mug_cpu.yaml"


def train_checkpoint(folder: Path, steps: int) -> Path:
    """A short CPU-preset MUG run (the measurement's cost does not depend on how long it trained)."""
    from infomug.train import load_config, train

    overrides = [f"train.steps={steps}", "train.eval_every=0", "train.sample_every=0"]
    overrides.append(f"train.checkpoint_every={steps}")
    train(load_config(CONFIG, overrides), folder, progress=False)
    return folder


def stage_seconds(report: Report) -> dict[str, float]:
    """Wall seconds per stage of the first model, layers summed."""
    model = report.models[0]
    seconds = {"extraction": model.seconds.get("extraction", 0.0)}
    for stage in STAGES:
        seconds[stage] = sum(layer.seconds.get(stage, 0.0) for layer in model.layers)
    seconds["decoders"] = model.seconds.get("decoders", 0.0)
    return seconds


def extraction_flops(ckpt: Path, batch: int) -> int:
    """FLOPs of the unmasked encoder forward over ``batch`` images, all blocks."""
    model = load_checkpoint(ckpt)
    encoder = model.encoder
    images = torch.zeros(batch, 3, encoder.vit.patch_embed.img_size[0], encoder.vit.patch_embed.img_size[1])
    blocks = list(range(len(encoder.vit.blocks)))
    with torch.no_grad():
        return count_flops(lambda: encoder.forward_intermediates(images, indices=blocks))


def table(cold: dict[str, float], warm: dict[str, float], total_cold: float, total_warm: float) -> str:
    rows = ["| stage | cold cache (s) | share | warm cache (s) |", "|---|---:|---:|---:|"]
    for stage in cold:
        share = cold[stage] / total_cold if total_cold else 0.0
        rows.append(f"| {stage} | {cold[stage]:.1f} | {100 * share:.0f}% | {warm.get(stage, 0.0):.1f} |")
    other_cold = total_cold - sum(cold.values())
    other_warm = total_warm - sum(warm.values())
    rows.append(
        f"| other (data, report, plots) | {other_cold:.1f} | {100 * other_cold / total_cold:.0f}% |"
        f" {other_warm:.1f} |"
    )
    rows.append(f"| **total** | **{total_cold:.1f}** | 100% | **{total_warm:.1f}** |")
    return "\n".join(rows)


def headline(report: Report) -> str:
    model = report.models[0]
    layer = model.layers[-1]
    lines = [f"Last layer ({layer.layer}) of `{model.name}` ({layer.n} images):", ""]
    for label in ("shape", "colour", "size_bin", "position_bin", "num_objects"):
        if label not in layer.label_information:
            continue
        knn = layer.label_information[label]["knn_on_probe_logits"]
        probe = layer.transfer[label]["linear_probe"]
        lines.append(
            f"- {label}: I(T; {label}) >= {knn.value:.3f} ± {knn.stderr:.3f} nats of H = "
            f"{report.label_entropies[label]:.3f}; linear probe {100 * probe.value:.1f}% "
            f"(majority {100 * (probe.baseline or 0):.1f}%)"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", type=Path, help="a CPU-preset checkpoint (default: train 30 steps first)")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: nothing written")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "measure.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = get_budget("quick", images=args.images)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        ckpt = args.ckpt or train_checkpoint(folder / "run", 30)
        peak = max(matmul_peak((1024, 2048), repeats=5).values())
        start = time.perf_counter()
        cold = measure(ckpt, budget=budget, out=folder / "report", progress=False)
        total_cold = time.perf_counter() - start
        start = time.perf_counter()
        warm = measure(
            ckpt,
            budget=budget,
            out=folder / "again",
            cache_dir=folder / "report" / "features",
            progress=False,
        )
        total_warm = time.perf_counter() - start
        peak = max(peak, *matmul_peak((1024, 2048), repeats=5).values())
        flops = extraction_flops(ckpt, 64) * cold.models[0].layers[0].n / 64
    cold_stages, warm_stages = stage_seconds(cold), stage_seconds(warm)
    rate = flops / cold_stages["extraction"] if cold_stages["extraction"] else float("nan")
    lines = [
        "# `infomug measure`: cost per stage",
        "",
        f"Command: `python experiments/bench_measure.py{' --ckpt ' + str(args.ckpt) if args.ckpt else ''}`"
        f" ({time.strftime('%Y-%m-%d')}; {cpu_model()}, {available_cores()} cores, torch"
        f" {torch.__version__}, {torch.get_num_threads()} threads, no GPU).",
        "",
        f"Default budget (`quick`), {cold.models[0].layers[0].n} eval images of the embedded world,"
        f" {len(cold.models[0].layers)} layers of `mug_vit_tiny_patch4_32`"
        f" ({'a 30-step run' if args.ckpt is None else args.ckpt}).",
        "",
        table(cold_stages, warm_stages, total_cold, total_warm),
        "",
        f"Total from a cold cache: {total_cold:.0f} s against a target of {TARGET_SECONDS:.0f} s:"
        f" {verdict(total_cold <= TARGET_SECONDS)}.",
        f"Extraction: {cold.models[0].layers[0].n / cold_stages['extraction']:.0f} images/s,"
        f" encoder {rate / 1e9:.1f} GFLOP/s = {100 * rate / peak:.0f}% of the same-run fp32 matmul peak"
        f" ({peak / 1e9:.0f} GFLOP/s).",
        "",
        headline(cold),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
