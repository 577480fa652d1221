import json

import pytest

from infomug.cli import main

TINY = [
    "--set", "full.steps=4", "--set", "full.lr_grid=[0.001]", "--set", "partial.steps=4",
    "--set", "partial.blocks=1", "--set", "partial.lr_grid=[0.001]", "--set", "linear.max_iter=50",
    "--set", "linear.weight_decay_grid=[0.001]", "--set", "train_size=120", "--set", "test_size=40",
]  # fmt: skip


def test_finetune_a_checkpoint_on_two_tasks_in_every_mode(tiny_mae_run, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", "--ckpt", str(tiny_mae_run), "--task", "world_uncaptioned", "--task", "digits"]
    argv += ["--labels", "50,all", "--seeds", "2", "--out", str(out), "--no-progress", *TINY]
    assert main(argv) == 0
    assert "finetune.md" in capsys.readouterr().out
    report = json.loads((out / "finetune.json").read_text())
    assert set(report["tasks"]) == {"world_uncaptioned", "digits"}
    assert {f["mode"] for f in report["fits"]} == {"linear", "partial", "full"}
    assert {f["budget"] for f in report["fits"]} == {50, 0}
    markdown = (out / "finetune.md").read_text()
    assert "(from scratch)" in markdown and "gain over from scratch" in markdown
    assert main(argv) == 0  # resumes: nothing left, same files
    assert json.loads((out / "finetune.json").read_text())["fits"] == report["fits"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["finetune"], "give a model"),
        (["finetune", "--timm", "vit_tiny_patch16_224:w.pt"], "give --out"),
        (["finetune", "--ckpt", "{run}", "--task", "imagenet"], "unknown task"),
        (["finetune", "--ckpt", "{run}", "--mode", "linear,fine"], "modes must be"),
        (["finetune", "--ckpt", "{run}", "--set", "full.steps=zero"], "full.steps"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(argv, message, tiny_mae_run, tmp_path, capsys):
    argv = [a.replace("{run}", str(tiny_mae_run)) for a in argv] + ["--out", str(tmp_path)] * (
        "--ckpt" in argv
    )
    assert main(argv) == 2
    assert message in capsys.readouterr().err
