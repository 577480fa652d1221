"""Measurement: how much each layer of an encoder knows about its input, labels and captions, and how
well it transfers.

    from infomug.measure import measure
    report = measure("runs/mug", out="runs/mug/measure")   # measure.json, measure.md, plots

The pieces: `sources` (load checkpoints, timm models, any module), `taps` (which layers, how pooled;
forward hooks for any `nn.Module`), `extract` (features on disk, keyed by model + data + layer),
`layer` (every per-layer quantity on feature arrays), `decoders` (bounds from a model's own decoders),
`results` (the report's records), `markdown` / `plots` / `report_files` (what is written).
Imports are lazy, so that ``infomug mi`` does not load the model stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "measure": "api",
    "resolve_data": "api",
    "Budget": "budget",
    "BUDGETS": "budget",
    "get_budget": "budget",
    "Report": "results",
    "ModelResult": "results",
    "LayerResult": "results",
    "Score": "results",
    "read_report": "report_files",
    "write_report": "report_files",
    "LoadedModel": "sources",
    "load_checkpoint": "sources",
    "load_timm": "sources",
    "load_model": "sources",
    "from_module": "sources",
    "random_init_like": "sources",
    "HookTap": "taps",
    "IntermediatesTap": "taps",
    "Features": "extract",
    "extract_features": "extract",
    "measure_layer": "layer",
    "oracle_features": "anchors",
    "independent_features": "anchors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'infomug.measure' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
