"""Promises a run folder keeps: one writer at a time, failed writes told plainly, damaged bytes never
trained on, and nothing left half-done.

Each test is named as the promise it checks (issue 20, "Run folders").
"""

import errno
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image
from safetensors import SafetensorError
from torch import nn
from torch.utils.data import Dataset

from infomug.cli import main
from infomug.data.webdataset import WebDatasetShards
from infomug.measure import feature_cache
from infomug.measure.extract import extract_features
from infomug.measure.sources import from_module, load_checkpoint
from infomug.objectives import build_objective
from infomug.run_lock import LOCK_FILE, FolderInUse, FolderLock
from infomug.train import (
    CheckpointError,
    TrainingDiverged,
    list_checkpoints,
    load_config,
    load_model_weights,
    read_metrics,
    train,
)
from infomug.train import engine as engine_module
from infomug.train.checksums import CHECKSUMS_FILE, read_checksums, write_checksums
from infomug.train.tiny import TINY_RUN_OVERRIDES
from infomug.train.trainer import run_folder_lock

REPO = Path(__file__).resolve().parents[2]
# A run small enough for a step in tens of milliseconds on one thread (see tests/train/conftest.py).
TINY = [*TINY_RUN_OVERRIDES, "train.eval_every=0", "train.sample_every=0"]
# MAE trains no tokenizer: the quickest run. Checkpoints at steps 2 and 4.
MAE = ["model.objective=mae", "train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=3"]
MUG = ["model.objective=mug", "train.steps=2", "train.checkpoint_every=2"]
TORCH_FULL_DISK = "[enforce fail at inline_container.cc:672] . unexpected pos 344000 vs 343892"
SAFETENSORS_FULL_DISK = "Error while serializing: I/O error: No space left on device (os error 28)"


def _config(*settings: str):
    return load_config(None, [*TINY, *settings])


def _argv(run_dir: Path, *settings: str) -> list[str]:
    args = ["train", "--out", str(run_dir), "--no-progress"]
    for setting in [*TINY, *settings]:
        args += ["--set", setting]
    return args


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory) -> Path:
    """A finished 4-step MAE run (checkpoints at steps 2 and 4); copy it before changing it."""
    run_dir = tmp_path_factory.mktemp("mae") / "run"
    train(_config(*MAE), run_dir, progress=False)
    return run_dir


@pytest.fixture
def mae_copy(mae_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(mae_run, copy)
    return copy


def _step(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}"


def _flip_bytes(file: Path, count: int = 100) -> None:
    """Flip ``count`` bytes in the middle of a file (past a safetensors header, inside the tensors)."""
    data = bytearray(file.read_bytes())
    start = len(data) // 2
    for offset in range(start, start + count):
        data[offset] ^= 0xFF
    file.write_bytes(bytes(data))


# -- 8. one writer per folder --------------------------------------------------------------------------

HOLD_LOCK = (
    "import sys; from infomug.run_lock import FolderLock; FolderLock(sys.argv[1], 'infomug train').acquire();"
    " print('held', flush=True); sys.stdin.read()"
)


@pytest.fixture
def held_by_another_process():
    """``hold(folder) -> pid``: a second process holds ``folder``'s lock until the test ends."""
    processes = []

    def hold(folder: Path) -> int:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        processes.append(process)
        assert process.stdout.readline().strip() == "held"
        return process.pid

    yield hold
    for process in processes:
        process.stdin.close()
        process.wait(timeout=30)


def test_a_second_train_on_a_folder_in_use_is_refused_naming_the_holder(
    tmp_path, capsys, held_by_another_process
):
    run_dir = tmp_path / "run"
    pid = held_by_another_process(run_dir)
    assert main(_argv(run_dir, *MAE)) == 2
    error = capsys.readouterr().err
    assert f"{run_dir} is in use by infomug train (PID {pid} on host {socket.gethostname()}" in error
    assert str(run_dir / LOCK_FILE) in error
    assert sorted(path.name for path in run_dir.iterdir()) == [LOCK_FILE], "nothing written"


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_log_line(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"pid": gone.pid, "host": socket.gethostname(), "command": "infomug train", "since": "then"}
    (run_dir / LOCK_FILE).write_text(json.dumps(record))  # what a kill -9 leaves
    with caplog.at_level(logging.WARNING, logger="infomug.run_lock"):
        result = train(_config(*MAE, "train.steps=2"), run_dir, progress=False)
    assert result.steps == 2
    assert f"recovered the stale lock of infomug train (PID {gone.pid} on host" in caplog.text
    assert not (run_dir / LOCK_FILE).exists()


def test_without_flock_the_record_decides_a_live_holder_refuses_a_dead_one_is_recovered(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr("infomug.run_lock.fcntl", None)
    folder = tmp_path / "folder"
    with FolderLock(folder, "infomug train"):
        with pytest.raises(FolderInUse, match=f"PID {os.getpid()}"):
            FolderLock(folder, "infomug ablate").acquire()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (folder / LOCK_FILE).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING, logger="infomug.run_lock"), FolderLock(folder, "infomug train"):
        assert "recovered the stale lock" in caplog.text


def _fail_at_step_2(monkeypatch, how: str) -> None:
    original = engine_module.TrainingRun._train_step
    calls = {"steps": 0}

    def step(self):
        calls["steps"] += 1
        if calls["steps"] == 2:
            if how == "error":
                raise RuntimeError("a bug in the loop")
            os.kill(os.getpid(), signal.SIGINT)  # the step finishes, then the run checkpoints and stops
        return original(self)

    monkeypatch.setattr(engine_module.TrainingRun, "_train_step", step)


@pytest.mark.parametrize("how, status", [("finished", 0), ("error", None), ("sigint", 130)])
def test_the_lock_is_released_on_every_exit_path(tmp_path, monkeypatch, how, status):
    run_dir = tmp_path / "run"
    if how != "finished":
        _fail_at_step_2(monkeypatch, how)
    if how == "error":
        with pytest.raises(RuntimeError, match="a bug in the loop"):
            main(_argv(run_dir, *MAE))
    else:
        assert main(_argv(run_dir, *MAE)) == status
    assert not (run_dir / LOCK_FILE).exists()
    FolderLock(run_dir, "infomug train").acquire().release()  # free for the next run


def test_under_torchrun_only_rank_0_takes_the_run_folder_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert run_folder_lock(tmp_path) is None
    monkeypatch.setenv("RANK", "0")
    assert isinstance(run_folder_lock(tmp_path), FolderLock)


def test_a_whole_sweep_refuses_a_sweep_folder_in_use_and_shards_share_it(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    args = ["ablate", "--config", str(REPO / "experiments/configs/ablation_cpu.yaml"), "--out", str(sweep)]
    args += ["--only", "no-such-run"]  # a sweep that gets past the lock stops at once, having done nothing
    with FolderLock(sweep, "infomug ablate"):
        assert main(args) == 2
        error = capsys.readouterr().err
        assert f"{sweep} is in use by infomug ablate (PID {os.getpid()}" in error
        assert not (sweep / "sweep.yaml").exists()
        assert main([*args, "--shard", "0/2"]) == 2
        assert "matches no run" in capsys.readouterr().err, "a shard does not wait for the sweep lock"


class _Samples(Dataset):
    def __init__(self, count: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.samples = [
            {"image": torch.randn(3, 4, 4, generator=generator), "caption": f"c{i}", "labels": {"cls": i % 3}}
            for i in range(count)
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return self.samples[index]


@pytest.mark.parametrize("between", range(6), ids=lambda k: f"during-write-{k}")
def test_two_writers_of_one_feature_cache_leave_a_valid_cache(tmp_path, monkeypatch, between):
    # The cache needs no lock: its folder is keyed by weights, data and size, so two writers write the
    # same bytes, each file goes aside and is renamed, and meta.json, renamed last, lists only files that
    # are complete. Here a second writer (asking for other layers) does its whole write in the middle of
    # the first one's, at each of the first one's six file writes.
    torch.manual_seed(0)
    net = from_module(nn.Sequential(nn.Flatten(), nn.Linear(48, 6), nn.Tanh(), nn.Linear(6, 2)))
    data = _Samples(9)
    options = dict(n=9, batch_size=4, cache_dir=tmp_path, data_key="samples")
    reference = extract_features(net, data, layers=["1", "2", "3"], n=9, batch_size=4)
    real_atomic, writes = feature_cache._atomic, []

    def interleaved(path, write):
        writes.append(path.name)
        if len(writes) == between + 1:
            monkeypatch.setattr(feature_cache, "_atomic", real_atomic)
            extract_features(net, data, layers=["2", "3"], **options)  # the other writer, start to end
            monkeypatch.setattr(feature_cache, "_atomic", interleaved)
        real_atomic(path, write)

    monkeypatch.setattr(feature_cache, "_atomic", interleaved)
    extract_features(net, data, layers=["1", "3"], **options)
    monkeypatch.undo()
    again = extract_features(net, data, layers=["1", "2", "3"], **options)
    for name in ("1", "2", "3"):
        np.testing.assert_array_equal(again.layers[name], reference.layers[name])
    assert extract_features(net, data, layers=["1", "2", "3"], **options).from_cache
    assert not list(tmp_path.rglob("*.tmp-*"))


# -- 9. failed writes are named, the run stays resumable ------------------------------------------------


@pytest.fixture
def read_only():
    """``read_only(folder)``: writing inside ``folder`` fails as on a read-only mount.

    chmod where it binds; as root (whom permissions do not stop) os.open and os.mkdir under the folder
    raise EROFS instead.
    """
    patched = pytest.MonkeyPatch()
    folders = []

    def make(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            folders.append(folder)
            return
        real_open, real_mkdir = os.open, os.mkdir
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

        def inside(path) -> bool:
            return Path(os.fspath(path)).resolve().is_relative_to(folder.resolve())

        def fake_open(path, flags, *args, **kwargs):
            if flags & writes and inside(path):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        def fake_mkdir(path, *args, **kwargs):
            if inside(path) and Path(path).resolve() != folder.resolve():
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
            return real_mkdir(path, *args, **kwargs)

        patched.setattr(os, "open", fake_open)
        patched.setattr(os, "mkdir", fake_mkdir)

    yield make
    patched.undo()
    for folder in folders:
        folder.chmod(0o755)


def test_a_read_only_run_folder_exits_2_naming_the_path_and_the_cause(tmp_path, capsys, read_only):
    run_dir = tmp_path / "run"
    read_only(run_dir)
    assert main(_argv(run_dir, *MAE)) == 2
    error = capsys.readouterr().err
    cause = "the file system is read-only" if os.geteuid() == 0 else "permission denied"
    assert f"infomug train: error: cannot write {run_dir / LOCK_FILE}: {cause}" in error
    assert "no checkpoint was written yet" in error


@pytest.mark.parametrize("writer", ["torch.save", "safetensors"])
def test_a_full_disk_at_a_checkpoint_exits_2_naming_the_file_and_the_run_resumes(
    tmp_path, capsys, monkeypatch, writer
):
    run_dir = tmp_path / "run"
    real = torch.save if writer == "torch.save" else safetensors.torch.save_model
    calls = {"count": 0}

    def second_write_fails(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:  # the checkpoint of step 4
            if writer == "torch.save":
                raise RuntimeError(TORCH_FULL_DISK)
            raise SafetensorError(SAFETENSORS_FULL_DISK)
        return real(*args, **kwargs)

    if writer == "torch.save":
        monkeypatch.setattr(torch, "save", second_write_fails)
    else:
        monkeypatch.setattr(safetensors.torch, "save_model", second_write_fails)
    assert main(_argv(run_dir, *MAE)) == 2
    error = capsys.readouterr().err
    file = "train_state.pt" if writer == "torch.save" else "model.safetensors"
    assert (
        "infomug train: error: cannot write " in error and f"step_00000004.tmp-{os.getpid()}/{file}" in error
    )
    assert "no space left on the device" in error
    assert f"the latest checkpoint, {_step(run_dir, 2)}, is intact" in error
    monkeypatch.undo()
    assert main(_argv(run_dir, *MAE)) == 0, "the same command resumes"
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl", kind="train")] == [1, 2, 3, 4]
    assert [path.name for path in list_checkpoints(run_dir)] == ["step_00000002", "step_00000004"]


# -- 10. damaged bytes are found; non-finite weights are never "good" -----------------------------------


def test_flipped_bytes_in_the_weights_are_refused_on_load_naming_the_file(mae_copy):
    checkpoint = _step(mae_copy, 4)
    _flip_bytes(checkpoint / "model.safetensors")
    pattern = re.escape(f"{checkpoint / 'model.safetensors'} is corrupt: checksum mismatch")
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(checkpoint)  # what infomug measure loads
    with pytest.raises(CheckpointError, match=pattern):
        load_model_weights(build_objective(_config(*MAE).model), mae_copy)


@pytest.mark.parametrize("damaged", ["model.safetensors", "train_state.pt"])
def test_resuming_past_a_damaged_latest_checkpoint_falls_back_to_the_previous_intact_one(
    mae_run, mae_copy, caplog, damaged
):
    _flip_bytes(_step(mae_copy, 4) / damaged)
    with caplog.at_level(logging.WARNING, logger="infomug.train"):
        result = train(None, mae_copy, progress=False)
    assert f"{_step(mae_copy, 4) / damaged} is corrupt: checksum mismatch" in caplog.text
    assert f"resuming from the previous intact checkpoint, {_step(mae_copy, 2)}" in caplog.text
    assert result.resumed_from == 2 and result.steps == 4
    expected = safetensors.torch.load_file(_step(mae_run, 4) / "model.safetensors")
    actual = safetensors.torch.load_file(_step(mae_copy, 4) / "model.safetensors")
    assert all(torch.equal(expected[name], actual[name]) for name in expected), "the uninterrupted weights"
    assert [r["step"] for r in read_metrics(mae_copy / "metrics.jsonl", kind="train")] == [1, 2, 3, 4]


def test_a_checkpoint_without_checksums_still_loads_with_a_note(mae_copy, caplog):
    checkpoint = _step(mae_copy, 4)
    (checkpoint / CHECKSUMS_FILE).unlink()  # as written before checksums were kept
    with caplog.at_level(logging.INFO, logger="infomug.train"):
        load_model_weights(build_objective(_config(*MAE).model), checkpoint)
    assert f"{checkpoint} has no {CHECKSUMS_FILE}" in caplog.text and "not verified" in caplog.text


def test_a_checkpoint_with_non_finite_weights_is_refused_not_resumed_as_good(mae_copy):
    checkpoint = _step(mae_copy, 4)
    file = checkpoint / "model.safetensors"
    with safetensors.safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata()
    weights = safetensors.torch.load_file(file)
    name = next(key for key, value in weights.items() if value.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    safetensors.torch.save_file(weights, str(file), metadata=metadata)
    write_checksums(checkpoint, read_checksums(checkpoint))  # written so: the checksums agree
    longer = _config(*MAE, "train.steps=6")
    with pytest.raises(
        CheckpointError, match=re.escape(f"{checkpoint}: its weights are not finite (")
    ) as raised:
        train(longer, mae_copy, resume=checkpoint, progress=False)
    assert name in str(raised.value)


def test_an_update_that_makes_a_weight_non_finite_writes_no_checkpoint(tmp_path, monkeypatch):
    original = engine_module.TrainingRun._train_step
    calls = {"steps": 0}

    def poisoned_update(self):
        out = original(self)
        calls["steps"] += 1
        if calls["steps"] == 2:  # finite loss and gradient, yet the update left a NaN
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return out

    monkeypatch.setattr(engine_module.TrainingRun, "_train_step", poisoned_update)
    config = _config("model.objective=mae", "train.steps=3", "train.checkpoint_every=1")
    with pytest.raises(
        TrainingDiverged, match=r"diverged at step 1: weight .* is nan after that step"
    ) as raised:
        train(config, tmp_path / "run", progress=False)
    assert raised.value.checkpoint == _step(tmp_path / "run", 1)
    assert [path.name for path in list_checkpoints(tmp_path / "run")] == ["step_00000001"]


# -- 11. nothing half-done ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mug_run(tmp_path_factory) -> Path:
    """A finished 2-step MUG run: its checkpoint holds the run's trained tokenizer.json."""
    run_dir = tmp_path_factory.mktemp("mug") / "run"
    train(_config(*MUG), run_dir, progress=False)
    return run_dir


def test_a_symlinked_tokenizer_in_a_checkpoint_is_refused_before_it_is_copied(mug_run, tmp_path):
    checkpoint = tmp_path / "step_00000002"
    shutil.copytree(_step(mug_run, 2), checkpoint)
    elsewhere = tmp_path / "elsewhere.json"
    shutil.copyfile(checkpoint / "tokenizer.json", elsewhere)
    (checkpoint / "tokenizer.json").unlink()
    (checkpoint / "tokenizer.json").symlink_to(elsewhere)
    target = tmp_path / "target"
    target.mkdir()
    (target / "notes.txt").write_text("the user's")  # not a fresh folder: nothing is cleaned up here
    with pytest.raises(
        CheckpointError, match=re.escape(f"{checkpoint / 'tokenizer.json'} is a symbolic link")
    ):
        train(_config(*MUG, "train.steps=4"), target, resume=checkpoint, progress=False)
    assert not (target / "tokenizer.json").exists()


@pytest.mark.parametrize("folder", ["missing", "empty", "with a file"])
def test_a_failed_start_leaves_a_fresh_run_folder_as_it_found_it(tmp_path, capsys, monkeypatch, folder):
    def broken(config):
        raise ValueError("the objective cannot be built")

    monkeypatch.setattr(engine_module, "build_objective", broken)  # after config.yaml and tokenizer.json
    run_dir = tmp_path / "run"
    if folder != "missing":
        run_dir.mkdir()
    if folder == "with a file":
        (run_dir / "notes.txt").write_text("the user's")
    assert main(_argv(run_dir, *MUG)) == 2
    assert "the objective cannot be built" in capsys.readouterr().err
    if folder == "missing":
        assert not run_dir.exists()
    elif folder == "empty":
        assert list(run_dir.iterdir()) == []
    else:
        assert (run_dir / "notes.txt").read_text() == "the user's"


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("require_caption", [True, False])
def test_a_caption_that_is_not_utf8_is_skipped_and_counted_never_kept_garbled(tmp_path, require_caption):
    members = [
        ("000.jpg", _jpeg()),
        ("000.txt", b"a grey square"),
        ("001.jpg", _jpeg()),
        ("001.txt", b"caf\xe9 au lait"),  # not UTF-8
        ("002.jpg", _jpeg()),
        ("002.txt", b"another grey square"),
    ]
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dataset = WebDatasetShards(str(shard), require_caption=require_caption, shuffle_shards=False)
    captions = [sample["caption"] for sample in dataset]
    assert not any("\ufffd" in caption for caption in captions)
    if require_caption:
        assert captions == ["a grey square", "another grey square"]
        assert dataset.bad_samples.counts["bad_caption_encoding"] == 1
    else:  # image-only data: the image is good and kept, the caption left unread
        assert captions == ["a grey square", "", "another grey square"]


def test_a_key_given_twice_in_a_config_file_is_refused_naming_it_and_its_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 0.001\n  eps: 1.0e-8\n  lr: 0.1\n")
    with pytest.raises(ValueError, match=r"run\.yaml: duplicate key 'lr' \(first at line 2\) at line 4"):
        load_config(path)
