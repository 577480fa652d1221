"""Benchmark: what `infomug measure` costs, stage by stage, at the default budget on 10,000 images.

Run:  python experiments/bench_measure.py --ckpt runs/mug        (a CPU-preset checkpoint; ~3 minutes)
      python experiments/bench_measure.py                         (trains a 30-step CPU-preset MUG first)
      python experiments/bench_measure.py --images 1000 --quick   (a smoke run, not written)

Measures, on the checkpoint's eval data (the embedded world at 32x32, a CPU-preset checkpoint):

1. ``measure(ckpt, budget="quick")`` with its default anchors (random init, pixels, oracle), from a cold
   feature cache: wall time of each stage summed over models and layers (extraction; per layer: linear
   probe, k-NN, I(T; label), noisy channel, H(T), RankMe, InfoNCE caption; the checkpoint's own decoder
   bounds; the fresh decoders of the headline, with their shared no-feature baselines), and the same
   per model. Target: <= 180 s in total on 2 CPU cores.
2. With ``--warm``: the same measurement again from the warm cache (what re-measuring with other
   settings costs: everything but the extraction runs again).
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
    """Wall seconds per stage, summed over every model (anchors included) and layer."""
    models = report.models
    seconds = {"extraction": sum(m.seconds.get("extraction", 0.0) for m in models)}
    for stage in STAGES:
        seconds[stage] = sum(layer.seconds.get(stage, 0.0) for m in models for layer in m.layers)
    seconds["own decoder bounds"] = sum(m.seconds.get("decoders", 0.0) for m in models)
    for baseline in ("image_baseline", "caption_baseline"):
        seconds[f"fresh decoders: {baseline}"] = report.seconds.get(baseline, 0.0)
    baselines = seconds["fresh decoders: image_baseline"] + seconds["fresh decoders: caption_baseline"]
    fresh = sum(m.seconds.get("usable_information", 0.0) for m in models)
    seconds["fresh decoders: per model"] = fresh - baselines
    return seconds


def model_seconds(report: Report) -> str:
    """One row per model: its extraction, per-layer stages and fresh decoders."""
    rows = ["| model | extraction (s) | per-layer stages (s) | fresh decoders (s) |", "|---|---:|---:|---:|"]
    for model in report.models:
        layers = sum(sum(layer.seconds.values()) for layer in model.layers)
        rows.append(
            f"| {model.name} | {model.seconds.get('extraction', 0.0):.1f} | {layers:.1f} |"
            f" {model.seconds.get('usable_information', 0.0):.1f} |"
        )
    return "\n".join(rows)


def extraction_flops(ckpt: Path, batch: int) -> int:
    """FLOPs of the unmasked encoder forward over ``batch`` images, all blocks."""
    model = load_checkpoint(ckpt)
    encoder = model.encoder
    images = torch.zeros(batch, 3, encoder.vit.patch_embed.img_size[0], encoder.vit.patch_embed.img_size[1])
    blocks = list(range(len(encoder.vit.blocks)))
    with torch.no_grad():
        return count_flops(lambda: encoder.forward_intermediates(images, indices=blocks))


def table(cold: dict[str, float], warm: dict[str, float], total_cold: float, total_warm: float) -> str:
    """Seconds per stage (and the warm-cache run's, when there is one)."""
    with_warm = bool(warm)
    rows = ["| stage | cold cache (s) | share |" + (" warm cache (s) |" if with_warm else "")]
    rows.append("|---|---:|---:|" + ("---:|" if with_warm else ""))

    def line(stage: str, seconds: float, warm_seconds: float | None) -> str:
        share = seconds / total_cold if total_cold else 0.0
        tail = f" {warm_seconds:.1f} |" if with_warm and warm_seconds is not None else ""
        return f"| {stage} | {seconds:.1f} | {100 * share:.0f}% |{tail}"

    for stage in cold:
        rows.append(line(stage, cold[stage], warm.get(stage, 0.0)))
    rows.append(
        line("other (data, report, plots)", total_cold - sum(cold.values()), total_warm - sum(warm.values()))
    )
    rows.append(
        f"| **total** | **{total_cold:.1f}** | 100% |" + (f" **{total_warm:.1f}** |" if with_warm else "")
    )
    return "\n".join(rows)


def headline(report: Report) -> str:
    from infomug.measure.headline import headline_section

    model = report.models[0]
    layer = model.layers[-1]
    lines = [
        *headline_section(report)[2:],
        "",
        f"Readouts, last layer ({layer.layer}) of `{model.name}`:",
        "",
    ]
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
    parser.add_argument("--warm", action="store_true", help="also measure again from the warm cache")
    parser.add_argument("--no-anchors", action="store_true", help="the checkpoint alone, without anchors")
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
        anchors = not args.no_anchors
        cold = measure(ckpt, budget=budget, out=folder / "report", anchors=anchors, progress=False)
        total_cold = time.perf_counter() - start
        warm, total_warm = None, 0.0
        if args.warm:
            start = time.perf_counter()
            warm = measure(
                ckpt,
                budget=budget,
                out=folder / "again",
                cache_dir=folder / "report" / "features",
                anchors=anchors,
                progress=False,
            )
            total_warm = time.perf_counter() - start
        peak = max(peak, *matmul_peak((1024, 2048), repeats=5).values())
        flops = extraction_flops(ckpt, 64) * cold.models[0].layers[0].n / 64
    cold_stages, warm_stages = stage_seconds(cold), stage_seconds(warm) if warm is not None else {}
    first_extraction = cold.models[0].seconds.get("extraction", 0.0)  # the checkpoint alone
    rate = flops / first_extraction if first_extraction else float("nan")
    lines = [
        "# `infomug measure`: cost per stage",
        "",
        f"Command: `python experiments/bench_measure.py{' --ckpt ' + str(args.ckpt) if args.ckpt else ''}"
        f"{' --no-anchors' if args.no_anchors else ''}{' --warm' if args.warm else ''}`"
        f" ({time.strftime('%Y-%m-%d')}; {cpu_model()}, {available_cores()} cores, torch"
        f" {torch.__version__}, {torch.get_num_threads()} threads, no GPU).",
        "",
        f"Default budget (`quick`, anchors {'off' if args.no_anchors else 'on'}),"
        f" {cold.models[0].layers[0].n} eval images of the embedded"
        f" world, {len(cold.models[0].layers)} layers of the checkpoint"
        f" ({'a 30-step MUG run' if args.ckpt is None else args.ckpt}).",
        "",
        table(cold_stages, warm_stages, total_cold, total_warm),
        "",
        "Per model, cold cache:",
        "",
        model_seconds(cold),
        "",
        f"Total from a cold cache: {total_cold:.0f} s against a target of {TARGET_SECONDS:.0f} s:"
        f" {verdict(total_cold <= TARGET_SECONDS)}.",
        f"Extraction of the checkpoint: {cold.models[0].layers[0].n / first_extraction:.0f} images/s,"
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
