"""A ViT with classification heads, MAE's fine-tuning head: patch-token mean, a fresh LayerNorm, linear heads.

He et al. (2022), "Masked Autoencoders Are Scalable Vision Learners", appendix A.1 and ``models_vit.py``:
fine-tuning averages the last block's patch tokens (``global_pool``), drops the pre-training final norm
for a fresh ``fc_norm`` and initialises the head with std 2e-5. One head per label of the task.

    classifier = Classifier(backbone_of(model.encoder), {"shape": 8, "colour": 8}, drop_path=0.1)
    logits = classifier(images)          # {"shape": [B, 8], "colour": [B, 8]}
    classifier.train_only_last(2)        # partial fine-tuning: the last 2 blocks and the heads
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from timm.layers import DropPath, trunc_normal_
from timm.models.vision_transformer import VisionTransformer
from torch import nn

HEAD_INIT_STD = 2e-5  # MAE's fine-tuning head init
HEAD_NORMS = ("layernorm", "batchnorm")


def backbone_of(encoder: nn.Module) -> VisionTransformer:
    """The timm `VisionTransformer` inside an infomug encoder (``.vit``), or the encoder itself.

    Raises:
        ValueError: for any other module (fine-tuning drives the ViT's blocks one by one).
    """
    vit = getattr(encoder, "vit", encoder)
    if not isinstance(vit, VisionTransformer):
        raise ValueError(
            f"fine-tuning needs a timm VisionTransformer (or an infomug encoder holding one), got"
            f" {type(encoder).__name__}"
        )
    return vit


def set_drop_path(vit: VisionTransformer, rate: float) -> None:
    """Stochastic depth rising linearly from 0 at the first block to ``rate`` at the last (timm's rule).

    Raises:
        ValueError: for a rate outside [0, 1).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_path must be in [0, 1), got {rate}")
    rates = torch.linspace(0.0, rate, len(vit.blocks)).tolist()
    for block, block_rate in zip(vit.blocks, rates, strict=True):
        block.drop_path1 = DropPath(block_rate) if block_rate > 0 else nn.Identity()
        block.drop_path2 = DropPath(block_rate) if block_rate > 0 else nn.Identity()


class Classifier(nn.Module):
    """A copy of a ViT backbone, mean-pooled, with one linear head per label.

    Args:
        backbone: the pre-trained (or random) timm ViT; it is deep-copied, the caller's stays untouched.
        num_classes: ``{label: classes}``, each at least 2.
        drop_path: stochastic-depth rate of the last block (see `set_drop_path`).
        head_norm: ``"layernorm"`` (MAE's ``fc_norm``) or ``"batchnorm"`` (per-dimension standardisation
            over the batch, as MAE's linear probe): a few large feature dimensions dominate a LayerNorm
            and leave a short fine-tune's head badly conditioned.

    Raises:
        ValueError: for a label with fewer than 2 classes, an unknown ``head_norm``, or as `set_drop_path`.
    """

    def __init__(
        self,
        backbone: VisionTransformer,
        num_classes: Mapping[str, int],
        drop_path: float = 0.0,
        head_norm: str = "layernorm",
    ):
        super().__init__()
        if head_norm not in HEAD_NORMS:
            raise ValueError(f"head_norm must be one of {HEAD_NORMS}, got {head_norm!r}")
        for label, count in num_classes.items():
            if count < 2:
                raise ValueError(f"label {label!r} has {count} class(es); a head needs at least 2")
        self.backbone = copy.deepcopy(backbone)
        set_drop_path(self.backbone, drop_path)
        width = self.backbone.embed_dim
        self.fc_norm = (
            nn.LayerNorm(width, eps=1e-6) if head_norm == "layernorm" else nn.BatchNorm1d(width, eps=1e-6)
        )
        self.heads = nn.ModuleDict({label: nn.Linear(width, count) for label, count in num_classes.items()})
        for head in self.heads.values():
            trunc_normal_(head.weight, std=HEAD_INIT_STD)
            nn.init.zeros_(head.bias)
        self.frozen_blocks = 0
        # Fixed parameters of pre-training (an infomug encoder's sine-cosine positions) stay fixed.
        self._fixed = {name for name, p in self.backbone.named_parameters() if not p.requires_grad}

    @property
    def depth(self) -> int:
        return len(self.backbone.blocks)

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, P + L, D]`` tokens entering the first block (P prefix tokens)."""
        vit = self.backbone
        tokens = vit.patch_embed(images)
        tokens = vit._pos_embed(tokens)  # timm's own position and prefix-token step, no public name
        return vit.norm_pre(vit.patch_drop(tokens))

    def blocks(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Run blocks ``start..depth-1`` on ``[B, P + L, D]`` tokens."""
        for block in self.backbone.blocks[start:]:
            tokens = block(tokens)
        return tokens

    def frozen_prefix(self, images: torch.Tensor) -> torch.Tensor:
        """Tokens after the stem and the frozen blocks (``[B, P + L, D]``), computed without gradients."""
        with torch.no_grad():
            tokens = self.stem(images)
            for block in self.backbone.blocks[: self.frozen_blocks]:
                tokens = block(tokens)
        return tokens

    def head(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, P + L, D]`` last-block tokens -> ``{label: [B, C] logits}`` (patch-token mean, fc_norm)."""
        pooled = self.fc_norm(tokens[:, self.backbone.num_prefix_tokens :].mean(dim=1))
        return {label: head(pooled) for label, head in self.heads.items()}

    def forward_from(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits from the tokens `frozen_prefix` returns (the trainable blocks, then the heads)."""
        return self.head(self.blocks(tokens, self.frozen_blocks))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, C, H, W]`` normalised images -> ``{label: [B, C_label] logits}``."""
        if self.frozen_blocks:
            return self.forward_from(self.frozen_prefix(images))
        return self.head(self.blocks(self.stem(images)))

    def train_only_last(self, blocks: int | None) -> None:
        """Freeze the stem and all but the last ``blocks`` blocks (None: train everything).

        The final norm of pre-training is unused by the mean-pooled head and stays frozen either way.

        Raises:
            ValueError: for ``blocks`` outside ``[0, depth]``.
        """
        if blocks is not None and not 0 <= blocks <= self.depth:
            raise ValueError(f"can train the last 0..{self.depth} blocks, not {blocks}")
        self.frozen_blocks = 0 if blocks is None else self.depth - blocks
        for name, parameter in self.backbone.named_parameters():
            parameter.requires_grad_(self._trainable(name))

    def train(self, mode: bool = True) -> Classifier:
        """Train mode for the trainable part; frozen blocks stay in eval mode (no drop path there)."""
        super().train(mode)
        if mode and self.frozen_blocks:
            self.backbone.patch_embed.eval()
            for block in self.backbone.blocks[: self.frozen_blocks]:
                block.eval()
        return self

    def _trainable(self, name: str) -> bool:
        if name.startswith("norm.") or name in self._fixed:
            return False
        if name.startswith("blocks."):
            return int(name.split(".")[1]) >= self.frozen_blocks
        return self.frozen_blocks == 0
