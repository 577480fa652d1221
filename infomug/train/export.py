"""`export_checkpoint`: a run's encoder as a plain timm model that describes its own preprocessing.

    export_checkpoint("runs/mae_cpu", "runs/mae_cpu/export")   # model.safetensors + config.json

The ``config.json`` (timm's hub convention, see `infomug.models.export`) records the input size and the
normalisation the run trained with, so ``timm.data.resolve_data_config`` rebuilds its eval pipeline.
"""

from __future__ import annotations

from pathlib import Path

from infomug.data import data_normalisation
from infomug.models.export import save_timm_encoder

from .checkpoint_model import load_checkpoint_model


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
    loaded = load_checkpoint_model(checkpoint)
    folder, info, config, model = loaded.folder, loaded.info, loaded.config, loaded.model
    mean, std = data_normalisation(config.data)
    source = {"source": str(folder.resolve()), "step": str(info.step), "objective": config.model.objective}
    return save_timm_encoder(model, out, extra_metadata=source, mean=mean, std=std)
