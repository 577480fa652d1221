"""`finetune`: every model x task x mode x label budget x seed, hyper-parameters chosen on validation.

    report = finetune(["runs/mae", "runs/clip"], out="runs/ft")      # FinetuneReport; finetune.json/.md/.png

For each task the training images are split once into a validation set (``val_fraction``, the same for
every encoder and seed) and a training pool; a fit with label budget B trains on B images drawn from the
pool by seed (the same B images for every encoder, so seeds pair across encoders). On the first seed
every value of the mode's grid is fitted and scored on validation; the best is kept and the other seeds
run at it. The test set is scored by every fit but never read to choose anything. From-scratch references
(a random initialisation of each architecture, same recipe, budget and grid) run in ``linear`` and
``full`` mode. Every finished fit is written to ``finetune.json`` at once, so a killed run resumes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from infomug.measure.probes import linear_probes
from infomug.measure.sources import LoadedModel, fixed_input_size, load_model, random_init_like

from .classifier import Classifier, backbone_of
from .loop import LabelledImages, Normaliser, fit_classifier
from .report_files import hyper_text, write_report_files
from .results import SCRATCH_SUFFIX, FinetuneReport, Fit, ModelEntry, best_fit
from .settings import FinetuneSettings
from .tasks import Task, build_task

logger = logging.getLogger(__name__)

RESULTS_FILE = "finetune.json"
_VAL_SEED = 20261203  # fixed: every encoder and seed chooses on the same validation images


@dataclass
class _Subject:
    """A model to fine-tune: its table entry and how to get its weights for a seed."""

    entry: ModelEntry
    weights: Callable[[int], LoadedModel]
    modes: tuple[str, ...]


@dataclass
class _Splits:
    pool: np.ndarray
    val: np.ndarray
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def architecture_key(model: LoadedModel) -> str:
    """A short description of a ViT's architecture (``"ViT 192x6 p4 32px"``): equal keys share one
    from-scratch reference."""
    vit = backbone_of(model.encoder)
    key = (
        f"ViT {vit.embed_dim}x{len(vit.blocks)} h{vit.blocks[0].attn.num_heads}"
        f" p{vit.patch_embed.patch_size[0]} {vit.patch_embed.img_size[0]}px"
    )
    return key if vit.num_prefix_tokens == 1 else f"{key} {vit.num_prefix_tokens} prefix tokens"


def finetune(
    models: Sequence[LoadedModel | str],
    settings: FinetuneSettings | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    tasks: Sequence[Task] | None = None,
) -> FinetuneReport:
    """Fine-tune every model on every task of ``settings`` and return the report.

    Args:
        models: `LoadedModel`s or specs for `infomug.measure.sources.load_model` (a run folder, a
            checkpoint, ``timm:NAME:WEIGHTS``); each must hold a timm ViT.
        settings: the protocol (defaults if None).
        out: folder for ``finetune.json`` / ``.md`` / ``.png``; an existing ``finetune.json`` made with the
            same settings is resumed (its fits are not rerun).
        progress: tqdm bars per fit.
        device: where the fits run.
        tasks: ready-made `Task`s to use instead of ``settings.tasks`` (e.g. a task built in memory).

    Returns:
        The `FinetuneReport` (also written under ``out``).

    Raises:
        ValueError: no model; a model that is not a ViT; models of different input sizes; a task whose
            images do not fit the encoder (channels); an ``out`` whose results used other settings.
    """
    settings = settings or FinetuneSettings()
    if not models:
        raise ValueError("finetune needs at least one model")
    loaded = [m if isinstance(m, LoadedModel) else load_model(m, device=device) for m in models]
    sizes = {_input_size(m) for m in loaded}
    if len(sizes) > 1:
        raise ValueError(
            f"models take different image sizes {sorted(sizes)}; fine-tune them in separate runs"
        )
    image_size = sizes.pop()
    subjects = _subjects(loaded, settings)
    path = Path(out) / RESULTS_FILE if out is not None else None
    report = _start(path, settings)
    for subject in subjects:
        if all(m.key != subject.entry.key for m in report.models):
            report.models.append(subject.entry)
    for spec in tasks if tasks is not None else settings.tasks:
        task = (
            spec
            if isinstance(spec, Task)
            else build_task(spec, image_size, settings.train_size, settings.test_size)
        )
        _check_task(task, loaded[0], image_size)
        splits = _splits(task, settings.val_fraction)
        report.tasks[task.name] = {
            "description": task.description,
            "domain": task.domain,
            "labels": {label: len(task.classes[label]) for label in task.label_names},
            "train_pool": int(splits.pool.size),
            "val": int(splits.val.size),
            "test": int(task.test_images.shape[0]),
            "augmentation": {"crop_scale": task.augmentation.crop_scale, "hflip": task.augmentation.hflip},
        }
        for subject in subjects:
            _run_subject(subject, task, splits, settings, report, path, progress, device)
        if out is not None:  # after each task, so that a long run's finished tasks can be read
            write_report_files(report, Path(out))
    return report


def _input_size(model: LoadedModel) -> int:
    size = fixed_input_size(backbone_of(model.encoder))
    if size is None:
        raise ValueError(f"{model.name}: fine-tuning needs a ViT with a fixed square input size")
    return size


def _subjects(loaded: Sequence[LoadedModel], settings: FinetuneSettings) -> list[_Subject]:
    pretrained = tuple(settings.modes)
    subjects = [
        _Subject(ModelEntry(m.name, m.fingerprint, m.source), (lambda seed, m=m: m), pretrained)
        for m in loaded
    ]
    scratch_modes = tuple(mode for mode in settings.modes if mode in ("linear", "full"))
    if settings.from_scratch and scratch_modes:
        seen: set[str] = set()
        for model in loaded:
            key = architecture_key(model)
            if key in seen:
                continue
            seen.add(key)
            entry = ModelEntry(key + SCRATCH_SUFFIX, f"scratch:{key}", "random init", scratch=True)
            weights = lambda seed, m=model: random_init_like(m, seed=seed)  # noqa: E731
            subjects.append(_Subject(entry, weights, scratch_modes))
    return subjects


def _start(path: Path | None, settings: FinetuneSettings) -> FinetuneReport:
    if path is None or not path.exists():
        return FinetuneReport(settings=settings.to_dict())
    report = FinetuneReport.read(path)
    if report.settings != settings.to_dict():
        raise ValueError(
            f"{path} holds fine-tuning results made with other settings; pass another --out, or delete it"
            " to start over"
        )
    logger.info("resuming %s: %d fits done", path, len(report.fits))
    return report


def _check_task(task: Task, model: LoadedModel, image_size: int) -> None:
    channels = backbone_of(model.encoder).patch_embed.proj.in_channels
    if channels != 3:
        raise ValueError(f"task {task.name!r} has RGB images but {model.name} takes {channels} channels")
    if task.image_size != image_size:
        raise ValueError(
            f"task {task.name!r} has {task.image_size}-px images but {model.name} takes {image_size} px"
        )


def _splits(task: Task, val_fraction: float) -> _Splits:
    n = task.train_images.shape[0]
    order = np.random.default_rng(_VAL_SEED).permutation(n)
    n_val = max(2, int(round(val_fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"task {task.name!r}: {n} training images are too few to hold out validation")
    pool, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    pixels = task.train_images[torch.from_numpy(pool)].float().div_(255.0)
    mean = tuple(float(v) for v in pixels.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in pixels.std(dim=(0, 2, 3)))
    return _Splits(pool, val, mean, std)


def budget_rows(pool: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """The ``budget`` labelled rows of ``seed`` (all of ``pool`` for 0), sorted; same for every encoder."""
    if budget == 0 or budget >= pool.size:
        return pool
    return np.sort(np.random.default_rng([seed, budget]).choice(pool, size=budget, replace=False))


def _run_subject(
    subject: _Subject,
    task: Task,
    splits: _Splits,
    settings: FinetuneSettings,
    report: FinetuneReport,
    path: Path | None,
    progress: bool,
    device: str | torch.device,
) -> None:
    key = subject.entry.key
    cache: dict[tuple[str, str], np.ndarray] = {}
    budgets = [b for b in settings.label_budgets if b == 0 or b < splits.pool.size]
    for mode in subject.modes:
        for budget in budgets:
            grid = _grid(settings, mode)
            for seed in range(settings.seeds):
                if seed == 0:
                    candidates = grid
                else:
                    candidates = [_chosen(report, key, task.name, mode, budget, grid)]
                for hyper in candidates:
                    if report.find(key, task.name, mode, budget, seed, hyper) is not None:
                        continue
                    model = subject.weights(seed)
                    fit = _fit(
                        model, key, task, splits, mode, budget, seed, hyper, settings, progress, device, cache
                    )
                    report.fits.append(fit)
                    logger.info(
                        "%s | %s | %s | %s labels | seed %d | %s: val %.3f test %.3f (%.0f s)",
                        subject.entry.name,
                        task.name,
                        mode,
                        budget or "all",
                        seed,
                        hyper_text(hyper),
                        fit.val_mean,
                        fit.test_mean,
                        fit.seconds,
                    )
                    if path is not None:
                        report.write(path)


def _grid(settings: FinetuneSettings, mode: str) -> list[dict[str, float]]:
    if mode == "linear":
        return [{"weight_decay": float(v)} for v in settings.linear.weight_decay_grid]
    return [{"lr": float(v)} for v in settings.recipe(mode).lr_grid]


def _chosen(
    report: FinetuneReport, key: str, task: str, mode: str, budget: int, grid: list[dict[str, float]]
) -> dict[str, float]:
    """The grid value `best_fit` picks among seed 0's fits (the first value if none is usable)."""
    fits = [report.find(key, task, mode, budget, 0, hyper) for hyper in grid]
    best = best_fit([f for f in fits if f is not None])
    return grid[0] if best is None else best.hyper


def _fit(
    model: LoadedModel,
    key: str,
    task: Task,
    splits: _Splits,
    mode: str,
    budget: int,
    seed: int,
    hyper: dict[str, float],
    settings: FinetuneSettings,
    progress: bool,
    device: str | torch.device,
    cache: dict[tuple[str, str], np.ndarray],
) -> Fit:
    """One fit; ``cache`` keeps the last model's frozen features for the linear grid and seeds."""
    rows = budget_rows(splits.pool, budget, seed)
    sizes = dict(
        train_images=int(rows.size),
        val_images=int(splits.val.size),
        test_images=int(task.test_images.shape[0]),
    )
    common = dict(
        model_key=key, task=task.name, mode=mode, budget=budget, seed=seed, hyper=dict(hyper), **sizes
    )
    normaliser = Normaliser.of(splits.mean, splits.std, task.augmentation)
    if mode == "linear":
        features = cache.get((model.fingerprint, task.name))
        if features is None:
            features = _linear_features(model, task, normaliser, settings.eval_batch_size, device)
            cache.clear()  # one model's features at a time: the next fits reuse them, memory stays small
            cache[(model.fingerprint, task.name)] = features
        return _linear_fit(features, task, splits, rows, hyper, settings, common)
    recipe = settings.recipe(mode)
    num_classes = {label: len(task.classes[label]) for label in task.label_names}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = Classifier(
            backbone_of(model.encoder), num_classes, drop_path=recipe.drop_path, head_norm=recipe.head_norm
        )
    classifier.train_only_last(recipe.blocks)
    classifier.to(device)
    outcome = fit_classifier(
        classifier,
        LabelledImages.take(task.train_images, task.train_labels, rows),
        LabelledImages.take(task.train_images, task.train_labels, splits.val),
        LabelledImages.take(task.test_images, task.test_labels, np.arange(task.test_images.shape[0])),
        normaliser,
        recipe,
        lr=hyper["lr"],
        seed=seed,
        eval_batch_size=settings.eval_batch_size,
        progress=progress,
        description=f"{task.name} {mode} {budget or 'all'} s{seed} lr {hyper['lr']:g}",
    )
    return Fit(
        val_accuracy=outcome.val_accuracy,
        test_accuracy=outcome.test_accuracy,
        steps=outcome.steps,
        seconds=outcome.seconds,
        images_per_second=outcome.images_per_second,
        diverged=outcome.diverged,
        **common,
    )


@torch.no_grad()
def frozen_features(
    model: LoadedModel,
    images: torch.Tensor,
    normaliser: Normaliser,
    batch_size: int,
    device: str | torch.device,
) -> np.ndarray:
    """``[N, D]`` float32: the mean of the final-norm patch tokens of the frozen encoder (eval mode)."""
    vit = backbone_of(model.encoder).to(device).eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        tokens = vit.forward_features(normaliser(images[start : start + batch_size].to(device)))
        chunks.append(tokens[:, vit.num_prefix_tokens :].mean(dim=1).float().cpu())
    return torch.cat(chunks).numpy()


def _linear_features(
    model: LoadedModel, task: Task, normaliser: Normaliser, batch: int, device: str | torch.device
) -> np.ndarray:
    """Frozen features of the task's training images, then of its test images: ``[N_train + N_test, D]``."""
    train = frozen_features(model, task.train_images, normaliser, batch, device)
    return np.concatenate([train, frozen_features(model, task.test_images, normaliser, batch, device)])


def _linear_fit(
    features: np.ndarray,
    task: Task,
    splits: _Splits,
    rows: np.ndarray,
    hyper: dict[str, float],
    settings: FinetuneSettings,
    common: dict,
) -> Fit:
    n_train = task.train_images.shape[0]
    labels = {
        label: np.concatenate([task.train_labels[label], task.test_labels[label]])
        for label in task.label_names
    }
    scored_rows = np.concatenate([splits.val, n_train + np.arange(task.test_images.shape[0])])
    outputs = linear_probes(
        features,
        labels,
        rows,
        scored_rows,
        max_iter=settings.linear.max_iter,
        weight_decay=hyper["weight_decay"],
    )
    val_accuracy, test_accuracy = {}, {}
    n_val = splits.val.size
    for label, output in outputs.items():
        predicted = output.classes[output.logits.argmax(axis=1)]
        correct = predicted == labels[label][scored_rows]
        val_accuracy[label] = float(correct[:n_val].mean())
        test_accuracy[label] = float(correct[n_val:].mean())
    first = next(iter(outputs.values())).accuracy
    return Fit(
        val_accuracy=val_accuracy,
        test_accuracy=test_accuracy,
        steps=int(first.params["iterations"]),
        seconds=float(first.seconds),
        images_per_second=math.nan,
        diverged=False,
        **common,
    )
