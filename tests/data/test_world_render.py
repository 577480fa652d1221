"""Rendering: pictures that carry their factors (colour, size, position, shape, rotation, background)."""

import numpy as np
import pytest

from infomug.data import world_factors as wf
from infomug.data.world_render import _PALETTE, Renderer


def batch(n, seed=0, max_objects=2):
    u = wf.uniforms(wf.stream_key(seed, "train"), np.arange(n))
    return u, wf.sample_factors(u, max_objects, 0.5)


def fixed(shape, size=0.25, x=0.5, y=0.5, rotation=0.0, n=1):
    full = np.ones(n)
    return np.full(n, shape), size * full, x * full, y * full, rotation * full


def test_fully_covered_pixels_have_exactly_the_named_colour():
    u, factors = batch(500)
    images, coverage = Renderer(32).render(factors, wf.second_object_geometry(u))
    assert images.shape == (500, 3, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    for row in range(500):
        inside = coverage[row] == 1.0
        assert inside.any()
        pixels = images[row][:, inside]
        assert np.abs(pixels - _PALETTE[factors["colour"][row]][:, None]).max() < 1e-6


def test_object_area_grows_with_the_size_bin_for_every_shape():
    renderer = Renderer(32)
    for shape in range(len(wf.SHAPES)):
        areas = [renderer.coverage(*fixed(shape, size)).sum() for size in (0.15, 0.21, 0.27)]
        assert areas[0] < areas[1] < areas[2], wf.SHAPES[shape]
        # Area scales as size^2 up to anti-aliasing at the edges.
        assert areas[2] / areas[0] == pytest.approx((0.27 / 0.15) ** 2, rel=0.15)
    u, factors = batch(4000, max_objects=1)
    _, coverage = Renderer(32).render(factors)
    area = coverage.sum(axis=(1, 2))
    means = [area[factors["size_bin"] == b].mean() for b in range(3)]
    assert means[0] * 1.3 < means[1] and means[1] * 1.2 < means[2]


def test_shapes_have_distinct_masks():
    renderer = Renderer(64)
    masks = np.concatenate([renderer.coverage(*fixed(shape)) for shape in range(len(wf.SHAPES))])
    for a in range(len(wf.SHAPES)):
        for b in range(a + 1, len(wf.SHAPES)):
            overlap = np.minimum(masks[a], masks[b]).sum() / np.maximum(masks[a], masks[b]).sum()
            assert overlap < 0.85, (wf.SHAPES[a], wf.SHAPES[b], overlap)


def test_position_places_the_object_centre():
    renderer = Renderer(32)
    for x, y in ((0.25, 0.3), (0.7, 0.5), (0.5, 0.75)):
        mask = renderer.coverage(*fixed(0, size=0.15, x=x, y=y))[0]
        rows, cols = np.indices(mask.shape)
        centre = ((cols * mask).sum() / mask.sum() + 0.5) / 32, ((rows * mask).sum() / mask.sum() + 0.5) / 32
        assert centre == pytest.approx((x, y), abs=0.5 / 32)


def test_rotation_turns_the_shape_counter_clockwise():
    renderer = Renderer(64)
    square = [renderer.coverage(*fixed(1, rotation=r))[0] for r in (0.0, 0.4, 0.4 + np.pi / 2)]
    assert np.abs(square[0] - square[1]).sum() > 20
    assert np.abs(square[1] - square[2]).max() < 1e-4  # a square's quarter turn is invisible
    circle = [renderer.coverage(*fixed(0, rotation=r))[0] for r in (0.0, 0.4)]
    assert np.abs(circle[0] - circle[1]).max() < 1e-5
    # The triangle's apex points up at rotation 0 (column 31.5 of 64, at 0.25 * sin(0.5) * 64 = 7.7 px
    # from the centre when turned by 0.5 rad): counter-clockwise moves it left, clockwise right.
    apex = [np.argwhere(renderer.coverage(*fixed(2, rotation=r))[0] > 0.5)[0][1] for r in (0.5, 0.0, -0.5)]
    assert apex[0] < 27 and 29 <= apex[1] <= 34 and apex[2] > 36


def test_backgrounds_follow_texture_and_hue_and_second_objects_appear_only_when_counted():
    renderer = Renderer(32)
    plain = renderer.background(np.array([0, 3]), np.array([1.0, 1.0]))
    assert np.ptp(plain[0], axis=(1, 2)).max() < 1e-7
    assert np.ptp(plain[1], axis=(1, 2)).max() > 0.05
    hues = renderer.background(np.array([0, 0]), np.array([0.0, np.pi]))
    assert np.abs(hues[0, :, 0, 0] - hues[1, :, 0, 0]).max() > 0.05
    u, factors = batch(200)
    with_second, first = renderer.render(factors, wf.second_object_geometry(u))
    without_second, _ = renderer.render(factors)
    changed = np.abs(with_second - without_second).reshape(200, -1).max(axis=1) > 0
    two = factors["num_objects"] == 2
    assert not changed[~two].any() and changed[two].mean() > 0.9  # rarely hidden under the first
    with pytest.raises(ValueError, match="image_size"):
        Renderer(4)
