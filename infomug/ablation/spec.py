"""What a sweep is: a base run config, shared overrides, named variants, seeds, the caption-noise check and
the measurement settings, read from one YAML file (``experiments/configs/ablation_*.yaml``).

    name: ablation_cpu
    base: mug_cpu.yaml                 # a run config, relative to this file
    overrides: [train.steps=500]       # applied to every run
    seeds: [0, 1, 2]
    variants:                          # name -> run-config overrides, in table order
      mae: [model.preset=mae_vit_tiny_patch4_32]
      mug_0.1: [model.caption_loss_weight=0.1]
    caption_noise:                     # optional: the same variants with irrelevant captions
      setting: world.irrelevant_caption_fraction
      fractions: [0.0, 0.5, 1.0]
      variants: [mae, mug_0.1]
    measure:                           # `infomug.measure.measure` settings for every checkpoint
      budget: quick
      budget_set: {images: 4000}
      layers: last
      finetune: [full.steps=150]       # optional: also `infomug finetune` each checkpoint ([] = defaults)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infomug.train.config import RunConfig, load_yaml, parse_override

VARIANT_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
POOLS = ("token", "avg")


@dataclass(frozen=True)
class CaptionNoise:
    """The break check: the listed variants retrained with a fraction of irrelevant captions.

    Attributes:
        setting: The data setting that sets the fraction, relative to the run config's ``data`` section.
        fractions: Fractions in [0, 1] to train at; one equal to the base data's value reuses the main runs.
        variants: Variant names (of `SweepSpec.variants`) to retrain.
    """

    setting: str = "world.irrelevant_caption_fraction"
    fractions: tuple[float, ...] = (0.0, 0.5, 1.0)
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeasureSettings:
    """How every checkpoint of the sweep is measured (see `infomug.measure.measure`).

    Attributes:
        budget: ``"quick"`` or ``"full"``.
        budget_set: Budget settings overriding the preset, e.g. ``{"images": 4000}``.
        layers: ``"all"``, ``"last"`` or block indices like ``"0,3,5"``.
        pool: ``"token"`` or ``"avg"``.
        data: Eval data source name, or None for the data the runs trained on.
        data_overrides: Dotted data settings, e.g. ``["eval_path=/data/val.tar"]``.
        finetune: None, or `infomug.finetune.build_settings` overrides (``()`` = the defaults): each
            checkpoint is then also fine-tuned, into ``<measure folder>/finetune``.
    """

    budget: str = "quick"
    budget_set: Mapping[str, Any] = field(default_factory=dict)
    layers: str = "last"
    pool: str = "token"
    data: str | None = None
    data_overrides: tuple[str, ...] = ()
    finetune: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        from infomug.measure.budget import get_budget

        # Lists (YAML) and tuples (--budget-set) of the same numbers are one setting: a spec read back
        # from its sweep.yaml must equal the spec that wrote it.
        budget_set = {
            key: tuple(value) if isinstance(value, list) else value for key, value in self.budget_set.items()
        }
        object.__setattr__(self, "budget_set", budget_set)
        object.__setattr__(self, "data_overrides", tuple(self.data_overrides))
        # Checked here, not after the first run has trained for minutes.
        try:
            get_budget(self.budget, **budget_set)
        except (ValueError, TypeError) as error:
            raise ValueError(f"measure: {error}") from error
        if self.pool not in POOLS:
            raise ValueError(f"measure.pool must be one of {POOLS}, got {self.pool!r}")
        for text in self.data_overrides:
            parse_override(text)
        if self.finetune is not None:
            from infomug.finetune import build_settings

            object.__setattr__(self, "finetune", tuple(self.finetune))
            try:
                build_settings(self.finetune)
            except (ValueError, TypeError) as error:
                raise ValueError(f"measure.finetune: {error}") from error


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep. Every run is ``base`` + ``overrides`` + the variant's overrides + ``train.seed``.

    Attributes:
        name: Shown in reports (a sweep file without one is named after the file).
        base: The base run config file (absolute once loaded), or None for the built-in defaults.
        overrides: Run-config overrides shared by every run (``key.path=value``).
        seeds: Training seeds; every variant runs once per seed.
        variants: ``{name: overrides}`` in the order tables list them.
        caption_noise: The caption-noise check, or None.
        measure: Measurement settings.
    """

    name: str
    base: Path | None
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: Mapping[str, tuple[str, ...]]
    caption_noise: CaptionNoise | None = None
    measure: MeasureSettings = field(default_factory=MeasureSettings)

    def __post_init__(self) -> None:
        # Tuples throughout, so that equal sweeps compare equal however they were built.
        object.__setattr__(self, "overrides", tuple(self.overrides))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "variants", {name: tuple(group) for name, group in self.variants.items()})
        if not self.variants:
            raise ValueError("a sweep needs at least one variant")
        for name in self.variants:
            if not isinstance(name, str) or not VARIANT_NAME.match(name):
                raise ValueError(f"variant name {name!r} must use only letters, digits and _ . + -")
        if not self.seeds:
            raise ValueError("a sweep needs at least one seed")
        if not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in self.seeds):
            raise ValueError(f"seeds must be integers, got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {list(self.seeds)}")
        for text in (*self.overrides, *(o for group in self.variants.values() for o in group)):
            parse_override(text)
        noise = self.caption_noise
        if noise is not None:
            unknown = [v for v in noise.variants if v not in self.variants]
            if unknown:
                raise ValueError(
                    f"caption_noise.variants {unknown} are not variants of the sweep ({list(self.variants)})"
                )
            if not noise.fractions or any(not 0.0 <= f <= 1.0 for f in noise.fractions):
                raise ValueError(f"caption_noise.fractions must be in [0, 1], got {list(noise.fractions)}")
            if len(set(noise.fractions)) != len(noise.fractions):
                raise ValueError(f"caption_noise.fractions repeat: {list(noise.fractions)}")
            if len(set(noise.variants)) != len(noise.variants):
                raise ValueError(f"caption_noise.variants repeat: {list(noise.variants)}")

    def with_changes(
        self, overrides: Sequence[str] = (), seeds: Sequence[int] | None = None, **budget_set: Any
    ) -> SweepSpec:
        """A copy with ``overrides`` appended, ``seeds`` replaced and ``budget_set`` merged.

        Raises:
            ValueError: for anything the new spec's checks reject (repeated seeds, a bad override or
                budget setting).
        """
        measure = dataclasses.replace(self.measure, budget_set={**self.measure.budget_set, **budget_set})
        return dataclasses.replace(
            self,
            overrides=(*self.overrides, *overrides),
            seeds=tuple(seeds) if seeds is not None else self.seeds,
            measure=measure,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON types; `spec_from_dict` rebuilds the same spec."""
        noise = self.caption_noise
        return {
            "name": self.name,
            "base": None if self.base is None else str(self.base),
            "overrides": list(self.overrides),
            "seeds": list(self.seeds),
            "variants": {name: list(group) for name, group in self.variants.items()},
            "caption_noise": None
            if noise is None
            else {
                "setting": noise.setting,
                "fractions": list(noise.fractions),
                "variants": list(noise.variants),
            },
            "measure": {
                "budget": self.measure.budget,
                "budget_set": {
                    key: list(value) if isinstance(value, tuple) else value
                    for key, value in self.measure.budget_set.items()
                },
                "layers": self.measure.layers,
                "pool": self.measure.pool,
                "data": self.measure.data,
                "data_overrides": list(self.measure.data_overrides),
                "finetune": None if self.measure.finetune is None else list(self.measure.finetune),
            },
        }


def _strings(values: Any, where: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{where} must be a list of key.path=value strings, got {values!r}")
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{where} must hold key.path=value strings, got {value!r}")
    return tuple(values)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _names(values: Any, where: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if not _is_list(values):
        raise ValueError(f"{where} must be a list of variant names, got {values!r}")
    return tuple(str(value) for value in values)


def _section(values: Mapping[str, Any], key: str, known: Sequence[str]) -> dict[str, Any]:
    section = values.get(key) or {}
    if not isinstance(section, Mapping):
        raise ValueError(f"{key} must be a mapping, got {section!r}")
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ValueError(f"unknown {key} settings {unknown}; known: {sorted(known)}")
    return dict(section)


def spec_from_dict(
    values: Mapping[str, Any], root: Path | None = None, *, check_base: bool = True
) -> SweepSpec:
    """Build a `SweepSpec` from parsed YAML; a relative ``base`` is taken relative to ``root``.

    ``check_base=False`` accepts a base file that is not there (reading the spec of a sweep folder copied
    to another machine, to report it).

    Raises:
        ValueError: for unknown keys, wrong types, a missing base file, or anything `SweepSpec` rejects.
    """
    known = ("name", "base", "overrides", "seeds", "variants", "caption_noise", "measure")
    unknown = sorted(set(values) - set(known))
    if unknown:
        sections = {field.name for field in dataclasses.fields(RunConfig)}
        hint = " (a run config? name it as `base:` of a sweep file)" if sections & set(unknown) else ""
        raise ValueError(f"unknown sweep settings {unknown}; known: {list(known)}{hint}")
    base = values.get("base")
    if base is not None:
        base = Path(base)
        if not base.is_absolute() and root is not None:
            base = root / base
        if check_base:
            if not base.is_file():
                raise ValueError(f"base run config not found: {base}")
            base = base.resolve()
    variants = values.get("variants") or {}
    if not isinstance(variants, Mapping):
        raise ValueError(f"variants must map names to override lists, got {variants!r}")
    seeds = values.get("seeds", [0])
    if not _is_list(seeds) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be a list of integers, got {seeds!r}")
    noise_values = _section(values, "caption_noise", ("setting", "fractions", "variants"))
    noise = None
    if noise_values:
        fractions = noise_values.get("fractions", list(CaptionNoise.fractions))
        if not _is_list(fractions) or not all(_is_number(f) for f in fractions):
            raise ValueError(f"caption_noise.fractions must be a list of numbers, got {fractions!r}")
        noise = CaptionNoise(
            setting=str(noise_values.get("setting", CaptionNoise.setting)),
            fractions=tuple(float(f) for f in fractions),
            variants=_names(noise_values.get("variants"), "caption_noise.variants"),
        )
    measure_values = _section(values, "measure", [f.name for f in dataclasses.fields(MeasureSettings)])
    budget_set = measure_values.pop("budget_set", None) or {}
    if not isinstance(budget_set, Mapping):
        raise ValueError(f"measure.budget_set must be a mapping, got {budget_set!r}")
    layers = measure_values.pop("layers", MeasureSettings.layers)
    if _is_list(layers):  # [0, 3, 5] as measure's "0,3,5"
        layers = ",".join(str(layer) for layer in layers)
    data = measure_values.pop("data", None)
    finetune = measure_values.pop("finetune", None)
    measure = MeasureSettings(
        **{key: str(value) for key, value in measure_values.items() if key != "data_overrides"},
        finetune=None if finetune is None else _strings(finetune, "measure.finetune"),
        budget_set=dict(budget_set),
        layers=str(layers),
        data=None if data is None else str(data),
        data_overrides=_strings(measure_values.get("data_overrides"), "measure.data_overrides"),
    )
    return SweepSpec(
        name=str(values.get("name", "sweep")),
        base=base,
        overrides=_strings(values.get("overrides"), "overrides"),
        seeds=tuple(seeds),
        variants={str(name): _strings(group, f"variants.{name}") for name, group in variants.items()},
        caption_noise=noise,
        measure=measure,
    )


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep file (see the module docstring).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for invalid YAML or settings (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file not found: {path}")
    try:
        values = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: the top level must be a mapping")
    try:
        return spec_from_dict({"name": path.stem, **values}, root=path.parent)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
