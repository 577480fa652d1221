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

SCHEMA_VERSION = 2
RANDOM_INIT_SUFFIX = " (random init)"  # what `sources.random_init_like` appends to a model's name
READABLE_SCHEMAS = (1, 2)  # version 1 reports (no usable information) read with empty `information`
INFORMATION_KEYS = ("image", "image_pooled", "caption", "factors_mean")  # plus "factors": {name: Estimate}


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


def _information_to_dict(information: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {key: information[key].to_dict() for key in INFORMATION_KEYS if key in information}
    if "factors" in information:
        out["factors"] = {name: e.to_dict() for name, e in information["factors"].items()}
    return out


def _information_from_dict(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {key: Estimate.from_dict(data[key]) for key in INFORMATION_KEYS if key in data}
    if "factors" in data:
        out["factors"] = {name: Estimate.from_dict(e) for name, e in data["factors"].items()}
    return out


@dataclass(frozen=True)
class Comparison:
    """A paired difference of one usable-information quantity between two models on the same test images.

    Attributes:
        quantity: ``"image"``, ``"image_pooled"``, ``"caption"`` or ``"factors"`` (the mean over labels).
        first: Model name (with its layer in ``first_layer``).
        second: The other model's name.
        first_layer: The layer of ``first`` compared.
        second_layer: The layer of ``second`` compared.
        difference: ``first - second`` in nats, its stderr from per-image differences (paired).
    """

    quantity: str
    first: str
    second: str
    first_layer: str
    second_layer: str
    difference: Estimate

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["difference"] = self.difference.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        return cls(**{**data, "difference": Estimate.from_dict(data["difference"])})


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
        transfer: ``{label: {"linear_probe": Score, "knn": Score, ...}}`` held-out accuracies.
        information: The headline, usable information from fresh decoders on these frozen features
            (the same family and budget for every encoder): ``"image"`` (I_V(T -> X) from the token
            grid, nats per image), ``"image_pooled"`` (the same from the pooled vector), ``"caption"``
            (I(T; caption), a Barber-Agakov lower bound where H(caption) is exact) — each an `Estimate`
            where measured — and ``"factors"``: ``{label: Estimate}`` (H(label) - an MLP decoder's
            held-out cross-entropy, a lower bound), with ``"factors_mean"`` their mean over labels
            (its stderr from the per-image mean, so correlated labels are not counted as independent).
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
    information: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def factor_information(self, label: str) -> Estimate | None:
        """The MLP decoder's I(T; label) lower bound, or None."""
        return self.information.get("factors", {}).get(label)

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
            "information": _information_to_dict(self.information),
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
            information=_information_from_dict(data.get("information", {})),
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

    @property
    def is_anchor(self) -> bool:
        """True for the anchors a report reads models against: random init, pixels, the oracle."""
        return self.source == "anchor" or self.name.endswith(RANDOM_INIT_SUFFIX)

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
        comparisons: Paired differences of the usable information between every two models.
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
    comparisons: list[Comparison] = field(default_factory=list)

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
            "comparisons": [c.to_dict() for c in self.comparisons],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Inverse of `to_dict`.

        Raises:
            ValueError: for a schema version this code cannot read.
        """
        version = data.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise ValueError(f"measure.json schema version {version!r} is not one of {READABLE_SCHEMAS}")
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
            comparisons=[Comparison.from_dict(c) for c in data.get("comparisons", [])],
        )
