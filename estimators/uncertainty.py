"""Standard errors by disjoint-subsample variance scaling (Holmes & Nemenman 2019).

"Estimation of mutual information for real-valued data with error bars and controlled bias",
Phys. Rev. E 100, 022404. The N samples are split into n disjoint parts for several n; the spread of
the estimates over parts of size N/n, scaled by the usual 1/size law, extrapolates to the variance
at size N. Disjoint parts, not a bootstrap: resampling with replacement duplicates points, which sit
at distance 0 and bias every kNN estimator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_SPLITS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)

# A change between the estimate on all N and the mean over halves larger than this many standard
# errors means the estimator's bias still depends on N.
DRIFT_Z = 3.0


@dataclass(frozen=True)
class SubsampleSpread:
    """What the subsample analysis found.

    Attributes:
        stderr: Standard error at the full sample size, in the estimate's units (nan if unknown).
        splits: The split counts n actually used.
        half_mean: Mean of the estimates over the two halves (nan when n=2 was not used).
        warnings: Caveats (too few samples, drift with N).
    """

    stderr: float
    splits: tuple[int, ...]
    half_mean: float
    warnings: tuple[str, ...]


def subsample_spread(
    estimate_on: Callable[[torch.Tensor], float],
    n: int,
    full_value: float,
    generator: torch.Generator,
    min_size: int,
    splits: Sequence[int] = DEFAULT_SPLITS,
) -> SubsampleSpread:
    """Estimate the standard error of ``estimate_on(all indices)`` from disjoint subsamples.

    Args:
        estimate_on: Maps a ``[m]`` int64 index tensor to the estimate (a float) on those samples.
        n: Total number of samples.
        full_value: The estimate on all ``n`` samples (used for the drift check).
        generator: Source of the random partitions.
        min_size: Smallest part the estimator can handle; splits giving smaller parts are skipped.
        splits: Numbers of parts to split into (each >= 2).

    Returns:
        A :class:`SubsampleSpread`; its ``stderr`` pools, weighted by degrees of freedom, the
        estimates ``B = var(part estimates) * part_size`` and returns ``sqrt(B / n)``.
    """
    pooled, dof, used, half_mean = 0.0, 0, [], math.nan
    for parts in splits:
        size = n // parts
        if parts < 2 or size < min_size:
            continue
        order = torch.randperm(n, generator=generator)[: parts * size].view(parts, size)
        values = np.array([estimate_on(index) for index in order])
        if not np.all(np.isfinite(values)):
            continue
        pooled += float(np.var(values, ddof=1)) * size * (parts - 1)
        dof += parts - 1
        used.append(parts)
        if parts == 2:
            half_mean = float(values.mean())
    if dof == 0:
        note = f"no error bar: {n} samples are too few to split into parts of at least {min_size}"
        return SubsampleSpread(math.nan, (), math.nan, (note,))
    stderr = math.sqrt(pooled / dof / n)
    warnings = []
    if math.isfinite(half_mean) and abs(full_value - half_mean) > DRIFT_Z * max(stderr, 1e-12):
        warnings.append(
            f"the estimate moves with sample size (mean over N/2 halves {half_mean:.4f}, all N"
            f" {full_value:.4f} nats): the estimator's bias has not settled at this N; the error bar"
            " covers noise, not that bias"
        )
    return SubsampleSpread(stderr, tuple(used), half_mean, tuple(warnings))


def standard_error(
    enabled: bool,
    estimate_on: Callable[[torch.Tensor], float],
    n: int,
    full_value: float,
    generator: torch.Generator,
    min_size: int,
) -> tuple[float, list[str]]:
    """The subsample standard error and its warnings, or ``(nan, [])`` when not ``enabled``.

    Arguments as in :func:`subsample_spread`.
    """
    if not enabled:
        return math.nan, []
    spread = subsample_spread(estimate_on, n, full_value, generator, min_size)
    return spread.stderr, list(spread.warnings)
