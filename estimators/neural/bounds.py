"""Variational lower bounds on mutual information as pure functions of a critic score matrix.

After Poole, Ozair, van den Oord, Alemi & Tucker (2019), "On Variational Bounds of Mutual
Information", ICML. Convention everywhere: ``scores`` is ``[K, K]`` with ``scores[i, j] = f(x_i, y_j)``
for a batch of K pairs; the diagonal holds samples of the joint p(x, y), the K(K-1) off-diagonal
entries samples of the product of marginals p(x)p(y). Every function returns a scalar tensor in
nats, differentiable, computed in log-sum-exp form so large scores do not overflow.

Some bounds are trained with one objective and read with another (the returned tensor then has the
value of the read bound and the gradient of the training objective): ``js_bound`` and ``smile_bound``
train with the Jensen-Shannon f-GAN objective, ``mine_bound`` with a moving-average corrected gradient.
No training code lives here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check(scores: torch.Tensor) -> int:
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(
            f"scores must be a square [K, K] matrix with K >= 2, got shape {tuple(scores.shape)}"
        )
    return scores.shape[0]


def _offdiagonal_mask(k: int, device: torch.device) -> torch.Tensor:
    return ~torch.eye(k, dtype=torch.bool, device=device)


def logmeanexp_offdiagonal(scores: torch.Tensor) -> torch.Tensor:
    """log of the mean of exp over the K(K-1) off-diagonal entries of ``scores`` ``[K, K]``."""
    k = _check(scores)
    masked = scores.masked_fill(~_offdiagonal_mask(k, scores.device), float("-inf"))
    return torch.logsumexp(masked.reshape(-1), dim=0) - math.log(k * (k - 1))


def joint_mean(scores: torch.Tensor) -> torch.Tensor:
    """Mean of the diagonal: the critic's average on joint samples."""
    _check(scores)
    return torch.diagonal(scores).mean()


def dv_bound(scores: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan: I >= E_p[f] - log E_q[e^f]. Tight at f = log p/q + c for any c."""
    return joint_mean(scores) - logmeanexp_offdiagonal(scores)


def tuba_bound(scores: torch.Tensor, log_baseline: torch.Tensor | float) -> torch.Tensor:
    """Tractable unnormalised bound: I >= 1 + E_p[f - b(y)] - E_q[e^(f - b(y))].

    Args:
        scores: ``[K, K]`` critic scores.
        log_baseline: ``b(y_j)``, a float or a ``[K]`` tensor indexed like the columns (y).
    """
    k = _check(scores)
    baseline = torch.as_tensor(log_baseline, dtype=scores.dtype, device=scores.device).expand(k)
    shifted = scores - baseline[None, :]
    return 1.0 + joint_mean(shifted) - torch.exp(logmeanexp_offdiagonal(shifted))


def nwj_bound(scores: torch.Tensor) -> torch.Tensor:
    """Nguyen-Wainwright-Jordan (f-GAN KL, "MINE-f"): I >= E_p[f] - E_q[e^(f - 1)].

    Tight at f = 1 + log p/q. High variance: the second term is an average of exponentials.
    """
    return tuba_bound(scores, 1.0)


def infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE (van den Oord et al. 2018): I >= log K + E[f(x_i, y_i) - logsumexp_j f(x_i, y_j)].

    Never exceeds log K, whatever the critic: with a batch of K the estimate is capped at log K.
    """
    k = _check(scores)
    return math.log(k) + (torch.diagonal(scores) - torch.logsumexp(scores, dim=1)).mean()


def js_divergence_objective(scores: torch.Tensor) -> torch.Tensor:
    """The f-GAN Jensen-Shannon objective E_p[-softplus(-f)] - E_q[softplus(f)] (not an MI bound).

    Maximised by f = log p/q; stable to train (bounded gradients), used by ``js_bound``/``smile_bound``.
    """
    k = _check(scores)
    negatives = F.softplus(scores).masked_select(_offdiagonal_mask(k, scores.device)).mean()
    return -F.softplus(-torch.diagonal(scores)).mean() - negatives


def _value_with_gradient_of(value: torch.Tensor, objective: torch.Tensor) -> torch.Tensor:
    return objective + (value - objective).detach()


def js_bound(scores: torch.Tensor) -> torch.Tensor:
    """Critic trained with Jensen-Shannon, read with NWJ (Hjelm et al. 2019; Poole et al. 2019).

    The JS-optimal critic is log p/q, and NWJ is tight at 1 + log p/q, so the value is the NWJ bound
    of ``scores + 1``: 1 + E_p[f] - E_q[e^f]. The gradient is that of the JS objective.
    """
    return _value_with_gradient_of(nwj_bound(scores + 1.0), js_divergence_objective(scores))


def smile_bound(scores: torch.Tensor, clip: float | None = 5.0) -> torch.Tensor:
    """SMILE (Song & Ermon 2020): DV with the partition term's scores clipped to [-clip, clip].

    Clipping bounds the variance of log E_q[e^f] at the price of a bias that grows as the true
    density ratio leaves [e^-clip, e^clip]. Trained with the JS objective. ``clip=None`` reads plain DV.
    """
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip}")
    clipped = scores if clip is None else scores.clamp(-clip, clip)
    value = joint_mean(scores) - logmeanexp_offdiagonal(clipped)
    return _value_with_gradient_of(value, js_divergence_objective(scores))


def mine_bound(
    scores: torch.Tensor, running_log_mean: torch.Tensor | None, momentum: float = 0.99
) -> tuple[torch.Tensor, torch.Tensor]:
    """MINE (Belghazi et al. 2018): the DV value with a bias-corrected gradient.

    The gradient of log E_q[e^f] is grad E_q[e^f] / E_q[e^f]; a minibatch estimate of the denominator
    biases it, so MINE divides by an exponential moving average instead.

    Args:
        scores: ``[K, K]`` critic scores.
        running_log_mean: log of the moving average of E_q[e^f] so far (None on the first step).
        momentum: Weight of the past in the moving average.

    Returns:
        The bound (value = DV, gradient = corrected) and the updated ``running_log_mean`` (detached).
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    log_mean = logmeanexp_offdiagonal(scores)
    if running_log_mean is None or momentum == 0.0:
        updated = log_mean.detach()
    else:
        updated = torch.logaddexp(
            math.log(momentum) + running_log_mean, math.log1p(-momentum) + log_mean.detach()
        )
    # value: log_mean; gradient: grad(E_q e^f) / moving average
    corrected = log_mean.detach() + torch.exp(log_mean - updated) - torch.exp(log_mean - updated).detach()
    return joint_mean(scores) - corrected, updated


def _leave_one_out_log_mean(rows: torch.Tensor) -> torch.Tensor:
    """``out[i, j] = log mean_{k != j} exp(rows[i, k])`` for ``rows`` ``[K, K]``, without cancellation."""
    k = rows.shape[1]
    top = rows.max(dim=1, keepdim=True).values
    weights = torch.exp(rows - top)
    total = weights.sum(dim=1, keepdim=True)
    # Removing entry j leaves at least the row maximum (weight 1) unless j is the maximum itself.
    out = torch.log(total - weights) + top
    argmax = rows.argmax(dim=1)
    without_max = rows.scatter(1, argmax[:, None], float("-inf"))
    out = out.scatter(1, argmax[:, None], torch.logsumexp(without_max, dim=1, keepdim=True))
    return out - math.log(k - 1)


def interpolated_bound(
    scores: torch.Tensor, log_baseline: torch.Tensor | float, alpha: float
) -> torch.Tensor:
    """The interpolated InfoNCE/NWJ bound I_alpha of Poole et al. (2019, Sec. 2.4).

    Each y's partition estimate mixes the InfoNCE one (the mean of e^f over the other K-1 x in the
    batch) with a baseline: log(alpha * m(y) + (1 - alpha) * e^b(y)). alpha = 1 is InfoNCE-like (low
    variance, capped near log K); alpha = 0 is TUBA/NWJ with baseline b (unbiased, high variance).

    Args:
        scores: ``[K, K]`` critic scores, ``scores[i, j] = f(x_i, y_j)``.
        log_baseline: ``b(y_j)``: a float, or a ``[K]`` tensor indexed like the columns.
        alpha: Interpolation weight in [0, 1].
    """
    k = _check(scores)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    by_y = scores.T  # by_y[i, j] = f(x_j, y_i): row i holds y_i against every x
    baseline = torch.as_tensor(log_baseline, dtype=scores.dtype, device=scores.device).expand(k)
    parts = []
    if alpha > 0:
        parts.append(math.log(alpha) + _leave_one_out_log_mean(by_y))
    if alpha < 1:
        parts.append((math.log1p(-alpha) + baseline)[:, None].expand(k, k))
    partition = parts[0] if len(parts) == 1 else torch.logaddexp(parts[0], parts[1])
    # negatives (x_j, y_i), j != i, normalised by y_i's partition over the x other than its partner
    negatives = torch.exp(logmeanexp_offdiagonal(by_y - torch.diagonal(partition)[:, None]))
    # positives (x_i, y_i), normalised by partitions that keep x_i and leave out one other x_j
    positives = torch.diagonal(by_y)[:, None] - partition
    positives = positives.masked_select(_offdiagonal_mask(k, scores.device)).mean()
    return 1.0 + positives - negatives


def check_batch_size(batch_size: int) -> int:
    """Validate a batch size K: an integer >= 2 (a batch needs a negative for every positive)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}")
    return batch_size
