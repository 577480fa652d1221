"""Contrastive losses as pure functions of features, with negatives gathered across processes.

* `clip_loss`: symmetric image-text InfoNCE (Radford et al. 2021, CLIP; van den Oord et al. 2018).
* `nt_xent_loss`: SimCLR's normalised-temperature cross-entropy over two views (Chen et al. 2020).

Both use cosine similarity (features are L2-normalised here). Under `torch.distributed`, every process
scores its own rows against the features of all processes (`infomug.dist.gather_with_grad`); its
positives sit at offset ``rank * B``. On one process the gather is the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from infomug.dist import gather_with_grad, rank


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"{names} must both be [B, P] of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image->text and text->image cross-entropies over the global batch.

    ``logits = logit_scale * cos(image_i, text_j)``; the positive of row ``i`` is column ``rank * B + i``.
    With all features equal the loss is ``log(N)`` for a global batch of ``N``.

    Args:
        image_features: ``[B, P]``.
        text_features: ``[B, P]``, row ``i`` pairs with image ``i``.
        logit_scale: scalar multiplier (``exp`` of the learned log-scale, i.e. 1 / temperature).

    Returns:
        Scalar loss in nats.

    Raises:
        ValueError: if the feature shapes differ or are not 2-D.
    """
    _check_pair(image_features, text_features, "image_features and text_features")
    image = F.normalize(image_features, dim=-1)
    text = F.normalize(text_features, dim=-1)
    all_image, all_text = gather_with_grad(image), gather_with_grad(text)
    labels = torch.arange(image.shape[0], device=image.device) + rank() * image.shape[0]
    logits_per_image = logit_scale * image @ all_text.T
    logits_per_text = logit_scale * text @ all_image.T
    return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))


def nt_xent_loss(view1: torch.Tensor, view2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent over ``2N`` embeddings (``N`` the global batch): each one's positive is its other view.

    Anchor ``view1[i]`` scores every other embedding of both views (itself excluded), so with all
    embeddings equal the loss is ``log(2N - 1)``. The loss is the mean over all ``2B`` local anchors.

    Args:
        view1: ``[B, P]`` projections of the first views.
        view2: ``[B, P]`` projections of the second views.
        temperature: divides the cosine similarities; positive.

    Returns:
        Scalar loss in nats.

    Raises:
        ValueError: if the shapes differ or are not 2-D, or ``temperature <= 0``.
    """
    _check_pair(view1, view2, "view1 and view2")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z1, z2 = F.normalize(view1, dim=-1), F.normalize(view2, dim=-1)
    all_z = torch.cat([gather_with_grad(z1), gather_with_grad(z2)], dim=0)  # [2N, P]: views 1 then 2
    batch, total = z1.shape[0], all_z.shape[0] // 2
    own = torch.arange(batch, device=z1.device) + rank() * batch
    anchors = torch.cat([z1, z2], dim=0)  # [2B, P]
    self_index = torch.cat([own, own + total])
    positive_index = torch.cat([own + total, own])
    logits = anchors @ all_z.T / temperature
    logits = logits.masked_fill(
        torch.arange(2 * total, device=z1.device)[None, :] == self_index[:, None], float("-inf")
    )
    return F.cross_entropy(logits, positive_index)
