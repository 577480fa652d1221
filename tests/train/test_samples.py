"""Sample PNGs: one column per image (original, masked, reconstruction), written without touching the
caller's matplotlib backend, and without moving the objective out of training mode."""

import warnings

import matplotlib
import pytest
import torch

from infomug.data import build_tokenizer
from infomug.objectives import build_objective
from infomug.train.samples import save_training_samples


@pytest.fixture
def pdf_backend():
    # Stands for a notebook's inline backend: whatever the caller chose must survive a sample PNG.
    before = matplotlib.get_backend()
    matplotlib.use("pdf")
    yield
    matplotlib.use(before)


def test_a_sample_png_leaves_the_backend_and_the_training_mode_alone(tiny_config, tmp_path, pdf_backend):
    torch.manual_seed(0)
    model = build_objective(tiny_config.replace(objective="mug", vocab_size=260)).train()
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        # The untrained decoder generates control characters, which no font draws: they are replaced.
        warnings.simplefilter("error")
        path = save_training_samples(
            model,
            images,
            tmp_path / "samples" / "step_1.png",
            mean=(0.5, 0.5, 0.5),
            std=(0.2, 0.2, 0.2),
            captions=["a red square", "a blue disc", "a green star"],
            tokenizer=build_tokenizer("byte"),
        )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == "pdf"
    assert model.training
