"""The usable-information stage of `infomug measure`: every fresh decoder on one model's frozen features.

Per model, on the layers the budget names (`Budget.factor_layers`, `Budget.decoder_layers`):

    factors       I(T; label) >= H(label) - CE of an MLP decoder, per discrete label, from the pooled vector
    image         I_V(T -> X) from the token grid, nats per image (and from the pooled vector: image_pooled)
    caption       I(T; caption) >= H(caption) - CE of a caption decoder cross-attending to the token grid

All models of one report share the images, the split (`Splits`, whose test part is the probes') and the
no-feature baselines (`Baselines`), so their per-image values pair up (`paired_comparisons`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from infomug.measure.budget import Budget
from infomug.measure.extract import Features
from infomug.measure.results import Comparison, ModelResult

from .caption import CAPTION_SETTINGS, caption_baseline, caption_information
from .estimates import DecodedInformation, paired_difference
from .factors import FACTOR_SETTINGS, factor_information
from .fitting import DecoderSettings
from .image import IMAGE_SETTINGS, image_baseline, image_information
from .splits import Splits

logger = logging.getLogger(__name__)

TARGET_PATCHES_PER_SIDE = 8  # the image decoder predicts an 8 x 8 grid of patches, whatever the encoder


@dataclass
class Baselines:
    """The no-feature decoders' per-test-image losses, trained once per report and shared by every model."""

    image: np.ndarray | None = None
    caption: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class StageData:
    """What the decoders read besides the features: the images, captions, labels and what is known of them.

    Attributes:
        images: ``[N, C, H, W]`` uint8 (``round(255 x)``), or None (no image information).
        captions: ``[N]`` captions, or None.
        labels: ``{label: [N]}`` discrete labels the factor decoders predict.
        entropies: Exact H(label) in nats where the data knows it.
        caption_entropy: Exact H(caption) in nats, or None (then usable information against the baseline).
        caption_ceiling: I(image; caption) in nats when known.
        splits: The train / validation / test rows.
    """

    images: np.ndarray | None
    captions: list[str] | None
    labels: dict[str, np.ndarray]
    entropies: dict[str, float]
    caption_entropy: float | None
    caption_ceiling: float | None
    splits: Splits


def target_patch(height: int, width: int) -> int:
    """Side of the image decoder's target patches: the smallest divisor of both sides that gives at most
    8 patches per side (4 px at 32 px, 28 px at 224 px).

    Raises:
        ValueError: for sides with no common divisor in range (e.g. a prime side length).
    """
    for patch in range(max(1, -(-max(height, width) // TARGET_PATCHES_PER_SIDE)), min(height, width) + 1):
        if height % patch == 0 and width % patch == 0:
            return patch
    raise ValueError(f"no patch size divides images of {height}x{width}")


def make_splits(n: int, budget: Budget) -> Splits:
    """The report's decoder splits: the probes' test rows, validation rows carved out of their train rows."""
    return Splits.make(
        n, test_fraction=budget.test_fraction, val_fraction=budget.decoder_val_fraction, seed=budget.seed
    )


def decoder_settings(family: DecoderSettings, budget: Budget) -> DecoderSettings:
    """A decoder family's own settings, seeded by the budget and capped by its ``decoder_max_epochs``."""
    cap = budget.decoder_max_epochs
    return replace(
        family, seed=budget.seed, max_epochs=family.max_epochs if cap == 0 else min(family.max_epochs, cap)
    )


def chosen_layers(names: Sequence[str], which: str) -> list[str]:
    """``names`` for ``"all"``, its last for ``"last"`` (the budget's layer settings)."""
    return list(names) if which == "all" else list(names[-1:])


def measure_usable_information(
    features: Features,
    data: StageData,
    budget: Budget,
    baselines: Baselines,
    *,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    name: str = "model",
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, DecodedInformation]], list[str]]:
    """Train every fresh decoder on ``features`` and return what they read.

    Args:
        features: The model's features; token grids (`Features.grids`) for the layers that get the image
            and caption decoders (a layer without one is read as a single token, its pooled vector).
        data: Images, captions, labels and splits (shared by every model of the report).
        budget: Which layers, and the seed.
        baselines: The shared no-feature baselines (filled here on first use).
        device: Where the decoders train.
        progress: Progress bars.
        name: The model's name, for logs and notes.

    Returns:
        ``(information {layer: {"image": Estimate, ...}}, decoded {layer: {quantity: DecodedInformation}},
        notes)``; ``decoded`` keeps the per-image values that `paired_comparisons` pairs.
    """
    names = list(features.layers)
    factor_layers = chosen_layers(names, budget.factor_layers)
    decoder_layers = chosen_layers(names, budget.decoder_layers)
    information: dict[str, dict[str, Any]] = {layer: {} for layer in names}
    decoded: dict[str, dict[str, DecodedInformation]] = {layer: {} for layer in names}
    notes: list[str] = []
    device = str(device)
    factor_settings = decoder_settings(FACTOR_SETTINGS, budget)
    image_settings = decoder_settings(IMAGE_SETTINGS, budget)
    caption_settings = decoder_settings(CAPTION_SETTINGS, budget)
    cap = budget.decoder_train_images
    # The image and caption decoders cost the most: they may fit on the first `cap` train rows (a seeded
    # random subset, as the split is); the test rows stay the probes', so models still pair up.
    decoder_splits = data.splits if cap == 0 else replace(data.splits, train=data.splits.train[:cap])
    for layer in names:
        pooled = features.layers[layer]
        if layer in factor_layers and data.labels:
            start = time.perf_counter()
            per_label = factor_information(
                pooled,
                data.labels,
                data.splits,
                entropies=data.entropies,
                settings=factor_settings,
                device=device,
                progress=progress,
            )
            information[layer]["factors"] = {label: d.estimate for label, d in per_label.items()}
            mean = _mean_over_labels(per_label)
            if mean is not None:
                information[layer]["factors_mean"], decoded[layer]["factors"] = mean.estimate, mean
            logger.info("%s %s: factor decoders in %.1f s", name, layer, time.perf_counter() - start)
        if layer not in decoder_layers:
            continue
        grid = features.grids.get(layer)
        if grid is None:
            grid = pooled[:, None, :]
            notes.append(
                f"{layer}: no token grid kept; the image and caption decoders read the pooled vector"
            )
        if data.images is not None:
            images = data.images.astype(np.float32) / 255.0
            patch = target_patch(images.shape[2], images.shape[3])
            if baselines.image is None:
                start = time.perf_counter()
                baselines.image = image_baseline(
                    images,
                    decoder_splits,
                    patch=patch,
                    settings=image_settings,
                    device=device,
                    progress=progress,
                )
                baselines.seconds["image_baseline"] = time.perf_counter() - start
            targets = [("image", grid)] + (
                [("image_pooled", pooled[:, None, :])] if budget.image_from_pooled else []
            )
            for key, inputs in targets:
                start = time.perf_counter()
                result = image_information(
                    inputs,
                    images,
                    decoder_splits,
                    baseline=baselines.image,
                    patch=patch,
                    settings=image_settings,
                    device=device,
                    progress=progress,
                )
                information[layer][key], decoded[layer][key] = result.estimate, result
                logger.info("%s %s: %s decoder in %.1f s", name, layer, key, time.perf_counter() - start)
        if data.captions is not None:
            if baselines.caption is None:
                start = time.perf_counter()
                baselines.caption = caption_baseline(
                    data.captions, decoder_splits, settings=caption_settings, device=device, progress=progress
                )
                baselines.seconds["caption_baseline"] = time.perf_counter() - start
            start = time.perf_counter()
            result = caption_information(
                grid,
                data.captions,
                decoder_splits,
                caption_entropy=data.caption_entropy,
                ceiling=data.caption_ceiling,
                baseline=baselines.caption,
                settings=caption_settings,
                device=device,
                progress=progress,
            )
            information[layer]["caption"], decoded[layer]["caption"] = result.estimate, result
            logger.info("%s %s: caption decoder in %.1f s", name, layer, time.perf_counter() - start)
    return {k: v for k, v in information.items() if v}, {k: v for k, v in decoded.items() if v}, notes


def _mean_over_labels(per_label: Mapping[str, DecodedInformation]) -> DecodedInformation | None:
    """The mean over labels of the per-image values: what a paired comparison of 'all factors' reads."""
    if not per_label:
        return None
    first = next(iter(per_label.values()))
    values = np.mean([d.per_sample for d in per_label.values()], axis=0)
    estimate = first.estimate.with_extra(
        value=float(values.mean()),
        stderr=float(values.std(ddof=1) / np.sqrt(values.size)),
        params={"labels": sorted(per_label), "aggregate": "mean over labels"},
        ceiling=None,
        warnings=(),
    )
    return DecodedInformation(estimate=estimate, per_sample=values, test_rows=first.test_rows)


def paired_comparisons(
    results: Sequence[ModelResult], decoded: Sequence[dict[str, dict[str, DecodedInformation]]]
) -> list[Comparison]:
    """Paired differences of every quantity between every two models, and between each model and each
    anchor (not between two anchors), each at its last decoded layer."""
    out = []
    for i, (first, first_decoded) in enumerate(zip(results, decoded, strict=True)):
        for second, second_decoded in list(zip(results, decoded, strict=True))[i + 1 :]:
            if not first_decoded or not second_decoded or (first.is_anchor and second.is_anchor):
                continue
            first_layer, second_layer = list(first_decoded)[-1], list(second_decoded)[-1]
            a, b = first_decoded[first_layer], second_decoded[second_layer]
            for quantity in ("image", "image_pooled", "caption", "factors"):
                if a.get(quantity) is None or b.get(quantity) is None:
                    continue
                out.append(
                    Comparison(
                        quantity=quantity,
                        first=first.name,
                        second=second.name,
                        first_layer=first_layer,
                        second_layer=second_layer,
                        difference=paired_difference(a[quantity], b[quantity]),
                    )
                )
    return out
