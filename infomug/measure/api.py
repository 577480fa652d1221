"""`measure`: extract features of one or more models on the same data, measure every layer, write a report.

    from infomug.measure import measure
    report = measure("runs/mug", out="runs/mug/measure")              # a checkpoint, the data it trained on
    report = measure(["runs/mae", "runs/mug"], "world", layers="last")  # side by side
    report = measure(my_module, "world", layers=["blocks.3"])          # any nn.Module, through hooks

Under ``torchrun`` every process extracts its share of the images and receives all features; the main
process alone estimates and writes (the others return None): estimators never run per shard.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from infomug import __version__, dist
from infomug.data import DataConfig
from infomug.train.distributed import resolve_device

from .anchors import oracle_features, pixel_features
from .budget import Budget, get_budget
from .decoders import caption_cross_entropy, caption_decoder_bound
from .eval_data import EvalData, check_input_sizes, label_entropies, plain, resolve_data
from .extract import Features, extract_features, unsplit_stream
from .layer import MIN_SAMPLES, discrete_labels, measure_layer
from .pixel_decoder import pixel_decoder_bound
from .report_files import write_report
from .results import LayerResult, ModelResult, Report
from .sources import (
    LoadedModel,
    device_of,
    from_module,
    load_model,
    random_init_like,
)
from .taps import make_tap
from .usable.estimates import DecodedInformation
from .usable.stage import (
    Baselines,
    StageData,
    chosen_layers,
    make_splits,
    measure_usable_information,
    paired_comparisons,
    target_patch,
)

logger = logging.getLogger(__name__)

ModelSpec = LoadedModel | nn.Module | str | Path
ORACLE = "oracle (labels one-hot)"
PIXELS = "pixels (anchor)"


def resolve_models(models: ModelSpec | Sequence[ModelSpec], device: str | torch.device) -> list[LoadedModel]:
    """`LoadedModel`s for checkpoints (paths), ``"timm:NAME[:WEIGHTS]"`` strings and modules, uniquely named.

    Raises:
        ValueError: for no model, or a model that cannot be loaded (see `load_model`).
        FileNotFoundError: for a checkpoint path that does not exist.
    """
    specs = [models] if isinstance(models, (LoadedModel, nn.Module, str, Path)) else list(models)
    if not specs:
        raise ValueError("give at least one model to measure")
    loaded = []
    for spec in specs:
        if isinstance(spec, LoadedModel):
            loaded.append(spec)
        elif isinstance(spec, nn.Module):
            loaded.append(from_module(spec, device=device))
        else:
            loaded.append(load_model(str(spec), device=device))
    taken: set[str] = set()
    for position, model in enumerate(loaded):
        name, count = model.name, 1
        while name in taken:
            count += 1
            name = f"{model.name} ({count})"
        taken.add(name)
        if name != model.name:
            # A copy: the caller's LoadedModel (possibly given twice) keeps its name.
            loaded[position] = replace(model, name=name)
    return loaded


def versions() -> dict[str, str]:
    """Versions of what produced a report."""
    import timm

    return {
        "infomug": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def measure(
    models: ModelSpec | Sequence[ModelSpec],
    data: DataConfig | str | None = None,
    *,
    layers: str | Sequence[int] | Sequence[str] | None = "all",
    pool: str = "token",
    budget: str | Budget = "quick",
    split: str = "eval",
    data_overrides: Sequence[str] = (),
    anchors: bool = True,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> Report | None:
    """Measure how much each layer of each model knows, and how well it transfers.

    The headline is usable information on equal terms (`infomug.measure.usable`): fresh decoders of one
    fixed family and budget, trained on every model's frozen features to the image (I_V(T -> X), nats per
    image, from the token grid and from the pooled vector), the caption (I(T; caption) >= H(caption) -
    CE) and each discrete label (I(T; label) >= H(label) - CE), read on the same held-out images, with
    paired differences between every two models (`Report.comparisons`). Beside it, per layer: readouts
    (linear probe, k-NN) and the probe-based I(T; label) bounds, and geometry diagnostics (the noisy
    channel on whitened features, H(T), RankMe). Per checkpoint: the bounds of its own caption decoder
    (MUG) and pixel decoder (MAE, MUG).

    Args:
        models: One or several checkpoints (run folder, step folder, ``model.safetensors``),
            ``"timm:NAME[:WEIGHTS]"`` strings, `nn.Module`s or `LoadedModel`s.
        data: A `DataConfig`, a source name (``"world"``, ``"digits"``, ...), or None for the data the
            first checkpoint trained on (the embedded world for foreign models).
        layers: ``"all"``, ``"last"``, block indices (``"0,3,5"`` or a list), or module names to hook.
        pool: ``"token"`` (class token), ``"avg"`` (mean of patch tokens) or ``"both"`` (each layer read
            both ways, named ``LAYER:token`` and ``LAYER:avg``).
        budget: ``"quick"`` (default), ``"full"``, or a `Budget`.
        split: Which split to measure on (``"eval"`` by default).
        data_overrides: Dotted data settings applied on top, e.g. ``("world.eval_size=20000",)``.
        anchors: Also measure the anchors every model is read against (on by default): a random-init
            copy of the first model, the raw pixels (their top principal components as the pooled vector,
            their patches as the token grid) and an oracle whose features are the labels one-hot.
        out: Report folder (``measure.json``, ``measure.md``, plots, ``features/`` cache); None = no files.
        cache_dir: Feature cache (default ``out/features``; none without ``out``).
        device: Where the models run (``"cpu"``, ``"cuda"``, ``"auto"``).
        progress: Progress bars (default: when stderr is a terminal).

    Returns:
        The `Report` (also written to ``out``); None on processes other than the main one under torchrun.
        An `nn.Module` given is measured in place and handed back on its device and in its train/eval mode.

    Raises:
        ValueError: for bad models, data, layers, pool or budget, or features that are not finite.
        FileNotFoundError: for a missing checkpoint or data file.
    """
    start = time.perf_counter()
    budget = get_budget(budget) if isinstance(budget, str) else budget
    device = measure_device(device)
    specs = [models] if isinstance(models, (LoadedModel, nn.Module, str, Path)) else list(models)
    with _restored([spec for spec in specs if isinstance(spec, nn.Module)]):
        loaded = resolve_models(specs, device)
        if anchors:
            loaded.append(random_init_like(loaded[0], seed=budget.seed))
        eval_data = resolve_data(data, loaded, data_overrides, split)
        check_input_sizes(loaded, eval_data.config)
        out = Path(out) if out is not None else None
        cache = Path(cache_dir) if cache_dir is not None else (out / "features" if out is not None else None)
        count = _image_count(eval_data.dataset, budget.images)
        stream = not hasattr(eval_data.dataset, "__len__")
        clock = _Clock(start, len(loaded) + (2 if anchors else 0))
        extracted = []
        bad_samples = None
        for position, model in enumerate(loaded):
            wanted = f"up to {count} images (a stream: until it ends)" if stream else f"{count} images"
            clock.log("extracting %s: %s", model.name, wanted)
            names = list(make_tap(model, layers, pool).names)
            features = extract_features(
                model,
                eval_data.dataset,
                layers=layers,
                pool=pool,
                n=count,
                batch_size=budget.batch_size,
                device=device,
                cache_dir=cache,
                data_key=eval_data.key,
                progress=progress,
                grid_layers=chosen_layers(names, budget.decoder_layers) if budget.usable_information else (),
                keep_images=budget.usable_information and position == 0,
            )
            extracted.append(features)
            if features.from_cache:
                clock.log("%s: features of %d images read from the cache", model.name, features.n)
            else:
                rate = features.n / max(features.seconds, 1e-9)
                clock.log(
                    "%s: %d images extracted in %.1f s (%.0f images/s)",
                    model.name,
                    features.n,
                    features.seconds,
                    rate,
                )
            if position == 0:
                # Every later pass reads the same samples again: the first pass's counts are the data's.
                bad_samples = _bad_samples(eval_data.dataset)
        if not dist.is_main_process():
            return None
        stage = _stage_data(extracted[0], eval_data, budget) if budget.usable_information else None
        baselines = Baselines()
        results, decoded = [], []
        for position, (model, features) in enumerate(zip(loaded, extracted, strict=True)):
            if anchors and position == len(loaded) - 1 and budget.anchor_layers == "last":
                last = list(features.layers)[-1]  # the random init: read where the headline reads
                features = replace(features, layers={last: features.layers[last]})
            result = _measure_model(model, features, eval_data, budget, device, progress, clock)
            decoded.append(_usable(result, features, stage, budget, baselines, device, progress, clock))
            results.append(result)
            clock.model_done(result.name)
        if anchors:
            for anchor in _anchor_features(extracted[0], stage, budget):
                result = _measure_anchor(anchor, eval_data, budget, progress, device, clock)
                decoded.append(
                    _usable(result, anchor.features, stage, budget, baselines, device, progress, clock)
                )
                results.append(result)
                clock.model_done(result.name)
            if not any(r.name == ORACLE for r in results):
                results[0].notes.append("no oracle anchor: the data has no discrete label to encode one-hot")
        measured = sorted({label for r in results for layer in r.layers for label in layer.label_information})
        entropies, exact = label_entropies(eval_data.exact_entropies, extracted[0].labels, measured)
        report = Report(
            models=results,
            data={
                "source": eval_data.config.source,
                "split": split,
                "images": extracted[0].n,
                "pool": pool,
                "layers": layers
                if isinstance(layers, (str, type(None)))
                else [_plain_layer(v) for v in layers],
                "config": plain(eval_data.config),
                **({} if bad_samples is None else {"bad_samples": bad_samples}),
            },
            label_entropies=entropies,
            label_entropies_exact=exact,
            caption_information_total=eval_data.caption_information_total,
            settings={**budget.to_dict(), "device": str(device)},
            versions=versions(),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            seconds={**baselines.seconds, "total": time.perf_counter() - start},
            comparisons=paired_comparisons(results, decoded),
        )
        if out is not None:
            write_report(report, out)
        clock.log("done: %d models measured", len(results))
        return report


@contextlib.contextmanager
def _restored(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Hand the caller's modules back on their device and in their train/eval mode, whatever happens."""
    states = [(module, module.training, device_of(module)) for module in modules]
    try:
        yield
    finally:
        for module, training, device in states:
            module.to(device).train(training)


def _plain_layer(token: Any) -> int | str:
    return int(token) if isinstance(token, numbers.Integral) else str(token)  # numpy ints are not JSON


def measure_device(device: str | torch.device) -> torch.device:
    """The device ``device`` names: ``"auto"``, ``"cpu"``, ``"cuda"`` (see `resolve_device`), ``"cuda:N"``
    or a `torch.device`.

    Raises:
        ValueError: for an unknown name, or CUDA asked on a machine without it.
    """
    if isinstance(device, str) and device in ("auto", "cpu", "cuda"):
        return resolve_device(device)  # under torchrun: the GPU of this process's LOCAL_RANK
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device must be cpu, cuda[:N] or auto, got {str(device)!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked, but CUDA is not available here: use cpu or auto")
    return device


def _image_count(dataset: Any, wanted: int) -> int:
    if wanted < MIN_SAMPLES:
        raise ValueError(f"images={wanted}: measuring needs at least {MIN_SAMPLES} images")
    try:
        size = len(dataset)
    except TypeError:  # a stream: extraction stops at its end or at `wanted`
        return wanted
    if size < MIN_SAMPLES:
        raise ValueError(f"the eval split has {size} images; measuring needs at least {MIN_SAMPLES}")
    return min(size, wanted)


def _measure_layers(
    features: Features,
    eval_data: EvalData,
    budget: Budget,
    device: torch.device,
    progress: bool | None,
    notes: list[str],
    clock: _Clock | None = None,
    name_of_model: str = "",
) -> list[LayerResult]:
    names = list(features.layers)
    captions = _captions(features)
    caption_layers = chosen_layers(names, budget.caption_layers) if captions is not None else []
    if captions is None and "I(T; caption) not measured: the eval data has no captions" not in notes:
        notes.append("I(T; caption) not measured: the eval data has no captions")
    diagnostic_layers = chosen_layers(names, budget.diagnostic_layers)
    results = []
    # One bar step per layer: each takes seconds to minutes (probes, kNN, the noisy channel, a critic).
    disable = not sys.stderr.isatty() if progress is None else not progress
    for name in tqdm(names, desc="layers", unit="layer", disable=disable):
        result, layer_notes = measure_layer(
            name,
            features.layers[name],
            features.labels,
            budget,
            entropies=eval_data.exact_entropies,
            captions=captions,
            caption_information=name in caption_layers,
            diagnostics=name in diagnostic_layers,
            progress=progress,
            device=device,
        )
        results.append(result)
        notes += [note for note in layer_notes if note not in notes]
        if clock is not None:
            seconds = sum(result.seconds.values())
            done = len(results)
            # The diagnostics make later layers dearer: a rough estimate, said to be one.
            left = (len(names) - done) * sum(sum(r.seconds.values()) for r in results) / done
            clock.log(
                "%s: layer %s (%d of %d) in %.1f s; about %.0f s left for its layers",
                name_of_model,
                name,
                done,
                len(names),
                seconds,
                left,
            )
    return results


def _measure_model(
    model: LoadedModel,
    features: Features,
    eval_data: EvalData,
    budget: Budget,
    device: torch.device,
    progress: bool | None,
    clock: _Clock | None = None,
) -> ModelResult:
    notes: list[str] = []
    if features.from_cache:
        notes.append("features read from the cache (no extraction)")
    if clock is not None:
        clock.log("measuring %s: %d layers", model.name, len(features.layers))
    result = ModelResult(
        name=model.name,
        source=model.source,
        objective=model.objective_name,
        step=model.step,
        fingerprint=model.fingerprint,
        layers=_measure_layers(features, eval_data, budget, device, progress, notes, clock, model.name),
        seconds={"extraction": features.seconds},
        notes=notes,
    )
    _decoder_bounds(model, eval_data, budget, device, progress, result, features.n)
    return result


def _decoder_bounds(
    model: LoadedModel,
    eval_data: EvalData,
    budget: Budget,
    device: torch.device,
    progress: bool | None,
    result: ModelResult,
    images: int,
) -> None:
    """The MAE/MUG decoders' bounds on the first ``min(decoder_samples, images)`` of the measured images."""
    if model.objective_name not in ("mae", "mug") or model.objective is None:
        return
    n = min(budget.decoder_samples, images)
    # Only the main process gets here: under torchrun it must read the whole stream, not its shards.
    dataset = unsplit_stream(eval_data.dataset)
    start = time.perf_counter()
    options = dict(n=n, batch_size=budget.batch_size, device=device, seed=budget.seed, progress=progress)
    bound = pixel_decoder_bound(model.objective, dataset, **options)
    result.decoder_bounds["pixel_decoder"] = bound
    if model.objective_name == "mug":
        if model.tokenizer is None:
            result.notes.append("caption decoder bound skipped: the checkpoint has no tokenizer")
        elif eval_data.caption_entropy is None:
            nll = caption_cross_entropy(model.objective, dataset, model.tokenizer, **options)
            result.notes.append(
                f"caption decoder: cross-entropy {float(np.mean(nll)):.3f} nats per caption on {n} captions;"
                " no Barber-Agakov bound since H(caption) of this data is unknown"
            )
        else:
            result.decoder_bounds["caption_decoder"] = caption_decoder_bound(
                model.objective,
                dataset,
                model.tokenizer,
                caption_entropy=eval_data.caption_entropy,
                **options,
            )
    result.seconds["decoders"] = time.perf_counter() - start


def _stage_data(features: Features, eval_data: EvalData, budget: Budget) -> StageData:
    """What every model's decoders read: the first model's images, captions and labels (all share them)."""
    captions = _captions(features)
    return StageData(
        images=features.images,
        captions=captions,
        labels=discrete_labels(features.labels)[0],
        entropies=dict(eval_data.exact_entropies or {}),
        caption_entropy=eval_data.caption_entropy,
        caption_ceiling=eval_data.caption_information_total,
        splits=make_splits(features.n, budget),
    )


def _usable(
    result: ModelResult,
    features: Features,
    stage: StageData | None,
    budget: Budget,
    baselines: Baselines,
    device: torch.device,
    progress: bool | None,
    clock: _Clock | None = None,
) -> dict[str, dict[str, DecodedInformation]]:
    """Fill ``result``'s per-layer ``information`` from fresh decoders; the per-image values, for pairing."""
    if stage is None:
        return {}
    start = time.perf_counter()
    if clock is not None:
        clock.log("usable information of %s: fresh decoders", result.name)
    information, decoded, notes = measure_usable_information(
        features, stage, budget, baselines, device=device, progress=progress, name=result.name
    )
    for layer in result.layers:
        layer.information = information.get(layer.layer, {})
    result.notes += [note for note in notes if note not in result.notes]
    result.seconds["usable_information"] = time.perf_counter() - start
    return decoded


def _captions(features: Features) -> list[str] | None:
    """The measured captions, or None when there are none to read (image-only data: every one empty)."""
    return features.captions if any(caption.strip() for caption in features.captions) else None


class _Clock:
    """Log lines with the elapsed time, and after each model an estimate of what the others cost."""

    def __init__(self, start: float, models: int) -> None:
        self.start, self.models, self.done = start, models, 0

    def log(self, message: str, *args: Any) -> None:
        logger.info("[%s] " + message, _minutes(time.perf_counter() - self.start), *args)

    def model_done(self, name: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        if self.done < self.models:
            # Anchors cost less than the first model (no extraction, one layer): an upper estimate.
            left = elapsed / self.done * (self.models - self.done)
            self.log(
                "%s done (%d of %d models and anchors); at most about %s left",
                name,
                self.done,
                self.models,
                _minutes(left),
            )


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _bad_samples(dataset: Any) -> dict[str, Any] | None:
    """The data's skipped samples so far, by reason (None for data that does not count them)."""
    counts = getattr(dataset, "bad_samples", None)
    if counts is None:
        return None
    if counts.total:
        logger.warning("the eval data skipped %s", counts)
    return {"total": counts.total, "counts": {k: v for k, v in counts.counts.items() if v}}


class _Anchor:
    """An anchor's features, name and the note that says what it is."""

    def __init__(self, name: str, features: Features, note: str) -> None:
        self.name, self.features, self.note = name, features, note


def _anchor_features(features: Features, stage: StageData | None, budget: Budget) -> list[_Anchor]:
    """The pixel and oracle anchors built from the first model's data (the random init is a model)."""
    anchors = []
    if features.images is not None and stage is not None:
        patch = target_patch(features.images.shape[2], features.images.shape[3])
        pooled, grid = pixel_features(features.images, patch=patch, train_rows=stage.splits.train)
        anchors.append(
            _Anchor(
                PIXELS,
                replace(features, layers={"pixels": pooled}, grids={"pixels": grid}, from_cache=False),
                f"anchor: the raw pixels: the pooled vector is their top {pooled.shape[1]} principal"
                f" components (fit on the train split), the token grid their {patch}x{patch} patches",
            )
        )
    names = list(discrete_labels(features.labels)[0])
    if names:
        one_hot = oracle_features(features.labels, names)
        anchors.append(
            _Anchor(
                ORACLE,
                replace(features, layers={"labels_one_hot": one_hot}, grids={}, from_cache=False),
                f"sanity anchor: features are the one-hot labels {', '.join(names)};"
                " I(T; label) should reach H(label)",
            )
        )
    return anchors


def _measure_anchor(
    anchor: _Anchor,
    eval_data: EvalData,
    budget: Budget,
    progress: bool | None,
    device: str | torch.device = "cpu",
    clock: _Clock | None = None,
) -> ModelResult:
    """Every per-layer measurement of an anchor's features (its usable information is added after)."""
    notes = [anchor.note]
    if clock is not None:
        clock.log("measuring the anchor %s", anchor.name)
    layers = _measure_layers(anchor.features, eval_data, budget, device, progress, notes, clock, anchor.name)
    return ModelResult(
        name=anchor.name,
        source="anchor",
        objective=None,
        step=None,
        fingerprint=anchor.name.split(" ")[0],
        layers=layers,
        notes=notes,
    )
