"""The shapes world's generative process: factor definitions, counter-based draws, exact entropies.

Every sample is a pure function of ``(seed, stream, index)``: `uniforms` hashes that triple (SplitMix64,
Steele et al. 2014) into ``NUM_COLUMNS`` independent U[0, 1) numbers, one column per random choice, and
every factor is an inverse-CDF transform of its own column. No generator state is carried between
samples, so the same index gives the same sample in any order, in any worker, in any batch.

Factors (all independent; first object = "the" object, drawn on top and described by the caption):

==================  ===========  =============================================================
label               kind         distribution
==================  ===========  =============================================================
shape               discrete     uniform over the 8 `SHAPES`
colour              discrete     uniform over the 8 `COLOURS`
size                continuous   circumradius / image side, U[0.12, 0.30)
size_bin            discrete     thirds of the size range: small, medium, large (uniform)
position_x, _y      continuous   object centre / image side, U[0.2, 0.8) each (y grows downward)
position_bin        discrete     3x3 grid of the centre range, ``3 * row + column``, row 0 = top
rotation            continuous   radians, U[-pi/6, pi/6), positive = counter-clockwise as displayed
rotation_bin        discrete     thirds of the rotation range: tilted right, upright, tilted left
num_objects         discrete     1, or 2 with ``second_object_probability`` when ``max_objects == 2``
shape_2, colour_2,  discrete     second object's factors, or the extra class ``"none"`` (last index)
size_bin_2,                      when only one object is drawn; never captioned. The second object
position_bin_2                   lies under the first and may be partly hidden by it.
background          discrete     texture, uniform over `TEXTURES`; never captioned
background_hue      continuous   radians, U[0, 2 pi); never captioned
==================  ===========  =============================================================

Continuous factors' entropies are *differential* entropies in the units stated above (so they can be
negative: ``size`` is log 0.18 = -1.71 nats). Visibility caveats: a circle's or a ring's rotation is not
visible; an object near the border may be partly cut off.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon", "ring", "semicircle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "purple": (170, 60, 220),
    "cyan": (40, 210, 220),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
}
COLOUR_NAMES = tuple(COLOURS)
SIZE_BINS = ("small", "medium", "large")
POSITION_BINS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
ROTATION_BINS = ("tilted right", "upright", "tilted left")
TEXTURES = ("plain", "horizontal stripes", "vertical stripes", "checkerboard")

SIZE_RANGE = (0.12, 0.30)
POSITION_RANGE = (0.2, 0.8)
ROTATION_RANGE = (-math.pi / 6, math.pi / 6)
HUE_RANGE = (0.0, 2 * math.pi)

# One column of uniforms per random choice. Caption columns are read by `world_captions`.
COLUMNS = {
    name: i
    for i, name in enumerate(
        (
            "shape",
            "colour",
            "size",
            "position_x",
            "position_y",
            "rotation",
            "shape_2",
            "colour_2",
            "size_2",
            "position_x_2",
            "position_y_2",
            "rotation_2",
            "num_objects",
            "background",
            "background_hue",
            "irrelevant",
            "partial",
            "partial_choice",
            "mention_shape",
            "mention_colour",
            "mention_size",
            "mention_position",
            "mention_rotation",
            "mention_num_objects",
            "template",
            "word_shape",
            "word_colour",
            "word_size",
            "word_position",
            "word_rotation",
            "word_num_objects",
            "word_noun",
        )
    )
}
NUM_COLUMNS = len(COLUMNS)

STREAMS = {
    "train": 1,
    "eval": 2,
    "train_decoy": 3,
    "eval_decoy": 4,
    "statistics": 5,
    # The shifted (out-of-distribution) world of `world_shifted`.
    "shifted_train": 6,
    "shifted_eval": 7,
    "shifted_statistics": 8,
}

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_SEED_OFFSET = 0xD1B54A32D192ED03  # arbitrary odd constants that keep seed, stream and index mixing apart
_KEY_OFFSET = 0x8CB92BA72F3D8DD7


def _splitmix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrap-around multiplication is intended)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, stream: str) -> int:
    """A 64-bit key for one ``(seed, stream)`` pair.

    Raises:
        ValueError: for a negative seed or an unknown stream.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; expected one of {sorted(STREAMS)}")
    seed_state = _splitmix(np.array([(seed * _GOLDEN + _SEED_OFFSET) & _MASK64], dtype=np.uint64))
    with np.errstate(over="ignore"):
        mixed = _splitmix(seed_state + np.uint64(STREAMS[stream]) * np.uint64(_GOLDEN))
    return int(mixed[0])


def uniforms(key: int, indices: np.ndarray) -> np.ndarray:
    """``[B, NUM_COLUMNS]`` float64 in [0, 1): the random numbers of samples ``indices`` under ``key``."""
    idx = np.asarray(indices, dtype=np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        # The index-th output of a SplitMix64 generator whose state starts at the mixed key.
        base = _splitmix(_splitmix(np.uint64(key ^ _KEY_OFFSET)) + idx * np.uint64(_GOLDEN))
        columns = np.arange(1, NUM_COLUMNS + 1, dtype=np.uint64)[None, :] * np.uint64(_GOLDEN)
        bits = _splitmix(base + columns)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _bin(u: np.ndarray, k: int) -> np.ndarray:
    return np.minimum((u * k).astype(np.int64), k - 1)


def _scale(u: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return bounds[0] + u * (bounds[1] - bounds[0])


def sample_factors(
    u: np.ndarray,
    max_objects: int,
    second_object_probability: float,
    size_range: tuple[float, float] = SIZE_RANGE,
) -> dict[str, np.ndarray]:
    """Every factor label of a batch from its uniforms.

    Args:
        u: ``[B, NUM_COLUMNS]`` from `uniforms`.
        max_objects: 1 or 2.
        second_object_probability: P(num_objects = 2) when ``max_objects == 2``.
        size_range: ``(low, high)`` of the first object's circumradius in image sides; ``size_bin`` is
            thirds of it. The second object's size (`second_object_geometry`) keeps `SIZE_RANGE`.

    Returns:
        ``{label: [B] array}``: int64 for discrete factors, float64 for continuous ones (see the module
        table). Bins are computed from the same uniform as their continuous factor, so they agree exactly.

    Raises:
        ValueError: for a ``size_range`` that is not ``0 < low < high``.
    """
    if not 0.0 < size_range[0] < size_range[1]:
        raise ValueError(f"size_range must satisfy 0 < low < high, got {size_range}")
    c = COLUMNS
    two = (u[:, c["num_objects"]] < second_object_probability) & (max_objects == 2)
    none = ~two
    factors = {
        "shape": _bin(u[:, c["shape"]], len(SHAPES)),
        "colour": _bin(u[:, c["colour"]], len(COLOURS)),
        "size": _scale(u[:, c["size"]], size_range),
        "size_bin": _bin(u[:, c["size"]], 3),
        "position_x": _scale(u[:, c["position_x"]], POSITION_RANGE),
        "position_y": _scale(u[:, c["position_y"]], POSITION_RANGE),
        "position_bin": 3 * _bin(u[:, c["position_y"]], 3) + _bin(u[:, c["position_x"]], 3),
        "rotation": _scale(u[:, c["rotation"]], ROTATION_RANGE),
        "rotation_bin": _bin(u[:, c["rotation"]], 3),
        "num_objects": 1 + two.astype(np.int64),
        "shape_2": np.where(none, len(SHAPES), _bin(u[:, c["shape_2"]], len(SHAPES))),
        "colour_2": np.where(none, len(COLOURS), _bin(u[:, c["colour_2"]], len(COLOURS))),
        "size_bin_2": np.where(none, 3, _bin(u[:, c["size_2"]], 3)),
        "position_bin_2": np.where(
            none, 9, 3 * _bin(u[:, c["position_y_2"]], 3) + _bin(u[:, c["position_x_2"]], 3)
        ),
        "background": _bin(u[:, c["background"]], len(TEXTURES)),
        "background_hue": _scale(u[:, c["background_hue"]], HUE_RANGE),
    }
    return factors


def second_object_geometry(u: np.ndarray) -> dict[str, np.ndarray]:
    """Continuous size, position and rotation of the second object (drawn, not reported as labels)."""
    c = COLUMNS
    return {
        "size": _scale(u[:, c["size_2"]], SIZE_RANGE),
        "position_x": _scale(u[:, c["position_x_2"]], POSITION_RANGE),
        "position_y": _scale(u[:, c["position_y_2"]], POSITION_RANGE),
        "rotation": _scale(u[:, c["rotation_2"]], ROTATION_RANGE),
    }


def binary_entropy(p: float) -> float:
    """H(Bernoulli(p)) in nats."""
    return float(-sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0))


def factor_classes(max_objects: int) -> dict[str, tuple[str, ...]]:
    """Class names of every discrete factor label, in index order (``num_objects``: index = count - 1)."""
    with_none = {
        "shape_2": (*SHAPES, "none"),
        "colour_2": (*COLOUR_NAMES, "none"),
        "size_bin_2": (*SIZE_BINS, "none"),
        "position_bin_2": (*POSITION_BINS, "none"),
    }
    counts = ("one", "two") if max_objects == 2 else ("one",)
    return {
        "shape": SHAPES,
        "colour": COLOUR_NAMES,
        "size_bin": SIZE_BINS,
        "position_bin": POSITION_BINS,
        "rotation_bin": ROTATION_BINS,
        "num_objects": counts,
        **with_none,
        "background": TEXTURES,
    }


CONTINUOUS_FACTORS = ("size", "position_x", "position_y", "rotation", "background_hue")


def factor_entropies(max_objects: int, second_object_probability: float) -> dict[str, float]:
    """Exact entropy of every factor label in nats.

    Discrete labels: Shannon entropy (log K for the uniform ones). Continuous labels: differential
    entropy log(width) of their uniform law, in the units of the module table (image sides, radians).
    """
    p2 = second_object_probability if max_objects == 2 else 0.0
    h_count = binary_entropy(p2)
    return {
        "shape": math.log(len(SHAPES)),
        "colour": math.log(len(COLOURS)),
        "size": math.log(SIZE_RANGE[1] - SIZE_RANGE[0]),
        "size_bin": math.log(3),
        "position_x": math.log(POSITION_RANGE[1] - POSITION_RANGE[0]),
        "position_y": math.log(POSITION_RANGE[1] - POSITION_RANGE[0]),
        "position_bin": math.log(9),
        "rotation": math.log(ROTATION_RANGE[1] - ROTATION_RANGE[0]),
        "rotation_bin": math.log(3),
        "num_objects": h_count,
        "shape_2": h_count + p2 * math.log(len(SHAPES)),
        "colour_2": h_count + p2 * math.log(len(COLOURS)),
        "size_bin_2": h_count + p2 * math.log(3),
        "position_bin_2": h_count + p2 * math.log(9),
        "background": math.log(len(TEXTURES)),
        "background_hue": math.log(HUE_RANGE[1] - HUE_RANGE[0]),
    }
