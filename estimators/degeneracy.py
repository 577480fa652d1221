"""Detecting inputs whose mutual information is infinite, before an estimator reports a finite number."""

from __future__ import annotations

import torch

# A canonical correlation within this of 1 is an exact linear relation in float64 (a duplicated or
# affinely copied column); a real correlation this high would mean I > ~10 nats per pair.
EXACT_CORRELATION_GAP = 1e-9


# Eigenvalues of a covariance below this fraction of the largest are numerically zero (a column
# that is a linear combination of others); the threshold is eps ~ 1e-16 on singular values, squared,
# with room for rounding.
RANK_TOLERANCE = 1e-12


def whitener(x: torch.Tensor) -> torch.Tensor:
    """``W`` ``[d, r]`` with ``W.T @ cov(x) @ W = I`` on the r numerically independent directions of ``x``."""
    centred = x - x.mean(dim=0)
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred)
    keep = eigenvalues > eigenvalues[-1] * RANK_TOLERANCE
    return eigenvectors[:, keep] / torch.sqrt(eigenvalues[keep])


def canonical_correlations(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Canonical correlations between ``x`` ``[N, dx]`` and ``y`` ``[N, dy]``, descending, in [0, 1]."""
    cross = (x - x.mean(dim=0)).T @ (y - y.mean(dim=0))
    return torch.linalg.svdvals(whitener(x).T @ cross @ whitener(y)).clamp(0.0, 1.0)


def exact_linear_relation(x: torch.Tensor, y: torch.Tensor) -> str | None:
    """Describe an exact linear (affine) relation between ``x`` and ``y``, or return None.

    Such a relation (a column copied from x to y, or y a linear function of x) makes the mutual
    information of continuous variables infinite; kNN estimators would report a finite number
    bounded by roughly log N instead.
    """
    rho = canonical_correlations(x, y)
    if rho.numel() and float(rho[0]) >= 1.0 - EXACT_CORRELATION_GAP:
        count = int((rho >= 1.0 - EXACT_CORRELATION_GAP).sum())
        return (
            f"{count} exact linear relation(s) between x and y (canonical correlation 1 within"
            f" {EXACT_CORRELATION_GAP:g}, e.g. a duplicated or affinely copied column): the mutual"
            " information of continuous variables related this way is infinite"
        )
    return None
