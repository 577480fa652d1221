"""`infomug export`: a run's encoder as a timm model whose ``config.json`` rebuilds the run's eval pipeline
(input size, the world's own normalisation), loaded by timm alone and by ``measure --timm``."""

import json

import pytest
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from infomug.cli import main
from infomug.data import build_dataset
from infomug.measure.sources import load_checkpoint, load_model
from infomug.train import latest_checkpoint, load_config, train
from infomug.train.export import export_checkpoint


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    """A 2-step tiny MAE run on the 16-px world: its folder and config."""
    overrides = ("model.objective=mae", "train.steps=2", "train.eval_every=0", "train.sample_every=0")
    config = load_config(None, [*tiny_run, *overrides])
    run_dir = tmp_path_factory.mktemp("export") / "run"
    train(config, run_dir, progress=False)
    return run_dir, config


def test_the_export_of_a_run_rebuilds_its_eval_pipeline_in_timm(run, tmp_path, capsys):
    run_dir, config = run
    assert main(["export", str(run_dir), "--out", str(tmp_path / "export")]) == 0
    assert f"local-dir:{tmp_path / 'export'}" in capsys.readouterr().out
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["infomug"]["step"] == "2" and exported["infomug"]["objective"] == "mae"
    assert exported["infomug"]["source"] == str(latest_checkpoint(run_dir).resolve())

    model = timm.create_model(f"local-dir:{tmp_path / 'export'}", pretrained=True).eval()
    data_config = resolve_data_config(model=model)
    eval_data = build_dataset(config.data, "eval")  # what the run evaluated on, world statistics included
    assert data_config["input_size"] == (3, 16, 16)
    assert tuple(data_config["mean"]) == eval_data.mean and tuple(data_config["std"]) == eval_data.std
    # timm's transform of the rendered image is infomug's eval input but for the uint8 rounding of the
    # image timm reads: at most half a grey level over the smallest std (0.0117 here); one grey level is
    # allowed. ImageNet's statistics instead of the world's would be off by 1.8.
    transform = create_transform(**data_config)
    pixels = eval_data.raw_image(0).permute(1, 2, 0).numpy()
    timm_input = transform(Image.fromarray(pixels))
    torch.testing.assert_close(timm_input, eval_data[0]["image"], rtol=0, atol=1 / 255 / min(eval_data.std))

    trained = load_checkpoint(run_dir).encoder
    measured = load_model(f"timm:{tmp_path / 'export'}").encoder
    with torch.no_grad():
        expected = trained.forward_features(timm_input[None])
        assert torch.equal(model.forward_features(timm_input[None]), expected)
        assert torch.equal(measured.forward_features(timm_input[None]), expected)


def test_export_to_a_file_and_what_is_refused(run, tmp_path):
    run_dir, _ = run
    weights = export_checkpoint(
        latest_checkpoint(run_dir) / "model.safetensors", tmp_path / "mae.safetensors"
    )
    assert weights == tmp_path / "mae.safetensors" and (tmp_path / "config.json").is_file()
    with pytest.raises(ValueError, match="already describes mae.safetensors"):
        export_checkpoint(run_dir, tmp_path / "other.safetensors")
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
