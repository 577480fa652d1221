"""Export the encoder as a plain timm `VisionTransformer`: safetensors weights beside timm's ``config.json``.

An export folder is timm's own local layout (``model.safetensors`` + ``config.json``), so timm alone
rebuilds the model, its weights and its preprocessing, with nothing downloaded::

    model = timm.create_model("local-dir:export", pretrained=True)  # weights loaded strictly
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))

or by hand, with ``config = json.load(open("export/config.json"))``::

    model = timm.create_model(
        config["architecture"], pretrained=False, pretrained_cfg_overlay=config["pretrained_cfg"],
        **config["model_args"],
    )
    model.load_state_dict(safetensors.torch.load_file("export/model.safetensors"))  # strict

``config.json`` follows timm's hub convention (`timm.models._hub.save_config_for_hf`): ``architecture``,
``model_args`` (``img_size``, ``patch_size``, ``embed_dim``, ..., ``num_classes=0``) and ``pretrained_cfg``
with the input size, the normalisation the model was trained with, and infomug's eval preprocessing
(bicubic resize of the short side, centre crop of the whole image: ``crop_pct=1``). An ``infomug`` entry,
which timm ignores, names the weights file and where they came from. The fixed sine-cosine positions
travel as ``pos_embed``, an ordinary timm tensor; the safetensors metadata repeats the architecture and
its keyword arguments for readers of the file alone (`read_timm_kwargs`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from infomug import __version__
from infomug.files import write_atomically

from .encoder import MaskedViTEncoder
from .weights import load_state_strict, read_state_dict

logger = logging.getLogger(__name__)

TIMM_ARCHITECTURE = "vit_base_patch16_224"
FORMAT = "infomug-timm-vit"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# The weights file timm's local-dir loader looks for first, after the one an infomug config names.
_TIMM_WEIGHTS_FILES = (WEIGHTS_FILE, "pytorch_model.bin", "pytorch_model.pth", "model.pth")


def _encoder_of(model: nn.Module) -> MaskedViTEncoder:
    encoder = model if isinstance(model, MaskedViTEncoder) else getattr(model, "encoder", None)
    if not isinstance(encoder, MaskedViTEncoder):
        raise ValueError(
            f"expected a MaskedViTEncoder or an objective with .encoder, got {type(model).__name__}"
        )
    return encoder


def encoder_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The timm state dict of ``model``'s encoder (``model`` is an encoder or an objective), on CPU.

    Raises:
        ValueError: if ``model`` has no `MaskedViTEncoder`.
    """
    state = _encoder_of(model).vit.state_dict()
    return {key: value.detach().cpu().contiguous().clone() for key, value in state.items()}


def timm_config(
    model: nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """timm's hub ``config.json`` for ``model``'s encoder, trained on images normalised by ``mean``/``std``.

    Args:
        model: a `MaskedViTEncoder` or an objective with one.
        mean, std: the per-channel statistics the training images (in [0, 1]) were normalised with.
        extra: strings for the ``infomug`` entry (the weights file name, the source checkpoint...).

    Raises:
        ValueError: if ``model`` has no `MaskedViTEncoder`, or ``mean``/``std`` do not have one value
            per input channel.
    """
    encoder = _encoder_of(model)
    kwargs = dict(encoder.timm_kwargs)
    channels, size = kwargs["in_chans"], kwargs["img_size"]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need {channels} values (in_chans), got {len(mean)} and {len(std)}")
    return {
        "architecture": TIMM_ARCHITECTURE,
        "num_classes": 0,
        "num_features": encoder.embed_dim,
        "global_pool": "token",
        "model_args": kwargs,
        "pretrained_cfg": {
            "input_size": [channels, size, size],
            "fixed_input_size": True,
            # infomug's eval transform: bicubic resize of the short side to img_size, centre crop of it.
            "interpolation": "bicubic",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": [float(value) for value in mean],
            "std": [float(value) for value in std],
            "num_classes": 0,
            "pool_size": None,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
            "custom_load": False,
        },
        "infomug": {"format": FORMAT, "infomug_version": __version__, **(extra or {})},
    }


def save_timm_encoder(
    model: nn.Module,
    path: str | Path,
    extra_metadata: dict[str, str] | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Path:
    """Write the encoder as safetensors weights with timm's ``config.json`` beside them.

    Args:
        model: a `MaskedViTEncoder` or an objective with one.
        path: a folder, written in timm's local layout (``model.safetensors`` + ``config.json``), or a
            ``.safetensors`` file (``config.json`` is written beside it: one export per folder).
        extra_metadata: strings stored in the safetensors metadata and the config's ``infomug`` entry.
        mean, std: the statistics the training images were normalised with (`infomug export` takes them
            from the run's data config, `infomug.data.data_normalisation`); ``None`` = ImageNet's, what
            infomug uses for users' photographs (a warning says so).

    Returns:
        The weights file.

    Raises:
        ValueError: if ``model`` has no `MaskedViTEncoder`, ``extra_metadata`` overwrites a reserved key,
            or the folder's ``config.json`` describes another weights file.
    """
    encoder = _encoder_of(model)
    if mean is None or std is None:
        logger.warning("no mean/std given: %s records ImageNet's normalisation", CONFIG_FILE)
        mean, std = mean or IMAGENET_DEFAULT_MEAN, std or IMAGENET_DEFAULT_STD
    path = Path(path)
    weights = path if path.suffix == ".safetensors" else path / WEIGHTS_FILE
    metadata = {
        "format": FORMAT,
        "timm_architecture": TIMM_ARCHITECTURE,
        "timm_kwargs": json.dumps(encoder.timm_kwargs),
    }
    clash = set(metadata) & set(extra_metadata or {})
    if clash:
        raise ValueError(f"extra_metadata may not set reserved keys {sorted(clash)}")
    metadata.update(extra_metadata or {})
    config = timm_config(encoder, mean, std, {"weights": weights.name, **(extra_metadata or {})})
    config_file = weights.parent / CONFIG_FILE
    _check_free(config_file, weights.name)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file(encoder_state_dict(encoder), str(weights), metadata=metadata)
    write_atomically(config_file, json.dumps(config, indent=2) + "\n")
    return weights


def find_timm_config(path: str | Path) -> tuple[dict[str, Any], Path] | None:
    """timm's ``config.json`` of an export and the weights file it describes.

    Args:
        path: an export folder, its ``config.json``, or a weights file with a ``config.json`` beside it.

    Returns:
        ``(config, weights file)``; None for a weights file without a timm ``config.json`` beside it that
        describes it (a config an infomug export wrote names its own weights file).

    Raises:
        FileNotFoundError: ``path`` does not exist; a folder without ``config.json`` or weights.
        ValueError: a folder's ``config.json`` is not a timm config (JSON with an ``architecture``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such export or weights file: {path}")
    if path.is_dir() or path.name == CONFIG_FILE:
        folder = path if path.is_dir() else path.parent
        if not (folder / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}: it is not a timm export folder")
        config = _read_config(folder / CONFIG_FILE)
        named = config.get("infomug", {}).get("weights")
        candidates = (named,) if named else _TIMM_WEIGHTS_FILES
        weights = next((folder / name for name in candidates if (folder / name).is_file()), None)
        if weights is None:
            raise FileNotFoundError(
                f"{folder} has a {CONFIG_FILE} but no weights file ({', '.join(candidates)})"
            )
        return config, weights
    config_file = path.parent / CONFIG_FILE
    if not config_file.is_file():
        return None
    try:
        config = _read_config(config_file)
    except ValueError as error:
        logger.warning("ignoring %s beside %s: %s", config_file, path.name, error)
        return None
    named = config.get("infomug", {}).get("weights")
    return (config, path) if named in (None, path.name) else None


def timm_model_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments that rebuild a timm ``config.json``'s model with
    ``timm.create_model(config["architecture"], pretrained=False, **kwargs)``: its ``model_args`` and its
    ``pretrained_cfg`` (so that `timm.data.resolve_data_config` gives the export's preprocessing)."""
    kwargs = dict(config.get("model_args") or {})
    if config.get("pretrained_cfg"):
        kwargs["pretrained_cfg"] = dict(config["pretrained_cfg"])
    return kwargs


def read_timm_kwargs(path: str | Path) -> dict[str, Any]:
    """The ``timm.create_model`` keyword arguments stored in an exported file's safetensors metadata.

    Raises:
        ValueError: if the file was not written by `save_timm_encoder`.
    """
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT or "timm_kwargs" not in metadata:
        raise ValueError(f"{path} is not an infomug timm encoder export (metadata: {sorted(metadata)})")
    return json.loads(metadata["timm_kwargs"])


def load_timm_encoder(path: str | Path) -> nn.Module:
    """Rebuild an export as a timm model (no infomug classes involved), loaded strictly.

    Args:
        path: an export folder, its ``config.json``, or the weights file (its ``config.json`` is read when
            it has one beside it, else the architecture in its metadata).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: if the weights were not written by `save_timm_encoder` and no ``config.json`` describes
            them, or they do not fit the architecture it names.
    """
    found = find_timm_config(path)
    if found is not None:
        config, weights = found
        model = timm.create_model(config["architecture"], pretrained=False, **timm_model_kwargs(config))
    else:
        weights = Path(path)
        model = timm.create_model(TIMM_ARCHITECTURE, pretrained=False, **read_timm_kwargs(weights))
    load_state_strict(model, read_state_dict(weights), weights)
    return model


def _read_config(file: Path) -> dict[str, Any]:
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from error
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise ValueError(f"{file} is not a timm config (no 'architecture')")
    for key in ("model_args", "pretrained_cfg", "infomug"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise ValueError(f"{file}: {key!r} must be a JSON object")
    return config


def _check_free(config_file: Path, weights_name: str) -> None:
    """Refuse to overwrite a ``config.json`` that describes other weights than ``weights_name``."""
    if not config_file.is_file():
        return
    try:
        described = _read_config(config_file).get("infomug", {}).get("weights")
    except ValueError:
        described = None
    if described != weights_name:
        raise ValueError(
            f"{config_file} already describes {described or 'other weights'}: export {weights_name} into a"
            " folder of its own"
        )
