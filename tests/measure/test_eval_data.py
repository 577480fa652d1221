"""Eval data: image-only sources are measured, not refused (their caption measurements are left out)."""

import io
import tarfile

from PIL import Image

from infomug.data import DataConfig
from infomug.measure.eval_data import resolve_data


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), (200, 10, 10)).save(path)
    return path.read_bytes()


def test_caption_less_csv_and_shards_are_eval_data(tmp_path):
    payload = _png(tmp_path / "images" / "a.png")
    # open_clip's filepath column only: every row is an image without a caption.
    (tmp_path / "images.tsv").write_text("filepath\n" + "images/a.png\n" * 5)
    # As `measure --timm NAME --data csv --set eval_path=images.tsv` asks: no training path is needed.
    eval_data = resolve_data("csv", [], [f"eval_path={tmp_path / 'images.tsv'}", "image_size=16"])
    dataset = eval_data.dataset
    assert len(dataset) == 5 and dataset.bad_samples.total == 0
    assert {dataset[i]["caption"] for i in range(5)} == {""}

    with tarfile.open(tmp_path / "shard.tar", "w") as tar:  # images, no .txt
        for i in range(5):
            info = tarfile.TarInfo(f"{i:05d}.png")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    shards = DataConfig(
        source="webdataset", path="unused", eval_path=str(tmp_path / "shard.tar"), image_size=16
    )
    samples = list(resolve_data(shards, []).dataset)
    assert len(samples) == 5 and {sample["caption"] for sample in samples} == {""}
