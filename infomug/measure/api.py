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

from .anchors import oracle_features
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

logger = logging.getLogger(__name__)

ModelSpec = LoadedModel | nn.Module | str | Path
ORACLE = "oracle (labels one-hot)"


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
    anchors: bool = False,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> Report | None:
    """Measure how much each layer of each model knows, and how well it transfers.

    Per layer: I(T; label) for every discrete label (two lower bounds), I(X; T + sigma Z) at the budget's
    noise levels, H(T), effective rank, I(T; caption) (InfoNCE), linear-probe and k-NN accuracy. Per
    checkpoint: the Barber-Agakov bounds of its own caption decoder (MUG) and pixel decoder (MAE, MUG).

    Args:
        models: One or several checkpoints (run folder, step folder, ``model.safetensors``),
            ``"timm:NAME[:WEIGHTS]"`` strings, `nn.Module`s or `LoadedModel`s.
        data: A `DataConfig`, a source name (``"world"``, ``"digits"``, ...), or None for the data the
            first checkpoint trained on (the embedded world for foreign models).
        layers: ``"all"``, ``"last"``, block indices (``"0,3,5"`` or a list), or module names to hook.
        pool: ``"token"`` (class token) or ``"avg"`` (mean of patch tokens).
        budget: ``"quick"`` (default), ``"full"``, or a `Budget`.
        split: Which split to measure on (``"eval"`` by default).
        data_overrides: Dotted data settings applied on top, e.g. ``("world.eval_size=20000",)``.
        anchors: Also measure the sanity anchors: an oracle whose features are the labels one-hot (it
            should reach H(label)) and a random-init copy of the first model (it should know far less).
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
        extracted = []
        for model in loaded:
            logger.info("extracting %s: %d images", model.name, count)
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
            )
            extracted.append(features)
        if not dist.is_main_process():
            return None
        results = [
            _measure_model(model, features, eval_data, budget, device, progress)
            for model, features in zip(loaded, extracted, strict=True)
        ]
        if anchors:
            oracle = _measure_oracle(extracted[0], eval_data, budget, progress, device)
            if oracle is None:
                results[0].notes.append("no oracle anchor: the data has no discrete label to encode one-hot")
            else:
                results.append(oracle)
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
            },
            label_entropies=entropies,
            label_entropies_exact=exact,
            caption_information_total=eval_data.caption_information_total,
            settings={**budget.to_dict(), "device": str(device)},
            versions=versions(),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            seconds={"total": time.perf_counter() - start},
        )
        if out is not None:
            write_report(report, out)
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
) -> list[LayerResult]:
    names = list(features.layers)
    caption_layers = names if budget.caption_layers == "all" else names[-1:]
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
            captions=features.captions,
            caption_information=name in caption_layers,
            progress=progress,
            device=device,
        )
        results.append(result)
        notes += [note for note in layer_notes if note not in notes]
    return results


def _measure_model(
    model: LoadedModel,
    features: Features,
    eval_data: EvalData,
    budget: Budget,
    device: torch.device,
    progress: bool | None,
) -> ModelResult:
    notes: list[str] = []
    if features.from_cache:
        notes.append("features read from the cache (no extraction)")
    logger.info("measuring %s: %d layers", model.name, len(features.layers))
    result = ModelResult(
        name=model.name,
        source=model.source,
        objective=model.objective_name,
        step=model.step,
        fingerprint=model.fingerprint,
        layers=_measure_layers(features, eval_data, budget, device, progress, notes),
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


def _measure_oracle(
    features: Features,
    eval_data: EvalData,
    budget: Budget,
    progress: bool | None,
    device: str | torch.device = "cpu",
) -> ModelResult | None:
    """The oracle anchor on the labels every layer measures (`discrete_labels`); None if there is none."""
    names = list(discrete_labels(features.labels)[0])
    if not names:
        return None
    oracle = Features(
        layers={"labels_one_hot": oracle_features(features.labels, names)},
        labels=features.labels,
        captions=features.captions,
        indices=features.indices,
        seconds=0.0,
        from_cache=False,
    )
    notes = [
        f"sanity anchor: features are the one-hot labels {', '.join(names)};"
        " I(T; label) should reach H(label)"
    ]
    layers = _measure_layers(oracle, eval_data, budget, device, progress, notes)
    return ModelResult(
        name=ORACLE,
        source="anchor",
        objective=None,
        step=None,
        fingerprint="oracle",
        layers=layers,
        notes=notes,
    )
