"""Tensor transforms: output shapes, normalisation, eval determinism, two independent views."""

import pytest
import torch

from infomug.data.transforms import eval_transform, pretrain_transform, two_view_transform

MEAN, STD = (0.2, 0.3, 0.4), (0.5, 0.25, 0.2)


def image(size=32, seed=0):
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed))


def test_eval_transform_is_deterministic_and_normalises():
    transform = eval_transform(32, MEAN, STD)
    x = image()
    out = transform(x)
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (3, 32, 32)
    assert torch.equal(out, transform(x))
    expected = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)  # same size: resize and crop are the identity
    assert torch.allclose(transform((x * 255).round().to(torch.uint8)), out, atol=0.02 / min(STD))
    cropped = eval_transform(28, MEAN, STD, crop_fraction=0.875)(image(64))
    assert cropped.shape == (3, 28, 28)
    # Bicubic resizing rings at a sharp edge (unclamped, this one spans [-0.06, 1.04]); the eval images
    # stay pixels once un-normalised, as `infomug measure` checks.
    edge = torch.zeros(3, 33, 33)
    edge[:, :, 11:] = 1.0
    pixels = eval_transform(28, MEAN, STD)(edge) * torch.tensor(STD).view(3, 1, 1)
    pixels += torch.tensor(MEAN).view(3, 1, 1)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_pretrain_transform_crops_to_size_and_is_random():
    torch.manual_seed(0)
    transform = pretrain_transform(24, MEAN, STD)
    x = image(48)
    outs = [transform(x) for _ in range(4)]
    assert all(o.shape == (3, 24, 24) and o.dtype == torch.float32 for o in outs)
    assert not torch.equal(outs[0], outs[1])


def test_pretrain_transform_without_flip_never_mirrors():
    x = torch.zeros(3, 32, 32)
    x[:, :, :4] = 1.0  # a bright band on the left edge
    transform = pretrain_transform(32, MEAN, STD, scale=(1.0, 1.0), hflip=False)
    flipping = pretrain_transform(32, MEAN, STD, scale=(1.0, 1.0), hflip=True)
    torch.manual_seed(1)
    left_heavy = [bool(t(x)[0, :, :16].mean() > t(x)[0, :, 16:].mean()) for t in [transform] * 20]
    mirrored = [bool(flipping(x)[0, :, :16].mean() < flipping(x)[0, :, 16:].mean()) for _ in range(40)]
    assert all(left_heavy) and 5 < sum(mirrored) < 35


def test_two_view_transform_returns_two_different_views():
    torch.manual_seed(0)
    views = two_view_transform(32, MEAN, STD)(image())
    assert views.shape == (2, 3, 32, 32) and views.dtype == torch.float32
    assert not torch.equal(views[0], views[1])
    no_jitter = two_view_transform(16, MEAN, STD, jitter=0.0)(image())
    assert no_jitter.shape == (2, 3, 16, 16)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: eval_transform(0, MEAN, STD), "image_size"),
        (lambda: eval_transform(32, (0.5, 0.5), STD), "3 channels"),
        (lambda: eval_transform(32, MEAN, (0.5, 0.0, 0.5)), "std"),
        (lambda: eval_transform(32, MEAN, STD, crop_fraction=1.5), "crop_fraction"),
        (lambda: pretrain_transform(32, MEAN, STD, scale=(0.5, 0.2)), "scale"),
        (lambda: two_view_transform(32, MEAN, STD, jitter=2.0), "jitter"),
    ],
)
def test_bad_arguments_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_two_view_transform_never_makes_nan_from_black_pixels():
    # Bicubic crops overshoot [0, 1]; colour jitter's HSV step used to turn such pixels into NaN.
    torch.manual_seed(0)
    transform = two_view_transform(32, (0.5,) * 3, (0.25,) * 3)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    image[:, 20:40, 20:40] = 255
    image[0, 30:35, :] = 200
    for source in (image, image.float() / 255):
        views = torch.stack([transform(source) for _ in range(100)])
        assert torch.isfinite(views).all()
