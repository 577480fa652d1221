"""The pixel decoder's Barber-Agakov bound (MAE, MUG): what a visible-patch encoding knows of a masked patch.

A = one masked patch, seen through a fixed 3-D summary g plus a Gaussian dither (data processing keeps the
bound valid), q = a Gaussian around g of the pixel decoder's prediction; h(g(A) + noise) is a
Kozachenko-Leonenko estimate, so this bound holds up to its error. The decoder is told which patch it
predicts, so the bound is on I(T, position; A): it counts what the position alone says of the patch.
Masks are drawn as in `decoders`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset
from tqdm.auto import tqdm

from estimators import Estimate, barber_agakov_bound, gaussian_nll, kl_entropy
from estimators.preprocessing import make_generator
from infomug.models.mae_decoder import patch_statistics, patchify

from .decoders import available, check_count, evaluating, mask_draws, no_bar, require_parts, sample_batches

PIXEL_PARTS = ("encoder", "pixel_decoder", "masked_pass", "mask_ratio", "norm_pix_loss")
PCA_DIMS = 3
DITHER_STREAM = 0x6469746865  # "dithe": the dither's seed stream, apart from the masks'


def _masked_patches(
    objective: nn.Module,
    dataset: Dataset | IterableDataset,
    n: int,
    batch_size: int,
    device: str | torch.device,
    seed: int,
    progress: bool | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One seeded masked patch per image as the pixel loss sees it, and the decoder's prediction of it.

    Returns:
        Targets and predictions, each ``[N, p * p * C]`` float64 on the CPU, ``N = min(n, len(dataset))``:
        per-patch normalised pixels when ``norm_pix_loss``, else the images' pixels as the dataset gives
        them.
    """
    patch_size = objective.encoder.patch_size
    n = available(dataset, n)  # mask noise is [n, L]: never for more images than there are
    noise, picks = mask_draws(objective, n, seed)
    objective.to(device)
    targets, predictions = [], []
    done = 0
    with (
        evaluating(objective),
        tqdm(total=n, desc="pixel decoder", disable=no_bar(progress), leave=False) as bar,
    ):
        for samples in sample_batches(dataset, n, batch_size):
            images = torch.stack([sample["image"] for sample in samples]).to(device)
            rows = slice(done, done + len(samples))
            out = objective.masked_pass(images, noise=noise[rows])
            target = patchify(images, patch_size).double()
            if objective.norm_pix_loss:
                mean, std = patch_statistics(target)
                target = (target - mean) / std
            # Every row masks the same number of patches; nonzero lists them row by row, ascending.
            masked = out["mask"].nonzero()[:, 1].reshape(len(samples), -1)
            chosen = masked.gather(1, picks[rows, None].to(masked.device))[:, 0]
            index = torch.arange(len(samples), device=chosen.device)
            targets.append(target[index, chosen].cpu())
            predictions.append(out["pred"][index, chosen].double().cpu())
            done += len(samples)
            bar.update(len(samples))
    if not targets:
        raise ValueError("the dataset yielded no sample")
    return torch.cat(targets), torch.cat(predictions)


def _patch_summary(
    fit_targets: torch.Tensor, norm_pix_loss: bool, patch_size: int
) -> tuple[str, Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]:
    """The map g from a patch ``[N, p * p * C]`` to its summary ``[N, dims]``, fixed by the fit half alone.

    Per-patch normalised targets have mean 0 by construction and a decoder trained on them predicts no
    patch mean, so with ``norm_pix_loss`` g projects onto the top principal directions of the fit half's
    targets ("patch_pca3"); without it g is the patch's per-channel mean ("patch_channel_mean").

    Returns:
        The target's name, g, and params describing it.
    """
    if norm_pix_loss:
        centre = fit_targets.mean(dim=0)
        _, singular, directions = torch.linalg.svd(fit_targets - centre, full_matrices=False)
        basis = directions[:PCA_DIMS].T  # [P, dims]
        power = singular**2
        explained = float(power[:PCA_DIMS].sum() / power.sum()) if float(power.sum()) > 0 else math.nan
        return "patch_pca3", lambda x: (x - centre) @ basis, {"explained_variance": explained}
    channels = fit_targets.shape[1] // (patch_size * patch_size)
    return (
        "patch_channel_mean",
        lambda x: x.reshape(x.shape[0], patch_size * patch_size, channels).mean(dim=1),
        {},
    )


def _dither_generator(seed: int) -> torch.Generator:
    # A stream of its own: the dither must be independent of the masks drawn from `make_generator(seed)`.
    state = np.random.SeedSequence([seed & (2**64 - 1), DITHER_STREAM]).generate_state(1)[0]
    return make_generator(int(state))


def pixel_decoder_bound(
    objective: nn.Module,
    dataset: Dataset | IterableDataset,
    *,
    n: int,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    seed: int = 0,
    k: int = 3,
    dither: float = 0.05,
    progress: bool | None = None,
) -> Estimate:
    """Barber-Agakov lower bound on I(T, J; A), A = a masked patch, J its position, T = the visible encoding.

    Each image is masked at the training ratio (seeded) and one of its masked patches is picked (seeded).
    A is that patch as the loss sees it (``p * p * C`` values, normalised per patch when
    ``norm_pix_loss``). Rendered patches lie near a low-dimensional set and often repeat exactly, so h(A)
    itself is -inf in effect and no kNN estimate of it settles. The bound is therefore taken on a
    dithered summary A' = g(A) + sigma Z (Z ~ N(0, I) independent of everything, seeded), which data
    processing allows for any fixed g: I(T, J; A') <= I(T, J; g(A)) <= I(T, J; A). The summary g:

    * ``norm_pix_loss`` (the default of every preset): ``"patch_pca3"``, the normalised patch projected
      onto the top 3 principal directions of the fit half's targets (its per-channel mean is 0 by
      construction, and the decoder predicts none);
    * otherwise: ``"patch_channel_mean"``, the patch's per-channel mean (C values) in the images' own
      pixel space, the one the loss regresses.

    The decoder is told which patch it predicts (its position J, through the mask tokens' position
    embeddings), and J is drawn apart from the image, so what the bound proves is I(T, J; A') =
    I(J; A') + I(T; A' | J): it includes what the position alone says of the patch (e.g. that border
    patches tend to be background), which a decoder that ignores T still earns. Compare models, or a
    random-init copy, rather than reading the value as image information on its own.

    The decoder's prediction goes through the same g. sigma = ``dither`` x the RMS per-dimension standard
    deviation of g(A) on the fit half (the first half of the images). The decoder model is
    q(a' | t, j) = N(g(pred), diag(v)) with v the per-dimension mean squared residual A' - g(pred) on the
    fit half (sigma^2 included); its NLL and h(A') (Kozachenko-Leonenko, raw units) are taken on the second
    half, so the bound h(A') - E[-log q(a' | t, j)] is held out. A smaller ``dither`` lets more of g(A)
    through: the bound can then rise, and so does its own ceiling I(g(A); A') = h(A') - h(sigma Z), which
    ``params["ceiling_estimate"]`` reports.

    Args:
        objective: MAE or MUG (``encoder``, ``pixel_decoder``, ``masked_pass``, ``mask_ratio``,
            ``norm_pix_loss``); moved to ``device`` in place, in eval mode for the duration.
        dataset: map-style or iterable dataset of `Sample`; its first ``n`` samples are used.
        n: most images (at least ``2 * (k + 2)``; fewer if the dataset is shorter).
        batch_size: images per forward pass.
        device: where to compute.
        seed: seeds the masks, the patch picks, the dither and the KL estimator's subsamples.
        k: neighbours of the KL entropy estimator.
        dither: sigma relative to the spread of g(A); positive.
        progress: a progress bar; None = only on a terminal.

    Returns:
        An `Estimate` in nats per masked patch, ``kind="lower_bound"``, no ceiling; ``params`` include
        ``target``, ``dims``, ``dither`` (relative), ``dither_sigma`` (absolute), ``variance`` (per dim),
        ``fit_samples``, ``held_out_samples``, ``mask_ratio``, ``norm_pix_loss`` and ``ceiling_estimate``.

    Raises:
        ValueError: for an objective without a pixel decoder (naming the missing parts), ``n`` too small
            for the estimator, a non-positive ``batch_size``, ``k`` or ``dither``, or targets whose
            summary does not vary on the fit half.
    """
    start = time.perf_counter()
    require_parts(objective, PIXEL_PARTS, "the pixel decoder bound")
    check_count(n, batch_size)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(dither, bool) or not (
        isinstance(dither, (int, float)) and math.isfinite(dither) and dither > 0
    ):
        raise ValueError(f"dither must be a positive number, got {dither!r}")
    patch_size = objective.encoder.patch_size
    target, prediction = _masked_patches(objective, dataset, n, batch_size, device, seed, progress)
    done = target.shape[0]
    if done < 2 * (k + 2):
        raise ValueError(f"the pixel decoder bound needs at least {2 * (k + 2)} images (k={k}), got {done}")
    fit, held_out = slice(0, done // 2), slice(done // 2, done)
    name, summary, summary_params = _patch_summary(target[fit], bool(objective.norm_pix_loss), patch_size)
    clean, predicted = summary(target), summary(prediction)
    spread = float(clean[fit].var(dim=0, unbiased=False).mean().sqrt())
    if not spread > 0:
        raise ValueError(f"the {name} of the masked patches does not vary over the {done // 2} fit images")
    sigma = dither * spread
    dims = clean.shape[1]
    noise = torch.randn(clean.shape, generator=_dither_generator(seed), dtype=torch.float64)
    dithered = clean + sigma * noise
    residual = dithered - predicted
    variance = (residual[fit] ** 2).mean(dim=0)
    nll = gaussian_nll(residual[held_out], variance)
    entropy = kl_entropy(dithered[held_out], k=k, standardize=False, seed=seed)
    bound = barber_agakov_bound(nll, entropy, discrete=False)
    noise_entropy = 0.5 * dims * math.log(2 * math.pi * math.e * sigma**2)
    channels = target.shape[1] // (patch_size * patch_size)
    held = done - done // 2
    warnings = [
        f"a lower bound on I(T_visible, J; A), A a masked patch and J its position, through g = {name} "
        f"({dims} dims) and a Gaussian dither of sigma = {sigma:.3g} ({dither:g} x the RMS spread of g): "
        f"I(T, J; g(A) + sigma Z) <= I(T, J; A) by data processing; it holds up to the error of the "
        f"Kozachenko-Leonenko h(A') (k={k}, N={held})",
        "the decoder is told which patch it predicts, so the bound includes I(J; A), what the position "
        "alone says of the patch, which a decoder that ignores T still earns",
        f"nats per masked patch ({patch_size}x{patch_size}x{channels} values"
        + (", each normalised)" if objective.norm_pix_loss else ")"),
        *(f"h(A'): {text}" for text in entropy.warnings),
    ]
    params: dict[str, Any] = {
        **bound.params,
        "target": name,
        "target_space": "per-patch normalised pixels" if objective.norm_pix_loss else "image pixels",
        **summary_params,
        "dims": dims,
        "dither": float(dither),
        "dither_sigma": sigma,
        "ceiling_estimate": entropy.value - noise_entropy,
        "patch_size": patch_size,
        "patch_dim": int(target.shape[1]),
        "mask_ratio": float(objective.mask_ratio),
        "norm_pix_loss": bool(objective.norm_pix_loss),
        "decoder_model": "diagonal gaussian around g(prediction)",
        "variance": [float(v) for v in variance],
        "fit_samples": done // 2,
        "held_out_samples": held,
        "entropy_method": "kl",
        "k": k,
        "seed": seed,
    }
    return bound.with_extra(warnings=tuple(warnings), params=params, seconds=time.perf_counter() - start)
