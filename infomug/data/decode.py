"""Image bytes or files to float tensors, with decode failures classified for bad-sample counting.

Every reader decodes through `decode_image`, so all of them agree on what a bad image is:

* ``unreadable_image``: PIL cannot identify or decode it (not an image, corrupt header or data).
* ``truncated_image``: the data ends early (an interrupted download). Decoding is forced with
  ``load()``, because ``Image.open`` only reads the header and would let a truncated file through.
* ``missing_image``: a path that does not exist (`load_image_file`).

Grayscale (8- and 16-bit), RGBA, CMYK and palette images are converted to RGB: they are not bad. A
truncated image is only caught while PIL's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` is False (its
default); this module never changes it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .bad_samples import BadSample

Transform = Callable[[torch.Tensor], torch.Tensor]
"""What readers accept as ``transform``: float ``[3, H, W]`` in [0, 1] -> any tensor (normalised, or
``[2, 3, H, W]`` for two views)."""

IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16"):
        # 16-bit greyscale (PNG, TIFF): convert("RGB") clips at 255 rather than scaling, which would turn
        # the image almost white. Scale 0..65535 to 0..255 instead.
        levels = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.rint(levels).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        # Going through RGBA avoids PIL's warning about byte transparency in palette images.
        image = image.convert("RGBA")
    return image.convert("RGB")


def decode_image(data: bytes, key: str) -> torch.Tensor:
    """Decode encoded image bytes (JPEG, PNG, WebP, ...) to RGB.

    Args:
        data: the encoded file's bytes.
        key: the sample's name, carried in the `BadSample` raised.

    Returns:
        float32 ``[3, H, W]`` with values in [0, 1].

    Raises:
        BadSample: with reason ``truncated_image`` or ``unreadable_image``.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = _to_rgb(image)
            array = np.array(rgb, dtype=np.uint8)
    except UnidentifiedImageError as error:
        raise BadSample("unreadable_image", key, "not a recognisable image") from error
    except OSError as error:
        reason = "truncated_image" if "truncated" in str(error).lower() else "unreadable_image"
        raise BadSample(reason, key, str(error)) from error
    # Decoders raise many types for corrupt data (SyntaxError for broken PNG chunks, ValueError,
    # zlib errors, DecompressionBombError); all of them mean the same thing here.
    except Exception as error:
        raise BadSample("unreadable_image", key, f"{type(error).__name__}: {error}") from error
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise BadSample("unreadable_image", key, f"decoded to an array of shape {array.shape}")
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def load_image_file(path: str | Path, key: str | None = None) -> torch.Tensor:
    """Read and decode one image file; see `decode_image`.

    Args:
        path: the image file.
        key: the sample's name for errors; defaults to the path.

    Returns:
        float32 ``[3, H, W]`` in [0, 1].

    Raises:
        BadSample: ``missing_image`` if the file does not exist or cannot be read, else as `decode_image`.
    """
    name = str(path) if key is None else key
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise BadSample("missing_image", name, str(error)) from error
    return decode_image(data, name)


def apply_transform(image: torch.Tensor, transform: Transform | None) -> torch.Tensor:
    """``transform(image)``, or the image itself when there is no transform."""
    return image if transform is None else transform(image)
