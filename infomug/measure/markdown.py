"""``measure.md``: a `Report` as a document a researcher reads top to bottom.

Sections: the data and settings with a "How to read this" paragraph, the headline (usable information
on equal terms, `infomug.measure.headline`), a table of readouts and diagnostics at the last layer
(models side by side), one per-layer table per model, the settings of every estimate, warnings and notes
(each once, with the places it applies), and the time taken. Conventions: nats with 3 decimals,
accuracies in % with 1 decimal, ``value ± stderr`` (one standard error; ``±?`` when none was computed),
``≥``/``≤`` before a lower/upper bound, ``—`` for what was not measured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from estimators import Estimate
from infomug.measure.headline import headline_section
from infomug.measure.results import LayerResult, ModelResult, Report, Score
from infomug.measure.summaries import (
    PROBE_CE,
    PROBE_KNN,
    budget_settings,
    label_names,
    mean_label_information,
    mean_transfer,
    plane_sigma,
    relative_sigmas,
)

MISSING = "—"
# Row titles of the label-information methods and the decoder bounds; unknown keys print as themselves.
LABEL_METHODS = {PROBE_KNN: "Ross kNN on probe logits", PROBE_CE: "H(label) − probe cross-entropy"}
DECODER_TITLES = {
    "caption_decoder": "I(T; caption), caption decoder (Barber–Agakov)",
    "pixel_decoder": "I(T, position; masked patch), pixel decoder (Barber–Agakov, per patch)",
}
MAX_LABEL_COLUMNS = 8
# Parameters that differ between estimates made with the same settings (they describe the data or a fit,
# not the estimator's settings): left out when grouping estimates by their settings.
VARYING_PARAMS = frozenset(
    "feature_scale sigma kt_lower kt_upper label_entropy entropy entropy_stderr cross_entropy steps_trained"
    " best_step splits max finite_value chosen_by auto_reason auto_candidates classes logit_columns backend"
    " variance vocabulary dither_sigma ceiling_estimate explained_variance iterations".split()
)
MAX_LISTED = 6
SETTING_KEYS = ("images", "test_fraction", "knn_k", "mi_k", "channel_sigmas", "plane_sigma", "caption_batch")
SETTING_KEYS += ("caption_steps", "uncertainty", "seed", "device")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def cell(text: Any) -> str:
    """``text`` made safe for one markdown table cell (``|`` escaped, newlines flattened)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_nats(estimate: Estimate | None) -> str:
    """``≥ 0.693 ± 0.010`` (nats, 3 decimals; ``±?`` without a standard error; ``—`` when None)."""
    if estimate is None or math.isnan(estimate.value):
        return MISSING
    mark = {"lower_bound": "≥ ", "upper_bound": "≤ "}.get(estimate.kind, "")
    return mark + _plus_minus(estimate.value, estimate.stderr, 3)


def format_accuracy(score: Score | None, *, baseline: bool = True) -> str:
    """``85.3 ± 1.2 (majority 12.5)`` in percent; ``—`` when None."""
    if score is None or math.isnan(score.value):
        return MISSING
    text = _plus_minus(100.0 * score.value, 100.0 * score.stderr, 1)
    if baseline and score.baseline is not None:
        text += f" (majority {100.0 * score.baseline:.1f})"
    return text


def _plus_minus(value: float, stderr: float, decimals: int) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if math.isnan(stderr):
        return f"{value:.{decimals}f} ±?"
    return f"{value:.{decimals}f} ± {stderr:.{decimals}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def _ceiling(name: str, values: list[float | None], decimals: int = 3) -> str:
    distinct = list(dict.fromkeys(round(v, decimals) for v in values if v is not None))
    if not distinct:
        return ""
    return f"ceiling {name} = " + " / ".join(f"{v:.{decimals}f}" for v in distinct)


def _header(report: Report) -> list[str]:
    data = report.data
    images = data.get("images", data.get("n"))
    budget = {**report.settings, **budget_settings(report)}
    lines = ["# Measurement", ""]
    lines.append(
        f"- **Data**: {data.get('source', MISSING)}, split {data.get('split', MISSING)}, {images} images"
    )
    extra = {k: v for k, v in data.items() if k not in ("source", "split", "images", "n")}
    lines += [f"  - {k}: {v}" for k, v in extra.items() if not isinstance(v, dict)]
    shown = ", ".join(f"{k}={budget[k]}" for k in SETTING_KEYS if k in budget)
    lines.append(f"- **Budget**: {budget.get('name', MISSING)} ({shown})")
    lines.append(f"- **Created**: {report.created}")
    lines.append("- **Versions**: " + ", ".join(f"{k} {v}" for k, v in report.versions.items()))
    described = [
        f"{m.name} ({m.objective or 'foreign'}{'' if m.step is None else f', step {m.step}'}, {m.source})"
        for m in report.models
    ]
    lines.append("- **Models**: " + "; ".join(described))
    lines += ["", "## How to read this", ""]
    lines.append(
        "All information is in nats (1 nat = 1.443 bits), 3 decimals; accuracies are held-out, in %, 1"
        " decimal. `x ± s` gives one standard error s (`±?`: none was computed); `≥ x` marks a lower"
        " bound (the true value is at least x, up to the estimator's error; below 0 it says nothing, as"
        " I ≥ 0 anyway), `≤ x` an upper bound; `—`"
        " means not measured. H(label) is the ceiling of I(T; label) (exact when the data knows its law,"
        " else a plug-in estimate). The headline is the next section: fresh decoders on equal terms."
        " Below it, readouts (probes, k-NN) and geometry diagnostics: I(X; T_σ) is the information"
        " through T + σZ, σ absolute on each layer's whitened features (or a multiple of its feature"
        " scale when whitening is off): a property of σ and of the feature distribution, not of what the"
        " features keep, at most log N; H(T) is on the same whitened features; RankMe is a proxy for"
        " the effective dimension, comparable within one objective only. An InfoNCE bound cannot exceed"
        " log K (K its batch size). Means over labels in these tables take their standard error as if"
        " the labels' errors were independent."
    )
    return lines


def _summary(report: Report) -> list[str]:
    models = report.models
    lasts = [model.layers[-1] if model.layers else None for model in models]
    exact = "exact" if report.label_entropies_exact else "plug-in"
    rows: list[list[str]] = []
    for label in label_names(report):
        entropy = report.label_entropies.get(label)
        known = MISSING if entropy is None else f"{entropy:.3f} ({exact})"
        rows.append([f"**{label}**: H({label})", known, *([""] * len(models))])
        reference = "" if entropy is None else f"ceiling H = {entropy:.3f}"
        for method, title in LABEL_METHODS.items():
            cells = [format_nats(_get(last, "label_information", label, method)) for last in lasts]
            rows.append([f"I(T; {label}), {title}", reference, *cells])
        for method, title in (("linear_probe", "linear-probe acc %"), ("knn", "k-NN acc %")):
            cells = [format_accuracy(_get(last, "transfer", label, method)) for last in lasts]
            rows.append([f"{title}, {label}", "", *cells])
    for sigma in relative_sigmas(report):
        estimates = [None if last is None else last.channel_at(sigma) for last in lasts]
        ceiling = _ceiling("log N", [e.ceiling for e in estimates if e is not None])
        rows.append(
            [
                f"I(X; T_σ) (diagnostic), {_sigma_text(estimates, sigma)}",
                ceiling,
                *map(format_nats, estimates),
            ]
        )
    entropies = [None if last is None else last.entropy for last in lasts]
    rows.append(["H(T) (diagnostic), Kozachenko–Leonenko", "", *map(format_nats, entropies)])
    ranks = [None if last is None else last.effective_rank for last in lasts]
    most = _ceiling("min(N, D)", [r.params.get("max") for r in ranks if r is not None], 0)
    rows.append(["RankMe (proxy)", most, *(MISSING if r is None else f"{r.value:.1f}" for r in ranks)])
    captions = [None if last is None else last.caption_information for last in lasts]
    reference = _ceiling("log K", [e.ceiling for e in captions if e is not None])
    if report.caption_information_total is not None:
        total = f"ceiling I(image; caption) = {report.caption_information_total:.3f}"
        reference = f"{reference}; {total}" if reference else total
    rows.append(["I(T; caption), InfoNCE", reference, *map(format_nats, captions)])
    for key in dict.fromkeys(k for model in models for k in model.decoder_bounds):
        bounds = [model.decoder_bounds.get(key) for model in models]
        rows.append(
            [DECODER_TITLES.get(key, key), _decoder_reference(report, key, bounds), *map(format_nats, bounds)]
        )
    names = [f"{m.name} ({m.layers[-1].layer})" if m.layers else m.name for m in models]
    lines = ["", "## Readouts and diagnostics: last layer", ""]
    if report.caption_information_total is not None:
        lines += [
            f"The data carries I(image; caption) = {report.caption_information_total:.3f} nats: the"
            " ceiling of any I(T; caption).",
            "",
        ]
    return lines + _table(["quantity", "ceiling / reference", *names], rows)


def _sigma_text(estimates: list[Estimate | None], sigma: float) -> str:
    whitened = any(e is not None and e.params.get("whitened") for e in estimates)
    return f"σ = {sigma:g} on whitened features" if whitened else f"σ = {sigma:g} × scale"


def _decoder_reference(report: Report, key: str, bounds: list[Estimate | None]) -> str:
    """A decoder bound's ceilings: its own (H(caption)), and the tighter ones the data or the fit know."""
    parts = [_ceiling("H", [b.ceiling for b in bounds if b is not None])]
    if key == "caption_decoder" and report.caption_information_total is not None:
        # T is a function of the image and an independent mask, so I(T; caption) <= I(image; caption).
        parts.append(f"ceiling I(image; caption) = {report.caption_information_total:.3f}")
    if key == "pixel_decoder":
        # I(T, J; A') <= I(A; A') = h(A') - h(sigma Z): what the dithered target lets through at all.
        estimates = [b.params.get("ceiling_estimate") for b in bounds if b is not None]
        parts.append(_ceiling("I(A; A'), estimated", estimates))
    return "; ".join(part for part in parts if part)


def _setting(value: Any) -> str:
    # 6 significant digits: a level computed as sigma / scale (3.0000000000000004) reads, and groups, as 3.
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _get(layer: LayerResult | None, table: str, label: str, method: str) -> Any:
    return None if layer is None else getattr(layer, table).get(label, {}).get(method)


def _layer_tables(report: Report) -> Iterator[str]:
    sigma = plane_sigma(report)
    labels = label_names(report)
    wide = len(labels) > MAX_LABEL_COLUMNS
    yield from ["", "## Per layer", ""]
    yield (
        f"I(T; label) by {LABEL_METHODS[PROBE_CE]} (nats; measured on every layer, Ross's kNN on the"
        " diagnostic layers only); accuracies are means over labels (%);"
        f" I(X; T_σ) (geometry diagnostic) at σ = {sigma} (on whitened features unless the budget's"
        " whiten_diagnostics is off: then × each layer's feature scale)."
    )
    for model in report.models:
        header = ["layer", "dim", "I(X; T_σ)", "mean I(T; label)"]
        header += [] if wide else [f"I(T; {label})" for label in labels]
        header += ["linear-probe acc %", "k-NN acc %", "RankMe"]
        rows = []
        for layer in model.layers:
            channel = None if sigma is None else layer.channel_at(sigma)
            row = [
                layer.layer,
                str(layer.dim),
                format_nats(channel),
                format_nats(mean_label_information(layer, PROBE_CE)),
            ]
            if not wide:
                row += [format_nats(_get(layer, "label_information", label, PROBE_CE)) for label in labels]
            row += [format_accuracy(mean_transfer(layer, m), baseline=False) for m in ("linear_probe", "knn")]
            rank = layer.effective_rank
            rows.append(row + [MISSING if rank is None else f"{rank.value:.1f}"])
        yield from ["", f"### {cell(model.name)}", "", *_table(header, rows)]
        if wide and model.layers:
            rows = [
                [
                    layer.layer,
                    *(format_nats(_get(layer, "label_information", lb, PROBE_CE)) for lb in labels),
                ]
                for layer in model.layers
            ]
            yield from ["", f"I(T; label) per label, {cell(model.name)}:", ""]
            yield from _table(["layer", *labels], rows)


# Where a record sits: (model, layer or decoder or "" for the model, label or quantity, is a label).
Place = tuple[str, str, str, bool]


def _records(report: Report) -> Iterator[tuple[str, Place, Estimate | Score]]:
    """Every estimate and score with its quantity name and its place."""
    for model in report.models:
        for layer in model.layers:
            for label, row in layer.label_information.items():
                for method, estimate in row.items():
                    yield f"I(T; label) [{method}]", (model.name, layer.layer, label, True), estimate
            for label, row in layer.transfer.items():
                for method, score in row.items():
                    yield f"accuracy [{method}]", (model.name, layer.layer, label, True), score
            single = [("I(X; T_σ)", e) for e in layer.input_information]
            single += [("H(T)", layer.entropy), ("RankMe", layer.effective_rank)]
            single += [("I(T; caption)", layer.caption_information)]
            for quantity, record in single:
                if record is not None:
                    yield quantity, (model.name, layer.layer, quantity, False), record
            for key, estimate in layer.information.items():
                if key == "factors":
                    for label, factor in estimate.items():
                        yield "I(T; label) [mlp_decoder]", (model.name, layer.layer, label, True), factor
                else:
                    yield f"usable information [{key}]", (model.name, layer.layer, key, False), estimate
        for key, estimate in model.decoder_bounds.items():
            yield f"decoder bound [{key}]", (model.name, key, "", False), estimate


def _listed(items: list[str]) -> str:
    more = f", … ({len(items)} in all)" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def _places(report: Report, places: list[Place]) -> str:
    """``mug: all layers (all labels); mae: block_1 (colour), pixel_decoder`` from a list of places."""
    parts = []
    for model in report.models:
        mine = list(dict.fromkeys(place[1:] for place in places if place[0] == model.name))
        if not mine:
            continue
        measured = {layer.layer: {*layer.label_information, *layer.transfer} for layer in model.layers}
        descriptions = {}
        for name in dict.fromkeys([*measured, *(layer for layer, _, _ in mine)]):
            labels = [item for layer, item, is_label in mine if layer == name and is_label]
            quantities = [item for layer, item, is_label in mine if layer == name and not is_label and item]
            if not labels and not quantities and all(layer != name for layer, _, _ in mine):
                continue
            whole = len(measured.get(name, ())) > 1 and set(labels) >= measured[name]
            described = (["all labels" if whole else _listed(labels)] if labels else []) + quantities
            descriptions[name] = "; ".join(described)
        descriptions.pop("", None)  # a note on the model as a whole: its name says it
        if len(measured) > 1 and set(descriptions) == set(measured) and len(set(descriptions.values())) == 1:
            shared = next(iter(descriptions.values()))
            body = "all layers" + (f" ({shared})" if shared else "")
        else:
            body = ", ".join(f"{name} ({text})" if text else name for name, text in descriptions.items())
        parts.append(f"{model.name}: {body}" if body else model.name)
    return "; ".join(parts)


def _settings(report: Report) -> list[str]:
    groups: dict[tuple[str, str, str], list[tuple[Place, Estimate | Score]]] = {}
    for quantity, place, record in _records(report):
        fixed = {k: v for k, v in record.params.items() if k not in VARYING_PARAMS}
        params = ", ".join(f"{k}={_setting(v)}" for k, v in fixed.items())
        groups.setdefault((quantity, record.method, params), []).append((place, record))
    lines = ["", "## Settings of every estimate", ""]
    if not groups:
        return lines + ["No estimates."]
    for (quantity, method, params), uses in groups.items():
        ns = sorted({record.n for _, record in uses})
        n_text = f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]}"
        varying = list(dict.fromkeys(k for _, record in uses for k in record.params if k in VARYING_PARAMS))
        own = f"; per estimate: {', '.join(varying)}" if varying else ""
        models = ", ".join(dict.fromkeys(place[0] for place, _ in uses))
        lines.append(
            f"- **{quantity}**: `{method}` ({params or 'no settings'}{own}); {n_text};"
            f" {len(uses)} estimate(s) in {models}"
        )
    return lines


def _note_place(model: ModelResult, note: str) -> tuple[Place, str]:
    # Notes of a layer start with "<layer>: " (once or more); they are grouped across layers like warnings.
    layer, names = "", {layer.layer for layer in model.layers}
    while (prefix := note.split(": ", 1)[0]) in names and ": " in note:
        layer, note = prefix, note.split(": ", 1)[1]
    return (model.name, layer, "", False), note


def _warnings(report: Report) -> list[str]:
    # Warnings that differ only in their numbers (a sigma, a count) are one warning, shown by its first
    # instance, so that a caveat printed per layer is read once.
    groups: dict[str, tuple[str, list[Place], set[str]]] = {}
    for _, place, record in _records(report):
        for text in record.warnings:
            first, places, texts = groups.setdefault(_NUMBER.sub("#", text), (text, [], set()))
            places.append(place)
            texts.add(text)
    lines = ["", "## Warnings and notes", ""]
    for first, places, texts in groups.values():
        varies = " (numbers vary by place; the first is shown)" if len(texts) > 1 else ""
        lines.append(f"- {first}{varies} — *in:* {_places(report, places)}")
    notes: dict[str, list[Place]] = {}
    for model in report.models:
        for note in model.notes:
            place, text = _note_place(model, note)
            notes.setdefault(text, []).append(place)
    lines += [f"- note: {text} — *in:* {_places(report, places)}" for text, places in notes.items()]
    if len(lines) == 3:
        lines.append("None.")
    return lines


def _times(report: Report) -> list[str]:
    rows = [["whole run", stage, f"{seconds:.1f}"] for stage, seconds in report.seconds.items()]
    for model in report.models:
        rows += [[model.name, stage, f"{seconds:.1f}"] for stage, seconds in model.seconds.items()]
        layers = sum(sum(layer.seconds.values()) for layer in model.layers)
        rows.append([model.name, "layers (sum)", f"{layers:.1f}"])
    return ["", "## Time", "", *_table(["where", "stage", "seconds"], rows), ""]


def render_markdown(report: Report) -> str:
    """The whole ``measure.md`` of ``report``.

    Args:
        report: A measurement (any number of models and layers; missing quantities print as ``—``).

    Returns:
        GitHub-flavoured markdown, ending in a newline.

    Raises:
        ValueError: if the report has no models.
    """
    if not report.models:
        raise ValueError("the report has no models to render")
    parts = [_header(report), headline_section(report), _summary(report), list(_layer_tables(report))]
    parts += [_settings(report), _warnings(report), _times(report)]
    return "\n".join(line for part in parts for line in part)
