"""Sample PNGs written during training: MAE/MUG reconstructions, and MUG's generated captions."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from infomug.data import Tokenizer
from infomug.models import generate_captions, reconstruct


def save_training_samples(
    objective: nn.Module,
    images: torch.Tensor,
    path: str | Path,
    mean: Sequence[float],
    std: Sequence[float],
    captions: Sequence[str] | None = None,
    tokenizer: Tokenizer | None = None,
    seed: int = 0,
) -> Path:
    """Write one column per image: original, masked and reconstructed, with captions for MUG.

    Under each column: the true caption (if given) and, when the objective has a caption decoder and a
    ``tokenizer`` is given, the greedy caption it generates from the unmasked image.

    Args:
        objective: a ``mae`` or ``mug`` objective (unwrapped from DDP).
        images: ``[B, 3, H, W]`` normalised images on the objective's device.
        path: the PNG to write (folders created).
        mean, std: the normalisation statistics, to show true colours.
        captions: ``B`` true captions.
        tokenizer: MUG's tokenizer.
        seed: seed of the masks.

    Returns:
        ``path``.

    Raises:
        ValueError: if the objective has no pixel decoder.
    """
    # A bare Figure draws with Agg without pyplot: the caller's backend (a notebook's) stays as it is.
    from matplotlib.figure import Figure

    generator = torch.Generator(device=images.device).manual_seed(seed)
    with torch.no_grad():
        masked, reconstructed = reconstruct(objective, images, generator)
    generated = None
    if tokenizer is not None and getattr(objective, "caption_decoder", None) is not None:
        max_len = min(30, objective.caption_decoder.context_length - 1)
        with torch.no_grad():
            generated = generate_captions(objective, None, images, tokenizer, max_len=max_len)
    shift = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    scale = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    rows = [(x.detach().float().cpu() * scale + shift).clamp(0, 1) for x in (images, masked, reconstructed)]
    count = images.shape[0]
    figure = Figure(figsize=(1.9 * count, 6.8))
    axes = figure.subplots(3, count, squeeze=False)
    for row, (name, pictures) in enumerate(zip(("image", "masked", "reconstruction"), rows, strict=True)):
        for column in range(count):
            axis = axes[row, column]
            axis.imshow(pictures[column].permute(1, 2, 0).numpy(), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(name, fontsize=8)
    for column in range(count):
        lines = []
        if captions is not None:
            lines.append("true: " + captions[column])
        if generated is not None:
            # An untrained decoder emits any token, control characters included, which fonts lack.
            text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in generated[column])
            lines.append("generated: " + (text or "(empty)"))
        if lines:
            text = "\n".join(textwrap.fill(line, 28, max_lines=3, placeholder=" ...") for line in lines)
            axes[2, column].set_xlabel(text, fontsize=6, loc="left")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
