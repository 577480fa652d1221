"""Contrastive losses against naive loops and closed-form values (single process)."""

import math

import pytest
import torch
import torch.nn.functional as F

from infomug.objectives import clip_loss, nt_xent_loss


def naive_info_nce(image, text, scale):
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    n, total = image.shape[0], 0.0
    for i in range(n):
        row = [scale * float(image[i] @ text[j]) for j in range(n)]
        column = [scale * float(text[i] @ image[j]) for j in range(n)]
        total += -row[i] + math.log(sum(math.exp(v) for v in row))
        total += -column[i] + math.log(sum(math.exp(v) for v in column))
    return total / (2 * n)


def naive_nt_xent(z1, z2, temperature):
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    n, total = z1.shape[0], 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        scores = {j: float(z[i] @ z[j]) / temperature for j in range(2 * n) if j != i}
        total += -scores[positive] + math.log(sum(math.exp(v) for v in scores.values()))
    return total / (2 * n)


@pytest.mark.parametrize("seed, n, scale", [(0, 2, 1.0), (1, 7, 14.3), (2, 16, 100.0)])
def test_clip_loss_matches_the_loop(seed, n, scale):
    generator = torch.Generator().manual_seed(seed)
    image, text = torch.randn(n, 5, generator=generator), torch.randn(n, 5, generator=generator)
    loss = clip_loss(image, text, torch.tensor(scale))
    assert float(loss) == pytest.approx(naive_info_nce(image, text, scale), rel=1e-5)


@pytest.mark.parametrize("seed, n, temperature", [(0, 2, 1.0), (1, 7, 0.1), (2, 16, 0.5)])
def test_nt_xent_matches_the_loop(seed, n, temperature):
    generator = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(n, 6, generator=generator), torch.randn(n, 6, generator=generator)
    loss = nt_xent_loss(z1, z2, temperature)
    assert float(loss) == pytest.approx(naive_nt_xent(z1, z2, temperature), rel=1e-5)


@pytest.mark.parametrize("n", [1, 4, 32])
def test_identical_features_give_the_uniform_values(n):
    same = torch.ones(n, 8)
    assert float(clip_loss(same, same, torch.tensor(10.0))) == pytest.approx(math.log(n), abs=1e-5)
    assert float(nt_xent_loss(same, same, 0.1)) == pytest.approx(math.log(2 * n - 1), abs=1e-5)


@pytest.mark.parametrize("scale", [1.0, 5.0, 20.0])
def test_aligned_orthonormal_pairs_give_the_closed_form(scale):
    n = 6
    basis = torch.eye(n)
    # logits = scale * I: each row's loss is log(e^s + (n - 1)) - s.
    expected = math.log(math.exp(scale) + n - 1) - scale
    assert float(clip_loss(basis, basis, torch.tensor(scale))) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # NT-Xent: the positive scores 1/T, the 2n - 2 other embeddings are orthogonal (score 0).
    temperature = 1.0 / scale
    expected = math.log(math.exp(scale) + 2 * n - 2) - scale
    assert float(nt_xent_loss(basis, basis, temperature)) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_losses_are_scale_free_and_shapes_checked():
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(nt_xent_loss(z1, z2), nt_xent_loss(3 * z1, 0.5 * z2))
    with pytest.raises(ValueError, match="one shape"):
        clip_loss(z1, z2[:3], torch.tensor(1.0))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(z1, z2, 0.0)
