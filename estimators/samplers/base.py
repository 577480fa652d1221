"""What every sampler with a closed-form mutual information offers."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

RandomState = np.random.Generator | int | None


def as_rng(rng: RandomState) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed, or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_sample_count(n: int) -> int:
    """Raise ValueError unless ``n`` is a positive integer."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


class Sampler(ABC):
    """A joint distribution of (X, Y) whose mutual information is known exactly.

    Attributes:
        dim_x: Dimension of X.
        dim_y: Dimension of Y.
    """

    dim_x: int
    dim_y: int

    @abstractmethod
    def sample(self, n: int, rng: RandomState = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` pairs: ``x`` ``[n, dim_x]`` and ``y`` ``[n, dim_y]`` (float64)."""

    @abstractmethod
    def mutual_information(self) -> float:
        """I(X; Y) in nats."""

    def entropy_x(self) -> float:
        """h(X) in nats. Raises NotImplementedError where no closed form exists."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form h(X)")

    def entropy_y(self) -> float:
        """h(Y) in nats. Raises NotImplementedError where no closed form exists."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form h(Y)")

    def entropy_joint(self) -> float:
        """h(X, Y) in nats. Raises NotImplementedError where no closed form exists."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form h(X, Y)")

    def mutual_information_bits(self) -> float:
        """I(X; Y) in bits."""
        return self.mutual_information() / np.log(2.0)
