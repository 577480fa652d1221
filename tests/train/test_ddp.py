"""A 2-process gloo run through ``torchrun`` reproduces the 1-process run with the same global batch.

Both runs see the same global batches (each process reads a contiguous slice) and the same masks (the
global batch's mask noise is drawn once and sliced), and DDP averages gradients over equal slices, so the
loss curves differ only by the order of floating-point reductions.
"""

import os
import subprocess
import sys

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
