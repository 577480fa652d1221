"""Lists of `Sample` into the batch dict the objectives consume.

``DataLoader(dataset, batch_size=B, collate_fn=CaptionCollate(tokenizer, context_length=T))`` yields::

    {"image": float [B, 3, H, W] (or [B, 2, 3, H, W] for two views),
     "tokens": int64 [B, T], "lengths": int64 [B],      # omitted when the tokenizer is None
     "labels": {name: int64 or float32 [B]},            # names present in every sample
     "captions": list[str]}

Tokens are ``bos, ids..., eos`` then padding (see `infomug.data.tokenizers.encode_batch`); losses must
mask by ``lengths``, since a pad id can be a real token.

`Skipped` markers (a map-style reader's answer for a sample found bad when loaded, already counted in its
``bad_samples``) are dropped, so such a batch holds fewer than ``B`` samples rather than a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .bad_samples import is_skipped
from .sample import Sample
from .tokenizers import Tokenizer, encode_batch


def collate_labels(samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
    """``{name: [B] tensor}`` for the label names present in every sample.

    A label whose values are all ints (not bools) becomes int64; any float makes it float32.

    Raises:
        ValueError: if a label value is not a number.
    """
    shared = set(samples[0]["labels"])
    for sample in samples[1:]:
        shared &= set(sample["labels"])
    labels: dict[str, torch.Tensor] = {}
    for name in sorted(shared):
        values = [sample["labels"][name] for sample in samples]
        if any(isinstance(value, bool) or not isinstance(value, int | float) for value in values):
            raise ValueError(f"label {name!r} has a non-numeric value: {values[:5]}")
        dtype = torch.int64 if all(isinstance(value, int) for value in values) else torch.float32
        labels[name] = torch.tensor(values, dtype=dtype)
    return labels


class CaptionCollate:
    """``collate_fn`` stacking images, tokenizing captions and gathering labels; picklable for workers.

    Args:
        tokenizer: tokenizes captions into ``tokens`` / ``lengths``; None leaves both out (image-only
            objectives such as MAE and SimCLR).
        context_length: ``T``, at least 2 (``bos`` and ``eos``); longer captions are cut, keeping ``eos``.

    Raises:
        ValueError: if ``context_length < 2``.
    """

    def __init__(self, tokenizer: Tokenizer | None, context_length: int = 77) -> None:
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2 (room for bos and eos), got {context_length}")
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, samples: Sequence[Sample]) -> dict:
        """Collate ``B`` samples.

        Returns:
            ``{"image", "tokens", "lengths", "labels", "captions"}`` as in the module docstring, over the
            samples that are not `Skipped`.

        Raises:
            ValueError: for an empty list, a list of `Skipped` markers only, images of different shapes, or
                a non-numeric label.
        """
        if len(samples) == 0:
            raise ValueError("cannot collate an empty list of samples")
        asked = len(samples)
        samples = [sample for sample in samples if not is_skipped(sample)]
        if not samples:
            raise ValueError(
                f"every one of the {asked} samples of this batch is bad (see the dataset's bad_samples):"
                " the data holds too many unreadable images for a batch this small"
            )
        shapes = {tuple(sample["image"].shape) for sample in samples}
        if len(shapes) > 1:
            raise ValueError(
                f"images in one batch must share a shape (use a resizing transform), got {shapes}"
            )
        captions = [sample["caption"] for sample in samples]
        batch: dict = {"image": torch.stack([sample["image"] for sample in samples])}
        if self.tokenizer is not None:
            tokens = encode_batch(self.tokenizer, captions, self.context_length)
            batch["tokens"], batch["lengths"] = tokens.tokens, tokens.lengths
        batch["labels"] = collate_labels(samples)
        batch["captions"] = captions
        return batch
