"""`train(config, run_dir) -> RunResult`: one code path from a laptop CPU to a ``torchrun`` GPU cluster.

A step is one optimizer update over ``train.batch_size`` images: ``accumulation_steps`` micro-batches on
each of ``world_size`` processes. Randomness that shapes the result (data order, augmentations, masks) is
drawn from generators seeded by (seed, step, ...), so a resumed run repeats an uninterrupted one bit for
bit on CPU, and a ``torchrun`` run sees the same global batches and masks as a single process.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infomug import dist
from infomug.run_lock import LOCK_FILE, FolderLock

from .checkpoint_folders import remove
from .config import RunConfig
from .distributed import init_distributed, resolve_device, shutdown_distributed
from .engine import RunResult, TrainingDiverged, TrainingRun
from .interrupt import TrainingInterrupted
from .resume import checkpoint_to_resume, config_from_files, resolve_config

__all__ = [
    "RunResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "run_folder_lock",
    "train",
    "train_from_files",
]


def train(
    config: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool | str | Path = True,
    progress: bool | None = None,
) -> RunResult:
    """Train ``config.model`` on ``config.data`` into ``run_dir``; resume if the folder holds a checkpoint.

    Under ``torchrun`` every process calls this; the process group is created (and destroyed) here if the
    caller did not create one. Only the main process writes files, and it holds the run folder's lock
    (`run_folder_lock`) throughout, so a second run on the same folder is refused. A start that fails
    (a bad config, missing data...) in a fresh folder removes what it wrote there.

    Args:
        config: the run's config; ``None`` = the checkpoint's config when resuming, else the run folder's
            ``config.yaml`` if it has one (a run stopped before its first checkpoint), else defaults.
        run_dir: the run folder (created): ``config.yaml``, ``metrics.jsonl``, ``loss.png``,
            ``samples/``, ``checkpoints/``, ``tokenizer.json`` (trained BPE), ``tensorboard/`` (if on).
        resume: ``True`` resumes from the folder's latest checkpoint if there is one (same config
            needed); ``False`` refuses a folder that already holds checkpoints; a path resumes from that
            checkpoint, of this or another run, with the same config except for the optimiser and loop
            settings in `infomug.train.resume.CHANGEABLE_ON_RESUME` (e.g. a lower ``optim.lr`` after a
            divergence).
        progress: show a progress bar; ``None`` = only when stderr is a terminal.

    Returns:
        A `RunResult`.

    Raises:
        ValueError: for an invalid config, a config that differs from the checkpoint being resumed
            (beyond what ``resume`` allows), a run folder with checkpoints and ``resume=False``, a batch
            size the processes cannot split, a split smaller than one global micro-batch, or bad data.
        TrainingDiverged: when a loss term or the gradient norm is non-finite (the last good checkpoint
            is kept).
        TrainingInterrupted: on SIGINT (Ctrl-C, a notebook's interrupt) or SIGTERM, after a checkpoint
            at the next step boundary; calling `train` again on ``run_dir`` resumes from it.
        CheckpointError: for a corrupt, foreign or unsafe checkpoint, or one with non-finite weights.
        FolderInUse: another process is training in ``run_dir`` (names its PID and host).
        OSError: writing into ``run_dir`` failed (read-only, full...): names the file; the checkpoints
            written before are intact, and calling `train` again resumes from the latest.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    fresh = created or (run_dir.is_dir() and all(p.name == LOCK_FILE for p in run_dir.iterdir()))
    lock = run_folder_lock(run_dir)
    created_group = failed_start = False
    try:
        with lock or contextlib.nullcontext():
            try:
                checkpoint = checkpoint_to_resume(run_dir, resume)
                config = resolve_config(config, checkpoint, run_dir, explicit=not isinstance(resume, bool))
                device = resolve_device(config.train.device)
                created_group = init_distributed(device)
                run = TrainingRun(config, run_dir, device, checkpoint, progress)
            except Exception:
                # A run that never started leaves a fresh folder as it found it: no config.yaml or
                # tokenizer.json to be taken for a run's own on the next call.
                failed_start = fresh and lock is not None
                if failed_start:
                    for path in run_dir.iterdir():
                        if path.name != LOCK_FILE:
                            remove(path)
                raise
            return run.fit(started)
    finally:
        if created_group:
            shutdown_distributed()
        if failed_start and created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def run_folder_lock(run_dir: Path) -> FolderLock | None:
    """The lock of ``run_dir`` for the main process (`infomug.run_lock.FolderLock`); None for the others.

    Under ``torchrun`` only rank 0 takes it (the others write nothing): rank 0 is read from torchrun's
    ``RANK``, as the process group is not there yet.
    """
    main = dist.is_main_process() if dist.is_distributed() else int(os.environ.get("RANK", "0")) == 0
    return FolderLock(run_dir, "infomug train") if main else None


def train_from_files(
    config_path: str | Path | None, overrides: Sequence[str], run_dir: str | Path, **options: Any
) -> RunResult:
    """`train` with the config `config_from_files` gives (``options`` go to `train`)."""
    config = config_from_files(config_path, overrides, run_dir, options.get("resume", True))
    return train(config, run_dir, **options)
