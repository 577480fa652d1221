"""Image folders: sorted class folders give label indices, a flat folder of photos gives unlabelled images,
captions are empty, bad files are counted."""

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from infomug.data.imagefolder import ImageFolder


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "train"
    rng = np.random.default_rng(0)
    for name in ("dog/a.JPG", "dog/deep/b.png", "cat/c.png", "cat/d.webp", "cat/notes.txt"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            path.write_text("not an image")
            continue
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).convert("L" if "b.png" in name else "RGB").save(path)
    (root / "cat" / "broken.jpg").write_bytes(b"junk")
    (root / "empty_class").mkdir()
    (root / "stray.png").write_bytes(b"ignored: not in a class folder")
    return root


def test_classes_labels_and_captions(folder, caplog):
    dataset = ImageFolder(folder)
    assert dataset.classes == ["cat", "dog", "empty_class"] and dataset.class_to_idx["dog"] == 1
    assert dataset.labelled
    assert "empty_class" in caplog.text
    assert "1 images lie beside the class folders" in caplog.text and "stray.png" in caplog.text
    assert len(dataset) == 5 and not dataset.has_captions
    samples = [dataset[i] for i in range(5)]
    assert [sample["labels"]["class"] for sample in samples] == [0, 0, 0, 1, 1]
    assert all(sample["caption"] == "" and sample["image"].shape == (3, 8, 8) for sample in samples)
    assert dataset.bad_samples.counts["unreadable_image"] == 1
    assert dataset.bad_samples.examples["unreadable_image"] == [str(folder / "cat" / "broken.jpg")]


def test_counts_are_complete_with_two_workers(folder):
    dataset = ImageFolder(folder)
    labels = [
        int(label)
        for batch in DataLoader(dataset, batch_size=2, num_workers=2)
        for label in batch["labels"]["class"]
    ]
    assert len(labels) == 5 and dataset.bad_samples.total == 1


def test_extensions_and_clear_errors(folder, tmp_path):
    assert len(ImageFolder(folder, extensions=("png",))) == 2
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolder(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"no image with extension .* neither directly under it"):
        ImageFolder(empty)
    with pytest.raises(ValueError, match="no image with extension"):
        ImageFolder(folder, extensions=("tiff",))
    (folder / "cat" / "c.png").write_bytes(b"junk")
    (folder / "cat" / "d.webp").write_bytes(b"junk")
    (folder / "dog" / "a.JPG").write_bytes(b"junk")
    (folder / "dog" / "deep" / "b.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="train is bad"):
        ImageFolder(folder)[0]


def test_a_flat_folder_of_photos_is_unlabelled_images(tmp_path, caplog):
    # Images directly under the root, no class folders: what a new user's folder of photos looks like. A
    # sub-folder without images (here one of notes) does not make it a class layout.
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.JPG", "c.webp"):
        Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"junk")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    dataset = ImageFolder(tmp_path)
    assert dataset.classes == [] and dataset.class_to_idx == {} and not dataset.labelled
    assert [path.name for path, _ in dataset.files] == ["a.JPG", "b.png", "broken.jpg", "c.webp"]
    assert all(index is None for _, index in dataset.files)
    samples = [dataset[i] for i in range(len(dataset))]
    assert all(sample["labels"] == {} and sample["caption"] == "" for sample in samples)
    assert all(sample["image"].shape == (3, 8, 8) for sample in samples)
    assert dataset.bad_samples.counts["unreadable_image"] == 1
    assert "class folder" not in caplog.text
