"""Caption tokenizers, all offline, behind one small protocol.

Every tokenizer maps a caption to integer ids *without* special tokens; `encode_batch` adds
`bos` / `eos`, truncates and pads to a fixed context length and returns the true lengths, so losses
exclude padding by length rather than by a pad id (CLIP's pad id 0 is also the token "!").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Tokenizer(Protocol):
    """What the caption decoder, the text encoder and caption generation need of a tokenizer.

    Attributes:
        name: short name used in configs (e.g. ``"byte"``).
        vocab_size: number of ids, special ones included; every id is in ``[0, vocab_size)``.
        bos_id: id put before every caption (CLIP: ``<start_of_text>``).
        eos_id: id put after every caption (CLIP: ``<end_of_text>``); generation stops on it.
        pad_id: value written after the end of a caption. It may coincide with a real token.
    """

    name: str
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without special tokens."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special ids are dropped."""
        ...


@dataclass(frozen=True)
class TokenBatch:
    """Padded captions.

    Attributes:
        tokens: ``[B, T]`` int64, ``bos, ids..., eos`` then ``pad_id``.
        lengths: ``[B]`` int64, number of real positions (``bos`` and ``eos`` included), ``2 <= len <= T``.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor

    def padding_mask(self) -> torch.Tensor:
        """``[B, T]`` bool, True at positions past each caption's end."""
        positions = torch.arange(self.tokens.shape[1], device=self.tokens.device)
        return positions[None, :] >= self.lengths[:, None]

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.tokens.to(device), self.lengths.to(device))


def encode_batch(tokenizer: Tokenizer, texts: Sequence[str], context_length: int) -> TokenBatch:
    """Tokenize, add ``bos``/``eos``, truncate and pad.

    A caption longer than ``context_length - 2`` ids is cut and still ends with ``eos``, as CLIP does.

    Args:
        tokenizer: any `Tokenizer`.
        texts: ``B`` captions.
        context_length: ``T``, at least 2.

    Returns:
        `TokenBatch` with ``tokens [B, T]`` and ``lengths [B]``.

    Raises:
        ValueError: if ``context_length < 2`` or ``texts`` is a bare string.
    """
    if context_length < 2:
        raise ValueError(f"context_length must be >= 2 (room for bos and eos), got {context_length}")
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of captions, not a single string")
    tokens = torch.full((len(texts), context_length), tokenizer.pad_id, dtype=torch.long)
    lengths = torch.empty(len(texts), dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [tokenizer.bos_id, *tokenizer.encode(text)[: context_length - 2], tokenizer.eos_id]
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        lengths[row] = len(ids)
    return TokenBatch(tokens, lengths)


class ByteTokenizer:
    """UTF-8 bytes as tokens: ids 0-255 are bytes, then ``bos`` 256, ``eos`` 257, ``pad`` 258.

    No vocabulary file and no dependency; captions cost one token per byte, so use a longer context.
    """

    name = "byte"
    vocab_size = 259
    bos_id = 256
    eos_id = 257
    pad_id = 258

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")
