"""Standardisation, tie detection and jitter applied before neighbour searches."""

from __future__ import annotations

import numpy as np
import torch

# Jitter is this fraction of each (standardised) column's scale: far below any real structure,
# enough to break exact ties between duplicated points.
DEFAULT_JITTER = 1e-10
# Above this fraction of duplicated rows a warning says so, even when jitter breaks the ties.
DUPLICATE_WARNING_FRACTION = 0.05
# A column whose interquartile range is below this many standard deviations (1.35 for a Gaussian, 0.88
# for Student-t with 3 degrees of freedom, 0.16 for a cubed Gaussian) has its scale set by a few
# extreme values: a 1000-sigma outlier (ratio 0.06) halves a 2-D KSG estimate.
OUTLIER_SCALE_RATIO = 0.1


def power_of_two_scale(x: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """The power of two at or below ``max |x|`` (per column for ``dim=0``, overall for None); 1 where 0.

    Dividing by it is exact in floating point and brings every value into [-2, 2], so squares and
    sums of squares cannot overflow (1e300 squared is inf) or underflow, however large or small the
    data's units.
    """
    largest = x.abs().amax(dim=dim) if dim is not None else x.abs().amax()
    _, exponent = torch.frexp(largest)
    scale = torch.ldexp(torch.ones_like(largest), exponent - 1)
    return torch.where(largest > 0, scale, torch.ones_like(largest))


def column_std(x: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """Standard deviation of each column of ``x`` ``[N, d]`` (``[d]``), finite for any finite input.

    ``x.std`` squares the values first, so columns beyond ~1e154 come out inf; here each column is
    scaled by a power of two before squaring, which leaves ordinary data bit-for-bit unchanged.
    """
    scale = power_of_two_scale(x)
    return (x / scale).std(dim=0, unbiased=unbiased) * scale


def standardize(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Centre and scale each column of ``x`` ``[N, d]`` to unit standard deviation.

    A constant column is only centred (estimators that cannot use one reject it before this). Any
    finite input works: each column is first divided by a power of two near its largest magnitude
    (exact), so neither the squares nor the result overflow.

    Returns:
        The standardised ``[N, d]`` tensor and ``sum(log std)`` in nats, the log-Jacobian that turns
        an entropy of the standardised data back into one of the original data.
    """
    scale = power_of_two_scale(x)
    scaled = x / scale
    std = scaled.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (scaled - scaled.mean(dim=0)) / std, float((torch.log(scale) + torch.log(std)).sum())


def outlier_scale_warning(x: torch.Tensor, name: str) -> list[str]:
    """A warning naming the columns of ``x`` ``[N, d]`` whose standard deviation a few extreme values set.

    Standardised by such a standard deviation, the rest of the column is squeezed towards 0, so
    max-norm kNN distances no longer see it (and a covariance is set by those few values): the
    column's information is mostly lost. Columns with tied quartiles (atoms) are left to the tie checks.
    """
    values = x.cpu().numpy()
    lower, upper = np.percentile(values, [25.0, 75.0], axis=0)
    std = column_std(x).cpu().numpy()
    spread = (upper - lower) / np.where(std > 0, std, 1.0)
    squeezed = np.flatnonzero((upper > lower) & (spread < OUTLIER_SCALE_RATIO))
    if squeezed.size == 0:
        return []
    col = int(squeezed[0])
    row = int(np.argmax(np.abs(values[:, col] - np.median(values[:, col]))))
    columns = ", ".join(str(int(c)) for c in squeezed)
    return [
        f"{name} column(s) {columns}: a few extreme values set the standard deviation (in column {col} the"
        f" middle half of the values spans {spread[col]:.2g} standard deviations, 1.35 for a Gaussian;"
        f" row {row} is {values[row, col]:.3g}): scaled by it, the rest of the column is squeezed towards 0,"
        " where kNN distances and a covariance barely see it, so the estimate misses most of that column's"
        " structure; drop or clip the outliers, or transform the column (a log, or ranks: method='copula')"
    ]


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
    return x + scale * column_std(x) * noise


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
