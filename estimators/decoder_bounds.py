"""Barber-Agakov bounds: what a decoder's likelihood proves about I(A; T).

For any decoder q(a | t), I(A; T) = H(A) - H(A | T) >= H(A) - E[-log q(a | t)] (Barber & Agakov
2003, "The IM algorithm"): a caption decoder's cross-entropy or a pixel decoder's Gaussian
likelihood, evaluated on held-out data, lower-bounds what the representation T carries about A.
"""

from __future__ import annotations

import math
import time

import torch

from .interface import Estimate
from .validation import ArrayLike


def _as_vector(values: ArrayLike, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values, dtype=torch.float64)
    if tensor.ndim != 1 or tensor.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty [N] vector of per-sample values, got shape {tuple(tensor.shape)}"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def barber_agakov_bound(
    nll: ArrayLike,
    entropy: float | Estimate,
    *,
    entropy_stderr: float = 0.0,
    discrete: bool = True,
) -> Estimate:
    """Lower bound I(A; T) >= H(A) - mean(nll), in nats, with its standard error.

    Args:
        nll: ``[N]`` per-sample negative log-likelihoods -log q(a_i | t_i) in nats, on held-out data
            (a whole caption's summed token cross-entropy, a whole patch's Gaussian NLL: see
            :func:`sequence_nll` and :func:`gaussian_nll`).
        entropy: H(A) in nats (exact, e.g. from a generator with known factors), or an Estimate of it.
        entropy_stderr: Standard error of a float ``entropy`` (ignored for an Estimate, which has one).
        discrete: A is discrete, so H(A) is also the ceiling of I(A; T). For continuous A pass False:
            H(A) is then a differential entropy and there is no such ceiling.

    Returns:
        An :class:`Estimate` with ``kind="lower_bound"``; standard error
        sqrt(var(nll) / N + stderr(H)^2). A negative value (the decoder does worse than knowing
        nothing) is reported, not clipped, with a warning.

    Raises:
        ValueError: for an empty or non-finite ``nll`` or a non-finite entropy.
    """
    start = time.perf_counter()
    values = _as_vector(nll, "nll")
    if isinstance(entropy, Estimate):
        entropy_value, entropy_error = entropy.value, entropy.stderr
    else:
        entropy_value, entropy_error = float(entropy), float(entropy_stderr)
    if not math.isfinite(entropy_value):
        raise ValueError(f"entropy must be finite, got {entropy_value}")
    n = values.numel()
    cross_entropy = float(values.mean())
    spread = float(values.var(unbiased=True)) / n if n > 1 else math.nan
    stderr = math.sqrt(spread + (entropy_error if math.isfinite(entropy_error) else 0.0) ** 2)
    value = entropy_value - cross_entropy
    warnings = []
    if value < 0:
        warnings.append(
            f"the decoder's cross-entropy {cross_entropy:.4f} exceeds H(A) = {entropy_value:.4f}: it"
            " predicts A worse than its marginal, so the bound says nothing (I >= 0 holds anyway)"
        )
    params = {"entropy": entropy_value, "entropy_stderr": entropy_error, "cross_entropy": cross_entropy}
    return Estimate(
        value,
        stderr,
        n,
        "barber_agakov",
        params,
        kind="lower_bound",
        ceiling=entropy_value if discrete else None,
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )


def sequence_nll(token_nll: ArrayLike, lengths: ArrayLike) -> torch.Tensor:
    """Per-sequence NLL ``[N]`` from per-token NLLs ``[N, L]`` (nats), counting the first ``lengths[i]``.

    Padding is excluded by length, not by token id (a pad id can also be a real token).

    Raises:
        ValueError: for mismatched shapes or lengths outside [0, L].
    """
    tokens = torch.as_tensor(token_nll, dtype=torch.float64)
    length = torch.as_tensor(lengths, dtype=torch.int64)
    if tokens.ndim != 2 or length.shape != (tokens.shape[0],):
        raise ValueError(
            f"token_nll must be [N, L] and lengths [N], got {tuple(tokens.shape)} and {tuple(length.shape)}"
        )
    if bool((length < 0).any() | (length > tokens.shape[1]).any()):
        raise ValueError(f"lengths must be within [0, {tokens.shape[1]}]")
    mask = torch.arange(tokens.shape[1])[None, :] < length[:, None]
    return (tokens * mask).sum(dim=1)


def gaussian_nll(residuals: ArrayLike, variance: float | ArrayLike) -> torch.Tensor:
    """Per-sample NLL ``[N]`` (nats) of residuals ``[N, P]`` under independent N(0, variance) per value.

    -log q = sum_p [ r_p^2 / (2 v) + log(2 pi v) / 2 ].

    Raises:
        ValueError: for non-positive variance.
    """
    r = torch.as_tensor(residuals, dtype=torch.float64)
    v = torch.as_tensor(variance, dtype=torch.float64)
    if bool((v <= 0).any()):
        raise ValueError("variance must be positive")
    r = r.reshape(r.shape[0], -1)
    return (r**2 / (2 * v) + 0.5 * torch.log(2 * math.pi * v)).expand_as(r).sum(dim=1)
