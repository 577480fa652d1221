"""Usable information of each discrete factor in pooled features: H(factor) - CE of a fresh MLP decoder.

For a factor Y and features T, a decoder q(y | t) trained on frozen features bounds the information
from below: I(T; Y) >= H(Y) - E[-log q(Y | T)], on held-out rows (Barber and Agakov 2003; as usable
information relative to a decoder family, Xu et al. 2020, "A Theory of Usable Information"). Every
encoder gets the same family and budget: the canonical basis of its train features (`basis`), then one
hidden layer of ``settings.width`` GELU units and a softmax head per factor.

All factors' MLPs train in one loop: their parameters are stacked (``[K, F, H]`` and ``[F, H, C_max]``,
heads padded to the largest class count and masked with -inf) and the loss is the sum of the factors'
cross-entropies. AdamW's update and decay are per element and the summed loss's gradient in one
factor's weights is that factor's own gradient, so the factors train independently; only the early-
stopping epoch is shared (chosen by the summed validation loss).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from infomug.measure.information import plug_in_entropy
from infomug.measure.probes import encode_labels

from .basis import CanonicalBasis
from .estimates import DecodedInformation, information_from_losses
from .fitting import DecoderSettings, fit_decoder, per_sample_losses, seeded
from .splits import Splits

METHOD = "mlp_decoder"
# The factor decoders' budget: small tabular problems, so large batches (few optimiser steps an epoch on
# 2 CPU cores) with a learning rate raised to match, and an epoch cap that early stopping rarely reaches.
FACTOR_SETTINGS = DecoderSettings(width=128, max_epochs=100, patience=4, batch_size=1024, lr=4e-3)


class FactorMLPs(nn.Module):
    """``F`` independent one-hidden-layer MLPs over the same input, evaluated as one batched module.

    Args:
        dim: Input dimension ``K``.
        width: Hidden width ``H``.
        classes: Class count of each factor (``F`` entries, each >= 2).
    """

    def __init__(self, dim: int, width: int, classes: list[int]) -> None:
        super().__init__()
        factors, most = len(classes), max(classes)
        self.factors, self.width = factors, width
        # nn.Linear's default init, factor by factor: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). The hidden layer is
        # stored [K, F, H] so that all factors' hidden units are one matrix product (one GEMM beats a
        # batched one on CPU); its columns still belong to one factor each.
        self.hidden_weight = nn.Parameter(torch.empty(dim, factors, width).uniform_(-1, 1) / math.sqrt(dim))
        self.hidden_bias = nn.Parameter(torch.empty(factors, width).uniform_(-1, 1) / math.sqrt(dim))
        self.out_weight = nn.Parameter(torch.empty(factors, width, most).uniform_(-1, 1) / math.sqrt(width))
        self.out_bias = nn.Parameter(torch.empty(factors, 1, most).uniform_(-1, 1) / math.sqrt(width))
        padding = torch.arange(most)[None, :] >= torch.as_tensor(classes)[:, None]  # [F, C_max]
        self.register_buffer("padding", torch.where(padding, -math.inf, 0.0)[:, None, :], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, K]`` -> ``[F, B, C_max]`` log-probabilities (padded classes at -inf)."""
        hidden = torch.addmm(self.hidden_bias.flatten(), x, self.hidden_weight.flatten(1))  # [B, F * H]
        hidden = nn.functional.gelu(hidden).view(-1, self.factors, self.width).transpose(0, 1).contiguous()
        logits = torch.baddbmm(self.out_bias, hidden, self.out_weight) + self.padding
        return torch.log_softmax(logits, dim=-1)


def _check_inputs(features: np.ndarray, labels: Mapping[str, np.ndarray], splits: Splits) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D] pooled vectors, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    if not labels:
        raise ValueError("factor_information needs at least one label")
    for name, values in labels.items():
        values = np.asarray(values)
        if values.shape != (x.shape[0],):
            raise ValueError(f"label {name!r} has shape {values.shape}; the features have {x.shape[0]} rows")
        if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values, np.round(values)):
            raise ValueError(f"label {name!r} is not discrete: it has non-integer values")
        if np.unique(values).size < 2:
            raise ValueError(f"label {name!r} has fewer than 2 classes: it carries no information")
    splits.check(x.shape[0], "features")
    return x


def factor_information(
    features: np.ndarray,
    labels: Mapping[str, np.ndarray],
    splits: Splits,
    *,
    entropies: Mapping[str, float] | None = None,
    settings: DecoderSettings = FACTOR_SETTINGS,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> dict[str, DecodedInformation]:
    """Usable information (nats) of pooled features about each discrete factor, from one fresh MLP each.

    Args:
        features: ``[N, D]`` frozen pooled features.
        labels: ``{name: [N]}`` discrete values (any that `np.unique` orders; classes are coded over the
            whole array, so a class absent from the train rows still has a column).
        splits: Train (fit), validation (early stopping) and test (reported) rows.
        entropies: Exact H(factor) in nats where known (the embedded world's); a factor missing here gets
            the plug-in entropy of its whole label array, with a warning.
        settings: The decoders' budget (the same for every encoder compared).
        device: Where the decoders train.
        progress: tqdm bar over epochs (default: when stderr is a terminal).

    Returns:
        ``{name: DecodedInformation}``, each a ``lower_bound`` with per-test-row values H - CE_i, ceiling H.

    Raises:
        ValueError: for features not ``[N, D]`` or not finite, a label of the wrong length, non-integer
            or with fewer than 2 classes, or splits outside the rows.
    """
    start = time.perf_counter()
    x = _check_inputs(features, labels, splits)
    names = list(labels)
    coded = [encode_labels(np.asarray(labels[name])) for name in names]
    classes = [int(found.size) for _, found in coded]
    basis = CanonicalBasis.fit(x[splits.train])
    inputs = torch.as_tensor(basis.transform(x), device=device)  # [N, K] float32
    targets = torch.as_tensor(np.stack([codes for codes, _ in coded]), device=device)  # [F, N]
    with seeded(settings.seed):
        module = FactorMLPs(basis.dim, settings.width, classes).to(device)

    def cross_entropies(rows: Tensor) -> Tensor:
        """``[B, F]`` per-sample, per-factor cross-entropy (nats) of ``rows``."""
        rows = rows.to(inputs.device)
        log_probs = module(inputs[rows])  # [F, B, C_max]
        return -log_probs.gather(2, targets[:, rows, None])[..., 0].T

    outcome = fit_decoder(
        module,
        lambda rows: cross_entropies(rows).sum(dim=1),
        splits.train,
        splits.val,
        settings,
        progress=progress,
        desc="factor decoders",
    )
    test_ce = per_sample_losses(module, cross_entropies, splits.test, settings.batch_size)  # [n_test, F]
    seconds = time.perf_counter() - start
    decoder = {
        "decoder": "mlp",
        "hidden_width": settings.width,
        "hidden_layers": 1,
        "activation": "gelu",
        "basis": "canonical (whitening + FOBI rotation + sign fix, fit on the train rows)",
        "basis_dims": basis.dim,
        "basis_dropped": basis.dropped,
        "factors_trained_together": len(names),
        "n_train": int(splits.train.size),
        "n_val": int(splits.val.size),
        "fit": outcome.to_params(),
        "settings": settings.to_dict(),
    }
    results = {}
    for index, name in enumerate(names):
        warnings = outcome.warnings("the factor decoder")
        if entropies is not None and name in entropies:
            entropy, source = float(entropies[name]), "exact"
        else:
            entropy, source = plug_in_entropy(np.asarray(labels[name])), "plug_in"
            warnings += (
                f"H({name}) is a plug-in estimate from the {x.shape[0]} labels, not the exact entropy;"
                " the bound inherits its error",
            )
        results[name] = information_from_losses(
            entropy - test_ce[:, index],
            splits.test,
            method=METHOD,
            params={**decoder, "classes": classes[index], "entropy": entropy, "entropy_source": source},
            kind="lower_bound",
            ceiling=entropy,
            seconds=seconds,
            warnings=warnings,
        )
    return results
