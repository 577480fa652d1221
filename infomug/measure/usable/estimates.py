"""Held-out per-sample losses turned into information estimates, and paired differences between encoders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from estimators import Estimate


@dataclass(frozen=True)
class DecodedInformation:
    """An information estimate from a fresh decoder, with the per-test-sample values behind it.

    Attributes:
        estimate: The `Estimate` (nats; its ``stderr`` is the test split's standard error of the mean).
        per_sample: ``[n_test]`` nats: the information each test sample contributes (baseline
            loss, or the exact entropy, minus the conditional loss), row-aligned with ``test_rows``.
        test_rows: ``[n_test]`` the rows (images) it was read on.
    """

    estimate: Estimate
    per_sample: np.ndarray
    test_rows: np.ndarray


def information_from_losses(
    per_sample: np.ndarray,
    test_rows: np.ndarray,
    *,
    method: str,
    params: dict[str, Any],
    kind: str,
    ceiling: float | None,
    seconds: float,
    warnings: tuple[str, ...] = (),
) -> DecodedInformation:
    """The mean of ``per_sample`` (nats) with its standard error, as a `DecodedInformation`."""
    values = np.asarray(per_sample, dtype=np.float64)
    n = values.size
    stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    estimate = Estimate(
        value=float(values.mean()),
        stderr=stderr,
        n=int(n),
        method=method,
        params=params,
        kind=kind,  # type: ignore[arg-type]
        ceiling=ceiling,
        seconds=seconds,
        warnings=warnings,
    )
    return DecodedInformation(estimate=estimate, per_sample=values, test_rows=np.asarray(test_rows))


def paired_difference(first: DecodedInformation, second: DecodedInformation) -> Estimate:
    """``first - second`` in nats, from per-sample differences on the same test rows (a paired interval).

    Raises:
        ValueError: when the two were read on different rows.
    """
    if not np.array_equal(first.test_rows, second.test_rows):
        raise ValueError("a paired difference needs both estimates on the same test rows")
    differences = first.per_sample - second.per_sample
    n = differences.size
    return Estimate(
        value=float(differences.mean()),
        stderr=float(differences.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        n=int(n),
        method=f"paired_difference({first.estimate.method})",
        params={"first": first.estimate.method, "second": second.estimate.method},
        kind="point",
    )
