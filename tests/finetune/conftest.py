"""Tiny encoders and tasks for the fine-tuning tests: 16x16 images, width 32, 2 blocks."""

import numpy as np
import pytest
import torch

from infomug.finetune.tasks import Task
from infomug.measure.sources import from_module
from infomug.models.encoder import MaskedViTEncoder


def tiny_encoder(seed: int = 0) -> MaskedViTEncoder:
    torch.manual_seed(seed)
    return MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)


def square_task(n_train: int = 240, n_test: int = 80, seed: int = 0) -> Task:
    """A bright square in one of 4 quadrants (label ``quadrant``) of one of 3 tints (``tint``) on noise.

    Easy for any encoder that keeps where and what colour, so a fine-tune that works scores near 100%.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    quadrant = rng.integers(0, 4, n)
    tint = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, 3, 16, 16)).astype(np.uint8)
    for i in range(n):
        top, left = 8 * (quadrant[i] // 2), 8 * (quadrant[i] % 2)
        images[i, :, top + 1 : top + 7, left + 1 : left + 7] = 90
        images[i, tint[i], top + 1 : top + 7, left + 1 : left + 7] = 250
    images = torch.from_numpy(images)
    labels = {"quadrant": quadrant.astype(np.int64), "tint": tint.astype(np.int64)}
    return Task(
        name="squares",
        description="a tinted square in a quadrant",
        train_images=images[:n_train],
        train_labels={k: v[:n_train] for k, v in labels.items()},
        test_images=images[n_train:],
        test_labels={k: v[n_train:] for k, v in labels.items()},
        classes={"quadrant": ("tl", "tr", "bl", "br"), "tint": ("r", "g", "b")},
        domain="test",
    )


@pytest.fixture
def task() -> Task:
    return square_task()


@pytest.fixture
def model():
    return from_module(tiny_encoder(), name="tiny")


@pytest.fixture(scope="session")
def tiny_mae_run(tmp_path_factory):
    """The run folder of a 4-step tiny MAE run on 16-px world images."""
    from infomug.train import train
    from infomug.train.config import load_config
    from infomug.train.tiny import TINY_MODEL_OVERRIDES

    run_dir = tmp_path_factory.mktemp("tiny_mae_run")
    overrides = [
        "model.preset=mae_vit_tiny_patch4_32",
        *TINY_MODEL_OVERRIDES,
        "data.world.size=256",
        "data.world.eval_size=64",
        "train.batch_size=16",
        "train.steps=4",
        "train.eval_every=0",
        "train.sample_every=0",
        "train.checkpoint_every=4",
        "optim.warmup_steps=1",
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(None, overrides), run_dir, progress=False)
    finally:
        torch.set_num_threads(threads)
    return run_dir
