"""The run configuration of `infomug train`: nested dataclasses, loaded from YAML, with dotted overrides.

A run is one `RunConfig`: the model (`ModelConfig`), its data (`DataConfig`), the tokenizer, the optimiser
and the training loop. Files name only what differs from the defaults; the resolved config (every field,
no ``preset``) is saved next to every run, so a run is reproducible from its own directory.

    config = load_config("experiments/configs/mae_cpu.yaml", ["optim.lr=3e-4", "train.steps=200"])
    save_config(config, "runs/mae/config.yaml")

Loading is strict: an unknown key or a value of the wrong type anywhere is a `ValueError` naming its dotted
path (``data.world.size``), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infomug.data.build import DataConfig
from infomug.data.tokenizers import ByteTokenizer
from infomug.files import write_atomically
from infomug.models.config import ModelConfig
from infomug.models.presets import PRESETS, get_config, list_presets

from .typed import build_dataclass, check_known, coerce, join_path, plain

TOKENIZER_CHOICES = ("auto", "bpe", "clip", "byte")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# CLIP's BPE vocabulary (`ClipBPETokenizer`); kept literal so checking a config does not import open_clip.
CLIP_VOCAB_SIZE = 49408


@dataclass
class OptimConfig:
    """AdamW with a linear warmup then a cosine decay (MAE's recipe).

    Attributes:
        lr: peak learning rate reached at the end of warmup (absolute; not rescaled by batch size).
        min_lr: the floor the cosine decays to at the last step.
        weight_decay: decoupled weight decay on weight matrices only (none on norms, biases, embeddings
            and special tokens).
        betas: AdamW's ``(beta1, beta2)``; MAE's ``(0.9, 0.95)``.
        eps: AdamW's epsilon.
        warmup_steps: optimizer steps of linear warmup from 0 to ``lr``.
        grad_clip_norm: clip the total gradient norm to this; ``None`` = off (MAE does not clip).

    Raises:
        ValueError: for a value outside the ranges above, naming the field.
    """

    lr: float = 1e-3
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = 50
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be > 0 or null (off), got {self.grad_clip_norm}")


@dataclass
class TokenizerConfig:
    """Which tokenizer turns captions into token ids.

    Attributes:
        name: ``"auto"``, ``"bpe"``, ``"clip"`` or ``"byte"`` (see `infomug.data.build_tokenizer`);
            ``"auto"`` is ``"clip"`` when ``model.vocab_size >= 49408`` and ``"bpe"`` otherwise.
        path: a saved BPE tokenizer JSON to use; ``None`` = train one on the training captions.
        train_captions: how many training captions are read to train a BPE tokenizer.

    Raises:
        ValueError: for an unknown name, a ``path`` for a tokenizer that reads none, or
            ``train_captions < 1``.
    """

    name: str = "auto"
    path: str | None = None
    train_captions: int = 20000

    def __post_init__(self) -> None:
        if self.name not in TOKENIZER_CHOICES:
            raise ValueError(f"name must be one of {TOKENIZER_CHOICES}, got {self.name!r}")
        if self.path is not None and self.name in ("clip", "byte"):
            raise ValueError(f"path is only read by the 'bpe' tokenizer, not {self.name!r}; remove it")
        if self.train_captions < 1:
            raise ValueError(f"train_captions must be >= 1, got {self.train_captions}")

    def resolve(self, vocab_size: int) -> str:
        """The concrete tokenizer name (``"bpe"``, ``"clip"`` or ``"byte"``) for a model's ``vocab_size``."""
        if self.name != "auto":
            return self.name
        return "clip" if vocab_size >= CLIP_VOCAB_SIZE else "bpe"


@dataclass
class TrainConfig:
    """The training loop: length, batch, hardware, and how often to log, evaluate, sample and checkpoint.

    Attributes:
        steps: optimizer steps in the whole run (sets the learning-rate schedule).
        batch_size: GLOBAL images per optimizer step, summed over all processes and accumulation steps.
        accumulation_steps: micro-batches accumulated per optimizer step (divides ``batch_size``).
        num_workers: DataLoader worker processes per training process.
        seed: seed of model initialisation, masking and data order.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"fp32"`` or ``"bf16"``.
        log_every: steps between ``metrics.jsonl`` records (>= 1).
        eval_every: steps between eval-loss passes; 0 = only at the end.
        eval_batches: batches of the eval split per eval pass.
        sample_every: steps between reconstruction sample PNGs for ``mae``/``mug``; 0 = off.
        checkpoint_every: steps between checkpoints; 0 = only the last step (which always checkpoints).
        checkpoint_minutes: also checkpoint at the first step ending this many minutes (wall time) after
            the last checkpoint, so a slow run never risks more than a few minutes of work; 0 = off.
        keep_checkpoints: the newest K checkpoints kept (the best by eval loss is kept as well).
        gradient_checkpointing: recompute encoder activations in the backward pass to save memory.
        tensorboard: also log every metric to TensorBoard, in ``RUN/tensorboard/`` (needs the
            ``tensorboard`` package: ``pip install 'infomug[tensorboard]'``).

    Raises:
        ValueError: for a value outside the ranges above, naming the field.
    """

    steps: int = 1000
    batch_size: int = 64
    accumulation_steps: int = 1
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 10
    eval_every: int = 250
    eval_batches: int = 4
    sample_every: int = 250
    checkpoint_every: int = 250
    checkpoint_minutes: float = 5.0
    keep_checkpoints: int = 3
    gradient_checkpointing: bool = False
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "accumulation_steps",
            "log_every",
            "eval_batches",
            "keep_checkpoints",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "eval_every", "sample_every", "checkpoint_every", "checkpoint_minutes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size % self.accumulation_steps:
            raise ValueError(
                f"batch_size {self.batch_size} must be divisible by "
                f"accumulation_steps {self.accumulation_steps}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass
class RunConfig:
    """Everything one training run needs; the defaults are the CPU MUG demo (`mug_vit_tiny_patch4_32`).

    Raises:
        ValueError: when sections disagree: ``data.image_size`` is not ``model.img_size``, warmup does not
            end before the last step, or the tokenizer cannot produce ids below ``model.vocab_size``.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        size, img_size = self.data.image_size, self.model.img_size
        if size != img_size:
            also = f" (and data.{self.data.source}.image_size={img_size})" if self.data.synthetic else ""
            raise ValueError(
                f"data.image_size={size} does not match model.img_size={img_size}: "
                f"set data.image_size={img_size}{also}"
            )
        if self.optim.warmup_steps >= self.train.steps:
            raise ValueError(
                f"optim.warmup_steps={self.optim.warmup_steps} must be < train.steps={self.train.steps}"
            )
        tokenizer = self.tokenizer.resolve(self.model.vocab_size)
        needed = {"clip": CLIP_VOCAB_SIZE, "byte": ByteTokenizer.vocab_size}.get(tokenizer, 0)
        if self.model.vocab_size < needed:
            raise ValueError(
                f"tokenizer.name={tokenizer!r} needs model.vocab_size >= {needed}, "
                f"got {self.model.vocab_size}"
            )


# -- YAML ----------------------------------------------------------------------------------------------


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names one key twice (PyYAML would keep the last value without a word)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (merge keys ``<<`` still merge)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = first_lines.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            if first is not None:
                raise DuplicateKeyError(
                    None, None, f"duplicate key {key!r} (first at line {first})", key_node.start_mark
                )
            first_lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML as `yaml.safe_load` does, refusing duplicate keys (`DuplicateKeyError`)."""
    return yaml.load(text, Loader=UniqueKeyLoader)


# -- dicts <-> configs ---------------------------------------------------------------------------------


def config_from_dict(values: Mapping[str, Any] | None) -> RunConfig:
    """Build a `RunConfig` from nested plain values (a parsed YAML file); missing keys take defaults.

    Types follow each dataclass's annotations: ``bool`` only from real booleans, ``int`` not from bools or
    floats, ``float`` from ints, floats or float strings, tuples from lists of the right length. The
    ``model`` section may name a ``preset`` (see `infomug.models.list_presets`); its other keys override
    the preset's fields. An empty or ``None`` section (or ``values``) means defaults.

    Raises:
        ValueError: for an unknown key (naming its dotted path and the known keys there), a value of the
            wrong type (naming the path, expected type and value), or an invalid value (prefixed with its
            section's path, e.g. ``"data.world: size must be >= 1 ..."``).
    """
    return build_dataclass(RunConfig, values, "", {ModelConfig: _build_model})


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """``config`` as nested plain JSON/YAML types (tuples become lists), every field resolved.

    The ``model`` section lists every `ModelConfig` field and no ``preset``, so the result rebuilds the
    same config: ``config_from_dict(config_to_dict(c)) == c``.
    """
    return plain(dataclasses.asdict(config))


def _build_model(values: Mapping[str, Any], path: str) -> ModelConfig:
    hints = typing.get_type_hints(ModelConfig)
    check_known(values, ["preset", *hints], path)
    fields = {
        key: coerce(hints[key], value, join_path(path, key))
        for key, value in values.items()
        if key != "preset"
    }
    preset = coerce(str | None, values.get("preset"), join_path(path, "preset"))
    if preset is not None and preset not in PRESETS:
        raise ValueError(
            f"{join_path(path, 'preset')}: unknown preset {preset!r}; known: {', '.join(list_presets())}"
        )
    try:
        return get_config(preset, **fields) if preset is not None else ModelConfig.from_dict(fields)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


# -- overrides, files, diffs ---------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"optim.lr=3e-4"`` into its dotted key and its value parsed as YAML.

    Values read as YAML, so ``true``, ``null``, ``[0.2, 1.0]`` and ``{shape: 0.5}`` work; an empty value
    is ``None``.

    Raises:
        ValueError: when ``=`` is missing, the key (or a part of it) is empty, or the value is not YAML.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise ValueError(f"override {text!r} must look like key.path=value (no '=')")
    if not key or not all(part.strip() for part in key.split(".")):
        raise ValueError(f"override {text!r} has an empty key or key part; expected key.path=value")
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"override {text!r}: the value is not valid YAML ({error})") from error
    return ".".join(part.strip() for part in key.split(".")), value


def apply_overrides(values: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of nested ``values`` with each ``key.path=value`` override set, creating missing sections.

    A mapping value replaces the whole entry (``data.world={size: 10}`` drops the file's other world
    keys). Unknown keys are not checked here: `config_from_dict` reports them exactly as for a file.

    Raises:
        ValueError: for a malformed override (see `parse_override`) or a path through a non-mapping value.
    """
    result: dict[str, Any] = copy.deepcopy(dict(values))
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, Mapping) and not isinstance(child, dict):
                child = node[part] = dict(child)
            elif not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ValueError(
                    f"override {text!r}: {prefix} is {type(child).__name__} {child!r}, "
                    "not a section with keys"
                )
            node = child
        node[parts[-1]] = value
    return result


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML run config (``None`` = all defaults), apply dotted overrides, and validate.

    Example:
        ``load_config("experiments/configs/mae_cpu.yaml", ["optim.lr=3e-4", "train.device=cpu"])``

    Raises:
        FileNotFoundError: if ``path`` is not an existing file.
        ValueError: for a YAML syntax error or a key given twice in one section (naming the file and
            line), a top level that is not a mapping, a malformed override, or anything
            `config_from_dict` rejects.
    """
    values: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            values = load_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            if isinstance(error, DuplicateKeyError):
                raise ValueError(f"{path}: {problem}{line}: a key may be given once per section") from error
            raise ValueError(f"{path}: YAML syntax error{line}: {problem}") from error
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ValueError(
                f"{path}: the top level must be a mapping of sections (model, data, ...), "
                f"got {type(values).__name__}"
            )
    return config_from_dict(apply_overrides(values, overrides))


def save_config(config: RunConfig, path: str | os.PathLike) -> None:
    """Write the resolved ``config`` as YAML atomically: a reader sees the old file or the whole new one.

    Creates missing parent folders.

    Raises:
        OSError: if the file cannot be written.
    """
    write_atomically(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def config_diff(a: RunConfig, b: RunConfig) -> list[str]:
    """The dotted keys whose values differ between ``a`` and ``b``, sorted (e.g. ``["optim.lr"]``)."""
    flat_a, flat_b = _flatten(config_to_dict(a)), _flatten(config_to_dict(b))
    missing = object()
    keys = set(flat_a) | set(flat_b)
    return sorted(key for key in keys if flat_a.get(key, missing) != flat_b.get(key, missing))


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, join_path(prefix, str(key))))
        else:
            flat[join_path(prefix, str(key))] = value
    return flat
