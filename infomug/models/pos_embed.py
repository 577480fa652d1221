"""Fixed 2-D sine-cosine position embeddings, as in MAE (He et al. 2022, `util/pos_embed.py`)."""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Sine-cosine embedding of scalar positions.

    Args:
        dim: output width, even.
        positions: ``[M]`` positions.

    Returns:
        ``[M, dim]`` float64: ``sin`` of ``positions * omega`` then ``cos``, ``omega_i = 10000^(-2i/dim)``.

    Raises:
        ValueError: if ``dim`` is odd.
    """
    if dim % 2:
        raise ValueError(f"sine-cosine embedding width must be even, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid_size: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """Position embedding of a ``grid_h x grid_w`` patch grid in row-major order.

    The first half of the width encodes the column, the second half the row (MAE's layout). With
    ``cls_token`` a zero row is prepended: the class token gets no position, as in MAE.

    Args:
        dim: width, a multiple of 4.
        grid_size: ``(grid_h, grid_w)``.
        cls_token: prepend a zero row.

    Returns:
        ``[(1 +) grid_h * grid_w, dim]`` float32.

    Raises:
        ValueError: if ``dim`` is not a multiple of 4 or the grid is empty.
    """
    if dim % 4:
        raise ValueError(f"2-D sine-cosine embedding width must be a multiple of 4, got {dim}")
    grid_h, grid_w = grid_size
    if grid_h < 1 or grid_w < 1:
        raise ValueError(f"grid_size must be positive, got {grid_size}")
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    embedding = torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1)
    if cls_token:
        embedding = torch.cat([torch.zeros(1, dim, dtype=embedding.dtype), embedding], dim=0)
    return embedding.float()
