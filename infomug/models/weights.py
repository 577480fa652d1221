"""Weights files read safely and loaded strictly, with errors that name the keys that do not fit.

A ``.safetensors`` file runs no code when read; ``.pt`` / ``.pth`` / ``.bin`` files are read with
``torch.load(weights_only=True)``, which refuses pickles that would execute code (timm's rule too).
"""

from __future__ import annotations

from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# Checkpoints that nest the state dict under one of these keys (MAE's "model", Lightning's "state_dict").
_WRAPPERS = ("model", "state_dict", "module")
_FEW = 5  # keys named in an error before "and N more"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a weights file, on the CPU.

    Args:
        path: a ``.safetensors`` file, or a ``.pt`` / ``.pth`` / ``.bin`` state dict (a dict nesting it
            under ``"model"``, ``"state_dict"`` or ``"module"`` is unwrapped).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: another suffix; a truncated or corrupt file; a pickle ``weights_only`` refuses; a file
            that holds something other than a dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(path, device="cpu")
        except SafetensorError as error:
            raise ValueError(f"{path} is truncated or corrupt: {error}") from error
    if suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"weights must be .safetensors, .pt, .pth or .bin, got {path.name}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for refused or broken pickles
        raise ValueError(f"cannot read {path} as a plain state dict (weights_only=True): {error}") from error
    for wrapper in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


def load_state_strict(
    model: nn.Module, state: dict[str, torch.Tensor], source: str | Path, hint: str = ""
) -> None:
    """``model.load_state_dict(state, strict=True)``, every key and shape checked first, in one error.

    On error ``model`` is left untouched.

    Args:
        model: the module to load into.
        state: its state dict, as read from ``source``.
        source: what ``state`` was read from, for the error.
        hint: a sentence appended to the error (what to check).

    Raises:
        ValueError: naming a few of the mismatched shapes, the keys missing from ``state`` and the keys
            ``model`` does not have.
    """
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = [
        f"{key} (file {list(state[key].shape)}, model {list(own[key].shape)})"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    problems = [
        f"{label}: {_few(keys)}"
        for label, keys in (
            ("shape mismatch", mismatched),
            ("missing from the file", missing),
            ("not in the model", unexpected),
        )
        if keys
    ]
    if problems:
        message = f"{source} does not fit {type(model).__name__}: {'; '.join(problems)}"
        raise ValueError(f"{message}. {hint}" if hint else message)
    model.load_state_dict(state, strict=True)


def _few(items: list[str]) -> str:
    shown = ", ".join(items[:_FEW])
    return shown if len(items) <= _FEW else f"{shown} and {len(items) - _FEW} more"
