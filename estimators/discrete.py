"""Plug-in entropy and mutual information of discrete data, with the Miller-Madow bias correction.

The plug-in estimate from empirical frequencies is biased: entropy low by about (m - 1) / (2N) for
m occupied values, mutual information high by about (m_x - 1)(m_y - 1) / (2N) under independence.
Miller (1955) adds (m - 1) / (2N) to each entropy; for I = H(X) + H(Y) - H(X, Y) that is a
correction of (m_x + m_y - m_xy - 1) / (2N).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .interface import Estimate
from .preprocessing import make_generator
from .uncertainty import standard_error
from .validation import ArrayLike, as_labels, check_same_length

CORRECTIONS = ("miller-madow", "none")

# Fewer samples per occupied cell than this and even the corrected plug-in estimate is unreliable.
MIN_SAMPLES_PER_CELL = 5


def _check_correction(correction: str) -> None:
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")


def _entropy_of_codes(codes: np.ndarray, correction: str) -> tuple[float, int]:
    _, counts = np.unique(codes, return_counts=True)
    p = counts / codes.size
    value = float(-(p * np.log(p)).sum())
    if correction == "miller-madow":
        value += (counts.size - 1) / (2 * codes.size)
    return value, counts.size


def _mi_of_codes(x: np.ndarray, y: np.ndarray, correction: str) -> tuple[float, int]:
    joint = x * (int(y.max()) + 1) + y
    h_x, _ = _entropy_of_codes(x, correction)
    h_y, _ = _entropy_of_codes(y, correction)
    h_xy, cells = _entropy_of_codes(joint, correction)
    return h_x + h_y - h_xy, cells


def _sparse_warning(n: int, cells: int) -> list[str]:
    if n >= MIN_SAMPLES_PER_CELL * cells:
        return []
    return [
        f"{cells} occupied cells for {n} samples (< {MIN_SAMPLES_PER_CELL} per cell): plug-in estimates are"
        " strongly biased this undersampled, even with the Miller-Madow correction"
    ]


def discrete_entropy(
    labels: ArrayLike, *, correction: str = "miller-madow", uncertainty: bool = True, seed: int | None = 0
) -> Estimate:
    """Shannon entropy H(Y) in nats of discrete ``labels`` ``[N]`` (rows of ``[N, m]`` are joint labels).

    Raises:
        ValueError: for empty input or an unknown correction.
    """
    start = time.perf_counter()
    _check_correction(correction)
    codes = as_labels(labels, "labels")
    n = codes.size
    value, values_seen = _entropy_of_codes(codes, correction)
    warnings = _sparse_warning(n, values_seen)
    stderr, notes = standard_error(
        uncertainty,
        lambda idx: _entropy_of_codes(codes[idx.numpy()], correction)[0],
        n,
        value,
        make_generator(seed),
        min_size=10,
    )
    warnings += notes
    params = {"correction": correction, "values_seen": values_seen, "seed": seed}
    return Estimate(
        value,
        stderr,
        n,
        "discrete",
        params,
        quantity="entropy",
        ceiling=math.log(values_seen),
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )


def discrete_mi(
    x: ArrayLike,
    y: ArrayLike,
    *,
    correction: str = "miller-madow",
    uncertainty: bool = True,
    seed: int | None = 0,
) -> Estimate:
    """Mutual information I(X; Y) in nats between two discrete variables.

    Args:
        x: ``[N]`` labels of any type (or ``[N, m]``, rows are joint labels).
        y: ``[N]`` labels, paired with ``x``.
        correction: ``"miller-madow"`` (default) or ``"none"`` for the raw plug-in estimate.
        uncertainty: Standard error by disjoint-subsample scaling.
        seed: Seed for the subsample partitions.

    Returns:
        An :class:`Estimate`; ``ceiling`` is min(H(X), H(Y)) of the plug-in entropies. A corrected
        estimate can be slightly negative under independence; it is not clipped.

    Raises:
        ValueError: for mismatched lengths, empty input or an unknown correction.
    """
    start = time.perf_counter()
    _check_correction(correction)
    n = check_same_length((x, "x"), (y, "y"))
    x_codes, y_codes = as_labels(x, "x"), as_labels(y, "y")
    value, cells = _mi_of_codes(x_codes, y_codes, correction)
    ceiling = min(_entropy_of_codes(x_codes, "none")[0], _entropy_of_codes(y_codes, "none")[0])
    warnings = _sparse_warning(n, cells)
    stderr, notes = standard_error(
        uncertainty,
        lambda idx: _mi_of_codes(x_codes[idx.numpy()], y_codes[idx.numpy()], correction)[0],
        n,
        value,
        make_generator(seed),
        min_size=10,
    )
    warnings += notes
    params = {"correction": correction, "cells": cells, "seed": seed}
    return Estimate(
        value,
        stderr,
        n,
        "discrete",
        params,
        ceiling=ceiling,
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )
