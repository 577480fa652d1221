"""Closed-form estimates under a Gaussian model: Gaussian (CCA) and Gaussian-copula mutual information.

For jointly Gaussian (X, Y), I = -1/2 sum_i log(1 - rho_i^2) over the canonical correlations rho_i.
The sample version is biased upward; with ``bias_correction`` each log-determinant gets the exact
Wishart expectation removed: E[log det S] - log det Sigma = sum_{i=1..d} psi((N - i) / 2) - d log((N - 1) / 2)
(S the unbiased sample covariance), cf. Misra, Singh & Demchuk (2005), "Estimation of the entropy of
a multivariate normal distribution", J. Multivariate Analysis 92.

The Gaussian-copula estimate (Ince et al. 2017, "A statistical framework for neuroimaging data
analysis based on mutual information estimated via a Gaussian copula", Hum. Brain Mapp. 38) first maps
each column to normal scores through its ranks; it is invariant to monotone transforms of each column,
exact when the dependence is a Gaussian copula, and for one-dimensional x and y a lower bound on I.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.special import digamma, ndtri
from scipy.stats import rankdata

from .degeneracy import canonical_correlations, exact_linear_relation, numerical_rank
from .interface import Estimate
from .preprocessing import (
    duplicate_counts,
    duplicate_warning,
    make_generator,
    outlier_scale_warning,
    standardize,
)
from .uncertainty import standard_error
from .validation import ArrayLike, as_samples, check_no_constant_columns, check_same_length


def log_det_bias(n: int, d: int) -> float:
    """E[log det S] - log det Sigma for the unbiased covariance S of n Gaussian samples in d dimensions."""
    i = np.arange(1, d + 1)
    return float(digamma((n - i) / 2.0).sum() - d * math.log((n - 1) / 2.0))


def _gaussian_value(x: torch.Tensor, y: torch.Tensor, bias_correction: bool) -> float:
    rho = canonical_correlations(x, y)
    value = float(-0.5 * torch.log1p(-(rho**2)).sum())
    if bias_correction:
        n = x.shape[0]
        d_x, d_y = numerical_rank(x), numerical_rank(y)
        value -= 0.5 * (log_det_bias(n, d_x) + log_det_bias(n, d_y) - log_det_bias(n, d_x + d_y))
    return value


def normal_scores(x: torch.Tensor) -> torch.Tensor:
    """Map each column of ``x`` ``[N, d]`` through its ranks to standard normal quantiles (ties averaged)."""
    ranks = rankdata(x.cpu().numpy(), axis=0, method="average")
    return torch.from_numpy(ndtri(ranks / (x.shape[0] + 1))).to(x.device)


def _prepare(x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    check_same_length((x, "x"), (y, "y"))
    x_t, y_t = as_samples(x, "x"), as_samples(y, "y")
    check_no_constant_columns(x_t, "x")
    check_no_constant_columns(y_t, "y")
    needed = x_t.shape[1] + y_t.shape[1] + 2
    if x_t.shape[0] < needed:
        raise ValueError(
            f"too few samples: {x_t.shape[0]}, a Gaussian estimate in {needed - 2} joint dimensions needs"
            f" at least {needed}"
        )
    return x_t, y_t


def _estimate(
    x_t: torch.Tensor,
    y_t: torch.Tensor,
    method: str,
    bias_correction: bool,
    uncertainty: bool,
    seed: int | None,
    start: float,
    warnings: list[str],
) -> Estimate:
    n = x_t.shape[0]
    params = {"bias_correction": bias_correction, "seed": seed}
    relation = exact_linear_relation(x_t, y_t)
    if relation is not None:
        return Estimate(
            math.inf,
            math.nan,
            n,
            method,
            params,
            seconds=time.perf_counter() - start,
            warnings=tuple(warnings + [relation]),
        )
    value = _gaussian_value(x_t, y_t, bias_correction)
    stderr, notes = standard_error(
        uncertainty,
        lambda idx: _gaussian_value(x_t[idx], y_t[idx], bias_correction),
        n,
        value,
        make_generator(seed),
        min_size=x_t.shape[1] + y_t.shape[1] + 10,
    )
    warnings += notes
    return Estimate(
        value, stderr, n, method, params, seconds=time.perf_counter() - start, warnings=tuple(warnings)
    )


def gaussian_mi(
    x: ArrayLike,
    y: ArrayLike,
    *,
    bias_correction: bool = True,
    uncertainty: bool = True,
    seed: int | None = 0,
) -> Estimate:
    """I(X; Y) in nats of the Gaussian with the samples' covariance (exact if (X, Y) is Gaussian).

    Args:
        x: ``[N]`` or ``[N, dx]`` samples.
        y: ``[N]`` or ``[N, dy]`` samples.
        bias_correction: Remove the small-sample bias of the log-determinants (see module docstring).
        uncertainty: Standard error by disjoint-subsample scaling.
        seed: Seed for the subsample partitions.

    Returns:
        An :class:`Estimate`; ``inf`` with a warning for an exact linear relation.

    Raises:
        ValueError: for NaN/inf, mismatched lengths, constant columns, or N < dx + dy + 2.
    """
    start = time.perf_counter()
    x_t, y_t = _prepare(x, y)
    warnings = outlier_scale_warning(x_t, "x") + outlier_scale_warning(y_t, "y")
    return _estimate(x_t, y_t, "gaussian", bias_correction, uncertainty, seed, start, warnings)


def gaussian_copula_mi(
    x: ArrayLike,
    y: ArrayLike,
    *,
    bias_correction: bool = True,
    uncertainty: bool = True,
    seed: int | None = 0,
) -> Estimate:
    """I(X; Y) in nats by the Gaussian-copula estimate: Gaussian MI of per-column normal scores.

    Same arguments, return value and errors as :func:`gaussian_mi`. Invariant to monotone
    transforms of each column; exact under a Gaussian copula; for 1-D x and y a lower bound.
    """
    start = time.perf_counter()
    x_t, y_t = _prepare(x, y)
    warnings = duplicate_warning(duplicate_counts(x_t), "x") + duplicate_warning(duplicate_counts(y_t), "y")
    return _estimate(
        normal_scores(x_t), normal_scores(y_t), "copula", bias_correction, uncertainty, seed, start, warnings
    )


def gaussian_entropy(
    x: ArrayLike, *, bias_correction: bool = True, uncertainty: bool = True, seed: int | None = 0
) -> Estimate:
    """Differential entropy in nats of the Gaussian with the samples' covariance: 1/2 log det(2 pi e S).

    This is an upper bound on h(X) for any distribution with that covariance (the Gaussian maximises
    entropy), and exact for Gaussian X.

    Raises:
        ValueError: for NaN/inf, constant columns, or N < d + 2.
    """
    start = time.perf_counter()
    x_t = as_samples(x, "x")
    check_no_constant_columns(x_t, "x")
    n, d = x_t.shape
    if n < d + 2:
        raise ValueError(f"too few samples: {n}, a Gaussian entropy in {d} dimensions needs at least {d + 2}")
    # log det cov(x) = log det cov(z) + 2 sum log std(x) for the standardised columns z: the covariance
    # of z stays finite for data in any units (1e300 squared is inf), and its determinant is about
    # correlation, not units.
    z, log_scale = standardize(x_t)

    def value_of(samples: torch.Tensor) -> float:
        m = samples.shape[0]
        sign, log_det = torch.linalg.slogdet(torch.cov(samples.T).reshape(d, d))
        if float(sign) <= 0:
            return -math.inf
        bias = log_det_bias(m, d) if bias_correction else 0.0
        return 0.5 * (float(log_det) - bias) + log_scale + 0.5 * d * math.log(2 * math.pi * math.e)

    value = value_of(z)
    warnings: list[str] = []
    if not math.isfinite(value):
        warnings.append("the sample covariance is singular (linearly dependent columns): entropy is -inf")
    stderr, notes = standard_error(
        uncertainty and math.isfinite(value),
        lambda idx: value_of(z[idx]),
        n,
        value,
        make_generator(seed),
        min_size=d + 10,
    )
    warnings += notes
    return Estimate(
        value,
        stderr,
        n,
        "gaussian",
        {"bias_correction": bias_correction, "seed": seed},
        quantity="entropy",
        kind="upper_bound",
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )
