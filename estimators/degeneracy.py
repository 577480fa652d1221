"""Detecting inputs whose mutual information is infinite, before an estimator reports a finite number."""

from __future__ import annotations

import torch

from .preprocessing import standardize

# A canonical correlation within this of 1 is an exact linear relation in float64 (a duplicated or
# affinely copied column); a real correlation this high would mean I > ~10 nats per pair.
EXACT_CORRELATION_GAP = 1e-9


# Eigenvalues of a covariance below this fraction of the largest are numerically zero (a column
# that is a linear combination of others); the threshold is eps ~ 1e-16 on singular values, squared,
# with room for rounding.
RANK_TOLERANCE = 1e-12


def whitener(x: torch.Tensor) -> torch.Tensor:
    """``W`` ``[d, r]`` with ``W.T @ cov(x) @ W = I`` on the r numerically independent directions of ``x``.

    ``x`` should be standardised (as :func:`canonical_correlations` does): the rank tolerance is
    relative to the largest eigenvalue, so a column in much smaller units would count as dependent.
    """
    centred = x - x.mean(dim=0)
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred)
    keep = eigenvalues > eigenvalues[-1] * RANK_TOLERANCE
    return eigenvectors[:, keep] / torch.sqrt(eigenvalues[keep])


def numerical_rank(x: torch.Tensor) -> int:
    """How many linearly independent directions the columns of ``x`` ``[N, d]`` span, whatever their units."""
    return int(whitener(standardize(x)[0]).shape[1])


def canonical_correlations(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Canonical correlations between ``x`` ``[N, dx]`` and ``y`` ``[N, dy]``, descending, in [0, 1].

    They do not depend on the columns' units, so each is standardised first (without overflow).
    """
    x, y = standardize(x)[0], standardize(y)[0]
    cross = x.T @ y  # both already centred
    return torch.linalg.svdvals(whitener(x).T @ cross @ whitener(y)).clamp(0.0, 1.0)


def check_enough_samples_for_dimension(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise ValueError when too few samples make x and y look linearly related whatever they are.

    Centred, N samples span at most N - 1 dimensions, so when rank(x) + rank(y) > N - 1 the spans of
    x and y must share ``rank(x) + rank(y) - (N - 1)`` directions: canonical correlations of exactly 1
    even for independent data. That is the sample's size, not a relation between the variables.
    """
    n, rank_x, rank_y = x.shape[0], numerical_rank(x), numerical_rank(y)
    if n <= rank_x + rank_y:
        raise ValueError(
            f"too few samples for this dimension: N = {n}, but x spans {rank_x} and y {rank_y} dimensions,"
            f" so any {n} samples are exactly linearly related; at least {rank_x + rank_y + 1} samples"
            " (more than rank(x) + rank(y)) are needed to tell a real relation from too small a sample"
        )


def exact_linear_relation(x: torch.Tensor, y: torch.Tensor) -> str | None:
    """Describe an exact linear (affine) relation between ``x`` and ``y``, or return None.

    Such a relation (a column copied from x to y, or y a linear function of x) makes the mutual
    information of continuous variables infinite; kNN estimators would report a finite number
    bounded by roughly log N instead.

    Raises:
        ValueError: when N <= rank(x) + rank(y), where every sample shows such relations
            (see :func:`check_enough_samples_for_dimension`).
    """
    check_enough_samples_for_dimension(x, y)
    rho = canonical_correlations(x, y)
    if rho.numel() and float(rho[0]) >= 1.0 - EXACT_CORRELATION_GAP:
        count = int((rho >= 1.0 - EXACT_CORRELATION_GAP).sum())
        return (
            f"{count} exact linear relation(s) between x and y (canonical correlation 1 within"
            f" {EXACT_CORRELATION_GAP:g}, e.g. a duplicated or affinely copied column): the mutual"
            " information of continuous variables related this way is infinite"
        )
    return None
