"""`ModelConfig`: every size and weight of the encoder, decoders and objectives, as plain JSON/YAML types."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

OBJECTIVE_NAMES = ("mae", "mug", "clip", "simclr")
POOLS = ("token", "avg")


@dataclass(frozen=True)
class ModelConfig:
    """One flat record: encoder, pixel decoder, caption decoder, text encoder, heads and loss weights.

    Defaults are the CPU demo (`mug_vit_tiny_patch4_32`). Fields a given objective does not use are kept
    (and ignored) so one config type serves all four.

    Attributes:
        objective: ``"mae"``, ``"mug"``, ``"clip"`` or ``"simclr"``.
        img_size, patch_size, in_chans: square images of ``img_size`` pixels cut into ``patch_size`` patches.
        embed_dim, depth, num_heads, mlp_ratio: the ViT encoder.
        decoder_width, decoder_depth, decoder_num_heads: MAE pixel decoder.
        norm_pix_loss: regress per-patch normalised pixels (MAE's default).
        mask_ratio: fraction of patches removed for ``mae``/``mug``.
        caption_width, caption_unimodal_layers, caption_multimodal_layers, caption_num_heads: caption decoder.
        vocab_size, context_length: tokenizer ids and the most tokens per caption (caption decoder and
            text encoder read the same token batch).
        text_width, text_depth, text_num_heads: CLIP-style text encoder.
        projection_dim: shared embedding width of ``clip`` and output of ``simclr``'s projection MLP.
        pool: image feature for contrastive objectives, ``"token"`` (class token) or ``"avg"``.
        pixel_loss_weight, caption_loss_weight: MUG's lambda_V and lambda_L.
        temperature: NT-Xent temperature of ``simclr``.
        clip_initial_temperature: initial CLIP temperature (learned; logit scale clamped at 100).
        init_from: start the encoder from these weights instead of MAE's initialisation: a run folder,
            step folder or ``model.safetensors`` of an infomug checkpoint (its encoder), an `infomug
            export` folder, or a timm ViT state dict (``.safetensors``, ``.pt``, ``.pth``, ``.bin``).
            Read by `infomug.train` at a fresh start only (a resumed run restores its own weights);
            `build_objective` ignores it. ``None`` = MAE's initialisation.
    """

    objective: str = "mug"
    img_size: int = 32
    patch_size: int = 4
    in_chans: int = 3
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    decoder_width: int = 128
    decoder_depth: int = 2
    decoder_num_heads: int = 4
    norm_pix_loss: bool = True
    mask_ratio: float = 0.75
    caption_width: int = 128
    caption_unimodal_layers: int = 1
    caption_multimodal_layers: int = 1
    caption_num_heads: int = 4
    vocab_size: int = 512
    context_length: int = 32
    text_width: int = 128
    text_depth: int = 2
    text_num_heads: int = 4
    projection_dim: int = 128
    pool: str = "token"
    pixel_loss_weight: float = 1.0
    caption_loss_weight: float = 0.1
    temperature: float = 0.1
    clip_initial_temperature: float = 0.07
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVE_NAMES:
            raise ValueError(f"objective must be one of {OBJECTIVE_NAMES}, got {self.objective!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} does not divide img_size {self.img_size}")
        for width, heads, name in (
            (self.embed_dim, self.num_heads, "embed_dim"),
            (self.decoder_width, self.decoder_num_heads, "decoder_width"),
            (self.caption_width, self.caption_num_heads, "caption_width"),
            (self.text_width, self.text_num_heads, "text_width"),
        ):
            if width < 1 or heads < 1 or width % heads or width % 4:
                raise ValueError(
                    f"{name} {width} must be a positive multiple of 4 and of its heads ({heads})"
                )
        num_patches = (self.img_size // self.patch_size) ** 2
        if not 0.0 <= self.mask_ratio < 1.0 or int(num_patches * (1 - self.mask_ratio)) < 1:
            raise ValueError(f"mask_ratio must be in [0, 1) and keep a patch, got {self.mask_ratio}")
        if self.objective in ("mae", "mug") and int(num_patches * (1 - self.mask_ratio)) == num_patches:
            raise ValueError(
                f"{self.objective} needs a mask_ratio that removes a patch, got {self.mask_ratio}"
            )
        if self.context_length < 2 or self.vocab_size < 3:
            raise ValueError("context_length must be >= 2 and vocab_size >= 3 (bos, eos and one word)")
        if self.caption_unimodal_layers < 0 or self.caption_multimodal_layers < 1:
            raise ValueError("need caption_unimodal_layers >= 0 and caption_multimodal_layers >= 1")
        if min(self.depth, self.decoder_depth, self.text_depth, self.projection_dim, self.in_chans) < 1:
            raise ValueError("depths, projection_dim and in_chans must be positive")
        if self.pixel_loss_weight < 0 or self.caption_loss_weight < 0:
            raise ValueError("loss weights must be non-negative")
        if not (self.temperature > 0 and self.clip_initial_temperature > 0 and self.mlp_ratio > 0):
            raise ValueError("temperatures and mlp_ratio must be positive")
        if self.init_from is not None and not self.init_from.strip():
            raise ValueError("init_from must be a path to weights, or null for MAE's initialisation")

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}``, JSON/YAML serialisable."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a (possibly partial) dict; missing fields take their defaults.

        Raises:
            ValueError: on an unknown key, a value of the wrong type, or an invalid combination.
        """
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {unknown}")
        return cls(**{key: _coerce(key, known[key].type, value) for key, value in values.items()})

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with ``overrides`` applied, validated like `from_dict`."""
        return ModelConfig.from_dict({**self.to_dict(), **overrides})


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    kind = annotation if isinstance(annotation, str) else annotation.__name__
    optional = kind.endswith(" | None")
    if optional and value is None:
        return None
    kind = kind.removesuffix(" | None")
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        expected = f"{kind} or null" if optional else kind
        raise ValueError(f"ModelConfig.{key} must be {expected}, got {type(value).__name__} {value!r}")
    return value
