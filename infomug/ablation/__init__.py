"""The ablation sweep: objectives x lambda_L x seeds (and caption noise), trained, measured, aggregated.

    from infomug.ablation import load_spec, run_sweep
    run_sweep(load_spec("experiments/configs/ablation_cpu.yaml"), "runs/ablation_cpu")

The pieces: `spec` (the sweep file), `plan` (runs and the cells of the tables that read them), `runner`
(train, measure, resume, shards), `command` (``infomug ablate``); then the report: `collect` (each run's
metrics), `notes` (settings and caveats), `stats` (t-intervals, Spearman), `report` (ablation.json),
`sweep_markdown` and `plots`. Imports are lazy, so that the ``infomug`` command line does not load the
training stack for its other subcommands.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CaptionNoise": "spec",
    "MeasureSettings": "spec",
    "SweepSpec": "spec",
    "load_spec": "spec",
    "spec_from_dict": "spec",
    "Cell": "plan",
    "PlannedRun": "plan",
    "SweepPlan": "plan",
    "plan_sweep": "plan",
    "SweepLayout": "runner",
    "load_sweep_folder": "runner",
    "prepare_sweep_folder": "runner",
    "read_status": "runner",
    "run_sweep": "runner",
    "select_runs": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'infomug.ablation' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
