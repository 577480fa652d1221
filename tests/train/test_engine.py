"""Where a training run builds its data: objectives that read no caption train on image-only data, and
caption objectives refuse it before any training."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from infomug.train import load_config, read_metrics, train


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def image_only_shard(tmp_path):
    """32 PNGs and no caption: what img2dataset writes for a folder of photos without alt-text."""
    path = tmp_path / "photos-0.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(32):
            payload = _png(i)
            info = tarfile.TarInfo(f"{i:05d}.png")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def _config(tiny_run, objective: str, shard):
    return load_config(
        None,
        [
            *tiny_run,
            f"model.objective={objective}",
            "data.source=webdataset",
            f"data.path={shard}",
            "train.steps=2",
            "train.sample_every=0",
        ],
    )


@pytest.mark.parametrize("objective", ["mae", "simclr"])
def test_image_objectives_train_on_an_image_only_shard(tiny_run, image_only_shard, tmp_path, objective):
    result = train(_config(tiny_run, objective, image_only_shard), tmp_path / "run", progress=False)
    assert result.steps == 2 and result.checkpoint.is_dir()
    losses = [record["loss"] for record in read_metrics(tmp_path / "run" / "metrics.jsonl", "train")]
    assert len(losses) == 2 and all(np.isfinite(losses))


@pytest.mark.parametrize("objective", ["mug", "clip"])
def test_caption_objectives_refuse_an_image_only_shard(tiny_run, image_only_shard, tmp_path, objective):
    with pytest.raises(ValueError, match="has no usable sample \\(missing_caption: 32\\)"):
        train(_config(tiny_run, objective, image_only_shard), tmp_path / "run", progress=False)


def test_caption_objectives_refuse_an_image_folder_before_training(tiny_run, tmp_path):
    (tmp_path / "photos" / "all").mkdir(parents=True)
    for i in range(16):
        (tmp_path / "photos" / "all" / f"{i}.png").write_bytes(_png(i))
    config = load_config(
        None,
        [*tiny_run, "model.objective=mug", "data.source=imagefolder", f"data.path={tmp_path / 'photos'}"],
    )
    with pytest.raises(
        ValueError, match="reads captions but data source 'imagefolder' has none: train mae, simclr"
    ):
        train(config, tmp_path / "run", progress=False)
