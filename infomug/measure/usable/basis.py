"""A canonical basis for features: what every decoder reads, so that no invertible linear map matters.

Usable information should not depend on how an encoder happens to scale or rotate its features: a
decoder with a linear first layer can undo any invertible linear map, but its optimiser and weight
decay cannot (Adam rescales per coordinate, decay favours large-variance directions). So decoders read
features in a basis that is a function of the feature *distribution* alone:

1. centre, and whiten by the covariance (directions with variance below ``relative_floor`` times the
   largest are dropped: float noise, or an exact rank deficiency such as LayerNorm's);
2. rotate to the eigenvectors of the fourth-moment matrix E[|z|^2 z z^T] of the whitened features
   (FOBI, Cardoso 1989): for any invertible map A, whitened A x is R z with R orthogonal, and this matrix
   turns with R, so its eigenvectors give back the same coordinates;
3. fix each coordinate's sign by its third moment (then by its largest-magnitude sample).

Any invertible linear map of the features then gives the same coordinates up to float error (and up to
rotations inside a subspace of exactly equal fourth-moment eigenvalues, which real features do not
have). The statistics come from the rows given to `CanonicalBasis.fit` (the train split), so the test
split never informs the decoders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RELATIVE_FLOOR = 1e-10
MAX_ROWS = 200_000  # rows the statistics use at most (token grids have N x M); evenly strided


@dataclass(frozen=True)
class CanonicalBasis:
    """Centre, whitening projection and canonical rotation fitted on training features.

    Attributes:
        mean: ``[D]`` float64 training mean.
        projection: ``[D, K]`` float64: ``(x - mean) @ projection`` are the canonical coordinates.
        input_dim: ``D``.
        dropped: Directions dropped for (numerically) zero variance.
    """

    mean: np.ndarray
    projection: np.ndarray
    input_dim: int
    dropped: int

    @property
    def dim(self) -> int:
        """``K``, the number of canonical coordinates."""
        return int(self.projection.shape[1])

    @classmethod
    def fit(
        cls, features: np.ndarray, *, relative_floor: float = RELATIVE_FLOOR, max_rows: int = MAX_ROWS
    ) -> CanonicalBasis:
        """Fit on ``[N, D]`` features, or ``[N, M, D]`` token grids (every token a row).

        Args:
            features: Training features.
            relative_floor: Directions with variance below this times the largest are dropped.
            max_rows: Rows used at most, evenly strided (the same rows whatever the feature values, so
                the invariance holds).

        Raises:
            ValueError: for fewer than 2 rows, non-finite values, or features with no variance.
        """
        x = np.asarray(features)
        if x.ndim not in (2, 3):
            raise ValueError(f"features must be [N, D] or [N, M, D], got shape {x.shape}")
        x = x.reshape(-1, x.shape[-1])
        if x.shape[0] > max_rows:
            x = x[:: -(-x.shape[0] // max_rows)]
        x = x.astype(np.float64)  # after striding: a float64 copy of a whole token grid can be gigabytes
        if x.shape[0] < 2:
            raise ValueError(f"a canonical basis needs at least 2 rows, got {x.shape[0]}")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinite values")
        mean = x.mean(axis=0)
        centred = x - mean
        covariance = centred.T @ centred / x.shape[0]
        values, vectors = np.linalg.eigh(covariance)
        if not values[-1] > 0:
            raise ValueError("the features have no variance: every row is the same")
        keep = values > relative_floor * values[-1]
        whitening = vectors[:, keep] / np.sqrt(values[keep])
        z = centred @ whitening
        fourth = (z * (z * z).sum(axis=1, keepdims=True)).T @ z / x.shape[0]
        _, rotation = np.linalg.eigh(fourth)
        rotation = rotation[:, ::-1]  # largest kurtosis direction first
        projection = whitening @ rotation
        coordinates = z @ rotation
        signs = np.sign((coordinates**3).mean(axis=0))
        if (signs == 0).any():  # rare (symmetric coordinates), and an argmax down columns is slow
            extreme = coordinates[np.abs(coordinates).argmax(axis=0), np.arange(coordinates.shape[1])]
            signs = np.where(signs == 0, np.sign(extreme), signs)
        signs[signs == 0] = 1.0
        return cls(
            mean=mean,
            projection=projection * signs,
            input_dim=int(x.shape[1]),
            dropped=int((~keep).sum()),
        )

    def transform(self, features: np.ndarray) -> np.ndarray:
        """``[..., D]`` features -> ``[..., K]`` float32 canonical coordinates.

        Raises:
            ValueError: for a last dimension other than ``D``.
        """
        x = np.asarray(features)
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"features have {x.shape[-1]} dimensions; the basis was fit on {self.input_dim}")
        flat = x.reshape(-1, self.input_dim).astype(np.float64)
        out = (flat - self.mean) @ self.projection
        return out.reshape(*x.shape[:-1], self.dim).astype(np.float32)
