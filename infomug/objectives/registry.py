"""Objective registry: `build_objective(config)` and `create_model(name_or_config, **overrides)`."""

from __future__ import annotations

from typing import Any

from torch import nn

from infomug.models import OBJECTIVE_NAMES, ModelConfig, get_config

from .clip import CLIPObjective
from .mae import MAEObjective
from .mug import MUGObjective
from .simclr import SimCLRObjective

OBJECTIVES: dict[str, type[nn.Module]] = {
    "mae": MAEObjective,
    "mug": MUGObjective,
    "clip": CLIPObjective,
    "simclr": SimCLRObjective,
}
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES, "registry and ModelConfig disagree on objective names"


def build_objective(config: ModelConfig | dict[str, Any]) -> nn.Module:
    """The objective named by ``config.objective``, its parts built from ``config``.

    Every objective has ``.encoder`` (a `MaskedViTEncoder`) and ``.config``, and
    ``forward(batch, generator=None) -> dict[str, Tensor]`` with at least ``"loss"``.

    Raises:
        ValueError: for an invalid config dict.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return OBJECTIVES[config.objective](config)


def create_model(name_or_config: str | ModelConfig | dict[str, Any], **overrides: Any) -> nn.Module:
    """Build an objective from a preset name (e.g. ``"mug_vit_tiny_patch4_32"``), a config or a dict.

    Example:
        ``create_model("mug_vit_tiny_patch4_32", caption_loss_weight=0.0)``

    Raises:
        ValueError: for an unknown preset, unknown override keys or invalid values.
    """
    return build_objective(get_config(name_or_config, **overrides))
