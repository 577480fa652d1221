"""CSV/TSV pairs with open_clip's defaults: good rows load, bad rows are left out or skipped (never replaced
by another row) and counted by reason, in worker processes too."""

import io

import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from infomug.data.bad_samples import is_skipped
from infomug.data.collate import CaptionCollate
from infomug.data.csv_pairs import CsvPairs


def save_image(path, seed=0, mode="RGB", size=20):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def resize16(image):
    return F.interpolate(image[None], size=(16, 16), mode="bilinear", align_corners=False)[0]


@pytest.fixture
def pairs(tmp_path):
    """A TSV in open_clip's layout: rows 0, 1, 4, 7 are good; the others each break one way."""
    save_image(tmp_path / "images" / "0.jpg", 0)
    save_image(tmp_path / "images" / "1.png", 1, mode="L")
    (tmp_path / "images" / "2.jpg").write_bytes(b"not a jpeg")
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), "red").save(buffer, format="JPEG")
    (tmp_path / "images" / "3.jpg").write_bytes(buffer.getvalue()[:200])
    outside = save_image(tmp_path / "elsewhere" / "7.png", 7, mode="RGBA")
    rows = [
        ("images/0.jpg", "a red circle", "3"),
        ("images/1.png", "  a grey square ", "1"),
        ("images/2.jpg", "corrupt image", "0"),
        ("images/3.jpg", "truncated image", "0"),
        ("images/0.jpg", "a blue circle", "2.5"),
        ("images/0.jpg", "", "0"),
        ("images/missing.jpg", "missing file", "0"),
        (str(outside), "absolute path", "4"),
        ("images/0.jpg", "x" * 30, "0"),
    ]
    lines = ["filepath\ttitle\tsize"] + ["\t".join(row) for row in rows] + ["images/0.jpg"]
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


EXPECTED_BAD = {
    "unreadable_image": 1,
    "truncated_image": 1,
    "empty_caption": 1,
    "missing_image": 1,
    "caption_too_long": 1,
    "missing_caption": 1,
}


def test_good_rows_load_and_bad_rows_are_left_out_or_skipped(pairs):
    dataset = CsvPairs(pairs, transform=resize16, label_keys=("size",), max_caption_chars=25)
    # Rows with a bad caption are left out while the file is read; rows whose image does not load are
    # `Skipped` markers, never another row.
    assert len(dataset) == 7 and dataset.has_captions
    samples = [dataset[i] for i in range(len(dataset))]
    assert [i for i, sample in enumerate(samples) if is_skipped(sample)] == [2, 3, 5]
    assert [sample["caption"] for sample in samples if not is_skipped(sample)] == [
        "a red circle", "a grey square", "a blue circle", "absolute path",
    ]  # fmt: skip
    assert dataset[0]["image"].shape == (3, 16, 16)
    assert [dataset[i]["labels"] for i in (0, 4)] == [{"size": 3}, {"size": 2.5}]
    counts = dataset.bad_samples
    assert {reason: count for reason, count in counts.counts.items() if count} == EXPECTED_BAD
    assert any("line 8" in key and "missing.jpg" in key for key in counts.examples["missing_image"])


def test_counts_are_complete_with_two_workers(pairs):
    dataset = CsvPairs(pairs, transform=resize16, max_caption_chars=25)
    loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=CaptionCollate(None))
    captions = [caption for batch in loader for caption in batch["captions"]]
    assert captions == ["a red circle", "a grey square", "a blue circle", "absolute path"]
    assert {reason: count for reason, count in dataset.bad_samples.counts.items() if count} == EXPECTED_BAD


def test_columns_separator_and_image_root_are_configurable(tmp_path):
    save_image(tmp_path / "root" / "a.png")
    (tmp_path / "meta").mkdir()
    path = tmp_path / "meta" / "pairs.csv"
    path.write_text('image,text\na.png,"a caption, with a comma"\n', encoding="utf-8")
    dataset = CsvPairs(path, img_key="image", caption_key="text", separator=",", image_root=tmp_path / "root")
    assert dataset[0]["caption"] == "a caption, with a comma"
    with pytest.raises(ValueError, match="no column 'filepath'"):
        CsvPairs(path, separator=",")


def test_a_byte_order_mark_does_not_hide_the_first_column(tmp_path):
    save_image(tmp_path / "a.png")
    path = tmp_path / "excel.tsv"
    path.write_text("filepath\ttitle\na.png\ta caption\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert CsvPairs(path)[0]["caption"] == "a caption"


def test_missing_file_empty_file_and_all_bad_files_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        CsvPairs(tmp_path / "nope.tsv")
    header_only = tmp_path / "header.tsv"
    header_only.write_text("filepath\ttitle\n")
    with pytest.raises(ValueError, match="header.tsv has a header but no rows"):
        CsvPairs(header_only)
    no_captions = tmp_path / "no_captions.tsv"
    no_captions.write_text("filepath\ttitle\na.jpg\t \nb.jpg\t\n")
    with pytest.raises(ValueError, match="no_captions.tsv: none of the 2 rows is usable"):
        CsvPairs(no_captions)
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    no_images = tmp_path / "no_images.tsv"
    no_images.write_text("filepath\ttitle\nbad.jpg\tone\nmissing.jpg\ttwo\n")
    dataset = CsvPairs(no_images)
    with pytest.raises(ValueError, match="no_images.tsv is bad"):
        dataset[1]


def test_relative_paths_follow_open_clip_and_resolve_against_the_working_directory(tmp_path, monkeypatch):
    # open_clip opens each path as written: an open_clip TSV lists paths relative to where training runs.
    work, lists = tmp_path / "work", tmp_path / "lists"
    for i in range(3):
        save_image(work / "images" / f"{i}.png", i)
    lists.mkdir()
    path = lists / "pairs.tsv"
    path.write_text("filepath\ttitle\n" + "".join(f"images/{i}.png\tpicture {i}\n" for i in range(3)))
    monkeypatch.chdir(work)
    dataset = CsvPairs(path, transform=resize16)
    assert dataset.image_root == work.resolve()
    assert "working directory" in dataset.path_rule and "open_clip" in dataset.path_rule
    assert [dataset[i]["caption"] for i in range(3)] == ["picture 0", "picture 1", "picture 2"]
    assert dataset.bad_samples.total == 0
    # The folders are absolute: a later change of working directory does not move the images.
    monkeypatch.chdir(tmp_path)
    assert dataset[2]["image"].shape == (3, 16, 16) and dataset.bad_samples.total == 0


def test_relative_paths_resolve_against_the_csv_folder_when_only_it_holds_them(tmp_path, monkeypatch):
    save_image(tmp_path / "lists" / "images" / "0.png")
    save_image(tmp_path / "work" / "images" / "0.png")  # both hold 0.png: a tie goes to open_clip's rule
    save_image(tmp_path / "lists" / "images" / "1.png")
    path = tmp_path / "lists" / "pairs.tsv"
    monkeypatch.chdir(tmp_path / "work")
    path.write_text("filepath\ttitle\nimages/0.png\tzero\n")
    assert CsvPairs(path).image_root == (tmp_path / "work").resolve()
    path.write_text("filepath\ttitle\nimages/0.png\tzero\nimages/1.png\tone\n")
    dataset = CsvPairs(path)
    assert dataset.image_root == (tmp_path / "lists").resolve() and "CSV's folder" in dataset.path_rule
    assert CsvPairs(path, image_root=tmp_path / "work").image_root == tmp_path / "work"


def test_an_all_bad_file_counts_every_bad_row_and_warns_where_it_looked(tmp_path, monkeypatch, caplog):
    (tmp_path / "lists").mkdir()
    path = tmp_path / "lists" / "pairs.tsv"
    path.write_text("filepath\ttitle\n" + "".join(f"images/{i}.png\tpicture {i}\n" for i in range(74)))
    monkeypatch.chdir(tmp_path)
    dataset = CsvPairs(path)
    assert "none of the first 64 relative image paths" in caplog.text and "data.image_root" in caplog.text
    with pytest.raises(ValueError, match="every one of the 74 samples .* is bad \\(missing_image: 74\\)"):
        dataset[0]
