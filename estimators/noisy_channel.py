"""I(X; f(X) + sigma Z) for a deterministic encoder f: information through a Gaussian noise channel.

For a deterministic f and continuous X, I(X; f(X)) is infinite; adding noise, T = f(X) + sigma Z with
Z ~ N(0, I), makes it finite and a property of sigma:

    I(X; T) = h(T) - h(T | X) = h(T) - (d/2) log(2 pi e sigma^2),

where T is a Gaussian mixture centred on the features. Over a sample of N features the mixture has N
components, so every estimate here is at most log N (reached when sigma is small enough to tell all
samples apart).

* ``noisy_channel_mi``: the sample-propagation estimator of Goldfeld et al. (2019), "Estimating
  Information Flow in Deep Neural Networks", ICML: h(T) is the entropy of the mixture of N Gaussians
  N(mu_i, sigma^2 I), estimated by Monte Carlo over draws from the mixture itself.
* ``kolchinsky_tracey_bounds``: the pairwise-distance bounds of Kolchinsky & Tracey (2017),
  "Estimating Mixture Entropy with Pairwise Distances", Entropy 19: exact lower (Bhattacharyya) and
  upper (Kullback-Leibler) bounds on that mixture's entropy, hence on I, from distances alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .interface import Estimate
from .preprocessing import make_generator, power_of_two_scale
from .uncertainty import standard_error
from .validation import ArrayLike, as_samples

DEFAULT_CHUNK = 1024
NEAR_LOG_N = 0.9


def feature_scale(features: torch.Tensor) -> float:
    """RMS per-dimension standard deviation of ``features`` ``[N, d]``: the unit of ``relative_sigma``."""
    unit = power_of_two_scale(features, dim=None)  # exact, and the squares cannot overflow
    return float((features / unit).var(dim=0, unbiased=False).mean().sqrt() * unit)


def resolve_sigma(
    features: torch.Tensor, sigma: float | None, relative_sigma: float | None
) -> tuple[float, float]:
    """The noise level as ``(sigma, sigma / feature_scale)``.

    Raises:
        ValueError: unless exactly one of ``sigma``/``relative_sigma`` is given and positive, or if the
            features have no spread.
    """
    if (sigma is None) == (relative_sigma is None):
        raise ValueError(
            "give exactly one of sigma (absolute) or relative_sigma (a multiple of the feature scale)"
        )
    scale = feature_scale(features)
    if not scale > 0:
        raise ValueError("features have zero variance: every sample maps to the same point")
    value = sigma if sigma is not None else relative_sigma * scale
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"sigma must be positive and finite, got {value}")
    return float(value), float(value) / scale


def _squared_distances(a: torch.Tensor, b: torch.Tensor, b_norms: torch.Tensor) -> torch.Tensor:
    return ((a * a).sum(dim=1, keepdim=True) + b_norms[None, :] - 2.0 * a @ b.T).clamp_min_(0.0)


def _mean_log_mixture(queries: torch.Tensor, centres: torch.Tensor, scale: float, chunk: int) -> torch.Tensor:
    """Mean over queries of log (1/N) sum_j exp(-|q - mu_j|^2 / scale)."""
    norms = (centres * centres).sum(dim=1)
    total = torch.zeros((), dtype=torch.float64, device=centres.device)
    for start in range(0, queries.shape[0], chunk):
        block = _squared_distances(queries[start : start + chunk], centres, norms)
        total += torch.logsumexp(-block / scale, dim=1).sum()
    return total / queries.shape[0] - math.log(centres.shape[0])


@dataclass(frozen=True)
class MixtureBounds:
    """Kolchinsky-Tracey bounds on I(X; T_sigma) for the sample's mixture, in nats."""

    lower: float
    upper: float


def kolchinsky_tracey_bounds(
    features: ArrayLike,
    *,
    sigma: float | None = None,
    relative_sigma: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> MixtureBounds:
    """Lower and upper bounds on I(X; f(X) + sigma Z) for the N-component mixture of the sample.

    With equal-covariance Gaussian components, D_KL(p_i || p_j) = |mu_i - mu_j|^2 / (2 sigma^2) and the
    Bhattacharyya distance is a quarter of it, so
    I_upper = -mean_i log mean_j exp(-|mu_i - mu_j|^2 / (2 sigma^2)) and I_lower the same with 8 sigma^2.

    Args:
        features: ``[N, d]`` encoder outputs f(x_i).
        sigma, relative_sigma: The noise level, absolute or as a multiple of :func:`feature_scale`.

    Raises:
        ValueError: for bad features (see :func:`estimators.validation.as_samples`) or noise level.
    """
    mu = as_samples(features, "features")
    sigma_value, _ = resolve_sigma(mu, sigma, relative_sigma)
    # I is unchanged when features and sigma share a unit; a power of two keeps squares finite, exactly.
    unit = power_of_two_scale(mu, dim=None)
    mu, sigma_value = mu / unit, sigma_value / float(unit)
    lower = -float(_mean_log_mixture(mu, mu, 8.0 * sigma_value**2, chunk))
    upper = -float(_mean_log_mixture(mu, mu, 2.0 * sigma_value**2, chunk))
    return MixtureBounds(lower, upper)


def _sample_propagation(
    mu: torch.Tensor, sigma: float, draws: int, generator: torch.Generator, chunk: int
) -> float:
    """I = log N - mean_i log sum_j exp(-(|t_i - mu_j|^2 - |t_i - mu_i|^2) / (2 sigma^2)).

    Here t_i = mu_i + sigma z_i. This is h(mixture) - h(sigma Z) with the term |z_i|^2 / 2 - d / 2,
    whose mean is exactly 0, left out: it is the only noise left when the components are far apart,
    and it grows like sqrt(d).
    """
    n, d = mu.shape
    norms = (mu * mu).sum(dim=1)
    total = torch.zeros((), dtype=torch.float64, device=mu.device)
    for _ in range(draws):
        noise = torch.randn((n, d), generator=generator, dtype=torch.float64).to(mu.device)
        for start in range(0, n, chunk):
            own = slice(start, start + chunk)
            queries = mu[own] + sigma * noise[own]
            excess = _squared_distances(queries, mu, norms) - (sigma**2) * (noise[own] ** 2).sum(
                dim=1, keepdim=True
            )
            total += torch.logsumexp(-excess / (2.0 * sigma**2), dim=1).sum()
    return math.log(n) - float(total) / (n * draws)


def noisy_channel_mi(
    features: ArrayLike,
    *,
    sigma: float | None = None,
    relative_sigma: float | None = None,
    draws: int = 1,
    uncertainty: bool = True,
    seed: int | None = 0,
    chunk: int = DEFAULT_CHUNK,
) -> Estimate:
    """I(X; f(X) + sigma Z) in nats by sample propagation, with the Kolchinsky-Tracey bracket.

    Args:
        features: ``[N, d]`` outputs of a deterministic encoder on N inputs (numpy or torch; CUDA
            tensors are processed on the GPU).
        sigma: Noise standard deviation, in the features' units.
        relative_sigma: Or the noise as a multiple of the features' RMS per-dimension std.
        draws: Noise draws per sample for the Monte Carlo entropy (more: less Monte Carlo error).
        uncertainty: Standard error by disjoint-subsample scaling (Monte Carlo and sampling noise).
        seed: Seed for the noise draws and subsample partitions.
        chunk: Rows per block of the N x N distance computation (memory is chunk x N).

    Returns:
        An :class:`Estimate` with ``ceiling = log N``; ``params`` hold sigma, relative_sigma, the
        feature scale and the bracket (``kt_lower``, ``kt_upper``). A warning always states that the
        value is a property of sigma.

    Raises:
        ValueError: for bad features, a missing/ambiguous/non-positive noise level, or draws < 1.
    """
    start = time.perf_counter()
    mu = as_samples(features, "features")
    n, d = mu.shape
    if n < 2:
        raise ValueError(f"too few samples: {n}, a mixture entropy needs at least 2")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    sigma_value, relative = resolve_sigma(mu, sigma, relative_sigma)
    generator = make_generator(seed)
    # I is unchanged when features and sigma share a unit; a power of two keeps squares finite, exactly.
    unit = power_of_two_scale(mu, dim=None)
    unit_mu, unit_sigma = mu / unit, sigma_value / float(unit)
    value = _sample_propagation(unit_mu, unit_sigma, draws, generator, chunk)
    stderr, warnings = standard_error(
        uncertainty,
        lambda idx: _sample_propagation(unit_mu[idx.to(mu.device)], unit_sigma, draws, generator, chunk),
        n,
        value,
        generator,
        min_size=20,
    )
    bracket = kolchinsky_tracey_bounds(mu, sigma=sigma_value, chunk=chunk)
    ceiling = math.log(n)
    warnings.insert(
        0,
        f"I(X; f(X) + sigma Z) of a deterministic encoder is a property of the noise: here sigma ="
        f" {sigma_value:.4g} ({relative:.3g} x the feature scale); without noise it is infinite for"
        f" continuous X and log N = {ceiling:.3f} nats for this sample",
    )
    if value >= NEAR_LOG_N * ceiling:
        warnings.append(
            f"the estimate is within 10% of log N = {ceiling:.3f}: at this sigma the channel tells the N"
            " samples apart and the value measures the sample size, not the encoder; raise sigma"
        )
    params = {
        "sigma": sigma_value,
        "relative_sigma": relative,
        "feature_scale": feature_scale(mu),
        "draws": draws,
        "kt_lower": bracket.lower,
        "kt_upper": bracket.upper,
        "seed": seed,
    }
    return Estimate(
        value,
        stderr,
        n,
        "noisy_channel",
        params,
        ceiling=ceiling,
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )


def noisy_channel_sweep(
    features: ArrayLike, relative_sigmas: Sequence[float] = (0.03, 0.1, 0.3, 1.0), **options
) -> list[Estimate]:
    """:func:`noisy_channel_mi` at several noise levels (multiples of the feature scale)."""
    return [noisy_channel_mi(features, relative_sigma=level, **options) for level in relative_sigmas]
