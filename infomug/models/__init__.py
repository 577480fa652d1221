"""Models: the masked timm ViT encoder, MAE pixel decoder, MUG caption decoder, CLIP-style text encoder.

Objectives that combine them live in `infomug.objectives` (which also has `create_model`).
"""

from .caption_decoder import CaptionDecoder
from .config import OBJECTIVE_NAMES, ModelConfig
from .encoder import MaskedViTEncoder, pool_tokens, random_masking
from .export import (
    encoder_state_dict,
    find_timm_config,
    load_timm_encoder,
    read_timm_kwargs,
    save_timm_encoder,
    timm_config,
)
from .generate import generate_captions
from .mae_decoder import MAEDecoder, masked_patch_loss, patchify, unpatchify
from .pos_embed import sincos_2d
from .presets import PRESETS, get_config, list_presets
from .text_encoder import TextEncoder
from .visualize import reconstruct, save_reconstruction_grid

__all__ = [
    "OBJECTIVE_NAMES",
    "PRESETS",
    "CaptionDecoder",
    "MAEDecoder",
    "MaskedViTEncoder",
    "ModelConfig",
    "TextEncoder",
    "encoder_state_dict",
    "find_timm_config",
    "generate_captions",
    "get_config",
    "list_presets",
    "load_timm_encoder",
    "masked_patch_loss",
    "patchify",
    "pool_tokens",
    "random_masking",
    "read_timm_kwargs",
    "reconstruct",
    "save_reconstruction_grid",
    "save_timm_encoder",
    "sincos_2d",
    "timm_config",
    "unpatchify",
]
