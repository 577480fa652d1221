"""Caption generation with MUG's caption decoder, conditioned on the *unmasked* image latent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

if TYPE_CHECKING:
    from infomug.data.tokenizers import Tokenizer

from .caption_decoder import CaptionDecoder
from .encoder import MaskedViTEncoder

Strategy = Literal["greedy", "top_k"]


def _parts(objective_or_decoder: nn.Module, encoder: MaskedViTEncoder | None):
    if isinstance(objective_or_decoder, CaptionDecoder):
        decoder = objective_or_decoder
    else:
        decoder = getattr(objective_or_decoder, "caption_decoder", None)
    if not isinstance(decoder, CaptionDecoder):
        raise ValueError(
            f"{type(objective_or_decoder).__name__} has no caption decoder (use a mug objective)"
        )
    encoder = encoder if encoder is not None else getattr(objective_or_decoder, "encoder", None)
    if not isinstance(encoder, MaskedViTEncoder):
        raise ValueError("an encoder is needed: pass one, or an objective that has .encoder")
    return decoder, encoder


@torch.no_grad()
def generate_captions(
    objective_or_decoder: nn.Module,
    encoder: MaskedViTEncoder | None,
    images: torch.Tensor,
    tokenizer: Tokenizer,
    max_len: int = 30,
    strategy: Strategy = "greedy",
    k: int = 10,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Decode one caption per image, starting from ``bos`` and stopping at ``eos`` or ``max_len`` tokens.

    Args:
        objective_or_decoder: a `CaptionDecoder`, or an objective with ``.caption_decoder`` (MUG).
        encoder: the image encoder; None takes ``objective_or_decoder.encoder``.
        images: ``[B, C, H, W]`` normalised images; encoded unmasked (mask ratio 0).
        tokenizer: the tokenizer the decoder was trained with.
        max_len: most generated tokens per caption (``eos`` included); ``max_len + 1 <= context_length``.
        strategy: ``"greedy"`` (argmax, deterministic) or ``"top_k"`` (sample among the ``k`` likeliest).
        k: candidates for ``top_k``.
        temperature: logits are divided by it before ``top_k`` sampling.
        generator: randomness for ``top_k``.

    Returns:
        ``B`` decoded strings (special tokens dropped by ``tokenizer.decode``).

    Raises:
        ValueError: for a missing decoder/encoder, a tokenizer larger than the decoder's vocabulary, an
            unknown strategy, ``max_len`` out of range, or non-positive ``k``/``temperature``.
    """
    decoder, encoder = _parts(objective_or_decoder, encoder)
    if tokenizer.vocab_size > decoder.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} ids but the decoder only {decoder.vocab_size}"
        )
    if strategy not in ("greedy", "top_k"):
        raise ValueError(f"strategy must be 'greedy' or 'top_k', got {strategy!r}")
    if not 1 <= max_len <= decoder.context_length - 1:
        raise ValueError(
            f"max_len must be in [1, {decoder.context_length - 1}] (context length), got {max_len}"
        )
    if k < 1 or not temperature > 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got {k}, {temperature}")
    modes = (decoder.training, encoder.training)
    decoder.eval()
    encoder.eval()
    try:
        latent = encoder.forward_features(images)
        tokens = torch.full((images.shape[0], 1), tokenizer.bos_id, dtype=torch.long, device=images.device)
        finished = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        # No key-value cache: captions are short and the decoder small, so re-running the prefix is cheap.
        for _ in range(max_len):
            logits = decoder.logits(tokens, latent)[:, -1].float()
            if strategy == "greedy":
                next_token = logits.argmax(dim=-1)
            else:
                next_token = _sample_top_k(logits / temperature, k, generator)
            next_token = torch.where(finished, torch.full_like(next_token, tokenizer.eos_id), next_token)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            finished |= next_token == tokenizer.eos_id
            if bool(finished.all()):
                break
    finally:
        decoder.train(modes[0])
        encoder.train(modes[1])
    captions = []
    for row in tokens[:, 1:].tolist():
        ids = row[: row.index(tokenizer.eos_id)] if tokenizer.eos_id in row else row
        captions.append(tokenizer.decode(ids))
    return captions


def _sample_top_k(logits: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)
    probs = values.softmax(dim=-1)
    device = generator.device if generator is not None else probs.device
    choice = torch.multinomial(probs.to(device), 1, generator=generator).to(indices.device)
    return indices.gather(1, choice)[:, 0]
