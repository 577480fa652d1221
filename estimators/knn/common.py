"""Steps every kNN estimator takes before searching neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.special import digamma

from ..preprocessing import outlier_scale_warning, standardize
from ..validation import (
    ArrayLike,
    as_samples,
    check_enough_samples,
    check_neighbors,
    check_no_constant_columns,
    label_warning,
)

TIE_POLICIES = ("route", "jitter", "raise")

# Above this fraction of points with zero k-th neighbour distance, ties are not noise to be jittered
# away but atoms of the distribution, and need an estimator built for them.
HEAVY_TIE_FRACTION = 0.01


def psi(values: torch.Tensor | float) -> torch.Tensor:
    """Digamma in float64 of a count tensor or a number."""
    return digamma(torch.as_tensor(values, dtype=torch.float64))


def as_neighbor_counts(k: int | Sequence[int]) -> tuple[int, ...]:
    """Validate ``k`` (an int, or several to average over) and return them as a tuple."""
    ks = tuple(k) if isinstance(k, Sequence) else (k,)
    if not ks:
        raise ValueError("k must be a positive integer or a non-empty sequence of them")
    return tuple(check_neighbors(value) for value in ks)


def smallest_subsample(ks: Sequence[int]) -> int:
    """Smallest part an error-bar split may use: enough points for every k to mean something."""
    return max(20, 4 * (max(ks) + 1))


def check_tie_policy(on_ties: str) -> None:
    """Raise ValueError for an unknown ``on_ties`` policy."""
    if on_ties not in TIE_POLICIES:
        raise ValueError(f"on_ties must be one of {TIE_POLICIES}, got {on_ties!r}")


def prepare(
    x: ArrayLike, name: str, k_max: int, standardize_data: bool
) -> tuple[torch.Tensor, float, list[str]]:
    """Validate continuous samples and optionally standardise them.

    Returns:
        ``[N, d]`` float64 tensor, ``sum(log std)`` (0.0 when not standardised) and warnings.

    Raises:
        ValueError/TypeError: see :func:`estimators.validation.as_samples`; also for fewer than
            ``k_max + 1`` samples and for constant columns.
    """
    tensor = as_samples(x, name)
    check_enough_samples(tensor.shape[0], k_max)
    check_no_constant_columns(tensor, name)
    warnings = label_warning(tensor, name)
    if not standardize_data:
        return tensor, 0.0, warnings
    warnings += outlier_scale_warning(tensor, name)
    tensor, log_scale = standardize(tensor)
    return tensor, log_scale, warnings


def zero_distance_fraction(duplicates: torch.Tensor, k: int) -> float:
    """Fraction of points with at least ``k`` exact duplicates (k-NN distance 0), from duplicate counts."""
    return float((duplicates >= k).double().mean())
