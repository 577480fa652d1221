"""ModelConfig: dict/JSON round trip, unknown keys and wrong types rejected, invalid combinations named."""

import json

import pytest

from infomug.models import ModelConfig


def test_round_trip_through_json():
    config = ModelConfig(objective="clip", embed_dim=64, num_heads=4, caption_loss_weight=0.5)
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in config.to_dict().values())
    started = ModelConfig(init_from="runs/mae")
    assert ModelConfig.from_dict(json.loads(json.dumps(started.to_dict()))) == started


def test_partial_dicts_take_defaults_and_ints_become_floats():
    config = ModelConfig.from_dict({"mask_ratio": 0.5, "temperature": 1})
    assert config.mask_ratio == 0.5 and config.temperature == 1.0 and isinstance(config.temperature, float)
    assert config.embed_dim == ModelConfig().embed_dim


@pytest.mark.parametrize(
    "values, message",
    [
        ({"embed_dims": 64}, "unknown ModelConfig keys"),
        ({"depth": 2.0}, "depth must be int"),
        ({"depth": True}, "depth must be int"),
        ({"norm_pix_loss": 1}, "norm_pix_loss must be bool"),
        ({"mask_ratio": "0.75"}, "mask_ratio must be float"),
        ({"objective": "byol"}, "objective must be one of"),
        ({"pool": "max"}, "pool"),
        ({"img_size": 30}, "does not divide"),
        ({"embed_dim": 100, "num_heads": 3}, "embed_dim"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"mask_ratio": 0.0}, "removes a patch"),
        ({"caption_loss_weight": -0.1}, "non-negative"),
        ({"temperature": 0.0}, "positive"),
        ({"init_from": 3}, "init_from must be str or null"),
        ({"init_from": " "}, "init_from must be a path"),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(values)


def test_contrastive_objectives_may_leave_images_unmasked():
    assert ModelConfig(objective="clip", mask_ratio=0.0).mask_ratio == 0.0


def test_replace_validates():
    config = ModelConfig()
    assert config.replace(depth=2).depth == 2
    with pytest.raises(ValueError, match="unknown"):
        config.replace(dpeth=2)
