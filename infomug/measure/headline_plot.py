"""``information_headline.png``: the usable information of every model and anchor, one panel per target."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from estimators.interface import Z_95
from infomug.measure.results import Report

DPI = 120
PANELS = (
    ("image", "I_V(T → image), nats / image"),
    ("caption", "I(T; caption), nats"),
    ("factors_mean", "mean I(T; label), nats"),
)


class NoHeadlineError(ValueError):
    """The report has no usable information to plot."""


def figure_information_headline(report: Report) -> Figure:
    """Bars with 95% intervals per model (last layer); anchors hatched.

    Raises:
        NoHeadlineError: when no model has usable information.
    """
    models = [m for m in report.models if m.layers and m.layers[-1].information]
    panels = [(key, title) for key, title in PANELS if any(key in m.layers[-1].information for m in models)]
    if not panels:
        raise NoHeadlineError("no usable information in the report")
    figure = Figure(figsize=(4.2 * len(panels), 3.6 + 0.25 * len(models)), dpi=DPI)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for position, model in enumerate(models):
            estimate = model.layers[-1].information.get(key)
            if estimate is None or not math.isfinite(estimate.value):
                continue
            half = Z_95 * estimate.stderr if math.isfinite(estimate.stderr) else 0.0
            anchor = model.is_anchor
            ax.barh(
                position,
                estimate.value,
                xerr=half,
                color=colormaps["tab10"](position % 10),
                hatch="//" if anchor else None,
                alpha=0.6 if anchor else 0.9,
            )
        ceilings = {
            round(m.layers[-1].information[key].ceiling, 6)
            for m in models
            if key in m.layers[-1].information and m.layers[-1].information[key].ceiling is not None
        }
        if len(ceilings) == 1 and key != "factors_mean":
            ax.axvline(next(iter(ceilings)), color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(models)))
        ax.set_yticklabels([m.name for m in models], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0.0, color="black", linewidth=0.5)
        ax.set_title(title, fontsize=9)
    figure.suptitle("Information on equal terms (fresh decoders, last layer)", fontsize=11)
    figure.text(
        0.5,
        0.01,
        "bars: 95% intervals over test images; hatched: anchors; dashed: ceiling (H_V(X), I(image; caption))",
        ha="center",
        fontsize=7,
        style="italic",
    )
    figure.tight_layout(rect=(0.0, 0.05, 1.0, 0.94))
    return figure


def plot_information_headline(report: Report, path: Path) -> Path:
    """`figure_information_headline` written to ``path`` (PNG)."""
    figure = figure_information_headline(report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    figure.clear()
    return path
