"""`run_sweep`: train every planned run, measure every checkpoint, then write the sweep's report.

The sweep folder is its own state, so a killed sweep resumes where it stopped:

    SWEEP/sweep.yaml            the spec (a rerun with another spec is refused)
    SWEEP/plan.json             runs and cells
    SWEEP/runs/<run>/           trainer run folders (a half-trained run resumes from its checkpoint)
    SWEEP/measure/<run>/        measure.json / measure.md of its last checkpoint (feature cache inside)
    SWEEP/status/<run>.json     state and wall time of each stage (one file per run: shards never race)
    SWEEP/ablation.{json,md}, SWEEP/*.png   the aggregated results (`infomug.ablation.report`)

Runs are independent, so ``shard=(i, n)`` lets ``n`` processes (or machines sharing the folder) split them.
A sweep without shards holds ``SWEEP/.infomug.lock`` (`infomug.run_lock`) while it runs: a second one on
the same folder is refused.
The files shards share (plan.json, the report) are written aside and renamed (`infomug.files`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infomug.files import write_atomically
from infomug.run_lock import FolderLock
from infomug.train import TrainingDiverged, latest_checkpoint, train
from infomug.train.config import config_diff, load_config
from infomug.train.distributed import init_distributed, resolve_device, shutdown_distributed

from .plan import (
    CAPTION_FREE_OBJECTIVES,
    PlannedRun,
    SweepPlan,
    config_value,
    main_overrides,
    plan_sweep,
    resolve_run_config,
)
from .spec import SweepSpec, spec_from_dict

logger = logging.getLogger(__name__)

SPEC_FILE = "sweep.yaml"
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class SweepLayout:
    """Where a sweep folder keeps each thing (see the module docstring)."""

    root: Path

    @property
    def spec(self) -> Path:
        """``SWEEP/sweep.yaml``."""
        return self.root / SPEC_FILE

    @property
    def plan(self) -> Path:
        """``SWEEP/plan.json``."""
        return self.root / PLAN_FILE

    def run_dir(self, name: str) -> Path:
        """The trainer's run folder of run ``name``."""
        return self.root / "runs" / name

    def measure_dir(self, name: str) -> Path:
        """The measure report folder of run ``name``."""
        return self.root / "measure" / name

    def status_file(self, name: str) -> Path:
        """The status record of run ``name``."""
        return self.root / "status" / f"{name}.json"


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _write_json(path: Path, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_status(layout: SweepLayout, name: str) -> dict[str, Any]:
    """The status record of run ``name`` (empty before it started).

    Raises:
        ValueError: if the status file is not a JSON object (delete it to redo the run's missing stages).
    """
    path = layout.status_file(name)
    if not path.is_file():
        return {}
    try:
        status = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to redo what it records") from None
    if not isinstance(status, dict):
        raise ValueError(f"{path} is not a status record; delete it to redo what it records")
    return status


def _step_of(checkpoint: Path | None) -> int | None:
    if checkpoint is None:
        return None
    try:
        return int(checkpoint.name.rpartition("_")[2])
    except ValueError:
        return None


def _differing(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two nested mappings differ (``measure.budget_set.images``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [key for key in new if key not in old]
        return [found for key in keys for found in _differing(old.get(key), new.get(key), f"{path}{key}.")]
    return [] if old == new else [path.rstrip(".")]


def prepare_sweep_folder(spec: SweepSpec, out: str | Path) -> tuple[SweepLayout, SweepPlan]:
    """Plan ``spec`` and write (or check) ``sweep.yaml`` and ``plan.json`` in ``out``.

    Raises:
        ValueError: if ``out`` holds a sweep with another spec (start a new folder, or rerun with the same
            file and settings), a started run's saved config differs from what the spec resolves to now
            (its base run config was edited), or the spec's runs are invalid.
    """
    layout = SweepLayout(Path(out))
    plan = plan_sweep(spec)
    wanted = spec.to_dict()
    if layout.spec.is_file():
        existing = yaml.safe_load(layout.spec.read_text()) or {}
        if existing != wanted:
            changed = ", ".join(_differing(existing, wanted))
            raise ValueError(
                f"{layout.root} holds a sweep with other settings (differing: {changed}); resume it with the"
                " same file and options, or choose a new --out"
            )
        _check_started_runs(spec, layout, plan)
    elif _is_main_process():
        write_atomically(layout.spec, yaml.safe_dump(wanted, sort_keys=False))
    if _is_main_process():
        _write_json(layout.plan, plan.to_dict())
    return layout, plan


def _check_started_runs(spec: SweepSpec, layout: SweepLayout, plan: SweepPlan) -> None:
    """Refuse to resume when a started run's saved config is not what the spec now resolves to: the base
    run config file was edited after the sweep began (sweep.yaml holds its path, not its contents)."""
    for run in plan.runs:
        saved = layout.run_dir(run.name) / "config.yaml"
        if not saved.is_file():
            continue
        # The runner sets train.device from --device, which may change between calls.
        differing = [
            key
            for key in config_diff(load_config(saved), resolve_run_config(spec, run.overrides))
            if key != "train.device"
        ]
        if differing:
            raise ValueError(
                f"run {run.name} of {layout.root} trained with other settings than the sweep now resolves to"
                f" (differing: {', '.join(differing)}): was {spec.base} edited? Restore it, or choose a new"
                " --out"
            )


def load_sweep_folder(out: str | Path) -> tuple[SweepSpec, SweepLayout, SweepPlan]:
    """Read back the spec and plan of an existing sweep folder.

    Raises:
        FileNotFoundError: if ``out`` is not a sweep folder.
        ValueError: if its sweep.yaml or plan.json cannot be read (naming the file).
    """
    layout = SweepLayout(Path(out))
    if not layout.spec.is_file() or not layout.plan.is_file():
        raise FileNotFoundError(f"{layout.root} is not a sweep folder (no {SPEC_FILE} / {PLAN_FILE})")
    try:
        values = yaml.safe_load(layout.spec.read_text())
        if not isinstance(values, dict):
            raise ValueError("the top level must be a mapping")
        spec = spec_from_dict(values, check_base=False)
    except (yaml.YAMLError, ValueError) as error:
        raise ValueError(f"{layout.spec}: {error}") from error
    try:
        plan = SweepPlan.from_dict(json.loads(layout.plan.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{layout.plan} is not a sweep plan ({error!r})") from error
    return spec, layout, plan


def select_runs(
    plan: SweepPlan, only: Sequence[str] = (), shard: tuple[int, int] | None = None
) -> list[PlannedRun]:
    """The runs this process handles: those matching any ``only`` glob, then every n-th from i of them.

    Raises:
        ValueError: for a bad shard or globs that match no run.
    """
    runs = list(plan.runs)
    if only:
        runs = [run for run in runs if any(fnmatch.fnmatchcase(run.name, pattern) for pattern in only)]
        if not runs:
            raise ValueError(f"--only {list(only)} matches no run; runs: {[r.name for r in plan.runs]}")
    if shard is not None:
        index, count = shard
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
        runs = runs[index::count]
    return runs


def _measure_data_overrides(spec: SweepSpec, run: PlannedRun) -> list[str]:
    """Every checkpoint is measured on the same eval data: the base data's captions, even for noise runs
    (an explicit ``measure.data_overrides`` setting still wins: it comes last)."""
    overrides = []
    noise = spec.caption_noise
    if noise is not None and run.caption_noise is not None:
        # The main run's overrides, not the noise run's with every setting of the fraction dropped: the
        # shared overrides may set the base fraction too.
        config = resolve_run_config(spec, main_overrides(spec, run.variant, run.seed))
        overrides.append(f"{noise.setting}={config_value(config, f'data.{noise.setting}')!r}")
    return [*overrides, *spec.measure.data_overrides]


def _train_run(
    spec: SweepSpec, layout: SweepLayout, run: PlannedRun, device: str | None, progress: bool | None
) -> str:
    status = read_status(layout, run.name)
    if status.get("state") == "diverged":
        # On CPU a rerun would diverge at the same step again; delete the status file to retry it.
        logger.warning("run %s diverged before (%s); skipped", run.name, status.get("error"))
        return "diverged"
    overrides = list(run.overrides) + ([f"train.device={device}"] if device else [])
    config = resolve_run_config(spec, tuple(overrides))
    run_dir = layout.run_dir(run.name)
    if _step_of(latest_checkpoint(run_dir)) == config.train.steps and (run_dir / "checkpoints").is_dir():
        return "trained"
    started = time.perf_counter()
    try:
        result = train(config, run_dir, resume=True, progress=progress)
    except TrainingDiverged as error:
        status.update(state="diverged", error=str(error))
        if _is_main_process():
            _write_json(layout.status_file(run.name), status)
        logger.error("run %s diverged: %s (the sweep goes on; its cells are left out)", run.name, error)
        return "diverged"
    status["train_seconds"] = status.get("train_seconds", 0.0) + (time.perf_counter() - started)
    status.update(state="trained", steps=result.steps, error=None)
    if _is_main_process():
        _write_json(layout.status_file(run.name), status)
    return "trained"


def _finished(spec: SweepSpec, layout: SweepLayout, run: PlannedRun) -> bool:
    """Measured at its last step: nothing to redo, even when its checkpoints were deleted to save space."""
    if read_status(layout, run.name).get("state") != "measured":
        return False
    steps = resolve_run_config(spec, run.overrides).train.steps
    return _measured_step(layout.measure_dir(run.name)) == steps


def _measured_step(measure_dir: Path) -> int | None:
    path = measure_dir / "measure.json"
    if not path.is_file():
        return None
    try:
        models = json.loads(path.read_text())["models"]
        return int(models[0]["step"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _measure_run(
    spec: SweepSpec, layout: SweepLayout, run: PlannedRun, device: str | None, progress: bool | None
) -> None:
    from infomug.measure import measure
    from infomug.measure.budget import get_budget

    run_dir = layout.run_dir(run.name)
    target = layout.measure_dir(run.name)
    final_step = _step_of(latest_checkpoint(run_dir))
    if spec.measure.finetune is not None and final_step is not None:
        _finetune_run(spec, run_dir, target, device, progress)
    if final_step is not None and _measured_step(target) == final_step:
        status = read_status(layout, run.name)
        if status.get("state") != "measured" and _is_main_process():
            # Killed between writing measure.json and this status: the report waits on the status.
            status["state"] = "measured"
            _write_json(layout.status_file(run.name), status)
        return
    started = time.perf_counter()
    settings = spec.measure
    measure(
        run_dir,
        settings.data,
        layers=settings.layers,
        pool=settings.pool,
        budget=get_budget(settings.budget, **dict(settings.budget_set)),
        data_overrides=_measure_data_overrides(spec, run),
        anchors=False,  # the sweep's own anchor runs are for the fair-ablation issue; one per run is waste
        out=target,
        device=device,
        progress=progress,
    )
    if _is_main_process():
        status = read_status(layout, run.name)
        status["measure_seconds"] = status.get("measure_seconds", 0.0) + (time.perf_counter() - started)
        status["state"] = "measured"
        _write_json(layout.status_file(run.name), status)


def _finetune_run(
    spec: SweepSpec, run_dir: Path, target: Path, device: str | None, progress: bool | None
) -> None:
    """Fine-tune the run's last checkpoint into ``target/finetune`` (resumes; a no-op once complete)."""
    from infomug.finetune import build_settings, finetune

    if not _is_main_process():
        return
    finetune(
        [run_dir],
        build_settings(spec.measure.finetune),
        out=target / "finetune",
        progress=progress is not False,
        device=device or "cpu",
    )


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    only: Sequence[str] = (),
    shard: tuple[int, int] | None = None,
    device: str | None = None,
    progress: bool | None = None,
    report: bool = True,
) -> Path | None:
    """Train and measure every run of ``spec`` (or this process's share), resuming what ``out`` holds.

    A run measured at its last step is done, even once its checkpoints are deleted. A run whose training
    diverges is recorded as ``diverged`` and the sweep goes on; later calls do not retry it (delete its
    ``status/<run>.json`` to). The report is written once every run of the plan is measured or diverged.

    Args:
        spec: The sweep.
        out: The sweep folder (see the module docstring).
        only: Glob patterns of run names to handle (default all).
        shard: ``(i, n)``: handle every n-th selected run from the i-th.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` for training and measuring; None = the first run
            config's ``train.device``.
        progress: Progress bars (default: when stderr is a terminal).
        report: Write the aggregated report when every run of the plan is measured.

    Returns:
        The report's markdown file if written, else None.

    Raises:
        ValueError: for a spec that does not match ``out``'s (or a base run config edited since its runs
            started), invalid run configs, or a bad selection.
        FolderInUse: without ``shard``, another process runs a sweep in ``out``; with one, another
            process trains the same run.
    """
    # Shards share the folder by design (each run folder has its own lock, taken by `train`); a whole
    # sweep is one process's alone. Under torchrun, rank 0 holds it.
    lock = FolderLock(out, "infomug ablate") if shard is None and _is_main_process() else None
    with lock or contextlib.nullcontext():
        layout, plan = prepare_sweep_folder(spec, out)
        runs = select_runs(plan, only, shard)
        device = device or resolve_run_config(spec, plan.runs[0].overrides).train.device
        created_group = init_distributed(resolve_device(device))
        try:
            for number, run in enumerate(runs, start=1):
                if _finished(spec, layout, run):
                    logger.info("run %d/%d %s: measured before", number, len(runs), run.name)
                    continue
                logger.info("run %d/%d %s: training", number, len(runs), run.name)
                if _train_run(spec, layout, run, device, progress) == "diverged":
                    continue
                logger.info("run %d/%d %s: measuring", number, len(runs), run.name)
                _measure_run(spec, layout, run, device, progress)
        finally:
            if created_group:
                shutdown_distributed()
        if not report or not _is_main_process():
            return None
        missing = [
            run.name
            for run in plan.runs
            if read_status(layout, run.name).get("state") not in ("measured", "diverged")
        ]
        if missing:
            logger.info(
                "report not written yet: %d runs not measured (%s ...)", len(missing), ", ".join(missing[:3])
            )
            return None
        from .report import write_sweep_report

        return write_sweep_report(layout.root)


__all__ = [
    "CAPTION_FREE_OBJECTIVES",
    "SweepLayout",
    "load_sweep_folder",
    "prepare_sweep_folder",
    "read_status",
    "run_sweep",
    "select_runs",
]
