"""Image transforms on tensors (torchvision.transforms.v2), shared by every dataset.

Contract: a transform takes one image, ``[3, H, W]`` float in [0, 1] (as the embedded datasets produce)
or uint8 in [0, 255] / a PIL image (as readers may produce), and returns the *normalised* float32
image ``[3, S, S]``; `two_view_transform` returns ``[2, 3, S, S]``. Augmentations run on [0, 1] values,
normalisation last.

Captions that name left/right (the shapes world) are not flipped with the image: pass ``hflip=False``
for such data, or the caption contradicts the picture. Random crops also move and rescale objects;
world labels always describe the uncropped image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import InterpolationMode, v2


def _check(image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 channels, got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {tuple(std)}")


def _check_scale(scale: tuple[float, float]) -> None:
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")


def _crop(image_size: int, scale: tuple[float, float]) -> v2.Transform:
    if tuple(scale) == (1.0, 1.0):
        # A crop of the whole area is the whole image, squashed to a square: the same as a resize, which
        # draws no random numbers and costs less (the embedded world's default).
        return v2.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC, antialias=True)
    return v2.RandomResizedCrop(
        image_size, scale=scale, interpolation=InterpolationMode.BICUBIC, antialias=True
    )


class ClampUnit:
    """Clamp an image to [0, 1]: bicubic resizing overshoots it, and colour jitter's RGB -> HSV step turns a
    pixel whose channels are all <= 0 with a negative one into NaN (a third of SimCLR views of images with
    black regions were NaN before this)."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.clamp(0.0, 1.0)

    def __repr__(self) -> str:
        return "ClampUnit()"


def _to_float() -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


def pretrain_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    scale: tuple[float, float] = (0.2, 1.0),
    hflip: bool = True,
) -> v2.Compose:
    """MAE pre-training augmentation: random resized crop (bicubic), optional horizontal flip, normalise.

    He et al. (2022), "Masked Autoencoders Are Scalable Vision Learners": RandomResizedCrop with scale
    (0.2, 1.0) and a horizontal flip.

    Args:
        image_size: output side ``S`` in pixels.
        mean, std: per-channel statistics of images in [0, 1].
        scale: range of the crop's area as a fraction of the image.
        hflip: flip horizontally with probability 1/2 (use ``False`` when captions say left/right).

    Returns:
        A callable ``image -> [3, S, S]`` float32.

    Raises:
        ValueError: for a bad size, scale, or statistics.
    """
    _check(image_size, mean, std)
    _check_scale(scale)
    steps = [*_to_float(), _crop(image_size, scale)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.Normalize(list(mean), list(std)), v2.ToPureTensor()])


class TwoViews:
    """Apply one random transform twice and stack the results: ``image -> [2, 3, S, S]``."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.transform(image), self.transform(image)])

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


def two_view_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    scale: tuple[float, float] = (0.08, 1.0),
    hflip: bool = True,
    jitter: float = 0.4,
) -> TwoViews:
    """SimCLR augmentation, two independent views per image.

    Chen et al. (2020), "A Simple Framework for Contrastive Learning of Visual Representations":
    random resized crop, horizontal flip, colour jitter (brightness, contrast, saturation ``jitter``,
    hue ``jitter / 4``; the default 0.4 is the paper's CIFAR strength s = 0.5) with probability 0.8,
    grayscale with probability 0.2. Gaussian blur is left out, as the paper does for CIFAR-sized images.

    Args:
        image_size: output side ``S``.
        mean, std: per-channel statistics of images in [0, 1].
        scale: crop-area range.
        hflip: random horizontal flip (``False`` for data whose captions say left/right).
        jitter: colour-jitter strength in [0, 1]; 0 disables jitter.

    Returns:
        A callable ``image -> [2, 3, S, S]`` float32.

    Raises:
        ValueError: for a bad size, scale, jitter or statistics.
    """
    _check(image_size, mean, std)
    _check_scale(scale)
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be in [0, 1], got {jitter}")
    steps = [*_to_float(), _crop(image_size, scale), ClampUnit()]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if jitter > 0:
        steps.append(v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, jitter / 4)], p=0.8))
    steps += [v2.RandomGrayscale(p=0.2), v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]
    return TwoViews(v2.Compose(steps))


def eval_transform(
    image_size: int, mean: Sequence[float], std: Sequence[float], crop_fraction: float = 1.0
) -> v2.Compose:
    """Deterministic evaluation transform: resize the short side, center crop, clamp to [0, 1], normalise.

    Args:
        image_size: output side ``S``.
        mean, std: per-channel statistics of images in [0, 1].
        crop_fraction: ``S`` / resized short side; 1.0 keeps the whole image (the embedded datasets),
            0.875 is the usual ImageNet setting.

    Returns:
        A callable ``image -> [3, S, S]`` float32.

    Raises:
        ValueError: for a bad size, crop fraction or statistics.
    """
    _check(image_size, mean, std)
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    resized = round(image_size / crop_fraction)
    return v2.Compose(
        [
            *_to_float(),
            v2.Resize(resized, interpolation=InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(image_size),
            # Bicubic resizing of a photograph overshoots [0, 1]; the measurement un-normalises eval images
            # and refuses pixels outside it (timm, resizing uint8 images with PIL, clamps as well).
            ClampUnit(),
            v2.Normalize(list(mean), list(std)),
            v2.ToPureTensor(),
        ]
    )
