"""MUG's autoregressive caption decoder: unimodal causal layers, then multimodal layers with cross-attention.

The text half follows CoCa (Yu et al. 2022): the first ``unimodal_layers`` see the caption only, the next
``multimodal_layers`` also cross-attend to the encoder latent of the *masked* image, i.e. the output of the
same `MaskedViTEncoder.forward_masked` call that feeds the pixel decoder (MUG, Zhao et al. 2023). The
output projection is tied to the token embedding. Padding is excluded by length, never by a pad id.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .text_blocks import TextBlock, check_tokens


class CaptionDecoder(nn.Module):
    """Predicts caption token ``t + 1`` from tokens ``<= t`` and the image latent.

    Args:
        vocab_size: number of token ids.
        context_length: the most tokens per caption (learned position embedding size).
        width: decoder width ``W``.
        unimodal_layers: causal text-only layers (may be 0).
        multimodal_layers: causal layers with cross-attention to the image (at least 1).
        num_heads: attention heads.
        image_dim: encoder width ``D``; projected to ``W`` when different.
        mlp_ratio: MLP hidden width over ``W``.

    Raises:
        ValueError: for non-positive sizes or no multimodal layer.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        width: int,
        unimodal_layers: int,
        multimodal_layers: int,
        num_heads: int,
        image_dim: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if min(vocab_size, context_length, width, num_heads, image_dim) < 1:
            raise ValueError("vocab_size, context_length, width, num_heads and image_dim must be positive")
        if unimodal_layers < 0 or multimodal_layers < 1:
            raise ValueError(
                "need unimodal_layers >= 0 and multimodal_layers >= 1, "
                f"got {unimodal_layers} and {multimodal_layers}"
            )
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.pos_embedding = nn.Parameter(torch.empty(context_length, width))
        self.image_proj = nn.Linear(image_dim, width) if image_dim != width else nn.Identity()
        self.unimodal = nn.ModuleList(TextBlock(width, num_heads, mlp_ratio) for _ in range(unimodal_layers))
        self.multimodal = nn.ModuleList(
            TextBlock(width, num_heads, mlp_ratio, cross_attention=True) for _ in range(multimodal_layers)
        )
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.pos_embedding, std=0.01)

    def hidden_states(self, tokens: torch.Tensor, image_latent: torch.Tensor) -> torch.Tensor:
        """Final-norm states: ``tokens [B, T]`` and ``image_latent [B, S, D]`` -> ``[B, T, W]``.

        Raises:
            ValueError: if ``T`` exceeds the context length or the batch sizes differ.
        """
        if tokens.dim() != 2 or tokens.shape[1] > self.context_length:
            raise ValueError(f"tokens must be [B, T<={self.context_length}], got shape {tuple(tokens.shape)}")
        if image_latent.dim() != 3 or image_latent.shape[0] != tokens.shape[0]:
            raise ValueError(
                f"image_latent {tuple(image_latent.shape)} does not match "
                f"a batch of {tokens.shape[0]} captions"
            )
        x = self.token_embedding(tokens) + self.pos_embedding[: tokens.shape[1]]
        for block in self.unimodal:
            x = block(x)
        context = self.image_proj(image_latent)
        for block in self.multimodal:
            x = block(x, context)
        return self.norm(x)

    def logits(self, tokens: torch.Tensor, image_latent: torch.Tensor) -> torch.Tensor:
        """Next-token logits at every position: ``[B, T, vocab_size]`` (position ``t`` predicts ``t + 1``)."""
        return self.hidden_states(tokens, image_latent) @ self.token_embedding.weight.T

    def predicted_tokens(
        self, tokens: torch.Tensor, lengths: torch.Tensor, image_latent: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced logits of the real predicted tokens, as `loss` scores them.

        Input positions ``0 .. T-2`` predict tokens ``1 .. T-1``; prediction ``t`` is real iff
        ``t + 1 < lengths`` (so ``eos`` is predicted and nothing after it is).

        Returns:
            ``logits [R, vocab_size]``, ``targets [R]`` (int64) and ``real [B, T-1]`` (bool), for the R
            real predictions in row-major order.

        Raises:
            ValueError: for malformed tokens or lengths, or ids outside the vocabulary (see `check_tokens`).
        """
        check_tokens(tokens, lengths, self.context_length, self.vocab_size)
        hidden = self.hidden_states(tokens[:, :-1], image_latent)
        positions = torch.arange(tokens.shape[1] - 1, device=tokens.device)
        real = positions[None, :] < (lengths[:, None] - 1)
        # Project only the real positions: with a 49k vocabulary the padded logits would dominate the cost.
        logits = hidden[real] @ self.token_embedding.weight.T
        return logits, tokens[:, 1:][real].long(), real

    def loss(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        image_latent: torch.Tensor,
        across_processes: bool = False,
    ) -> torch.Tensor:
        """Teacher-forced cross-entropy, mean over the real predicted tokens of the batch (nats/token).

        Input positions ``0 .. T-2`` predict tokens ``1 .. T-1``; prediction ``t`` counts iff
        ``t + 1 < lengths`` (so ``eos`` is predicted and nothing after it is).

        Args:
            tokens: ``[B, T]`` ``bos, ids..., eos, pad...``.
            lengths: ``[B]`` real positions per caption, ``bos`` and ``eos`` included.
            image_latent: ``[B, S, D]`` encoder output.
            across_processes: under `torch.distributed`, divide by the token count of *all* processes'
                batches times the world size (one all-reduce of the count). DDP's gradient averaging then
                yields the gradient of the mean over every token of the global batch, as one process would;
                a per-process mean would weight tokens of short-caption batches more. Every process must call.

        Returns:
            Scalar loss.

        Raises:
            ValueError: for malformed tokens or lengths, or ids outside the vocabulary (see `check_tokens`).
        """
        logits, targets, _ = self.predicted_tokens(tokens, lengths, image_latent)
        if not (across_processes and torch.distributed.is_available() and torch.distributed.is_initialized()):
            return F.cross_entropy(logits.float(), targets)
        count = torch.tensor(float(targets.numel()), device=logits.device)
        torch.distributed.all_reduce(count)
        scale = torch.distributed.get_world_size() / count
        return F.cross_entropy(logits.float(), targets, reduction="sum") * scale
