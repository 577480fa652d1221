from pathlib import Path

import pytest
import yaml

import infomug.ablation.runner as runner
from infomug.ablation import SweepLayout, read_status
from infomug.cli import main

MAE = {"mae": ["model.preset=mae_vit_tiny_patch4_32"]}


@pytest.fixture
def sweep_file(tmp_path, tiny_values) -> Path:
    """A sweep file of MAE alone, seed 0, no caption noise: one run, trained in well under a second."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_values(variants=MAE, seeds=[0], caption_noise=None)))
    return path


def _refuse(*args, **kwargs):
    raise AssertionError("nothing should be trained or measured again")


def test_ablate_runs_a_sweep_file_with_changes_then_resumes_from_out_alone(
    tmp_path, sweep_file, capsys, monkeypatch, stub_report
):
    out = tmp_path / "sweep"
    changes = ["--set", "train.steps=3", "--seeds", "5,7", "--budget-set", "images=150", "--only", "*-s5"]
    assert main(["ablate", "--config", str(sweep_file), "--out", str(out), *changes, "--no-progress"]) == 0
    assert f"sweep folder: {out}" in capsys.readouterr().out  # mae-s7 is left for later
    saved = yaml.safe_load((out / "sweep.yaml").read_text())
    assert saved["name"] == "tiny" and saved["overrides"][-1] == "train.steps=3" and saved["seeds"] == [5, 7]
    assert saved["measure"]["budget_set"]["images"] == 150
    layout = SweepLayout(out)
    assert (
        read_status(layout, "mae-s5")["state"] == "measured" and read_status(layout, "mae-s5")["steps"] == 3
    )
    assert not layout.run_dir("mae-s7").exists() and stub_report == []
    # The same settings again, now without --only, and differing ones: refused, naming what differs.
    assert main(["ablate", "--config", str(sweep_file), "--out", str(out), "--seeds", "5,7"]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith("infomug ablate: error:")
        and "differing: overrides, measure.budget_set.images" in error
    )
    # Only --out: the folder's own sweep; mae-s5 is done, mae-s7 trains, then the report.
    trained = []
    real_train = runner.train
    monkeypatch.setattr(
        runner,
        "train",
        lambda config, run_dir, **o: trained.append(Path(run_dir).name) or real_train(config, run_dir, **o),
    )
    assert main(["ablate", "--out", str(out), "--no-progress"]) == 0
    assert trained == ["mae-s7"] and stub_report == [out]
    assert capsys.readouterr().out.strip().endswith(f"report: {out / 'ablation.md'}")
    monkeypatch.setattr(runner, "train", _refuse)
    monkeypatch.setattr("infomug.measure.api.measure", _refuse)
    assert main(["ablate", "--out", str(out)]) == 0 and stub_report == [out, out]
    assert main(["ablate", "--config", str(out / "sweep.yaml"), "--out", str(out)]) == 0  # as the report says
    assert main(["ablate", "--report", "--out", str(out)]) == 0 and stub_report == [out, out, out, out]
    assert capsys.readouterr().out.strip().endswith(f"report: {out / 'ablation.md'}")


def test_shards_split_the_runs_and_the_last_one_writes_the_report(
    tmp_path, tiny_values, capsys, monkeypatch, stub_report
):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_values(variants=MAE, seeds=[0, 1, 2], caption_noise=None)))
    out = tmp_path / "sweep"
    handled = []

    def train_run(spec, layout, run, *rest):
        handled.append(run.name)
        return "trained"

    def measure_run(spec, layout, run, *rest):
        runner._write_json(layout.status_file(run.name), {"state": "measured"})

    monkeypatch.setattr(runner, "_train_run", train_run)
    monkeypatch.setattr(runner, "_measure_run", measure_run)
    assert main(["ablate", "--config", str(path), "--out", str(out), "--shard", "0/2"]) == 0
    assert handled == ["mae-s0", "mae-s2"] and stub_report == []
    assert f"sweep folder: {out} (report written once every run is measured" in capsys.readouterr().out
    assert main(["ablate", "--config", str(path), "--out", str(out), "--shard", "1/2"]) == 0
    assert handled == ["mae-s0", "mae-s2", "mae-s1"] and stub_report == [out]
    assert f"report: {out / 'ablation.md'}" in capsys.readouterr().out
    handled.clear()
    assert main(["ablate", "--out", str(out), "--only", "mae-s[12]", "--shard", "0/3"]) == 0
    assert handled == ["mae-s1"]


def test_options_reach_run_sweep(tmp_path, sweep_file, monkeypatch, capsys):
    received = {}

    def run_sweep(spec, out, **options):
        received.update(spec=spec, out=out, **options)
        return None

    monkeypatch.setattr(runner, "run_sweep", run_sweep)
    monkeypatch.chdir(tmp_path)
    argv = ["ablate", "--config", str(sweep_file), "--only", "mae*", "--only", "*-s0", "--device", "cpu"]
    assert main([*argv, "--no-progress", "--budget-set", "channel_sigmas=0.5,1.0"]) == 0
    assert received["out"] == Path("runs") / "tiny"  # runs/<sweep name> by default
    assert received["only"] == ["mae*", "*-s0"] and received["shard"] is None
    assert received["device"] == "cpu" and received["progress"] is False
    assert received["spec"].measure.budget_set["channel_sigmas"] == (0.5, 1.0)
    assert main(["ablate", "--config", str(sweep_file), "--shard", "1/4"]) == 0
    assert received["shard"] == (1, 4) and received["progress"] is None and received["device"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--report"], "--report needs --out SWEEP"),
        (["--report", "--out", "{tmp}"], "is not a sweep folder"),
        (["--config", "{tmp}/none.yaml"], "sweep file not found"),
        (
            ["--config", "{file}", "--out", "{tmp}/s", "--shard", "2/2"],
            "shard must be i/n with 0 <= i < n, got 2/2",
        ),
        (["--config", "{file}", "--out", "{tmp}/s", "--only", "clip*"], "matches no run"),
        (["--config", "{file}", "--out", "{tmp}/s", "--set", "model.no_such=1"], "model.no_such"),
        (
            ["--config", "{file}", "--out", "{tmp}/s", "--budget-set", "imagse=3"],
            "--budget-set expects KEY=VALUE",
        ),
        (["--config", "{file}", "--out", "{tmp}/s", "--seeds", "1,1"], "seeds repeat"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path, sweep_file, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(runner, "train", _refuse)
    argv = [arg.format(tmp=tmp_path, file=sweep_file) for arg in argv]
    assert main(["ablate", *argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("infomug ablate: error:") and message in error


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--shard", "1"], "expected I/N (e.g. 0/4), got '1'"),
        (["--shard", "a/2"], "expected I/N"),
        (["--shard", "1/2/3"], "expected I/N"),
        (["--seeds", "0,x"], "expected comma-separated integers, got '0,x'"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
def test_malformed_options_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["ablate", *argv])
    assert exit_status.value.code == 2 and message in capsys.readouterr().err
