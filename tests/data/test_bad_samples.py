"""Bad-sample accounting: reasons, shared counters across DataLoader workers, the map-style fallback."""

import logging
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from infomug.data.bad_samples import (
    REASONS,
    BadSample,
    BadSampleCounts,
    BadSampleTracker,
    FallbackDataset,
    caption_problem,
)


@pytest.mark.parametrize(
    "caption, reason",
    [
        (None, "missing_caption"),
        ("", "empty_caption"),
        (" \t\n", "empty_caption"),
        ("x" * 11, "caption_too_long"),
        ("  " + "x" * 10 + "\n", None),
        ("red circle", None),
    ],
)
def test_caption_problem(caption, reason):
    assert caption_problem(caption, max_caption_chars=10) == reason


def test_unknown_reasons_are_refused():
    with pytest.raises(ValueError, match="unknown bad-sample reason"):
        BadSample("cosmic_ray", "k")
    with pytest.raises(ValueError, match="unknown bad-sample reason"):
        BadSampleTracker("src").record("cosmic_ray", "k")


def test_tracker_counts_keeps_first_examples_and_warns_once_per_reason(caplog):
    tracker = BadSampleTracker("pairs.csv", max_workers=2, max_examples=2)
    with caplog.at_level(logging.WARNING, logger="infomug.data.bad_samples"):
        for key in ("a", "b", "c"):
            tracker.record("empty_caption", key)
        tracker.record("truncated_image", "é/long-" + "x" * 400)
    counts = tracker.snapshot()
    assert counts.counts["empty_caption"] == 3 and counts.counts["truncated_image"] == 1
    assert counts.total == 4 and set(counts.counts) == set(REASONS)
    assert counts.examples["empty_caption"] == ["a", "b"]
    assert counts.examples["truncated_image"][0].startswith("é/long-xxx")
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert "empty_caption" in warnings[0] and "pairs.csv" in warnings[0] and " a" in warnings[0]
    assert "4 bad samples" in str(counts) and "empty_caption: 3" in str(counts)
    tracker.reset()
    assert tracker.snapshot().total == 0 and str(tracker.snapshot()) == "no bad samples"


def test_counts_total_is_the_sum():
    assert BadSampleCounts({"empty_caption": 2, "unreadable_image": 5}).total == 7


class EveryThird(FallbackDataset):
    """Indices divisible by 3 are bad; a good sample's "image" is its index."""

    def __init__(self, size=12, bad=lambda i: i % 3 == 0, max_workers=4):
        super().__init__("every-third", max_workers)
        self.size, self.bad = size, bad

    def __len__(self):
        return self.size

    def _load(self, index):
        if self.bad(index):
            raise BadSample("unreadable_image" if index % 2 else "empty_caption", f"item {index}")
        return {"image": torch.tensor([float(index)]), "caption": str(index), "labels": {}}


def test_a_bad_index_returns_the_next_good_one_and_is_counted_once_per_request():
    dataset = EveryThird()
    assert [dataset[i]["caption"] for i in range(12)] == [
        "1", "1", "2", "4", "4", "5", "7", "7", "8", "10", "10", "11",
    ]  # fmt: skip
    assert dataset.bad_samples.total == 4
    assert dataset.bad_samples.counts == {
        **dict.fromkeys(REASONS, 0),
        "empty_caption": 2,
        "unreadable_image": 2,
    }
    assert dataset[-1]["caption"] == "11"
    assert dataset.bad_samples.total == 4
    with pytest.raises(IndexError):
        dataset[12]


def test_fallback_wraps_around_and_skips_runs_of_bad_samples():
    dataset = EveryThird(size=6, bad=lambda i: i in (3, 4, 5))
    assert dataset[4]["caption"] == "0"
    assert dataset.bad_samples.total == 1


def test_all_bad_raises_naming_the_source():
    dataset = EveryThird(size=5, bad=lambda i: True)
    with pytest.raises(ValueError, match="every one of the 5 samples of every-third is bad"):
        dataset[2]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_counts_reach_the_caller_from_worker_processes(num_workers):
    dataset = EveryThird(size=30)
    loader = DataLoader(dataset, batch_size=4, num_workers=num_workers)
    images = torch.cat([batch["image"] for batch in loader]).flatten().tolist()
    assert len(images) == 30 and all(int(value) % 3 != 0 for value in images)
    counts = dataset.bad_samples
    assert counts.total == 10
    assert counts.counts["empty_caption"] == 5 and counts.counts["unreadable_image"] == 5
    assert len(counts.examples["empty_caption"]) == 5
    assert dataset.log_bad_samples("epoch 0").total == 10


def test_more_workers_than_counter_rows_is_a_clear_error(monkeypatch):
    # Simulated in-process: a DataLoader whose worker raises takes ~10 s to shut its workers down.
    monkeypatch.setattr(
        "infomug.data.bad_samples.get_worker_info", lambda: SimpleNamespace(id=1, num_workers=2)
    )
    with pytest.raises(ValueError, match="max_workers=1"):
        EveryThird(max_workers=1)[0]
    # Also for a good sample: the error comes with the first batch, not at the first bad sample mid-epoch.
    with pytest.raises(ValueError, match="max_workers=1"):
        EveryThird(max_workers=1)[1]
