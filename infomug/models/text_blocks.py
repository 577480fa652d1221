"""Pre-norm transformer blocks for token sequences: causal self-attention, optional cross-attention.

Shared by the MUG caption decoder and the CLIP-style text encoder. Attention goes through
`torch.nn.functional.scaled_dot_product_attention`, so fused kernels are used where available.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``t`` sees positions ``<= t`` only."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, W] -> [B, T, W]``."""
        batch, length, width = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, width // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class CrossAttention(nn.Module):
    """Multi-head attention of text queries over image keys/values (no mask: every patch is visible)."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``x [B, T, W]`` attends to ``context [B, S, W]``; returns ``[B, T, W]``."""
        batch, length, width = x.shape
        head_dim = width // self.num_heads
        q = self.q(x).reshape(batch, length, self.num_heads, head_dim).transpose(1, 2)
        kv = self.kv(context).reshape(batch, context.shape[1], 2, self.num_heads, head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class TextBlock(nn.Module):
    """Pre-norm block: causal self-attention, then (multimodal only) cross-attention, then an MLP.

    Args:
        width: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``width``.
        cross_attention: add a cross-attention sub-layer (a CoCa/MUG "multimodal" layer).
    """

    def __init__(self, width: int, num_heads: int, mlp_ratio: float = 4.0, cross_attention: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, num_heads)
        self.norm_cross = nn.LayerNorm(width) if cross_attention else None
        self.cross = CrossAttention(width, num_heads) if cross_attention else None
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, T, W]`` (and ``context [B, S, W]`` for a multimodal block) -> ``[B, T, W]``.

        Raises:
            ValueError: if a multimodal block gets no context.
        """
        x = x + self.attn(self.norm1(x))
        if self.cross is not None:
            if context is None:
                raise ValueError("a multimodal block needs the image context")
            x = x + self.cross(self.norm_cross(x), context)
        return x + self.mlp(self.norm2(x))


def check_tokens(
    tokens: torch.Tensor, lengths: torch.Tensor, context_length: int, vocab_size: int | None = None
) -> None:
    """Validate a padded token batch against a model's context length (and vocabulary).

    Raises:
        ValueError: if ``tokens`` is not ``[B, T]`` integer, ``T > context_length``, ``lengths`` is not
            ``[B]`` integer on the tokens' device, some length is outside ``[2, T]``, or (with
            ``vocab_size``) some id, padding included, is outside ``[0, vocab_size)``; the embedding
            would otherwise fail with a bare index error (a device-side assert on GPU).
    """
    if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens must be an integer [B, T] tensor, got {tokens.dtype} {tuple(tokens.shape)}")
    if tokens.shape[1] > context_length:
        raise ValueError(f"{tokens.shape[1]} tokens exceed the context length {context_length}")
    if lengths.shape != tokens.shape[:1]:
        raise ValueError(f"lengths {tuple(lengths.shape)} does not match tokens {tuple(tokens.shape)}")
    if lengths.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"lengths must be integer, got {lengths.dtype}")
    if lengths.device != tokens.device:
        raise ValueError(f"lengths are on {lengths.device} but tokens on {tokens.device}: move both")
    if bool((lengths < 2).any()) or bool((lengths > tokens.shape[1]).any()):
        raise ValueError(f"every length must be in [2, {tokens.shape[1]}] (bos and eos included)")
    if vocab_size is not None and tokens.numel():
        low, high = (int(v) for v in torch.aminmax(tokens))
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"token ids span [{low}, {high}], outside the model's vocabulary of {vocab_size}: "
                "is the tokenizer the one the model was sized for (ModelConfig.vocab_size)?"
            )
