"""Export the encoder as a plain timm `VisionTransformer` checkpoint (safetensors + kwargs in metadata).

Anyone can then load it without infomug::

    model = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs)
    model.load_state_dict(safetensors.torch.load_file(path))  # strict

where ``kwargs = json.loads(metadata["timm_kwargs"])`` (``img_size``, ``patch_size``, ``embed_dim``, ...,
``num_classes=0``). The fixed sine-cosine positions travel as ``pos_embed``, an ordinary timm tensor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .encoder import MaskedViTEncoder

TIMM_ARCHITECTURE = "vit_base_patch16_224"
FORMAT = "infomug-timm-vit"


def _encoder_of(model: nn.Module) -> MaskedViTEncoder:
    encoder = model if isinstance(model, MaskedViTEncoder) else getattr(model, "encoder", None)
    if not isinstance(encoder, MaskedViTEncoder):
        raise ValueError(
            f"expected a MaskedViTEncoder or an objective with .encoder, got {type(model).__name__}"
        )
    return encoder


def encoder_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The timm state dict of ``model``'s encoder (``model`` is an encoder or an objective), on CPU.

    Raises:
        ValueError: if ``model`` has no `MaskedViTEncoder`.
    """
    state = _encoder_of(model).vit.state_dict()
    return {key: value.detach().cpu().contiguous().clone() for key, value in state.items()}


def save_timm_encoder(
    model: nn.Module, path: str | Path, extra_metadata: dict[str, str] | None = None
) -> Path:
    """Write the encoder as a safetensors file loadable by `timm.create_model` + strict `load_state_dict`.

    Metadata keys: ``format``, ``timm_architecture``, ``timm_kwargs`` (JSON), plus ``extra_metadata``.

    Raises:
        ValueError: if ``model`` has no `MaskedViTEncoder` or ``extra_metadata`` overwrites a reserved key.
    """
    encoder = _encoder_of(model)
    metadata = {
        "format": FORMAT,
        "timm_architecture": TIMM_ARCHITECTURE,
        "timm_kwargs": json.dumps(encoder.timm_kwargs),
    }
    clash = set(metadata) & set(extra_metadata or {})
    if clash:
        raise ValueError(f"extra_metadata may not set reserved keys {sorted(clash)}")
    metadata.update(extra_metadata or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(encoder_state_dict(encoder), str(path), metadata=metadata)
    return path


def read_timm_kwargs(path: str | Path) -> dict[str, Any]:
    """The ``timm.create_model`` keyword arguments stored in an exported file.

    Raises:
        ValueError: if the file was not written by `save_timm_encoder`.
    """
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT or "timm_kwargs" not in metadata:
        raise ValueError(f"{path} is not an infomug timm encoder export (metadata: {sorted(metadata)})")
    return json.loads(metadata["timm_kwargs"])


def load_timm_encoder(path: str | Path) -> VisionTransformer:
    """Rebuild the exported encoder as a timm model (no infomug classes involved), loaded strictly.

    Raises:
        ValueError: if the file was not written by `save_timm_encoder`.
    """
    model = timm.create_model(TIMM_ARCHITECTURE, pretrained=False, **read_timm_kwargs(path))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model
