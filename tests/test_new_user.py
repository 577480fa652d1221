"""Issue 21's path of a new user, end to end on CPU in seconds: train MAE on a flat folder of their own
photos, export it, build timm's transform from the export's config, measure it with ``--timm``."""

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from infomug.cli import main
from infomug.data import DataConfig, build_dataset
from infomug.train.tiny import TINY_MODEL_OVERRIDES

PHOTOS = 24
# `tests/measure/test_command.py`'s small budget, on the 24 photos (the fewest a measurement takes is 20).
SMALL_MEASURE = [
    "--images",
    str(PHOTOS),
    "--budget-set",
    "channel_samples=20",
    "--budget-set",
    "entropy_samples=20",
    "--budget-set",
    "caption_steps=10",
    "--budget-set",
    "caption_batch=8",
    "--budget-set",
    "uncertainty=false",
    "--no-progress",
]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny matrices gain nothing from a second thread (as tests/conftest.py does for train/ and measure/).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_mae_on_a_flat_folder_of_photos_exports_to_timm_and_measures(tmp_path, capsys):
    photos = tmp_path / "photos"  # root/*.png: no class folders, no captions
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(PHOTOS):
        colour = rng.integers(0, 256, size=3)
        pixels = np.clip(colour + rng.normal(0, 30, size=(32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(photos / f"IMG_{i:04d}.png")

    assert main(["data", "imagefolder", str(photos)]) == 0
    survey = capsys.readouterr().out
    assert f"captions: 0 of {PHOTOS} samples \u2192 serves mae, simclr; not mug, clip" in survey

    run = tmp_path / "run"
    settings = [
        *TINY_MODEL_OVERRIDES,
        "model.objective=mae",
        "data.source=imagefolder",
        f"data.path={photos}",
        "train.batch_size=8",
        "train.steps=2",
        "train.eval_every=0",
        "train.sample_every=0",
        "optim.warmup_steps=1",
    ]
    overrides = [f"--set={setting}" for setting in settings]
    assert main(["train", *overrides, "--out", str(run), "--no-progress"]) == 0

    export = tmp_path / "export"
    assert main(["export", str(run), "--out", str(export)]) == 0
    config = json.loads((export / "config.json").read_text())
    assert config["infomug"]["objective"] == "mae" and config["infomug"]["step"] == "2"
    # What a timm user writes, from config.json alone.
    model = timm.create_model(
        config["architecture"],
        pretrained=False,
        pretrained_cfg_overlay=config["pretrained_cfg"],
        **config["model_args"],
    ).eval()
    data_config = resolve_data_config({}, model=model)
    trained_on = build_dataset(DataConfig(source="imagefolder", path=str(photos), image_size=16), "train")
    assert tuple(data_config["input_size"]) == (3, 16, 16)
    assert tuple(data_config["mean"]) == trained_on.mean and tuple(data_config["std"]) == trained_on.std
    with Image.open(photos / "IMG_0000.png") as photo:
        timm_input = create_transform(**data_config)(photo.convert("RGB"))
    assert timm_input.shape == (3, 16, 16)

    report = tmp_path / "report"
    measure = ["measure", "--timm", str(export), "--data", "imagefolder", f"--set=eval_path={photos}"]
    assert main([*measure, "--out", str(report), *SMALL_MEASURE]) == 0
    assert (report / "measure.md").is_file()
    measured = json.loads((report / "measure.json").read_text())
    assert measured["settings"]["images"] == PHOTOS
    model_result = measured["models"][0]
    assert [layer["n"] for layer in model_result["layers"]] == [PHOTOS, PHOTOS]
    # No label and no caption: probes and I(T; caption) are skipped, each with a note, not an error.
    notes = " ".join(model_result["notes"])
    assert "no discrete label" in notes and "I(T; caption) not measured" in notes
    assert all(layer["caption_information"] is None for layer in model_result["layers"])
