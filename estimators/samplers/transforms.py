"""Invertible maps that leave mutual information unchanged, and a sampler that applies them.

I(f(X); g(Y)) = I(X; Y) for invertible, differentiable f and g, so a good estimator's answer should
not move when they are applied; these (after Czyż et al. 2023, "Beyond normal: on the evaluation of
mutual information estimators", NeurIPS) bend the data in ways kNN estimators find hard.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import ndtr

from .base import RandomState, Sampler

Transform = Callable[[np.ndarray], np.ndarray]


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Elementwise standard normal CDF: squeezes the real line into (0, 1)."""
    return ndtr(x)


def asinh(x: np.ndarray) -> np.ndarray:
    """Elementwise inverse hyperbolic sine: thins heavy tails logarithmically."""
    return np.arcsinh(x)


def half_cube(x: np.ndarray) -> np.ndarray:
    """Elementwise x |x|^(1/2): stretches the tails."""
    return x * np.sqrt(np.abs(x))


class Spiral:
    """x -> R(speed * |x|^2) x, a rotation in the first two coordinates by an angle growing with |x|^2.

    Invertible because the rotation keeps |x|: x = R(-speed * |y|^2) y.

    Args:
        dim: Dimension of the input (>= 2).
        speed: Radians of rotation per unit of squared norm.
    """

    def __init__(self, dim: int, speed: float = 1.0) -> None:
        if dim < 2:
            raise ValueError(f"a spiral needs at least 2 dimensions, got {dim}")
        self.dim, self.speed = dim, float(speed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        angle = self.speed * (x**2).sum(axis=1)
        cos, sin = np.cos(angle), np.sin(angle)
        out = x.copy()
        out[:, 0] = cos * x[:, 0] - sin * x[:, 1]
        out[:, 1] = sin * x[:, 0] + cos * x[:, 1]
        return out

    def __repr__(self) -> str:
        return f"Spiral(dim={self.dim}, speed={self.speed})"


class TransformedSampler(Sampler):
    """Samples of ``base`` with ``transform_x`` applied to X and ``transform_y`` to Y.

    Mutual information is the base sampler's; the entropies change and have no closed form here.

    Args:
        base: The sampler to transform.
        transform_x: Invertible map ``[n, dim_x] -> [n, dim_x]`` (None keeps X).
        transform_y: Invertible map ``[n, dim_y] -> [n, dim_y]`` (None keeps Y).
    """

    def __init__(
        self, base: Sampler, transform_x: Transform | None = None, transform_y: Transform | None = None
    ):
        self.base = base
        self.dim_x, self.dim_y = base.dim_x, base.dim_y
        self.transform_x, self.transform_y = transform_x, transform_y

    def sample(self, n: int, rng: RandomState = None) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.base.sample(n, rng)
        if self.transform_x is not None:
            x = self.transform_x(x)
        if self.transform_y is not None:
            y = self.transform_y(y)
        return x, y

    def mutual_information(self) -> float:
        return self.base.mutual_information()
