"""The eval data every model of a measurement sees, and what that data knows of itself (exact entropies)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from infomug.data import DataConfig, ShapesWorld, build_dataset
from infomug.train.config import apply_overrides
from infomug.train.typed import build_dataclass

from .information import plug_in_entropy
from .sources import LoadedModel, data_config_of, fixed_input_size


@dataclass
class EvalData:
    """The eval data every model is measured on, and what it knows of itself."""

    config: DataConfig
    split: str
    dataset: Any
    key: str
    exact_entropies: dict[str, float] | None
    caption_entropy: float | None
    caption_information_total: float | None


def resolve_data(
    data: DataConfig | str | None,
    models: Sequence[LoadedModel],
    overrides: Sequence[str] = (),
    split: str = "eval",
) -> EvalData:
    """The eval data: ``data`` if a `DataConfig`; else the first checkpoint's data config, its ``source``
    replaced by ``data`` when that names another source; else the embedded world. Without a checkpoint,
    the images are made the side the first model with a fixed input size takes (a timm ViT's
    ``img_size``; the world and digits also render at it). ``overrides`` are dotted data settings
    (``world.eval_size=20000``), applied last; a user source given ``eval_path`` alone needs no ``path``.
    Samples without a caption are measured too (caption measurements are then left out).

    Raises:
        ValueError: for an unknown source or setting, or a user source without ``eval_path``.
    """
    if isinstance(data, DataConfig):
        values: dict[str, Any] = plain(data)
    else:
        trained_on = next((c for c in (data_config_of(m) for m in models) if c is not None), None)
        values = plain(trained_on) if trained_on is not None else {}
        if isinstance(data, str) and values.get("source", "world") != data:
            image_size = values.get("image_size")
            values = {"source": data} if image_size is None else {"source": data, "image_size": image_size}
        size = next((s for s in (fixed_input_size(m.encoder) for m in models) if s is not None), None)
        if trained_on is None and size is not None:
            values["image_size"] = size
            source = values.get("source", "world")
            if source in ("world", "digits"):
                values[source] = {**values.get(source, {}), "image_size": size}
    values = apply_overrides(values, list(overrides))
    if values.get("eval_path") and not values.get("path"):
        # `--timm NAME --data csv --set eval_path=val.tsv`: the eval split reads eval_path alone, but a
        # user source's DataConfig needs a (training) path, which a model without a run config lacks.
        values["path"] = values["eval_path"]
    config = build_dataclass(DataConfig, values)
    # Every sample is measured, captioned or not: image-only eval data (shards without .txt, a CSV without
    # captions, a folder of photos) leaves the caption measurements out instead of being refused.
    dataset = build_dataset(config, split=split, augmentation="eval", require_captions=False)
    key = json.dumps({"data": plain(config), "split": split}, sort_keys=True, default=str)
    exact = getattr(dataset, "factor_entropies", None)
    world = isinstance(dataset, ShapesWorld)
    return EvalData(
        config=config,
        split=split,
        dataset=dataset,
        key=key,
        exact_entropies=exact() if callable(exact) else None,
        caption_entropy=dataset.caption_entropy() if world else None,
        caption_information_total=dataset.caption_information_total() if world else None,
    )


def plain(config: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready nested dicts and lists."""
    return json.loads(json.dumps(asdict(config), default=list))


def label_entropies(
    exact: dict[str, float] | None, labels: dict[str, np.ndarray], names: Sequence[str]
) -> tuple[dict[str, float], bool]:
    """H(label) in nats of each of ``names``: the exact value where the data knows it, else the plug-in
    entropy of the measured ``labels`` (as `measure_layer` uses); and whether all of them are exact."""
    exact = exact or {}
    out = {
        name: exact[name] if name in exact else plug_in_entropy(labels[name])
        for name in names
        if name in exact or name in labels
    }
    return out, bool(out) and all(name in exact for name in out)


def check_input_sizes(models: Sequence[LoadedModel], config: DataConfig) -> None:
    """Refuse, before any extraction, a model that only takes images of another side than the data's.

    Raises:
        ValueError: naming the model, both sizes and the two ways out.
    """
    for model in models:
        size = fixed_input_size(model.encoder)
        if size is not None and size != config.image_size:
            raise ValueError(
                f"{model.name} takes {size}x{size} images but the eval data gives {config.image_size}x"
                f"{config.image_size}: set the data's image_size={size} (CLI: --set image_size={size}) or "
                "measure the models on separate runs"
            )
