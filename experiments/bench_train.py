"""Benchmark: the trainer's speed per objective at the CPU preset: images/s, data loading, FLOP utilisation.

Run:  python experiments/bench_train.py           (about 3 minutes on 2 quiet CPU cores)
      python experiments/bench_train.py --quick   (a few steps, one worker setting: a smoke run, not written)

Three measurements per objective (``mae``, ``mug``, ``clip``, ``simclr``), each config being
``experiments/configs/<objective>_cpu.yaml`` (``*_vit_tiny_patch4_32``, batch 64, the embedded world):

1. The real trainer: `infomug.train.train` runs ``--warmup`` + ``--steps`` steps into a temporary run folder
   for every ``train.num_workers`` in ``--workers``, with ``log_every = --warmup`` so the first logged
   interval (start-up, first batches) is dropped; eval, samples and checkpoints happen only after the last
   step, outside the timed intervals. Images/s, ms per step and the share of wall time spent waiting for
   the next batch (``data_fraction``) are read back from ``metrics.jsonl``. Target: data < 5% of a step.
2. Model FLOP/s as a fraction of a matmul peak measured in the same process (best of several fp32
   ``torch.mm`` at 1024^3 and 2048^3, before and after the rest, on the same threads). FLOPs of one
   forward + backward are counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions,
   attention; the optimizer update and element-wise ops count as zero, as in the usual MFU convention).
   The whole step uses the trainer's steps/s; the encoder-heavy part alone (the encoder's masked forward
   + backward for mae/mug, its full forward + backward for clip/simclr) is timed directly on a synthetic
   batch, best of ``--repeats`` like the peak. Target: >= 40% for the encoder-heavy part. Its time is
   split by op with `torch.profiler` (the top ops of every part under target, else of the lowest, go to
   the results), and one encoder-shaped matmul (``[B * tokens, 192] x [192, 768]``) is timed alone.
3. Ratios against references measured in the same run: images/s over MAE's (same worker count), FLOP/s
   over the matmul peak, waiting time over step time. No absolute speed is asserted anywhere.

Writes ``--out`` (default experiments/results/train.md) unless ``--quick``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from infomug.data import build_dataset
from infomug.train.config import load_config
from infomug.train.metrics import read_metrics
from infomug.train.trainer import train

try:  # run as `python -m experiments.bench_train`
    from experiments.compute_rates import (
        FlopResult,
        OpProfile,
        encoder_linear_rates,
        matmul_peak,
        measure_flops,
        seconds,
    )
except ImportError:  # run as `python experiments/bench_train.py`: the script's folder is on sys.path
    from compute_rates import (
        FlopResult,
        OpProfile,
        encoder_linear_rates,
        matmul_peak,
        measure_flops,
        seconds,
    )

OBJECTIVES = ("mae", "mug", "clip", "simclr")
MASKED = ("mae", "mug")
CONFIGS = Path(__file__).parent / "configs"
RESULTS = Path(__file__).parent / "results" / "train.md"
PEAK_SIZES = (1024, 2048)
DATA_TARGET = 0.05  # waiting for data, as a share of step wall time
ENCODER_TARGET = 0.40  # encoder-heavy FLOP/s over the measured matmul peak
QUIET_LOAD = 0.5  # 1-minute load average below which the machine counts as quiet before a run


# -- the real trainer ------------------------------------------------------------------------------------


@dataclass
class TrainerSpeed:
    """Throughput of `train` over the measured (post-warm-up) log intervals.

    Attributes:
        objective, workers: the run.
        batch_size: images per optimizer step (simclr encodes two views of each).
        steps: measured optimizer steps.
        seconds: wall time of those steps (eval, samples and checkpoints excluded by the trainer).
        waited: seconds of it spent waiting for the next batch.
        interval_images_per_s: images/s of each measured log interval (to show the spread).
        setup_seconds: wall time of the whole `train` call minus the measured steps.
    """

    objective: str
    workers: int
    batch_size: int
    steps: int
    seconds: float
    waited: float
    interval_images_per_s: list[float]
    setup_seconds: float

    @property
    def images_per_s(self) -> float:
        return self.steps * self.batch_size / self.seconds

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds

    @property
    def ms_per_step(self) -> float:
        return 1e3 * self.seconds / self.steps

    @property
    def data_fraction(self) -> float:
        return self.waited / self.seconds


def trainer_overrides(steps: int, warmup: int, workers: int) -> list[str]:
    """Dotted overrides of a ``*_cpu.yaml`` config for a timed run of ``warmup + steps`` steps."""
    return [
        f"train.steps={warmup + steps}",
        f"train.log_every={warmup}",
        # Must end before the last step; the learning rate does not change the speed.
        f"optim.warmup_steps={warmup}",
        "train.eval_every=0",  # 0 = only after the last step
        "train.eval_batches=1",
        "train.sample_every=0",
        "train.checkpoint_every=0",  # 0 = only the last step
        f"train.num_workers={workers}",
        "train.device=cpu",
    ]


def measure_trainer(objective: str, workers: int, steps: int, warmup: int) -> TrainerSpeed:
    """Run `train` for ``objective`` with ``workers`` DataLoader workers; read its speed from metrics.jsonl.

    Raises:
        RuntimeError: if the run logged no interval after the warm-up.
    """
    config = load_config(CONFIGS / f"{objective}_cpu.yaml", trainer_overrides(steps, warmup, workers))
    batch_size = config.train.batch_size
    with tempfile.TemporaryDirectory(prefix=f"bench_train_{objective}_") as run_dir:
        result = train(config, run_dir, resume=False, progress=False)
        records = read_metrics(Path(run_dir) / "metrics.jsonl", kind="train")
    seconds, waited, measured, rates, previous = 0.0, 0.0, 0, [], 0
    for record in records:
        interval = record["step"] - previous
        previous = record["step"]
        if record["step"] <= warmup:
            continue
        # The trainer logs rates, not times: each interval's wall time is its images over its images/s.
        elapsed = interval * batch_size / record["images_per_s"]
        seconds += elapsed
        waited += record["data_fraction"] * elapsed
        measured += interval
        rates.append(record["images_per_s"])
    if measured == 0:
        raise RuntimeError(f"{objective}: the trainer logged no interval after the {warmup} warm-up steps")
    return TrainerSpeed(
        objective, workers, batch_size, measured, seconds, waited, rates, result.seconds - seconds
    )


def fetchseconds(objective: str, batch_size: int, repeats: int, threads: int) -> float:
    """Median wall time to render and augment one training batch in this process on ``threads`` torch
    threads (no collate).

    The dataset's share of the trainer's data wait with 0 workers; the rest is collating, tokenizing
    captions and the loader's own overhead. A DataLoader worker runs the same code on 1 thread.

    Raises:
        ValueError: if ``repeats < 1`` or ``threads < 1``.
    """
    if repeats < 1 or threads < 1:
        raise ValueError(f"repeats and threads must be >= 1, got {repeats} and {threads}")
    config = load_config(CONFIGS / f"{objective}_cpu.yaml")
    dataset = build_dataset(config.data, "train", "two_view" if objective == "simclr" else "pretrain")
    batches = [list(range(i * batch_size, (i + 1) * batch_size)) for i in range(repeats + 1)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dataset.__getitems__(batches[0])  # first-call set-up of the transforms
        return statistics.median([seconds(lambda b=b: dataset.__getitems__(b)) for b in batches[1:]])
    finally:
        torch.set_num_threads(previous)


# -- FLOPs, the matmul peak, the encoder-heavy part ------------------------------------------------------


def cpu_model() -> str:
    """The CPU's ``model name`` from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cores() -> int:
    # os.cpu_count() counts the host's CPUs even under an affinity limit.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def trainer_table(speeds: list[TrainerSpeed], flops: dict[str, FlopResult], peak: float) -> str:
    mae = {speed.workers: speed.images_per_s for speed in speeds if speed.objective == "mae"}
    lines = [
        "| objective | workers | images/s | / MAE's | ms / step | interval images/s (min-max) "
        "| data wait (ms / step) | data wait / step | < 5% | model GFLOP/s | / matmul peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for speed in speeds:
        ratio = f"{speed.images_per_s / mae[speed.workers]:.2f}" if speed.workers in mae else "-"
        rate = flops[speed.objective].step_flops * speed.steps_per_s
        lines.append(
            f"| {speed.objective} | {speed.workers} | {speed.images_per_s:.0f} | {ratio} "
            f"| {speed.ms_per_step:.0f} | {min(speed.interval_images_per_s):.0f}-"
            f"{max(speed.interval_images_per_s):.0f} | {speed.waited / speed.steps * 1e3:.1f} "
            f"| {100 * speed.data_fraction:.1f}% "
            f"| {verdict(speed.data_fraction < DATA_TARGET)} | {rate / 1e9:.0f} | {100 * rate / peak:.0f}% |"
        )
    return "\n".join(lines)


def encoder_table(flops: dict[str, FlopResult], peak: float) -> str:
    lines = [
        "| objective | GFLOP / step (fwd+bwd) | encoder-heavy part | its GFLOP (share of step) | ms "
        "| GFLOP/s | / matmul peak | >= 40% | time in matmul / attention / other |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for objective, result in flops.items():
        part = (
            "masked fwd+bwd"
            if objective in MASKED
            else "full fwd+bwd" + (" x 2 views" * (objective == "simclr"))
        )
        rate = result.encoder_flops / result.encoder_seconds
        profile_ = result.encoder_profile
        other = profile_.total_ms - profile_.matmul_ms - profile_.attention_ms
        shares = "/".join(
            f"{100 * ms / profile_.total_ms:.0f}%"
            for ms in (profile_.matmul_ms, profile_.attention_ms, other)
        )
        lines.append(
            f"| {objective} | {result.step_flops / 1e9:.1f} | {part} | {result.encoder_flops / 1e9:.1f} "
            f"({100 * result.encoder_flops / result.step_flops:.0f}%) | {1e3 * result.encoder_seconds:.0f} "
            f"| {rate / 1e9:.0f} | {100 * rate / peak:.0f}% | {verdict(rate / peak >= ENCODER_TARGET)} "
            f"| {shares} |"
        )
    return "\n".join(lines)


def profile_table(objective: str, profile_: OpProfile) -> str:
    lines = [
        f"Encoder-heavy part of `{objective}`, self CPU time per pass by op (torch.profiler; "
        f"{profile_.total_ms:.0f} ms profiled in all):",
        "",
        "| op | ms / pass | share | calls / pass |",
        "|---|---|---|---|",
    ]
    for key, ms, calls in profile_.top:
        lines.append(f"| `{key}` | {ms:.1f} | {100 * ms / profile_.total_ms:.0f}% | {calls:.0f} |")
    return "\n".join(lines)


def reading(m: Measurements) -> str:
    """The results in sentences, every number from this run ``m``."""
    items = []
    speeds, peak = m.speeds, m.peak
    if m.load[0] > QUIET_LOAD:
        items.append(
            f"Other processes were running when this run started (1-minute load {m.load[0]:.1f} > "
            f"{QUIET_LOAD}): times are pessimistic and noisy; rerun on a quiet machine for the record."
        )
    slow = [s for s in speeds if s.data_fraction >= DATA_TARGET]
    if slow:
        names = ", ".join(
            f"{s.objective} with {s.workers} workers ({100 * s.data_fraction:.1f}%)" for s in slow
        )
        items.append(f"Data wait misses the < 5% target in: {names}.")
    else:
        worst = max(speeds, key=lambda s: s.data_fraction)
        items.append(
            f"Data wait meets the < 5% target everywhere: at most {100 * worst.data_fraction:.1f}% of a step "
            f"({worst.objective}, {worst.workers} workers)."
        )
    for speed in slow:
        if speed.workers == 0:
            many, one = m.fetch[speed.objective]
            items.append(
                f"{speed.objective}, 0 workers: the step waits {1e3 * speed.waited / speed.steps:.0f} ms for "
                f"each batch; rendering and augmenting it alone takes {1e3 * many:.0f} ms on {m.threads} "
                f"threads and {1e3 * one:.0f} ms on 1 thread."
            )
    if any(many > 1.5 * one for many, one in m.fetch.values()):
        items.append(
            "Augmentation runs slower on the default threads than on one: its per-image tensor ops are tiny "
            "but enter intra-op parallel regions, which stall when other processes hold the cores (1-minute "
            f"load {m.load[0]:.1f} -> {m.load[1]:.1f}). While writing this script the SimCLR colour jitter's "
            "hue step (torchvision's RGB-HSV round trip on each [3, 32, 32] view) was the costliest part: "
            "20 ms per 128 views on a quiet machine, 150 ms with one busy process alongside on 2 threads, "
            "unchanged on 1 thread."
        )
    worker_counts = sorted({s.workers for s in speeds})
    if len(worker_counts) > 1:
        low, high = worker_counts[0], worker_counts[-1]
        rows = []
        for objective in dict.fromkeys(s.objective for s in speeds):
            runs = {s.workers: s for s in speeds if s.objective == objective}
            if low in runs and high in runs:
                before, after = runs[low], runs[high]
                speedup = after.images_per_s / before.images_per_s
                rows.append(
                    f"{objective} {100 * before.data_fraction:.1f}% -> {100 * after.data_fraction:.1f}% "
                    f"wait, {speedup:.2f}x images/s"
                )
        items.append(
            f"{low} -> {high} workers: {'; '.join(rows)}. This machine has {available_cores()} cores and "
            f"torch computes on {m.threads} threads, so a worker shares the cores with the compute threads: "
            "it takes the data work off the step's critical path but adds no core to do it on."
        )
    noisy = [s for s in speeds if max(s.interval_images_per_s) > 1.5 * min(s.interval_images_per_s)]
    if noisy:
        items.append(
            "Log intervals of "
            + ", ".join(f"{s.objective} ({s.workers} workers)" for s in noisy)
            + " differ by more than 1.5x in images/s: other processes shared the cores during those runs"
            f" (1-minute load {m.load[0]:.1f} -> {m.load[1]:.1f}); their images/s and step fractions are low"
            " and need a rerun on a quiet machine."
        )
    fractions = m.encoder_fractions()
    failing = [o for o, f in fractions.items() if f < ENCODER_TARGET]
    listed = ", ".join(f"{o} {100 * f:.0f}%" for o, f in fractions.items())
    verdict_text = f"below 40%: {', '.join(failing)}" if failing else "all meet the >= 40% target"
    items.append(f"Encoder-heavy part against the matmul peak: {listed}; {verdict_text}.")
    for objective in failing or [min(fractions, key=fractions.get)]:
        profile_ = m.flops[objective].encoder_profile
        top = ", ".join(f"`{k}` {100 * ms / profile_.total_ms:.0f}%" for k, ms, _ in profile_.top[:4])
        matmul, attention = profile_.matmul_ms / profile_.total_ms, profile_.attention_ms / profile_.total_ms
        items.append(
            f"{objective} (profiled): matmuls take {100 * matmul:.0f}% of the encoder-heavy time and fused "
            f"attention {100 * attention:.0f}%; the largest ops are {top}."
        )
    shapes = ", ".join(f"{shape} {100 * rate / peak:.0f}%" for shape, rate in m.linear_rates.items())
    items.append(
        f"One encoder matmul alone against the peak (the MLP's first layer, fp32): {shapes}. "
        + (
            "Width-192 matmuls are small but not slow here: the encoder is matmul-bound and its matmuls"
            " run near the large-matmul rate."
            if min(m.linear_rates.values()) >= 0.8 * peak
            else "Width-192 matmuls run well below the large-matmul rate: their shape caps the encoder."
        )
    )
    first = [s for s in speeds if s.workers == worker_counts[0]]
    step = {s.objective: m.flops[s.objective].step_flops * s.steps_per_s / peak for s in first}
    lower = [o for o in step if step[o] < fractions[o]]
    items.append(
        f"Whole trainer step against the peak ({worker_counts[0]} workers): "
        + ", ".join(f"{o} {100 * f:.0f}%" for o, f in step.items())
        + "."
        + (
            f" Lower than the encoder-heavy part for {', '.join(lower)}: the step adds the decoders, heads"
            " and losses (counted, at smaller widths), and work that counts no FLOPs: element-wise ops,"
            " the AdamW update, gradient clipping and the data wait."
            if lower
            else ""
        )
    )
    return "\n".join(f"* {item}" for item in items)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="measured trainer steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="trainer steps before the measured ones")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), help=f"from {OBJECTIVES}")
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1], help="train.num_workers values")
    parser.add_argument("--repeats", type=int, default=10, help="timed encoder passes and matmuls")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results markdown")
    parser.add_argument("--quick", action="store_true", help="4 steps, 0 workers, 3 repeats; not written")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.workers, args.repeats = 4, 2, [0], 3
    unknown = sorted(set(args.objectives) - set(OBJECTIVES))
    if unknown:
        parser.error(f"unknown objective(s) {unknown}; choose from {OBJECTIVES}")
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1:
        parser.error("--steps, --warmup and --repeats must be >= 1")
    if any(workers < 0 for workers in args.workers):
        parser.error(f"--workers must be >= 0, got {args.workers}")
    args.objectives = list(dict.fromkeys(args.objectives))
    return args


@dataclass
class Measurements:
    """Everything one run measured (see the module docstring)."""

    threads: int
    peaks: dict[int, float]
    speeds: list[TrainerSpeed]
    fetch: dict[str, tuple[float, float]]  # render + augment seconds per batch: (default threads, 1 thread)
    flops: dict[str, FlopResult]
    linear_rates: dict[str, float]
    load: tuple[float, float]
    seconds: float

    @property
    def peak(self) -> float:
        return max(self.peaks.values())

    def encoder_fractions(self) -> dict[str, float]:
        return {o: r.encoder_flops / r.encoder_seconds / self.peak for o, r in self.flops.items()}


def measure(args: argparse.Namespace) -> Measurements:
    """Run every measurement of the module docstring, printing progress."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, {available_cores()} cores ({cpu_model()})")
    peaks = matmul_peak(PEAK_SIZES, args.repeats)
    speeds = []
    for workers in args.workers:
        for objective in args.objectives:
            speed = measure_trainer(objective, workers, args.steps, args.warmup)
            print(
                f"trainer {objective:6s} workers {workers}: {speed.images_per_s:5.0f} images/s, "
                f"{speed.ms_per_step:4.0f} ms/step, data wait {100 * speed.data_fraction:4.1f}% "
                f"(+{speed.setup_seconds:.0f} s set-up, eval, checkpoint)"
            )
            speeds.append(speed)
    batch_size = speeds[0].batch_size
    fetch = {
        o: (fetchseconds(o, batch_size, 5, threads), fetchseconds(o, batch_size, 5, 1))
        for o in args.objectives
    }
    flops = measure_flops(args.objectives, batch_size, warmup=2, repeats=args.repeats)
    linear_rates = encoder_linear_rates(batch_size, args.repeats)
    # Again at the end: the best of both is the least disturbed by other processes.
    for n, rate in matmul_peak(PEAK_SIZES, args.repeats).items():
        peaks[n] = max(peaks[n], rate)
    return Measurements(
        threads,
        peaks,
        speeds,
        fetch,
        flops,
        linear_rates,
        (load_before, os.getloadavg()[0]),
        time.perf_counter() - started,
    )


def report(m: Measurements, args: argparse.Namespace) -> tuple[str, str]:
    """``(tables, reading)`` as markdown."""
    repeats = 2 * args.repeats
    peaks = ", ".join(f"{n}^3 {rate / 1e9:.0f} GFLOP/s" for n, rate in m.peaks.items())
    fetch = ", ".join(f"{o} {1e3 * many:.1f} / {1e3 * one:.1f} ms" for o, (many, one) in m.fetch.items())
    fractions = m.encoder_fractions()
    failing = [o for o, f in fractions.items() if f < ENCODER_TARGET] or [min(fractions, key=fractions.get)]
    profiles = "\n\n".join(profile_table(o, m.flops[o].encoder_profile) for o in failing)
    tables = (
        f"Matmul peak (fp32 torch.mm, best of {repeats} each): {peaks}; the reference is "
        f"{m.peak / 1e9:.0f} GFLOP/s.\n\n"
        f"### Through the trainer ({args.warmup} warm-up + {args.steps} measured steps, "
        f"batch {m.speeds[0].batch_size})\n\n"
        f"{trainer_table(m.speeds, m.flops, m.peak)}\n\n"
        f"Rendering + augmenting one batch (median of 5; no collate, no tokenizing) on {m.threads} torch "
        f"threads, as in the trainer's main process / on 1, as in a DataLoader worker: {fetch}.\n\n"
        f"### Encoder-heavy part alone (synthetic batch, best of {args.repeats} after warm-up)\n\n"
        f"{encoder_table(m.flops, m.peak)}\n\n"
        f"### Where the time goes\n\n{profiles}"
    )
    return tables, reading(m)


def write_results(m: Measurements, args: argparse.Namespace, argv: list[str] | None) -> None:
    tables, text = report(m, args)
    command = " ".join(["python experiments/bench_train.py", *(sys.argv[1:] if argv is None else argv)])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{cpu_model()}, {available_cores()} cores, no GPU; python {platform.python_version()}, "
        f"torch {torch.__version__}, {m.threads} torch threads (the default); 1-minute load average "
        f"{m.load[0]:.2f} at the start (other processes), {m.load[1]:.2f} at the end (this run's own threads "
        "included)"
    )
    targets = [
        f"| data wait < 5% of a step ({s.objective}, {s.workers} workers) | {100 * s.data_fraction:.1f}% "
        f"| {verdict(s.data_fraction < DATA_TARGET)} |"
        for s in m.speeds
    ] + [
        f"| encoder-heavy FLOP/s >= 40% of the matmul peak ({o}) | {100 * f:.0f}% "
        f"| {verdict(f >= ENCODER_TARGET)} |"
        for o, f in m.encoder_fractions().items()
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# Trainer benchmark\n\n"
        f"Command: `{command}` (from the repository root; {m.seconds:.0f} s)\n"
        f"Machine: {machine}.\n"
        f"Date: {date}.\n\n"
        "Configs: `experiments/configs/<objective>_cpu.yaml` (`*_vit_tiny_patch4_32`, 32x32 world images, "
        "patch 4, width 192, depth 6, batch 64), device cpu, fp32. *Data wait* is the trainer's "
        "`data_fraction`: wall time spent getting the next batch over step wall time. FLOPs are counted "
        "by `FlopCounterMode` (matmuls, convolutions and attention, forward + backward; the optimizer and "
        "element-wise ops count zero).\n\n"
        f"{tables}\n\n"
        "## Targets\n\n| target | measured | verdict |\n|---|---|---|\n" + "\n".join(targets) + "\n\n"
        f"## Reading\n\n{text}\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    m = measure(args)
    tables, text = report(m, args)
    print(f"\n{tables}\n\n{text}\n")
    print(f"{m.seconds:.0f} s in all; 1-minute load average {m.load[0]:.2f} -> {m.load[1]:.2f}")
    if not args.quick:
        write_results(m, args, argv)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
