"""`infomug train` through ``main(argv)``: what a run folder holds for each objective, exit codes and
messages for bad configs, bad checkpoints and divergence, a real SIGKILL followed by a resume, and SIGINT /
SIGTERM, which checkpoint at the next step boundary."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import safetensors.torch
import torch

from infomug.cli import main
from infomug.data import CaptionCollate, build_dataset, build_tokenizer
from infomug.objectives import MUGObjective, build_objective
from infomug.train import engine as engine_module
from infomug.train import (
    latest_checkpoint,
    learning_rate,
    list_checkpoints,
    load_config,
    load_model_weights,
    load_train_state,
    read_checkpoint_info,
    read_metrics,
    save_config,
)
from infomug.train.checksums import read_checksums, write_checksums
from infomug.train.loader import eval_batches
from infomug.train.rng import derive_seed

# Three steps: checkpoints and evals at steps 2 and 3 (the last step always does both), samples at 3.
RUN = ["train.steps=3", "train.checkpoint_every=2", "train.eval_every=2", "train.sample_every=3"]
LOSS_TERMS = {
    "mae": {"loss", "loss_pixel"},
    "mug": {"loss", "loss_pixel", "loss_caption"},
    "clip": {"loss", "loss_contrastive"},
    "simclr": {"loss", "loss_contrastive"},
}


@pytest.fixture(scope="module")
def tiny(tiny_run) -> list[str]:
    """The tiny run's overrides, with two eval batches."""
    return [*tiny_run, "train.eval_batches=2"]


@pytest.fixture(scope="module")
def argv(tiny):
    """``argv(run_dir, *settings, options=())``: `infomug train` of the tiny run with ``settings``."""

    def make(run_dir, *settings: str, options=()) -> list[str]:
        args = ["train", "--out", str(run_dir), "--no-progress", *options]
        for setting in [*tiny, *settings]:
            args += ["--set", setting]
        return args

    return make


@pytest.fixture(scope="module")
def finished(tmp_path_factory, argv, tiny):
    """``finished(objective)`` -> (exit code, run folder, config) of a 3-step run, run once per module."""
    runs = {}

    def run(objective: str):
        if objective not in runs:
            run_dir = tmp_path_factory.mktemp(objective) / "run"
            settings = [f"model.objective={objective}", *RUN]
            code = main(argv(run_dir, *settings))
            runs[objective] = (code, run_dir, load_config(None, [*tiny, *settings]))
        return runs[objective]

    return run


def _eval_loss(config, checkpoint) -> float:
    """The eval loss of ``checkpoint``'s weights in a fresh objective, on the batches and masks the
    trainer evaluates on (the eval split in order, masks seeded by (seed, "eval-mask", 0, batch))."""
    model = build_objective(config.model)
    load_model_weights(model, checkpoint)
    model.eval()
    objective = config.model.objective
    data = build_dataset(config.data, "eval", "two_view" if objective == "simclr" else "eval")
    tokenizer = None
    if (checkpoint / "tokenizer.json").is_file():
        tokenizer = build_tokenizer("bpe", path=checkpoint / "tokenizer.json")
    collate = CaptionCollate(tokenizer, context_length=config.model.context_length)
    seed, size = config.train.seed, config.train.batch_size
    patches = (config.model.img_size // config.model.patch_size) ** 2
    losses = []
    batches = eval_batches(data, collate, size, config.train.eval_batches, derive_seed(seed, "eval"))
    with torch.no_grad():
        for index, batch in enumerate(batches):
            if objective in ("mae", "mug"):
                generator = torch.Generator().manual_seed(derive_seed(seed, "eval-mask", 0, index))
                batch["mask_noise"] = torch.rand(size, patches, generator=generator)
            losses.append(float(model(batch)["loss"]))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("objective", ["mae", "mug", "clip", "simclr"])
def test_each_objective_trains_into_a_complete_run_folder(finished, objective):
    code, run_dir, config = finished(objective)
    assert code == 0
    assert load_config(run_dir / "config.yaml") == config

    train_records = read_metrics(run_dir / "metrics.jsonl", kind="train")
    assert [r["step"] for r in train_records] == [1, 2, 3]
    for record in train_records:
        expected = {"kind", "step", "epoch", "lr", "images_per_s", "data_fraction", "grad_norm", "seconds"}
        assert set(record) == expected | LOSS_TERMS[objective]
        assert all(math.isfinite(record[term]) for term in LOSS_TERMS[objective])
        assert record["epoch"] == 0 and record["grad_norm"] > 0 and record["images_per_s"] > 0
        assert 0 <= record["data_fraction"] <= 1
        assert record["lr"] == learning_rate(record["step"] - 1, 3, config.optim.lr, 1, config.optim.min_lr)
    if objective == "mug":
        weights = config.model.pixel_loss_weight, config.model.caption_loss_weight
        for r in train_records:
            assert r["loss"] == pytest.approx(weights[0] * r["loss_pixel"] + weights[1] * r["loss_caption"])
    eval_records = read_metrics(run_dir / "metrics.jsonl", kind="eval")
    assert [r["step"] for r in eval_records] == [2, 3]
    assert {f"eval_{term}" for term in LOSS_TERMS[objective]} <= set(eval_records[-1])

    samples = sorted(path.name for path in run_dir.glob("samples/*"))
    if objective in ("mae", "mug"):
        assert samples == ["step_00000003.png"]
        assert (run_dir / "samples" / samples[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert samples == [], "contrastive objectives reconstruct nothing"

    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the loss curves"

    checkpoints = list_checkpoints(run_dir)
    assert [path.name for path in checkpoints] == ["step_00000002", "step_00000003"]
    assert latest_checkpoint(run_dir) == checkpoints[-1]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    with_tokenizer = objective in ("mug", "clip")  # clip's vocabulary of 512 ids selects a trained BPE
    files = {"model.safetensors", "train_state.pt", "checksums.json"} | (
        {"tokenizer.json"} if with_tokenizer else set()
    )
    for checkpoint in checkpoints:
        assert {path.name for path in checkpoint.iterdir()} == files
        if with_tokenizer:
            assert (checkpoint / "tokenizer.json").read_bytes() == (run_dir / "tokenizer.json").read_bytes()
    assert read_checkpoint_info(checkpoints[-1]).step == 3
    assert _eval_loss(config, checkpoints[-1]) == pytest.approx(eval_records[-1]["eval_loss"], rel=1e-6)


def test_the_cli_prints_a_summary(argv, finished, capsys):
    code, run_dir, _ = finished("mae")
    assert code == 0
    # Resuming a finished run trains nothing and prints where it stands.
    assert main(argv(run_dir, "model.objective=mae", *RUN)) == 0
    out = capsys.readouterr().out
    assert f"run folder: {run_dir}" in out and "steps: 3" in out and "step_00000003" in out


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, message",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("train.steps=many", "train.steps must be int, got str 'many'"),
        ("model.img_size=32", "data.image_size=16 does not match model.img_size=32"),
    ],
)
def test_config_errors_exit_2_naming_the_key(argv, tmp_path, capsys, setting, message):
    assert main(argv(tmp_path / "run", setting)) == 2
    error = capsys.readouterr().err
    assert error.startswith("infomug train: error:") and message in error
    assert not (tmp_path / "run").exists(), "nothing is written for a bad config"


def test_resuming_with_another_config_exits_2_naming_the_key(argv, finished, capsys):
    _, run_dir, _ = finished("mae")
    saved = (run_dir / "config.yaml").read_text()
    assert main(argv(run_dir, "model.objective=mae", *RUN, "optim.lr=0.002")) == 2
    error = capsys.readouterr().err
    assert "differs from the checkpoint" in error and "optim.lr" in error
    assert (run_dir / "config.yaml").read_text() == saved


def test_no_resume_on_a_folder_with_checkpoints_exits_2(argv, finished, capsys):
    _, run_dir, _ = finished("mae")
    assert main(argv(run_dir, "model.objective=mae", *RUN, options=["--no-resume"])) == 2
    assert "already holds checkpoints" in capsys.readouterr().err


def test_resuming_a_missing_checkpoint_exits_2(argv, tmp_path, capsys):
    assert main(argv(tmp_path / "run", options=["--resume", str(tmp_path / "nowhere")])) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_a_truncated_checkpoint_exits_2(argv, finished, tmp_path, capsys):
    _, source, _ = finished("mae")
    run_dir = shutil.copytree(source, tmp_path / "run")
    weights = latest_checkpoint(run_dir) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    # Named: a run folder's own damaged latest checkpoint is passed over for the previous intact one.
    options = ["--resume", str(weights.parent)]
    assert main(argv(run_dir, "model.objective=mae", *RUN, options=options)) == 2
    error = capsys.readouterr().err
    assert "truncated or corrupt" in error and str(weights) in error


def _forge_checksums(checkpoint):
    """Record the files' new checksums, as a forger would: the loaders' other checks must stop it."""
    write_checksums(checkpoint, read_checksums(checkpoint))


class _RunsCode:
    """A pickle that would create a file when loaded, if it were ever unpickled with code execution."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_train_state_that_would_run_code_is_refused_not_run(argv, finished, tmp_path, capsys):
    _, source, _ = finished("mae")
    run_dir = shutil.copytree(source, tmp_path / "run")
    marker = tmp_path / "code-ran"
    torch.save({"step": 3, "payload": _RunsCode(marker)}, latest_checkpoint(run_dir) / "train_state.pt")
    _forge_checksums(latest_checkpoint(run_dir))
    assert main(argv(run_dir, "model.objective=mae", *RUN)) == 2
    assert "refused to load" in capsys.readouterr().err
    assert not marker.exists()


def test_a_train_state_not_written_by_the_trainer_exits_2_naming_what_it_lacks(
    argv, finished, tmp_path, capsys
):
    _, source, _ = finished("mae")
    run_dir = shutil.copytree(source, tmp_path / "run")
    torch.save({"version": 1, "step": 3}, latest_checkpoint(run_dir) / "train_state.pt")
    _forge_checksums(latest_checkpoint(run_dir))
    assert main(argv(run_dir, "model.objective=mae", *RUN)) == 2
    error = capsys.readouterr().err
    assert "the training state lacks position, optimizer, rng, best" in error and "step_00000003" in error


@pytest.mark.parametrize(
    "split, setting", [("train", "data.world.size=8"), ("eval", "data.world.eval_size=8")]
)
def test_a_split_smaller_than_a_global_batch_exits_2_before_training(argv, tmp_path, capsys, split, setting):
    run_dir = tmp_path / "run"
    assert main(argv(run_dir, "model.objective=mae", "train.steps=3", setting)) == 2
    error = capsys.readouterr().err
    assert f"the {split} split has 8 samples, fewer than one global micro-batch of 16" in error
    assert not (run_dir / "metrics.jsonl").exists(), "refused before the first step, not at the first eval"


def test_samples_of_an_eval_split_smaller_than_the_sample_grid(argv, tmp_path):
    # Four eval images, fewer than the 8 columns of a sample PNG: the PNG shows the four.
    settings = ["model.objective=mae", "train.batch_size=4", "data.world.eval_size=4"]
    assert (
        main(
            argv(tmp_path / "run", *settings, "train.steps=1", "optim.warmup_steps=0", "train.sample_every=1")
        )
        == 0
    )
    assert (tmp_path / "run" / "samples" / "step_00000001.png").read_bytes()[:4] == b"\x89PNG"


def test_divergence_exits_3_naming_the_step_and_the_term(argv, tmp_path, capsys, monkeypatch):
    original = MUGObjective.forward
    calls = {"train": 0}

    def forward(self, batch, generator=None):
        out = original(self, batch, generator)
        if self.training:
            calls["train"] += 1
            if calls["train"] > 2:  # from optimizer step 2 (0-based) on
                out["loss_caption"] = out["loss_caption"] * math.nan
                out["loss"] = out["loss"] + out["loss_caption"]
        return out

    monkeypatch.setattr(MUGObjective, "forward", forward)
    code = main(
        argv(
            tmp_path / "run",
            "model.objective=mug",
            "train.steps=5",
            "train.checkpoint_every=1",
            "train.eval_every=0",
            "train.sample_every=0",
        )
    )
    assert code == 3
    error = capsys.readouterr().err
    assert "diverged at step 2: loss_caption is nan" in error and "step_00000002" in error


# -- resuming a named checkpoint ---------------------------------------------------------------------


def test_a_named_checkpoint_resumes_into_a_new_folder_with_its_own_config(finished, tmp_path, capsys):
    _, source, config = finished("mae")
    middle = source / "checkpoints" / "step_00000002"
    assert main(["train", "--out", str(tmp_path / "new"), "--resume", str(middle), "--no-progress"]) == 0
    assert load_config(tmp_path / "new" / "config.yaml") == config
    expected = safetensors.torch.load_file(source / "checkpoints" / "step_00000003" / "model.safetensors")
    actual = safetensors.torch.load_file(
        tmp_path / "new" / "checkpoints" / "step_00000003" / "model.safetensors"
    )
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_a_named_checkpoint_resumes_with_other_optimiser_settings_but_not_another_model(
    finished, tmp_path, capsys
):
    _, source, config = finished("mae")
    middle = str(source / "checkpoints" / "step_00000002")
    options = [
        "--resume",
        middle,
        "--no-progress",
        "--set",
        "optim.lr=5e-4",
        "--set",
        "optim.weight_decay=0.2",
    ]
    assert main(["train", "--out", str(tmp_path / "lower"), *options]) == 0
    run_dir = tmp_path / "lower"
    assert load_config(run_dir / "config.yaml").optim.lr == 5e-4
    (record,) = read_metrics(run_dir / "metrics.jsonl", kind="train")
    assert record["step"] == 3 and record["lr"] == learning_rate(2, 3, 5e-4, 1, config.optim.min_lr)
    groups = load_train_state(run_dir / "checkpoints" / "step_00000003")["optimizer"]["param_groups"]
    assert [group["weight_decay"] for group in groups] == [0.2, 0.0], "the config's, not the checkpoint's"

    capsys.readouterr()
    assert (
        main(["train", "--out", str(tmp_path / "deeper"), "--resume", middle, "--set", "model.depth=3"]) == 2
    )
    error = capsys.readouterr().err
    assert (
        "differs from the checkpoint" in error
        and "model.depth" in error
        and "Only optim.*, train.steps" in error
    )


def test_a_longer_run_in_the_same_folder_needs_the_checkpoint_named_as_the_help_says(
    argv, finished, tmp_path, capsys
):
    _, source, _ = finished("mae")
    run_dir = shutil.copytree(source, tmp_path / "run")
    assert main(["train", "--out", str(run_dir), "--set", "train.steps=5"]) == 2
    error = capsys.readouterr().err
    assert "differs from the checkpoint" in error and "in: train.steps." in error
    options = ["--resume", str(run_dir), "--out", str(run_dir), "--no-progress", "--set", "train.steps=5"]
    assert main(["train", *options]) == 0
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl", kind="train")] == [1, 2, 3, 4, 5]
    assert latest_checkpoint(run_dir).name == "step_00000005"


# -- a real kill -------------------------------------------------------------------------------------


def _logged_steps(path) -> list[int]:
    """Train steps in a metrics file another process may be writing (a cut last line is skipped)."""
    steps = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("kind") == "train":
            steps.append(record["step"])
    return steps


def _kill_after_a_checkpoint(process, run_dir, timeout=240.0) -> int:
    """SIGKILL ``process`` once it has logged a step past its latest checkpoint; return that step.

    The process is frozen (SIGSTOP) while its files are read, so what is read is what the kill leaves.
    """
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (run_dir / "checkpoints" / "latest").exists():
                os.kill(process.pid, signal.SIGSTOP)
                checkpoint = latest_checkpoint(run_dir)
                logged = _logged_steps(run_dir / "metrics.jsonl")
                step = int(checkpoint.name.removeprefix("step_")) if checkpoint else None
                if step is not None and logged and max(logged) > step:
                    return step
                os.kill(process.pid, signal.SIGCONT)
            time.sleep(0.005)
        ended = process.poll()
    finally:
        process.kill()  # SIGKILL reaches a frozen process too
        process.wait()
    pytest.fail(f"the run ended (code {ended}) or stalled before it could be killed mid-way")


def test_a_killed_run_resumes_to_the_uninterrupted_result_bit_for_bit(argv, tmp_path):
    steps = 12
    settings = [
        "model.objective=mug",
        f"train.steps={steps}",
        "train.checkpoint_every=2",
        "train.eval_every=0",
        "train.sample_every=0",
        "train.keep_checkpoints=2",
    ]
    assert main(argv(tmp_path / "whole", *settings)) == 0

    command = [sys.executable, "-m", "infomug", *argv(tmp_path / "killed", *settings)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same single thread as this process
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        killed_at = _kill_after_a_checkpoint(process, tmp_path / "killed")
    assert killed_at < steps
    metrics = tmp_path / "killed" / "metrics.jsonl"
    assert max(_logged_steps(metrics)) > killed_at, "the killed run logged steps its checkpoint does not hold"
    with metrics.open("a") as handle:
        handle.write('{"kind": "train", "step": 9')  # a line cut by the kill

    again = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"steps: {steps}" in again.stdout
    assert f"(step {killed_at})" in again.stderr, "it resumed from the killed run's checkpoint"

    expected = safetensors.torch.load_file(
        tmp_path / "whole" / "checkpoints" / f"step_{steps:08d}" / "model.safetensors"
    )
    actual = safetensors.torch.load_file(
        tmp_path / "killed" / "checkpoints" / f"step_{steps:08d}" / "model.safetensors"
    )
    assert set(expected) == set(actual)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    resumed = read_metrics(metrics, kind="train")  # every line parses: the cut line is gone
    assert [r["step"] for r in resumed] == list(range(1, steps + 1)), "each step logged once"
    whole = read_metrics(tmp_path / "whole" / "metrics.jsonl", kind="train")
    for a, b in zip(whole, resumed, strict=True):
        assert (a["loss_pixel"], a["loss_caption"]) == (b["loss_pixel"], b["loss_caption"]), a["step"]


def test_a_run_stopped_before_its_first_checkpoint_restarts_with_its_own_config(tiny, tmp_path, monkeypatch):
    # What a kill during the first steps leaves: config.yaml (and metrics) but no checkpoint. Rerunning
    # `infomug train --out RUN` must train that config again, not the defaults (and not overwrite it).
    config = load_config(None, [*tiny, "model.objective=mae", "train.steps=2", "train.eval_every=0"])
    save_config(config, tmp_path / "run" / "config.yaml")
    original = engine_module.build_dataset

    def build_dataset_checked(data_config, *args, **kwargs):
        assert data_config == config.data, "the run ignored its own config.yaml"
        return original(data_config, *args, **kwargs)

    monkeypatch.setattr(engine_module, "build_dataset", build_dataset_checked)
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert load_config(tmp_path / "run" / "config.yaml") == config
    assert [path.name for path in list_checkpoints(tmp_path / "run")] == ["step_00000002"]


def test_ctrl_c_exits_130_naming_the_checkpoint_to_resume_from(argv, tmp_path, capsys, monkeypatch):
    original = MUGObjective.forward
    calls = {"train": 0}

    def forward(self, batch, generator=None):
        if self.training:
            calls["train"] += 1
            if calls["train"] > 3:  # during optimizer step 3, after the checkpoint of step 2
                raise KeyboardInterrupt
        return original(self, batch, generator)

    monkeypatch.setattr(MUGObjective, "forward", forward)
    settings = ["model.objective=mug", "train.steps=5", "train.checkpoint_every=2", "train.sample_every=0"]
    assert main(argv(tmp_path / "run", *settings)) == 130
    error = capsys.readouterr().err
    assert "interrupted" in error and "step_00000002" in error and "same command to resume" in error
    monkeypatch.setattr(MUGObjective, "forward", original)
    assert main(argv(tmp_path / "run", *settings)) == 0
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl", kind="train")] == [
        1,
        2,
        3,
        4,
        5,
    ]


# -- a signal: a checkpoint at the next step boundary -------------------------------------------------

# Long enough that a run signalled after its second logged step is still training when the signal lands
# (a tiny step takes ~20 ms); MAE trains no tokenizer, so the set-up is quick.
SIGNALLED = [
    "model.objective=mae",
    "train.steps=40",
    "train.checkpoint_every=0",
    "train.checkpoint_minutes=0",
    "train.eval_every=0",
    "train.sample_every=0",
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, argv):
    """The last weights of the `SIGNALLED` run, trained without a stop."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(argv(run_dir, *SIGNALLED)) == 0
    return safetensors.torch.load_file(run_dir / "checkpoints" / "step_00000040" / "model.safetensors")


def _resumes_to(argv, run_dir, expected, capsys) -> None:
    """Running the same command again finishes the run with the uninterrupted run's weights, bit for bit."""
    assert main(argv(run_dir, *SIGNALLED)) == 0
    assert "steps: 40" in capsys.readouterr().out
    actual = safetensors.torch.load_file(run_dir / "checkpoints" / "step_00000040" / "model.safetensors")
    assert set(actual) == set(expected)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl", kind="train")]
    assert steps == list(range(1, 41)), "each step logged once"


@pytest.mark.parametrize("stop, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_a_signal_checkpoints_at_the_next_step_boundary_and_resumes_bit_for_bit(
    argv, uninterrupted, tmp_path, capsys, monkeypatch, stop, status
):
    original = engine_module.TrainingRun._train_step
    calls = {"steps": 0}

    def signalled_step(self):
        calls["steps"] += 1
        if calls["steps"] == 3:  # mid-step, as a Ctrl-C lands: the step finishes, then the run stops
            os.kill(os.getpid(), stop)
        return original(self)

    monkeypatch.setattr(engine_module.TrainingRun, "_train_step", signalled_step)
    handler = signal.getsignal(stop)
    run_dir = tmp_path / "run"
    assert main(argv(run_dir, *SIGNALLED)) == status
    error = capsys.readouterr().err
    checkpoint = run_dir / "checkpoints" / "step_00000003"
    assert f"interrupted at step 3 ({stop.name}); checkpoint written to {checkpoint}" in error
    assert f"resume with: infomug train --out {run_dir}" in error
    assert latest_checkpoint(run_dir) == checkpoint and (run_dir / "loss.png").is_file()
    assert signal.getsignal(stop) == handler, "the handler the run found is restored"
    monkeypatch.setattr(engine_module.TrainingRun, "_train_step", original)
    _resumes_to(argv, run_dir, uninterrupted, capsys)


def test_ctrl_c_in_a_terminal_stops_a_real_run_with_a_checkpoint(argv, uninterrupted, tmp_path, capsys):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "infomug", *argv(run_dir, *SIGNALLED)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same single thread as this process
    # A terminal sends Ctrl-C's SIGINT to its whole foreground process group: here, a session of its own.
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while len(_logged_steps(run_dir / "metrics.jsonl")) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "the run logged no step"
            time.sleep(0.002)
        os.killpg(process.pid, signal.SIGINT)
        _, error = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, error.decode()[-3000:]
    checkpoint = latest_checkpoint(run_dir)
    stopped_at = int(checkpoint.name.removeprefix("step_"))
    assert 2 <= stopped_at < 40
    assert f"interrupted at step {stopped_at} (SIGINT); checkpoint written to {checkpoint}" in error.decode()
    _resumes_to(argv, run_dir, uninterrupted, capsys)
