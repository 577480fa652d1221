"""CLIP-style causal text transformer (Radford et al. 2021): the caption's feature is read at its eos."""

from __future__ import annotations

import torch
from torch import nn

from .text_blocks import TextBlock, check_tokens


class TextEncoder(nn.Module):
    """Token embedding + learned positions + causal blocks + final norm; feature at index ``lengths - 1``.

    Causal attention makes the eos position a summary of the whole caption that never sees padding.

    Args:
        vocab_size: number of token ids.
        context_length: the most tokens per caption.
        width: ``W``.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``W``.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        width: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if min(vocab_size, context_length, width, depth, num_heads) < 1:
            raise ValueError("vocab_size, context_length, width, depth and num_heads must be positive")
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.pos_embedding = nn.Parameter(torch.empty(context_length, width))
        self.blocks = nn.ModuleList(TextBlock(width, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.pos_embedding, std=0.01)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``tokens [B, T]``, ``lengths [B]`` -> ``[B, W]`` final-norm state at the eos position.

        Raises:
            ValueError: for malformed tokens or lengths, or ids outside the vocabulary (see `check_tokens`).
        """
        check_tokens(tokens, lengths, self.context_length, self.vocab_size)
        x = self.token_embedding(tokens) + self.pos_embedding[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        # LayerNorm acts per token, so normalising only the eos states gives the same features.
        return self.norm(x[torch.arange(x.shape[0], device=x.device), lengths - 1])
