"""I(T; caption) on equal terms: a fresh caption decoder on frozen tokens, the same for every encoder.

The decoder family is fixed whatever the encoder, its token count ``M`` or its width ``D``:

* the frozen ``[N, M, D]`` token grid is read in the `CanonicalBasis` fitted on the train rows' tokens
  (so no invertible linear map of the features changes the number), projected by ``Linear(K, width)``
  and given a learned position embedding over the ``M`` tokens: the cross-attention memory;
* a small causal transformer decoder (`CAPTION_LAYERS` pre-norm layers, `CAPTION_HEADS` heads, no
  dropout) reads ``bos, caption tokens`` and predicts every next token, the end-of-caption token included;
* the per-caption loss is the sum of the token cross-entropies: nats per caption, not per token.

It trains on the train rows, stops early on the validation rows (`fit_decoder`) and is read on the test
rows. Two numbers come from it:

* with the data's exact ``H(caption)`` (the embedded world knows it): ``H - CE``, a Barber-Agakov lower
  bound on I(T; caption) (Barber & Agakov 2003), valid because the tokenization is lossless: each caption
  is one token sequence, so the decoder's sequence probabilities are a sub-probability over captions and
  its cross-entropy upper-bounds H(caption | T). It can be negative when the family models the captions'
  *wording* poorly, so the usable information below is reported with it;
* usable information (Xu et al. 2020, "A Theory of Usable Information under Computational Constraints"):
  ``CE_baseline - CE``, with `caption_baseline` the same family without features (its memory is one
  learned constant token). One baseline serves every encoder of a report.

Tokenization is derived from the captions alone, so it is the same for every encoder: a byte-level BPE
trained on the train split's captions when it round-trips every caption (``decode(encode(c)) == c``), else
UTF-8 bytes. The context length is the longest train caption plus a margin; longer validation or test
captions are excluded and counted in a warning, never truncated.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infomug.data.tokenizers import ByteTokenizer, TrainedBPETokenizer
from infomug.measure.usable.basis import CanonicalBasis
from infomug.measure.usable.estimates import DecodedInformation, information_from_losses
from infomug.measure.usable.fitting import DecoderSettings, fit_decoder, per_sample_losses, seeded
from infomug.measure.usable.splits import Splits

# Sized for a CPU (2 cores). On 10,000 world captions the no-feature baseline stops on patience at epoch
# 10 (best 8), its test cross-entropy within ~0.3 nats of the exact caption entropy, so width 32 models the
# wording well; features independent of the captions stop by epoch ~7; the world's factor labels as
# features still gain ~0.02 nats an epoch at epoch 10, hence 15 epochs at most. 4 heads (head size 8)
# cost ~1.5x per epoch on a CPU for the same width.
CAPTION_SETTINGS = DecoderSettings(width=32, max_epochs=15, patience=2, batch_size=128, lr=6e-3)
CAPTION_LAYERS = 2
CAPTION_HEADS = 2
FEEDFORWARD_RATIO = 4
BPE_VOCAB_SIZE = 512  # the world's captions saturate below it: every word becomes one token
CONTEXT_MARGIN = 0.25  # extra positions beyond the longest train caption, as a fraction (at least 4)
MICRO_BATCH = 64  # on a CPU, rows of similar length computed together: less padding, same losses
BASIS_ROWS = 50_000  # token rows the canonical basis is fitted on (strided): ample for D in the hundreds
TRANSFORM_CHUNK = 1024  # rows put through the canonical basis at once (it works in float64)
METHOD = "caption_decoder"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionTokens:
    """One report's captions as token ids, derived from the captions (and splits) alone.

    Attributes:
        tokenizer: ``"bpe"`` (trained on the train captions) or ``"byte"``.
        vocab_size: Ids, special ones included.
        context_length: ``T``: positions, ``bos`` and ``eos`` included.
        tokens: ``[N, T]`` int64: ``bos, ids..., eos``, then padding; rows that do not fit are all padding.
        lengths: ``[N]`` int64 real positions (``bos`` and ``eos`` included); 0 for rows that do not fit.
        fits: ``[N]`` bool: the caption fits the context.
        reason: Why this tokenizer was chosen.
    """

    tokenizer: str
    vocab_size: int
    context_length: int
    tokens: Tensor
    lengths: Tensor
    fits: np.ndarray
    reason: str

    def params(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "tokenizer_reason": self.reason,
        }


def tokenize_captions(captions: Sequence[str], splits: Splits) -> CaptionTokens:
    """Tokenize ``captions`` losslessly: BPE trained on ``captions[splits.train]`` if it round-trips all.

    Args:
        captions: ``N`` captions.
        splits: The rows; only the train rows train the BPE and set the context length.

    Raises:
        ValueError: for a caption that is not a string, or that even UTF-8 cannot encode.
    """
    for row, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise ValueError(f"caption {row} is a {type(caption).__name__}, not a string")
    train_captions = [captions[row] for row in splits.train]
    ids: list[list[int]] | None = None
    try:
        bpe = TrainedBPETokenizer.train(train_captions, vocab_size=BPE_VOCAB_SIZE)
    except ValueError:  # no non-empty train caption
        reason = "bytes: the train captions are all empty, no BPE to train"
    else:
        encoded = [bpe.encode(caption) for caption in captions]
        lossy = sum(bpe.decode(row) != caption for row, caption in zip(encoded, captions, strict=True))
        if lossy == 0:
            tokenizer: TrainedBPETokenizer | ByteTokenizer = bpe
            ids, reason = encoded, "bpe: trained on the train captions; round-trips every caption"
        else:
            reason = (
                f"bytes: the BPE (lowercasing, NFC, space-stripping) does not round-trip {lossy} captions"
            )
    if ids is None:
        tokenizer = ByteTokenizer()
        try:
            ids = [tokenizer.encode(caption) for caption in captions]
        except UnicodeEncodeError as error:
            raise ValueError(f"a caption cannot be encoded as UTF-8: {error}") from error
    sizes = np.array([len(row) + 2 for row in ids], dtype=np.int64)  # + bos, eos
    longest = int(sizes[splits.train].max())
    context_length = longest + max(4, math.ceil(CONTEXT_MARGIN * longest))
    fits = sizes <= context_length
    tokens = torch.full((len(ids), context_length), tokenizer.pad_id, dtype=torch.long)
    for row in np.flatnonzero(fits):
        tokens[row, : sizes[row]] = torch.tensor([tokenizer.bos_id, *ids[row], tokenizer.eos_id])
    lengths = torch.from_numpy(np.where(fits, sizes, 0))
    return CaptionTokens(
        tokenizer=tokenizer.name,
        vocab_size=tokenizer.vocab_size,
        context_length=context_length,
        tokens=tokens,
        lengths=lengths,
        fits=fits,
        reason=reason,
    )


class CaptionDecoder(nn.Module):
    """A small causal transformer decoder: next-token logits of a caption given a memory of tokens.

    Args:
        vocab_size: ``V``.
        context_length: ``T``, positions of the learned caption position embedding.
        width: ``w``.
        layers: Decoder layers.
        heads: Attention heads.
        feature_dim: ``K`` of the memory features, or None for the no-feature baseline (memory is one
            learned constant token).
        memory_tokens: ``M``, positions of the learned memory position embedding.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        *,
        width: int,
        layers: int = CAPTION_LAYERS,
        heads: int = CAPTION_HEADS,
        feature_dim: int | None = None,
        memory_tokens: int = 1,
    ) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(context_length, width))
        if feature_dim is None:
            self.memory_projection = None
            self.memory_position = nn.Parameter(0.02 * torch.randn(1, width))
        else:
            self.memory_projection = nn.Linear(feature_dim, width)
            self.memory_position = nn.Parameter(0.02 * torch.randn(memory_tokens, width))
        layer = nn.TransformerDecoderLayer(
            width, heads, FEEDFORWARD_RATIO * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(width))
        self.head = nn.Linear(width, vocab_size)

    def memory(self, features: Tensor | None, batch: int) -> Tensor:
        """``[B, M, K]`` features (None for the baseline) -> ``[B, M, w]`` cross-attention memory."""
        if self.memory_projection is None:
            return self.memory_position.expand(batch, -1, -1)
        if features is None:
            raise ValueError("this caption decoder reads features: pass them")
        return self.memory_projection(features) + self.memory_position

    def states(self, tokens: Tensor, features: Tensor | None = None) -> Tensor:
        """``[B, T]`` tokens (``bos`` first) and ``[B, M, K]`` features -> ``[B, T, w]`` final states.

        Position ``t`` sees tokens ``0..t`` only, so padding after a caption never changes its states.
        """
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.position_embedding[:length]
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        return self.decoder(x, self.memory(features, tokens.shape[0]), tgt_mask=causal, tgt_is_causal=True)

    def forward(self, tokens: Tensor, features: Tensor | None = None) -> Tensor:
        """``[B, T]`` tokens and ``[B, M, K]`` features -> ``[B, T, V]`` next-token logits."""
        return self.head(self.states(tokens, features))


def caption_losses(
    decoder: CaptionDecoder, tokens: Tensor, lengths: Tensor, features: Tensor | None
) -> Tensor:
    """``[B]`` per-caption cross-entropy in nats: the sum over its next tokens, ``eos`` included.

    Args:
        decoder: The decoder.
        tokens: ``[B, T]`` ``bos, ids..., eos`` then padding.
        lengths: ``[B]`` real positions (``bos`` and ``eos`` included), at least 2.
        features: ``[B, M, K]`` memory features, or None for the baseline.
    """
    used = int(lengths.max())  # trim the batch's common padding
    states = decoder.states(tokens[:, : used - 1], features)  # [B, used - 1, w]
    predicted = torch.arange(used - 1, device=tokens.device)[None, :] < (lengths - 1)[:, None]
    # The head only on real positions: padding would cost as much as the captions.
    nll = F.cross_entropy(decoder.head(states[predicted]), tokens[:, 1:used][predicted], reduction="none")
    owner = torch.arange(tokens.shape[0], device=tokens.device)[:, None].expand_as(predicted)[predicted]
    return torch.zeros(tokens.shape[0], dtype=nll.dtype, device=nll.device).index_add(0, owner, nll)


def bucketed_caption_losses(
    decoder: CaptionDecoder, tokens: Tensor, lengths: Tensor, features: Tensor | None, micro_batch: int
) -> Tensor:
    """`caption_losses` of micro-batches of similar length, in the input order (less padding on a CPU)."""
    if tokens.shape[0] <= micro_batch:
        return caption_losses(decoder, tokens, lengths, features)
    order = torch.argsort(lengths)
    parts = [
        caption_losses(decoder, tokens[rows], lengths[rows], None if features is None else features[rows])
        for rows in order.split(micro_batch)
    ]
    return torch.cat(parts)[torch.argsort(order)]


def _kept_rows(rows: np.ndarray, coding: CaptionTokens, what: str) -> tuple[np.ndarray, tuple[str, ...]]:
    kept = rows[coding.fits[rows]]
    dropped = rows.size - kept.size
    if dropped == 0:
        return kept, ()
    if kept.size < 2:
        raise ValueError(
            f"only {kept.size} of the {rows.size} {what} captions fit the context of {coding.context_length}"
            " tokens (the longest train caption plus a margin)"
        )
    return kept, (
        f"{dropped} of the {rows.size} {what} captions ({dropped / rows.size:.1%}) are longer than the"
        f" context of {coding.context_length} {coding.tokenizer} tokens (the longest train caption plus a"
        " margin) and are excluded, not truncated: the estimate is over the rest",
    )


def _check_captions(captions: Sequence[str], n: int | None) -> None:
    if isinstance(captions, str):
        raise ValueError("captions must be a sequence of captions, not a single string")
    if len(captions) == 0:
        raise ValueError("captions is empty")
    if n is not None and len(captions) != n:
        raise ValueError(f"got {len(captions)} captions for {n} rows of inputs")


def _fit_and_read(
    decoder: CaptionDecoder,
    coding: CaptionTokens,
    features: Tensor | None,
    splits: Splits,
    settings: DecoderSettings,
    device: torch.device,
    progress: bool | None,
    desc: str,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], tuple[str, ...]]:
    """Fit on the train rows, stopping on the kept val rows; ``[n_test]`` losses of the kept test rows."""
    tokens, lengths = coding.tokens.to(device), coding.lengths.to(device)

    def loss_of(rows: Tensor) -> Tensor:
        rows = rows.to(device)
        batch_features = None if features is None else features[rows]
        if device.type == "cpu":
            return bucketed_caption_losses(decoder, tokens[rows], lengths[rows], batch_features, MICRO_BATCH)
        return caption_losses(decoder, tokens[rows], lengths[rows], batch_features)

    val, val_warnings = _kept_rows(np.asarray(splits.val), coding, "validation")
    test, test_warnings = _kept_rows(np.asarray(splits.test), coding, "test")
    outcome = fit_decoder(
        decoder, loss_of, np.asarray(splits.train), val, settings, progress=progress, desc=desc
    )
    losses = per_sample_losses(decoder, loss_of, test, settings.batch_size)
    warnings = (*val_warnings, *test_warnings, *outcome.warnings(f"the {desc}"))
    return losses, test, outcome.to_params(), warnings


def caption_baseline(
    captions: Sequence[str],
    splits: Splits,
    *,
    settings: DecoderSettings = CAPTION_SETTINGS,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> np.ndarray:
    """``[n_test]`` per-caption cross-entropy (nats) of the caption decoder family *without* features.

    The same decoder, budget and tokenization as `caption_information`, but its memory is one learned
    constant token: an estimate of H_V(caption), the family's own entropy of the captions. Compute it once
    per report and pass it to every encoder's `caption_information`.

    Args:
        captions: ``N`` captions.
        splits: Train / validation / test rows.
        settings: The decoder budget (the same as the encoders').
        device: Where it trains.
        progress: tqdm bar over epochs (default: when stderr is a terminal).

    Returns:
        Losses of the test rows whose captions fit the context (all of them, save a warned exclusion),
        in ``splits.test`` order. Its caveats (exclusions, no convergence) are logged as warnings.

    Raises:
        ValueError: for empty captions or splits outside them.
    """
    _check_captions(captions, None)
    splits.check(len(captions), "captions")
    return _baseline_losses(
        tokenize_captions(captions, splits), splits, settings, torch.device(device), progress
    )


def _baseline_losses(
    coding: CaptionTokens,
    splits: Splits,
    settings: DecoderSettings,
    device: torch.device,
    progress: bool | None,
) -> np.ndarray:
    with seeded(settings.seed):
        decoder = CaptionDecoder(coding.vocab_size, coding.context_length, width=settings.width).to(device)
    losses, _, _, warnings = _fit_and_read(
        decoder, coding, None, splits, settings, device, progress, "caption baseline decoder"
    )
    for warning in warnings:  # the baseline returns bare losses: its caveats go to the log
        logger.warning(warning)
    return losses


def _token_grid(inputs: Any) -> np.ndarray:
    """``[N, M, D]`` (or ``[N, D]``, read as ``M = 1``) numpy or torch features, checked, as numpy."""
    if isinstance(inputs, Tensor):
        inputs = inputs.detach().cpu().numpy()
    x = np.asarray(inputs)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"inputs must be a non-empty [N, M, D] token grid or [N, D] features, got {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"inputs must be numeric, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("inputs contain NaN or infinite values")
    return x


def _canonical_features(x: np.ndarray, splits: Splits) -> tuple[np.ndarray, CanonicalBasis]:
    """``[N, M, K]`` float32 coordinates in the basis fitted on the train rows' tokens, and the basis."""
    basis = CanonicalBasis.fit(x[np.asarray(splits.train)], max_rows=BASIS_ROWS)
    chunks = [
        basis.transform(x[start : start + TRANSFORM_CHUNK]) for start in range(0, len(x), TRANSFORM_CHUNK)
    ]
    return np.concatenate(chunks), basis


def caption_information(
    inputs: Any,
    captions: Sequence[str],
    splits: Splits,
    *,
    caption_entropy: float | None = None,
    ceiling: float | None = None,
    baseline: np.ndarray | None = None,
    settings: DecoderSettings = CAPTION_SETTINGS,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> DecodedInformation:
    """Information about the captions that a fresh caption decoder reads from frozen features.

    Args:
        inputs: ``[N, M, D]`` frozen token grid (prefix tokens included), or ``[N, D]`` (``M = 1``);
            numpy or torch.
        captions: ``N`` captions, row-aligned with ``inputs``.
        splits: Train / validation / test rows (`Splits.make`).
        caption_entropy: The data's exact H(caption) in nats (`ShapesWorld.caption_entropy`). With it the
            value is the Barber-Agakov lower bound ``H - CE``; without it, the usable information
            ``CE_baseline - CE``.
        ceiling: The largest honest value, e.g. I(image; caption) when known.
        baseline: `caption_baseline` of the same captions, splits and settings; computed when None.
        settings: The decoder budget (the same for every encoder).
        device: Where the decoder trains; the data tensors live there too.
        progress: tqdm bars over epochs (default: when stderr is a terminal).

    Returns:
        A `DecodedInformation` (nats) over the kept test rows. ``params`` hold the family, the fit, and
        ``cross_entropy``, ``baseline_cross_entropy``, ``usable_information`` and ``usable_stderr``.

    Raises:
        ValueError: for captions not ``N`` long or empty, inputs of the wrong shape or non-finite, splits
            outside ``N``, or a baseline of the wrong length.
    """
    start = time.perf_counter()
    x = _token_grid(inputs)
    _check_captions(captions, x.shape[0])
    splits.check(len(captions), "captions")
    if caption_entropy is not None and not (math.isfinite(caption_entropy) and caption_entropy >= 0):
        raise ValueError(f"caption_entropy must be a finite number of nats >= 0, got {caption_entropy}")
    device = torch.device(device)
    coding = tokenize_captions(captions, splits)
    n_test = int(coding.fits[np.asarray(splits.test)].sum())
    if baseline is not None:
        baseline = np.asarray(baseline, dtype=np.float64)
        if baseline.shape != (n_test,) or not np.isfinite(baseline).all():
            raise ValueError(
                f"baseline must be [{n_test}] finite per-caption losses (the caption_baseline of the same"
                f" captions and splits), got shape {baseline.shape}"
            )
    canonical, basis = _canonical_features(x, splits)
    if baseline is None:
        baseline = _baseline_losses(coding, splits, settings, device, progress)
    features = torch.from_numpy(canonical).to(device)
    with seeded(settings.seed):
        decoder = CaptionDecoder(
            coding.vocab_size,
            coding.context_length,
            width=settings.width,
            feature_dim=basis.dim,
            memory_tokens=canonical.shape[1],
        ).to(device)
    losses, test, fit, warnings = _fit_and_read(
        decoder, coding, features, splits, settings, device, progress, "caption decoder"
    )
    usable = baseline - losses
    params: dict[str, Any] = {
        "layers": CAPTION_LAYERS,
        "width": settings.width,
        "heads": CAPTION_HEADS,
        "feedforward": FEEDFORWARD_RATIO * settings.width,
        **coding.params(),
        "memory_tokens": int(canonical.shape[1]),
        "input_dim": basis.input_dim,
        "basis_dim": basis.dim,
        "basis_dropped": basis.dropped,
        "n_train": int(len(splits.train)),
        "n_val": int(coding.fits[np.asarray(splits.val)].sum()),
        "n_test_excluded": int(len(splits.test) - test.size),
        "settings": settings.to_dict(),
        **fit,
        "cross_entropy": float(losses.mean()),
        "baseline_cross_entropy": float(baseline.mean()),
        "usable_information": float(usable.mean()),
        "usable_stderr": float(usable.std(ddof=1) / math.sqrt(usable.size)),
    }
    if caption_entropy is not None:
        params["caption_entropy"] = float(caption_entropy)
        per_sample, kind = caption_entropy - losses, "lower_bound"
    else:
        per_sample, kind = usable, "point"
        warnings = (
            *warnings,
            "usable information relative to the caption decoder family (its no-feature baseline's"
            " cross-entropy minus its cross-entropy with the features), not I(T; caption): pass the exact"
            " caption entropy for a Barber-Agakov lower bound",
        )
    return information_from_losses(
        per_sample,
        test,
        method=METHOD,
        params=params,
        kind=kind,
        ceiling=ceiling,
        seconds=time.perf_counter() - start,
        warnings=warnings,
    )
