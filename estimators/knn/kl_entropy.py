"""Kozachenko-Leonenko differential entropy.

L. F. Kozachenko, N. N. Leonenko, "Sample estimate of the entropy of a random vector", Problems of
Information Transmission 23 (1987); in the max-norm form of Kraskov et al. (2004), eq. (20):
h = psi(N) - psi(k) + d log 2 + (d / N) sum_i log eps_i, with eps_i the distance to the k-th
neighbour and 2^d the volume of the max-norm unit ball.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from .. import neighbors
from ..interface import Estimate
from ..preprocessing import DEFAULT_JITTER, add_jitter, duplicate_counts, duplicate_warning, make_generator
from ..uncertainty import standard_error
from ..validation import ArrayLike
from .common import (
    HEAVY_TIE_FRACTION,
    as_neighbor_counts,
    prepare,
    psi,
    smallest_subsample,
    zero_distance_fraction,
)

ENTROPY_TIE_POLICIES = ("report", "jitter", "raise")


def kl_terms(x: torch.Tensor, ks: Sequence[int], backend: str) -> float:
    """KL entropy (nats, averaged over ``ks``) of prepared ``[N, d]`` samples, without any Jacobian."""
    n, d = x.shape
    dist, _ = neighbors.knn([x], max(ks), backend)
    values = [
        math.log(2.0) * d + float(psi(n) - psi(k)) + d * float(torch.log(dist[:, k - 1]).mean()) for k in ks
    ]
    return sum(values) / len(values)


def kl_entropy(
    x: ArrayLike,
    k: int | Sequence[int] = 3,
    *,
    standardize: bool = True,
    jitter: float = DEFAULT_JITTER,
    on_ties: str = "report",
    backend: str = "auto",
    uncertainty: bool = True,
    seed: int | None = 0,
) -> Estimate:
    """Differential entropy h(X) in nats by the Kozachenko-Leonenko kNN estimator.

    Args:
        x: ``[N]`` or ``[N, d]`` continuous samples.
        k: Neighbours (default 3), or several values whose estimates are averaged.
        standardize: Estimate on standardised columns, then add back ``sum(log std)`` (the
            log-Jacobian), so the result is the entropy of ``x`` in its own units.
        jitter: Noise added to break exact ties, as a fraction of each column's std (default 1e-10).
        on_ties: When more than 1% of points have k exact duplicates the distribution has atoms and
            its differential entropy is -inf: ``"report"`` returns -inf with a warning, ``"jitter"``
            estimates anyway, ``"raise"`` raises ValueError.
        backend: Neighbour search, ``"auto"``, ``"kdtree"`` or ``"brute"``.
        uncertainty: Compute a standard error by disjoint-subsample scaling.
        seed: Seed for the jitter and subsample partitions.

    Returns:
        An :class:`Estimate` with ``quantity="entropy"``. Differential entropy depends on units and
        can be negative.

    Raises:
        ValueError: for NaN/inf, fewer than k+1 samples, constant columns, unknown options, or heavy
            ties with ``on_ties="raise"``.
    """
    start = time.perf_counter()
    if on_ties not in ENTROPY_TIE_POLICIES:
        raise ValueError(f"on_ties must be one of {ENTROPY_TIE_POLICIES}, got {on_ties!r}")
    ks = as_neighbor_counts(k)
    x_t, log_scale, warnings = prepare(x, "x", max(ks), standardize)
    n, d = x_t.shape
    backend_used = neighbors.choose_backend(d, x_t.device, backend, n)
    params = {
        "k": ks[0] if len(ks) == 1 else list(ks),
        "metric": "max-norm",
        "standardize": standardize,
        "jitter": jitter,
        "backend": backend_used,
        "seed": seed,
    }

    def result(value: float, stderr: float) -> Estimate:
        return Estimate(
            value,
            stderr,
            n,
            "kl",
            params,
            quantity="entropy",
            seconds=time.perf_counter() - start,
            warnings=tuple(warnings),
        )

    duplicates = duplicate_counts(x_t)
    tied = zero_distance_fraction(duplicates, max(ks))
    if tied > HEAVY_TIE_FRACTION:
        message = (
            f"{tied:.1%} of points have at least k={max(ks)} exact duplicates: the distribution has atoms,"
            " so its differential entropy is -inf (see estimators.discrete_entropy for discrete data)"
        )
        if on_ties == "raise":
            raise ValueError(message)
        if on_ties == "report":
            warnings.append(message)
            return result(-math.inf, math.nan)
        warnings.append(message + "; jittered anyway (on_ties='jitter'), the value reflects the jitter scale")
    warnings += duplicate_warning(duplicates, "x")

    generator = make_generator(seed)
    x_t = add_jitter(x_t, jitter, generator)
    value = kl_terms(x_t, ks, backend) + log_scale
    stderr, notes = standard_error(
        uncertainty,
        lambda idx: kl_terms(x_t[idx], ks, backend) + log_scale,
        n,
        value,
        generator,
        min_size=smallest_subsample(ks),
    )
    warnings += notes
    return result(value, stderr)
