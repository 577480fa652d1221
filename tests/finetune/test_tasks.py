import numpy as np
import pytest
import torch
from PIL import Image

from infomug.finetune.tasks import CAPTIONED_LABELS, UNCAPTIONED_LABELS, Task, build_task


@pytest.mark.parametrize(
    "name, labels", [("world_captioned", CAPTIONED_LABELS), ("world_uncaptioned", UNCAPTIONED_LABELS)]
)
def test_world_tasks_split_captioned_from_never_captioned_factors(name, labels):
    task = build_task(name, image_size=16, train_size=64, test_size=32)
    assert task.label_names == labels and task.domain == "pre-training world"
    assert task.train_images.shape == (64, 3, 16, 16) and task.train_images.dtype == torch.uint8
    assert task.test_images.shape == (32, 3, 16, 16)
    for label in labels:
        assert task.train_labels[label].max() < len(task.classes[label])
    assert task.augmentation.none  # world labels name positions and colours: no crop, no flip
    assert not torch.equal(task.train_images[:32], task.test_images)  # train and eval streams differ


def test_the_shifted_world_is_another_distribution_with_exact_labels():
    shifted = build_task("shifted_world", image_size=16, train_size=64, test_size=32)
    world = build_task("world_captioned", image_size=16, train_size=64, test_size=32)
    assert shifted.domain == "shifted world" and set(shifted.label_names) >= {"shape", "colour"}
    assert shifted.classes["colour"] != world.classes["colour"]
    assert not torch.equal(shifted.train_images, world.train_images)


def test_digits_use_every_image_without_flips():
    task = build_task("digits", image_size=16)
    assert task.train_images.shape[0] + task.test_images.shape[0] == 1797
    assert task.classes["digit"] == tuple("0123456789")
    assert task.augmentation.hflip is False and task.augmentation.crop_scale is not None


def _write_images(root, classes, per_class=6, size=20):
    rng = np.random.default_rng(0)
    rows = []
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            path = root / name / f"{i}.png"
            Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)).save(path)
            rows.append((f"{name}/{i}.png", name))
    return rows


def test_a_user_image_folder_is_resized_and_split_by_class(tmp_path):
    _write_images(tmp_path, ["cat", "dog"])
    (tmp_path / "dog" / "broken.png").write_bytes(b"not an image")
    task = build_task(f"folder:{tmp_path}", image_size=16)
    assert task.classes["class"] == ("cat", "dog")
    assert task.train_images.shape[1:] == (3, 16, 16)
    assert task.train_images.shape[0] + task.test_images.shape[0] == 12  # the broken file is skipped
    assert set(task.test_labels["class"]) == {0, 1}  # stratified: both classes in the test set


def test_a_user_csv_names_its_label_column(tmp_path):
    rows = _write_images(tmp_path, ["a", "b", "c"])
    lines = ["filepath\tkind", *(f"{path}\t{label}" for path, label in rows)]
    (tmp_path / "labels.tsv").write_text("\n".join(lines) + "\n")
    task = build_task(f"csv:{tmp_path / 'labels.tsv'}:kind", image_size=16)
    assert task.label_names == ("kind",) and task.classes["kind"] == ("a", "b", "c")
    with pytest.raises(ValueError, match="no column 'label'"):
        build_task(f"csv:{tmp_path / 'labels.tsv'}", image_size=16)


def test_a_user_csv_resolves_relative_paths_as_training_does(tmp_path, monkeypatch, caplog):
    # open_clip's rule, as `infomug train` reads the same file: paths relative to the working directory
    # when they exist there, not to the CSV's folder.
    rows = _write_images(tmp_path / "photos", ["a", "b"])
    (tmp_path / "lists").mkdir()
    lines = ["filepath\tlabel", *(f"photos/{path}\t{label}" for path, label in rows)]
    (tmp_path / "lists" / "labels.tsv").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO", logger="infomug.finetune.tasks")
    task = build_task("csv:lists/labels.tsv", image_size=16)
    assert task.train_images.shape[0] + task.test_images.shape[0] == 12
    assert "resolve against the working directory" in caplog.text


def test_bad_tasks_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        build_task("imagenet", image_size=16)
    with pytest.raises(FileNotFoundError):
        build_task(f"csv:{tmp_path / 'missing.csv'}", image_size=16)
    _write_images(tmp_path / "one", ["only"])
    with pytest.raises(ValueError, match="at least 2"):
        build_task(f"folder:{tmp_path / 'one'}", image_size=16)
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "photo.png")
    with pytest.raises(ValueError, match="flat folder of images, with no label"):
        build_task(f"folder:{tmp_path / 'flat'}", image_size=16)
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="label 'a' has shape"):
        Task(
            "t", "", images, {"a": np.zeros(3, dtype=np.int64)}, images, {"a": np.zeros(4)}, {"a": ("x", "y")}
        )
