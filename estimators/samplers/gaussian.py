"""Multivariate normal (X, Y) with any covariance."""

from __future__ import annotations

import numpy as np

from .base import RandomState, Sampler, as_rng, check_sample_count


def gaussian_entropy_of(covariance: np.ndarray) -> float:
    """h in nats of a Gaussian with ``covariance`` ``[d, d]``: 1/2 log det(2 pi e Sigma)."""
    d = covariance.shape[0]
    _, log_det = np.linalg.slogdet(covariance)
    return 0.5 * (d * np.log(2 * np.pi * np.e) + log_det)


def check_covariance(covariance: np.ndarray, dim_x: int) -> np.ndarray:
    """Validate a joint covariance ``[dx + dy, dx + dy]`` and the split at ``dim_x``.

    Raises:
        ValueError: if it is not square, not symmetric, not positive definite, or the split is empty.
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"covariance must be square, got shape {covariance.shape}")
    if not 1 <= dim_x < covariance.shape[0]:
        raise ValueError(f"dim_x must be in [1, {covariance.shape[0] - 1}], got {dim_x}")
    if not np.allclose(covariance, covariance.T):
        raise ValueError("covariance must be symmetric")
    try:
        np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError as error:
        raise ValueError("covariance must be positive definite") from error
    return covariance


class GaussianSampler(Sampler):
    """(X, Y) ~ N(0, Sigma) split as X = first ``dim_x`` coordinates, Y = the rest.

    I(X; Y) = 1/2 [log det Sigma_xx + log det Sigma_yy - log det Sigma].

    Args:
        covariance: Joint covariance ``[dx + dy, dx + dy]``, symmetric positive definite.
        dim_x: Dimension of X.
    """

    def __init__(self, covariance: np.ndarray, dim_x: int) -> None:
        self.covariance = check_covariance(covariance, dim_x)
        self.dim_x = dim_x
        self.dim_y = self.covariance.shape[0] - dim_x

    @classmethod
    def dense(cls, dim_x: int, dim_y: int, correlation: float) -> GaussianSampler:
        """Every pair of coordinates (within and across X and Y) has the same ``correlation``.

        Raises:
            ValueError: unless -1/(dx + dy - 1) < correlation < 1 (positive definiteness).
        """
        d = dim_x + dim_y
        if not -1.0 / (d - 1) < correlation < 1.0:
            raise ValueError(f"dense correlation must be in (-1/{d - 1}, 1), got {correlation}")
        covariance = np.full((d, d), correlation) + (1.0 - correlation) * np.eye(d)
        return cls(covariance, dim_x)

    @classmethod
    def sparse(
        cls, dim_x: int, dim_y: int, correlation: float, n_interacting: int | None = None
    ) -> GaussianSampler:
        """X_i and Y_i correlated by ``correlation`` for i < ``n_interacting``; all else independent.

        I(X; Y) = -(n_interacting / 2) log(1 - correlation^2).

        Raises:
            ValueError: unless |correlation| < 1 and 1 <= n_interacting <= min(dim_x, dim_y).
        """
        n_interacting = min(dim_x, dim_y) if n_interacting is None else n_interacting
        if not 1 <= n_interacting <= min(dim_x, dim_y):
            raise ValueError(f"n_interacting must be in [1, {min(dim_x, dim_y)}], got {n_interacting}")
        if not -1.0 < correlation < 1.0:
            raise ValueError(f"correlation must be in (-1, 1), got {correlation}")
        covariance = np.eye(dim_x + dim_y)
        for i in range(n_interacting):
            covariance[i, dim_x + i] = covariance[dim_x + i, i] = correlation
        return cls(covariance, dim_x)

    def sample(self, n: int, rng: RandomState = None) -> tuple[np.ndarray, np.ndarray]:
        n = check_sample_count(n)
        joint = as_rng(rng).multivariate_normal(np.zeros(self.covariance.shape[0]), self.covariance, size=n)
        return joint[:, : self.dim_x], joint[:, self.dim_x :]

    def entropy_x(self) -> float:
        return gaussian_entropy_of(self.covariance[: self.dim_x, : self.dim_x])

    def entropy_y(self) -> float:
        return gaussian_entropy_of(self.covariance[self.dim_x :, self.dim_x :])

    def entropy_joint(self) -> float:
        return gaussian_entropy_of(self.covariance)

    def mutual_information(self) -> float:
        return self.entropy_x() + self.entropy_y() - self.entropy_joint()
