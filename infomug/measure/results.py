"""The records a measurement produces, and their JSON form.

`Estimate` (from ``estimators``) carries every information quantity (nats, uncertainty, settings, kind,
ceiling); `Score` carries the numbers that are not information (accuracies, effective rank). A `Report`
holds one `ModelResult` per measured model, one `LayerResult` per tapped layer, and the settings that
made them; ``Report.to_dict()`` is what ``measure.json`` holds and ``Report.from_dict`` reads it back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from estimators import Estimate
from estimators.interface import Z_95

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Score:
    """A number that is not information: an accuracy (fraction in [0, 1]) or an effective rank.

    Attributes:
        value: The score.
        stderr: Its standard error (``nan`` when not computed).
        n: Samples it was computed on (test samples for accuracies).
        method: What computed it, e.g. ``"linear_probe"``, ``"knn"``, ``"rankme"``.
        params: Settings, JSON-serialisable.
        baseline: What a featureless guess scores (majority-class rate for accuracies), or None.
        seconds: Wall time.
        warnings: Human-readable caveats.
    """

    value: float
    stderr: float
    n: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    baseline: float | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def ci95(self) -> tuple[float, float]:
        """Normal-approximation 95% interval; ``(nan, nan)`` without a standard error."""
        return (self.value - Z_95 * self.stderr, self.value + Z_95 * self.stderr)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        out["ci95"] = list(self.ci95)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        names = set(cls.__dataclass_fields__)
        kwargs = {key: value for key, value in data.items() if key in names}
        kwargs["warnings"] = tuple(kwargs.get("warnings", ()))
        return cls(**kwargs)


def _estimates_to_dict(table: dict[str, dict[str, Estimate]]) -> dict[str, dict[str, Any]]:
    return {label: {name: e.to_dict() for name, e in row.items()} for label, row in table.items()}


def _estimates_from_dict(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Estimate]]:
    return {label: {name: Estimate.from_dict(e) for name, e in row.items()} for label, row in table.items()}


def _scores_to_dict(table: dict[str, dict[str, Score]]) -> dict[str, dict[str, Any]]:
    return {label: {name: s.to_dict() for name, s in row.items()} for label, row in table.items()}


def _scores_from_dict(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Score]]:
    return {label: {name: Score.from_dict(s) for name, s in row.items()} for label, row in table.items()}


def _optional(value: Any, convert: Any) -> Any:
    return None if value is None else convert(value)


@dataclass
class LayerResult:
    """Everything measured on one tapped layer's pooled features ``T`` (``[N, dim]``).

    Attributes:
        layer: The tap's name (``"block_3"`` for our encoders, a module path for hooked layers).
        dim: Feature dimension.
        n: Images the features came from.
        label_information: ``{label: {method: Estimate}}``, I(T; label) in nats; methods
            ``"knn_on_probe_logits"`` (Ross kNN on held-out probe logits, a lower bound by data
            processing) and ``"probe_cross_entropy"`` (H(label) - held-out probe cross-entropy, a
            Barber-Agakov lower bound).
        input_information: I(X; T + sigma Z) by the noisy channel, one `Estimate` per noise level.
        entropy: H(T) by Kozachenko-Leonenko on scale-normalised features, or None if not measured.
        effective_rank: RankMe of the features (a proxy, not information).
        caption_information: I(T; caption) InfoNCE lower bound against a text feature, or None.
        transfer: ``{label: {"linear_probe": Score, "knn": Score}}`` held-out accuracies.
        seconds: ``{stage: wall seconds}`` for this layer.
    """

    layer: str
    dim: int
    n: int
    label_information: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    input_information: list[Estimate] = field(default_factory=list)
    entropy: Estimate | None = None
    effective_rank: Score | None = None
    caption_information: Estimate | None = None
    transfer: dict[str, dict[str, Score]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "dim": self.dim,
            "n": self.n,
            "label_information": _estimates_to_dict(self.label_information),
            "input_information": [e.to_dict() for e in self.input_information],
            "entropy": _optional(self.entropy, Estimate.to_dict),
            "effective_rank": _optional(self.effective_rank, Score.to_dict),
            "caption_information": _optional(self.caption_information, Estimate.to_dict),
            "transfer": _scores_to_dict(self.transfer),
            "seconds": dict(self.seconds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerResult:
        return cls(
            layer=data["layer"],
            dim=int(data["dim"]),
            n=int(data["n"]),
            label_information=_estimates_from_dict(data.get("label_information", {})),
            input_information=[Estimate.from_dict(e) for e in data.get("input_information", [])],
            entropy=_optional(data.get("entropy"), Estimate.from_dict),
            effective_rank=_optional(data.get("effective_rank"), Score.from_dict),
            caption_information=_optional(data.get("caption_information"), Estimate.from_dict),
            transfer=_scores_from_dict(data.get("transfer", {})),
            seconds={k: float(v) for k, v in data.get("seconds", {}).items()},
        )

    def channel_at(self, relative_sigma: float) -> Estimate | None:
        """The noisy-channel estimate at ``relative_sigma`` (matched to 1e-9), or None."""
        for estimate in self.input_information:
            if math.isclose(estimate.params.get("relative_sigma", math.nan), relative_sigma, rel_tol=1e-9):
                return estimate
        return None


@dataclass
class ModelResult:
    """One measured model.

    Attributes:
        name: Short name used in tables and plot legends (unique within a report).
        source: Where it came from: a checkpoint step folder, ``timm:NAME``, or ``module``.
        objective: ``"mae"``, ``"mug"``, ``"clip"``, ``"simclr"``, or None for foreign models.
        step: Training step of a checkpoint, or None.
        fingerprint: Hash of the weights (the feature cache key).
        layers: One `LayerResult` per tapped layer, shallow to deep.
        decoder_bounds: Checkpoint-level bounds from the model's own decoders, e.g.
            ``"caption_decoder"`` (MUG: Barber-Agakov I(T; caption)) and ``"pixel_decoder"`` (MAE/MUG:
            I(T, patch position; masked patch)).
        seconds: ``{stage: wall seconds}`` (extraction, decoders).
        notes: Things the reader should know (a measurement skipped and why, ...).
    """

    name: str
    source: str
    objective: str | None
    step: int | None
    fingerprint: str
    layers: list[LayerResult] = field(default_factory=list)
    decoder_bounds: dict[str, Estimate] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "objective": self.objective,
            "step": self.step,
            "fingerprint": self.fingerprint,
            "layers": [layer.to_dict() for layer in self.layers],
            "decoder_bounds": {k: e.to_dict() for k, e in self.decoder_bounds.items()},
            "seconds": dict(self.seconds),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResult:
        return cls(
            name=data["name"],
            source=data["source"],
            objective=data.get("objective"),
            step=data.get("step"),
            fingerprint=data["fingerprint"],
            layers=[LayerResult.from_dict(layer) for layer in data.get("layers", [])],
            decoder_bounds={k: Estimate.from_dict(e) for k, e in data.get("decoder_bounds", {}).items()},
            seconds={k: float(v) for k, v in data.get("seconds", {}).items()},
            notes=list(data.get("notes", [])),
        )


@dataclass
class Report:
    """A whole measurement: models side by side on the same data and settings.

    Attributes:
        models: One `ModelResult` per model, in the order given.
        data: Description of the eval data (source, split, number of images, config).
        label_entropies: ``{label: H(label) in nats}`` of the measured discrete labels.
        label_entropies_exact: True when those come from the data's known law (the world), False
            when they are plug-in estimates from the measured labels.
        caption_information_total: I(image; caption) in nats when the data knows it (the ceiling on
            any I(T; caption)), else None.
        settings: The budget and options used (JSON-ready).
        versions: Package versions (infomug, torch, timm, numpy, python).
        created: ISO time of the measurement.
        seconds: ``{stage: wall seconds}`` for the whole run.
    """

    models: list[ModelResult]
    data: dict[str, Any]
    label_entropies: dict[str, float]
    label_entropies_exact: bool
    caption_information_total: float | None
    settings: dict[str, Any]
    versions: dict[str, str]
    created: str
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "models": [model.to_dict() for model in self.models],
            "data": self.data,
            "label_entropies": dict(self.label_entropies),
            "label_entropies_exact": self.label_entropies_exact,
            "caption_information_total": self.caption_information_total,
            "settings": self.settings,
            "versions": dict(self.versions),
            "created": self.created,
            "seconds": dict(self.seconds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Inverse of `to_dict`.

        Raises:
            ValueError: for another schema version.
        """
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"measure.json schema version {version!r} is not {SCHEMA_VERSION}")
        return cls(
            models=[ModelResult.from_dict(m) for m in data["models"]],
            data=data["data"],
            label_entropies={k: float(v) for k, v in data["label_entropies"].items()},
            label_entropies_exact=bool(data["label_entropies_exact"]),
            caption_information_total=data.get("caption_information_total"),
            settings=data["settings"],
            versions=data["versions"],
            created=data["created"],
            seconds={k: float(v) for k, v in data.get("seconds", {}).items()},
        )
