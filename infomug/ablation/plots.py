"""The sweep's plots: metrics against lambda_L, information against transfer, caption noise, per factor.

Each ``plot_*`` function draws one panel on ``ax`` (a new figure when None) and returns the figure, so a
notebook can compose its own; `write_sweep_plots` writes the report's PNGs. Figures are built with
`matplotlib.figure.Figure` (Agg canvas, no pyplot): nothing global is touched. Error bars are the 95%
Student-t interval over seeds (none over one seed); dots are the seeds. Colours follow the spec's variant
order in every plot.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from infomug.files import write_atomically

from .report import SweepResults
from .stats import Summary, spearman

DPI = 120
PER_FACTOR_KINDS = {"probe_acc": "linear-probe accuracy", "knn_acc": "k-NN accuracy", "info": "I(T; factor)"}
SEED_JITTER = 0.08  # x spread of the per-seed dots, in category widths
NOISE_JITTER = 0.015  # the same on the caption-noise axis (fractions)


def _colour(results: SweepResults, variant: str) -> Any:
    return colormaps["tab10"](results.variants().index(variant) % 10)


def _axes(ax: Axes | None, width: float = 5.0, height: float = 3.8) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=(width, height), dpi=DPI).subplots()


def _scale(results: SweepResults, key: str) -> float:
    return 100.0 if results.metric(key)["kind"] == "accuracy" else 1.0


def _axis_label(results: SweepResults, key: str) -> str:
    info = results.metric(key)
    unit = {"accuracy": "%", "information": "nats", "entropy": "nats", "rank": "dimensions"}.get(info["kind"])
    bound = ", lower bound" if info.get("bound") == "lower" else ""
    return f"{info['label']}" + (f" ({unit}{bound})" if unit else "")


def _half(summary: Summary) -> float:
    # No interval over one seed: NaN draws no bar (a 0 would draw a cap that claims one).
    return summary.half_width if math.isfinite(summary.half_width) else math.nan


def _not_measured(ax: Axes, what: str) -> Figure:
    ax.text(0.5, 0.5, f"{what}: not measured", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return ax.figure


def _seed_dots(
    ax: Axes, x: float, summary: Summary, scale: float, colour: Any, jitter: float = SEED_JITTER
) -> None:
    offsets = np.linspace(-jitter, jitter, summary.n) if summary.n > 1 else np.zeros(1)
    values = np.asarray(summary.values, dtype=float) * scale
    ax.scatter(x + offsets, values, s=12, color=colour, alpha=0.5, zorder=3, linewidths=0)


def plot_metric_vs_lambda(results: SweepResults, metric: str, ax: Axes | None = None) -> Figure:
    """``metric`` of the main sweep against lambda_L: MAE (lambda_L = 0) and MUG as categories in
    increasing lambda_L, mean with interval bars and seed dots; objectives without lambda_L (CLIP, SimCLR)
    as labelled horizontal bands (mean, interval shaded).

    Raises:
        KeyError: if no run has ``metric``.
    """
    ax = _axes(ax)
    scale = _scale(results, metric)
    groups = [g for g in results.groups() if g["summary"].get(metric)]
    if not groups:
        return _not_measured(ax, results.metric(metric)["label"])
    order = results.variants()
    swept = sorted(
        (g for g in groups if g["caption_loss_weight"] is not None),
        key=lambda g: (g["caption_loss_weight"], order.index(g["variant"])),
    )
    for x, group in enumerate(swept):
        summary = Summary.from_dict(group["summary"][metric])
        colour = _colour(results, group["variant"])
        ax.errorbar(x, scale * summary.mean, yerr=scale * _half(summary), fmt="o", color=colour, capsize=4)
        _seed_dots(ax, x, summary, scale, colour)
    if swept:
        means = [scale * g["summary"][metric]["mean"] for g in swept]
        ax.plot(range(len(swept)), means, color="grey", linewidth=0.8, zorder=1)
    ax.set_xticks(range(len(swept)))
    ax.set_xticklabels([f"{g['variant']}\nλ={g['caption_loss_weight']:g}" for g in swept], fontsize=7)
    for group in groups:
        if group["caption_loss_weight"] is not None:
            continue
        summary = Summary.from_dict(group["summary"][metric])
        colour = _colour(results, group["variant"])
        mean = scale * summary.mean
        ax.axhline(mean, color=colour, linestyle="--", label=f"{group['variant']} ({group['objective']})")
        if math.isfinite(summary.half_width):
            half = scale * summary.half_width
            ax.axhspan(mean - half, mean + half, color=colour, alpha=0.15, linewidth=0)
    if any(g["caption_loss_weight"] is None for g in groups):
        ax.legend(fontsize=7)
    # Categories, not a numeric axis: 0.05 and 1.0 would otherwise crowd the small weights together.
    ax.set_xlabel("λ_L, caption-loss weight (in increasing order, not to scale; MAE = 0)", fontsize=8)
    ax.set_ylabel(_axis_label(results, metric), fontsize=8)
    ax.set_title(results.metric(metric)["label"], fontsize=9)
    return ax.figure


def plot_information_vs_transfer(
    results: SweepResults, information: str, transfer: str, ax: Axes | None = None
) -> Figure:
    """Every measured main-sweep run as a point (``information``, ``transfer``), a colour per variant;
    Spearman's rho, its p-value and n in the title.

    Raises:
        KeyError: if no run has ``information`` or ``transfer``.
    """
    ax = _axes(ax)
    x_scale, y_scale = _scale(results, information), _scale(results, transfer)
    xs, ys = [], []
    for group in results.groups():
        runs = [
            r for r in results.group_runs(group["variant"]) if {information, transfer} <= set(r["metrics"])
        ]
        if not runs:
            continue
        x = [r["metrics"][information] for r in runs]
        y = [r["metrics"][transfer] for r in runs]
        colour = _colour(results, group["variant"])
        ax.scatter(
            np.multiply(x, x_scale), np.multiply(y, y_scale), color=colour, label=group["variant"], s=20
        )
        xs += x
        ys += y
    if not xs:
        return _not_measured(ax, f"{information} and {transfer}")
    result = spearman(xs, ys)
    rho = "undefined" if math.isnan(result.rho) else f"{result.rho:.2f}"
    p = "" if math.isnan(result.p_value) else f", p = {result.p_value:.2g}"
    ax.set_title(f"Spearman ρ = {rho}{p}, n = {result.n} runs", fontsize=9)
    ax.set_xlabel(_axis_label(results, information), fontsize=8)
    ax.set_ylabel(_axis_label(results, transfer), fontsize=8)
    ax.legend(fontsize=7)
    return ax.figure


def plot_caption_noise(results: SweepResults, metric: str, ax: Axes | None = None) -> Figure:
    """``metric`` against the irrelevant-caption fraction, one line per caption-noise variant (mean with
    interval bars, seed dots).

    Raises:
        KeyError: if no run has ``metric``.
    """
    ax = _axes(ax)
    scale = _scale(results, metric)
    drawn = False
    for variant in results.noise_variants():
        points = []
        for fraction in results.noise_fractions():
            record = results.group(variant, fraction)["summary"].get(metric)
            if record is not None:
                points.append((fraction, Summary.from_dict(record)))
        if not points:
            continue
        drawn = True
        colour = _colour(results, variant)
        # A caption-free objective's noise cells all read its main runs: one run set drawn at every fraction.
        main = results.group(variant)["runs"]
        shared = all(results.group(variant, f)["runs"] == main for f in results.noise_fractions())
        ax.errorbar(
            [f for f, _ in points],
            [scale * s.mean for _, s in points],
            yerr=[scale * _half(s) for _, s in points],
            marker="o",
            capsize=4,
            color=colour,
            linestyle="--" if shared else "-",
            label=f"{variant} (its main runs at every fraction)" if shared else variant,
        )
        for fraction, summary in points:
            _seed_dots(ax, fraction, summary, scale, colour, NOISE_JITTER)
    if not drawn:
        return _not_measured(ax, results.metric(metric)["label"] if results.has_metric(metric) else metric)
    ax.set_xlabel("fraction of irrelevant training captions")
    ax.set_ylabel(_axis_label(results, metric), fontsize=8)
    ax.set_title(results.metric(metric)["label"], fontsize=9)
    ax.legend(fontsize=7)
    return ax.figure


def plot_per_factor(results: SweepResults, kind: str = "probe_acc", ax: Axes | None = None) -> Figure:
    """Grouped bars: ``kind`` (``probe_acc``, ``knn_acc`` or ``info``) per factor, a bar per main-sweep
    variant with its interval; the majority-class rate (accuracies) or H(factor) (information) marked.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    if kind not in PER_FACTOR_KINDS:
        raise ValueError(f"kind must be one of {list(PER_FACTOR_KINDS)}, got {kind!r}")
    factors = [f for f in results.factors() if results.has_metric(f"{kind}/{f}")]
    ax = _axes(ax, width=max(6.0, 0.9 * len(factors) + 2.0), height=4.0)
    groups = [g for g in results.groups() if any(f"{kind}/{f}" in g["summary"] for f in factors)]
    if not groups:
        return _not_measured(ax, PER_FACTOR_KINDS[kind])
    scale = 100.0 if kind != "info" else 1.0
    width = 0.8 / len(groups)
    for index, group in enumerate(groups):
        xs, means, halves = [], [], []
        for position, factor in enumerate(factors):
            record = group["summary"].get(f"{kind}/{factor}")
            if record is not None:
                summary = Summary.from_dict(record)
                xs.append(position - 0.4 + width * (index + 0.5))
                means.append(scale * summary.mean)
                halves.append(scale * _half(summary))
        colour = _colour(results, group["variant"])
        ax.bar(xs, means, width=width, color=colour, label=group["variant"])
        ax.errorbar(xs, means, yerr=halves, fmt="none", ecolor="black", capsize=2, linewidth=0.8)
    reference = "ceiling" if kind == "info" else "baseline"
    marked = False
    for position, factor in enumerate(factors):
        value = results.metric(f"{kind}/{factor}").get(reference)
        if value is not None:
            name = "H(factor), ceiling" if kind == "info" else "majority class"
            label = None if marked else name
            ax.hlines(
                scale * value, position - 0.45, position + 0.45, colors="black", linestyles="--", label=label
            )
            marked = True
    ax.set_xticks(range(len(factors)))
    ax.set_xticklabels(factors, rotation=30, ha="right", fontsize=8)
    unit = "nats, lower bound" if kind == "info" else "%"
    ax.set_ylabel(f"{PER_FACTOR_KINDS[kind]} ({unit})", fontsize=8)
    ax.set_title(f"{PER_FACTOR_KINDS[kind]} per factor, main sweep", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return ax.figure


def _grid(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(width * cols, height * rows + 0.6), dpi=DPI)
    return figure, figure.subplots(rows, cols, squeeze=False)


def _save(figure: Figure, path: Path, title: str, caption: str) -> Path:
    figure.suptitle(title, fontsize=11)
    figure.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7, style="italic")
    figure.tight_layout(rect=(0.0, 0.04, 1.0, 0.95))
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=DPI)
    figure.clear()
    return write_atomically(path, png.getvalue())


def _measured(results: SweepResults, keys: Sequence[str | None]) -> bool:
    return any(key is not None and results.has_metric(key) for key in keys)


def write_sweep_plots(results: SweepResults, root: str | Path) -> list[Path]:
    """Write the report's PNGs into ``root``: ``metric_vs_lambda.png``, ``information_vs_transfer.png``,
    ``per_factor.png`` and ``caption_noise.png``, each only when some run measured what it shows.

    Returns:
        The paths written.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    plane = results.plane_key
    bars = "bars: 95% t-interval over seeds; dots: seeds"
    written = []
    keys = [
        key for key in ("probe_acc/mean", "knn_acc/mean", "info/mean", plane) if _measured(results, [key])
    ]
    if keys:
        figure, axes = _grid(2, 2, 4.6, 3.6)
        for ax, key in zip(axes.flat, keys, strict=False):
            plot_metric_vs_lambda(results, key, ax)
        for ax in list(axes.flat)[len(keys) :]:
            ax.set_visible(False)
        path = root / "metric_vs_lambda.png"
        written.append(
            _save(
                figure,
                path,
                f"{results.name}: main sweep against λ_L",
                f"{bars}; dashed bands: objectives without λ_L",
            )
        )
    pairs = [(key, "probe_acc/mean") for key in (plane, "info/mean") if _measured(results, [key])]
    if pairs and _measured(results, ["probe_acc/mean"]):
        figure, axes = _grid(1, len(pairs), 4.8, 3.8)
        for ax, (information, transfer) in zip(axes.flat, pairs, strict=True):
            plot_information_vs_transfer(results, information, transfer, ax)
        path = root / "information_vs_transfer.png"
        written.append(
            _save(
                figure,
                path,
                f"{results.name}: information against transfer",
                "points: main-sweep runs (every seed)",
            )
        )
    if results.factors() and _measured(results, results.metric_keys("probe_acc/")):
        figure, axes = _grid(1, 1, max(6.0, 0.9 * len(results.factors()) + 2.0), 4.2)
        plot_per_factor(results, "probe_acc", axes[0, 0])
        path = root / "per_factor.png"
        written.append(
            _save(
                figure,
                path,
                f"{results.name}: per factor",
                "bars: 95% t-interval over seeds; dashed: majority-class rate",
            )
        )
    keys = [key for key in ("probe_acc/mean", "info/mean", "caption_info") if _measured(results, [key])]
    if results.noise_groups() and keys and any(g["runs"] for g in results.noise_groups()):
        figure, axes = _grid(1, len(keys), 4.4, 3.6)
        for ax, key in zip(axes.flat, keys, strict=True):
            plot_caption_noise(results, key, ax)
        path = root / "caption_noise.png"
        written.append(_save(figure, path, f"{results.name}: caption noise", bars))
    return written
