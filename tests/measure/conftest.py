from pathlib import Path

import pytest
import torch

from infomug.train import train
from infomug.train.config import load_config
from infomug.train.tiny import TINY_MODEL_OVERRIDES

# A MUG run small enough to train in a second or two: 16x16 images, 16 patches, width 32, 2 blocks, a
# 512-image world with 256 eval images. Every measure test reads the checkpoint it writes.
TINY_MEASURE_RUN = (
    "model.preset=mug_vit_tiny_patch4_32",
    *TINY_MODEL_OVERRIDES,
    "data.world.size=512",
    "data.world.eval_size=256",
    "tokenizer.train_captions=500",
    "train.batch_size=16",
    "train.steps=4",
    "train.log_every=2",
    "train.eval_every=0",
    "train.sample_every=0",
    "train.checkpoint_every=4",
    "optim.warmup_steps=1",
)


@pytest.fixture(scope="session")
def tiny_measure_overrides() -> tuple[str, ...]:
    """Dotted overrides of the tiny MUG run; add ``model.objective=mae`` etc. for another objective."""
    return TINY_MEASURE_RUN


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The run folder of a 4-step tiny MUG run (its ``latest`` checkpoint is step 4)."""
    run_dir = tmp_path_factory.mktemp("tiny_mug_run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(None, list(TINY_MEASURE_RUN)), run_dir, progress=False)
    finally:
        torch.set_num_threads(threads)
    return run_dir
