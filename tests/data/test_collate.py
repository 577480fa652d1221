"""Collate: shapes, dtypes and lengths of the batch dict; labels only where every sample has them;
picklable, so it runs in DataLoader workers."""

import pickle

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from infomug.data.collate import CaptionCollate, collate_labels
from infomug.data.tokenizers import ByteTokenizer


def sample(caption, labels, views=None, size=8):
    shape = (3, size, size) if views is None else (views, 3, size, size)
    return {"image": torch.rand(shape), "caption": caption, "labels": labels}


def test_batch_shapes_dtypes_and_lengths():
    samples = [
        sample("ab", {"class": 1, "hue": 0.5, "only_here": 3}),
        sample("a much longer caption", {"class": 0, "hue": 1}),
        sample("", {"class": 2, "hue": 0.25}),
    ]
    batch = CaptionCollate(ByteTokenizer(), context_length=6)(samples)
    assert batch["image"].shape == (3, 3, 8, 8) and batch["image"].dtype == torch.float32
    assert torch.equal(batch["image"][1], samples[1]["image"])
    assert batch["tokens"].shape == (3, 6) and batch["tokens"].dtype == torch.int64
    assert batch["lengths"].tolist() == [4, 6, 2] and batch["lengths"].dtype == torch.int64
    assert batch["tokens"][0].tolist() == [256, 97, 98, 257, 258, 258]
    assert batch["tokens"][1, -1] == 257  # cut, but still ends with eos
    assert set(batch["labels"]) == {"class", "hue"}
    assert batch["labels"]["class"].dtype == torch.int64 and batch["labels"]["class"].tolist() == [1, 0, 2]
    assert batch["labels"]["hue"].dtype == torch.float32 and batch["labels"]["hue"].tolist() == [
        0.5,
        1.0,
        0.25,
    ]
    assert batch["captions"] == ["ab", "a much longer caption", ""]


def test_two_views_and_no_tokenizer():
    batch = CaptionCollate(None)([sample("x", {}, views=2), sample("y", {}, views=2)])
    assert batch["image"].shape == (2, 2, 3, 8, 8)
    assert "tokens" not in batch and "lengths" not in batch
    assert batch["labels"] == {} and batch["captions"] == ["x", "y"]


def test_clear_errors():
    collate = CaptionCollate(ByteTokenizer(), context_length=8)
    with pytest.raises(ValueError, match="empty list"):
        collate([])
    with pytest.raises(ValueError, match="share a shape"):
        collate([sample("a", {}, size=8), sample("b", {}, size=16)])
    with pytest.raises(ValueError, match="non-numeric"):
        collate_labels([sample("a", {"name": "dog"})])
    with pytest.raises(ValueError, match="non-numeric"):
        collate_labels([sample("a", {"flag": True})])
    with pytest.raises(ValueError, match="context_length must be >= 2"):
        CaptionCollate(ByteTokenizer(), context_length=1)


class Captions(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return sample("c" * index, {"index": index})


def test_works_in_worker_processes():
    collate = pickle.loads(pickle.dumps(CaptionCollate(ByteTokenizer(), context_length=12)))
    loader = DataLoader(Captions(), batch_size=4, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [batch["image"].shape[0] for batch in batches] == [4, 4, 2]
    lengths = torch.cat([batch["lengths"] for batch in batches])
    assert lengths.tolist() == [min(index + 2, 12) for index in range(10)]
    assert torch.cat([batch["labels"]["index"] for batch in batches]).tolist() == list(range(10))
