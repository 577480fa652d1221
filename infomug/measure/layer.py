"""Every per-layer measurement on one layer's features, as one `LayerResult`.

Works on arrays only (no model, no dataset): features ``[N, D]``, labels ``{name: [N]}``, captions.
The stages, each timed in ``LayerResult.seconds``:

    probe              linear probes on a held-out split, run to convergence (transfer + the Barber-Agakov
                       bound)
    knn                weighted k-NN accuracy on the same split, on raw and on standardised features
    label_information  I(T; label): H(Y) - CE, and Ross's kNN estimator on the probe's logits
    channel            I(X; T + sigma Z) over the budget's noise levels (a geometry diagnostic, on
                       whitened features by default)
    entropy            H(T) (a geometry diagnostic, on whitened features by default)
    rank               RankMe (a proxy, within one objective only)
    caption            I(T; caption), InfoNCE against a bag of words (when asked for)
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch

from infomug.measure.budget import Budget
from infomug.measure.information import (
    caption_information as measure_caption_information,
)
from infomug.measure.information import (
    effective_rank,
    feature_entropy,
    input_information,
    label_information,
)
from infomug.measure.probes import knn_accuracies, linear_probes, split_indices
from infomug.measure.results import LayerResult

MIN_SAMPLES = 20
# Above one class per this many samples a label is an identifier (an image id), not a category.
MIN_SAMPLES_PER_CLASS = 2


def discrete_labels(labels: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Split labels into those a probe and I(T; Y) can use, and the others with the reason.

    Usable: integer (or bool) arrays with at least 2 classes and at least 2 samples per class on
    average. Float labels are continuous (the world also carries binned versions of them).

    Returns:
        ``(usable {name: [N]}, skipped {name: reason})``.
    """
    usable, skipped = {}, {}
    for name, values in labels.items():
        values = np.asarray(values)
        classes = np.unique(values).size if values.dtype.kind in "biu" else 0
        if values.dtype.kind == "f":
            skipped[name] = "continuous (float) label; probes and I(T; Y) need discrete labels"
        elif values.dtype.kind not in "biu":
            skipped[name] = f"dtype {values.dtype} is not an integer label"
        elif classes < 2:
            skipped[name] = "constant label (a single class)"
        elif classes * MIN_SAMPLES_PER_CLASS > values.size:
            skipped[name] = (
                f"{classes} classes in {values.size} samples: an identifier rather than a category"
            )
        else:
            usable[name] = values
    return usable, skipped


def _validate(name: str, features: np.ndarray, labels: Mapping[str, np.ndarray]) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"layer {name!r}: features must be [N, D], got shape {features.shape}")
    if features.dtype.kind not in "biuf":
        raise ValueError(f"layer {name!r}: features must be numeric, got dtype {features.dtype}")
    bad = int((~np.isfinite(features)).sum())
    if bad:
        raise ValueError(f"layer {name!r}: features contain {bad} NaN or infinite values")
    n = features.shape[0]
    if n < MIN_SAMPLES:
        raise ValueError(f"layer {name!r}: {n} samples, at least {MIN_SAMPLES} are needed")
    for label, values in labels.items():
        shape = np.shape(values)
        if len(shape) != 1 or shape[0] != n:
            raise ValueError(f"label {label!r} has shape {shape}; layer {name!r} has {n} samples")
    return features


def measure_layer(
    name: str,
    features: np.ndarray,
    labels: dict[str, np.ndarray],
    budget: Budget,
    *,
    entropies: dict[str, float] | None = None,
    captions: list[str] | None = None,
    caption_information: bool = False,
    diagnostics: bool = True,
    progress: bool | None = None,
    device: str | torch.device | None = None,
) -> tuple[LayerResult, list[str]]:
    """Measure one layer's features: transfer, I(T; labels), I(X; T_sigma), H(T), RankMe, I(T; caption).

    ``result.transfer[label]`` holds ``"linear_probe"``, ``"knn"`` (cosine on the raw features) and
    ``"knn_standardized"`` (the same after per-dimension standardisation by the train split).

    Args:
        name: The layer's name (in errors, notes and the result).
        features: ``[N, D]`` finite features, one row per image.
        labels: ``{label: [N]}``; discrete (integer) labels are probed and measured, the others are
            skipped with a note.
        budget: Settings (split, probe, k-NN, estimators, sample caps, seed).
        entropies: Exact H(label) in nats where known (the world's factors); otherwise the plug-in
            entropy of the label array is used, with a warning on the estimate.
        captions: ``N`` captions, row-aligned with ``features``.
        caption_information: Measure I(T; caption) (needs ``captions``).
        diagnostics: Measure the geometry diagnostics (noisy channel, H(T), RankMe) and Ross's kNN
            estimate on the probe's logits; off, the layer gets the probes, k-NN and the probe's
            cross-entropy bound only (`Budget.diagnostic_layers`).
        progress: Progress bar of the caption critic's training (default: when stderr is a terminal).
        device: Where the caption critic trains (None: CUDA when available). Every other estimate runs
            on the CPU.

    Returns:
        ``(LayerResult, notes)``, notes being human-readable lines on what was skipped and why.

    Raises:
        ValueError: for features that are not 2-D and finite, fewer than 20 samples, a label or the
            captions not of length N, or ``caption_information`` without captions.
    """
    features = _validate(name, features, labels)
    n, dim = features.shape
    if caption_information and captions is None:
        raise ValueError(f"layer {name!r}: caption_information needs captions")
    if captions is not None and len(captions) != n:
        raise ValueError(f"{len(captions)} captions; layer {name!r} has {n} samples")
    entropies = entropies or {}
    result = LayerResult(layer=name, dim=int(dim), n=int(n))
    notes: list[str] = []
    usable, skipped = discrete_labels(labels)
    notes += [f"{name}: label {label!r} skipped: {reason}" for label, reason in skipped.items()]

    def timed(stage: str, start: float) -> None:
        result.seconds[stage] = time.perf_counter() - start

    train_idx, test_idx = split_indices(n, budget.test_fraction, budget.seed)
    start = time.perf_counter()
    probes = (
        linear_probes(
            features,
            usable,
            train_idx,
            test_idx,
            max_iter=budget.probe_max_iter,
            weight_decay=budget.probe_weight_decay,
            tolerance_grad=budget.probe_tolerance_grad,
            tolerance_change=budget.probe_tolerance_change,
        )
        if usable
        else {}
    )
    timed("probe", start)
    if not usable:
        notes.append(f"{name}: no discrete label with 2 or more classes: no probes, k-NN or I(T; Y)")

    start = time.perf_counter()
    knn = {}
    for standardize in (False, True) if usable else ():
        scores = knn_accuracies(
            features,
            usable,
            train_idx,
            test_idx,
            k=budget.knn_k,
            temperature=budget.knn_temperature,
            standardize=standardize,
        )
        knn["knn_standardized" if standardize else "knn"] = scores
    timed("knn", start)
    result.transfer = {
        label: {"linear_probe": probes[label].accuracy, **{method: knn[method][label] for method in knn}}
        for label in usable
    }

    start = time.perf_counter()
    for label, values in usable.items():
        estimates, label_notes = label_information(
            probes[label],
            values[test_idx],
            values,
            entropy=entropies.get(label),
            k=budget.mi_k,
            uncertainty=budget.uncertainty,
            seed=budget.seed,
            knn=diagnostics,
        )
        result.label_information[label] = estimates
        notes += [f"{name}: label {label!r}: {note}" for note in label_notes]
    timed("label_information", start)

    if diagnostics:
        _diagnose(result, features, budget, notes)

    if caption_information:
        start = time.perf_counter()
        result.caption_information, reason = measure_caption_information(
            features,
            captions,
            batch_size=budget.caption_batch,
            max_steps=budget.caption_steps,
            seed=budget.seed,
            progress=progress,
            device=device,
        )
        if reason:
            notes.append(f"{name}: {reason}")
        timed("caption", start)
    return result, notes


def _diagnose(result: LayerResult, features: np.ndarray, budget: Budget, notes: list[str]) -> None:
    """The geometry diagnostics of one layer, into ``result`` (each stage timed in ``result.seconds``)."""
    name = result.layer

    def timed(stage: str, start: float) -> None:
        result.seconds[stage] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        result.input_information = input_information(
            features,
            relative_sigmas=budget.channel_sigmas,
            max_samples=budget.channel_samples,
            uncertainty=budget.uncertainty,
            seed=budget.seed,
            whiten=budget.whiten_diagnostics,
        )
    except ValueError as error:
        notes.append(f"{name}: I(X; T_sigma) not measured: {error}")
    timed("channel", start)

    start = time.perf_counter()
    result.entropy, reason = feature_entropy(
        features,
        k=budget.mi_k,
        max_samples=budget.entropy_samples,
        uncertainty=budget.uncertainty,
        seed=budget.seed,
        whiten=budget.whiten_diagnostics,
    )
    if reason:
        notes.append(f"{name}: {reason}")
    timed("entropy", start)

    start = time.perf_counter()
    result.effective_rank = effective_rank(features, uncertainty=budget.uncertainty, seed=budget.seed)
    timed("rank", start)
