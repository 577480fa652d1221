import json

import pytest

from infomug.cli import main

SMALL = [
    "--images",
    "128",
    "--budget-set",
    "channel_samples=100",
    "--budget-set",
    "entropy_samples=100",
    "--budget-set",
    "caption_steps=10",
    "--budget-set",
    "caption_batch=32",
    "--budget-set",
    "decoder_samples=64",
    "--budget-set",
    "uncertainty=false",
    "--no-progress",
]


def test_measure_command_writes_a_report(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    assert (
        main(["measure", "--ckpt", str(tiny_checkpoint), "--layers", "last", "--out", str(out), *SMALL]) == 0
    )
    printed = capsys.readouterr().out
    assert "mean I(T; label) >=" in printed and "measure.md" in printed
    data = json.loads((out / "measure.json").read_text())
    assert data["settings"]["images"] == 128 and data["settings"]["uncertainty"] is False
    assert [layer["layer"] for layer in data["models"][0]["layers"]] == ["block_1"]


def test_default_report_folder_is_inside_the_run(tiny_checkpoint, capsys):
    from infomug.measure.command import default_out

    assert default_out(str(tiny_checkpoint / "checkpoints" / "step_00000004")) == tiny_checkpoint / "measure"


@pytest.mark.parametrize(
    "content, message",
    [(b"\x00\x01 not a checkpoint", "truncated or corrupt"), (b"", "truncated or corrupt")],
)
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys, content, message):
    step = tmp_path / "run" / "checkpoints" / "step_00000001"
    step.mkdir(parents=True)
    (step / "model.safetensors").write_bytes(content)
    assert main(["measure", "--ckpt", str(step), "--out", str(tmp_path / "r"), *SMALL]) == 2
    assert message in capsys.readouterr().err


def test_bad_options_are_named(tiny_checkpoint, tmp_path, capsys):
    assert main(["measure", "--out", str(tmp_path)]) == 2
    assert "give a model" in capsys.readouterr().err
    args = ["measure", "--ckpt", str(tiny_checkpoint), "--out", str(tmp_path), "--budget-set", "k=3"]
    assert main(args) == 2
    assert "--budget-set" in capsys.readouterr().err


def test_any_submodule_is_measured_through_a_hook(tiny_checkpoint, tmp_path):
    out = tmp_path / "hooked"
    args = ["measure", "--ckpt", str(tiny_checkpoint), "--layers", "vit.blocks.0.mlp", "--out", str(out)]
    assert main([*args, *SMALL]) == 0
    data = json.loads((out / "measure.json").read_text())
    (layer,) = data["models"][0]["layers"]
    assert layer["layer"] == "vit.blocks.0.mlp" and layer["dim"] == 32
