"""MAE's light pixel decoder and masked-patch reconstruction loss (He et al. 2022, `models_mae.py`)."""

from __future__ import annotations

import math
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .init import init_mae_weights_
from .pos_embed import sincos_2d

NORM_PIX_EPS = 1e-6


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches in row-major order, channels last within a patch.

    Args:
        images: ``[B, C, H, W]``, ``H`` and ``W`` multiples of ``patch_size``.
        patch_size: ``p``.

    Returns:
        ``[B, L, p * p * C]`` with ``L = (H / p) * (W / p)``.

    Raises:
        ValueError: if the images are not 4-D or not divisible into patches.
    """
    if images.dim() != 4 or images.shape[2] % patch_size or images.shape[3] % patch_size:
        raise ValueError(f"cannot cut images of shape {tuple(images.shape)} into {patch_size}-pixel patches")
    batch, chans, height, width = images.shape
    h, w = height // patch_size, width // patch_size
    x = images.reshape(batch, chans, h, patch_size, w, patch_size)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(batch, h * w, patch_size * patch_size * chans)


def unpatchify(
    patches: torch.Tensor, patch_size: int, grid_size: tuple[int, int] | None = None, in_chans: int = 3
) -> torch.Tensor:
    """Inverse of `patchify`.

    Args:
        patches: ``[B, L, p * p * C]``.
        patch_size: ``p``.
        grid_size: ``(h, w)`` with ``h * w = L``; a square grid when None.
        in_chans: ``C``.

    Returns:
        ``[B, C, h * p, w * p]``.

    Raises:
        ValueError: if the shapes do not fit together.
    """
    batch, length, dim = patches.shape
    if grid_size is None:
        side = math.isqrt(length)
        grid_size = (side, side)
    h, w = grid_size
    if h * w != length or dim != patch_size * patch_size * in_chans:
        raise ValueError(
            f"patches {tuple(patches.shape)} do not fit grid {grid_size}, "
            f"patch {patch_size}, {in_chans} channels"
        )
    x = patches.reshape(batch, h, w, patch_size, patch_size, in_chans)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(batch, in_chans, h * patch_size, w * patch_size)


def patch_statistics(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch mean and standard deviation used by ``norm_pix_loss``: each ``[B, L, 1]``.

    The standard deviation is ``sqrt(var + 1e-6)`` with the unbiased variance, as MAE computes it.
    """
    mean = patches.mean(dim=-1, keepdim=True)
    std = (patches.var(dim=-1, keepdim=True) + NORM_PIX_EPS).sqrt()
    return mean, std


def masked_patch_loss(
    images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, patch_size: int, norm_pix_loss: bool = True
) -> torch.Tensor:
    """Mean squared error on the removed patches only (MAE's ``forward_loss``).

    Args:
        images: ``[B, C, H, W]`` targets.
        pred: ``[B, L, p * p * C]`` decoder output.
        mask: ``[B, L]``, 1 on removed patches.
        patch_size: ``p``.
        norm_pix_loss: compare against per-patch normalised pixels (MAE's better default).

    Returns:
        Scalar, float32 for half-precision inputs: squared error averaged over pixels, then over removed
        patches.

    Raises:
        ValueError: if ``pred`` does not match the patchified images. (All-zero ``mask`` gives NaN.)
    """
    target = patchify(images, patch_size)
    if pred.shape != target.shape or mask.shape != target.shape[:2]:
        raise ValueError(
            f"pred {tuple(pred.shape)} / mask {tuple(mask.shape)} do not match patches {tuple(target.shape)}"
        )
    # Reduced in float32 (at least): a bfloat16 mask sum miscounts patches past 256 and a bfloat16 loss
    # keeps 3 significant digits. Under autocast these casts are no-ops.
    target = target.float() if target.dtype in (torch.float16, torch.bfloat16) else target
    if norm_pix_loss:
        mean, std = patch_statistics(target)
        target = (target - mean) / std
    per_patch = ((pred.to(target.dtype) - target) ** 2).mean(dim=-1)
    mask = mask.to(target.dtype)
    # No check that something is masked: it would cost a device sync every step. Objectives refuse
    # a mask_ratio that removes no patch when they are built.
    return (per_patch * mask).sum() / mask.sum()


class MAEDecoder(nn.Module):
    """Light transformer that predicts the pixels of every patch from the visible latent and mask tokens.

    Args:
        grid_size: the encoder's patch grid ``(h, w)``.
        patch_size: pixels per patch side.
        in_chans: image channels.
        encoder_dim: encoder width ``D``.
        width: decoder width (MAE: 512), a multiple of 4 and of ``num_heads``.
        depth: decoder blocks (MAE: 8).
        num_heads: attention heads (MAE: 16).
        mlp_ratio: MLP hidden width over ``width``.
    """

    def __init__(
        self,
        grid_size: tuple[int, int],
        patch_size: int,
        in_chans: int,
        encoder_dim: int,
        width: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if width % num_heads or width % 4:
            raise ValueError(f"decoder width {width} must be a multiple of 4 and of num_heads {num_heads}")
        self.grid_size = tuple(grid_size)
        self.patch_size = patch_size
        self.in_chans = in_chans
        norm_layer = partial(nn.LayerNorm, eps=1e-6)  # MAE's
        self.embed = nn.Linear(encoder_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("pos_embed", sincos_2d(width, self.grid_size)[None], persistent=False)
        self.blocks = nn.Sequential(
            *[Block(width, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(depth)]
        )
        self.norm = norm_layer(width)
        self.pred = nn.Linear(width, patch_size * patch_size * in_chans)
        init_mae_weights_(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict all patches (MAE's ``forward_decoder``).

        Args:
            latent: ``[B, 1 + L_vis, D]`` from `MaskedViTEncoder.forward_masked`.
            ids_restore: ``[B, L]`` from the same call.

        Returns:
            ``[B, L, p * p * C]`` predicted (normalised, if trained so) pixels, class token dropped.

        Raises:
            ValueError: if ``ids_restore`` does not match the decoder's grid.
        """
        length = self.pos_embed.shape[1] - 1
        if ids_restore.shape[1] != length or latent.shape[1] > length + 1:
            raise ValueError(
                f"ids_restore {tuple(ids_restore.shape)} / latent {tuple(latent.shape)} "
                f"do not match {length} patches"
            )
        x = self.embed(latent)
        batch, visible_plus_cls, width = x.shape
        mask_tokens = self.mask_token.expand(batch, length + 1 - visible_plus_cls, -1)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
        patches = torch.gather(patches, 1, ids_restore[:, :, None].expand(-1, -1, width))
        x = torch.cat([x[:, :1], patches], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.pred(x[:, 1:])
