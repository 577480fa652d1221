"""Training batches: order and augmentations are functions of (seed, epoch, position), so resuming,
splitting over processes and changing the worker count do not change the data."""

import os
import subprocess
import sys

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from infomug import dist
from infomug.data import CaptionCollate, DataConfig, WorldConfig, build_dataset
from infomug.train.loader import GlobalBatchSampler, TrainBatches, eval_batches, first_samples

COLLATE = CaptionCollate(None, context_length=2)


def _sample(index: int) -> dict:
    # The noise stands for a random augmentation: it must come from the seeded global generator.
    return {
        "image": torch.full((3, 2, 2), float(index)) + torch.rand(3, 2, 2),
        "caption": str(index),
        "labels": {},
    }


class NoisyMap(Dataset):
    """Map-style: sample ``i`` is ``i`` plus noise drawn from the global torch generator."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return _sample(index)


class NoisyStream(IterableDataset):
    """Iterable: samples ``0 .. count-1`` in order, each with noise from the global generator."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __iter__(self):
        for index in range(self.count):
            yield _sample(index)


def _take(batches: TrainBatches, count: int) -> list[tuple[tuple[int, int], dict]]:
    """``count`` batches, each with the position after it (what a checkpoint taken then would save)."""
    taken = []
    for _ in range(count):
        batch = next(batches)
        taken.append(((batches.epoch, batches.batch), batch))
    return taken


def _same(a: dict, b: dict) -> bool:
    return torch.equal(a["image"], b["image"]) and a["captions"] == b["captions"]


# -- GlobalBatchSampler ------------------------------------------------------------------------------


def test_every_index_once_per_epoch_and_epochs_differ():
    sampler = GlobalBatchSampler(length=50, local_batch=4, rank=0, world_size=1, seed=3)
    assert sampler.batches_per_epoch == len(sampler) == 12
    epochs = []
    for epoch in range(3):
        sampler.set_position(epoch, 0)
        batches = list(sampler)
        assert len(batches) == 12 and all(len(batch) == 4 for batch in batches)
        flat = [index for batch in batches for index in batch]
        assert len(set(flat)) == 48 and set(flat) <= set(range(50)), "no index twice, 2 dropped"
        epochs.append(flat)
    assert epochs[0] != epochs[1] != epochs[2]
    sampler.set_position(0, 0)
    assert [i for batch in sampler for i in batch] == epochs[0], "an epoch's order is a function of its seed"
    other_seed = GlobalBatchSampler(length=50, local_batch=4, rank=0, world_size=1, seed=4)
    assert [i for batch in other_seed for i in batch] != epochs[0]


def test_divisible_length_covers_every_index():
    sampler = GlobalBatchSampler(length=24, local_batch=3, rank=0, world_size=2, seed=0)
    other = GlobalBatchSampler(length=24, local_batch=3, rank=1, world_size=2, seed=0)
    assert sorted(i for s in (sampler, other) for batch in s for i in batch) == list(range(24))


def test_rank_slices_of_two_processes_concatenate_to_the_one_process_batch():
    one = GlobalBatchSampler(length=70, local_batch=8, rank=0, world_size=1, seed=5)
    ranks = [GlobalBatchSampler(length=70, local_batch=4, rank=r, world_size=2, seed=5) for r in (0, 1)]
    for epoch in (0, 1):
        for sampler in (one, *ranks):
            sampler.set_position(epoch, 0)
        joined = [a + b for a, b in zip(*ranks, strict=True)]
        assert joined == list(one)
        assert len(joined) == 8


def test_start_offset_skips_exactly_that_many_batches():
    sampler = GlobalBatchSampler(length=40, local_batch=4, rank=1, world_size=2, seed=1)
    sampler.set_position(2, 0)
    whole = list(sampler)
    for start in (1, 3, 5):
        sampler.set_position(2, start)
        assert len(sampler) == 5 - start
        assert list(sampler) == whole[start:]


def test_unshuffled_order_is_the_dataset_order():
    sampler = GlobalBatchSampler(length=10, local_batch=2, rank=1, world_size=2, seed=1, shuffle=False)
    assert list(sampler) == [[2, 3], [6, 7]]


def test_a_dataset_smaller_than_one_global_batch_is_refused():
    with pytest.raises(ValueError, match=r"has 7 samples, fewer than one global batch of 8 \(2 process"):
        GlobalBatchSampler(length=7, local_batch=4, rank=0, world_size=2, seed=0)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        TrainBatches(NoisyMap(3), COLLATE, local_batch=4, seed=0)


# -- TrainBatches ------------------------------------------------------------------------------------


def _world(augmentation: str, size: int = 32):
    config = DataConfig(image_size=16, world=WorldConfig(size=size, eval_size=16, image_size=16))
    return build_dataset(config, "train", augmentation)


@pytest.mark.parametrize(
    "make",
    [lambda: NoisyMap(18), lambda: _world("two_view", size=18), lambda: NoisyStream(18)],
    ids=["map", "world", "iterable"],
)
def test_resuming_at_any_position_gives_the_uninterrupted_batches(make):
    # 18 samples in batches of 4: 4 batches an epoch, so 11 batches span epochs 0, 1 and 2.
    batches = TrainBatches(make(), COLLATE, local_batch=4, seed=7)
    uninterrupted = _take(batches, 11)
    # The epoch rolls over lazily: after the last batch of epoch 0 the position is (0, 4).
    assert [position for position, _ in uninterrupted][2:6] == [(0, 3), (0, 4), (1, 1), (1, 2)]
    assert batches.position() == {"epoch": 2, "batch": 3}
    for stop in (1, 3, 4, 5, 9):
        epoch, batch = uninterrupted[stop - 1][0]
        resumed = TrainBatches(make(), COLLATE, local_batch=4, seed=7, epoch=epoch, batch=batch)
        rest = _take(resumed, 11 - stop)
        assert all(_same(a, b) for (_, a), (_, b) in zip(rest, uninterrupted[stop:], strict=True)), stop


@pytest.mark.parametrize("make", [lambda: NoisyMap(8), lambda: NoisyStream(8)], ids=["map", "iterable"])
def test_epoch_rollover_redraws_augmentations(make):
    batches = TrainBatches(make(), COLLATE, local_batch=4, seed=0)
    (_, first), (_, second), (_, third) = _take(batches, 3)
    assert batches.position() == {"epoch": 1, "batch": 1}
    assert batches.batches_per_epoch == (2 if isinstance(make(), NoisyMap) else None)
    assert not torch.equal(first["image"], third["image"]) and not torch.equal(
        second["image"], third["image"]
    )
    # The same samples come back, with new noise (only the whole part of each pixel is the index).
    assert sorted(int(caption) for caption in first["captions"] + second["captions"]) == list(range(8))
    assert third["image"].floor()[:, 0, 0, 0].tolist() == [float(caption) for caption in third["captions"]]


def test_a_stream_too_small_for_one_batch_or_the_resumed_position_is_an_error():
    with pytest.raises(ValueError, match="epoch 0 yielded no full batch of 4 samples"):
        next(TrainBatches(NoisyStream(3), COLLATE, local_batch=4, seed=0))
    with pytest.raises(ValueError, match=r"ended before the resumed position \(batch 5\)"):
        next(TrainBatches(NoisyStream(17), COLLATE, local_batch=4, seed=0, batch=5))


def test_augmentations_do_not_depend_on_the_number_of_workers():
    world = _world("two_view")
    serial = _take(TrainBatches(world, COLLATE, local_batch=4, seed=2), 3)
    parallel = _take(TrainBatches(world, COLLATE, local_batch=4, seed=2, num_workers=2), 3)
    assert serial[0][1]["image"].shape == (4, 2, 3, 16, 16)
    assert not torch.equal(serial[0][1]["image"][:, 0], serial[0][1]["image"][:, 1]), "two different views"
    assert all(_same(a, b) for (_, a), (_, b) in zip(serial, parallel, strict=True))


def test_two_processes_read_the_one_process_global_batch_with_the_same_augmentations(monkeypatch):
    world = _world("two_view")
    one = _take(TrainBatches(world, COLLATE, local_batch=8, seed=4), 2)
    halves = []
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    for rank in (0, 1):
        monkeypatch.setattr(dist, "rank", lambda rank=rank: rank)
        halves.append(_take(TrainBatches(world, COLLATE, local_batch=4, seed=4), 2))
    for (_, whole), (_, first), (_, second) in zip(one, *halves, strict=True):
        assert whole["captions"] == first["captions"] + second["captions"]
        assert torch.equal(whole["image"], torch.cat([first["image"], second["image"]]))


def test_eval_batches_repeat_and_stop_after_count():
    config = DataConfig(image_size=16, world=WorldConfig(size=32, eval_size=24, image_size=16))
    world = build_dataset(config, "eval", "two_view")
    first = list(eval_batches(world, COLLATE, local_batch=8, count=2, seed=1))
    again = list(eval_batches(world, COLLATE, local_batch=8, count=2, seed=1))
    assert len(first) == 2
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again, strict=True))
    assert first[1]["captions"] == [world[i]["caption"] for i in range(8, 16)], "in dataset order"
    assert len(list(eval_batches(world, COLLATE, local_batch=8, count=5, seed=1))) == 3


def test_first_samples_are_the_first_eval_images_whatever_the_number_of_processes(monkeypatch):
    config = DataConfig(image_size=16, world=WorldConfig(size=32, eval_size=6, image_size=16))
    world = build_dataset(config, "eval", "two_view")
    alone = first_samples(world, COLLATE, 8, seed=3)
    assert alone["captions"] == [world[i]["caption"] for i in range(6)], "all six, in order"
    first_batch = next(eval_batches(world, COLLATE, local_batch=4, count=1, seed=3))
    assert torch.equal(first_samples(world, COLLATE, 4, seed=3)["image"], first_batch["image"])
    monkeypatch.setattr(dist, "world_size", lambda: 2)  # the main process of two, alone
    assert torch.equal(first_samples(world, COLLATE, 8, seed=3)["image"], alone["image"])
    assert first_samples(NoisyStream(3), COLLATE, 8, seed=3)["captions"] == ["0", "1", "2"]
    assert first_samples(NoisyStream(0), COLLATE, 8, seed=3) is None


_UNEVEN_STREAMS = """
import sys

import torch
import torch.distributed as torch_dist
from torch.utils.data import IterableDataset

from infomug.data import CaptionCollate
from infomug.train.loader import eval_batches

rank, store = int(sys.argv[1]), sys.argv[2]
torch_dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)


class Shard(IterableDataset):
    def __iter__(self):
        for index in range(8 + 4 * rank):  # rank 0 reads two batches of 4, rank 1 three
            yield {"image": torch.zeros(3, 2, 2), "caption": str(index), "labels": {}}


print(len(list(eval_batches(Shard(), CaptionCollate(None, context_length=2), 4, 5, seed=0))))
torch_dist.destroy_process_group()
"""


def test_eval_batches_of_uneven_streams_stop_together_on_every_process(tmp_path):
    # Each eval batch meets collectives (MUG's token count, CLIP's gathered features, the averaged loss):
    # a process reading one batch more than the others would wait for them forever.
    script = tmp_path / "uneven.py"
    script.write_text(_UNEVEN_STREAMS)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(tmp_path / "store")],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err[-2000:]
            outputs.append(out.strip())
    finally:
        for process in processes:
            process.kill()
    assert outputs == ["2", "2"]
