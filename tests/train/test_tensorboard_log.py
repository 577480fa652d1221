"""``train.tensorboard=true``: every metric of ``metrics.jsonl`` as a TensorBoard scalar, or a clear error
when the tensorboard package is missing."""

import sys

import pytest

from infomug.cli import main
from infomug.train import read_metrics
from infomug.train.tensorboard_log import TENSORBOARD_DIR, require_tensorboard

RUN = [
    "model.objective=mae",
    "train.steps=3",
    "train.eval_every=2",
    "train.sample_every=0",
    "train.eval_batches=1",
]


def _argv(run_dir, tiny_run, *settings):
    args = ["train", "--out", str(run_dir), "--no-progress"]
    for setting in [*tiny_run, *RUN, *settings]:
        args += ["--set", setting]
    return args


def test_every_metric_is_logged_to_tensorboard(tiny_run, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    assert main(_argv(run_dir, tiny_run, "train.tensorboard=true")) == 0
    events = EventAccumulator(str(run_dir / TENSORBOARD_DIR))
    events.Reload()
    for record in read_metrics(run_dir / "metrics.jsonl"):
        prefix = record["kind"]
        for key, value in record.items():
            if key in ("kind", "step"):
                continue
            (scalar,) = [
                e for e in events.Scalars(f"{prefix}/{key.removeprefix('eval_')}") if e.step == record["step"]
            ]
            assert scalar.value == pytest.approx(value, rel=1e-6), (prefix, key)  # stored as float32
    assert {"train/loss", "train/lr", "train/grad_norm", "eval/loss"} <= set(events.Tags()["scalars"])


def test_without_the_package_the_error_says_what_to_install(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # an import of it now fails
    with pytest.raises(
        ValueError, match=r"needs the tensorboard package: pip install 'infomug\[tensorboard\]'"
    ):
        require_tensorboard()
    assert main(_argv(tmp_path / "run", tiny_run, "train.tensorboard=true")) == 2
    error = capsys.readouterr().err
    assert "infomug train: error: train.tensorboard=true needs the tensorboard package" in error
    assert not (tmp_path / "run" / "checkpoints").exists(), "refused before training"
