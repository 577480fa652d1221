"""`load_checkpoint_model`: an infomug checkpoint as the objective it was trained as, weights loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from infomug.objectives import build_objective

from .checkpoint import CheckpointInfo, load_model_weights, read_checkpoint_info
from .checkpoint_folders import CheckpointError, resolve_checkpoint
from .config import RunConfig, config_from_dict


@dataclass(frozen=True)
class CheckpointModel:
    """A checkpoint's objective, rebuilt from its own config, with its weights.

    Attributes:
        folder: The step folder read.
        info: Its `CheckpointInfo` (step, config as stored).
        config: The run config, built.
        model: The objective (encoder and decoders), on the CPU, in train mode.
    """

    folder: Path
    info: CheckpointInfo
    config: RunConfig
    model: nn.Module


def load_checkpoint_model(path: str | Path) -> CheckpointModel:
    """Rebuild the objective a checkpoint was trained as and load its weights (checksums verified).

    Args:
        path: A run folder or ``checkpoints/`` folder (their ``latest`` step), a step folder, or the
            ``model.safetensors`` inside one.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: (a ValueError) no checkpoint there; a truncated, corrupt or foreign weights file;
            a config this infomug cannot build; weights that do not fit.
    """
    folder = resolve_checkpoint(path)
    info = read_checkpoint_info(folder)
    try:
        config = config_from_dict(info.config)
    except ValueError as error:
        raise CheckpointError(f"{folder} holds a run config this infomug cannot build: {error}") from error
    # The initial weights are overwritten at once: do not let building them advance the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        model = build_objective(config.model)
    load_model_weights(model, folder)
    return CheckpointModel(folder=folder, info=info, config=config, model=model)
