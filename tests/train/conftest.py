import pytest

from infomug.train.tiny import TINY_RUN_OVERRIDES

# A model and world small enough for a training step in tens of milliseconds on one CPU thread: 16x16
# images in 16 patches, width 64, a 512-image world.
TINY_RUN = TINY_RUN_OVERRIDES


@pytest.fixture(scope="session")
def tiny_run() -> tuple[str, ...]:
    """Dotted overrides of a tiny run (`TINY_RUN`); tests add the objective and the loop's settings."""
    return TINY_RUN
