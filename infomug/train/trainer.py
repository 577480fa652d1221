"""`train(config, run_dir) -> RunResult`: one code path from a laptop CPU to a ``torchrun`` GPU cluster.

A step is one optimizer update over ``train.batch_size`` images: ``accumulation_steps`` micro-batches on
each of ``world_size`` processes. Randomness that shapes the result (data order, augmentations, masks) is
drawn from generators seeded by (seed, step, ...), so a resumed run repeats an uninterrupted one bit for
bit on CPU, and a ``torchrun`` run sees the same global batches and masks as a single process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import RunConfig
from .distributed import init_distributed, resolve_device, shutdown_distributed
from .engine import RunResult, TrainingDiverged, TrainingRun
from .interrupt import TrainingInterrupted
from .resume import checkpoint_to_resume, config_from_files, resolve_config

__all__ = ["RunResult", "TrainingDiverged", "TrainingInterrupted", "train", "train_from_files"]


def train(
    config: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool | str | Path = True,
    progress: bool | None = None,
) -> RunResult:
    """Train ``config.model`` on ``config.data`` into ``run_dir``; resume if the folder holds a checkpoint.

    Under ``torchrun`` every process calls this; the process group is created (and destroyed) here if the
    caller did not create one. Only the main process writes files.

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
        CheckpointError: for a corrupt, foreign or unsafe checkpoint.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    checkpoint = checkpoint_to_resume(run_dir, resume)
    config = resolve_config(config, checkpoint, run_dir, explicit=not isinstance(resume, bool))
    device = resolve_device(config.train.device)
    created_group = init_distributed(device)
    try:
        return TrainingRun(config, run_dir, device, checkpoint, progress).fit(started)
    finally:
        if created_group:
            shutdown_distributed()


def train_from_files(
    config_path: str | Path | None, overrides: Sequence[str], run_dir: str | Path, **options: Any
) -> RunResult:
    """`train` with the config `config_from_files` gives (``options`` go to `train`)."""
    config = config_from_files(config_path, overrides, run_dir, options.get("resume", True))
    return train(config, run_dir, **options)
