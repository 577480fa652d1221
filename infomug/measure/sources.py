"""What is measured: an infomug checkpoint, a timm model, or any `nn.Module`, as one `LoadedModel`.

    model = load_model("runs/demo")                         # a run folder: its latest checkpoint
    model = load_model("timm:vit_small_patch16_224:w.pth")  # a timm architecture + local weights
    model = load_model("timm:runs/demo/export")             # an export: architecture from its config.json
    anchor = random_init_like(model)                        # same architecture, untrained

Nothing is ever downloaded: timm models are built with ``pretrained=False`` and weights come only from
local files. Every model carries a ``fingerprint`` of its weights, the key of the feature cache.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from infomug.data import DataConfig, Tokenizer, build_tokenizer
from infomug.models.export import CONFIG_FILE, find_timm_config, timm_model_kwargs
from infomug.models.weights import load_state_strict, read_state_dict
from infomug.objectives import build_objective
from infomug.train.checkpoint_folders import CHECKPOINTS_DIR, MODEL_FILE, CheckpointError
from infomug.train.checkpoint_model import load_checkpoint_model
from infomug.train.checksums import verify_file
from infomug.train.config import config_from_dict
from infomug.train.tokenizer import TOKENIZER_FILE

from .results import RANDOM_INIT_SUFFIX

logger = logging.getLogger(__name__)

TIMM_PREFIX = "timm:"
LOCAL_DIR_PREFIX = "local-dir:"  # timm's own prefix of a model folder (`timm.create_model("local-dir:...")`)
_FEW = 5  # names in a warning before "and N more"
_HASH_CHUNK = 1 << 20


@dataclass
class LoadedModel:
    """A model ready to measure.

    Attributes:
        name: Short name for tables and legends (default: run folder name + ``"@step N"``).
        encoder: The image encoder, in eval mode, on the device it was loaded to.
        objective: The whole objective (MAE/MUG/CLIP/SimCLR) for infomug checkpoints, else None.
        objective_name: ``"mae"``, ``"mug"``, ``"clip"``, ``"simclr"``, or None.
        run_config: The checkpoint's whole run config (``CheckpointInfo.config``), else None.
        tokenizer: The checkpoint's tokenizer (``tokenizer.json`` of the step folder, or the fixed
            clip/byte tokenizer its config names), else None.
        source: The step-folder path, ``"timm:NAME"``, or ``"module"``.
        step: Training step of a checkpoint, else None.
        fingerprint: 16 hex characters of a SHA-256 over the weights: the feature-cache key.
        timm_kwargs: For timm models, the keyword arguments of ``timm.create_model`` (so that
            `random_init_like` can rebuild the architecture), else None.
    """

    name: str
    encoder: nn.Module
    objective: nn.Module | None
    objective_name: str | None
    run_config: dict | None
    tokenizer: Tokenizer | None
    source: str
    step: int | None
    fingerprint: str
    timm_kwargs: dict[str, Any] | None = field(default=None, repr=False)


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", name: str | None = None
) -> LoadedModel:
    """Load an infomug checkpoint: the objective rebuilt from its own config, weights loaded, eval mode.

    Args:
        path: A run folder or ``checkpoints/`` folder (their ``latest`` step), a step folder, or the
            ``model.safetensors`` inside one.
        device: Where the model goes.
        name: Name in tables; default ``"<run folder>@step <N>"``.

    Returns:
        The `LoadedModel`; ``fingerprint`` is the SHA-256 of the ``model.safetensors`` bytes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: (a ValueError) ``path`` holds no checkpoint; the weights file is truncated or
            corrupt, or is not an infomug checkpoint; its config is invalid; the weights do not fit.
    """
    loaded = load_checkpoint_model(path)
    folder, info, run_config, objective = loaded.folder, loaded.info, loaded.config, loaded.model
    objective.to(device).eval()
    if name is None:
        # RUN/checkpoints/step_N -> "RUN@step N"; a step folder elsewhere goes by its own name.
        named = folder.resolve()
        named = named.parent.parent if named.parent.name == CHECKPOINTS_DIR else named
        name = f"{named.name}@step {info.step}"
    return LoadedModel(
        name=name,
        encoder=objective.encoder,
        objective=objective,
        objective_name=run_config.model.objective,
        run_config=info.config,
        tokenizer=_checkpoint_tokenizer(folder, run_config),
        source=str(folder.resolve()),
        step=info.step,
        fingerprint=_file_fingerprint(folder / MODEL_FILE),
    )


def load_timm(
    name: str, weights: str | Path | None = None, device: str | torch.device = "cpu", **kwargs: Any
) -> LoadedModel:
    """Build a timm model (never downloading anything) and optionally load local weights, strictly.

    A timm ``config.json`` beside the weights (an `infomug export`, or a model folder saved by timm)
    gives the model's keyword arguments (``model_args``) and its ``pretrained_cfg``; ``kwargs`` override
    them.

    Args:
        name: A timm architecture, e.g. ``"vit_small_patch16_224"``.
        weights: A ``.safetensors`` file, or a ``.pt`` / ``.pth`` / ``.bin`` state dict read with
            ``torch.load(weights_only=True)`` (a dict nesting it under ``"model"``, ``"state_dict"`` or
            ``"module"`` is unwrapped); or an export folder, or its ``config.json``. None keeps timm's
            random initialisation.
        device: Where the model goes.
        **kwargs: Passed to ``timm.create_model`` (``img_size``, ``num_classes=0``, ...).

    Returns:
        The `LoadedModel` (``source="timm:NAME"``, no objective); the fingerprint hashes the state dict.

    Raises:
        ValueError: ``pretrained=True`` is asked (this would download); timm does not know ``name``, or
            the ``config.json`` names another architecture; an unknown suffix; the weights do not fit the
            model (naming a few keys).
        FileNotFoundError: ``weights`` does not exist.
    """
    if kwargs.pop("pretrained", False):
        raise ValueError("load_timm never downloads weights: pass a local file as weights= instead")
    if not timm.is_model(name):
        raise ValueError(f"timm has no model named {name!r} (see timm.list_models())")
    label = None
    if weights is not None:
        weights = Path(weights)
        export = find_timm_config(weights)
        if export is not None:
            config, weights = export
            if config["architecture"] != name:
                raise ValueError(
                    f"{weights.parent / CONFIG_FILE} describes a {config['architecture']}, not a {name}: use"
                    f" timm:{config['architecture']}:{weights}"
                )
            kwargs = {**timm_model_kwargs(config), **kwargs}
        label = weights.name if export is None else f"{weights.parent.name}/{weights.name}"
    with torch.random.fork_rng(devices=[]) if weights is not None else contextlib.nullcontext():
        model = timm.create_model(name, pretrained=False, **kwargs)
    if weights is not None:
        load_state_strict(
            model,
            read_state_dict(weights),
            weights,
            hint="Check the architecture name and its keyword arguments (img_size, patch_size, num_classes,"
            " ...)",
        )
    model.to(device).eval()
    return LoadedModel(
        name=name if label is None else f"{name} ({label})",
        encoder=model,
        objective=None,
        objective_name=None,
        run_config=None,
        tokenizer=None,
        source=f"{TIMM_PREFIX}{name}",
        step=None,
        fingerprint=module_fingerprint(model, header=f"{TIMM_PREFIX}{name}{_kwargs_text(kwargs)}"),
        timm_kwargs={"model_name": name, **kwargs},
    )


def from_module(module: nn.Module, name: str = "module", device: str | torch.device = "cpu") -> LoadedModel:
    """Wrap any `nn.Module` (measured through forward hooks, see `infomug.measure.taps.HookTap`).

    The module is moved to ``device`` and put in eval mode in place.

    Returns:
        The `LoadedModel` (``source="module"``); the fingerprint hashes the class name and state dict.
    """
    module.to(device).eval()
    return LoadedModel(
        name=name,
        encoder=module,
        objective=None,
        objective_name=None,
        run_config=None,
        tokenizer=None,
        source="module",
        step=None,
        fingerprint=module_fingerprint(module),
    )


def random_init_like(model: LoadedModel, seed: int = 0) -> LoadedModel:
    """The same architecture with fresh weights: the sanity anchor that trained weights must beat.

    Infomug checkpoints are rebuilt from their run config and timm models recreated, both under
    ``torch.manual_seed(seed)`` inside `torch.random.fork_rng`, so the caller's RNG is untouched. Any other
    module is deep-copied and every submodule's ``reset_parameters()`` (then a top-level timm-style
    ``init_weights()``) is called; parameters neither covers are drawn from N(0, 0.02^2), with a warning.

    Returns:
        A new `LoadedModel` named ``model.name + " (random init)"`` on the encoder's device; source, step,
        run config and tokenizer are kept, the fingerprint is that of the new weights.
    """
    device = device_of(model.encoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        objective = None
        if model.run_config is not None:
            objective = build_objective(config_from_dict(model.run_config).model)
            encoder = objective.encoder
        elif model.timm_kwargs is not None:
            kwargs = dict(model.timm_kwargs)
            encoder = timm.create_model(kwargs.pop("model_name"), pretrained=False, **kwargs)
        else:
            encoder = _reinitialised_copy(model.encoder)
    (objective if objective is not None else encoder).to(device).eval()
    return LoadedModel(
        name=model.name + RANDOM_INIT_SUFFIX,
        encoder=encoder,
        objective=objective,
        objective_name=model.objective_name,
        run_config=model.run_config,
        tokenizer=model.tokenizer,
        source=model.source,
        step=model.step,
        fingerprint=module_fingerprint(
            objective if objective is not None else encoder, header=f"random_init:{seed}:{model.source}"
        ),
        timm_kwargs=model.timm_kwargs,
    )


def load_model(spec: str, device: str | torch.device = "cpu") -> LoadedModel:
    """The CLI's model argument: ``"timm:NAME[:WEIGHTS_PATH]"``, ``"timm:EXPORT"`` or a checkpoint path.

    ``timm:EXPORT`` (or timm's own ``timm:local-dir:EXPORT``) is an `infomug export` folder, its
    ``config.json`` or its weights file: the architecture is the one its ``config.json`` names.
    ``timm:NAME`` without weights is timm's random initialisation drawn under seed 0 (inside
    `torch.random.fork_rng`), so that the same spec always measures the same weights (and hits the
    feature cache); it is named ``"NAME (random init, no weights)"`` and a warning is logged.

    Raises:
        ValueError: ``timm:`` without a name, or as `load_timm`.
        FileNotFoundError, CheckpointError: as `load_checkpoint` / `load_timm`.
    """
    if spec.startswith(TIMM_PREFIX):
        rest = spec[len(TIMM_PREFIX) :]
        if rest.startswith(LOCAL_DIR_PREFIX) or (rest and not timm.is_model(rest) and Path(rest).exists()):
            return _load_export(rest.removeprefix(LOCAL_DIR_PREFIX), device)
        name, _, weights = rest.partition(":")
        if not name:
            raise ValueError(f"model spec {spec!r} names no timm architecture: use timm:NAME[:WEIGHTS_PATH]")
        if weights:
            return load_timm(name, weights, device=device)
        logger.warning("%s names no weights file: measuring a random initialisation (seed 0)", spec)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = load_timm(name, device=device)
        # A bare timm name reads as its pretrained weights in a table; say that it is not.
        model.name = f"{name} (random init, no weights)"
        return model
    return load_checkpoint(spec, device=device)


def _load_export(path: str, device: str | torch.device) -> LoadedModel:
    found = find_timm_config(path)
    if found is None:
        raise ValueError(
            f"{path} has no timm {CONFIG_FILE} beside it: name its architecture, timm:NAME:{path}"
        )
    config, weights = found
    return load_timm(config["architecture"], weights, device=device)


def fixed_input_size(encoder: nn.Module) -> int | None:
    """The image side a ViT-style encoder only accepts (its ``patch_embed.img_size``), or None.

    None when the encoder takes any size (``dynamic_img_size``, no strict patch embedding) or does not
    say (a module without ``patch_embed``), or takes non-square images.
    """
    vit = encoder.vit if isinstance(getattr(encoder, "vit", None), nn.Module) else encoder
    patch_embed = getattr(vit, "patch_embed", None)
    size = getattr(patch_embed, "img_size", None)
    if (
        size is None
        or getattr(vit, "dynamic_img_size", False)
        or not getattr(patch_embed, "strict_img_size", True)
    ):
        return None
    size = tuple(size) if isinstance(size, tuple | list) else (size, size)
    return int(size[0]) if len(size) == 2 and size[0] == size[1] else None


def data_config_of(model: LoadedModel) -> DataConfig | None:
    """The data config the checkpoint was trained with, or None for models without a run config."""
    if model.run_config is None:
        return None
    return config_from_dict(model.run_config).data


def module_fingerprint(module: nn.Module, header: str = "") -> str:
    """16 hex characters of a SHA-256 over the class name, ``header`` and every state-dict entry.

    Each entry contributes its name, dtype, shape and bytes, so equal fingerprints mean equal weights.
    """
    digest = hashlib.sha256(f"{type(module).__qualname__}\n{header}\n".encode())
    for key, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}\n".encode())
        # A byte view works for every dtype, bfloat16 included, which numpy lacks.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


# -- helpers -------------------------------------------------------------------------------------------


def _file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if path.suffix == ".safetensors":
            # Its JSON header lists metadata in hash-map order, which differs between saves of the same
            # weights: hash the header sorted, then the tensor bytes.
            header = _safetensors_header(f, path.stat().st_size)
            if header is not None:
                digest.update(json.dumps(header, sort_keys=True).encode())
            else:
                f.seek(0)
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _safetensors_header(f: Any, size: int) -> dict | None:
    """The parsed header of an open safetensors file (left positioned at the tensor bytes), or None."""
    prefix = f.read(8)
    if len(prefix) < 8:
        return None
    length = int.from_bytes(prefix, "little")
    if length > size - 8:
        return None
    try:
        header = json.loads(f.read(length))
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return json.dumps(kwargs, sort_keys=True, default=repr)


def device_of(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (or buffer); the CPU for a module with neither."""
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _checkpoint_tokenizer(folder: Path, run_config: Any) -> Tokenizer | None:
    """The tokenizer the checkpoint's captions were encoded with, or None (logged) when it is not there."""
    name = run_config.tokenizer.resolve(run_config.model.vocab_size)
    if name != "bpe":
        try:
            return build_tokenizer(name)
        except ImportError as error:
            logger.warning("cannot build the %s tokenizer of %s: %s", name, folder, error)
            return None
    own = folder / TOKENIZER_FILE
    if own.is_symlink():
        raise CheckpointError(f"{own} is a symbolic link: a checkpoint's tokenizer must be its own file")
    if own.is_file():
        verify_file(folder, TOKENIZER_FILE)  # the checksum the checkpoint was written with
    for file in (own, run_config.tokenizer.path):
        if file is not None and Path(file).is_file():
            return build_tokenizer("bpe", path=file)
    logger.warning(
        "%s has no %s: caption measurements that need the tokenizer are skipped", folder, TOKENIZER_FILE
    )
    return None


def _few(items: list[str]) -> str:
    shown = ", ".join(items[:_FEW])
    return shown if len(items) <= _FEW else f"{shown} and {len(items) - _FEW} more"


def _reinitialised_copy(module: nn.Module) -> nn.Module:
    fresh = copy.deepcopy(module)
    covered: set[int] = set()
    for submodule in fresh.modules():
        if callable(getattr(submodule, "reset_parameters", None)):
            submodule.reset_parameters()
            covered.update(id(p) for p in submodule.parameters(recurse=False))
    if callable(getattr(fresh, "init_weights", None)):
        fresh.init_weights()
        covered.update(id(p) for p in fresh.parameters())
    left = [name for name, p in fresh.named_parameters() if id(p) not in covered]
    if left:
        logger.warning("no initialiser for %s: drawn from N(0, 0.02^2)", _few(left))
        with torch.no_grad():
            for name, parameter in fresh.named_parameters():
                if name in left:
                    parameter.normal_(0.0, 0.02)
    return fresh
