"""Named configurations, timm/MAE style: ``{objective}_vit_{size}_patch{p}_{img_size}``.

* ``*_vit_tiny_patch4_32``: the CPU demo (ViT-Tiny width 192, depth 6 on 32x32 images, 64 patches).
* ``*_vit_tiny_patch8_64``: the same encoder on 64x64 images with 8-pixel patches (still 64 patches).
* ``*_vit_base_patch16_224``: the paper's scale: ViT-B/16, MAE decoder 512 x 8 (16 heads), CLIP BPE
  (vocabulary 49,408, context 77). The caption decoder is 512 wide with 4 unimodal + 4 multimodal
  layers, CoCa's half/half split at MAE-decoder width; the paper's exact layer counts were not checked
  here, so treat these three numbers as this project's choice. The text encoder is CLIP's 512 x 12.
"""

from __future__ import annotations

from typing import Any

from .config import OBJECTIVE_NAMES, ModelConfig

_BASES: dict[str, dict[str, Any]] = {
    "vit_tiny_patch4_32": {},
    "vit_tiny_patch8_64": dict(img_size=64, patch_size=8),
    "vit_base_patch16_224": dict(
        img_size=224,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        decoder_width=512,
        decoder_depth=8,
        decoder_num_heads=16,
        caption_width=512,
        caption_unimodal_layers=4,
        caption_multimodal_layers=4,
        caption_num_heads=8,
        vocab_size=49408,
        context_length=77,
        text_width=512,
        text_depth=12,
        text_num_heads=8,
        projection_dim=512,
    ),
}

PRESETS: dict[str, dict[str, Any]] = {
    f"{objective}_{base}": {"objective": objective, **fields}
    for base, fields in _BASES.items()
    for objective in OBJECTIVE_NAMES
}


def list_presets() -> list[str]:
    """Names accepted by `get_config`, sorted."""
    return sorted(PRESETS)


def get_config(name_or_config: str | ModelConfig | dict[str, Any], **overrides: Any) -> ModelConfig:
    """Resolve a preset name, a config or a config dict, then apply ``overrides``.

    Example:
        ``get_config("mug_vit_tiny_patch4_32", caption_loss_weight=0.0)``

    Raises:
        ValueError: for an unknown preset name, unknown override keys or invalid values.
    """
    if isinstance(name_or_config, ModelConfig):
        base = name_or_config.to_dict()
    elif isinstance(name_or_config, dict):
        base = ModelConfig.from_dict(name_or_config).to_dict()
    elif isinstance(name_or_config, str):
        if name_or_config not in PRESETS:
            raise ValueError(f"unknown model preset {name_or_config!r}; known: {', '.join(list_presets())}")
        base = ModelConfig.from_dict(PRESETS[name_or_config]).to_dict()
    else:
        raise ValueError(f"expected a preset name, ModelConfig or dict, got {type(name_or_config).__name__}")
    return ModelConfig.from_dict({**base, **overrides})
