"""From a `SweepSpec` to the runs to train (each once) and the cells of the tables that read them.

A cell is (variant, caption noise, seed). The main sweep's cells have ``caption_noise=None`` (the base
data's captions). A caption-noise cell gets its own run, unless the fraction equals the base data's (the
main run is the same training) or the variant's objective never reads captions (``mae`` and ``simclr``
train on the same images whatever the captions say, so the main run is reused and the report says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from infomug.train.config import RunConfig, load_config

from .spec import SweepSpec

CAPTION_FREE_OBJECTIVES = frozenset({"mae", "simclr"})


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the sweep (a folder ``SWEEP/runs/<name>``).

    Attributes:
        name: Folder name, ``<variant>-s<seed>`` or ``<variant>-noise<fraction>-s<seed>``.
        variant: The variant it trains.
        seed: ``train.seed``.
        caption_noise: The irrelevant-caption fraction it trains at, None for the base data's.
        overrides: Every run-config override after the base file, in order.
        objective: ``model.objective`` of the resolved config.
        caption_loss_weight: lambda_L for ``mug``; 0 for ``mae``; None for contrastive objectives.
    """

    name: str
    variant: str
    seed: int
    caption_noise: float | None
    overrides: tuple[str, ...]
    objective: str
    caption_loss_weight: float | None


@dataclass(frozen=True)
class Cell:
    """One (variant, caption noise, seed) entry of the results, read from run ``run``."""

    variant: str
    caption_noise: float | None
    seed: int
    run: str


@dataclass(frozen=True)
class SweepPlan:
    """The runs to train, in order, and the cells that read them."""

    runs: tuple[PlannedRun, ...]
    cells: tuple[Cell, ...]

    def run(self, name: str) -> PlannedRun:
        """The planned run named ``name``.

        Raises:
            KeyError: if the plan has no such run.
        """
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(f"no run named {name!r} in the plan")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``plan.json``); `from_dict` rebuilds the same plan."""
        return {
            "runs": [{**asdict(run), "overrides": list(run.overrides)} for run in self.runs],
            "cells": [asdict(cell) for cell in self.cells],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepPlan:
        """Inverse of `to_dict`.

        Raises:
            KeyError, TypeError: for a dict that is not a plan.
        """
        runs = tuple(PlannedRun(**{**run, "overrides": tuple(run["overrides"])}) for run in data["runs"])
        return cls(runs=runs, cells=tuple(Cell(**cell) for cell in data["cells"]))


def lambda_l(config: RunConfig) -> float | None:
    """MUG's caption weight lambda_L of a run: its value for ``mug``, 0 for ``mae``, else None."""
    objective = config.model.objective
    if objective == "mug":
        return float(config.model.caption_loss_weight)
    return 0.0 if objective == "mae" else None


def _fraction_text(fraction: float) -> str:
    return f"{fraction:g}"


def config_value(config: RunConfig, dotted: str) -> Any:
    """The value of the run-config field at the dotted path ``dotted`` (e.g. ``"train.steps"``).

    Raises:
        ValueError: if a part of the path is not a field.
    """
    node: Any = config
    for part in dotted.split("."):
        if not hasattr(node, part):
            raise ValueError(f"{dotted} is not a run-config setting ({part!r} unknown)")
        node = getattr(node, part)
    return node


def _noise_fraction(config: RunConfig, setting: str) -> float:
    try:
        value = config_value(config, f"data.{setting}")
    except ValueError as error:
        raise ValueError(f"caption_noise.setting: data.{setting} is not a data setting ({error})") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"caption_noise.setting: data.{setting} is {value!r}, not a fraction")
    return float(value)


def resolve_run_config(spec: SweepSpec, overrides: tuple[str, ...]) -> RunConfig:
    """The run config ``spec.base`` + ``overrides``; errors name the sweep.

    Raises:
        ValueError: for an override the trainer's config rejects.
    """
    try:
        return load_config(spec.base, list(overrides))
    except ValueError as error:
        raise ValueError(f"sweep {spec.name!r}: {error}") from error


def main_overrides(spec: SweepSpec, variant: str, seed: int) -> tuple[str, ...]:
    """The overrides of the main run of ``variant`` at ``seed``; a noise run appends its fraction to them."""
    return (*spec.overrides, *spec.variants[variant], f"train.seed={seed}")


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """Every run and cell of ``spec``, main sweep first, then the noise runs; seed-major, so an
    interrupted sweep has whole seeds.

    Raises:
        ValueError: if a run config is invalid, the caption-noise setting is not a data setting, or two
            runs get the same folder name (fractions equal to 6 digits; a variant named like a noise run).
    """
    runs: list[PlannedRun] = []
    cells: list[Cell] = []
    main: dict[tuple[str, int], PlannedRun] = {}
    for seed in spec.seeds:
        for variant in spec.variants:
            overrides = main_overrides(spec, variant, seed)
            config = resolve_run_config(spec, overrides)
            run = PlannedRun(
                name=f"{variant}-s{seed}",
                variant=variant,
                seed=seed,
                caption_noise=None,
                overrides=overrides,
                objective=config.model.objective,
                caption_loss_weight=lambda_l(config),
            )
            runs.append(run)
            main[variant, seed] = run
            cells.append(Cell(variant=variant, caption_noise=None, seed=seed, run=run.name))
    noise = spec.caption_noise
    if noise is None:
        return _checked(SweepPlan(runs=tuple(runs), cells=tuple(cells)))
    for seed in spec.seeds:
        for variant in noise.variants:
            base_run = main[variant, seed]
            base_value = _noise_fraction(resolve_run_config(spec, base_run.overrides), noise.setting)
            for fraction in noise.fractions:
                reuse = fraction == base_value or base_run.objective in CAPTION_FREE_OBJECTIVES
                if reuse:
                    cells.append(Cell(variant=variant, caption_noise=fraction, seed=seed, run=base_run.name))
                    continue
                overrides = (*base_run.overrides, f"data.{noise.setting}={fraction!r}")
                resolve_run_config(spec, overrides)
                run = PlannedRun(
                    name=f"{variant}-noise{_fraction_text(fraction)}-s{seed}",
                    variant=variant,
                    seed=seed,
                    caption_noise=fraction,
                    overrides=overrides,
                    objective=base_run.objective,
                    caption_loss_weight=base_run.caption_loss_weight,
                )
                runs.append(run)
                cells.append(Cell(variant=variant, caption_noise=fraction, seed=seed, run=run.name))
    return _checked(SweepPlan(runs=tuple(runs), cells=tuple(cells)))


def _checked(plan: SweepPlan) -> SweepPlan:
    # Two runs in one folder would resume, and overwrite, each other.
    names = [run.name for run in plan.runs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"runs {repeated} would share a folder: give the variants, or the caption-noise fractions,"
            " names that differ"
        )
    return plan
