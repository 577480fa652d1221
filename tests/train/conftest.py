import pytest

from infomug.train.tiny import TINY_MODEL_OVERRIDES

# A model and world small enough for a training step in tens of milliseconds on one CPU thread: 16x16
# images in 16 patches, width 64, a 512-image world.
TINY_RUN = (
    *TINY_MODEL_OVERRIDES,
    "model.embed_dim=64",
    "model.projection_dim=32",
    "data.world.size=512",
    "data.world.eval_size=64",
    "tokenizer.train_captions=500",
    "train.batch_size=16",
    "train.log_every=1",
    "optim.warmup_steps=1",
)


@pytest.fixture(scope="session")
def tiny_run() -> tuple[str, ...]:
    """Dotted overrides of a tiny run (`TINY_RUN`); tests add the objective and the loop's settings."""
    return TINY_RUN
