"""Captioned sklearn digits: shapes, labels, captions, a fixed stratified split, empirical entropy."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from infomug.data.digits import DIGIT_WORDS, DigitsConfig, DigitsDataset, split_indices
from infomug.data.transforms import eval_transform


@pytest.fixture(scope="module")
def train():
    return DigitsDataset()


@pytest.fixture(scope="module")
def held_out():
    return DigitsDataset(split="eval")


def test_samples_have_the_asked_shape_and_a_digit_label(train):
    sample = train[0]
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert torch.equal(sample["image"][0], sample["image"][2])  # grey copied to three channels
    assert set(sample["labels"]) == {"digit"} and 0 <= sample["labels"]["digit"] <= 9
    small = DigitsDataset(DigitsConfig(image_size=16))
    assert small[0]["image"].shape == (3, 16, 16)
    raw = train.raw_image(0)
    assert raw.dtype == torch.uint8 and raw.shape == (3, 32, 32) and raw.max() > 200


def test_captions_name_the_digit(train):
    for index in range(0, len(train), 37):
        sample = train[index]
        digit = sample["labels"]["digit"]
        words = sample["caption"].replace(",", " ").split()
        assert DIGIT_WORDS[digit] in words or str(digit) in words
        others = [w for d, w in enumerate(DIGIT_WORDS) if d != digit] + [
            str(d) for d in range(10) if d != digit
        ]
        assert not set(others) & set(words)
    captions = {train[i]["caption"].replace(str(train[i]["labels"]["digit"]), "#") for i in range(200)}
    assert len(captions) > 6  # several templates, with words and numerals


def test_split_is_deterministic_disjoint_stratified_and_complete(train, held_out):
    targets = np.concatenate([train.targets, held_out.targets])
    assert len(train) + len(held_out) == 1797
    assert abs(len(held_out) - 0.2 * 1797) < 10
    again = split_indices(np.sort(targets), 0.2)
    assert np.array_equal(again["eval"], split_indices(np.sort(targets), 0.2)["eval"])
    assert not set(train._source_index) & set(held_out._source_index)
    train_share = np.bincount(train.targets, minlength=10) / len(train)
    eval_share = np.bincount(held_out.targets, minlength=10) / len(held_out)
    assert np.abs(train_share - eval_share).max() < 0.01
    same = DigitsDataset(split="eval")
    assert all(torch.equal(same[i]["image"], held_out[i]["image"]) for i in range(0, len(same), 50))
    assert [same[i]["caption"] for i in range(20)] == [held_out[i]["caption"] for i in range(20)]


def test_factor_entropy_is_the_empirical_class_entropy(train):
    counts = np.bincount(train.targets, minlength=10)
    p = counts / counts.sum()
    assert train.factor_entropies()["digit"] == pytest.approx(float(-(p * np.log(p)).sum()))
    assert math.log(10) - 0.01 < train.factor_entropies()["digit"] <= math.log(10)
    assert train.caption_information() == train.factor_entropies()


def test_normalisation_and_transforms(train):
    images = torch.stack([train[i]["image"] for i in range(len(train))])
    assert abs(images.mean()) < 1e-3 and abs(images.std() - 1) < 1e-2
    transformed = DigitsDataset(transform=eval_transform(32, train.mean, train.std))
    assert torch.allclose(transformed[3]["image"], train[3]["image"], atol=1e-5)
    batch = next(iter(DataLoader(train, batch_size=8, num_workers=0)))
    assert batch["image"].shape == (8, 3, 32, 32) and len(batch["caption"]) == 8


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="image_size"):
        DigitsConfig(image_size=4)
    with pytest.raises(ValueError, match="eval_fraction"):
        DigitsConfig(eval_fraction=1.0)
    with pytest.raises(ValueError, match="split"):
        DigitsDataset(split="test")
    with pytest.raises(IndexError):
        DigitsDataset()[5000]
