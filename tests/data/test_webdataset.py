"""WebDataset shards: good samples load with their captions, bad ones are counted by reason, and the split
over ranks x workers reads every sample exactly once (many shards, and fewer shards than readers)."""

import io
import os
import tarfile
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, features
from torch.utils.data import DataLoader

from infomug.data.webdataset import WebDatasetShards, expand_shards, resolve_rank

HAS_WEBP = features.check("webp")


def image_bytes(seed=0, mode="RGB", fmt="JPEG", size=20):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def write_shard(path, samples):
    """``samples``: ``[(member name, bytes or str), ...]`` in tar order."""
    with tarfile.open(path, "w") as tar:
        for name, data in samples:
            data = data.encode("utf-8") if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def resize16(image):
    return F.interpolate(image[None], size=(16, 16), mode="bilinear", align_corners=False)[0]


JPEG = image_bytes(0)
GOOD = {
    "000": [("000.jpg", JPEG), ("000.txt", "a red circle"), ("000.json", '{"size": 3}')],
    "001": [("001.png", image_bytes(1, "L", "PNG")), ("001.txt", "grey square")],
    "002": [("002.png", image_bytes(2, "RGBA", "PNG")), ("002.txt", "  padded caption \n")],
    "003": [("003.png", image_bytes(3, "P", "PNG")), ("003.txt", "palette picture")],
    "004": [("004.jpeg", JPEG), ("004.txt", "jpeg extension"), ("004.cls", "7")],
    "part/005": [("part/005.jpg", JPEG), ("part/005.seg.png", b"ignored"), ("part/005.txt", "in a folder")],
}
if HAS_WEBP:
    GOOD["006"] = [("006.webp", image_bytes(6, fmt="WEBP")), ("006.txt", "webp picture")]
CAPTIONS = {
    "a red circle", "grey square", "padded caption", "palette picture", "jpeg extension", "in a folder",
} | ({"webp picture"} if HAS_WEBP else set())  # fmt: skip
BAD = {
    "010": ([("010.jpg", b"\xff\xd8 not really a jpeg"), ("010.txt", "corrupt")], "unreadable_image"),
    "011": ([("011.jpg", JPEG[: len(JPEG) // 2]), ("011.txt", "truncated")], "truncated_image"),
    "012": ([("012.jpg", JPEG), ("012.txt", "")], "empty_caption"),
    "013": ([("013.jpg", JPEG), ("013.txt", " \n\t")], "empty_caption"),
    "014": ([("014.jpg", JPEG)], "missing_caption"),
    "015": ([("015.txt", "no image")], "missing_image"),
    "016": ([("016.jpg", JPEG), ("016.txt", "x" * 41)], "caption_too_long"),
}


def mixed_members():
    members = [member for sample in GOOD.values() for member in sample]
    members += [member for sample, _ in BAD.values() for member in sample]
    return sorted(members, key=lambda member: member[0].split("/")[-1])


def expected_counts():
    return Counter(reason for _, reason in BAD.values())


def test_good_samples_load_and_bad_ones_are_counted_by_reason(tmp_path):
    shard = write_shard(tmp_path / "mixed.tar", mixed_members())
    dataset = WebDatasetShards(shard, transform=resize16, max_caption_chars=40)
    samples = list(dataset)
    assert {sample["caption"] for sample in samples} == CAPTIONS and len(samples) == len(CAPTIONS)
    for sample in samples:
        assert sample["image"].shape == (3, 16, 16) and sample["image"].dtype == torch.float32
        assert sample["labels"] == {}
    counts = dataset.bad_samples
    assert {reason: count for reason, count in counts.counts.items() if count} == expected_counts()
    assert counts.total == len(BAD)
    assert counts.examples["truncated_image"] == [f"{shard}:011"]
    assert dataset.has_captions


def test_counts_are_complete_with_two_workers(tmp_path):
    members = mixed_members()
    half = len(members) // 2
    while members[half][0].split(".")[0] == members[half - 1][0].split(".")[0]:
        half += 1  # keep each sample's members in one shard
    shards = [
        write_shard(tmp_path / "a.tar", members[:half]),
        write_shard(tmp_path / "b.tar", members[half:]),
    ]
    dataset = WebDatasetShards(shards, transform=resize16, max_caption_chars=40)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    assert sorted(sample["caption"] for sample in loader) == sorted(CAPTIONS)
    assert {
        reason: count for reason, count in dataset.bad_samples.counts.items() if count
    } == expected_counts()


def test_image_only_shards_need_no_captions(tmp_path):
    shard = write_shard(tmp_path / "images.tar", [("a.jpg", JPEG), ("b.png", image_bytes(1, "L", "PNG"))])
    dataset = WebDatasetShards(shard, require_caption=False)
    assert [sample["caption"] for sample in dataset] == ["", ""]
    assert not dataset.has_captions and dataset.bad_samples.total == 0


def test_labels_from_json_and_cls(tmp_path):
    shard = write_shard(
        tmp_path / "labels.tar",
        [
            ("a.jpg", JPEG), ("a.txt", "good"), ("a.json", '{"size": 3, "hue": 0.25, "url": "x"}'),
            ("a.cls", "4"),
            ("b.jpg", JPEG), ("b.txt", "no size"), ("b.json", '{"hue": 0.5}'), ("b.cls", "1"),
            ("c.jpg", JPEG), ("c.txt", "text size"), ("c.json", '{"size": "3", "hue": 0.5}'),
            ("c.cls", "1"),
            ("d.jpg", JPEG), ("d.txt", "broken json"), ("d.json", "{"), ("d.cls", "1"),
            ("e.jpg", JPEG), ("e.txt", "no cls"), ("e.json", '{"size": 1, "hue": 0.5}'),
        ],
    )  # fmt: skip
    dataset = WebDatasetShards(shard, label_keys=("size", "hue", "cls"))
    samples = list(dataset)
    assert [sample["labels"] for sample in samples] == [{"size": 3, "hue": 0.25, "cls": 4}]
    assert dataset.bad_samples.counts["bad_labels"] == 4


def test_an_all_bad_shard_raises_naming_it(tmp_path):
    good = write_shard(tmp_path / "good.tar", [("a.jpg", JPEG), ("a.txt", "fine")])
    bad = write_shard(tmp_path / "bad.tar", [("a.jpg", b"junk"), ("a.txt", "x"), ("b.jpg", JPEG)])
    dataset = WebDatasetShards([good, bad], shuffle_shards=False)
    with pytest.raises(ValueError, match="bad.tar has no usable sample"):
        list(dataset)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar file" * 50)
    with pytest.raises(ValueError, match="garbage.tar has no usable sample.*corrupt_shard"):
        list(WebDatasetShards(str(garbage)))


def test_a_truncated_tar_keeps_what_came_before(tmp_path):
    members = [
        (f"{i:03d}.{ext}", JPEG if ext == "jpg" else f"caption {i}")
        for i in range(6)
        for ext in ("jpg", "txt")
    ]
    path = tmp_path / "cut.tar"
    write_shard(path, members)
    with tarfile.open(path) as tar:
        cut = tar.getmember("003.jpg").offset_data + 10  # inside a member's data
    path.write_bytes(path.read_bytes()[:cut])  # (the other cuts: tests/reliability/test_data.py)
    dataset = WebDatasetShards(str(path), shuffle_shards=False)
    captions = [sample["caption"] for sample in dataset]
    assert captions == ["caption 0", "caption 1", "caption 2"]
    assert dataset.bad_samples.counts["corrupt_shard"] == 1


def test_missing_shards_and_remote_urls_are_refused(tmp_path):
    write_shard(tmp_path / "000.tar", [("a.jpg", JPEG), ("a.txt", "x")])
    with pytest.raises(FileNotFoundError, match="001.tar"):
        WebDatasetShards(str(tmp_path / "{000..001}.tar"))
    with pytest.raises(ValueError, match="only local"):
        WebDatasetShards("https://example.com/{000..001}.tar")
    with pytest.raises(ValueError, match="no shards"):
        WebDatasetShards(" :: ")


def test_shard_specs_expand_braces_lists_and_double_colons(tmp_path):
    assert expand_shards("d/{00..02}.tar::x.tar") == ["d/00.tar", "d/01.tar", "d/02.tar", "x.tar"]
    assert expand_shards(["a/{0..1}.tar", tmp_path / "b.tar"]) == [
        "a/0.tar",
        "a/1.tar",
        str(tmp_path / "b.tar"),
    ]
    for i in range(3):
        write_shard(tmp_path / f"{i:05d}.tar", [("k.jpg", JPEG), ("k.txt", f"shard {i}")])
    dataset = WebDatasetShards(str(tmp_path / "{00000..00002}.tar"), shuffle_shards=False)
    assert [sample["caption"] for sample in dataset] == ["shard 0", "shard 1", "shard 2"]


def numbered_shards(folder, n_shards, per_shard):
    image = image_bytes(0, fmt="PNG", size=4)
    paths = []
    for shard in range(n_shards):
        members = [
            (f"{i:04d}.{ext}", image if ext == "png" else f"s{shard}-{i}")
            for i in range(per_shard)
            for ext in ("png", "txt")
        ]
        paths.append(write_shard(os.path.join(folder, f"{shard:03d}.tar"), members))
    return paths, Counter(f"s{shard}-{i}" for shard in range(n_shards) for i in range(per_shard))


@pytest.mark.parametrize("n_shards, per_shard", [(8, 3), (3, 5), (1, 7)], ids=["many", "fewer", "one"])
def test_two_ranks_times_two_workers_read_every_sample_exactly_once(tmp_path, n_shards, per_shard):
    shards, expected = numbered_shards(tmp_path, n_shards, per_shard)
    seen = Counter()
    for rank in range(2):
        dataset = WebDatasetShards(shards, rank=rank, world_size=2, seed=1, shuffle_buffer=3)
        seen.update(sample["caption"] for sample in DataLoader(dataset, batch_size=None, num_workers=2))
    assert seen == expected


def test_rank_from_the_environment(tmp_path, monkeypatch):
    shards, expected = numbered_shards(tmp_path, 2, 4)
    seen = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        assert resolve_rank() == (rank, 3)
        seen.append([sample["caption"] for sample in WebDatasetShards(shards)])
    assert all(seen) and Counter(caption for part in seen for caption in part) == expected
    with pytest.raises(ValueError, match="rank must be in"):
        resolve_rank(3, 3)
    with pytest.raises(ValueError, match="both rank and world_size"):
        WebDatasetShards(shards, rank=0)


def test_epoch_shuffle_is_deterministic_by_seed(tmp_path):
    shards, _ = numbered_shards(tmp_path, 8, 2)

    def order(seed, epoch, **options):
        dataset = WebDatasetShards(shards, seed=seed, **options)
        dataset.set_epoch(epoch)
        return [sample["caption"] for sample in dataset]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1) and order(0, 1) == order(0, 1)
    assert order(0, 0) != order(1, 0)
    assert sorted(order(0, 1)) == sorted(order(0, 0))
    assert order(0, 0, shuffle_shards=False) == [f"s{s}-{i}" for s in range(8) for i in range(2)]
    buffered = order(0, 0, shuffle_shards=False, shuffle_buffer=4)
    assert buffered == order(0, 0, shuffle_shards=False, shuffle_buffer=4)
    assert buffered != order(0, 0, shuffle_shards=False) and sorted(buffered) == sorted(order(0, 0))


def test_split_within_a_shard_counts_each_bad_sample_once_and_raises_only_if_all_are_bad(tmp_path):
    members = [("a.jpg", JPEG), ("a.txt", "one"), ("b.jpg", b"junk"), ("b.txt", "two"), ("c.jpg", JPEG)]
    members += [("c.txt", "three")]
    shard = write_shard(tmp_path / "small.tar", members)
    readers = [WebDatasetShards(shard, rank=rank, world_size=4) for rank in range(4)]
    captions = sorted(sample["caption"] for reader in readers for sample in reader)
    assert captions == ["one", "three"]
    assert sum(reader.bad_samples.counts["unreadable_image"] for reader in readers) == 1
    all_bad = write_shard(tmp_path / "empty_captions.tar", [("a.jpg", JPEG), ("a.txt", " "), ("b.jpg", JPEG)])
    for rank in range(4):  # readers with and without a sample of their own all see that none is usable
        with pytest.raises(ValueError, match="empty_captions.tar has no usable sample"):
            list(WebDatasetShards(all_bad, rank=rank, world_size=4))


def test_more_workers_than_counter_rows_fails_before_the_first_sample(tmp_path, monkeypatch):
    # A clean shard: the error must not wait for the first bad sample (which may come hours into a run).
    shard = write_shard(tmp_path / "clean.tar", [("a.jpg", JPEG), ("a.txt", "fine")])
    monkeypatch.setattr(
        "infomug.data.bad_samples.get_worker_info", lambda: SimpleNamespace(id=1, num_workers=2)
    )
    with pytest.raises(ValueError, match="max_workers=1"):
        next(iter(WebDatasetShards(shard, max_workers=1)))
