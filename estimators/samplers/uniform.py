"""Uniform X with additive uniform noise: a bounded, non-Gaussian closed form."""

from __future__ import annotations

import numpy as np

from .base import RandomState, Sampler, as_rng, check_sample_count


class AdditiveUniformSampler(Sampler):
    """X ~ U(0, 1)^d and Y = X + N with N ~ U(-noise, noise)^d, coordinates independent.

    Per coordinate, with w = 2 * noise: h(N) = log w, and Y has a trapezoidal density, so
    h(Y) = w/2 if w <= 1 else log w + 1/(2w); hence I = w/2 - log w (w <= 1) or 1/(2w) (w > 1).

    Args:
        dim: Dimension of X and of Y.
        noise: Half-width of the uniform noise, > 0.
    """

    def __init__(self, dim: int, noise: float) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not noise > 0:
            raise ValueError(f"noise must be positive, got {noise}")
        self.dim_x = self.dim_y = dim
        self.noise = float(noise)

    def sample(self, n: int, rng: RandomState = None) -> tuple[np.ndarray, np.ndarray]:
        n = check_sample_count(n)
        rng = as_rng(rng)
        x = rng.uniform(0.0, 1.0, size=(n, self.dim_x))
        return x, x + rng.uniform(-self.noise, self.noise, size=(n, self.dim_x))

    def entropy_x(self) -> float:
        return 0.0

    def entropy_y(self) -> float:
        w = 2.0 * self.noise
        per_coordinate = w / 2.0 if w <= 1.0 else np.log(w) + 1.0 / (2.0 * w)
        return float(self.dim_y * per_coordinate)

    def entropy_joint(self) -> float:
        return float(self.dim_x * np.log(2.0 * self.noise))  # h(X) + h(Y | X) = 0 + h(N)

    def mutual_information(self) -> float:
        return self.entropy_x() + self.entropy_y() - self.entropy_joint()
