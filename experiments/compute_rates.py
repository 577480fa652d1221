"""FLOP counts and FLOP rates of the objectives' training passes, against a measured matmul peak.

Used by `bench_train.py`: `FlopCounterMode` counts (with CPU attention added), the fp32 matmul peak, single
encoder-shaped matmuls, forward + backward passes of a whole step and of its encoder-heavy part, and a
per-op profile of a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from infomug.objectives import create_model

try:  # imported as `experiments.compute_rates`
    from experiments.bench_models import make_batch
except ImportError:  # imported from a script in this folder: the folder is on sys.path
    from bench_models import make_batch

PRESET = "vit_tiny_patch4_32"
MASKED = ("mae", "mug")
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
ATTENTION_OPS = (
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)


def _attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter() -> FlopCounterMode:
    """A silent `FlopCounterMode` that also counts CPU fused attention.

    torch's registry covers the CUDA attention kernels only; on CPU ``scaled_dot_product_attention``
    dispatches to ``_scaled_dot_product_flash_attention_for_cpu``, which would otherwise count zero.
    Causal attention is counted in full, as torch counts it on CUDA.
    """
    aten = torch.ops.aten
    return FlopCounterMode(
        display=False,
        custom_mapping={
            aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward_flops,
        },
    )


def count_flops(function: Callable[[], None]) -> int:
    """FLOPs (multiply and add counted apart) of one call of ``function``."""
    with flop_counter() as counter:
        function()
    return counter.get_total_flops()


def matmul_peak(sizes: Sequence[int], repeats: int) -> dict[int, float]:
    """Best fp32 ``torch.mm`` rate per square size ``n``, in FLOP/s (``2 n^3`` FLOPs per product).

    Raises:
        ValueError: if ``repeats < 1``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    generator = torch.Generator().manual_seed(0)
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
        torch.mm(a, b)
        best = min(seconds(lambda a=a, b=b: torch.mm(a, b)) for _ in range(repeats))
        rates[n] = 2 * n**3 / best
    return rates


def linear_rate(rows: int, width: int, out: int, repeats: int) -> float:
    """Best FLOP/s of one ``F.linear`` of ``[rows, width]`` by ``[out, width]`` (no bias), alone.

    Raises:
        ValueError: if ``repeats < 1``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    generator = torch.Generator().manual_seed(0)
    x, weight = torch.randn(rows, width, generator=generator), torch.randn(out, width, generator=generator)
    calls = 20  # one call lasts well under a millisecond: time a few back to back

    def run() -> None:
        for _ in range(calls):
            torch.nn.functional.linear(x, weight)

    run()
    return 2 * rows * width * out * calls / min(seconds(run) for _ in range(repeats))


def encoder_linear_rates(batch_size: int, repeats: int) -> dict[str, float]:
    """`linear_rate` of the encoder MLP's first layer as the masked and the full objectives run it.

    Returns:
        ``{"[rows, D] x [D, 4D]": FLOP/s}`` for ``rows = B * (1 + visible patches)`` and ``B * (1 + L)``.
    """
    config = create_model(f"mae_{PRESET}").config
    patches = (config.img_size // config.patch_size) ** 2
    width, hidden = config.embed_dim, int(config.embed_dim * config.mlp_ratio)
    rates = {}
    for tokens in (1 + int(patches * (1 - config.mask_ratio)), 1 + patches):
        rows = batch_size * tokens
        rates[f"[{rows}, {width}] x [{width}, {hidden}]"] = linear_rate(rows, width, hidden, repeats)
    return rates


def seconds(function: Callable[[], object]) -> float:
    """Wall seconds of one call of ``function``."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def step_pass(model: torch.nn.Module, batch: dict) -> Callable[[], None]:
    """Forward + backward of the whole objective on ``batch`` (the FLOPs of one training step)."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(batch, generator=torch.Generator().manual_seed(0))["loss"].backward()

    return run


def encoder_pass(objective: str, model: torch.nn.Module, batch: dict) -> Callable[[], None]:
    """Forward + backward of the encoder alone, as the objective runs it.

    mae/mug encode the visible patches of masked images (``forward_masked`` at the model's mask ratio);
    clip encodes every patch of each image, simclr every patch of both views (``2B`` images).
    """
    images = batch["image"]
    encoder = model.encoder

    def run() -> None:
        model.zero_grad(set_to_none=True)
        if objective in MASKED:
            generator = torch.Generator().manual_seed(0)
            latent, _, _ = encoder.forward_masked(images, model.mask_ratio, generator)
        else:
            latent = encoder.forward_features(images.flatten(0, 1) if objective == "simclr" else images)
        latent.backward(torch.ones_like(latent))

    return run


def best_seconds_interleaved(passes: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict:
    """Best wall time of each pass over ``repeats`` rounds in which the passes take turns.

    The best (not the median) is compared with the best-of matmul peak: both estimate what the machine
    does undisturbed, and turns spread any load from other processes over all passes alike.
    """
    for run in passes.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(repeats):
        for name, run in passes.items():
            times[name].append(seconds(run))
    return {name: min(values) for name, values in times.items()}


@dataclass
class OpProfile:
    """Where the time of a pass goes, from `torch.profiler` (self CPU time per op, summed over calls).

    Attributes:
        total_ms: self CPU time of all ops per pass.
        top: ``(op, ms per pass, calls per pass)`` of the costliest ops, largest first.
        matmul_ms: time in ``MATMUL_OPS``; attention_ms: in CPU fused attention (forward and backward).
    """

    total_ms: float
    top: list[tuple[str, float, float]] = field(default_factory=list)
    matmul_ms: float = 0.0
    attention_ms: float = 0.0


def profile_pass(run: Callable[[], None], passes: int, top: int = 8) -> OpProfile:
    """Profile ``passes`` calls of ``run`` (after one untimed call); times are per call."""
    run()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(passes):
            run()
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    events.sort(key=lambda event: event.self_cpu_time_total, reverse=True)
    per_pass = [
        (event.key, event.self_cpu_time_total / 1e3 / passes, event.count / passes) for event in events
    ]
    return OpProfile(
        total_ms=sum(ms for _, ms, _ in per_pass),
        top=per_pass[:top],
        matmul_ms=sum(ms for key, ms, _ in per_pass if key in MATMUL_OPS),
        attention_ms=sum(ms for key, ms, _ in per_pass if key in ATTENTION_OPS),
    )


@dataclass
class FlopResult:
    """FLOP counts and the encoder-heavy timing of one objective (synthetic batch of the preset's size).

    Attributes:
        step_flops: forward + backward FLOPs of the whole objective.
        encoder_flops: forward + backward FLOPs of the encoder-heavy part.
        encoder_seconds: best time of the encoder-heavy part.
        encoder_profile: its time per op.
    """

    step_flops: int
    encoder_flops: int
    encoder_seconds: float
    encoder_profile: OpProfile


def measure_flops(objectives: Sequence[str], batch_size: int, warmup: int, repeats: int) -> dict:
    """`FlopResult` per objective; the encoder-heavy parts are timed taking turns."""
    passes, steps = {}, {}
    for objective in objectives:
        torch.manual_seed(0)
        model = create_model(f"{objective}_{PRESET}")
        batch = make_batch(objective, model.config, batch_size, torch.Generator().manual_seed(0))
        steps[objective] = count_flops(step_pass(model, batch))
        passes[objective] = encoder_pass(objective, model, batch)
    seconds = best_seconds_interleaved(passes, warmup, repeats)
    return {
        objective: FlopResult(
            step_flops=steps[objective],
            encoder_flops=count_flops(passes[objective]),
            encoder_seconds=seconds[objective],
            encoder_profile=profile_pass(passes[objective], passes=max(2, repeats // 2)),
        )
        for objective in objectives
    }


# -- report ----------------------------------------------------------------------------------------------
