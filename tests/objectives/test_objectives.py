"""Every objective: output keys and shapes, no NaN, a gradient for every parameter, loss falls on a batch."""

import pytest
import torch

from infomug.models import MaskedViTEncoder
from infomug.objectives import OBJECTIVES, build_objective, create_model


def make_batch(objective, batch_size=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image_shape = (batch_size, 2, 3, 16, 16) if objective == "simclr" else (batch_size, 3, 16, 16)
    lengths = torch.randint(2, 17, (batch_size,), generator=generator)
    return {
        "image": torch.randn(image_shape, generator=generator),
        "tokens": torch.randint(0, 300, (batch_size, 16), generator=generator),
        "lengths": lengths,
        "labels": {"shape": torch.zeros(batch_size, dtype=torch.long)},
        "captions": ["unused"] * batch_size,
    }


EXPECTED_KEYS = {
    "mae": {"loss", "loss_pixel", "pred", "mask"},
    "mug": {"loss", "loss_pixel", "loss_caption", "pred", "mask"},
    "clip": {"loss", "loss_contrastive", "logit_scale"},
    "simclr": {"loss", "loss_contrastive"},
}


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_outputs_finite_and_every_parameter_gets_a_gradient(tiny_config, name):
    torch.manual_seed(0)
    objective = build_objective(tiny_config.replace(objective=name))
    assert isinstance(objective.encoder, MaskedViTEncoder)
    out = objective(make_batch(name), generator=torch.Generator().manual_seed(0))
    assert set(out) == EXPECTED_KEYS[name]
    assert out["loss"].dim() == 0 and all(torch.isfinite(v).all() for v in out.values())
    if "pred" in out:
        assert out["pred"].shape == (6, 16, 48) and out["mask"].shape == (6, 16)
        assert torch.equal(out["mask"].sum(1), torch.full((6,), 12.0))
    out["loss"].backward()
    frozen = {n for n, p in objective.named_parameters() if not p.requires_grad}
    assert frozen == {"encoder.vit.pos_embed"}
    for parameter_name, parameter in objective.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, parameter_name
            assert torch.isfinite(parameter.grad).all(), parameter_name
            assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_config, name):
    torch.manual_seed(0)
    objective = build_objective(tiny_config.replace(objective=name))
    batch = make_batch(name)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=2e-3)

    def loss():
        return objective(batch, generator=torch.Generator().manual_seed(0))["loss"]

    start = float(loss().detach())
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert float(loss().detach()) < start


def test_mug_loss_is_the_weighted_sum(tiny_config):
    objective = create_model(tiny_config, pixel_loss_weight=0.5, caption_loss_weight=2.0)
    out = objective(make_batch("mug"), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["loss"], 0.5 * out["loss_pixel"] + 2.0 * out["loss_caption"])


def test_clip_logit_scale_starts_at_one_over_the_temperature_and_is_clamped(tiny_config):
    objective = create_model(tiny_config, objective="clip")
    out = objective(make_batch("clip"))
    assert float(out["logit_scale"]) == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        objective.logit_scale.fill_(10.0)
    assert float(objective(make_batch("clip"))["logit_scale"]) == pytest.approx(100.0, rel=1e-5)


def test_missing_or_malformed_batches_are_named(tiny_config):
    with pytest.raises(ValueError, match="needs tokenised captions"):
        create_model(tiny_config)({"image": torch.randn(2, 3, 16, 16)})
    with pytest.raises(ValueError, match="2-view"):
        create_model(tiny_config, objective="simclr")({"image": torch.randn(2, 3, 16, 16)})
    with pytest.raises(ValueError, match="no 'image'"):
        create_model(tiny_config, objective="mae")({"tokens": torch.zeros(2, 3)})
