"""`export_checkpoint`: a run's encoder as a plain timm model that describes its own preprocessing.

    export_checkpoint("runs/mae_cpu", "runs/mae_cpu/export")   # model.safetensors + config.json

The ``config.json`` (timm's hub convention, see `infomug.models.export`) records the input size and the
normalisation the run trained with, so ``timm.data.resolve_data_config`` rebuilds its eval pipeline.
"""

from __future__ import annotations

from pathlib import Path

import torch

from infomug.data import data_normalisation
from infomug.models.export import save_timm_encoder
from infomug.objectives import build_objective

from .checkpoint import load_model_weights, read_checkpoint_info
from .checkpoint_folders import CheckpointError, resolve_checkpoint
from .config import config_from_dict


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the encoder of an infomug checkpoint with timm's ``config.json`` (`save_timm_encoder`).

    Args:
        checkpoint: a run folder (its latest checkpoint), ``checkpoints/`` folder, step folder or the
            ``model.safetensors`` inside one.
        out: a folder (timm's local layout: ``model.safetensors`` + ``config.json``) or a ``.safetensors``
            file (``config.json`` beside it).

    Returns:
        The weights file; its metadata and the config's ``infomug`` entry name the source step folder,
        its step and objective.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        CheckpointError: it holds no (readable) infomug checkpoint.
        ValueError: ``out``'s folder has a ``config.json`` of other weights.
    """
    folder = resolve_checkpoint(checkpoint)
    info = read_checkpoint_info(folder)
    try:
        config = config_from_dict(info.config)
    except ValueError as error:
        raise CheckpointError(f"{folder} holds a run config this infomug cannot build: {error}") from error
    # The initial weights are overwritten at once: do not let building them advance the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        model = build_objective(config.model)
    load_model_weights(model, folder)
    mean, std = data_normalisation(config.data)
    source = {"source": str(folder.resolve()), "step": str(info.step), "objective": config.model.objective}
    return save_timm_encoder(model, out, extra_metadata=source, mean=mean, std=std)
