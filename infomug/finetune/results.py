"""Fine-tuning results: one record per fit, cells (model x task x mode x budget) with intervals, JSON I/O.

A fit is one training run at one hyper-parameter value and seed; ``finetune.json`` keeps every fit, the
grid search's included, so a rerun skips what is done (resume) and a reader can check the selection.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

SCHEMA = 1
SCRATCH_SUFFIX = " (from scratch)"


@dataclass
class ModelEntry:
    """A fine-tuned model.

    Attributes:
        name: for tables.
        key: weights fingerprint, or ``"scratch:<architecture>"`` for a random initialisation.
        source: checkpoint folder, ``timm:NAME`` or ``"random init"``.
        scratch: True for the from-scratch reference.
    """

    name: str
    key: str
    source: str
    scratch: bool = False


@dataclass
class Fit:
    """One fine-tune (or one linear probe).

    Attributes:
        model_key, task, mode, budget, seed: what was fitted (budget 0 = the whole training pool).
        hyper: ``{"lr": ...}`` for gradient modes, ``{"weight_decay": ...}`` for ``linear``.
        val_accuracy, test_accuracy: ``{label: accuracy in [0, 1]}``.
        train_images, val_images, test_images: sizes of the splits.
        steps: optimizer steps (L-BFGS iterations for ``linear``).
        seconds: wall time.
        images_per_second: training images per second (NaN for ``linear``).
        diverged: the loss became non-finite (its accuracies are NaN and it is never chosen).
    """

    model_key: str
    task: str
    mode: str
    budget: int
    seed: int
    hyper: dict[str, float]
    val_accuracy: dict[str, float]
    test_accuracy: dict[str, float]
    train_images: int
    val_images: int
    test_images: int
    steps: int
    seconds: float
    images_per_second: float = math.nan
    diverged: bool = False

    @property
    def val_mean(self) -> float:
        return float(np.mean(list(self.val_accuracy.values())))

    @property
    def test_mean(self) -> float:
        return float(np.mean(list(self.test_accuracy.values())))

    def matches(self, model_key: str, task: str, mode: str, budget: int, seed: int, hyper: dict) -> bool:
        return (self.model_key, self.task, self.mode, self.budget, self.seed) == (
            model_key,
            task,
            mode,
            budget,
            seed,
        ) and all(math.isclose(self.hyper.get(k, math.nan), v, rel_tol=1e-9) for k, v in hyper.items())


@dataclass
class Interval:
    """A mean with a 95% interval.

    Attributes:
        mean: the mean (accuracy in [0, 1], or a difference of accuracies).
        low, high: the 95% interval: Student-t over seeds when there are >= 2, else NaN.
        n: seeds.
    """

    mean: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Interval:
        data = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
        if data.size == 0:
            return cls(math.nan, math.nan, math.nan, 0)
        mean = float(data.mean())
        if data.size < 2:
            return cls(mean, math.nan, math.nan, 1)
        half = float(stats.t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
        return cls(mean, mean - half, mean + half, int(data.size))

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclass
class Cell:
    """One model on one task, mode and label budget, over seeds.

    Attributes:
        test: mean test accuracy (over the task's labels) with its interval over seeds.
        per_label: ``{label: mean test accuracy over seeds}``.
        chosen: the hyper-parameters chosen on validation (first seed).
        grid: ``[(hyper, validation mean accuracy)]`` of the search, in grid order.
        steps, seconds: of one fit (mean over seeds).
        train_images: labelled images per fit.
        seeds: the seeds' test mean accuracies, in seed order (for paired differences).
    """

    model: str
    model_key: str
    task: str
    mode: str
    budget: int
    test: Interval
    per_label: dict[str, float]
    chosen: dict[str, float]
    grid: list[tuple[dict[str, float], float]]
    steps: float
    seconds: float
    train_images: int
    seeds: dict[int, float] = field(default_factory=dict)


@dataclass
class FinetuneReport:
    """Everything one `infomug.finetune.finetune` call produced.

    Attributes:
        settings: the resolved `FinetuneSettings` as a dict.
        models: the fine-tuned models, from-scratch references included.
        tasks: ``{task: {"description", "domain", "labels", "train_pool", "val", "test"}}``.
        fits: every fit, in the order run.
    """

    settings: dict[str, Any]
    models: list[ModelEntry] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    fits: list[Fit] = field(default_factory=list)

    def find(self, model_key: str, task: str, mode: str, budget: int, seed: int, hyper: dict) -> Fit | None:
        return next((f for f in self.fits if f.matches(model_key, task, mode, budget, seed, hyper)), None)

    def model(self, key: str) -> ModelEntry:
        return next(m for m in self.models if m.key == key)

    def cells(self) -> list[Cell]:
        """Every (model, task, mode, budget) with a fit, in model, task, mode, budget order."""
        groups: dict[tuple, list[Fit]] = {}
        for fit in self.fits:
            groups.setdefault((fit.model_key, fit.task, fit.mode, fit.budget), []).append(fit)
        order = {m.key: i for i, m in enumerate(self.models)}
        tasks = {t: i for i, t in enumerate(self.tasks)}
        modes = {m: i for i, m in enumerate(("linear", "partial", "full"))}
        cells = []
        for (key, task, mode, budget), fits in sorted(
            groups.items(),
            key=lambda g: (
                order.get(g[0][0], 99),
                tasks.get(g[0][1], 99),
                modes[g[0][2]],
                g[0][3] or 1 << 30,
            ),
        ):
            cells.append(_cell(self.model(key).name, key, task, mode, budget, fits))
        return cells

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "settings": self.settings,
            "models": [asdict(m) for m in self.models],
            "tasks": self.tasks,
            "fits": [asdict(f) for f in self.fits],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneReport:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"finetune results schema {data.get('schema')!r}; this version reads {SCHEMA}")
        return cls(
            settings=data["settings"],
            models=[ModelEntry(**m) for m in data["models"]],
            tasks=data["tasks"],
            fits=[Fit(**f) for f in data["fits"]],
        )

    def write(self, path: str | Path) -> None:
        """Write JSON atomically (a kill mid-write leaves the previous file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(self.to_dict(), out, indent=1, allow_nan=True)
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: str | Path) -> FinetuneReport:
        """Read a ``finetune.json``.

        Raises:
            ValueError: for a file that is not valid JSON or of another schema.
        """
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); remove it to start over") from error
        return cls.from_dict(data)


def best_fit(fits: list[Fit]) -> Fit | None:
    """The fit of best validation accuracy, the first on ties; never a diverged one (None if all are)."""
    scored = [f for f in fits if not f.diverged]
    return max(scored, key=lambda f: f.val_mean) if scored else None


def _cell(name: str, key: str, task: str, mode: str, budget: int, fits: list[Fit]) -> Cell:
    first_seed = min(f.seed for f in fits)
    grid_fits = [f for f in fits if f.seed == first_seed]
    best = best_fit(grid_fits) or grid_fits[0]
    chosen = best.hyper
    by_seed = {f.seed: f for f in fits if f.hyper == chosen}
    chosen_fits = [by_seed[s] for s in sorted(by_seed)]
    labels = list(best.test_accuracy)
    return Cell(
        model=name,
        model_key=key,
        task=task,
        mode=mode,
        budget=budget,
        test=Interval.of([f.test_mean for f in chosen_fits]),
        per_label={
            label: float(np.nanmean([f.test_accuracy[label] for f in chosen_fits])) for label in labels
        },
        chosen=dict(chosen),
        grid=[(dict(f.hyper), f.val_mean) for f in grid_fits],
        steps=float(np.mean([f.steps for f in chosen_fits])),
        seconds=float(np.mean([f.seconds for f in chosen_fits])),
        train_images=best.train_images,
        seeds={f.seed: f.test_mean for f in chosen_fits},
    )


def paired_difference(cell: Cell, reference: Cell) -> Interval:
    """``cell - reference`` test accuracy, paired by seed (the same labelled images and validation split).

    Seeds only one of the two has are left out.
    """
    common = sorted(set(cell.seeds) & set(reference.seeds))
    return Interval.of([cell.seeds[s] - reference.seeds[s] for s in common])
