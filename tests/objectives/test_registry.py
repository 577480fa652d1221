"""Registry: names map to classes; create_model takes presets, configs and dicts."""

import pytest

from infomug.models import OBJECTIVE_NAMES
from infomug.objectives import OBJECTIVES, CLIPObjective, MUGObjective, build_objective, create_model


def test_registry_covers_the_config_names():
    assert tuple(OBJECTIVES) == OBJECTIVE_NAMES


def test_create_model_from_each_kind_of_input(tiny_config):
    assert isinstance(create_model(tiny_config), MUGObjective)
    assert isinstance(build_objective({**tiny_config.to_dict(), "objective": "clip"}), CLIPObjective)
    model = create_model("mae_vit_tiny_patch4_32", depth=1, decoder_depth=1)
    assert model.config.depth == 1 and len(model.encoder.vit.blocks) == 1
    with pytest.raises(ValueError, match="unknown model preset"):
        create_model("mug_vit_giant")
