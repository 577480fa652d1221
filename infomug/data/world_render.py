"""Vectorised rendering of shapes-world images from factor arrays.

Each shape is a signed distance function (SDF) in a local frame whose circumradius is about 1;
a pixel's coverage is ``clip(0.5 - distance_in_pixels, 0, 1)``, a one-pixel linear ramp that
anti-aliases edges. A whole batch is rendered with array operations over ``[B, H, W]``; each shape's
SDF is evaluated only on the samples of that shape.

Coordinates: pixel centres at ``(j + 0.5) / S`` in image sides, y downward; the local frame has y up and
is turned by ``rotation`` (radians, counter-clockwise as displayed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .world_factors import COLOURS, SHAPES, TEXTURES

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32) / 255.0
# Background: a dark tint of the hue and a lighter one for the texture's second phase; both dim and
# unsaturated so that every object colour stands out.
_BACKGROUND_SATURATION = 0.5
_BACKGROUND_VALUES = (0.18, 0.32)
_TEXTURE_PERIODS = 4  # stripes / checks per image side
_DOT_RADIUS = 0.3  # of a texture cell's side

TEXTURE_KINDS = (
    *TEXTURES,
    "diagonal stripes",
    "dots",
    "coarse checkerboard",
    "fine horizontal stripes",
)


def texture_pattern(kind: str, image_size: int) -> np.ndarray:
    """``[S, S]`` float32 in {0, 1}: which pixels take a texture's second (lighter) phase.

    Periods are per image side, so a texture looks the same at every image size (up to pixelation).

    Raises:
        ValueError: for a kind not in `TEXTURE_KINDS`.
    """
    centres = ((np.arange(image_size) + 0.5) / image_size).astype(np.float32)
    y, x = np.meshgrid(centres, centres, indexing="ij")  # rows grow downward, columns rightward

    def cells(coordinate: np.ndarray, periods: int) -> np.ndarray:
        return np.floor(coordinate * periods).astype(np.int64)

    p = _TEXTURE_PERIODS
    if kind == "plain":
        pattern = np.zeros_like(cells(y, p))
    elif kind == "horizontal stripes":
        pattern = cells(y, p) % 2
    elif kind == "vertical stripes":
        pattern = cells(x, p) % 2
    elif kind == "checkerboard":
        pattern = (cells(y, p) + cells(x, p)) % 2
    elif kind == "diagonal stripes":
        pattern = cells(x + y, p) % 2  # 2p stripes at 45 degrees, rising to the right
    elif kind == "dots":
        offset_y, offset_x = y * p - cells(y, p) - 0.5, x * p - cells(x, p) - 0.5
        pattern = np.hypot(offset_y, offset_x) < _DOT_RADIUS
    elif kind == "coarse checkerboard":
        pattern = (cells(y, p // 2) + cells(x, p // 2)) % 2
    elif kind == "fine horizontal stripes":
        pattern = cells(y, 2 * p) % 2
    else:
        raise ValueError(f"unknown texture kind {kind!r}; expected one of {TEXTURE_KINDS}")
    return pattern.astype(np.float32)


def channel_statistics(
    render: Callable[[np.ndarray], np.ndarray], samples: int, chunk: int
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std (4 decimals) of ``samples`` images of a fixed stream, ``chunk`` at a time.

    Args:
        render: indices ``[B]`` -> images ``[B, 3, S, S]`` in [0, 1].
        samples: images averaged over, a multiple of ``chunk``.
        chunk: images rendered at once (bounds memory).
    """
    total, square = np.zeros(3), np.zeros(3)
    for start in range(0, samples, chunk):
        images = render(np.arange(start, start + chunk)).astype(np.float64)
        total += images.mean(axis=(2, 3)).sum(axis=0)
        square += (images**2).mean(axis=(2, 3)).sum(axis=0)
    mean = total / samples
    std = np.sqrt(square / samples - mean**2)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(v), 4) for v in std)


def _box(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float) -> np.ndarray:
    return np.maximum(np.abs(u) - half_u, np.abs(v) - half_v)


def _polygon(u: np.ndarray, v: np.ndarray, angles: np.ndarray, apothem: float) -> np.ndarray:
    distance = np.full(u.shape, -np.inf, dtype=u.dtype)
    for angle in angles:
        np.maximum(distance, u * np.cos(angle) + v * np.sin(angle), out=distance)
    return distance - apothem


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    radius = np.hypot(u, v)
    turns = (np.arctan2(v, u) - np.pi / 2) * (5 / (2 * np.pi))  # 5 tips, one pointing up
    to_tip = np.abs(turns - np.round(turns))  # 0 at a tip, 0.5 between tips
    return radius - (1.0 - (1.0 - 0.45) * 2 * to_tip)


_SDF = {
    "circle": lambda u, v: np.hypot(u, v) - 0.8,  # smaller than the hexagon, so the two stay apart
    "square": lambda u, v: _box(u, v, 0.75, 0.75),
    "triangle": lambda u, v: _polygon(u, v, np.radians([270.0, 30.0, 150.0]), 0.5),
    "star": _star,
    "cross": lambda u, v: np.minimum(_box(u, v, 0.9, 0.3), _box(u, v, 0.3, 0.9)),
    "hexagon": lambda u, v: _polygon(u, v, np.radians(np.arange(0.0, 360.0, 60.0)), 0.85),
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.7) - 0.25,
    "semicircle": lambda u, v: np.maximum(np.hypot(u, v + 0.4) - 1.0, -(v + 0.4)),
}


def _hsv_to_rgb(hue: np.ndarray, value: float, saturation: float = _BACKGROUND_SATURATION) -> np.ndarray:
    """``[B, 3]`` float32 RGB in [0, 1] from hues in radians (the `colorsys` formula, vectorised)."""
    sixths = np.mod(hue / (2 * np.pi), 1.0) * 6.0
    sector = np.floor(sixths).astype(np.int64) % 6
    f = sixths - np.floor(sixths)
    s = saturation
    p, q, t = np.full_like(f, value * (1 - s)), value * (1 - s * f), value * (1 - s * (1 - f))
    v = np.full_like(f, value)
    table = np.stack(
        [np.stack(rgb, axis=1) for rgb in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    )  # [6, B, 3]
    return table[sector, np.arange(hue.shape[0])].astype(np.float32)


class Renderer:
    """Draws batches of images of one size, in one appearance (palette, textures, background tones).

    The defaults are the shapes world's appearance; `world_shifted` passes another one.

    Args:
        image_size: side ``S`` in pixels.
        palette: ``[K, 3]`` object colours, RGB in [0, 1], indexed by the ``colour`` labels; ``None`` =
            the world's `COLOURS`.
        textures: background textures indexed by the ``background`` labels: names from `TEXTURE_KINDS`,
            or ``[T, S, S]`` patterns in [0, 1] (0 = dark phase, 1 = light phase); ``None`` = the world's
            `TEXTURES`.
        background_saturation: HSV saturation of both background phases, in [0, 1].
        background_values: HSV values ``(dark, light)`` of the two phases, ``0 < dark`` and both <= 1.

    Raises:
        ValueError: for an image side under 8 pixels or appearance parameters outside the ranges above.
    """

    def __init__(
        self,
        image_size: int,
        palette: np.ndarray | None = None,
        textures: Sequence[str] | np.ndarray | None = None,
        background_saturation: float = _BACKGROUND_SATURATION,
        background_values: tuple[float, float] = _BACKGROUND_VALUES,
    ) -> None:
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
        self.image_size = image_size
        centres = ((np.arange(image_size) + 0.5) / image_size).astype(np.float32)
        self._x = centres[None, None, :]
        self._y = centres[None, :, None]
        self.palette = _PALETTE if palette is None else np.asarray(palette, dtype=np.float32)
        if self.palette.ndim != 2 or self.palette.shape[1] != 3 or self.palette.shape[0] < 1:
            raise ValueError(f"palette must be [K, 3], got shape {self.palette.shape}")
        if self.palette.min() < 0 or self.palette.max() > 1:
            raise ValueError("palette must be RGB in [0, 1]")
        textures = TEXTURES if textures is None else textures
        if isinstance(textures, np.ndarray):
            self._textures = textures.astype(np.float32)
            if self._textures.ndim != 3 or self._textures.shape[1:] != (image_size, image_size):
                raise ValueError(f"textures must be [T, {image_size}, {image_size}], got {textures.shape}")
            if self._textures.min() < 0 or self._textures.max() > 1:
                raise ValueError("texture patterns must lie in [0, 1]")
        else:
            self._textures = np.stack([texture_pattern(kind, image_size) for kind in textures])  # [T, S, S]
        if not 0.0 <= background_saturation <= 1.0:
            raise ValueError(f"background_saturation must be in [0, 1], got {background_saturation}")
        if not 0.0 < background_values[0] <= 1.0 or not 0.0 <= background_values[1] <= 1.0:
            raise ValueError(f"background_values must be (dark, light) in (0, 1], got {background_values}")
        self.background_saturation = float(background_saturation)
        self.background_values = (float(background_values[0]), float(background_values[1]))

    def coverage(
        self,
        shape: np.ndarray,
        size: np.ndarray,
        position_x: np.ndarray,
        position_y: np.ndarray,
        rotation: np.ndarray,
    ) -> np.ndarray:
        """``[B, S, S]`` float32 in [0, 1]: fraction of each pixel covered by one object per sample.

        Args:
            shape: ``[B]`` int indices into `SHAPES`.
            size: ``[B]`` circumradius in image sides.
            position_x, position_y: ``[B]`` centre in image sides (y downward).
            rotation: ``[B]`` radians, counter-clockwise.
        """
        radius = size.astype(np.float32)[:, None, None]
        dx = (self._x - position_x.astype(np.float32)[:, None, None]) / radius
        dy = (position_y.astype(np.float32)[:, None, None] - self._y) / radius
        cos = np.cos(rotation).astype(np.float32)[:, None, None]
        sin = np.sin(rotation).astype(np.float32)[:, None, None]
        u = cos * dx + sin * dy  # rotate the pixel by -rotation into the shape's frame
        v = cos * dy - sin * dx
        distance = np.empty(u.shape, dtype=np.float32)
        for k in np.unique(shape):
            rows = shape == k
            distance[rows] = _SDF[SHAPES[k]](u[rows], v[rows])
        distance *= radius * self.image_size  # local units -> pixels
        return np.clip(0.5 - distance, 0.0, 1.0)

    def background(self, texture: np.ndarray, hue: np.ndarray) -> np.ndarray:
        """``[B, 3, S, S]`` float32 background from texture indices and hues (radians)."""
        dark_value, light_value = self.background_values
        dark = _hsv_to_rgb(hue, dark_value, self.background_saturation)[:, :, None, None]
        light = dark * (light_value / dark_value)  # RGB is linear in HSV value
        pattern = self._textures[texture][:, None]
        return dark + (light - dark) * pattern

    def render(
        self, factors: dict[str, np.ndarray], second: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw a batch.

        Args:
            factors: factor labels from `world_factors.sample_factors` (``[B]`` arrays).
            second: continuous geometry of the second objects (`world_factors.second_object_geometry`);
                drawn where ``factors["num_objects"] == 2``.

        Returns:
            ``(images [B, 3, S, S] float32 in [0, 1], coverage [B, S, S] of the first object)``.
        """
        image = self.background(factors["background"], factors["background_hue"])
        two = factors["num_objects"] == 2
        if second is not None and two.any():
            rows = np.flatnonzero(two)
            alpha = self.coverage(
                factors["shape_2"][rows],
                second["size"][rows],
                second["position_x"][rows],
                second["position_y"][rows],
                second["rotation"][rows],
            )[:, None]
            colour = self.palette[factors["colour_2"][rows]][:, :, None, None]
            image[rows] = image[rows] * (1 - alpha) + colour * alpha
        alpha = self.coverage(
            factors["shape"],
            factors["size"],
            factors["position_x"],
            factors["position_y"],
            factors["rotation"],
        )
        colour = self.palette[factors["colour"]][:, :, None, None]
        image = image * (1 - alpha[:, None]) + colour * alpha[:, None]
        return image, alpha
