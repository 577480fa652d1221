"""Where a run starts: the checkpoint it resumes and the config it runs, from files, overrides and folders.

A run folder's own latest checkpoint is resumed with the same config, so a killed run repeats the
uninterrupted one. A checkpoint named explicitly may be resumed with other optimiser and loop settings
(`CHANGEABLE_ON_RESUME`), e.g. a lower learning rate from the last good checkpoint after a divergence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from infomug import dist

from .checkpoint import read_checkpoint_info
from .checkpoint_folders import latest_checkpoint, resolve_checkpoint
from .checksums import newest_intact_checkpoint
from .config import RunConfig, apply_overrides, config_diff, config_from_dict, config_to_dict, load_config

logger = logging.getLogger(__name__)

# What may differ from the config of a checkpoint named explicitly (e.g. the last good one after a
# divergence): how the rest of the run optimises, runs and reports, not what its weights, tokens, batches,
# data position and eval loss (which picks the best checkpoint) mean. Resuming a run folder's own latest
# checkpoint needs the same config.
CHANGEABLE_ON_RESUME = (
    "optim.",
    "train.steps",
    "train.num_workers",
    "train.device",
    "train.precision",
    "train.log_every",
    "train.eval_every",
    "train.sample_every",
    "train.checkpoint_every",
    "train.checkpoint_minutes",
    "train.keep_checkpoints",
    "train.gradient_checkpointing",
    "train.tensorboard",
)


def checkpoint_to_resume(run_dir: Path, resume: bool | str | Path) -> Path | None:
    """The step folder a run resumes (``resume`` as in `infomug.train.train`); None for a fresh start.

    A run folder whose latest checkpoint is damaged (a file that does not match its checksum) resumes from
    the newest intact one before it, with a warning; a checkpoint named explicitly is taken as it is (its
    loaders refuse it if it is damaged).

    Raises:
        ValueError: ``resume=False`` and ``run_dir`` already holds checkpoints.
        FileNotFoundError: a ``resume`` path that does not exist.
        CheckpointError: a ``resume`` path that holds no checkpoint; a run folder none of whose
            checkpoints is intact.
    """
    if resume is True:
        latest = latest_checkpoint(run_dir)
        return newest_intact_checkpoint(run_dir, latest) if latest is not None else None
    if resume is False:
        if latest_checkpoint(run_dir) is not None:
            raise ValueError(f"{run_dir} already holds checkpoints; resume it or choose another run folder")
        return None
    return resolve_checkpoint(resume)


def resolve_config(
    config: RunConfig | None, checkpoint: Path | None, run_dir: Path, explicit: bool
) -> RunConfig:
    """The config a run trains with: ``config``, checked against the ``checkpoint`` it resumes.

    ``config=None`` takes the checkpoint's config, else the run folder's ``config.yaml`` (a run stopped
    before its first checkpoint), else the defaults.

    Args:
        explicit: the checkpoint was named (not found in ``run_dir``): the settings in
            `CHANGEABLE_ON_RESUME` may differ from its config (a warning lists them).

    Raises:
        ValueError: ``config`` differs from the checkpoint's beyond what may change (names the keys).
        CheckpointError: the checkpoint's metadata is unreadable.
    """
    if checkpoint is None:
        if config is None and (run_dir / "config.yaml").is_file():
            # A run stopped before its first checkpoint starts over with its own config, not the defaults.
            return load_config(run_dir / "config.yaml")
        return config if config is not None else RunConfig()
    saved = config_from_dict(read_checkpoint_info(checkpoint).config)
    if config is None:
        return saved
    differences = config_diff(saved, config)
    allowed = [key for key in differences if explicit and key.startswith(CHANGEABLE_ON_RESUME)]
    refused = [key for key in differences if key not in allowed]
    if refused:
        changeable = ", ".join(key + "*" if key.endswith(".") else key for key in CHANGEABLE_ON_RESUME)
        how = (
            f"Only {changeable} may change when resuming a checkpoint named explicitly"
            if explicit
            else "Resuming a run folder needs the same config; name a checkpoint to resume (changing the"
            " optimiser and loop settings only) or start a new run folder"
        )
        raise ValueError(
            f"the config differs from the checkpoint being resumed ({checkpoint}) in: {', '.join(refused)}."
            f" {how}"
        )
    if allowed and dist.is_main_process():
        logger.warning("resuming %s with changed settings: %s", checkpoint, ", ".join(allowed))
    return config


def config_from_files(
    config_path: str | Path | None,
    overrides: Sequence[str],
    run_dir: str | Path | None,
    resume: bool | str | Path = True,
) -> RunConfig:
    """The config of ``config_path`` plus dotted ``overrides``; without a file, the overrides apply to the
    config of the checkpoint ``resume`` selects in ``run_dir`` (see `train`), else to the run folder's own
    ``config.yaml``, else to the defaults.

    So ``--set optim.lr=1e-4 --resume CKPT`` changes one setting of the checkpoint's run, and a run folder
    is resumed with its own config when nothing is given.

    Raises:
        FileNotFoundError: if ``config_path`` or the checkpoint ``resume`` names does not exist.
        ValueError: for an invalid config or override (see `load_config`), or ``resume=False`` on a run
            folder that holds checkpoints.
        CheckpointError: for a corrupt or foreign checkpoint.
    """
    if config_path is not None:
        return load_config(config_path, overrides)
    checkpoint = None
    if not isinstance(resume, bool):
        checkpoint = resolve_checkpoint(resume)
    elif run_dir is not None:
        checkpoint = checkpoint_to_resume(Path(run_dir), resume)
    if checkpoint is not None:
        base = read_checkpoint_info(checkpoint).config
    elif run_dir is not None and (Path(run_dir) / "config.yaml").is_file():
        base = config_to_dict(load_config(Path(run_dir) / "config.yaml"))
    else:
        base = {}
    return config_from_dict(apply_overrides(base, overrides))
