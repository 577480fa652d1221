"""Usable information of frozen tokens about the image: I_V(T -> X) = H_V(X) - H_V(X | T), nats per image.

Xu et al. 2020 ("A Theory of Usable Information") define, for a predictive family V, the V-entropy
H_V(X | T) as the best expected NLL a member of V reaches from T, H_V(X) the same from no input, and the
usable information as their difference. Here V is one fixed light decoder family, the same for every
encoder whatever its token count ``M``:

    canonical basis (`basis`, fit on the train rows' tokens) -> Linear(K, w) -> GELU
    -> token mixing Linear(M -> G) over the token axis (G = target patches) -> + position [G, w]
    -> LayerNorm -> Linear(w, w) -> GELU -> Linear(w, 2 p^2 C): each pixel's mean and log-scale

with a discretised Gaussian likelihood of the pixels' 256 levels (`discretised_gaussian_log_prob`), so
an NLL is a probability mass (>= 0) and a bits-per-dimension figure is comparable to 8 bits of raw
pixels. H_V(X) comes from the same family fed a learned constant instead of tokens (`image_baseline`):
one baseline serves every encoder read on the same images and splits, and each image's information is
its baseline NLL minus its conditional NLL on held-out test rows.

The number is relative to this family and budget: it is neither Shannon's I(X; T) nor a bound on it
(the decoder's NLL bounds H(X | T) from above, but H_V(X) is not H(X)). Compare encoders on the same
images, with paired intervals (`paired_difference`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from infomug.models.mae_decoder import patchify

from .basis import CanonicalBasis
from .estimates import DecodedInformation, information_from_losses
from .fitting import DecoderSettings, FitOutcome, fit_decoder, per_sample_losses, seeded
from .splits import Splits

logger = logging.getLogger(__name__)

METHOD = "image_decoder"
LEVELS = 256  # 8-bit pixels
HALF_BIN = 0.5 / (LEVELS - 1)
SQRT2 = math.sqrt(2.0)
# Where the fast erfc difference hands a pixel to the log-space path: the two erfc agree to this (relative).
RELATIVE_FLOOR = {torch.float32: 1e-3, torch.float64: 1e-8}
BIG = {torch.float32: 1e30, torch.float64: 1e200}  # an open bin edge, in erfc units: finite, so 0 * it is 0
CPU_CHUNK = 1 << 16  # pixels per chunk on CPU (256 KiB of float32)
# Log-scale range of a pixel's Gaussian (pixel units, [0, 1] = 255 bins): from ~1/30 of a bin (an NLL
# of ~0, one bin holds all the mass) to e^2, far wider than the unit interval.
LOG_SCALE_MIN, LOG_SCALE_MAX = -9.0, 2.0
# The image decoders' budget: light (width 64), in large batches so an epoch of 10,000 images is a
# handful of steps on 2 CPU cores, and a learning rate raised to match.
IMAGE_SETTINGS = DecoderSettings(width=64, max_epochs=30, patience=3, batch_size=256, lr=4e-3)
# Tokens the canonical basis is fit on at most (evenly strided over the train rows' N x M tokens): the
# statistics only need to be a fixed function of the features, and 200,000 float64 rows cost seconds.
BASIS_ROWS = 50_000
TRANSFORM_ROWS = 256  # images per chunk when token grids go through the canonical basis (float64)
FAMILY = (
    "canonical basis -> Linear(K, w) -> GELU -> token-mixing Linear(M, G) -> + position [G, w] -> LayerNorm"
    " -> Linear(w, w) -> GELU -> Linear(w, 2 p^2 C) (per-pixel mean, log-scale); discretised Gaussian"
    " over 256 levels"
)
RELATIVE_TO = f"decoder family: {FAMILY}"


def stable_log_prob(levels: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """The discretised Gaussian's log-mass in log space throughout: slow, accurate in every tail.

    ``log(Phi(b) - Phi(a))`` is ``log_ndtr(b) + log(-expm1(log_ndtr(a) - log_ndtr(b)))`` on the side of
    the bin nearer the mean's tail (reflected when the bin lies above the mean), and, where the two cdfs
    agree to within ``sqrt(eps)`` relative, the density at the bin's centre times its width (the
    midpoint rule's relative error is then below ``eps``). Arguments as `discretised_gaussian_log_prob`.
    """
    dtype = mean.dtype
    x = levels.to(dtype) / (LEVELS - 1)
    inverse_scale = torch.exp(-log_scale)
    lower = (x - HALF_BIN - mean) * inverse_scale
    upper = (x + HALF_BIN - mean) * inverse_scale
    first, last = levels == 0, levels == LEVELS - 1
    # Phi(upper) - Phi(lower) = Phi(-lower) - Phi(-upper): read it where both cdfs are small (the left
    # tail), where log_ndtr keeps its precision; level 255's open bin [lower, inf) always turns around.
    flip = last | (~first & (lower + upper > 0))
    low = torch.where(flip, -upper, lower)
    high = torch.where(flip, -lower, upper)
    open_low = first | last  # the bin reaches -inf on its low side
    log_high = torch.special.log_ndtr(high)
    log_low = torch.where(open_low, -math.inf, torch.special.log_ndtr(torch.where(open_low, high - 1, low)))
    relative = -torch.expm1(log_low - log_high)  # 1 - Phi(low) / Phi(high), in (0, 1]
    tiny = math.sqrt(torch.finfo(dtype).eps)
    exact = log_high + torch.log(relative.clamp(min=tiny))
    centre = 0.5 * (low + high)
    midpoint = -0.5 * centre**2 - 0.5 * math.log(2 * math.pi) + torch.log((high - low).clamp(min=1e-30))
    return torch.where(relative > tiny, exact, midpoint)


class _DiscretisedGaussianLogProb(torch.autograd.Function):
    """`stable_log_prob` at a fraction of the cost, with an analytic backward.

    With ``alpha = (mean - lower) / (sqrt(2) s)`` and ``beta = (mean - upper) / (sqrt(2) s)`` the mass is
    ``(erfc(near) - erfc(far)) / 2``, ``near = max(beta, -alpha)``, ``far = max(alpha, -beta)`` (the
    reflection to the lower tail, branch-free); open edges are ``+-BIG``. Where that difference loses
    precision (the two erfc agree to ``RELATIVE_FLOOR``, or erfc(near) nears underflow), `stable_log_prob`
    redoes those pixels in float64. The gradients are exact in closed form:
    ``d log P / d mean = -(phi(b) - phi(a)) / (s P)`` and ``d log P / d log s = -(b phi(b) - a phi(a)) / P``.
    On CPU it works in chunks small enough for the allocator to reuse (a fresh multi-megabyte buffer
    per op costs more in page faults than the arithmetic).
    """

    @staticmethod
    def forward(ctx, levels: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:  # type: ignore[override]
        shape, dtype = mean.shape, mean.dtype
        levels, mean, log_scale = levels.reshape(-1), mean.reshape(-1), log_scale.reshape(-1)
        alpha, beta, inverse, log_prob = (torch.empty_like(mean) for _ in range(4))
        floor = RELATIVE_FLOOR[dtype]
        tiny = torch.finfo(dtype).tiny
        step = mean.numel() if mean.is_cuda else CPU_CHUNK
        redo = []
        for start in range(0, mean.numel(), step):
            part = slice(start, start + step)
            a, b, inv = alpha[part], beta[part], inverse[part]
            torch.exp(log_scale[part].neg(), out=inv).mul_(1.0 / SQRT2)
            torch.add(mean[part], levels[part].to(dtype), alpha=-1.0 / (LEVELS - 1), out=b).mul_(inv)
            half = inv * HALF_BIN
            torch.add(b, half, out=a)
            b.sub_(half)
            a.masked_fill_(levels[part] == 0, BIG[dtype])
            b.masked_fill_(levels[part] == LEVELS - 1, -BIG[dtype])
            near = torch.erfc(torch.maximum(b, a.neg()))
            prob = torch.erfc(torch.maximum(a, b.neg())).neg_().add_(near).mul_(0.5)
            torch.log(prob, out=log_prob[part])
            # Too little of the larger cdf is left (cancellation), or it nears the subnormals (underflow).
            least = near.mul_(0.5 * floor)
            bad = (prob <= least) | (least < tiny)
            redo.append(bad.nonzero()[:, 0] + start)
        rows = torch.cat(redo)
        ctx.redo = None
        if rows.numel():
            # float32 alpha^2 + log P cancels badly deep in a tail: these pixels' gradients come from
            # autograd through the float64 log-space path too.
            with torch.enable_grad():
                mean64 = mean[rows].double().requires_grad_()
                log_scale64 = log_scale[rows].double().requires_grad_()
                precise = stable_log_prob(levels[rows], mean64, log_scale64)
                if any(ctx.needs_input_grad):
                    grads = torch.autograd.grad(precise.sum(), (mean64, log_scale64))
                    ctx.redo = (rows, grads[0].to(dtype), grads[1].to(dtype))
            log_prob[rows] = precise.detach().to(dtype)
        ctx.save_for_backward(alpha, beta, inverse, log_prob)
        ctx.shape = shape
        return log_prob.view(shape)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, Tensor]:  # type: ignore[override]
        alpha, beta, inverse, log_prob = ctx.saved_tensors
        grad = grad.reshape(-1)
        grad_mean, grad_log_scale = torch.empty_like(alpha), torch.empty_like(alpha)
        step = alpha.numel() if alpha.is_cuda else CPU_CHUNK
        for start in range(0, alpha.numel(), step):
            part = slice(start, start + step)
            a, b, lp = alpha[part], beta[part], log_prob[part]
            # phi(.) / P in the erfc variables, times sqrt(2 pi): exp(-beta^2 - log P).
            density_b = (b * b).add_(lp).neg_().exp_()
            density_a = (a * a).add_(lp).neg_().exp_()
            torch.sub(density_b, density_a, out=grad_mean[part]).mul_(inverse[part]).mul_(grad[part])
            grad_mean[part].mul_(-1.0 / math.sqrt(math.pi))
            torch.sub(b * density_b, a.mul(density_a), out=grad_log_scale[part]).mul_(grad[part])
            grad_log_scale[part].mul_(1.0 / math.sqrt(math.pi))
        if ctx.redo is not None:
            rows, redo_mean, redo_log_scale = ctx.redo
            grad_mean[rows] = redo_mean * grad[rows]
            grad_log_scale[rows] = redo_log_scale * grad[rows]
        return None, grad_mean.view(ctx.shape), grad_log_scale.view(ctx.shape)


def discretised_gaussian_log_prob(levels: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Log-mass of 8-bit pixel levels under a Gaussian discretised to 256 bins (nats).

    Level ``v`` owns the bin ``[(v - 0.5) / 255, (v + 0.5) / 255]`` of the pixel axis, the edge levels 0
    and 255 their open half-lines (PixelCNN++'s discretised logistic, Salimans et al. 2017, with a
    Gaussian), so the 256 masses sum to 1 and an NLL is >= 0. Stable in every tail (see
    `stable_log_prob`, which it matches; `_DiscretisedGaussianLogProb` is the fast path).

    Args:
        levels: Integer levels in ``0..255`` (any integer dtype), any shape.
        mean: Means in pixel units (``[0, 1]`` spans the levels); float32 or float64.
        log_scale: Natural log of the standard deviation, pixel units.

    Returns:
        Log-probabilities (<= 0), the broadcast shape, in the dtype of ``mean``.
    """
    levels, mean, log_scale = torch.broadcast_tensors(levels, mean, log_scale)
    return _DiscretisedGaussianLogProb.apply(levels.contiguous(), mean.contiguous(), log_scale.contiguous())


def _pixel_nll(mean: Tensor, log_scale: Tensor, targets: Tensor, precise: bool = False) -> Tensor:
    """``[B]`` nats per image of ``[B, G, P]`` uint8 targets (in float64 when ``precise``)."""
    if precise:
        mean, log_scale = mean.double(), log_scale.double()
    log_prob = discretised_gaussian_log_prob(targets, mean, log_scale)
    return -log_prob.flatten(1).sum(dim=1)


class PatchDecoder(nn.Module):
    """The image decoder family: ``[B, M, K]`` tokens -> each patch's pixel means and log-scales.

    Args:
        dim: Token dimension ``K``.
        tokens: ``M`` input tokens.
        patches: ``G`` target patches.
        width: Hidden width ``w``.
        patch_values: ``p * p * C`` pixels per patch.
    """

    def __init__(self, dim: int, tokens: int, patches: int, width: int, patch_values: int) -> None:
        super().__init__()
        self.embed = nn.Linear(dim, width)
        self.mix = nn.Linear(tokens, patches)
        self.position = nn.Parameter(torch.randn(patches, width) * 0.02)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 2 * patch_values))

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, M, K]`` -> mean and log-scale, each ``[B, G, p * p * C]`` in pixel units."""
        hidden = nn.functional.gelu(self.embed(tokens))  # [B, M, w]
        # The token-mixing Linear(M -> G) over the token axis, as [G, M] @ [B, M, w] (no transposed copies).
        hidden = torch.matmul(self.mix.weight, hidden) + (self.mix.bias[:, None] + self.position)  # [B, G, w]
        mean, log_scale = self.head(self.norm(hidden)).chunk(2, dim=-1)
        # Start near the middle of the pixel range with a scale ~ a quarter of it.
        log_scale = (log_scale + math.log(0.25)).clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
        return mean + 0.5, log_scale


class ConstantPatchDecoder(nn.Module):
    """The same family fed one learned constant token instead of features: H_V(X), the no-input baseline."""

    def __init__(self, patches: int, width: int, patch_values: int) -> None:
        super().__init__()
        self.constant = nn.Parameter(torch.zeros(1, 1, width))
        self.decoder = PatchDecoder(width, 1, patches, width, patch_values)

    def forward(self, batch: int) -> tuple[Tensor, Tensor]:
        """Mean and log-scale ``[batch, G, p * p * C]``: the same for every image (run once, expanded)."""
        mean, log_scale = self.decoder(self.constant)
        return mean.expand(batch, -1, -1), log_scale.expand(batch, -1, -1)


def _check_images(images: np.ndarray, patch: int) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {x.shape}")
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch must be a positive integer, got {patch!r}")
    if x.shape[2] % patch or x.shape[3] % patch:
        raise ValueError(
            f"images of {x.shape[2]}x{x.shape[3]} pixels do not divide into {patch}-pixel patches"
        )
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise ValueError("images must be finite floats in [0, 1]")
    return x


def _targets(images: np.ndarray, patch: int, device: str | torch.device) -> Tensor:
    """``[N, G, p * p * C]`` uint8 levels ``round(255 x)`` on ``device``, patch by patch."""
    levels = torch.as_tensor(np.rint(images * (LEVELS - 1)).astype(np.uint8))
    return patchify(levels, patch).contiguous().to(device)


def _fit_summary(settings: DecoderSettings, outcome: FitOutcome) -> dict:
    return {"fit": outcome.to_params(), "settings": settings.to_dict()}


def _fit_and_read(
    module: nn.Module,
    predict: Callable[[Tensor], tuple[Tensor, Tensor]],
    targets: Tensor,
    splits: Splits,
    settings: DecoderSettings,
    progress: bool | None,
    desc: str,
) -> tuple[np.ndarray, FitOutcome]:
    """Fit ``module`` (``predict(rows)`` -> mean, log-scale) and read the test rows' NLL in float64."""
    precise = False  # float32 to train and to choose the epoch; the reported test NLL in float64

    def loss_of(rows: Tensor) -> Tensor:
        rows = rows.to(targets.device)
        return _pixel_nll(*predict(rows), targets[rows], precise=precise)

    outcome = fit_decoder(module, loss_of, splits.train, splits.val, settings, progress=progress, desc=desc)
    precise = True
    return per_sample_losses(module, loss_of, splits.test, settings.batch_size), outcome


def _fit_baseline(
    targets: Tensor, splits: Splits, settings: DecoderSettings, progress: bool | None
) -> tuple[np.ndarray, FitOutcome]:
    with seeded(settings.seed):
        module = ConstantPatchDecoder(targets.shape[1], settings.width, targets.shape[2]).to(targets.device)
    return _fit_and_read(
        module, lambda rows: module(len(rows)), targets, splits, settings, progress, "image baseline"
    )


def image_baseline(
    images: np.ndarray,
    splits: Splits,
    *,
    patch: int = 4,
    settings: DecoderSettings = IMAGE_SETTINGS,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> np.ndarray:
    """H_V(X): each test image's NLL (nats) under the decoder family with no features (a learned constant).

    Args:
        images: ``[N, C, H, W]`` floats in ``[0, 1]`` (quantised to ``round(255 x)``).
        splits: Train / validation / test rows (the same as the encoders' it will serve).
        patch: Pixels per patch side; ``H`` and ``W`` must be multiples.
        settings: The family's budget (pass the same to `image_information`).
        device: Where the decoder trains.
        progress: tqdm bar over epochs (default: when stderr is a terminal).

    Returns:
        ``[n_test]`` float64 nats per image, row-aligned with ``splits.test``.

    Raises:
        ValueError: for images not ``[N, C, H, W]``, not finite or outside ``[0, 1]``, not divisible
            into patches, or splits outside the rows.
    """
    x = _check_images(images, patch)
    splits.check(x.shape[0], "images")
    nll, outcome = _fit_baseline(_targets(x, patch, device), splits, settings, progress)
    for warning in outcome.warnings("the image baseline decoder"):
        logger.warning(warning)
    return nll


def _canonical_tokens(
    inputs: np.ndarray, train: np.ndarray, device: str | torch.device
) -> tuple[Tensor, CanonicalBasis]:
    """``[N, M, K]`` float32 canonical coordinates on ``device`` (basis fit on the train rows' tokens)."""
    basis = CanonicalBasis.fit(inputs[train], max_rows=BASIS_ROWS)
    out = torch.empty(inputs.shape[0], inputs.shape[1], basis.dim, device=device)
    for start in range(0, inputs.shape[0], TRANSFORM_ROWS):  # float64 a chunk at a time: [N, M, D] is big
        chunk = basis.transform(inputs[start : start + TRANSFORM_ROWS])
        out[start : start + TRANSFORM_ROWS] = torch.from_numpy(chunk).to(device)
    return out, basis


def image_information(
    inputs: np.ndarray,
    images: np.ndarray,
    splits: Splits,
    *,
    baseline: np.ndarray | None = None,
    patch: int = 4,
    settings: DecoderSettings = IMAGE_SETTINGS,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> DecodedInformation:
    """Usable information I_V(T -> X) = H_V(X) - H_V(X | T) of frozen tokens about the image, nats per image.

    Args:
        inputs: ``[N, M, D]`` frozen token grids (prefix tokens included), or ``[N, D]`` pooled vectors
            (``M = 1``).
        images: ``[N, C, H, W]`` floats in ``[0, 1]``, row-aligned with ``inputs``.
        splits: Train (fit), validation (early stopping) and test (reported) rows.
        baseline: `image_baseline` of the same images, splits, patch and settings (``[n_test]`` nats);
            computed here when None.
        patch: Pixels per patch side of the decoder's targets.
        settings: The family's budget (the same for every encoder compared).
        device: Where the decoder trains and its data lives.
        progress: tqdm bar over epochs (default: when stderr is a terminal).

    Returns:
        A ``point`` estimate per test image (baseline NLL minus conditional NLL), ceiling the mean
        baseline NLL; params give both NLLs in nats per image and bits per dimension.

    Raises:
        ValueError: for inputs not ``[N, D]`` / ``[N, M, D]`` or not finite, images as `image_baseline`
            refuses them or not row-aligned with the inputs, or a baseline of the wrong length.
    """
    start = time.perf_counter()
    tokens = np.asarray(inputs)
    if tokens.ndim == 2:
        tokens = tokens[:, None, :]
    if tokens.ndim != 3:
        raise ValueError(f"inputs must be [N, M, D] token grids or [N, D] vectors, got shape {tokens.shape}")
    x = _check_images(images, patch)
    if tokens.shape[0] != x.shape[0]:
        raise ValueError(f"{tokens.shape[0]} inputs but {x.shape[0]} images")
    if not np.issubdtype(tokens.dtype, np.number) or not np.isfinite(tokens).all():
        raise ValueError("inputs contain NaN or infinite values")
    splits.check(x.shape[0], "images")
    targets = _targets(x, patch, device)  # [N, G, P] uint8
    warnings = (
        f"usable information relative to the {RELATIVE_TO}; neither Shannon's I(X; T) nor a bound on it:"
        " compare encoders on the same images, with paired intervals",
    )
    baseline_params: dict = {"baseline": "given"}
    if baseline is None:
        baseline, baseline_outcome = _fit_baseline(targets, splits, settings, progress)
        baseline_params = {"baseline": _fit_summary(settings, baseline_outcome)}
        warnings += baseline_outcome.warnings("the image baseline decoder")
    baseline = np.asarray(baseline, dtype=np.float64)
    if baseline.shape != splits.test.shape or not np.isfinite(baseline).all():
        raise ValueError(
            f"baseline must be {splits.test.size} finite test-image NLLs, got shape {baseline.shape}"
        )

    canonical, basis = _canonical_tokens(tokens, splits.train, device)
    grid, patch_values = targets.shape[1], targets.shape[2]
    with seeded(settings.seed):
        module = PatchDecoder(basis.dim, tokens.shape[1], grid, settings.width, patch_values).to(device)

    nll, outcome = _fit_and_read(
        module, lambda rows: module(canonical[rows]), targets, splits, settings, progress, "image decoder"
    )
    warnings += outcome.warnings("the image decoder")
    dims = grid * patch_values
    params = {
        "relative_to": RELATIVE_TO,
        "unit": "nats per image",
        "conditional_nll": float(nll.mean()),
        "baseline_nll": float(baseline.mean()),
        "conditional_bits_per_dim": float(nll.mean() / (dims * math.log(2))),
        "baseline_bits_per_dim": float(baseline.mean() / (dims * math.log(2))),
        "information_bits_per_dim": float((baseline - nll).mean() / (dims * math.log(2))),
        "tokens": int(tokens.shape[1]),
        "patches": int(grid),
        "patch": patch,
        "pixels_per_image": int(dims),
        "basis_dims": basis.dim,
        "basis_dropped": basis.dropped,
        "n_train": int(splits.train.size),
        "n_val": int(splits.val.size),
        **_fit_summary(settings, outcome),
        **baseline_params,
    }
    return information_from_losses(
        baseline - nll,
        splits.test,
        method=METHOD,
        params=params,
        kind="point",
        ceiling=float(baseline.mean()),
        seconds=time.perf_counter() - start,
        warnings=warnings,
    )
