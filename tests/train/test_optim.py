"""AdamW parameter groups (what gets weight decay) and the warmup + cosine learning-rate schedule."""

import math

import pytest
import torch
from torch import nn

from infomug.objectives import build_objective
from infomug.train import build_optimizer, learning_rate, parameter_groups
from infomug.train.optim import set_learning_rate, set_optimizer_settings

PEAK, MINIMUM = 1e-3, 1e-5


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, PEAK / 10),  # warmup starts above zero: no wasted step
        (4, PEAK * 5 / 10),
        (9, PEAK),  # the last warmup step already reaches the peak
        (10, PEAK),  # the cosine starts at the peak
        (60, (PEAK + MINIMUM) / 2),  # half-way through the 100 decay steps: the cosine's midpoint
        (35, MINIMUM + (PEAK - MINIMUM) * 0.5 * (1 + math.cos(math.pi / 4))),
        (110, MINIMUM),  # the last step ends at the floor
    ],
)
def test_warmup_then_cosine_at_known_steps(step, expected):
    assert learning_rate(step, 111, PEAK, 10, MINIMUM) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_the_schedule_rises_then_falls_monotonically():
    rates = [learning_rate(step, 111, PEAK, 10, MINIMUM) for step in range(111)]
    assert all(a < b for a, b in zip(rates[:9], rates[1:10], strict=True))
    assert all(a > b for a, b in zip(rates[10:-1], rates[11:], strict=True))
    assert min(rates) == pytest.approx(MINIMUM) and max(rates) == pytest.approx(PEAK)


def test_without_warmup_step_zero_is_the_peak():
    assert learning_rate(0, 5, PEAK, 0, MINIMUM) == pytest.approx(PEAK)
    assert learning_rate(4, 5, PEAK, 0, MINIMUM) == pytest.approx(MINIMUM)


def test_a_single_step_after_warmup_trains_at_the_peak_not_the_floor():
    # A one-step run (a smoke test) with the default min_lr of 0 would otherwise not train at all.
    assert learning_rate(0, 1, PEAK, 0, 0.0) == PEAK
    assert learning_rate(3, 4, PEAK, 3, MINIMUM) == PEAK


@pytest.mark.parametrize(
    "step, total, warmup, message",
    [
        (-1, 10, 2, r"step -1 is outside \[0, 10\)"),
        (10, 10, 2, r"step 10 is outside \[0, 10\)"),
        (3, 10, 10, r"warmup_steps must be in \[0, 10\), got 10"),
        (3, 10, -1, r"warmup_steps must be in \[0, 10\), got -1"),
    ],
)
def test_bad_steps_are_refused(step, total, warmup, message):
    with pytest.raises(ValueError, match=message):
        learning_rate(step, total, PEAK, warmup)


def _no_decay_expected(model: nn.Module) -> set[int]:
    """Ids of the parameters MAE/timm exempt from weight decay, found from the module types."""
    expected: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.Embedding)):
            expected.update(id(p) for p in module.parameters(recurse=False))
        for name, parameter in module.named_parameters(recurse=False):
            if name == "bias" or name in (
                "cls_token",
                "mask_token",
                "pos_embed",
                "pos_embedding",
                "logit_scale",
            ):
                expected.add(id(parameter))
    return expected


@pytest.mark.parametrize("objective", ["mug", "clip", "simclr"])
def test_parameter_groups_split_every_trainable_parameter_once(tiny_config, objective):
    model = build_objective(tiny_config.replace(objective=objective))
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    decay_ids = [id(p) for p in decay["params"]]
    no_decay_ids = [id(p) for p in no_decay["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(set(decay_ids)) == len(decay_ids) and len(set(no_decay_ids)) == len(no_decay_ids)
    assert not set(decay_ids) & set(no_decay_ids), "no parameter twice"
    assert set(decay_ids) | set(no_decay_ids) == trainable, "no trainable parameter missing, no frozen one"
    assert set(no_decay_ids) == _no_decay_expected(model) & trainable
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    assert linear_weights <= set(decay_ids)
    assert len(decay["names"]) == len(decay_ids) and len(no_decay["names"]) == len(no_decay_ids)


def test_named_tokens_and_embeddings_are_in_the_no_decay_group(tiny_config):
    names = {
        "mug": [
            "encoder.vit.cls_token",
            "pixel_decoder.mask_token",
            "caption_decoder.token_embedding.weight",
            "caption_decoder.pos_embedding",
            "encoder.vit.norm.weight",
            "encoder.vit.blocks.0.attn.qkv.bias",
        ],
        "clip": ["logit_scale", "text_encoder.token_embedding.weight", "text_encoder.pos_embedding"],
    }
    for objective, expected in names.items():
        model = build_objective(tiny_config.replace(objective=objective))
        decay, no_decay = parameter_groups(model, 0.1)
        assert set(expected) <= set(no_decay["names"]), objective
        assert "encoder.vit.blocks.0.attn.qkv.weight" in decay["names"]
        assert "encoder.vit.patch_embed.proj.weight" in decay["names"]  # a convolution kernel
        frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        assert frozen == ["encoder.vit.pos_embed"]
        assert not set(frozen) & (set(decay["names"]) | set(no_decay["names"]))


def test_build_optimizer_uses_the_groups_and_sets_rates(tiny_config):
    model = build_objective(tiny_config.replace(objective="mae"))
    optimizer = build_optimizer(model, 3e-4, 0.05, betas=(0.8, 0.9), eps=1e-6)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    assert decay["betas"] == (0.8, 0.9) and decay["eps"] == 1e-6 and "names" not in decay
    set_learning_rate(optimizer, 1.5e-4)
    assert [group["lr"] for group in optimizer.param_groups] == [1.5e-4, 1.5e-4]


def test_build_optimizer_refuses_a_model_without_trainable_parameters():
    frozen = nn.Linear(3, 3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(frozen, 1e-3, 0.05)


def test_optimizer_settings_replace_those_a_loaded_state_dict_brought(tiny_config):
    model = build_objective(tiny_config.replace(objective="mae"))
    saved = build_optimizer(model, 1e-3, 0.05, betas=(0.9, 0.95), eps=1e-8).state_dict()
    optimizer = build_optimizer(model, 1e-3, 0.3, betas=(0.8, 0.99), eps=1e-6)
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["weight_decay"] == 0.05, "a state dict brings its run's settings"
    set_optimizer_settings(optimizer, 0.3, (0.8, 0.99), 1e-6)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.3, 0.0]
    assert all(group["betas"] == (0.8, 0.99) and group["eps"] == 1e-6 for group in optimizer.param_groups)
    with pytest.raises(ValueError, match="expected build_optimizer's 2 parameter groups, got 1"):
        set_optimizer_settings(torch.optim.AdamW(nn.Linear(2, 2).parameters()), 0.1, (0.9, 0.95), 1e-8)
