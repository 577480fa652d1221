"""The plots of a measurement: information per layer, the information plane, transfer, and the two together.

Figures are built with `matplotlib.figure.Figure` directly (Agg canvas, no pyplot): nothing global is
touched, nothing is shown, and a figure is freed with its last reference. Every ``figure_*`` function
returns the Figure (for notebooks and tests); every ``plot_*`` function writes it as a PNG. Error bars
are 95% normal intervals (1.96 standard errors); a value without a standard error gets no bar.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from estimators.interface import Z_95
from infomug.measure.headline_plot import NoHeadlineError, plot_information_headline
from infomug.measure.results import LayerResult, Report
from infomug.measure.summaries import (
    PROBE_CE,
    PROBE_KNN,
    label_names,
    mean_label_information,
    mean_transfer,
    plane_sigma,
    relative_sigmas,
)

logger = logging.getLogger(__name__)

DPI = 120
MAX_PANELS = 16
LABEL_ESTIMATOR = "Ross kNN on probe logits (lower bound)"
# Per layer: the bound every layer has (Ross's kNN is measured on the budget's diagnostic layers only).
PER_LAYER_ESTIMATOR = "H(label) − the linear probe's held-out cross-entropy (lower bound)"


class MissingDataError(ValueError):
    """The report lacks what a plot needs (e.g. no labels were measured)."""


def _colour(index: int) -> tuple[float, float, float, float]:
    return colormaps["tab10"](index % 10)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.nan


def _bar(stderr: float) -> float:
    return Z_95 * stderr if math.isfinite(stderr) else 0.0


def _layers(report: Report) -> list[LayerResult]:
    return [layer for model in report.models for layer in model.layers]


def layer_order(report: Report) -> list[str]:
    """Every model's layer names merged into one shallow-to-deep order (the shared x axis).

    A new name goes after the model's previous layer, else before its next already-placed layer, else at
    the end (a model that shares no layer with the others, such as an anchor, comes last).
    """
    order: list[str] = []
    for model in report.models:
        names = [layer.layer for layer in model.layers]
        previous = None
        for position, name in enumerate(names):
            if name not in order:
                if previous is not None:
                    order.insert(previous + 1, name)
                else:
                    later = [order.index(n) for n in names[position + 1 :] if n in order]
                    order.insert(later[0] if later else len(order), name)
            previous = order.index(name)
    return order


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(width * cols, height * rows + 0.9), dpi=DPI)
    return figure, figure.subplots(rows, cols, squeeze=False)


def _finish(figure: Figure, title: str, caption: str) -> Figure:
    figure.suptitle(title, fontsize=12)
    figure.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=8, style="italic")
    figure.tight_layout(rect=(0.0, 0.04, 1.0, 0.96))
    return figure


def _layer_axis(ax, order: list[str]) -> None:
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(
        order, rotation=45 if len(order) > 4 else 0, ha="right" if len(order) > 4 else "center"
    )
    ax.set_xlabel("layer")


def figure_information_per_layer(report: Report) -> Figure:
    """One panel per label: I(T; label) per layer, a line per model, the ceiling H(label) dashed.

    Raises:
        MissingDataError: when no layer has a label-information estimate.
    """
    measured = [
        name
        for name in label_names(report)
        if any(name in layer.label_information for layer in _layers(report))
    ]
    if not measured:
        raise MissingDataError("no label information in the report")
    title = "I(T; label) per layer"
    if len(measured) > MAX_PANELS:
        measured.sort(key=lambda name: -report.label_entropies.get(name, -math.inf))
        measured = measured[:MAX_PANELS]
        title += f" (the {MAX_PANELS} labels of highest entropy, of {len(label_names(report))})"
    order = layer_order(report)
    cols = min(4, len(measured))
    figure, axes = _figure(math.ceil(len(measured) / cols), cols, 3.4, 2.8)
    for ax, label in zip(axes.flat, measured, strict=False):
        for index, model in enumerate(report.models):
            xs, ys, bars = [], [], []
            for layer in model.layers:
                estimate = layer.label_information.get(label, {}).get(PROBE_CE)
                if estimate is not None:
                    xs.append(order.index(layer.layer))
                    ys.append(_finite(estimate.value))
                    bars.append(_bar(estimate.stderr))
            ax.errorbar(xs, ys, yerr=bars, marker="o", capsize=3, color=_colour(index), label=model.name)
        if label in report.label_entropies:
            ax.axhline(report.label_entropies[label], color="grey", linestyle="--", label="H(label), ceiling")
            # From 0 to the ceiling: a zoomed axis would make 0.03 nats look like a trend.
            low, high = ax.get_ylim()
            ax.set_ylim(min(low, 0.0), max(high, 1.08 * report.label_entropies[label]))
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("I(T; label) (nats)")
        _layer_axis(ax, order)
    for ax in list(axes.flat)[len(measured) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    return _finish(figure, title, f"{PER_LAYER_ESTIMATOR}; bars: 95% CI; dashed: H(label)")


def figure_information_plane(report: Report) -> Figure:
    """I(X; T_sigma) against the mean over labels of I(T; label), a path through the layers per model.

    Raises:
        MissingDataError: without a plane sigma, noisy-channel estimates at it, or label information.
    """
    sigma = plane_sigma(report)
    if sigma is None:
        raise MissingDataError("the report's settings name no plane_sigma")
    figure, axes = _figure(1, 1, 6.0, 4.6)
    ax = axes[0, 0]
    drawn = 0
    for index, model in enumerate(report.models):
        points = []
        for layer in model.layers:
            channel, mean = layer.channel_at(sigma), mean_label_information(layer)
            if channel is not None and mean is not None:
                points.append((layer.layer, channel, mean))
        if not points:
            continue
        drawn += 1
        xs = [_finite(c.value) for _, c, _ in points]
        ys = [_finite(m.value) for _, _, m in points]
        ax.errorbar(
            xs,
            ys,
            xerr=[_bar(c.stderr) for _, c, _ in points],
            yerr=[_bar(m.stderr) for _, _, m in points],
            marker="o",
            capsize=3,
            color=_colour(index),
            label=model.name,
        )
        for end in sorted({0, len(points) - 1}):
            ax.annotate(
                points[end][0], (xs[end], ys[end]), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    if not drawn:
        raise MissingDataError(f"no layer has both I(X; T_sigma) at sigma {sigma} and label information")
    ax.set_xlabel(f"I(X; T_σ) (nats), σ = {sigma:g} × feature scale")
    ax.set_ylabel("mean over labels of I(T; label) (nats)")
    ax.legend(fontsize=8)
    caption = f"x: noisy channel, sample propagation; y: {LABEL_ESTIMATOR}; bars: 95% CI"
    return _finish(figure, f"Information plane, sigma = {sigma:g} x feature scale", caption)


def figure_transfer(report: Report) -> Figure:
    """Mean held-out linear-probe and k-NN accuracy per layer (two panels), the majority baseline dashed.

    Raises:
        MissingDataError: when no layer has transfer scores.
    """
    if not any(layer.transfer for layer in _layers(report)):
        raise MissingDataError("no transfer scores in the report")
    order = layer_order(report)
    figure, axes = _figure(1, 2, 4.6, 3.6)
    for ax, (method, title) in zip(
        axes.flat, (("linear_probe", "linear probe"), ("knn", "k-NN")), strict=True
    ):
        baselines = {}
        for index, model in enumerate(report.models):
            xs, ys, bars, rates = [], [], [], []
            for layer in model.layers:
                score = mean_transfer(layer, method)
                if score is not None:
                    xs.append(order.index(layer.layer))
                    ys.append(100.0 * score.value)
                    bars.append(100.0 * _bar(score.stderr))
                    rates += [] if score.baseline is None else [100.0 * score.baseline]
            ax.errorbar(xs, ys, yerr=bars, marker="o", capsize=3, color=_colour(index), label=model.name)
            if rates:
                baselines[index] = float(np.mean(rates))
        # The same labels on the same split give every model the same majority rate: then draw it once.
        if len({round(rate, 9) for rate in baselines.values()}) == 1:
            ax.axhline(next(iter(baselines.values())), color="grey", linestyle="--", label="majority class")
        else:
            for index, rate in baselines.items():
                name = report.models[index].name
                ax.axhline(rate, color=_colour(index), linestyle="--", alpha=0.6, label=f"{name}: majority")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("mean held-out accuracy over labels (%)")
        _layer_axis(ax, order)
        ax.legend(fontsize=7)
    caption = "linear probe: standardisation + multinomial logistic regression; k-NN: cosine, weighted vote"
    return _finish(figure, "Transfer per layer", caption + "; bars: 95% CI; dashed: majority-class rate")


def information_transfer_points(report: Report) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str, str]]]:
    """The (I(T; label), linear-probe accuracy) pairs over every (model, layer, label) with both.

    Returns:
        ``x`` ``[P]`` I(T; label) in nats (Ross kNN on probe logits), ``y`` ``[P]`` held-out accuracy as
        a fraction, and ``names`` ``[P]`` of ``(model, layer, label)``. Infinite informations are left out.
    """
    xs, ys, names = [], [], []
    for model in report.models:
        for layer in model.layers:
            for label, row in layer.label_information.items():
                estimate = row.get(PROBE_KNN)
                score = layer.transfer.get(label, {}).get("linear_probe")
                if estimate is not None and score is not None and math.isfinite(estimate.value):
                    xs.append(estimate.value)
                    ys.append(score.value)
                    names.append((model.name, layer.layer, label))
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), names


def information_transfer_correlation(report: Report) -> tuple[float, int]:
    """Spearman's rank correlation of the `information_transfer_points` and their number (nan if < 3)."""
    x, y, _ = information_transfer_points(report)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, len(x)
    return float(spearmanr(x, y).statistic), len(x)


def figure_information_vs_transfer(report: Report) -> Figure:
    """Scatter of I(T; label) against linear-probe accuracy, coloured by model, Spearman rho in the title.

    Raises:
        MissingDataError: when no (model, layer, label) has both numbers.
    """
    x, y, names = information_transfer_points(report)
    if not len(x):
        raise MissingDataError("no (model, layer, label) has both I(T; label) and a linear-probe accuracy")
    rho, n = information_transfer_correlation(report)
    figure, axes = _figure(1, 1, 6.0, 4.6)
    ax = axes[0, 0]
    owners = np.array([model for model, _, _ in names])
    for index, model in enumerate(report.models):
        chosen = owners == model.name
        if chosen.any():
            ax.scatter(x[chosen], 100.0 * y[chosen], color=_colour(index), label=model.name, s=18)
    correlation = "undefined" if math.isnan(rho) else f"{rho:.3f}"
    ax.set_title(f"Spearman ρ = {correlation} (n = {n} points)", fontsize=10)
    ax.set_xlabel("I(T; label) (nats)")
    ax.set_ylabel("linear-probe held-out accuracy (%)")
    ax.legend(fontsize=8)
    caption = f"points: (model, layer, label); x: {LABEL_ESTIMATOR}; y: linear probe"
    return _finish(figure, "Information vs transfer", caption)


def figure_input_information(report: Report) -> Figure:
    """I(X; T_sigma) per layer at every sigma (left) and RankMe per layer (right); needs no labels.

    Raises:
        MissingDataError: when no layer has a noisy-channel estimate or an effective rank.
    """
    layers = _layers(report)
    if not any(layer.input_information or layer.effective_rank is not None for layer in layers):
        raise MissingDataError("no I(X; T_sigma) or effective rank in the report")
    order = layer_order(report)
    sigmas = relative_sigmas(report)
    markers = "osD^vP*X"
    figure, axes = _figure(1, 2, 4.6, 3.6)
    channel_ax, rank_ax = axes.flat
    for index, model in enumerate(report.models):
        colour = _colour(index)
        for number, sigma in enumerate(sigmas):
            found = [(order.index(layer.layer), layer.channel_at(sigma)) for layer in model.layers]
            found = [(x, e) for x, e in found if e is not None]
            channel_ax.errorbar(
                [x for x, _ in found],
                [_finite(e.value) for _, e in found],
                yerr=[_bar(e.stderr) for _, e in found],
                marker=markers[number % len(markers)],
                capsize=2,
                color=colour,
                alpha=1.0 - 0.5 * number / max(1, len(sigmas)),
                label=f"{model.name}, σ = {sigma:g}",
            )
        ranks = [
            (order.index(layer.layer), layer.effective_rank)
            for layer in model.layers
            if layer.effective_rank is not None
        ]
        rank_ax.errorbar(
            [x for x, _ in ranks],
            [r.value for _, r in ranks],
            yerr=[_bar(r.stderr) for _, r in ranks],
            marker="o",
            capsize=3,
            color=colour,
            label=model.name,
        )
    ceilings = {
        round(e.ceiling, 6) for layer in layers for e in layer.input_information if e.ceiling is not None
    }
    for ceiling in ceilings:
        channel_ax.axhline(ceiling, color="grey", linestyle="--", label=f"log N = {ceiling:.2f}")
    channel_ax.set_ylabel("I(X; T_σ) (nats)")
    channel_ax.set_title("I(X; T_σ), σ relative to feature scale", fontsize=10)
    rank_ax.set_ylabel("RankMe (effective dimensions)")
    rank_ax.set_title("effective rank (a proxy, not information)", fontsize=10)
    for ax in (channel_ax, rank_ax):
        _layer_axis(ax, order)
        ax.legend(fontsize=6)
    caption = "left: noisy channel, sample propagation (ceiling log N dashed); right: RankMe; bars: 95% CI"
    return _finish(figure, "Input information and effective rank per layer", caption)


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    figure.clear()
    return path


def plot_information_per_layer(report: Report, path: Path) -> Path:
    """`figure_information_per_layer` written to ``path`` (PNG)."""
    return _save(figure_information_per_layer(report), path)


def plot_information_plane(report: Report, path: Path) -> Path:
    """`figure_information_plane` written to ``path`` (PNG)."""
    return _save(figure_information_plane(report), path)


def plot_transfer(report: Report, path: Path) -> Path:
    """`figure_transfer` written to ``path`` (PNG)."""
    return _save(figure_transfer(report), path)


def plot_information_vs_transfer(report: Report, path: Path) -> Path:
    """`figure_information_vs_transfer` written to ``path`` (PNG)."""
    return _save(figure_information_vs_transfer(report), path)


def plot_input_information(report: Report, path: Path) -> Path:
    """`figure_input_information` written to ``path`` (PNG)."""
    return _save(figure_input_information(report), path)


PLOTS: dict[str, Callable[[Report, Path], Path]] = {
    "information_headline.png": plot_information_headline,
    "information_per_layer.png": plot_information_per_layer,
    "information_plane.png": plot_information_plane,
    "transfer.png": plot_transfer,
    "information_vs_transfer.png": plot_information_vs_transfer,
    "input_information.png": plot_input_information,
}


def write_plots(report: Report, out_dir: Path) -> list[Path]:
    """Every plot in `PLOTS` the report has data for, written into ``out_dir``.

    A plot whose data is missing (e.g. the label plots of a report without labels) is skipped with a
    logged warning.

    Returns:
        The paths written, in `PLOTS` order.
    """
    written = []
    for filename, plot in PLOTS.items():
        try:
            written.append(plot(report, Path(out_dir) / filename))
        except (MissingDataError, NoHeadlineError) as error:
            logger.warning("skipped %s: %s", filename, error)
    return written
