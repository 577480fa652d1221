"""Standardisation, tie detection and jitter applied before neighbour searches."""

from __future__ import annotations

import numpy as np
import torch

# Jitter is this fraction of each (standardised) column's scale: far below any real structure,
# enough to break exact ties between duplicated points.
DEFAULT_JITTER = 1e-10
# Above this fraction of duplicated rows a warning says so, even when jitter breaks the ties.
DUPLICATE_WARNING_FRACTION = 0.05


def standardize(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Centre and scale each column of ``x`` ``[N, d]`` to unit standard deviation.

    A constant column is only centred (estimators that cannot use one reject it before this).

    Returns:
        The standardised ``[N, d]`` tensor and ``sum(log std)`` in nats, the log-Jacobian that turns
        an entropy of the standardised data back into one of the original data.
    """
    std = x.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (x - x.mean(dim=0)) / std, float(torch.log(std).sum())


def duplicate_counts(x: torch.Tensor) -> torch.Tensor:
    """For each row of ``x`` ``[N, d]``, how many *other* rows are exactly equal to it (``[N]`` int64)."""
    values = x.cpu().numpy() + 0.0  # + 0.0 turns -0.0 into 0.0, which compares equal but differs in bytes
    counts = np.zeros(values.shape[0], dtype=np.int64)
    # Only rows whose first coordinate repeats can be duplicates: for continuous data that is almost none.
    _, inverse, first_counts = np.unique(values[:, 0], return_inverse=True, return_counts=True)
    candidates = first_counts[inverse.reshape(-1)] > 1
    if candidates.any():
        rows = np.ascontiguousarray(values[candidates])
        keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
        _, inverse, row_counts = np.unique(keys, return_inverse=True, return_counts=True)
        counts[candidates] = row_counts[inverse.reshape(-1)] - 1
    return torch.from_numpy(counts).to(x.device)


def add_jitter(x: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Return ``x + scale * std(column) * noise`` with standard normal noise (``[N, d]``)."""
    if scale <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return x + scale * x.std(dim=0, unbiased=False) * noise


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (fresh entropy when None)."""
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def duplicate_warning(counts: torch.Tensor, name: str) -> list[str]:
    """A warning when many rows are exact duplicates (``counts`` from :func:`duplicate_counts`)."""
    fraction = float((counts > 0).double().mean())
    if fraction <= DUPLICATE_WARNING_FRACTION:
        return []
    return [
        f"{fraction:.0%} of {name} rows duplicate another row; a tiny jitter breaks the ties, but kNN"
        " estimators assume continuous data (see method='mixed' for data with repeated values)"
    ]
