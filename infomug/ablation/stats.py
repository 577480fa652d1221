"""Statistics over the runs of a sweep: a mean with its Student-t interval over seeds, and Spearman's rho.

Seeds are few (three in the CPU sweep), so the interval uses Student's t with n - 1 degrees of freedom,
not the normal quantile: ``half_width = t_{0.975, n-1} * s / sqrt(n)``, ``s`` the sample standard
deviation. One seed has no spread to measure; its half-width is NaN, never a fake 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# Up to this many pairs the p-value of rho is exact (all n! orderings, 40,320 at 8); scipy's t
# approximation says p = 0 for a perfect rank order of 3 points, where the exact answer is 1/3.
EXACT_UP_TO = 8


@dataclass(frozen=True)
class Summary:
    """A metric over a group's runs.

    Attributes:
        mean: Mean of ``values`` (in the metric's units: nats, a fraction, ...).
        half_width: Half-width of the two-sided t-interval at `CONFIDENCE`; NaN when n < 2 or a value is
            not finite.
        n: Number of values (seeds).
        values: The values, in the group's run order.
    """

    mean: float
    half_width: float
    n: int
    values: tuple[float, ...]

    @property
    def interval(self) -> tuple[float, float]:
        """``(mean - half_width, mean + half_width)``; NaN ends when the half-width is NaN."""
        return (self.mean - self.half_width, self.mean + self.half_width)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (NaN stays NaN); `from_dict` reads it back."""
        return {"mean": self.mean, "half_width": self.half_width, "n": self.n, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """Inverse of `to_dict`.

        Raises:
            KeyError: for a missing field.
        """
        return cls(float(data["mean"]), float(data["half_width"]), int(data["n"]), tuple(data["values"]))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean and Student-t interval half-width of ``values`` (independent seeds of one setting).

    Example:
        ``t_interval([1, 2, 3])`` has mean 2 and half-width ``t_{0.975, 2} * 1 / sqrt(3) = 2.484``.

    Raises:
        ValueError: for no values, or ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"t_interval needs a non-empty list of numbers, got {values!r}")
    n = int(array.size)
    mean = float(array.mean())
    half_width = math.nan
    if n >= 2 and np.isfinite(array).all():
        quantile = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1))
        half_width = quantile * float(array.std(ddof=1)) / math.sqrt(n)
    return Summary(mean, half_width, n, tuple(float(v) for v in array))


@dataclass(frozen=True)
class Correlation:
    """Spearman's rank correlation of paired values.

    Attributes:
        rho: Spearman's rho in [-1, 1]; NaN when n < 3 or either side is constant (ranks carry nothing).
        p_value: Two-sided p-value of rho = 0: exact by permutation up to `EXACT_UP_TO` pairs, else
            scipy's t approximation (at least 2 / n!); NaN with rho.
        n: Number of pairs.
    """

    rho: float
    p_value: float
    n: int


def spearman(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Spearman's rho of ``x`` against ``y`` (pairs with a non-finite side are left out).

    Raises:
        ValueError: if ``x`` and ``y`` differ in length.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"spearman needs two lists of the same length, got {xs.shape} and {ys.shape}")
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    n = int(xs.size)
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(math.nan, math.nan, n)
    rho = float(stats.spearmanr(xs, ys).statistic)
    if n <= EXACT_UP_TO:
        return Correlation(rho, _exact_p_value(xs, ys, rho), n)
    # The t approximation says p = 0 for a perfect order; no ordering of n points is rarer than 2 / n!
    # (it and its reverse), so that is the floor.
    floor = 2.0 / math.factorial(n)
    return Correlation(rho, max(float(stats.spearmanr(xs, ys).pvalue), floor), n)


def _exact_p_value(xs: np.ndarray, ys: np.ndarray, rho: float) -> float:
    """Two-sided permutation p-value of rho: the share of the n! orderings of ``ys`` whose |rho| is at least
    the observed one (exact; ties keep their average ranks)."""
    x_ranks, y_ranks = stats.rankdata(xs), stats.rankdata(ys)
    x_centred = x_ranks - x_ranks.mean()
    norm = math.sqrt(float(x_centred @ x_centred) * float(((y_ranks - y_ranks.mean()) ** 2).sum()))
    permuted = np.array(list(itertools.permutations(y_ranks)))
    rhos = (permuted - y_ranks.mean()) @ x_centred / norm
    # A small tolerance so that a permutation tying the observed |rho| counts despite rounding.
    return float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))
