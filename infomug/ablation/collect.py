"""Read a sweep folder into one record per planned run: its state, wall time and metrics.

Metrics are read at the run's deepest measured layer. Keys (``<factor>`` is every label the run measured):

    probe_acc/<factor>, knn_acc/<factor>, info/<factor>    held-out accuracies (fractions), I(T; factor)
    probe_acc/mean, knn_acc/mean, info/mean                means over the run's factors
    input_info/sigma=<s>                                   I(X; T + sigma Z), s relative to the feature scale
    entropy, effective_rank                                H(T) (Kozachenko-Leonenko), RankMe
    caption_info                                           I(T; caption), InfoNCE lower bound
    caption_decoder, pixel_decoder                         the model's own decoder bounds (MUG / MAE)
    train/<term>, eval/<term>                              last train / eval record of metrics.jsonl

A quantity a run did not measure (CLIP has no decoders) or measured as NaN is absent, never 0. The
sweep's settings and notes, read from these records, are in `infomug.ablation.notes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from estimators import Estimate
from infomug.measure.markdown import DECODER_TITLES, VARYING_PARAMS
from infomug.measure.report_files import read_report
from infomug.measure.results import LayerResult, ModelResult, Report, Score
from infomug.measure.summaries import PROBE_KNN, mean_label_information, mean_transfer, relative_sigmas
from infomug.train import read_metrics

from .plan import PlannedRun, SweepPlan
from .runner import SweepLayout, read_status

# I(T; factor) by the estimator the measure report's headline uses (mean_label_information's default).
LABEL_METHOD = PROBE_KNN
TRANSFER_METHODS = {"probe_acc": "linear_probe", "knn_acc": "knn"}
TRANSFER_TITLES = {"probe_acc": "linear-probe acc", "knn_acc": "k-NN acc"}
LOSS_SOURCE = "metrics.jsonl"
# Metric families in table order; a key's family is what precedes its "/" (or the key itself).
FAMILY_ORDER = ("probe_acc", "knn_acc", "info", "input_info", "entropy", "effective_rank", "caption_info")
FAMILY_ORDER += ("caption_decoder", "pixel_decoder", "train", "eval")


def input_info_key(relative_sigma: float) -> str:
    """The metric key of I(X; T_sigma) at ``relative_sigma``: ``input_info/sigma=1`` for 1.0."""
    return f"input_info/sigma={relative_sigma:g}"


def metric_family(key: str) -> str:
    """``"probe_acc"`` for ``"probe_acc/shape"``, ``"entropy"`` for ``"entropy"``."""
    return key.split("/", 1)[0]


def family_rank(family: str) -> int:
    """The family's place in `FAMILY_ORDER` (unknown families last)."""
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


@dataclass(frozen=True)
class MetricInfo:
    """What a metric key means (one entry of ablation.json's ``metrics``).

    Attributes:
        key: The metric key (see the module docstring).
        label: Its name in tables and plots.
        kind: ``"accuracy"`` (a fraction), ``"information"`` or ``"entropy"`` (nats), ``"rank"``, ``"loss"``.
        unit: ``"fraction"``, ``"nats"``, ``"dimensions"``, or None for losses (each in its own units).
        bound: ``"lower"`` for a lower bound, ``"upper"`` for an upper bound, None for a point estimate.
        ceiling: The most it can be (H(factor), log N, log K, min(N, D)), or None.
        method: The estimator that made it (the `Estimate`/`Score` method) or ``"metrics.jsonl"``.
        baseline: The majority-class rate of an accuracy, or None.
    """

    key: str
    label: str
    kind: str
    unit: str | None
    bound: str | None
    ceiling: float | None
    method: str
    baseline: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plain-JSON record ablation.json's ``metrics`` lists."""
        return {
            "key": self.key,
            "label": self.label,
            "kind": self.kind,
            "unit": self.unit,
            "bound": self.bound,
            "ceiling": self.ceiling,
            "method": self.method,
            "baseline": self.baseline,
        }


@dataclass(frozen=True)
class Value:
    """One metric of one run: its value (in ``info.unit``), its standard error within the run (NaN if
    none), what it is, the estimator's settings (those that do not vary from estimate to estimate), and
    the estimator's warnings (a mean carries those of its parts)."""

    value: float
    stderr: float
    info: MetricInfo
    params: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _warnings(records: list[Estimate] | list[Score]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text for record in records for text in record.warnings))


@dataclass
class RunRecord:
    """A planned run as the sweep folder has it.

    Attributes:
        run: The planned run.
        state: The status file's ``state`` (``measured``, ``diverged``, ``trained``) or ``"pending"``.
        train_seconds: Training wall time (all attempts), None before training finished.
        measure_seconds: Measuring wall time, None before measuring finished.
        error: The status file's error (the divergence message), or None.
        report: The run's measurement, None when it has none (or it could not be read: see ``problem``).
        layer: The measured layer the metrics come from, or None.
        values: ``{metric key: Value}`` (empty unless the run is `included`).
        problem: Why a run marked measured is still left out (its measure.json is missing or unreadable).
    """

    run: PlannedRun
    state: str
    train_seconds: float | None = None
    measure_seconds: float | None = None
    error: str | None = None
    report: Report | None = None
    layer: str | None = None
    values: dict[str, Value] = field(default_factory=dict)
    problem: str | None = None

    @property
    def included(self) -> bool:
        """Whether the run's numbers enter the groups (marked measured, with a readable measure.json)."""
        return self.report is not None


def _fixed_params(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key not in VARYING_PARAMS}


def _bound(estimate: Estimate) -> str | None:
    return {"lower_bound": "lower", "upper_bound": "upper"}.get(estimate.kind)


def _estimate_value(
    key: str,
    label: str,
    kind: str,
    estimate: Estimate | None,
    ceiling: float | None = None,
    parts: list[Estimate] | None = None,
) -> dict[str, Value]:
    """``{key: Value}`` of ``estimate`` ({} when absent or NaN); a mean names the estimator of its
    ``parts`` and takes their settings."""
    if estimate is None or math.isnan(estimate.value):
        return {}
    source = parts[0] if parts else estimate
    ceiling = estimate.ceiling if ceiling is None else ceiling
    info = MetricInfo(key, label, kind, "nats", _bound(estimate), ceiling, source.method)
    warnings = _warnings(parts or [estimate])
    return {key: Value(estimate.value, estimate.stderr, info, _fixed_params(source.params), warnings)}


def _score_value(
    key: str, label: str, score: Score | None, parts: list[Score] | None = None
) -> dict[str, Value]:
    if score is None or math.isnan(score.value):
        return {}
    source = parts[0] if parts else score
    info = MetricInfo(key, label, "accuracy", "fraction", None, 1.0, source.method, score.baseline)
    warnings = _warnings(parts or [score])
    return {key: Value(score.value, score.stderr, info, _fixed_params(source.params), warnings)}


def _factor_values(layer: LayerResult, entropies: dict[str, float]) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for factor in dict.fromkeys([*entropies, *layer.label_information, *layer.transfer]):
        estimate = layer.label_information.get(factor, {}).get(LABEL_METHOD)
        title = f"I(T; {factor})"
        values |= _estimate_value(f"info/{factor}", title, "information", estimate, entropies.get(factor))
        for prefix, method in TRANSFER_METHODS.items():
            score = layer.transfer.get(factor, {}).get(method)
            values |= _score_value(f"{prefix}/{factor}", f"{TRANSFER_TITLES[prefix]}, {factor}", score)
    measured = {f: row[LABEL_METHOD] for f, row in layer.label_information.items() if LABEL_METHOD in row}
    known = [entropies[f] for f in measured if f in entropies]
    # The mean of I(T; factor) is at most the mean of the factors' entropies.
    ceiling = sum(known) / len(known) if measured and len(known) == len(measured) else None
    mean = mean_label_information(layer, LABEL_METHOD)
    title = "mean over factors of I(T; factor)"
    values |= _estimate_value("info/mean", title, "information", mean, ceiling, list(measured.values()))
    for prefix, method in TRANSFER_METHODS.items():
        parts = [row[method] for row in layer.transfer.values() if method in row]
        title = f"mean over factors of {TRANSFER_TITLES[prefix]}"
        values |= _score_value(f"{prefix}/mean", title, mean_transfer(layer, method), parts)
    return values


def measured_values(report: Report) -> tuple[str | None, dict[str, Value]]:
    """The measured layer's name and every metric of a one-model measurement.

    Returns:
        ``(layer name, {key: Value})``; ``(None, {})`` when the report measured no layer.
    """
    model: ModelResult = report.models[0]
    values: dict[str, Value] = {}
    for name, estimate in model.decoder_bounds.items():
        values |= _estimate_value(name, DECODER_TITLES.get(name, name), "information", estimate)
    if not model.layers:
        return None, values
    layer = model.layers[-1]
    values |= _factor_values(layer, report.label_entropies)
    for sigma in relative_sigmas(report):
        key = input_info_key(sigma)
        label = f"I(X; T_σ), σ = {sigma:g} × feature scale"
        values |= _estimate_value(key, label, "information", layer.channel_at(sigma))
    values |= _estimate_value(
        "entropy", "H(T), Kozachenko–Leonenko, scale-normalised", "entropy", layer.entropy
    )
    values |= _estimate_value(
        "caption_info", "I(T; caption), InfoNCE", "information", layer.caption_information
    )
    rank = layer.effective_rank
    if rank is not None and not math.isnan(rank.value):
        ceiling = rank.params.get("max")
        info = MetricInfo(
            "effective_rank",
            "RankMe (proxy)",
            "rank",
            "dimensions",
            None,
            None if ceiling is None else float(ceiling),
            rank.method,
        )
        params = _fixed_params(rank.params)
        values["effective_rank"] = Value(rank.value, rank.stderr, info, params, tuple(rank.warnings))
    return layer.layer, values


def loss_values(metrics_path: Path) -> dict[str, Value]:
    """``train/<term>`` and ``eval/<term>`` from the last train and eval records (``eval_loss_pixel`` is
    ``eval/loss_pixel``); empty when the file is missing."""
    if not metrics_path.is_file():
        return {}
    values: dict[str, Value] = {}
    for kind, prefix in (("train", ""), ("eval", "eval_")):
        records = read_metrics(metrics_path, kind=kind)
        if not records:
            continue
        for name, number in records[-1].items():
            if not name.startswith(f"{prefix}loss") or not isinstance(number, int | float):
                continue
            if math.isnan(number):
                continue
            term = name[len(prefix) :]
            key = f"{kind}/{term}"
            info = MetricInfo(key, f"final {kind} {term}", "loss", None, None, None, LOSS_SOURCE)
            values[key] = Value(float(number), math.nan, info, {"step": records[-1].get("step")})
    return values


def read_run(layout: SweepLayout, run: PlannedRun) -> RunRecord:
    """The record of one planned run (a run with an unreadable measure.json is left out, saying why)."""
    status = read_status(layout, run.name)
    record = RunRecord(
        run=run,
        state=str(status.get("state", "pending")),
        train_seconds=status.get("train_seconds"),
        measure_seconds=status.get("measure_seconds"),
        error=status.get("error"),
    )
    if record.state != "measured":
        # The runner marks a run measured only after its measure.json is complete (see runner._measure_run).
        return record
    measure_json = layout.measure_dir(run.name) / "measure.json"
    try:
        report = read_report(measure_json)
    except (FileNotFoundError, ValueError) as error:
        record.problem = str(error)
        return record
    if not report.models:
        record.problem = f"{measure_json} measured no model"
        return record
    record.report = report
    record.layer, record.values = measured_values(report)
    record.values |= loss_values(layout.run_dir(run.name) / "metrics.jsonl")
    return record


def collect_sweep(layout: SweepLayout, plan: SweepPlan) -> list[RunRecord]:
    """One `RunRecord` per planned run, in plan order."""
    return [read_run(layout, run) for run in plan.runs]
