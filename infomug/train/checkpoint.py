"""Run checkpoints: one folder per saved step, written so that a kill at any moment leaves a loadable run.

Layout of a run folder ``RUN/``::

    RUN/checkpoints/step_00000250/model.safetensors   objective's state dict + metadata (format, step, config)
    RUN/checkpoints/step_00000250/train_state.pt      optimizer, step, data position, RNG (plain containers)
    RUN/checkpoints/step_00000250/tokenizer.json      optional extra files copied in
    RUN/checkpoints/step_00000250/checksums.json      SHA-256 of each file above, written last
    RUN/checkpoints/latest                            text file naming the newest step folder
    RUN/checkpoints/best                              text file naming the best step folder (optional)

A step folder is written under a temporary name and renamed into place, and the pointers are replaced
atomically after it, so ``latest`` never names a half-written folder. Weights go through safetensors (no code
runs on load) and the train state is read with ``torch.load(weights_only=True)``, which refuses pickles that
would execute code. Each file is checked against ``checksums.json`` before it is read
(`infomug.train.checksums`), so bytes damaged after the write are an error, not weights.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from infomug import __version__

from .checkpoint_folders import (
    BEST,
    LATEST,
    MODEL_FILE,
    TMP_MARKER,
    TRAIN_STATE_FILE,
    CheckpointError,
    fsync_dir,
    fsync_file,
    prune,
    remove,
    resolve_checkpoint,
    step_folder,
    write_pointer,
)
from .checksums import CHECKSUMS_FILE, verify_file, write_checksums
from .write_errors import as_os_error

logger = logging.getLogger(__name__)

FORMAT = "infomug-checkpoint"
FORMAT_VERSION = 1

_FEW = 5  # keys named in a "does not fit" error before "and N more"
_PLAIN_LEAVES = (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device, torch.Size)
_PLAIN_MAPPINGS = (dict, OrderedDict)
_PLAIN_SEQUENCES = (list, tuple, set)


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's ``model.safetensors`` header says about it.

    Attributes:
        path: the step folder.
        step: optimizer steps taken when it was saved.
        config: the whole run config, as given to `save_checkpoint`.
        infomug_version: version of infomug that wrote it.
        metadata: the raw safetensors metadata (string to string), including safetensors' own entries
            for tied weights.
    """

    path: Path
    step: int
    config: dict
    infomug_version: str
    metadata: dict[str, str]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module whose state dict is saved: ``model`` without DDP, DataParallel or torch.compile wrappers."""
    while True:
        if isinstance(model, (DistributedDataParallel, DataParallel)):
            model = model.module
        # torch.compile's OptimizedModule prefixes every key with "_orig_mod."; duck-typed so that
        # importing this module does not pull in torch._dynamo.
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: nn.Module,
    train_state: dict,
    config: Mapping[str, Any],
    *,
    keep_last: int = 3,
    is_best: bool = False,
    extra_files: Mapping[str, str | Path] | None = None,
) -> Path:
    """Write ``RUN/checkpoints/step_{step:08d}/``, point ``latest`` (and ``best``) at it, prune old ones.

    Call it on the main process only. The folder is written as ``step_XXXXXXXX.tmp-{pid}`` (files fsynced),
    renamed into place (an existing folder of the same step, e.g. re-saved after a resume, is moved aside
    first and deleted after), then the pointers are replaced atomically (``best``, then ``latest``).
    Pruning keeps the newest ``keep_last`` step folders plus those ``latest`` and ``best`` name, and
    removes what killed writers left behind.

    Args:
        run_dir: the run folder (``checkpoints/`` is created inside it).
        step: optimizer steps taken, >= 0.
        model: the objective; a DDP / DataParallel / compiled wrapper is unwrapped first. Tied weights are
            stored once (``safetensors.torch.save_model``).
        train_state: optimizer state, step, data position, RNG states...: dicts, lists, tuples, sets,
            strings, numbers, None and tensors only, so that ``torch.load(weights_only=True)`` reads it back.
        config: the whole run config, JSON-serialisable; stored as JSON in the weights' metadata.
        keep_last: how many of the newest step folders to keep, >= 1.
        is_best: also point ``best`` at this step.
        extra_files: file name in the step folder -> source file to copy (e.g. ``{"tokenizer.json": p}``).

    Returns:
        The step folder.

    Raises:
        ValueError: ``step`` < 0, ``keep_last`` < 1, or an extra file name that is not a plain file name
            or clashes with the checkpoint's own files.
        TypeError: ``config`` is not a JSON-serialisable mapping, or ``train_state`` holds anything but
            tensors and plain containers (say where).
        FileNotFoundError: an extra file's source does not exist.
        OSError: writing failed (a full disk, a read-only folder...), naming the file; torch's and
            safetensors' own errors for a full disk become OSErrors too. The run's earlier checkpoints
            and pointers are untouched.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise ValueError(f"keep_last must be an integer >= 1, got {keep_last!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (the run config as a dict), got {type(config).__name__}")
    try:
        config_json = json.dumps(dict(config))
    except (TypeError, ValueError) as error:
        raise TypeError(f"config must be JSON-serialisable (plain types only): {error}") from error
    if not isinstance(train_state, dict):
        raise TypeError(f"train_state must be a dict, got {type(train_state).__name__}")
    _check_plain(train_state, "train_state")
    extras = _check_extra_files(extra_files or {})

    module = unwrap_model(model)
    final = step_folder(run_dir, step)
    ckpt_dir, name = final.parent, final.name
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / f"{name}{TMP_MARKER}{os.getpid()}"
    remove(tmp)
    tmp.mkdir()
    writing = tmp / MODEL_FILE
    try:
        metadata = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "infomug_version": __version__,
            "step": str(step),
            "config": config_json,
        }
        # save_model (not save_file) drops the duplicate names of tied weights, which save_file refuses.
        safetensors.torch.save_model(module, str(writing), metadata=metadata)
        fsync_file(writing)
        writing = tmp / TRAIN_STATE_FILE
        with open(writing, "wb") as f:
            torch.save(train_state, f)
            f.flush()
            os.fsync(f.fileno())
        for file_name, source in extras.items():
            writing = tmp / file_name
            shutil.copyfile(source, writing)
            fsync_file(writing)
        # Last: a step folder with a manifest is complete, and its files are checked against it on load.
        writing = tmp / CHECKSUMS_FILE
        write_checksums(tmp, [MODEL_FILE, TRAIN_STATE_FILE, *extras])
        fsync_dir(tmp)
    except (OSError, RuntimeError, SafetensorError) as error:
        remove(tmp)
        failed = as_os_error(error, writing)
        if failed is error:
            raise
        raise failed from error
    except BaseException:
        remove(tmp)
        raise

    aside = None
    if final.exists():
        aside = ckpt_dir / f"{name}{TMP_MARKER}replaced-{os.getpid()}"
        remove(aside)
        os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        if aside is not None:
            os.rename(aside, final)
        remove(tmp)
        raise
    fsync_dir(ckpt_dir)
    if aside is not None:
        remove(aside)
    # `best` first: a kill between the two writes then leaves `latest` on the previous step, which the
    # resumed run continues from and re-saves this step. The other order could leave `latest` here, its
    # state saying this step is the best while `best` names an older one, and pruning could delete this.
    if is_best:
        write_pointer(ckpt_dir, BEST, name)
    write_pointer(ckpt_dir, LATEST, name)
    prune(ckpt_dir, keep_last)
    return final


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Read a checkpoint's metadata (safetensors header only; no weights are loaded).

    Args:
        path: anything `resolve_checkpoint` accepts.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: no ``model.safetensors``; it is truncated or corrupt; it is not an infomug
            checkpoint; it has another format version; its metadata is unreadable.
    """
    info, _ = _open_checkpoint(path)
    return info


def load_model_weights(model: nn.Module, path: str | Path, strict: bool = True) -> CheckpointInfo:
    """Load a checkpoint's weights into ``model`` (unwrapped from DDP / compile first), on its device.

    Every key and shape is checked against the header before any weight is copied, so on error ``model`` is
    left untouched.

    Args:
        model: the objective, built from the same config as the checkpoint.
        path: anything `resolve_checkpoint` accepts.
        strict: refuse missing and unexpected keys (shape mismatches are always refused).

    Returns:
        The checkpoint's `CheckpointInfo`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: as `read_checkpoint_info`; the weights do not fit the model (names a few keys);
            the file does not match the checkpoint's ``checksums.json`` ("corrupt: checksum mismatch").
    """
    info, shapes = _open_checkpoint(path)
    file = info.path / MODEL_FILE
    module = unwrap_model(model)
    _check_fit(module, shapes, file, strict)
    verify_file(info.path, MODEL_FILE)
    try:
        state = safetensors.torch.load_file(file, device="cpu")
    except SafetensorError as error:
        raise CheckpointError(f"{file} is truncated or corrupt: {error}") from error
    # Keys were checked above; strict=False only lets the second name of a tied weight be absent.
    module.load_state_dict(state, strict=False)
    return info


def load_train_state(path: str | Path) -> dict:
    """Read a checkpoint's ``train_state.pt`` onto the CPU; refuse anything but tensors and plain containers.

    Args:
        path: anything `resolve_checkpoint` accepts.

    Returns:
        The dict given to `save_checkpoint` as ``train_state``, tensors on the CPU.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: no ``train_state.pt``; it is truncated or corrupt, or does not match the
            checkpoint's ``checksums.json``; it holds objects other than tensors and plain containers (a
            pickle that would execute code on load is refused, not run).
    """
    folder = resolve_checkpoint(path)
    file = folder / TRAIN_STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"{folder} has no {TRAIN_STATE_FILE}: the checkpoint is incomplete")
    # torch.save writes a zip archive whose directory sits at the end: a cut file is not a zip any more.
    if not zipfile.is_zipfile(file):
        raise CheckpointError(f"{file} is truncated or corrupt: not a complete torch.save archive")
    verify_file(folder, TRAIN_STATE_FILE)
    try:
        state = torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        if "weights only load failed" not in str(error).lower():
            raise CheckpointError(f"{file} is corrupt: {error}") from error
        culprit = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "")
        raise CheckpointError(
            f"refused to load {file}: it holds objects other than tensors and plain containers, and "
            f"loading it would execute code ({culprit or 'unsupported pickle content'})"
        ) from error
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{file} is truncated or corrupt: {error}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} holds a {type(state).__name__}, not the dict save_checkpoint writes")
    return state


def _open_checkpoint(path: str | Path) -> tuple[CheckpointInfo, dict[str, tuple[int, ...]]]:
    """Validate a checkpoint's header; return its info and the shape of every stored tensor."""
    folder = resolve_checkpoint(path)
    file = folder / MODEL_FILE
    if not file.is_file():
        raise CheckpointError(f"{folder} has no {MODEL_FILE}: the checkpoint is incomplete")
    try:
        with safe_open(str(file), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except SafetensorError as error:
        raise CheckpointError(f"{file} is truncated or corrupt: {error}") from error

    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{file} is not an infomug checkpoint (its metadata has no format={FORMAT!r}); "
            "it may be a plain safetensors export: load it with safetensors directly"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        writer = metadata.get("infomug_version", "?")
        raise CheckpointError(
            f"{file} is checkpoint format version {version} (written by infomug {writer}); "
            f"this infomug {__version__} reads version {FORMAT_VERSION}"
        )
    try:
        step = int(metadata["step"])
        config = json.loads(metadata["config"])
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{file} has unreadable checkpoint metadata: {error!r}") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{file} has unreadable checkpoint metadata: config is not a JSON object")
    info = CheckpointInfo(
        path=folder,
        step=step,
        config=config,
        infomug_version=metadata.get("infomug_version", "unknown"),
        metadata=metadata,
    )
    return info, shapes


def _check_fit(module: nn.Module, shapes: Mapping[str, tuple[int, ...]], file: Path, strict: bool) -> None:
    """Raise CheckpointError naming a few keys when the stored tensors do not fit ``module``."""
    model_state = module.state_dict()
    # Tied weights are stored under one name only; any name of a tied group covers the whole group.
    groups: dict[tuple, list[str]] = {}
    for key, tensor in model_state.items():
        shared = tensor.device.type != "meta" and tensor.numel() > 0
        ident = (
            (
                tensor.untyped_storage().data_ptr(),
                tensor.storage_offset(),
                tuple(tensor.shape),
                tensor.stride(),
            )
            if shared
            else ("own", key)
        )
        groups.setdefault(ident, []).append(key)
    missing = [names[0] for names in groups.values() if not any(name in shapes for name in names)]
    unexpected = [key for key in shapes if key not in model_state]
    mismatched = [
        f"{key} (checkpoint {list(shape)}, model {list(model_state[key].shape)})"
        for key, shape in shapes.items()
        if key in model_state and tuple(model_state[key].shape) != shape
    ]
    problems = []
    if mismatched:
        problems.append(f"shape mismatch for {_few(mismatched)}")
    if strict and missing:
        problems.append(f"missing from the checkpoint: {_few(missing)}")
    if strict and unexpected:
        problems.append(f"not in the model: {_few(unexpected)}")
    if problems:
        raise CheckpointError(
            f"{file} does not fit {type(module).__name__}: {'; '.join(problems)}. The checkpoint's config "
            "differs from the model's: build the model from read_checkpoint_info(path).config"
        )


def _few(items: list[str]) -> str:
    shown = ", ".join(items[:_FEW])
    return shown if len(items) <= _FEW else f"{shown} and {len(items) - _FEW} more"


def _check_plain(obj: object, where: str) -> None:
    """Raise TypeError at the first object ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN_LEAVES:
        return
    if type(obj) in _PLAIN_MAPPINGS:
        for key, value in obj.items():
            _check_plain(key, f"{where} key {key!r}")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in _PLAIN_SEQUENCES:
        for index, item in enumerate(obj):
            _check_plain(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: train_state may hold only tensors, "
        "dicts, lists, tuples, sets, str, bytes, numbers and None, so that torch.load(weights_only=True) "
        "reads it back (convert numpy arrays and objects to tensors or plain containers)"
    )


def _check_extra_files(extra_files: Mapping[str, str | Path]) -> dict[str, Path]:
    extras = {}
    for file_name, source in extra_files.items():
        if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
            raise ValueError(f"extra file name must be a plain file name, got {file_name!r}")
        if file_name in (MODEL_FILE, TRAIN_STATE_FILE, CHECKSUMS_FILE):
            raise ValueError(f"extra file name {file_name!r} clashes with the checkpoint's own file")
        if not Path(source).is_file():
            raise FileNotFoundError(f"extra file {file_name!r}: no such file {source}")
        extras[file_name] = Path(source)
    return extras
