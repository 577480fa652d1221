"""The headline of ``measure.md``: usable information on equal terms, models and anchors side by side.

Three tables: per model (its last layer) the image, caption and label information from the fresh
decoders with the readouts beside them; the paired differences between models; and per label.
"""

from __future__ import annotations

import math

from estimators import Estimate
from estimators.interface import Z_95
from infomug.measure.results import Comparison, LayerResult, ModelResult, Report
from infomug.measure.summaries import label_names, mean_transfer

MISSING = "—"
QUANTITY_TITLES = {
    "image": "I_V(T → image), token grid",
    "image_pooled": "I_V(T → image), pooled vector",
    "caption": "I(T; caption)",
    "factors": "mean I(T; label), MLP decoders",
}
# measure.json keys of the headline columns, their decimals, and the comparison quantity they pair up.
COLUMNS = (("image", 1, "image"), ("image_pooled", 1, "image_pooled"), ("caption", 2, "caption"))
COLUMNS += (("factors_mean", 3, "factors"),)


def _value(estimate: Estimate | None, decimals: int = 3) -> str:
    if estimate is None or math.isnan(estimate.value):
        return MISSING
    mark = {"lower_bound": "≥ ", "upper_bound": "≤ "}.get(estimate.kind, "")
    stderr = "±?" if math.isnan(estimate.stderr) else f"± {estimate.stderr:.{decimals}f}"
    return f"{mark}{estimate.value:.{decimals}f} {stderr}"


def _accuracy(layer: LayerResult, method: str) -> str:
    score = mean_transfer(layer, method)
    return MISSING if score is None else f"{100 * score.value:.1f}"


def _columns(models: list[ModelResult]) -> list[tuple[str, int, str]]:
    return [c for c in COLUMNS if any(c[0] in m.layers[-1].information for m in models)]


def _row(model: ModelResult, columns: list[tuple[str, int, str]]) -> list[str]:
    layer = model.layers[-1]
    cells = [_value(layer.information.get(key), decimals) for key, decimals, _ in columns]
    return [
        f"{model.name} ({layer.layer})",
        *cells,
        _accuracy(layer, "linear_probe"),
        _accuracy(layer, "knn"),
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def _ceilings(report: Report, columns: list[tuple[str, int, str]]) -> list[str]:
    """The reference row: what each column cannot exceed."""
    lasts = [m.layers[-1].information for m in report.models if m.layers]
    image = next((i["image"] for i in lasts if "image" in i), None)
    baseline = None if image is None else image.params.get("baseline_nll")
    caption = next((i["caption"] for i in lasts if "caption" in i), None)
    entropies = [
        report.label_entropies[label] for label in label_names(report) if label in report.label_entropies
    ]
    ceilings = {
        "image": MISSING if baseline is None else f"H_V(X) = {baseline:.1f}",
        "image_pooled": MISSING if baseline is None else f"H_V(X) = {baseline:.1f}",
        "caption": MISSING
        if caption is None or caption.ceiling is None
        else f"I(image; caption) = {caption.ceiling:.2f}",
        "factors_mean": f"mean H = {sum(entropies) / len(entropies):.3f}" if entropies else MISSING,
    }
    return ["*ceiling*", *(ceilings[key] for key, _, _ in columns), "100", "100"]


def _comparison_row(comparison: Comparison) -> list[str]:
    difference = comparison.difference
    low, high = difference.value - Z_95 * difference.stderr, difference.value + Z_95 * difference.stderr
    verdict = "above" if low > 0 else "below" if high < 0 else "not distinguishable"
    return [
        QUANTITY_TITLES.get(comparison.quantity, comparison.quantity),
        f"{comparison.first} − {comparison.second}",
        f"{difference.value:+.3f} ± {difference.stderr:.3f}",
        f"[{low:+.3f}, {high:+.3f}]",
        verdict,
    ]


def headline_section(report: Report) -> list[str]:
    """The markdown lines of the headline (empty when no model has usable information)."""
    models = [m for m in report.models if m.layers and m.layers[-1].information]
    if not models:
        return []
    lines = ["", "## Information on equal terms", ""]
    lines.append(
        "Fresh decoders of one fixed family and budget per target, trained on each model's frozen features"
        " and read on the same held-out images (the probes' test split; early stopping on a validation"
        " split carved from the train split). They read the features in a canonical basis (whitened, then"
        " rotated to the fourth-moment eigenvectors), so no invertible linear map of the features changes"
        " a number. **image**: I_V(T → X) = H_V(X) − H_V(X | T), nats per image, with a discretised"
        " Gaussian per pixel; usable information *relative to the decoder family*, neither a bound on nor"
        " an estimate of Shannon's I(X; T): compare models through the paired differences below."
        " **caption**: ≥ H(caption) − the caption decoder's cross-entropy (a Barber–Agakov lower bound when"
        " H(caption) is exact; otherwise usable information against the family's no-feature baseline)."
        " **labels**: ≥ H(label) − an MLP decoder's cross-entropy, per label, then their mean. `± s` is one"
        " standard error over test images; accuracies (%) are the linear probe and k-NN readouts, means"
        " over labels. Anchors: the random-init copy, the raw pixels and the one-hot labels (oracle)."
    )
    columns = _columns(models)
    header = ["model (layer)", *(QUANTITY_TITLES[quantity] for _, _, quantity in columns)]
    header += ["linear probe %", "k-NN %"]
    rows = [_row(model, columns) for model in models]
    lines += ["", *_table(header, [*rows, _ceilings(report, columns)])]
    if report.comparisons:
        lines += ["", "### Paired differences (same test images)", ""]
        lines.append(
            "first − second per quantity, each at its model's last layer; the interval is 95% (normal, from"
            " per-image differences); 'above' / 'below' when it excludes 0."
        )
        header = ["quantity", "first − second", "difference (nats)", "95% interval", "first is"]
        lines += ["", *_table(header, [_comparison_row(c) for c in report.comparisons])]
    labels = [
        label
        for label in label_names(report)
        if any(label in m.layers[-1].information.get("factors", {}) for m in models)
    ]
    if labels:
        lines += ["", "### I(T; label) per label, MLP decoders (nats, lower bounds)", ""]
        header = ["label", "H(label)", *(m.name for m in models)]
        rows = []
        for label in labels:
            entropy = report.label_entropies.get(label)
            cells = [_value(m.layers[-1].information.get("factors", {}).get(label)) for m in models]
            rows.append([label, MISSING if entropy is None else f"{entropy:.3f}", *cells])
        lines += _table(header, rows)
    return lines
