"""The headline is measured on equal terms: an invertible linear map of the features changes no number.

A random ViT's output tokens go through a fixed invertible map (identity, a per-dimension rescaling over
four orders of magnitude, an orthogonal rotation). Information is invariant under such maps, and so must
be every usable-information number of `measure` (the decoders read a canonical basis) and the noisy
channel diagnostic (measured on whitened features). The old noisy channel, on raw features with sigma
relative to their RMS scale, is not: the last test documents how far it moves.
"""

import numpy as np
import pytest
import torch
from torch import nn

from infomug.measure import get_budget, measure
from infomug.measure.information import input_information
from infomug.models.encoder import MaskedViTEncoder

WIDTH = 16
DATA = ("image_size=16", "world.image_size=16", "world.eval_size=400")
BUDGET = dict(
    image_from_pooled=True,
    images=400,
    batch_size=100,
    probe_max_iter=50,
    channel_samples=300,
    entropy_samples=300,
    caption_steps=5,
    caption_batch=16,
    decoder_max_epochs=8,
)


class LinearlyMapped(nn.Module):
    """A seeded random ViT whose output tokens ``[B, 1 + L, WIDTH]`` go through the fixed map ``matrix``."""

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.vit = MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=WIDTH, depth=1, num_heads=2)
        self.mapped = nn.Linear(WIDTH, WIDTH, bias=False)
        with torch.no_grad():
            self.mapped.weight.copy_(matrix)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.mapped(self.vit.forward_features(images))


def _maps() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(1)
    scales = np.exp(rng.uniform(np.log(1e-2), np.log(1e2), WIDTH))
    rotation, _ = np.linalg.qr(rng.standard_normal((WIDTH, WIDTH)))
    return {
        "identity": torch.eye(WIDTH),
        "rescaled": torch.diag(torch.tensor(scales, dtype=torch.float32)),
        "rotated": torch.tensor(rotation, dtype=torch.float32),
    }


@pytest.fixture(scope="module")
def reports():
    budget = get_budget("quick", **BUDGET)
    out = {}
    for name, matrix in _maps().items():
        (model,) = measure(
            LinearlyMapped(matrix),
            "world",
            layers=["mapped"],
            budget=budget,
            data_overrides=DATA,
            anchors=False,
            progress=False,
        ).models
        out[name] = model.layers[0]
    return out


def _headline(layer):
    information = layer.information
    numbers = {key: information[key] for key in ("image", "image_pooled", "caption", "factors_mean")}
    numbers.update({f"factor {label}": e for label, e in information["factors"].items()})
    return numbers


@pytest.mark.parametrize("mapped", ["rescaled", "rotated"])
def test_every_headline_number_is_unchanged_by_an_invertible_linear_map(reports, mapped):
    reference, other = _headline(reports["identity"]), _headline(reports[mapped])
    assert set(reference) == set(other) and len(reference) >= 8
    for key, estimate in reference.items():
        # Within one standard error of the reference: the canonical basis makes the decoders' inputs the
        # same up to float error, so only float noise in training remains (far below the test-split error).
        assert abs(other[key].value - estimate.value) < estimate.stderr, (key, estimate, other[key])


@pytest.mark.parametrize("mapped", ["rescaled", "rotated"])
def test_the_whitened_noisy_channel_is_unchanged_too(reports, mapped):
    for reference, other in zip(
        reports["identity"].input_information, reports[mapped].input_information, strict=True
    ):
        assert other.value == pytest.approx(reference.value, abs=max(reference.stderr, 1e-3))


def test_the_old_noisy_channel_moves_with_a_rescaling():
    # The documented flaw that demoted it: the same features, rescaled per dimension, give another value.
    rng = np.random.default_rng(0)
    features = rng.standard_normal((600, 8)) @ rng.standard_normal((8, 8))
    scaled = features * np.exp(rng.uniform(np.log(1e-2), np.log(1e2), 8))
    options = dict(relative_sigmas=(1.0,), max_samples=600, uncertainty=True, seed=0, whiten=False)
    (before,) = input_information(features, **options)
    (after,) = input_information(scaled, **options)
    assert abs(after.value - before.value) > 5 * max(before.stderr, after.stderr)
