"""``model.init_from``: start a run's encoder from other weights, as MAE and timm users continue pre-training.

The weights may be another run's checkpoint (a run folder, step folder or ``model.safetensors``: its
encoder is taken, decoders and heads are not), an `infomug export` folder (or its ``config.json``), or a
timm ViT state dict (``.safetensors``, or ``.pt`` / ``.pth`` / ``.bin`` read with
``torch.load(weights_only=True)``). A classifier head (``head.weight``, ``head.bias``) is dropped: the
encoder has none. Everything else loads strictly, every key and shape checked first, so weights of
another architecture are an error naming the keys, never a partial load.

Only a fresh run reads ``init_from``; a resumed run restores its own weights. What was loaded is recorded
in ``RUN/init_from.json`` (the resolved file, its SHA-256, the source's step), beside the config that
names the path.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from infomug.files import write_atomically
from infomug.models.export import CONFIG_FILE, find_timm_config
from infomug.models.weights import load_state_strict, read_state_dict

from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import read_checkpoint_info
from .checkpoint_folders import MODEL_FILE, TRAIN_STATE_FILE, CheckpointError, resolve_checkpoint
from .checksums import file_sha256, verify_file

logger = logging.getLogger(__name__)

INIT_RECORD_FILE = "init_from.json"
ENCODER_PREFIX = "encoder.vit."  # where an objective's state dict keeps the timm ViT
CLASSIFIER_KEYS = ("head.weight", "head.bias")
_ARCHITECTURE_HINT = (
    "The encoder is built from model.img_size, patch_size, in_chans, embed_dim, depth, num_heads and"
    " mlp_ratio: set them to those of the weights (e.g. the same model.preset)"
)


def read_encoder_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The timm state dict of the encoder stored at ``path``, and a record of where it came from.

    Args:
        path: a run folder, ``checkpoints/`` folder or step folder (an infomug checkpoint: its encoder),
            an export folder or its ``config.json``, or a weights file (a checkpoint's or an export's
            ``model.safetensors``, or any timm ViT state dict).

    Returns:
        ``(state, record)``: ``state`` has timm `VisionTransformer` keys (``cls_token``, ``blocks.0...``);
        ``record`` holds ``init_from`` (``path`` as given), ``kind``, ``file`` (resolved), ``sha256``,
        and ``step`` / ``objective`` for a checkpoint, ``dropped`` for a classifier head left out.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: a folder that holds no checkpoint or export, or a broken checkpoint.
        ValueError: a file that is not a safe state dict (see `infomug.models.weights.read_state_dict`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    record: dict[str, Any] = {"init_from": str(path)}
    if (path.is_dir() and (path / CONFIG_FILE).is_file()) or path.name == CONFIG_FILE:
        _, file = find_timm_config(path)
        record["kind"] = "infomug export"
        state = read_state_dict(file)
    elif path.is_dir() or path.name == TRAIN_STATE_FILE or _is_checkpoint_file(path):
        folder = resolve_checkpoint(path)
        info = read_checkpoint_info(folder)
        file = folder / MODEL_FILE
        record.update(kind="infomug checkpoint", step=info.step, objective=info.config["model"]["objective"])
        verify_file(folder, MODEL_FILE)
        state = read_state_dict(file)
    else:
        file = path
        record["kind"] = "state dict"
        state = read_state_dict(file)
    if any(key.startswith(ENCODER_PREFIX) for key in state):
        # An objective's state dict (a checkpoint's, or one saved by hand): its encoder only.
        state = {
            key[len(ENCODER_PREFIX) :]: value
            for key, value in state.items()
            if key.startswith(ENCODER_PREFIX)
        }
    dropped = [key for key in CLASSIFIER_KEYS if key in state]
    if dropped:
        state = {key: value for key, value in state.items() if key not in dropped}
        record["dropped"] = dropped
    record.update(file=str(file.resolve()), sha256=file_sha256(file))
    return state, record


def init_encoder_from(model: nn.Module, path: str | Path, record_file: Path | None = None) -> dict[str, Any]:
    """Load the encoder weights at ``path`` (see `read_encoder_weights`) into ``model.encoder``, strictly.

    Args:
        model: an objective (its ``encoder.vit`` is loaded) or a `MaskedViTEncoder`.
        path: ``model.init_from``.
        record_file: where to write the record as JSON (the main process's ``RUN/init_from.json``).

    Returns:
        The record of `read_encoder_weights`.

    Raises:
        FileNotFoundError, CheckpointError: as `read_encoder_weights`.
        ValueError: the weights do not fit the encoder (naming the mismatched, missing and unexpected
            keys); ``model`` is then left untouched.
    """
    vit = getattr(getattr(model, "encoder", model), "vit", None)
    if not isinstance(vit, nn.Module):
        raise ValueError(f"model.init_from needs a model with an encoder, got {type(model).__name__}")
    try:
        state, record = read_encoder_weights(path)
    except (FileNotFoundError, ValueError) as error:  # CheckpointError is a ValueError
        raise type(error)(f"model.init_from: {error}") from error
    load_state_strict(vit, state, f"model.init_from ({path})", hint=_ARCHITECTURE_HINT)
    source = f"step {record['step']} of " if "step" in record else ""
    logger.info("encoder initialised from %s%s (%s)", source, record["file"], record["kind"])
    if record.get("dropped"):
        logger.info("left out the classifier head of %s: %s", path, ", ".join(record["dropped"]))
    if record_file is not None:
        write_atomically(record_file, json.dumps(record, indent=2) + "\n")
    return record


def _is_checkpoint_file(path: Path) -> bool:
    """Whether ``path`` is the ``model.safetensors`` of an infomug checkpoint (by its metadata)."""
    if path.suffix != ".safetensors":
        return False
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == CHECKPOINT_FORMAT
    except SafetensorError as error:
        raise CheckpointError(f"{path} is truncated or corrupt: {error}") from error
