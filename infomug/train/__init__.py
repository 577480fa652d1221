"""Training: run configs, the loop, checkpoints and ``torchrun`` support.

    from infomug.train import load_config, train
    result = train(load_config("experiments/configs/mug_cpu.yaml", ["train.steps=200"]), "runs/demo")

A run folder holds ``config.yaml``, ``metrics.jsonl``, ``loss.png``, ``samples/step_*.png`` and
``checkpoints/step_*/`` (``model.safetensors`` with the config in its metadata, ``train_state.pt``,
``checksums.json``).
"""

from .checkpoint import (
    CheckpointInfo,
    load_model_weights,
    load_train_state,
    read_checkpoint_info,
    save_checkpoint,
)
from .checkpoint_folders import (
    CheckpointError,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    resolve_checkpoint,
)
from .config import (
    OptimConfig,
    RunConfig,
    TokenizerConfig,
    TrainConfig,
    apply_overrides,
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)
from .metrics import read_metrics
from .optim import build_optimizer, learning_rate, parameter_groups
from .resume import config_from_files
from .trainer import RunResult, TrainingDiverged, TrainingInterrupted, train, train_from_files

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "OptimConfig",
    "RunConfig",
    "RunResult",
    "TokenizerConfig",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "apply_overrides",
    "best_checkpoint",
    "build_optimizer",
    "config_diff",
    "config_from_dict",
    "config_from_files",
    "config_to_dict",
    "latest_checkpoint",
    "learning_rate",
    "list_checkpoints",
    "load_config",
    "load_model_weights",
    "load_train_state",
    "parameter_groups",
    "parse_override",
    "read_checkpoint_info",
    "read_metrics",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_config",
    "train",
    "train_from_files",
]
