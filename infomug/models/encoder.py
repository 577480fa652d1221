"""The image encoder: a timm `VisionTransformer` with fixed sine-cosine positions and MAE's random masking.

The ViT is held by composition (`self.vit`), so its state dict *is* a timm checkpoint
(see `infomug.models.export`). Training reads `forward_masked`; measurement reads the timm feature API
(`forward_features`, `forward_intermediates`) on unmasked images.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from timm.models import checkpoint_seq
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .init import init_mae_weights_
from .pos_embed import sincos_2d

Pool = Literal["token", "avg"]


def random_masking(
    x: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking by argsort of uniform noise (MAE).

    Exactly ``int(L * (1 - mask_ratio))`` tokens are kept in every sample.

    Args:
        x: ``[B, L, D]`` patch tokens.
        mask_ratio: fraction to remove, in ``[0, 1)``.
        generator: draws the noise; results repeat for a generator in the same state.
        noise: ``[B, L]`` given noise instead of drawn (the trainer draws a global batch's noise once and
            slices each process's rows, so masks do not depend on the number of processes).

    Returns:
        ``(x_visible [B, L_vis, D], mask [B, L], ids_restore [B, L])``: ``mask`` is 1 where a patch was
        removed, 0 where kept, in the original order; ``ids_restore`` undoes the shuffle
        (``torch.gather(shuffled, 1, ids_restore)`` is the original order).

    Raises:
        ValueError: if ``x`` is not 3-D, ``mask_ratio`` is outside ``[0, 1)`` or keeps no patch, or
            ``noise`` is not ``[B, L]``.
    """
    if x.dim() != 3:
        raise ValueError(f"random_masking expects [B, L, D] tokens, got shape {tuple(x.shape)}")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    batch, length, width = x.shape
    keep = int(length * (1 - mask_ratio))
    if keep < 1:
        raise ValueError(f"mask_ratio {mask_ratio} keeps no patch out of {length}")
    if noise is not None:
        if tuple(noise.shape) != (batch, length):
            raise ValueError(f"mask noise must be [B, L] = {[batch, length]}, got {list(noise.shape)}")
        noise = noise.to(x.device)
    else:
        # Noise is drawn on the generator's device so that a CPU generator also serves a GPU batch.
        noise_device = generator.device if generator is not None else x.device
        noise = torch.rand(batch, length, generator=generator, device=noise_device).to(x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    x_visible = torch.gather(x, 1, ids_keep[:, :, None].expand(-1, -1, width))
    mask = torch.ones(batch, length, device=x.device, dtype=x.dtype)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_visible, mask, ids_restore


class MaskedViTEncoder(nn.Module):
    """A timm ViT with a class token, fixed 2-D sine-cosine positions and visible-only masked encoding.

    Args:
        img_size: square input side in pixels.
        patch_size: square patch side in pixels; divides ``img_size``.
        in_chans: input channels.
        embed_dim: width ``D``, a multiple of 4 and of ``num_heads``.
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``D``.

    Attributes:
        vit: the timm `VisionTransformer` (``num_classes=0``); ``vit.pos_embed`` is frozen.
        timm_kwargs: keyword arguments that rebuild ``vit`` with `timm.create_model`.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide img_size {img_size}")
        if embed_dim % num_heads or embed_dim % 4:
            raise ValueError(f"embed_dim {embed_dim} must be a multiple of 4 and of num_heads {num_heads}")
        self.timm_kwargs: dict[str, Any] = dict(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            num_classes=0,
        )
        self.vit = VisionTransformer(**self.timm_kwargs)
        self.vit.pos_embed.requires_grad_(False)
        with torch.no_grad():
            self.vit.pos_embed.copy_(sincos_2d(embed_dim, self.grid_size)[None])
        init_mae_weights_(self.vit)
        nn.init.normal_(self.vit.cls_token, std=0.02)  # MAE's; timm's default is 1e-6

    @property
    def embed_dim(self) -> int:
        return self.vit.embed_dim

    @property
    def patch_size(self) -> int:
        return self.timm_kwargs["patch_size"]

    @property
    def in_chans(self) -> int:
        return self.timm_kwargs["in_chans"]

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.vit.patch_embed.grid_size)

    @property
    def num_patches(self) -> int:
        return self.vit.patch_embed.num_patches

    def _check_images(self, x: torch.Tensor) -> None:
        size = self.timm_kwargs["img_size"]
        if x.dim() != 4 or x.shape[1] != self.in_chans or x.shape[2] != size or x.shape[3] != size:
            raise ValueError(
                f"expected images [B, {self.in_chans}, {size}, {size}], got shape {tuple(x.shape)}"
            )

    def forward_masked(
        self,
        x: torch.Tensor,
        mask_ratio: float,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode only the visible patches of randomly masked images (MAE's ``forward_encoder``).

        Args:
            x: ``[B, C, H, W]`` images.
            mask_ratio: fraction of patches removed, in ``[0, 1)``.
            generator: draws the mask (see `random_masking`).
            noise: ``[B, L]`` mask noise to use instead of drawing it (see `random_masking`).

        Returns:
            ``(latent [B, 1 + L_vis, D], mask [B, L], ids_restore [B, L])``; ``latent[:, 0]`` is the class
            token, ``mask`` is 1 on removed patches.

        Raises:
            ValueError: for images of the wrong shape or a bad ``mask_ratio``.
        """
        self._check_images(x)
        vit = self.vit
        tokens = vit.patch_embed(x) + vit.pos_embed[:, 1:]
        tokens, mask, ids_restore = random_masking(tokens, mask_ratio, generator, noise)
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        tokens = vit.norm_pre(torch.cat([cls, tokens], dim=1))
        # Honour timm's set_grad_checkpointing here too, as its forward_features does.
        blocks = checkpoint_seq(vit.blocks, tokens) if vit.grad_checkpointing else vit.blocks(tokens)
        latent = vit.norm(blocks)
        return latent, mask, ids_restore

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens of unmasked images after the final norm: ``[B, C, H, W] -> [B, 1 + L, D]``."""
        self._check_images(x)
        return self.vit.forward_features(x)

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False
    ) -> list[torch.Tensor]:
        """Token outputs of chosen blocks on unmasked images (timm's implementation).

        Args:
            x: ``[B, C, H, W]`` images.
            indices: the last ``n`` blocks if an int, these block indices if a list, all if None.
            norm: apply the final norm to each.

        Returns:
            One ``[B, 1 + L, D]`` tensor per chosen block, class token first.

        Raises:
            ValueError: for images of the wrong shape.
        """
        self._check_images(x)
        outputs = self.vit.forward_intermediates(
            x,
            indices=indices,
            norm=norm,
            output_fmt="NLC",
            return_prefix_tokens=True,
            intermediates_only=True,
        )
        return [torch.cat([prefix, spatial], dim=1) for spatial, prefix in outputs]

    def pooled(self, x: torch.Tensor, pool: Pool = "token") -> torch.Tensor:
        """One vector per image: the class token or the mean of the patch tokens, ``[B, D]``.

        Raises:
            ValueError: for an unknown ``pool``.
        """
        return pool_tokens(self.forward_features(x), pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as `forward_features`."""
        return self.forward_features(x)


def pool_tokens(tokens: torch.Tensor, pool: Pool) -> torch.Tensor:
    """``[B, 1 + L, D] -> [B, D]``: the class token (``"token"``) or the patch-token mean (``"avg"``).

    Raises:
        ValueError: for an unknown ``pool``.
    """
    if pool == "token":
        return tokens[:, 0]
    if pool == "avg":
        return tokens[:, 1:].mean(dim=1)
    raise ValueError(f"pool must be 'token' or 'avg', got {pool!r}")
