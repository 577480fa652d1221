"""The shifted shapes world: determinism, exact uniform labels, one object, a real shift in appearance."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from infomug.data import ShapesWorld, ShiftedWorld, ShiftedWorldConfig, WorldConfig
from infomug.data import world_factors as wf
from infomug.data.world_render import TEXTURE_KINDS, Renderer, _hsv_to_rgb, texture_pattern
from infomug.data.world_shifted import (
    CHUNK,
    LABEL_NAMES,
    SHIFTED_BACKGROUND_SATURATION,
    SHIFTED_BACKGROUND_VALUES,
    SHIFTED_COLOURS,
    SHIFTED_SIZE_RANGE,
    SHIFTED_TEXTURES,
)

# Colours at least this far apart (Euclidean RGB, 0-255 units) are told apart at a glance; the world's
# own closest pair (orange / yellow) is 81 apart.
MIN_COLOUR_DISTANCE = 80.0


@pytest.fixture(scope="module")
def world():
    return ShiftedWorld(ShiftedWorldConfig(seed=3, size=4000, eval_size=500))


def test_a_sample_is_the_same_in_any_order_alone_or_in_a_batch(world):
    indices = np.arange(CHUNK + 40)  # crosses a rendering chunk boundary
    batched = world.images(indices)
    assert batched.shape == (indices.size, 3, 32, 32) and batched.dtype == torch.float32
    assert batched.min() >= 0 and batched.max() <= 1
    order = np.random.default_rng(0).permutation(indices.size)
    assert torch.equal(world.images(order), batched[order])
    assert torch.equal(world.images([5]), batched[5:6]) and torch.equal(world.images([5]), world.images([5]))
    assert torch.equal(world.images([-1]), world.images([len(world) - 1]))
    rebuilt = ShiftedWorld(ShiftedWorldConfig(seed=3, size=4000, eval_size=500))
    assert torch.equal(rebuilt.images(indices[:64]), batched[:64])
    labels, shuffled = world.labels(indices), world.labels(order)
    assert all(np.array_equal(shuffled[name], labels[name][order]) for name in LABEL_NAMES)
    other_seed = ShiftedWorld(ShiftedWorldConfig(seed=4, size=4000, eval_size=500))
    assert not torch.equal(other_seed.images(indices[:64]), batched[:64])


def test_train_and_eval_draw_from_different_streams(world):
    evaluation = ShiftedWorld(world.config, split="eval")
    assert len(evaluation) == 500 and len(world) == 4000
    train, held_out = world.labels(range(500)), evaluation.labels(range(500))
    for name in LABEL_NAMES:  # independent streams agree only by chance, about 1/K of the time
        assert (train[name] == held_out[name]).mean() < 0.5, name
    assert not torch.equal(world.images(range(16)), evaluation.images(range(16)))


def test_labels_are_in_range_and_uniform(world):
    labels = world.labels(range(4000))
    classes = world.factor_classes()
    assert tuple(labels) == LABEL_NAMES == tuple(classes) == tuple(world.factor_entropies())
    for name in LABEL_NAMES:
        assert labels[name].dtype == np.int64 and labels[name].shape == (4000,)
        counts = np.bincount(labels[name], minlength=len(classes[name]))
        assert counts.size == len(classes[name]) and counts.min() > 0, name
        # Chi-square goodness of fit to the uniform law; the draw is fixed, so this cannot flake.
        assert stats.chisquare(counts).pvalue > 1e-3, (name, counts)
        assert world.factor_entropies()[name] == pytest.approx(math.log(len(classes[name])), abs=1e-12)
    # Independence of two labels the renderer ties together (colour and texture): chi-square on the table.
    table = np.zeros((8, 4))
    np.add.at(table, (labels["colour"], labels["background"]), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_every_image_has_exactly_one_object_in_its_labelled_colour(world):
    indices = np.arange(300)
    raw, coverage, labels = world.raw_images(indices).numpy(), world.coverage(indices), world.labels(indices)
    palette = np.array(list(SHIFTED_COLOURS.values()), dtype=np.uint8)
    for row in range(indices.size):
        inside, outside = coverage[row] == 1.0, coverage[row] == 0.0
        assert inside.sum() >= 16  # a large object always has a solid interior at 32 px
        assert (raw[row][:, inside] == palette[labels["colour"][row]][:, None]).all()
        # Outside the object only the background's two texture phases remain: no second object.
        assert len(np.unique(raw[row][:, outside], axis=1).T) <= 2


def test_centre_of_a_large_square_has_the_palette_colour():
    renderer = Renderer(32, palette=np.array(list(SHIFTED_COLOURS.values())) / 255.0)
    for colour in range(8):
        factors = {
            "shape": np.array([1]),
            "colour": np.array([colour]),
            "size": np.array([0.35]),
            "position_x": np.array([0.5]),
            "position_y": np.array([0.5]),
            "rotation": np.array([0.1]),
            "num_objects": np.array([1]),
            "background": np.array([0]),
            "background_hue": np.array([1.0]),
        }
        image, _ = renderer.render(factors)
        expected = np.array(list(SHIFTED_COLOURS.values())[colour]) / 255.0
        np.testing.assert_allclose(image[0, :, 16, 16], expected, atol=1e-6)


def test_palette_is_far_from_the_worlds_from_itself_and_from_the_backgrounds():
    shifted = np.array(list(SHIFTED_COLOURS.values()), dtype=np.float64)
    pretraining = np.array(list(wf.COLOURS.values()), dtype=np.float64)
    assert np.linalg.norm(shifted[:, None] - pretraining[None], axis=2).min() >= MIN_COLOUR_DISTANCE
    within = np.linalg.norm(shifted[:, None] - shifted[None], axis=2) + np.eye(8) * 1e9
    assert within.min() >= MIN_COLOUR_DISTANCE
    hues = np.linspace(0.0, 2 * np.pi, 721)
    tones = np.concatenate(
        [_hsv_to_rgb(hues, value, SHIFTED_BACKGROUND_SATURATION) for value in SHIFTED_BACKGROUND_VALUES]
    )
    assert np.linalg.norm(shifted[:, None] - 255.0 * tones[None], axis=2).min() >= MIN_COLOUR_DISTANCE
    # Background tones move too: the two worlds' background channel ranges do not overlap.
    dark_tones = np.concatenate([_hsv_to_rgb(hues, value) for value in (0.18, 0.32)])
    assert dark_tones.max() < tones.min()


def test_textures_are_new():
    assert not set(SHIFTED_TEXTURES) & set(wf.TEXTURES) and set(SHIFTED_TEXTURES) <= set(TEXTURE_KINDS)
    for size in (16, 32, 64):
        old = [texture_pattern(kind, size) for kind in wf.TEXTURES]
        new = [texture_pattern(kind, size) for kind in SHIFTED_TEXTURES]
        for a, pattern in zip(SHIFTED_TEXTURES, new, strict=True):
            assert 0.2 < pattern.mean() < 0.8 or a == "dots", (a, pattern.mean())
            assert all(not np.array_equal(pattern, other) for other in old), a
            assert sum(np.array_equal(pattern, other) for other in new) == 1, a
    with pytest.raises(ValueError, match="texture kind"):
        texture_pattern("polka", 32)


def test_objects_are_larger_than_in_the_pretraining_world(world):
    area = world.coverage(range(1000)).sum(axis=(1, 2))
    u = wf.uniforms(wf.stream_key(3, "train"), np.arange(1000))
    _, pretraining_coverage = Renderer(32).render(wf.sample_factors(u, 1, 0.0))
    pretraining_area = pretraining_coverage.sum(axis=(1, 2))
    # E[size^2] is 2.5 times larger; shapes near the border lose part of that to clipping.
    assert area.mean() > 1.8 * pretraining_area.mean()
    size_bin = world.labels(range(1000))["size_bin"]
    means = [area[size_bin == b].mean() for b in range(3)]
    assert means[0] < means[1] < means[2]


def test_sample_factors_size_range():
    u = wf.uniforms(wf.stream_key(0, "shifted_train"), np.arange(2000))
    default, explicit = wf.sample_factors(u, 2, 0.5), wf.sample_factors(u, 2, 0.5, size_range=wf.SIZE_RANGE)
    assert all(np.array_equal(default[name], explicit[name]) for name in default)
    shifted = wf.sample_factors(u, 1, 0.0, size_range=SHIFTED_SIZE_RANGE)
    assert SHIFTED_SIZE_RANGE[0] <= shifted["size"].min() and shifted["size"].max() < SHIFTED_SIZE_RANGE[1]
    edges = np.linspace(*SHIFTED_SIZE_RANGE, 4)
    assert np.array_equal(np.digitize(shifted["size"], edges[1:-1]), shifted["size_bin"])
    assert (shifted["num_objects"] == 1).all()
    with pytest.raises(ValueError, match="size_range"):
        wf.sample_factors(u, 1, 0.0, size_range=(0.3, 0.2))


def test_default_renderer_is_the_pretraining_worlds_appearance():
    shapes = ShapesWorld(WorldConfig(size=8, eval_size=8))
    u = wf.uniforms(wf.stream_key(0, "train"), np.arange(8))
    factors = wf.sample_factors(u, 2, 0.5)
    # The appearance as literals, as it was before the renderer took parameters.
    cell = np.floor((np.arange(32) + 0.5) / 32 * 4).astype(np.int64)
    rows, cols = np.meshgrid(cell, cell, indexing="ij")
    explicit = Renderer(
        32,
        palette=np.array(list(wf.COLOURS.values()), dtype=np.float32) / 255.0,
        textures=np.stack([np.zeros_like(rows), rows % 2, cols % 2, (rows + cols) % 2]).astype(np.float32),
        background_saturation=0.5,
        background_values=(0.18, 0.32),
    )
    images, _ = explicit.render(factors, wf.second_object_geometry(u))
    assert torch.equal(shapes.images(range(8)), torch.from_numpy(images))
    assert torch.equal(
        shapes.images(range(8)),
        torch.from_numpy(Renderer(32).render(factors, wf.second_object_geometry(u))[0]),
    )
    shifted = ShiftedWorld(ShiftedWorldConfig(size=8, eval_size=8))
    assert shifted.mean != shapes.mean and min(shifted.mean) > max(shapes.mean)


def test_statistics_match_the_images(world):
    images = world.images(range(2000)).double()
    np.testing.assert_allclose(world.mean, images.mean(dim=(0, 2, 3)).numpy(), atol=0.01)
    np.testing.assert_allclose(world.std, images.std(dim=(0, 2, 3)).numpy(), atol=0.01)
    assert all(round(value, 4) == value for value in (*world.mean, *world.std))
    assert ShiftedWorld(ShiftedWorldConfig(seed=9, size=8, eval_size=8)).mean == world.mean  # seed-free


@pytest.mark.parametrize(
    "settings",
    [
        {"seed": -1},
        {"size": 0},
        {"eval_size": 0},
        {"image_size": 15},
        {"image_size": 32.0},
        {"size": True},
        {"seed": "0"},
    ],
)
def test_bad_config_values_raise(settings):
    with pytest.raises(ValueError):
        ShiftedWorldConfig(**settings)


def test_bad_split_indices_and_renderer_parameters_raise(world):
    with pytest.raises(ValueError, match="split"):
        ShiftedWorld(world.config, split="test")
    with pytest.raises(IndexError):
        world.images([4000])
    with pytest.raises(IndexError):
        world.labels([-4001])
    assert world.images([]).shape == (0, 3, 32, 32)
    with pytest.raises(ValueError, match="palette"):
        Renderer(32, palette=np.ones((8, 4)))
    with pytest.raises(ValueError, match="palette"):
        Renderer(32, palette=np.full((8, 3), 2.0))
    with pytest.raises(ValueError, match="textures"):
        Renderer(32, textures=np.zeros((4, 16, 16)))
    with pytest.raises(ValueError, match="background_values"):
        Renderer(32, background_values=(0.0, 0.3))
