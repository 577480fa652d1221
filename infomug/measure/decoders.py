"""Information bounds from a model's own decoders (Barber & Agakov 2003, "The IM algorithm").

For any decoder q(a | t), I(A; T) >= H(A) - E[-log q(a | t)]. MAE and MUG train such decoders on the
visible-patch encoding T of a masked image, so their held-out likelihoods prove lower bounds:

* `caption_decoder_bound` (MUG): A = the caption, q = the caption decoder's teacher-forced token
  probabilities, H(caption) known exactly in the shapes world (`ShapesWorld.caption_entropy`). With
  `caption_cross_entropy` alone one can still report the cross-entropy where H(caption) is unknown.
* `infomug.measure.pixel_decoder.pixel_decoder_bound` (MAE, MUG): the pixel decoder's bound on a
  masked patch, using the masks and sample batches defined here.

Masks are drawn from one generator seeded by ``seed`` (noise ``[n, L]`` first, then the patch picks), the
same for both functions and any batch size, at the objective's training mask ratio.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, IterableDataset
from tqdm.auto import tqdm

from estimators import Estimate, barber_agakov_bound
from estimators.preprocessing import make_generator
from infomug.data import CaptionCollate, Sample, Tokenizer, is_skipped

CAPTION_PARTS = ("encoder", "caption_decoder", "mask_ratio")


def require_parts(objective: nn.Module, parts: Sequence[str], what: str) -> None:
    missing = [part for part in parts if not hasattr(objective, part)]
    if missing:
        raise ValueError(
            f"{what} needs an objective with {', '.join(parts)}; {type(objective).__name__} lacks "
            f"{', '.join(missing)} (only MUG has a caption decoder; MAE and MUG have a pixel decoder)"
        )


def check_count(n: int, batch_size: int) -> None:
    for name, value in (("n", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def available(dataset: Dataset | IterableDataset, n: int) -> int:
    """``n``, capped at a map-style dataset's length (a stream's length is unknown until it ends)."""
    return n if isinstance(dataset, IterableDataset) else min(n, len(dataset))


def sample_batches(dataset: Dataset | IterableDataset, n: int, batch_size: int) -> Iterator[list[Sample]]:
    """The first ``n`` samples (fewer if the dataset is shorter, or skips bad ones) in batches, in order."""
    if isinstance(dataset, IterableDataset):
        stream = iter(dataset)
        batch_size = min(batch_size, n)
        while batch := list(itertools.islice(stream, batch_size)):
            yield batch
            n -= len(batch)
            if n <= 0:
                return
            batch_size = min(batch_size, n)
        return
    count = min(n, len(dataset))
    for start in range(0, count, batch_size):
        indices = list(range(start, min(start + batch_size, count)))
        if hasattr(dataset, "__getitems__"):
            batch = dataset.__getitems__(indices)  # the world renders a batch at once
        else:
            batch = [dataset[index] for index in indices]
        # A bad sample's marker holds the next good one: kept, that one would count twice.
        batch = [sample for sample in batch if not is_skipped(sample)]
        if batch:
            yield batch


def no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # tqdm: None = off unless on a terminal


def num_patches(objective: nn.Module) -> int:
    return math.prod(objective.encoder.grid_size)


@contextmanager
def evaluating(objective: nn.Module) -> Iterator[None]:
    was_training = objective.training
    objective.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        objective.train(was_training)


def mask_draws(objective: nn.Module, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask noise ``[n, L]`` (as `random_masking` reads it) and one masked-patch pick ``[n]`` per image."""
    length = num_patches(objective)
    masked = length - int(length * (1 - objective.mask_ratio))
    generator = make_generator(seed)
    noise = torch.rand(n, length, generator=generator)
    picks = torch.randint(0, max(masked, 1), (n,), generator=generator)
    return noise, picks


def caption_cross_entropy(
    objective: nn.Module,
    dataset: Dataset | IterableDataset,
    tokenizer: Tokenizer,
    *,
    n: int,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    seed: int = 0,
    masked: bool = True,
    progress: bool | None = None,
) -> np.ndarray:
    """Each caption's teacher-forced negative log-likelihood under a MUG caption decoder, in nats.

    Captions are tokenized as in training (`CaptionCollate` at the decoder's context length: ``bos``, ids,
    ``eos``; a longer caption is cut and keeps its ``eos``). Every token after ``bos`` up to and including
    ``eos`` is predicted from the ones before it and the image latent, exactly as `CaptionDecoder.loss`
    does; the per-token NLLs of one caption are summed.

    Args:
        objective: a MUG objective (``encoder``, ``caption_decoder``, ``mask_ratio``); moved to ``device``
            in place, and in eval mode for the duration.
        dataset: map-style or iterable dataset of `Sample` with captions; its first ``n`` samples are used.
        tokenizer: the run's tokenizer (a checkpoint's ``tokenizer.json``).
        n: most captions to score (fewer if the dataset is shorter).
        batch_size: images per forward pass.
        device: where to compute.
        seed: seeds the masks (see the module docstring).
        masked: encode images masked at the training ratio, as the decoder was trained (default); False
            encodes every patch (`forward_features`), a setting the decoder never saw in training.
        progress: a progress bar; None = only on a terminal.

    Returns:
        ``[N]`` float64 summed token NLLs in nats, ``N = min(n, len(dataset))``.

    Raises:
        ValueError: for an objective without a caption decoder, a non-positive ``n`` or ``batch_size``,
            an empty dataset, or token ids outside the decoder's vocabulary.
    """
    nll, _ = _caption_nll(objective, dataset, tokenizer, n, batch_size, device, seed, masked, progress)
    return nll


def _caption_nll(
    objective: nn.Module,
    dataset: Dataset | IterableDataset,
    tokenizer: Tokenizer,
    n: int,
    batch_size: int,
    device: str | torch.device,
    seed: int,
    masked: bool,
    progress: bool | None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Per-caption NLLs and counts of captions that tokenization cut or changed."""
    require_parts(objective, CAPTION_PARTS, "the caption decoder bound")
    check_count(n, batch_size)
    n = available(dataset, n)  # mask noise is [n, L]: never for more images than there are
    decoder = objective.caption_decoder
    encoder = objective.encoder
    collate = CaptionCollate(tokenizer, context_length=decoder.context_length)
    noise, _ = mask_draws(objective, n, seed)
    objective.to(device)
    parts: list[torch.Tensor] = []
    counts = {"truncated": 0, "not_lossless": 0}
    done = 0
    with (
        evaluating(objective),
        tqdm(total=n, desc="caption decoder", disable=no_bar(progress), leave=False) as bar,
    ):
        for samples in sample_batches(dataset, n, batch_size):
            batch = collate(samples)
            images = batch["image"].to(device)
            tokens, lengths = batch["tokens"].to(device), batch["lengths"].to(device)
            if masked:
                rows = noise[done : done + len(samples)]
                latent = encoder.forward_masked(images, objective.mask_ratio, noise=rows)[0]
            else:
                latent = encoder.forward_features(images)
            # CaptionDecoder.loss, unreduced and summed per caption.
            logits, targets, real = decoder.predicted_tokens(tokens, lengths, latent)
            token_nll = F.cross_entropy(logits.float(), targets, reduction="none")
            rows_of = torch.arange(tokens.shape[0], device=tokens.device)[:, None].expand_as(real)[real]
            per_caption = torch.zeros(tokens.shape[0], dtype=torch.float64, device=tokens.device)
            parts.append(per_caption.index_add_(0, rows_of, token_nll.double()).cpu())
            for caption, length in zip(batch["captions"], lengths.tolist(), strict=True):
                ids = tokenizer.encode(caption)
                counts["truncated"] += length == tokens.shape[1] and len(ids) > length - 2
                counts["not_lossless"] += tokenizer.decode(ids) != caption
            done += len(samples)
            bar.update(len(samples))
    if not parts:
        raise ValueError("the dataset yielded no sample")
    return torch.cat(parts).numpy(), counts


def caption_decoder_bound(
    objective: nn.Module,
    dataset: Dataset | IterableDataset,
    tokenizer: Tokenizer,
    *,
    n: int,
    caption_entropy: float | None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    seed: int = 0,
    masked: bool = True,
    progress: bool | None = None,
) -> Estimate:
    """Barber-Agakov lower bound I(T; caption) >= H(caption) - E[-log q(caption | T)], in nats.

    T is the encoder's latent of the (masked, by default) image that MUG's caption decoder reads; the
    cross-entropy is the mean of `caption_cross_entropy` over the first ``n`` samples. The bound is valid
    when the tokenizer is lossless on the captions (the decoder's probability of the token sequence is
    then at most that of the caption; a warning counts captions it changes) and no caption is cut by the
    context length (a cut caption's entropy is below H(caption), so the bound may overstate; a warning
    counts them). The ceiling is H(caption).

    Args:
        objective, dataset, tokenizer, n, batch_size, device, seed, masked, progress: as
            `caption_cross_entropy`.
        caption_entropy: H(caption) in nats, e.g. `ShapesWorld.caption_entropy` (string entropy, wording
            included); None where it is unknown (users' data).

    Returns:
        An `Estimate` (``kind="lower_bound"``, ``ceiling=H(caption)``) with ``params`` ``masked``,
        ``mask_ratio``, ``n``, ``tokenizer``, ``layer``, ``context_length``, ``cross_entropy`` (nats per
        caption) and ``entropy``.

    Raises:
        ValueError: if ``caption_entropy`` is None (report the cross-entropy alone instead), or as
            `caption_cross_entropy`.
    """
    start = time.perf_counter()
    require_parts(objective, CAPTION_PARTS, "the caption decoder bound")
    if caption_entropy is None:
        raise ValueError(
            "H(caption) unknown: the Barber-Agakov bound needs the caption entropy (known for the shapes "
            "world); report caption_cross_entropy(...) alone instead"
        )
    nll, counts = _caption_nll(objective, dataset, tokenizer, n, batch_size, device, seed, masked, progress)
    bound = barber_agakov_bound(nll, float(caption_entropy))
    warnings = []
    if counts["truncated"]:
        warnings.append(
            f"{counts['truncated']} of {nll.size} captions exceed the context of "
            f"{objective.caption_decoder.context_length} tokens and were cut as in training: their "
            "cross-entropy is that of the cut caption, whose entropy is below H(caption), so the bound may "
            "overstate I(T; caption)"
        )
    if counts["not_lossless"]:
        warnings.append(
            f"{counts['not_lossless']} of {nll.size} captions do not survive tokenization unchanged: the "
            "decoder models a normalised caption with less entropy than H(caption), so the bound may "
            "overstate"
        )
    if not masked:
        warnings.append(
            "unmasked images: the caption decoder was trained on masked-image latents, so this measures "
            "a setting it never saw"
        )
    params = {
        **bound.params,
        "masked": masked,
        "mask_ratio": float(objective.mask_ratio) if masked else 0.0,
        "n": int(nll.size),
        "tokenizer": getattr(tokenizer, "name", type(tokenizer).__name__),
        "context_length": objective.caption_decoder.context_length,
        "layer": "last (final norm)",
        "seed": seed,
    }
    return bound.with_extra(warnings=tuple(warnings), params=params, seconds=time.perf_counter() - start)
