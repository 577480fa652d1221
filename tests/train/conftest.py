import pytest
import torch

# A model and world small enough for a training step in tens of milliseconds on one CPU thread: 16x16
# images in 16 patches, width 64, a 512-image world.
TINY_RUN = (
    "model.img_size=16",
    "data.image_size=16",
    "data.world.image_size=16",
    "model.depth=2",
    "model.embed_dim=64",
    "model.num_heads=2",
    "model.decoder_width=32",
    "model.decoder_depth=1",
    "model.caption_width=32",
    "model.text_width=32",
    "model.text_depth=1",
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


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny matrices gain nothing from a second thread, and on a busy machine waiting for it costs ~10x.
    # The torchrun processes of the DDP tests run one thread each too (OMP_NUM_THREADS=1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
