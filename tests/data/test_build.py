import io
import json
import logging
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from infomug.data import (
    ByteTokenizer,
    CaptionCollate,
    DataConfig,
    build_dataset,
    data_normalisation,
    make_transform,
)
from infomug.data.build import IMAGENET_MEAN, IMAGENET_STD


def png_bytes(seed: int, size: int = 20) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def user_data(tmp_path):
    """Four image-caption pairs in every user layout: a shard, a TSV, COCO captions, class folders."""
    captions = ["a red square", "two cats", "a blue sky", "a dog on grass"]
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        (images / f"{i}.png").write_bytes(png_bytes(i))
    (tmp_path / "pairs.tsv").write_text(
        "filepath\ttitle\n" + "".join(f"images/{i}.png\t{c}\n" for i, c in enumerate(captions))
    )
    with tarfile.open(tmp_path / "shard-0.tar", "w") as tar:
        for i, caption in enumerate(captions):
            for name, payload in ((f"{i:05d}.png", png_bytes(i)), (f"{i:05d}.txt", caption.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    coco = {
        "images": [{"id": i, "file_name": f"{i}.png"} for i in range(4)],
        "annotations": [{"id": i, "image_id": i, "caption": c} for i, c in enumerate(captions)],
    }
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    for i in range(4):
        folder = tmp_path / "folder" / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(png_bytes(i))
    return tmp_path, captions


def test_world_default_builds_normalised_images_without_flips():
    config = DataConfig()
    world = build_dataset(config)
    sample = world[0]
    assert sample["image"].shape == (3, 32, 32)
    assert sample["caption"]
    assert world.mean == world.config.mean  # the world's own statistics, not ImageNet's
    assert "RandomHorizontalFlip" not in repr(world.transform)
    assert "RandomHorizontalFlip" in repr(
        make_transform(DataConfig(hflip=True), "pretrain", (0.5,) * 3, (1,) * 3)
    )


def test_eval_split_is_deterministic_and_two_view_stacks_views():
    config = DataConfig(image_size=16)
    eval_set = build_dataset(config, split="eval")
    assert torch.equal(eval_set[5]["image"], eval_set[5]["image"])
    assert eval_set[5]["image"].shape == (3, 16, 16)
    views = build_dataset(config, augmentation="two_view")[0]["image"]
    assert views.shape == (2, 3, 16, 16)
    assert not torch.equal(views[0], views[1])


def test_upsampling_the_render_is_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="infomug.data.build"):
        world = build_dataset(DataConfig(image_size=48, world={"size": 10}))
    assert world[0]["image"].shape == (3, 48, 48)
    assert "data.world.image_size=48" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="infomug.data.build"):
        build_dataset(DataConfig(image_size=16, world={"size": 10}))  # rendering larger is fine
    assert not caplog.text


def test_world_settings_come_from_a_plain_dict():
    config = DataConfig(world={"seed": 3, "size": 100, "irrelevant_caption_fraction": 0.5})
    world = build_dataset(config)
    assert len(world) == 100
    assert world.config.irrelevant_caption_fraction == 0.5


def test_digits_build_with_their_own_statistics():
    digits = build_dataset(DataConfig(source="digits"), split="eval")
    assert digits[0]["image"].shape == (3, 32, 32)
    assert digits.mean != IMAGENET_MEAN
    assert "digit" in digits[0]["labels"]


def test_data_normalisation_is_the_one_the_dataset_is_built_with(tmp_path):
    # What `infomug export` writes into timm's config: the statistics training normalised with.
    for config in (
        DataConfig(image_size=16, world={"image_size": 16, "size": 64}),
        DataConfig(source="digits", image_size=16),
        DataConfig(image_size=16, world={"image_size": 16}, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6)),
    ):
        dataset = build_dataset(config)
        assert data_normalisation(config) == (dataset.mean, dataset.std)
    # Users' photographs: ImageNet's, without reading their files.
    folder = DataConfig(source="imagefolder", path=str(tmp_path / "nowhere"))
    assert data_normalisation(folder) == (IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.parametrize("source", ["csv", "webdataset", "coco", "imagefolder"])
def test_every_user_layout_loads_through_one_config(user_data, source):
    root, captions = user_data
    path = {
        "csv": root / "pairs.tsv",
        "webdataset": root / "shard-{0..0}.tar",
        "coco": root / "captions.json",
        "imagefolder": root / "folder",
    }[source]
    config = DataConfig(source=source, path=str(path), image_root=str(root / "images"), image_size=16)
    if source == "csv":
        config.image_root = None  # relative to the TSV's folder
    dataset = build_dataset(config, augmentation="eval", rank=0, world_size=1)
    assert dataset.mean == IMAGENET_MEAN and dataset.std == IMAGENET_STD
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=CaptionCollate(ByteTokenizer(), 24)))
    images = torch.cat([b["image"] for b in batches])
    assert images.shape == (4, 3, 16, 16)
    seen = [c for b in batches for c in b["captions"]]
    if source == "imagefolder":
        assert seen == [""] * 4
        assert sorted(int(v) for b in batches for v in b["labels"]["class"]) == [0, 0, 1, 1]
    else:
        assert sorted(seen) == sorted(captions)


def test_bad_configs_name_the_problem(user_data):
    root, _ = user_data
    with pytest.raises(ValueError, match="data source must be one of"):
        DataConfig(source="laion")
    with pytest.raises(ValueError, match="needs `path`"):
        DataConfig(source="csv")
    with pytest.raises(ValueError, match="both mean and std"):
        DataConfig(mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="no eval_path"):
        build_dataset(DataConfig(source="csv", path=str(root / "pairs.tsv")), split="eval")
    with pytest.raises(ValueError, match="split must be"):
        build_dataset(DataConfig(), split="test")
    with pytest.raises(ValueError, match="augmentation must be"):
        build_dataset(DataConfig(), augmentation="heavy")
    with pytest.raises(ValueError, match="needs image_root"):
        build_dataset(DataConfig(source="coco", path=str(root / "captions.json")))
    with pytest.raises(FileNotFoundError):
        build_dataset(DataConfig(source="csv", path=str(root / "missing.tsv")))


def test_default_crops_keep_generated_captions_true_and_follow_the_recipes_elsewhere():
    from infomug.data.build import crop_scale

    world, photos = DataConfig(), DataConfig(source="csv", path="pairs.tsv")
    assert crop_scale(world, "pretrain") == (1.0, 1.0)  # "small, top left" must stay true
    assert crop_scale(world, "two_view") == (0.2, 1.0)
    assert crop_scale(photos, "pretrain") == (0.2, 1.0)  # MAE
    assert crop_scale(photos, "two_view") == (0.08, 1.0)  # SimCLR
    assert crop_scale(DataConfig(crop_scale=(0.5, 1.0)), "pretrain") == (0.5, 1.0)
    dataset = build_dataset(DataConfig(world={"size": 8}))
    eval_view = build_dataset(DataConfig(world={"size": 8}), augmentation="eval")
    assert torch.allclose(dataset[3]["image"], eval_view[3]["image"], atol=1e-5)


@pytest.fixture
def image_only_data(tmp_path):
    """Five images without captions: a shard of PNGs only, a TSV with no caption column, a TSV whose
    captions are all empty."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        (images / f"{i}.png").write_bytes(png_bytes(i))
    with tarfile.open(tmp_path / "images-0.tar", "w") as tar:
        for i in range(5):
            payload = png_bytes(i)
            info = tarfile.TarInfo(f"{i:05d}.png")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    (tmp_path / "paths.tsv").write_text("filepath\n" + "".join(f"images/{i}.png\n" for i in range(5)))
    (tmp_path / "empty.tsv").write_text(
        "filepath\ttitle\n" + "".join(f"images/{i}.png\t \n" for i in range(5))
    )
    return {"webdataset": "images-0.tar", "paths": "paths.tsv", "empty": "empty.tsv"}, tmp_path


@pytest.mark.parametrize(
    ("layout", "refusal"),
    [
        ("webdataset", "has no usable sample \\(missing_caption: 5\\)"),
        ("paths", "no column 'title'"),
        ("empty", "none of the 5 rows is usable \\(empty_caption: 5\\)"),
    ],
)
def test_image_only_data_serves_objectives_without_captions_and_is_refused_by_the_others(
    image_only_data, layout, refusal
):
    files, root = image_only_data
    source = "webdataset" if layout == "webdataset" else "csv"
    config = DataConfig(source=source, path=str(root / files[layout]), image_size=16)
    dataset = build_dataset(config, augmentation="eval", rank=0, world_size=1, require_captions=False)
    assert not dataset.has_captions
    batches = list(DataLoader(dataset, batch_size=5, collate_fn=CaptionCollate(None, 24)))
    assert batches[0]["image"].shape == (5, 3, 16, 16) and batches[0]["captions"] == [""] * 5
    assert dataset.bad_samples.total == 0
    # A caption objective (the default) keeps refusing the same files, naming why.
    with pytest.raises(ValueError, match=refusal):
        list(build_dataset(config, augmentation="eval", rank=0, world_size=1))
