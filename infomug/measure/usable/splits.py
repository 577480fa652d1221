"""Train / validation / test rows for decoders, consistent with the probes' train / test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infomug.measure.probes import split_indices


@dataclass(frozen=True)
class Splits:
    """Disjoint sorted row indices: decoders fit on ``train``, stop early on ``val``, report on ``test``.

    ``test`` is the probes' held-out split (`split_indices` with the same fraction and seed), so every
    number of a layer is read on the same images; ``val`` is carved out of the probes' train part.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @classmethod
    def make(cls, n: int, *, test_fraction: float, val_fraction: float, seed: int) -> Splits:
        """Split ``range(n)``: ``round(n * test_fraction)`` test rows, ``round(n * val_fraction)`` val rows.

        Raises:
            ValueError: for fractions outside (0, 1) or summing to 1 or more, or a part under 2 rows.
        """
        if not 0.0 < val_fraction < 1.0 or test_fraction + val_fraction >= 1.0:
            raise ValueError(
                f"val_fraction must be in (0, 1) with test_fraction + val_fraction < 1, got {val_fraction}"
                f" and {test_fraction}"
            )
        rest, test = split_indices(n, test_fraction, seed)
        n_val = int(round(n * val_fraction))
        if n_val < 2 or rest.size - n_val < 2:
            raise ValueError(f"cannot carve {n_val} validation rows out of {rest.size} training rows")
        order = np.random.default_rng([seed, 1]).permutation(rest.size)
        return cls(train=np.sort(rest[order[n_val:]]), val=np.sort(rest[order[:n_val]]), test=test)

    def check(self, n: int, what: str = "samples") -> None:
        """Refuse splits that index rows outside ``range(n)``.

        Raises:
            ValueError: naming the part and ``n`` (e.g. splits made for another number of images).
        """
        for name in ("train", "val", "test"):
            rows = np.asarray(getattr(self, name))
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"splits.{name} has rows outside [0, {n}) for {n} {what}")
