"""Sine-cosine position embedding against MAE's numpy formula, written out here as the reference."""

import numpy as np
import pytest
import torch

from infomug.models.pos_embed import sincos_2d


def mae_reference(dim, grid):
    # MAE util/pos_embed.py: meshgrid(w, h) so the first half encodes the column, the second the row.
    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_w, grid_h = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    emb = np.concatenate([one_d(dim // 2, grid_w), one_d(dim // 2, grid_h)], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0)


@pytest.mark.parametrize("dim, grid", [(32, 4), (192, 8), (64, 3)])
def test_matches_mae_with_a_zero_class_position(dim, grid):
    ours = sincos_2d(dim, (grid, grid))
    assert ours.shape == (1 + grid * grid, dim)
    assert torch.equal(ours[0], torch.zeros(dim))
    np.testing.assert_allclose(ours.numpy(), mae_reference(dim, grid), atol=1e-6)


def test_width_must_be_a_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d(30, (4, 4))
