"""The data readers' promises: nothing silently lost, nothing silently wrong.

Each test is named as the promise it checks. The files are written here: PNGs, tar shards (``tarfile``),
TSVs.
"""

import io
import json
import os
import signal
import tarfile
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from infomug.cli import main
from infomug.data import CaptionCollate, DataConfig, build_dataset
from infomug.data.csv_pairs import CsvPairs
from infomug.data.survey import iter_samples, survey_dataset
from infomug.data.webdataset import WebDatasetShards
from infomug.train.loader import TrainBatches

COLLATE = CaptionCollate(None)


def png_bytes(seed: int, size: int = 8) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path, seed: int = 0, size: int = 8):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(seed, size))
    return path


@contextmanager
def deadline(seconds: int):
    """Fail, rather than hang the suite, if the body blocks (a FIFO's open waits for a writer forever)."""

    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- WebDataset shards: damage is counted ---------------------------------------------------------------

SAMPLES = 22


def write_shard(path, count: int = SAMPLES) -> bytes:
    """A shard of ``count`` good samples ``0000 .. count-1`` (a PNG and a caption each); its bytes."""
    with tarfile.open(path, "w:gz" if str(path).endswith(".gz") else "w") as tar:
        for i in range(count):
            for name, data in ((f"{i:04d}.png", png_bytes(i)), (f"{i:04d}.txt", f"caption {i}".encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def member_offsets(path) -> dict[str, tuple[int, int]]:
    """``{name: (header offset, data offset)}``, and ``"end"``: where the end-of-archive blocks start."""
    with tarfile.open(path) as tar:
        offsets = {member.name: (member.offset, member.offset_data) for member in tar.getmembers()}
        offsets["end"] = (tar.offset, tar.offset)
    return offsets


def damage(data: bytes, offsets: dict, kind: str) -> bytes:
    header, data_start = offsets["0011.png"]
    if kind == "cut at a member boundary":
        return data[:header]
    if kind == "cut inside a member header":
        return data[: header + 100]
    if kind == "a garbage 512-byte header":
        garbage = np.random.default_rng(0).integers(1, 256, 512, dtype=np.uint8).tobytes()
        return data[:header] + garbage + data[header + 512 :]
    if kind == "a short last member":
        return data[: data_start + 30]
    if kind == "no end-of-archive blocks":
        return data[: offsets["end"][0]]
    if kind == "one end-of-archive block":
        return data[: offsets["end"][0] + 512]
    raise ValueError(kind)


DAMAGE = [
    "cut at a member boundary",
    "cut inside a member header",
    "a garbage 512-byte header",
    "a short last member",
    "no end-of-archive blocks",
    "one end-of-archive block",
]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_shard_is_counted_as_corrupt_at_the_byte_where_its_damage_starts(tmp_path, kind):
    path = tmp_path / "00000.tar"
    data = write_shard(path)
    offsets = member_offsets(path)
    path.write_bytes(damage(data, offsets, kind))
    dataset = WebDatasetShards(str(path), shuffle_shards=False)
    captions = [sample["caption"] for sample in dataset]
    counts = dataset.bad_samples
    assert counts.counts["corrupt_shard"] == 1 and counts.total == 1, counts
    # The samples before the damage are read, but the one in progress where it starts, which may lack
    # members (0010 for a cut before 0011.png, 0011 for a cut inside its data, 0021 for a missing end);
    # a cut inside the end-of-archive blocks loses no sample.
    read = {"a short last member": 11, "no end-of-archive blocks": 21, "one end-of-archive block": 22}
    read = read.get(kind, 10)
    assert captions == [f"caption {i}" for i in range(read)]
    (where,) = counts.examples["corrupt_shard"]
    assert where.startswith(str(path)) and " at byte " in where
    byte = int(where.rpartition(" at byte ")[2])
    expected = offsets["0011.png"][1] if kind == "a short last member" else offsets["0011.png"][0]
    assert byte == (offsets["end"][0] if "end-of-archive" in kind else expected)


def test_the_data_command_reports_a_cut_shard(tmp_path, capsys):
    path = tmp_path / "00000.tar"
    data = write_shard(path)
    path.write_bytes(damage(data, member_offsets(path), "cut at a member boundary"))
    assert main(["data", "webdataset", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no bad samples" not in out and "corrupt_shard: 1" in out and f"{path}:0010 at byte" in out


def test_a_cut_compressed_shard_is_counted_as_corrupt(tmp_path):
    path = tmp_path / "00000.tar.gz"
    data = write_shard(path)
    path.write_bytes(data[: len(data) // 2])
    dataset = WebDatasetShards(str(path), shuffle_shards=False)
    captions = [sample["caption"] for sample in dataset]
    assert 0 < len(captions) < SAMPLES and captions == [f"caption {i}" for i in range(len(captions))]
    assert dataset.bad_samples.counts["corrupt_shard"] == 1 and dataset.bad_samples.total == 1


def test_a_complete_shard_has_no_bad_samples(tmp_path):
    path = tmp_path / "00000.tar"
    write_shard(path)
    (tmp_path / "00000_stats.json").write_text(json.dumps({"count": 30, "successes": SAMPLES}))
    dataset = WebDatasetShards(str(path))
    assert len(list(dataset)) == SAMPLES and dataset.bad_samples.total == 0


def test_a_shard_holding_fewer_samples_than_its_img2dataset_stats_list_is_counted_as_corrupt(tmp_path):
    path = tmp_path / "00000.tar"
    write_shard(path, count=10)  # a well-formed tar: only the count shows samples are missing
    (tmp_path / "00000_stats.json").write_text(json.dumps({"count": 30, "successes": SAMPLES}))
    dataset = WebDatasetShards(str(path))
    assert len(list(dataset)) == 10
    assert dataset.bad_samples.counts["corrupt_shard"] == 1
    assert dataset.bad_samples.examples["corrupt_shard"][0].startswith(f"{path} at byte ")


# -- WebDataset shards: every good sample is trained on -------------------------------------------------


def one_shard_training_data(tmp_path, name="00000.tar"):
    path = tmp_path / name
    write_shard(path)
    # The training split of the issue: one shard, no shuffle buffer; the loader drops the last partial batch.
    return build_dataset(DataConfig(source="webdataset", path=str(path), image_size=8, shuffle_buffer=0))


@pytest.mark.parametrize("name", ["00000.tar", "00000.tar.gz"])  # shuffled; rotated (read forward only)
def test_every_good_sample_of_a_single_shard_is_trained_on_within_a_few_epochs(tmp_path, name):
    batches = TrainBatches(one_shard_training_data(tmp_path, name), COLLATE, local_batch=8, seed=0)
    seen, per_epoch = Counter(), Counter()
    for _ in range(16):  # 8 epochs of 2 batches: 16 of the 22 samples an epoch
        batch = next(batches)
        per_epoch.update((batches.epoch, caption) for caption in batch["captions"])
        seen.update(batch["captions"])
    assert batches.epoch == 7
    assert set(seen) == {f"caption {i}" for i in range(SAMPLES)}
    assert max(per_epoch.values()) == 1  # and none twice in an epoch


def test_a_resumed_stream_reads_the_batches_of_the_uninterrupted_run(tmp_path):
    data = one_shard_training_data(tmp_path)
    uninterrupted = TrainBatches(data, COLLATE, local_batch=8, seed=3)
    taken = [(uninterrupted.position(), next(uninterrupted)) for _ in range(7)]
    for position, _ in taken[1:]:
        resumed = TrainBatches(data, COLLATE, local_batch=8, seed=3, **position)
        start = [p for p, _ in taken].index(position)
        for _, expected in taken[start:]:
            batch = next(resumed)
            assert batch["captions"] == expected["captions"]
            assert batch["image"].equal(expected["image"])


# -- TSVs: bad rows are skipped, never replaced -----------------------------------------------------------

GOOD_ROWS = {"a red square": "images/0.png", "a blue disc": "images/1.png", "two green lines": "images/2.png"}
GOOD_ROWS |= {"one black dot": "images/3.png", "a yellow sky at dusk": "images/4.png", "grey": "images/5.png"}


def bad_rows_tsv(tmp_path):
    """A TSV of the 6 good rows above and 6 bad ones: 3 found when the file is read, 3 when loaded."""
    for i in range(6):
        write_png(tmp_path / "images" / f"{i}.png", seed=i)
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image")
    rows = [f"{path}\t{caption}" for caption, path in GOOD_ROWS.items()]
    rows[2:2] = ["images/0.png\t   ", "images/broken.png\tbroken one", "images/1.png\t" + "x" * 50]
    rows[7:7] = ["images/missing.png\tmissing file", "images/broken.png\tbroken two", "images/2.png\t"]
    path = tmp_path / "pairs.tsv"
    path.write_text("filepath\ttitle\n" + "\n".join(rows) + "\n")
    return path


def test_tsv_rows_with_a_bad_caption_are_left_out_of_the_index_and_counted(tmp_path):
    dataset = CsvPairs(bad_rows_tsv(tmp_path), max_caption_chars=40)
    assert len(dataset) == 9  # 6 good rows and 3 whose image is only found bad when loaded
    counts = {reason: count for reason, count in dataset.bad_samples.counts.items() if count}
    assert counts == {"empty_caption": 2, "caption_too_long": 1}


def test_a_tsv_epoch_trains_on_every_good_row_once_and_on_no_row_twice(tmp_path):
    config = DataConfig(source="csv", path=str(bad_rows_tsv(tmp_path)), image_size=8, max_caption_chars=40)
    batches = TrainBatches(build_dataset(config), COLLATE, local_batch=9, seed=0)
    for _ in range(2):  # one batch an epoch
        assert sorted(next(batches)["captions"]) == sorted(GOOD_ROWS)
    counts = batches.dataset.dataset.bad_samples.counts
    assert counts["unreadable_image"] == 4 and counts["missing_image"] == 2  # per epoch, like a shard


def test_the_survey_counts_and_measures_real_samples_only(tmp_path):
    dataset = CsvPairs(bad_rows_tsv(tmp_path), max_caption_chars=40)
    survey = survey_dataset(dataset, "pairs", show=10)
    lengths = sorted(len(caption) for caption in GOOD_ROWS)
    assert survey.samples == survey.captioned == 6
    assert survey.caption_chars == {
        "min": lengths[0],
        "median": float(np.median(lengths)),
        "max": lengths[-1],
    }
    assert survey.captions == list(GOOD_ROWS)
    counts = {reason: count for reason, count in survey.bad_samples.counts.items() if count}
    assert counts == {"empty_caption": 2, "caption_too_long": 1, "unreadable_image": 2, "missing_image": 1}
    # The grid and the tokenizer's corpus read through iter_samples: no row stands in for a bad one.
    assert [sample["caption"] for sample in iter_samples(dataset)] == list(GOOD_ROWS)


# -- TSVs: hostile paths ----------------------------------------------------------------------------------


def test_a_tsv_row_naming_a_device_a_fifo_or_a_folder_is_a_counted_bad_sample_not_a_hang(tmp_path):
    write_png(tmp_path / "images" / "good.png")
    os.mkfifo(tmp_path / "images" / "fifo.png")
    (tmp_path / "images" / "folder.png").mkdir()
    (tmp_path / "pairs.tsv").write_text(
        "filepath\ttitle\nimages/good.png\tgood\n/dev/zero\tendless\nimages/fifo.png\tno writer\n"
        "images/folder.png\ta folder\n"
    )
    dataset = CsvPairs(tmp_path / "pairs.tsv", allow_outside_root=True)  # /dev/zero is outside the root
    with deadline(10):
        survey = survey_dataset(dataset, "hostile")
    assert survey.samples == 1
    assert survey.bad_samples.counts["not_a_regular_file"] == 3 and survey.bad_samples.total == 3
    examples = " ".join(survey.bad_samples.examples["not_a_regular_file"])
    assert "/dev/zero" in examples and "fifo.png" in examples and "folder.png" in examples


def test_an_image_file_over_max_image_bytes_is_a_counted_bad_sample(tmp_path):
    write_png(tmp_path / "images" / "small.png", size=4)
    write_png(tmp_path / "images" / "large.png", size=32)
    (tmp_path / "pairs.tsv").write_text("filepath\ttitle\nimages/small.png\tsmall\nimages/large.png\tlarge\n")
    config = DataConfig(source="csv", path=str(tmp_path / "pairs.tsv"), max_image_bytes=1000)
    survey = survey_dataset(build_dataset(config), "capped")
    assert survey.samples == 1 and survey.bad_samples.counts["image_too_large"] == 1
    with pytest.raises(ValueError, match="max_image_bytes"):
        DataConfig(source="csv", path="x.tsv", max_image_bytes=0)


def test_tsv_paths_outside_the_image_root_are_refused_unless_allowed(tmp_path):
    data = tmp_path / "data"
    write_png(data / "images" / "inside.png")
    outside = write_png(tmp_path / "secret.png", seed=1)
    (data / "images" / "link.png").symlink_to(outside)
    (data / "pairs.tsv").write_text(
        "filepath\ttitle\nimages/inside.png\tinside\n../secret.png\tup and out\n"
        f"{outside}\tabsolute\nimages/link.png\ta symlink out\n../../../../../../../../etc/passwd\tpasswd\n"
    )
    refused = CsvPairs(data / "pairs.tsv")
    assert refused.image_root == data.resolve()  # resolve_image_root: the TSV's folder holds the images
    survey = survey_dataset(refused, "refused")
    assert survey.samples == 1 and survey.bad_samples.counts["outside_root"] == 4
    config = DataConfig(source="csv", path=str(data / "pairs.tsv"), image_size=8, allow_outside_root=True)
    allowed = survey_dataset(build_dataset(config), "allowed")
    # /etc/passwd is a regular file: read, and found not to be an image.
    assert allowed.samples == 4 and allowed.bad_samples.total == 1
    assert allowed.bad_samples.counts["outside_root"] == 0


def test_a_tsv_of_absolute_paths_outside_the_root_is_a_clear_error(tmp_path, monkeypatch):
    outside = write_png(tmp_path / "elsewhere" / "a.png")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "pairs.tsv").write_text(f"filepath\ttitle\n{outside}\tabsolute\n")
    monkeypatch.chdir(tmp_path / "lists")
    with pytest.raises(ValueError, match=r"outside_root: 1.*data.allow_outside_root=true"):
        CsvPairs(tmp_path / "lists" / "pairs.tsv")
    assert len(CsvPairs(tmp_path / "lists" / "pairs.tsv", allow_outside_root=True)) == 1
