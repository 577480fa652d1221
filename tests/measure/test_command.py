import json

import pytest

from infomug.cli import main
from infomug.measure import read_report
from infomug.measure.command import summary_lines

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
    # The kNN estimate may be missing from a label's row (constant probe logits): the summary copes.
    report = read_report(out)
    rows = report.models[0].layers[-1].label_information
    del rows["shape"]["knn_on_probe_logits"]
    lines = summary_lines(report)
    line = next(line for line in lines if line.startswith(f"  readouts {report.models[0].name} "))
    assert f"over {len(rows) - 1} labels" in line
    # The headline line of every model and anchor comes first: the fresh decoders' numbers.
    assert lines[0].startswith(report.models[0].name) and "I_V(T -> image)" in lines[0]


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
    for setting, message in (
        ("channel_sigmas=0.3,x", "--budget-set channel_sigmas must be numbers separated by commas"),
        ("knn_temperature=0", "knn_temperature must be positive"),
    ):
        assert main([*args[:-1], setting]) == 2
        assert message in capsys.readouterr().err
    # timm's own errors (RuntimeError, AssertionError) would escape as tracebacks.
    assert main(["measure", "--timm", "vit_nonexistent", "--out", str(tmp_path)]) == 2
    assert "timm has no model named 'vit_nonexistent'" in capsys.readouterr().err
    too_small = ["measure", "--ckpt", str(tiny_checkpoint), "--timm", "vit_tiny_patch16_224"]
    assert main([*too_small, "--out", str(tmp_path)]) == 2
    assert "takes 224x224 images but the eval data gives 16x16" in capsys.readouterr().err


def test_any_submodule_is_measured_through_a_hook(tiny_checkpoint, tmp_path):
    out = tmp_path / "hooked"
    args = ["measure", "--ckpt", str(tiny_checkpoint), "--layers", "vit.blocks.0.mlp", "--out", str(out)]
    assert main([*args, *SMALL]) == 0
    data = json.loads((out / "measure.json").read_text())
    (layer,) = data["models"][0]["layers"]
    assert layer["layer"] == "vit.blocks.0.mlp" and layer["dim"] == 32


def test_transfer_finetune_also_fine_tunes_every_model(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import infomug.finetune

    calls = []
    monkeypatch.setattr(
        infomug.finetune, "finetune", lambda specs, settings, **kw: calls.append((specs, settings, kw))
    )
    argv = [
        "measure",
        "--ckpt",
        str(tiny_checkpoint),
        "--out",
        str(tmp_path),
        "--layers",
        "last",
        "--no-anchors",
    ]
    argv += [*SMALL, "--budget-set", "usable_information=false", "--transfer", "finetune"]
    assert main([*argv, "--finetune-set", "full.steps=3"]) == 0
    ((specs, settings, kw),) = calls
    assert specs == [str(tiny_checkpoint)] and settings.full.steps == 3 and kw["out"] == tmp_path / "finetune"
    assert main([*argv, "--finetune-set", "full.nonsense=3"]) == 2
    assert "nonsense" in capsys.readouterr().err and len(calls) == 1
