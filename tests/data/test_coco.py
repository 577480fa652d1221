"""COCO captions: one sample per annotation or per image; unknown images and bad captions are left out, broken
files dropped, and all counted; a file without the COCO layout is a clear error."""

import json

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from infomug.data.bad_samples import is_skipped
from infomug.data.coco import CocoCaptions
from infomug.data.collate import CaptionCollate


def crop8(image):
    return image[:, :8, :8]


@pytest.fixture
def coco(tmp_path):
    images = tmp_path / "train2017"
    images.mkdir()
    for name, seed in (("000000000001.jpg", 1), ("000000000002.jpg", 2)):
        pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name)
    Image.new("L", (10, 10), 128).save(images / "000000000004.png")
    (images / "000000000003.jpg").write_bytes(b"broken")
    content = {
        "info": {},
        "images": [
            {"id": 1, "file_name": "000000000001.jpg", "width": 32, "height": 24},
            {"id": 2, "file_name": "000000000002.jpg"},
            {"id": 3, "file_name": "000000000003.jpg"},
            {"id": 4, "file_name": "000000000004.png"},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "caption": "A dog on a sofa."},
            {"id": 11, "image_id": 2, "caption": "   "},
            {"id": 12, "image_id": 1, "caption": "A sleeping dog."},
            {"id": 13, "image_id": 3, "caption": "A broken file."},
            {"id": 14, "image_id": 99, "caption": "An image that is not listed."},
            {"id": 15, "image_id": 2, "caption": "Two cats.\n"},
            {"id": 16, "image_id": 4, "caption": None},
        ],
    }
    path = tmp_path / "captions_train2017.json"
    path.write_text(json.dumps(content))
    return path, images


def test_one_sample_per_annotation(coco):
    path, images = coco
    dataset = CocoCaptions(path, images)
    # Annotations with a bad caption or an unknown image are left out while the JSON is read.
    assert len(dataset) == 4 and dataset.has_captions
    samples = [dataset[i] for i in range(4)]
    assert [is_skipped(sample) for sample in samples] == [False, False, True, False]  # the broken file
    real = [sample for sample in samples if not is_skipped(sample)]
    assert [sample["caption"] for sample in real] == ["A dog on a sofa.", "A sleeping dog.", "Two cats."]
    assert [sample["labels"]["image_id"] for sample in real] == [1, 1, 2]
    assert real[2]["image"].shape == (3, 24, 32)
    counts = {reason: count for reason, count in dataset.bad_samples.counts.items() if count}
    assert counts == {"empty_caption": 1, "unreadable_image": 1, "missing_image": 1, "missing_caption": 1}


def test_one_sample_per_image_with_its_first_usable_caption(coco):
    path, images = coco
    dataset = CocoCaptions(path, images, per_image=True)
    assert len(dataset) == 3  # image 4 has no usable caption
    samples = [dataset[i] for i in range(3)]
    assert [sample["caption"] for sample in samples[:2]] == ["A dog on a sofa.", "Two cats."]
    assert is_skipped(samples[2])  # image 3 does not decode
    counts = {reason: count for reason, count in dataset.bad_samples.counts.items() if count}
    assert counts == {"unreadable_image": 1, "missing_caption": 1}


def test_counts_are_complete_with_two_workers(coco):
    path, images = coco
    dataset = CocoCaptions(path, images, transform=crop8)
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=CaptionCollate(None)))
    assert sorted(caption for batch in batches for caption in batch["captions"]) == [
        "A dog on a sofa.",
        "A sleeping dog.",
        "Two cats.",
    ]
    assert dataset.bad_samples.total == 4


def test_layout_and_missing_files_are_clear_errors(coco, tmp_path):
    path, images = coco
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoCaptions(tmp_path / "nope.json", images)
    with pytest.raises(FileNotFoundError, match="val2017"):
        CocoCaptions(path, tmp_path / "val2017")
    wrong = tmp_path / "instances.json"
    wrong.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "categories": []}))
    with pytest.raises(ValueError, match="instances.json is not a COCO captions file"):
        CocoCaptions(wrong, images)
    empty_captions = tmp_path / "empty.json"
    empty_captions.write_text(
        json.dumps(
            {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "caption": ""}]}
        )
    )
    with pytest.raises(ValueError, match="empty.json: none of the 1 samples is usable"):
        CocoCaptions(empty_captions, images)
