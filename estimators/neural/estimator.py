"""``neural_mi``: a variational lower bound on I(X; Y) from a trained critic, as an Estimate."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch

from ..interface import Estimate
from ..preprocessing import make_generator, power_of_two_scale
from ..validation import ArrayLike, as_samples, check_no_constant_columns, check_same_length
from .training import BOUNDS, NeuralSettings, batch_values, interactive, train_critic

# InfoNCE within this fraction of log K is pinned by its ceiling, not by the data.
NEAR_CEILING = 0.9
# A held-out spread larger than this (nats, per batch) marks a high-variance bound.
HIGH_BATCH_SPREAD = 0.5
FEW_TEST_BATCHES = 5


def _split(n: int, settings: NeuralSettings, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    order = torch.randperm(n, generator=generator)
    n_test = int(round(n * settings.test_fraction))
    n_val = int(round(n * settings.validation_fraction))
    k = settings.batch_size
    if min(n - n_test - n_val, n_val, n_test) < k:
        needed = math.ceil(k / min(settings.test_fraction, settings.validation_fraction))
        raise ValueError(
            f"too few samples: {n}; batch_size={k} needs at least {k} pairs in each of the train,"
            f" validation and test splits (N >= {needed}); lower batch_size or pass more samples"
        )
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def _default_device(x: ArrayLike) -> torch.device:
    if isinstance(x, torch.Tensor) and x.device.type != "cpu":
        return x.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def neural_mi(
    x: ArrayLike,
    y: ArrayLike,
    bound: str = "infonce",
    *,
    device: str | torch.device | None = None,
    seed: int | None = 0,
    progress: bool | None = None,
    **settings: Any,
) -> Estimate:
    """A variational lower bound on I(X; Y) in nats, from a critic trained on part of the data.

    The samples are split into train / validation / test (60/20/20 by default). The critic trains on
    the first, training stops when the bound on the second stops improving (the best weights are
    kept), and the reported value is the bound on the third: its mean over disjoint batches of size
    K, averaged over random partitions; the standard error is the spread of batch values over
    sqrt(number of test batches).

    Args:
        x: ``[N]`` or ``[N, dx]`` samples (standardised internally with training-split statistics).
        y: ``[N]`` or ``[N, dy]`` samples, paired with ``x``.
        bound: ``"infonce"``, ``"nwj"``, ``"dv"``, ``"mine"``, ``"js"`` (JS-trained, NWJ-read),
            ``"smile"`` or ``"interpolated"`` (see :mod:`estimators.neural.bounds`).
        device: Where to train (default: the tensors' GPU, else CUDA if available, else CPU).
        seed: Seeds the split, the batches and the critic's initial weights.
        progress: Show a progress bar (default: when stderr is a terminal).
        **settings: Fields of :class:`NeuralSettings` (critic, batch_size, max_steps, ...).

    Returns:
        An :class:`Estimate` with ``kind="lower_bound"`` (``"point"`` for SMILE, whose clipping
        biases it in either direction, so it is not a bound); for InfoNCE ``ceiling = log K``. DV and
        MINE are bounds in expectation, but the log of a finite batch mean biases their estimates
        up by O(variance / K). Warnings
        flag an InfoNCE estimate within 10% of log K, a high-variance bound, training that hit
        ``max_steps`` or diverged, and few test batches.

    Raises:
        ValueError: for an unknown bound or setting, bad input (NaN/inf, mismatched lengths, constant
            columns), or too few samples for the batch size.
    """
    start = time.perf_counter()
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    config = NeuralSettings(**settings)
    n = check_same_length((x, "x"), (y, "y"))
    x_t, y_t = as_samples(x, "x"), as_samples(y, "y")
    check_no_constant_columns(x_t, "x")
    check_no_constant_columns(y_t, "y")
    device = torch.device(device) if device is not None else _default_device(x)
    generator = make_generator(seed)
    train, validation, test = _split(n, config, generator)

    def standardised(values: torch.Tensor) -> torch.Tensor:
        values = values / power_of_two_scale(values)  # exact; keeps the squares below from overflowing
        mean, std = values[train].mean(dim=0), values[train].std(dim=0)
        return ((values - mean) / torch.where(std > 0, std, torch.ones_like(std))).float().to(device)

    xs, ys = standardised(x_t), standardised(y_t)
    train, validation, test = (part.to(device) for part in (train, validation, test))
    warnings: list[str] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0 if seed is None else seed)
        trained = train_critic(
            bound,
            config,
            (xs[train], ys[train]),
            (xs[validation], ys[validation]),
            generator,
            interactive() if progress is None else progress,
            warnings.append,
        )
    k = config.batch_size
    x_test, y_test = xs[test], ys[test]
    values = torch.cat(
        [
            batch_values(
                trained.critic,
                trained.objective,
                x_test,
                y_test,
                torch.randperm(x_test.shape[0], generator=generator).to(device),
                k,
            )
            for _ in range(config.test_permutations)
        ]
    ).double()
    batches = x_test.shape[0] // k
    value = float(values.mean())
    spread = float(values.std()) if values.numel() > 1 else math.nan
    stderr = spread / math.sqrt(batches) if batches > 1 else math.nan

    ceiling = math.log(k) if bound == "infonce" else None
    if ceiling is not None and value >= NEAR_CEILING * ceiling:
        warnings.append(
            f"InfoNCE is within 10% of its ceiling log K = {ceiling:.3f} nats (K = batch_size = {k}): the"
            " true value may be far larger; raise batch_size or use another bound"
        )
    if bound in ("dv", "nwj", "mine", "interpolated") and spread > HIGH_BATCH_SPREAD:
        warnings.append(
            f"high-variance bound: held-out batch values spread by {spread:.2f} nats; {bound} averages"
            " exponentials of the critic, so single batches can be far off"
        )
    if batches < FEW_TEST_BATCHES:
        warnings.append(f"only {batches} test batch(es) of {k}: the error bar is rough; pass more samples")
    if not trained.converged and trained.diverged_at is None:
        warnings.append(
            f"training ran all {config.max_steps} steps without the validation value levelling off;"
            " more steps may raise the estimate"
        )
    params = {
        "bound": bound,
        **dataclasses.asdict(config),
        "steps_trained": trained.steps,
        "best_step": trained.best_step,
        "splits": [int(train.numel()), int(validation.numel()), int(test.numel())],
        "device": str(device),
        "seed": seed,
    }
    return Estimate(
        value,
        stderr,
        n,
        bound,
        params,
        kind="point" if bound == "smile" else "lower_bound",
        ceiling=ceiling,
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )
