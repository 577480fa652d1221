"""Image bytes or files to float tensors, with decode failures classified for bad-sample counting.

Every reader decodes through `decode_image`, so all of them agree on what a bad image is:

* ``unreadable_image``: PIL cannot identify or decode it (not an image, corrupt header or data).
* ``truncated_image``: the data ends early (an interrupted download). Decoding is forced with
  ``load()``, because ``Image.open`` only reads the header and would let a truncated file through.
* ``missing_image``: a path that does not exist or cannot be opened (`load_image_file`).

`load_image_file` reads only what a list of paths (a TSV row, a COCO ``file_name``) may safely name:

* ``not_a_regular_file``: a directory, a device (``/dev/zero`` would be read until memory runs out), a FIFO
  (its ``open`` would wait for a writer forever) or a socket. Checked with ``os.stat`` before opening, and
  again on the opened descriptor (opened with ``O_NONBLOCK``), so a path swapped in between cannot hang it.
* ``image_too_large``: a file over ``max_bytes`` (default `DEFAULT_MAX_IMAGE_BYTES`).
* ``outside_root``: given a ``root``, a path that resolves (``..``, an absolute path, a symlink) outside it.

Grayscale (8- and 16-bit), RGBA, CMYK and palette images are converted to RGB: they are not bad. A
truncated image is only caught while PIL's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` is False (its
default); this module never changes it.
"""

from __future__ import annotations

import functools
import io
import os
import stat
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

DEFAULT_MAX_IMAGE_BYTES = 64 * 2**20
"""Largest image file `load_image_file` reads (``data.max_image_bytes``): far above any photograph a
training set holds, far below what would exhaust memory in a few DataLoader workers."""


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


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` lies under the folder ``root`` once ``..`` and symlinks are resolved."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, real_root]) == real_root


def spelled_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` is under ``root`` as spelled (``..`` collapsed, no file system access but ``root``'s
    own symlinks): a quick check for every row of a listing; `is_inside`, when the file is read, is the
    one that resolves symlinks in ``path``."""
    spelled = os.path.normpath(os.path.abspath(path))
    return any(os.path.commonpath([spelled, folder]) == folder for folder in _spellings(os.fspath(root)))


@functools.lru_cache(maxsize=16)
def _spellings(root: str) -> frozenset[str]:
    # Cached: a listing checks millions of rows against one root, and realpath stats each of its folders.
    return frozenset({os.path.abspath(root), os.path.realpath(root)})


def read_image_bytes(
    path: str | Path,
    key: str | None = None,
    *,
    root: str | os.PathLike | None = None,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> bytes:
    """The bytes of one image file, refusing what is not a regular file under ``root`` of at most
    ``max_bytes``; see the module docstring.

    Args:
        path: the image file.
        key: the sample's name for errors; defaults to the path.
        root: if given, refuse a path that resolves outside this folder.
        max_bytes: largest file read.

    Raises:
        BadSample: ``outside_root``, ``missing_image``, ``not_a_regular_file`` or ``image_too_large``.
    """
    name = str(path) if key is None else key
    if root is not None and not is_inside(path, root):
        raise BadSample(
            "outside_root",
            name,
            f"resolves to {os.path.realpath(path)}, outside the image root {root}; set"
            " data.allow_outside_root=true to read such paths",
        )
    try:
        # stat before open: opening a FIFO blocks until a writer comes, and some devices act on open.
        _check_file(os.stat(path), name, max_bytes)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:  # not found, permission denied, a symlink loop, ...
        raise BadSample("missing_image", name, str(error)) from error
    with os.fdopen(descriptor, "rb") as handle:
        _check_file(os.fstat(descriptor), name, max_bytes)  # the file opened, not the one stat-ed
        try:
            data = handle.read(max_bytes + 1)  # it may have grown since
        except OSError as error:
            raise BadSample("unreadable_image", name, str(error)) from error
    if len(data) > max_bytes:
        raise BadSample("image_too_large", name, f"over {max_bytes} bytes (data.max_image_bytes)")
    return data


def _check_file(status: os.stat_result, name: str, max_bytes: int) -> None:
    if not stat.S_ISREG(status.st_mode):
        kind = "a directory" if stat.S_ISDIR(status.st_mode) else "a device, FIFO or socket"
        raise BadSample("not_a_regular_file", name, f"{kind}, not a regular file")
    if status.st_size > max_bytes:
        raise BadSample(
            "image_too_large", name, f"{status.st_size} bytes, over {max_bytes} (data.max_image_bytes)"
        )


def load_image_file(
    path: str | Path,
    key: str | None = None,
    *,
    root: str | os.PathLike | None = None,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> torch.Tensor:
    """Read (see `read_image_bytes`) and decode (see `decode_image`) one image file.

    Args:
        path: the image file.
        key: the sample's name for errors; defaults to the path.
        root: if given, refuse a path that resolves outside this folder.
        max_bytes: largest file read.

    Returns:
        float32 ``[3, H, W]`` in [0, 1].

    Raises:
        BadSample: as `read_image_bytes`, then as `decode_image`.
    """
    name = str(path) if key is None else key
    return decode_image(read_image_bytes(path, name, root=root, max_bytes=max_bytes), name)


def apply_transform(image: torch.Tensor, transform: Transform | None) -> torch.Tensor:
    """``transform(image)``, or the image itself when there is no transform."""
    return image if transform is None else transform(image)
