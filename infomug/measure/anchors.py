"""Sanity anchors: features whose information about the labels is known without any estimator.

* `oracle_features`: an "oracle encoder" that outputs the named factors themselves (one-hot), so
  I(T; factor) = H(factor) for each of them: every lower bound should come close to its ceiling.
* `independent_features`: noise drawn independently of everything, so I(T; label) = 0 and a probe
  can do no better than the majority class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def oracle_features(labels: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """One-hot codes of each named discrete label, side by side: ``[N, sum_l C_l]`` float32.

    Columns follow ``names``, and within a label its sorted distinct values (``C_l`` of them).

    Args:
        labels: ``{name: [N] discrete values}``.
        names: The labels to encode, at least one.

    Raises:
        ValueError: for no names, an unknown name, a label that is not a 1-D integer (or bool) array,
            or labels of different lengths.
    """
    if not names:
        raise ValueError("oracle_features needs at least one label name")
    blocks = []
    for name in names:
        if name not in labels:
            raise ValueError(f"unknown label {name!r}; known: {sorted(labels)}")
        values = np.asarray(labels[name])
        if values.ndim != 1 or values.dtype.kind not in "biu":
            raise ValueError(
                f"label {name!r} must be a 1-D integer array, got dtype {values.dtype} shape {values.shape}"
            )
        if blocks and len(values) != len(blocks[0]):
            raise ValueError(f"label {name!r} has {len(values)} values, {names[0]!r} has {len(blocks[0])}")
        _, codes = np.unique(values, return_inverse=True)
        codes = codes.reshape(-1)
        blocks.append(np.eye(int(codes.max()) + 1, dtype=np.float32)[codes])
    return np.concatenate(blocks, axis=1)


def independent_features(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``[n, dim]`` float32 standard normal features, independent of any label.

    Raises:
        ValueError: for non-positive ``n`` or ``dim``.
    """
    if n < 1 or dim < 1:
        raise ValueError(f"n and dim must be positive, got n={n}, dim={dim}")
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def pixel_features(
    images: np.ndarray, *, patch: int, train_rows: np.ndarray, components: int = 192
) -> tuple[np.ndarray, np.ndarray]:
    """The raw-pixel anchor: what an encoder that keeps the whole image would output.

    Args:
        images: ``[N, C, H, W]`` uint8 images.
        patch: Side of the square patches of the token grid (must divide H and W).
        train_rows: Rows the principal components are fitted on (the test rows never inform them).
        components: Principal components of the pooled vector (at most ``min(len(train_rows), C*H*W)``).

    Returns:
        ``(pooled [N, k], grid [N, (H/patch)*(W/patch), patch*patch*C])`` float32: the top ``k``
        principal components of the flattened image, and the image's patches as tokens.

    Raises:
        ValueError: for images that are not ``[N, C, H, W]``, or a patch that does not divide them.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {images.shape}")
    n, channels, height, width = images.shape
    if height % patch or width % patch:
        raise ValueError(f"patch {patch} does not divide images of {height}x{width}")
    x = images.astype(np.float32) / 255.0
    grid = x.reshape(n, channels, height // patch, patch, width // patch, patch)
    grid = grid.transpose(0, 2, 4, 3, 5, 1).reshape(n, (height // patch) * (width // patch), -1)
    flat = x.reshape(n, -1)
    mean = flat[train_rows].mean(axis=0)
    k = int(min(components, len(train_rows), flat.shape[1]))
    _, _, right = np.linalg.svd(flat[train_rows] - mean, full_matrices=False)
    pooled = (flat - mean) @ right[:k].T
    return np.ascontiguousarray(pooled, dtype=np.float32), np.ascontiguousarray(grid)
