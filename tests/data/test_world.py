"""ShapesWorld as a dataset: determinism by (seed, split, index), DataLoader use, config validation."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from infomug.data.transforms import eval_transform, two_view_transform
from infomug.data.world import LABEL_NAMES, ShapesWorld, WorldConfig

NOISY = {"irrelevant_caption_fraction": 0.3, "partial_caption_fraction": 0.2}


@pytest.fixture(scope="module")
def world():
    return ShapesWorld(WorldConfig(seed=7, size=1000, eval_size=200, **NOISY))


def same(a, b):
    return torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"] and a["labels"] == b["labels"]


def test_a_sample_is_the_same_in_any_order_alone_or_in_a_batch(world):
    forward = [world[i] for i in range(40)]
    backward = [world[i] for i in reversed(range(40))][::-1]
    batched = world.__getitems__(list(range(40)))
    shuffled_order = np.random.default_rng(0).permutation(40)
    shuffled = world.__getitems__(shuffled_order.tolist())
    for i in range(40):
        assert same(forward[i], backward[i]) and same(forward[i], batched[i])
        assert same(shuffled[int(np.flatnonzero(shuffled_order == i)[0])], forward[i])
    rebuilt = ShapesWorld(WorldConfig(seed=7, size=1000, eval_size=200, **NOISY))
    assert all(same(rebuilt[i], forward[i]) for i in range(40))


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_workers_see_the_same_samples(world, workers):
    loader = DataLoader(world, batch_size=16, num_workers=workers, shuffle=False)
    batches = list(loader)
    assert len(batches) == len(world) // 16 + 1
    images = torch.cat([b["image"] for b in batches])
    assert images.shape == (len(world), 3, 32, 32)
    direct = world.__getitems__([0, 500, 999])
    for row, index in enumerate([0, 500, 999]):
        batch = batches[index // 16]
        assert torch.equal(images[index], direct[row]["image"])
        assert batch["caption"][index % 16] == direct[row]["caption"]
        assert int(batch["labels"]["shape"][index % 16]) == direct[row]["labels"]["shape"]


def test_seeds_and_splits_give_different_samples():
    a = ShapesWorld(WorldConfig(seed=0, size=64, eval_size=64))
    b = ShapesWorld(WorldConfig(seed=1, size=64, eval_size=64))
    a_eval = ShapesWorld(WorldConfig(seed=0, size=64, eval_size=64), split="eval")
    labels = [w.captions_and_labels(range(64))[1]["size"] for w in (a, b, a_eval)]
    assert len(set(np.concatenate(labels).tolist())) == 3 * 64  # continuous draws never repeat
    assert not torch.equal(a.images(range(8)), b.images(range(8)))


def test_samples_follow_the_sample_contract(world):
    sample = world[3]
    assert set(sample) == {"image", "caption", "labels"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 32, 32)
    assert tuple(sample["labels"]) == LABEL_NAMES == world.label_names
    continuous = {"size", "position_x", "position_y", "rotation", "background_hue"}
    for name, value in sample["labels"].items():
        assert isinstance(value, float if name in continuous else int), name
    assert set(world.factor_classes()) == set(LABEL_NAMES) - continuous
    assert world[-1]["caption"] == world[len(world) - 1]["caption"]
    with pytest.raises(IndexError):
        world[len(world)]
    assert len(ShapesWorld(WorldConfig(size=10, eval_size=3), split="eval")) == 3


def test_normalisation_statistics_standardise_the_images():
    world = ShapesWorld(WorldConfig(seed=3, size=2000))
    images = torch.stack([s["image"] for s in world.__getitems__(list(range(2000)))])
    # The statistics come from another stream of 2048 images; 2000 fresh ones agree to sampling error.
    assert images.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (images.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05
    assert world.config.mean == world.mean and world.config.std == world.std
    fixed = ShapesWorld(WorldConfig(mean=(0.5, 0.5, 0.5), std=[0.25, 0.25, 0.25]))
    raw = fixed.images([0])[0]
    assert torch.allclose(fixed[0]["image"], (raw - 0.5) / 0.25)


def test_raw_images_are_the_rendered_images_in_uint8(world):
    raw = world.raw_images([1, 2])
    assert raw.dtype == torch.uint8 and raw.shape == (2, 3, 32, 32)
    assert torch.equal(world.raw_image(2), raw[1])
    assert (raw.float() / 255 - world.images([1, 2])).abs().max() <= 0.5 / 255 + 1e-6


def test_transforms_receive_images_in_unit_range_and_may_return_two_views(world):
    plain = ShapesWorld(world.config, transform=eval_transform(32, world.mean, world.std))
    assert torch.allclose(plain[5]["image"], world[5]["image"], atol=1e-5)
    views = ShapesWorld(world.config, transform=two_view_transform(32, world.mean, world.std))
    batch = next(iter(DataLoader(views, batch_size=4)))
    assert batch["image"].shape == (4, 2, 3, 32, 32)


def test_larger_images_render_the_same_scene():
    small = ShapesWorld(WorldConfig(seed=2, size=10, image_size=32))
    large = ShapesWorld(WorldConfig(seed=2, size=10, image_size=64))
    assert small[4]["caption"] == large[4]["caption"] and small[4]["labels"] == large[4]["labels"]
    assert large[4]["image"].shape == (3, 64, 64)
    pooled = torch.nn.functional.avg_pool2d(large.images([4]), 2)
    assert (pooled - small.images([4])).abs().mean() < 0.02


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("seed", -1, "seed"),
        ("size", 0, "size"),
        ("image_size", 8, "image_size"),
        ("image_size", 32.0, "image_size"),
        ("max_objects", 3, "max_objects"),
        ("irrelevant_caption_fraction", 1.5, "irrelevant_caption_fraction"),
        ("partial_caption_fraction", -0.1, "partial_caption_fraction"),
        ("second_object_probability", 2, "second_object_probability"),
        ("mention_probabilities", {"texture": 0.5}, "unknown caption factors"),
        ("mention_probabilities", {"shape": 1.2}, "shape"),
        ("mean", (0.5, 0.5), "mean"),
        ("std", (0.5, 0.0, 0.5), "std"),
    ],
)
def test_bad_configs_raise_clear_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**{field: value})


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="split"):
        ShapesWorld(WorldConfig(size=4), split="test")


def test_partial_mention_probabilities_keep_the_other_defaults():
    config = WorldConfig(mention_probabilities={"shape": 1.0})
    assert config.mention_probabilities["shape"] == 1.0 and config.mention_probabilities["colour"] == 0.8
