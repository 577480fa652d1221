"""Caption tokenizers, all offline, behind one small protocol.

* `ByteTokenizer`: UTF-8 bytes, no files.
* `ClipBPETokenizer`: CLIP's BPE as shipped in ``open_clip_torch`` (ids match ``open_clip.tokenize``).
* `TrainedBPETokenizer`: a small BPE trained on the user's captions, saved as one JSON file.
* `build_tokenizer`: the one a config names.

Every tokenizer maps a caption to integer ids *without* special tokens; `encode_batch` adds
`bos` / `eos`, truncates and pads to a fixed context length and returns the true lengths, so losses
exclude padding by length rather than by a pad id (CLIP's pad id 0 is also the token "!").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    import tokenizers


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


class ClipBPETokenizer:
    """CLIP's byte-pair encoding, from the vocabulary file shipped inside ``open_clip_torch``.

    Ids match ``open_clip.tokenize`` (Radford et al. 2021): vocabulary 49408, ``bos`` 49406
    ``<start_of_text>``, ``eos`` 49407 ``<end_of_text>``, ``pad`` 0. Id 0 is also the token ``"!"``, so
    padding must be excluded by ``TokenBatch.lengths``, never by comparing with ``pad_id``. Text is
    cleaned and lowercased as open_clip does. Nothing is downloaded.
    """

    name = "clip"
    pad_id = 0

    def __init__(self) -> None:
        # Imported here: importing open_clip loads all of its models' code (seconds).
        from open_clip.tokenizer import SimpleTokenizer

        self._bpe = SimpleTokenizer()
        self.vocab_size = len(self._bpe.encoder)
        self.bos_id = self._bpe.encoder["<start_of_text>"]
        self.eos_id = self._bpe.encoder["<end_of_text>"]

    def encode(self, text: str) -> list[int]:
        return list(self._bpe.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        kept = [int(i) for i in ids if int(i) not in (self.bos_id, self.eos_id)]
        return self._bpe.decode(kept).strip()


SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


class TrainedBPETokenizer:
    """A small byte-level BPE trained on the user's own captions with HF ``tokenizers``.

    Text is NFC-normalised and lowercased, split byte-level (every UTF-8 byte is in the base alphabet, so
    no caption ever needs ``<unk>``), and merged by BPE. Ids 0-3 are ``<pad>``, ``<unk>``, ``<bos>``,
    ``<eos>``. Training is deterministic: the same captions and ``vocab_size`` give the same file.
    Build one with `train` or `load`; keep it next to the run with `save`.
    """

    name = "bpe"

    def __init__(self, tokenizer: tokenizers.Tokenizer, source: str = "<in memory>") -> None:
        """Wrap a ``tokenizers.Tokenizer``.

        Raises:
            ValueError: if it lacks one of the special tokens.
        """
        missing = [token for token in SPECIAL_TOKENS if tokenizer.token_to_id(token) is None]
        if missing:
            raise ValueError(f"tokenizer {source} lacks special tokens {missing} (need {SPECIAL_TOKENS})")
        self._tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (
            tokenizer.token_to_id(token) for token in SPECIAL_TOKENS
        )

    @classmethod
    def train(
        cls, captions: Iterable[str], vocab_size: int = 512, min_frequency: int = 2
    ) -> TrainedBPETokenizer:
        """Learn BPE merges from ``captions`` up to ``vocab_size`` ids (pairs seen ``min_frequency`` times).

        Raises:
            ValueError: if ``vocab_size`` cannot hold the 256 bytes and 4 special tokens, or
                ``captions`` is empty or a bare string.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        smallest = 256 + len(SPECIAL_TOKENS)
        if vocab_size < smallest:
            raise ValueError(
                f"vocab_size must be >= {smallest} (256 bytes + special tokens), got {vocab_size}"
            )
        if isinstance(captions, str):
            raise ValueError("captions must be an iterable of captions, not a single string")
        captions = [caption for caption in captions if caption.strip()]
        if not captions:
            raise ValueError("no non-empty caption to train the BPE tokenizer on")
        tokenizer = HFTokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(captions, trainer=trainer)
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainedBPETokenizer:
        """Read a tokenizer written by `save`.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if it is not a tokenizer JSON with the special tokens.
        """
        from tokenizers import Tokenizer as HFTokenizer

        if not os.path.isfile(path):
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            tokenizer = HFTokenizer.from_file(os.fspath(path))
        except Exception as error:  # the Rust side raises plain Exception for malformed JSON
            raise ValueError(f"{path} is not a tokenizers JSON file: {error}") from error
        return cls(tokenizer, os.fspath(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as one JSON file (vocabulary, merges, normaliser, specials)."""
        self._tokenizer.save(os.fspath(path))

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True).strip()


TOKENIZER_NAMES = ("byte", "clip", "bpe")


def build_tokenizer(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    captions: Iterable[str] | None = None,
    vocab_size: int = 512,
) -> Tokenizer:
    """The tokenizer a config names.

    Args:
        name: ``"byte"`` (`ByteTokenizer`), ``"clip"`` (`ClipBPETokenizer`) or ``"bpe"``
            (`TrainedBPETokenizer`). ``path`` and ``captions`` are only used by ``"bpe"``.
        path: for ``"bpe"``: a saved tokenizer to load if it exists; else where the one trained on
            ``captions`` is saved.
        captions: for ``"bpe"``: captions to train on when ``path`` is absent or does not exist yet.
        vocab_size: for ``"bpe"`` training.

    Raises:
        ValueError: for an unknown name, or ``"bpe"`` with neither an existing ``path`` nor captions.
    """
    if name == "byte":
        return ByteTokenizer()
    if name == "clip":
        return ClipBPETokenizer()
    if name != "bpe":
        raise ValueError(f"unknown tokenizer {name!r}; expected one of {TOKENIZER_NAMES}")
    if path is not None and os.path.isfile(path):
        return TrainedBPETokenizer.load(path)
    if captions is None:
        where = f"{path} does not exist and " if path is not None else ""
        raise ValueError(
            f"tokenizer 'bpe' needs a saved tokenizer file or captions to train on: {where}no captions given"
        )
    tokenizer = TrainedBPETokenizer.train(captions, vocab_size=vocab_size)
    if path is not None:
        tokenizer.save(path)
    return tokenizer
