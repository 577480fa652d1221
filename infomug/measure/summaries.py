"""Numbers read off a `Report` by both the markdown and the plots: means over labels, the noise levels."""

from __future__ import annotations

import math
from typing import Any

from estimators import Estimate
from infomug.measure.results import LayerResult, Report, Score

PROBE_KNN = "knn_on_probe_logits"
PROBE_CE = "probe_cross_entropy"


def _mean(pairs: list[tuple[float, float]]) -> tuple[float, float] | None:
    # Standard error of a mean of estimates, as if their errors were independent (they share features).
    if not pairs:
        return None
    mean = sum(v for v, _ in pairs) / len(pairs)
    return mean, math.sqrt(sum(s * s for _, s in pairs)) / len(pairs)


def mean_label_information(layer: LayerResult, method: str = PROBE_KNN) -> Estimate | None:
    """Mean over labels of I(T; label) by ``method``, as an `Estimate` (nats), or None if none measured.

    The standard error treats the labels' errors as independent; the kind is the labels' common kind.
    """
    estimates = [row[method] for row in layer.label_information.values() if method in row]
    mean = _mean([(e.value, e.stderr) for e in estimates])
    if mean is None:
        return None
    kinds = {e.kind for e in estimates}
    kind = kinds.pop() if len(kinds) == 1 else "point"
    return Estimate(mean[0], mean[1], min(e.n for e in estimates), f"mean of {method}", kind=kind)


def mean_transfer(layer: LayerResult, method: str) -> Score | None:
    """Mean over labels of the held-out accuracy by ``method`` (with the mean majority baseline)."""
    scores = [row[method] for row in layer.transfer.values() if method in row]
    mean = _mean([(s.value, s.stderr) for s in scores])
    if mean is None:
        return None
    baselines = [s.baseline for s in scores if s.baseline is not None]
    baseline = sum(baselines) / len(baselines) if len(baselines) == len(scores) else None
    return Score(mean[0], mean[1], min(s.n for s in scores), f"mean of {method}", baseline=baseline)


def budget_settings(report: Report) -> dict[str, Any]:
    """The budget part of ``report.settings`` (nested under ``"budget"`` or at the top level)."""
    nested = report.settings.get("budget")
    return nested if isinstance(nested, dict) else report.settings


def plane_sigma(report: Report) -> float | None:
    """The relative noise level the information plane uses, or None when the settings lack it."""
    value = report.settings.get("plane_sigma", budget_settings(report).get("plane_sigma"))
    return None if value is None else float(value)


def relative_sigmas(report: Report) -> list[float]:
    """The noise levels of the report's I(X; T_sigma) estimates, ascending, each once.

    Levels equal to 1e-9 (as `LayerResult.channel_at` matches them) are one level, named by the budget's
    ``channel_sigmas`` value when it has one: reports written before the estimates carried the nominal
    level hold values such as ``3.0000000000000004`` next to ``3.0``.
    """
    nominal = [float(s) for s in budget_settings(report).get("channel_sigmas") or ()]
    levels: list[float] = []
    found = {
        float(e.params["relative_sigma"])
        for model in report.models
        for layer in model.layers
        for e in layer.input_information
        if e.params.get("relative_sigma") is not None
    }
    for value in sorted(found):
        value = next((s for s in nominal if math.isclose(s, value, rel_tol=1e-9)), value)
        if not any(math.isclose(value, level, rel_tol=1e-9) for level in levels):
            levels.append(value)
    return levels


def label_names(report: Report) -> list[str]:
    """Every measured label: those with a known entropy first (in that order), then any others."""
    names = list(report.label_entropies)
    for model in report.models:
        for layer in model.layers:
            names += [name for name in (*layer.label_information, *layer.transfer) if name not in names]
    return names
