import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from infomug.ablation import SweepSpec, run_sweep, spec_from_dict
from infomug.train.tiny import TINY_MODEL_OVERRIDES

# Every run of the tiny sweep: 16x16 images, width 32, 2 blocks, a 64-image world with 200 eval images,
# 4 steps of 16 images (a checkpoint at step 2 and at step 4). A run trains and is measured in ~2 s.
TINY_SWEEP_OVERRIDES = (
    *TINY_MODEL_OVERRIDES,
    "data.world.size=64",
    "data.world.eval_size=200",
    "tokenizer.train_captions=64",
    "train.batch_size=16",
    "train.steps=4",
    "train.log_every=2",
    "train.eval_every=0",
    "train.sample_every=0",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=1",
    "train.device=cpu",
    "optim.warmup_steps=1",
)

TINY_BUDGET_SET = {
    "images": 200,
    "channel_samples": 100,
    "entropy_samples": 100,
    "probe_max_iter": 50,
    "caption_steps": 10,
    "caption_batch": 32,
    "decoder_samples": 64,
    "uncertainty": False,
}


def tiny_spec_values(**changes: Any) -> dict[str, Any]:
    """The tiny sweep as a parsed sweep file: MAE and MUG (lambda_L = 0.1), seeds 0 and 1, and both
    retrained with all captions irrelevant (MAE's noise cells reuse its main runs, as does fraction 0).
    ``changes`` replace top-level keys."""
    values: dict[str, Any] = {
        "name": "tiny",
        "overrides": list(TINY_SWEEP_OVERRIDES),
        "seeds": [0, 1],
        "variants": {
            "mae": ["model.preset=mae_vit_tiny_patch4_32"],
            "mug_0.1": ["model.caption_loss_weight=0.1"],
        },
        "caption_noise": {
            "setting": "world.irrelevant_caption_fraction",
            "fractions": [0.0, 1.0],
            "variants": ["mae", "mug_0.1"],
        },
        "measure": {
            "budget": "quick",
            "budget_set": dict(TINY_BUDGET_SET),
            "layers": "last",
            "pool": "token",
        },
    }
    values.update(changes)
    return values


@pytest.fixture(scope="session")
def tiny_values() -> Callable[..., dict[str, Any]]:
    """``tiny_values(**changes)``: the tiny sweep as a parsed sweep file (see `tiny_spec_values`)."""
    return tiny_spec_values


@pytest.fixture(scope="session")
def tiny_spec() -> Callable[..., SweepSpec]:
    """``tiny_spec(**changes)``: the tiny sweep (see `tiny_spec_values`) as a `SweepSpec`."""
    return lambda **changes: spec_from_dict(tiny_spec_values(**changes))


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, tiny_spec) -> Path:
    """The folder of the tiny sweep, every run trained and measured (no report written): mae-s0,
    mug_0.1-s0, mae-s1, mug_0.1-s1, mug_0.1-noise1-s0, mug_0.1-noise1-s1. Tests must not change it."""
    root = tmp_path_factory.mktemp("tiny_sweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_sweep(tiny_spec(), root, progress=False, report=False) is None
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture
def stub_report(monkeypatch) -> list[Path]:
    """Stands in for `infomug.ablation.report` (its own tests check it): the sweep folders
    `write_sweep_report` was called with, in order; it returns ``SWEEP/ablation.md``."""
    calls: list[Path] = []

    def write_sweep_report(root: str | Path) -> Path:
        calls.append(Path(root))
        return Path(root) / "ablation.md"

    module = types.ModuleType("infomug.ablation.report")
    module.write_sweep_report = write_sweep_report
    monkeypatch.setitem(sys.modules, "infomug.ablation.report", module)
    return calls
