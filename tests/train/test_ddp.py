"""A 2-process gloo run through ``torchrun`` reproduces the 1-process run with the same global batch.

Both runs see the same global batches (each process reads a contiguous slice) and the same masks (the
global batch's mask noise is drawn once and sliced), and DDP averages gradients over equal slices, so the
loss curves differ only by the order of floating-point reductions.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infomug.cli import main
from infomug.train import list_checkpoints, read_metrics

# Measured differences are ~1e-6 nats per step over 6 steps (float32 reduction order); 1e-4 leaves room
# for other BLAS builds while still catching any real difference (a different batch moves the loss by ~0.1).
LOSS_TOLERANCE = 1e-4

SETTINGS = [
    "train.steps=6",
    "train.log_every=1",
    "train.eval_every=3",
    "train.checkpoint_every=3",
    "train.sample_every=0",
    "train.batch_size=16",
    "optim.warmup_steps=2",
    "data.world.size=512",
    "data.world.eval_size=64",
    "tokenizer.train_captions=500",
    "model.depth=2",
    "model.embed_dim=64",
    "model.num_heads=2",
]


def _args(run_dir, preset, *extra):
    args = ["train", "--out", str(run_dir), "--no-progress", "--set", f"model.preset={preset}"]
    for setting in [*SETTINGS, *extra]:
        args += ["--set", setting]
    return args


@pytest.mark.parametrize(
    "preset, extra",
    [
        # Two micro-batches per step: DDP skips the all-reduce of the first (no_sync).
        ("mug_vit_tiny_patch4_32", ("train.accumulation_steps=2",)),
        ("clip_vit_tiny_patch4_32", ()),
    ],
    ids=["mug-accumulation", "clip"],
)
def test_torchrun_two_gloo_processes_match_one_process(tmp_path, preset, extra):
    single, double = tmp_path / "one", tmp_path / "two"
    assert main(_args(single, preset, *extra)) == 0
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "infomug",
    ]
    finished = subprocess.run(
        command + _args(double, preset, *extra), env=environment, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("run folder:") == 1, "only rank 0 reports"
    assert "process 0 of 2 joined" in finished.stderr
    assert "process 1 of 2 joined" not in finished.stderr, "only rank 0 logs"
    one, two = read_metrics(single / "metrics.jsonl"), read_metrics(double / "metrics.jsonl")
    assert [r["step"] for r in one] == [r["step"] for r in two], "rank 0 alone writes each record once"
    for a, b in zip(one, two, strict=True):
        key = "loss" if a["kind"] == "train" else "eval_loss"
        assert b[key] == pytest.approx(a[key], abs=LOSS_TOLERANCE), (a["step"], a["kind"])
    assert [path.name for path in list_checkpoints(double)] == ["step_00000003", "step_00000006"]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _rank_of(pid: int) -> int | None:
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    ranks = [entry.split(b"=", 1)[1] for entry in environment if entry.startswith(b"RANK=")]
    return int(ranks[0]) if ranks else None


@pytest.mark.slow  # about 20 s on 2 cores, mostly starting torchrun
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker processes in /proc")
def test_a_sigterm_to_one_process_stops_every_process_at_the_same_step(tmp_path):
    # A signal may reach one worker only: all must agree to stop at the same step, or the others would
    # wait for it in their next collective until a timeout.
    run_dir = tmp_path / "run"
    settings = ("train.steps=2000", "train.eval_every=0", "train.checkpoint_every=0")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    process = subprocess.Popen(
        [*command, "infomug", *_args(run_dir, "mae_vit_tiny_patch4_32", *settings)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "metrics.jsonl").read_text():
            assert process.poll() is None and time.monotonic() < deadline, "the run logged no step"
            time.sleep(0.01)
        (worker,) = [pid for pid in _children(process.pid) if _rank_of(pid) == 1]
        os.kill(worker, signal.SIGTERM)
        _, error = process.communicate(timeout=120)  # a process left waiting would hang here
    finally:
        if process.poll() is None:
            process.kill()
    error = error.decode()
    assert process.returncode != 0
    assert re.search(r"exitcode\s*:\s*143", error), error[-3000:]  # the worker's own status for SIGTERM
    (checkpoint,) = list_checkpoints(run_dir)
    step = int(checkpoint.name.removeprefix("step_"))
    assert f"interrupted at step {step} (SIGTERM); checkpoint written to {checkpoint}" in error
    assert max(r["step"] for r in read_metrics(run_dir / "metrics.jsonl")) == step, "rank 0 stopped there too"
