"""``finetune.md`` and ``finetune.png`` from a `FinetuneReport` (``finetune.json`` is its own `write`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .results import Cell, FinetuneReport, Interval, paired_difference

MARKDOWN_FILE = "finetune.md"
PLOT_FILE = "finetune.png"
MODE_ORDER = ("linear", "partial", "full")


def write_report_files(report: FinetuneReport, out: Path) -> None:
    """Write ``finetune.json``, ``finetune.md`` and ``finetune.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    report.write(out / "finetune.json")
    (out / MARKDOWN_FILE).write_text(markdown(report))
    plot(report, out / PLOT_FILE)


def append_to_measure_report(report: FinetuneReport, measure_markdown: Path) -> None:
    """Close ``measure.md`` with the fine-tuning tables, headings one level down (nothing if it is absent)."""
    if not measure_markdown.exists():
        return
    body = (
        markdown(report)
        .replace("\n## ", "\n### ")
        .replace("# Fine-tuning transfer", "## Fine-tuning transfer")
    )
    text = measure_markdown.read_text().split("\n## Fine-tuning transfer")[0].rstrip("\n")
    measure_markdown.write_text(text + "\n\n" + body)


def budget_text(budget: int) -> str:
    return "all" if budget == 0 else f"{budget:,}"


def percent(interval: Interval) -> str:
    if not math.isfinite(interval.mean):
        return "diverged"
    if not math.isfinite(interval.half_width):
        return f"{100 * interval.mean:.1f}"
    return f"{100 * interval.mean:.1f} ± {100 * interval.half_width:.1f}"


def signed(interval: Interval) -> str:
    if not math.isfinite(interval.mean):
        return "n/a"
    text = f"{100 * interval.mean:+.1f}"
    if math.isfinite(interval.half_width):
        text += f" [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"
    return text


def hyper_text(hyper: dict[str, float]) -> str:
    """``{"lr": 0.001}`` -> ``"lr 0.001"``; ``{"weight_decay": ...}`` -> ``"wd ..."``."""
    return ", ".join(("lr" if k == "lr" else "wd") + f" {v:g}" for k, v in hyper.items())


def grid_edge(cell: Cell) -> str:
    """``", grid top"`` / ``", grid bottom"`` when the choice is an end of a grid of >= 2 values: a
    better value may lie beyond it."""
    values = [next(iter(hyper.values())) for hyper, _ in cell.grid]
    chosen = next(iter(cell.chosen.values()))
    if len(values) < 2:
        return ""
    if chosen == max(values):
        return ", grid top"
    return ", grid bottom" if chosen == min(values) else ""


def _columns(cells: list[Cell]) -> list[tuple[str, int]]:
    present = {(c.mode, c.budget) for c in cells}
    return sorted(present, key=lambda mb: (MODE_ORDER.index(mb[0]), mb[1] or 1 << 30))


def markdown(report: FinetuneReport) -> str:
    """The report as markdown: per task a table of test accuracy, then paired gains over from-scratch."""
    settings = report.settings
    cells = report.cells()
    full, partial = settings["full"], settings["partial"]
    lines = [
        "# Fine-tuning transfer",
        "",
        "Test accuracy in %, mean over the task's labels, mean ± 95% Student-t half-width over"
        f" {settings['seeds']} seed(s) (no interval for one seed). Hyper-parameters are chosen per model,"
        f" task, mode and budget on a validation split ({settings['val_fraction']:.0%} of the task's"
        " training images, the same for every model), on the first seed; the test set chooses nothing."
        " A choice at an end of its grid is marked: a better value may lie beyond it.",
        "",
        f"- **linear**: frozen encoder, mean of its final-norm patch tokens, BatchNorm-standardised linear"
        f" heads by L-BFGS to convergence (max {settings['linear']['max_iter']} iterations); grid: L2"
        f" penalty {', '.join(f'{v:g}' for v in settings['linear']['weight_decay_grid'])}.",
        f"- **partial**: the last {partial['blocks']} blocks and the heads, {partial['steps']} steps of"
        f" {partial['batch_size']}; grid: lr {', '.join(f'{v:g}' for v in partial['lr_grid'])}.",
        f"- **full**: every block, MAE's recipe: AdamW (0.9, 0.999), layer-wise lr decay"
        f" {full['layer_decay']}, {full['warmup_fraction']:.0%} warmup then cosine, label smoothing"
        f" {full['label_smoothing']}, drop path {full['drop_path']}, weight decay {full['weight_decay']},"
        f" {full['steps']} steps of {full['batch_size']}; grid: lr"
        f" {', '.join(f'{v:g}' for v in full['lr_grid'])}.",
        "- **from scratch**: the same architecture from a random initialisation (one per seed), the same"
        " recipe, budget and grid: the reference pre-training must beat.",
        "",
    ]
    for task, info in report.tasks.items():
        task_cells = [c for c in cells if c.task == task]
        if not task_cells:
            continue
        labels = ", ".join(f"{name} ({count})" for name, count in info["labels"].items())
        lines += [
            f"## {task}: {info['description']}",
            "",
            f"Labels (classes): {labels}. Training pool {info['train_pool']:,}, validation {info['val']:,},"
            f" test {info['test']:,} images.",
            "",
        ]
        lines += _task_table(report, task_cells)
        lines += _gains(report, task_cells)
    lines += _grids(report, cells)
    return "\n".join(lines) + "\n"


def _task_table(report: FinetuneReport, cells: list[Cell]) -> list[str]:
    columns = _columns(cells)
    header = "| model | " + " | ".join(f"{mode} · {budget_text(budget)}" for mode, budget in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for entry in report.models:
        row = {(c.mode, c.budget): c for c in cells if c.model_key == entry.key}
        if not row:
            continue
        values = []
        for column in columns:
            cell = row.get(column)
            values.append(
                "—" if cell is None else f"{percent(cell.test)} ({hyper_text(cell.chosen)}{grid_edge(cell)})"
            )
        lines.append(f"| {entry.name} | " + " | ".join(values) + " |")
    return [*lines, ""]


def _gains(report: FinetuneReport, cells: list[Cell]) -> list[str]:
    scratch = {(c.mode, c.budget): c for c in cells if report.model(c.model_key).scratch}
    rows = []
    for cell in cells:
        entry = report.model(cell.model_key)
        reference = scratch.get((cell.mode, cell.budget))
        if entry.scratch or reference is None:
            continue
        rows.append(
            f"| {entry.name} | {cell.mode} · {budget_text(cell.budget)} |"
            f" {signed(paired_difference(cell, reference))} |"
        )
    if not rows:
        return []
    return [
        "Pre-trained minus from scratch in accuracy points, paired by seed (same labelled images), 95%"
        " interval:",
        "",
        "| model | mode · labels | gain over from scratch |",
        "|---|---|---|",
        *rows,
        "",
    ]


def _grids(report: FinetuneReport, cells: list[Cell]) -> list[str]:
    lines = [
        "## Hyper-parameter search (validation accuracy %, first seed; * = chosen)",
        "",
        "| model | task | mode · labels | grid | s per fit |",
        "|---|---|---|---|---|",
    ]
    for cell in cells:
        grid = "; ".join(
            f"{'*' if hyper == cell.chosen else ''}{hyper_text(hyper)}: {100 * value:.1f}"
            for hyper, value in cell.grid
        )
        lines.append(
            f"| {cell.model} | {cell.task} | {cell.mode} · {budget_text(cell.budget)} | {grid} |"
            f" {cell.seconds:.0f} |"
        )
    return [*lines, ""]


def plot(report: FinetuneReport, path: Path) -> None:
    """One panel per task: test accuracy per mode and label budget, a bar per model with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = report.cells()
    tasks = [t for t in report.tasks if any(c.task == t for c in cells)]
    if not tasks:
        return
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        task_cells = [c for c in cells if c.task == task]
        columns = _columns(task_cells)
        models = [m for m in report.models if any(c.model_key == m.key for c in task_cells)]
        width = 0.8 / max(1, len(models))
        for i, entry in enumerate(models):
            row = {(c.mode, c.budget): c for c in task_cells if c.model_key == entry.key}
            x = np.arange(len(columns)) + (i - (len(models) - 1) / 2) * width
            means = [100 * row[c].test.mean if c in row else np.nan for c in columns]
            errors = [100 * row[c].test.half_width if c in row else np.nan for c in columns]
            errors = [e if math.isfinite(e) else 0.0 for e in errors]
            axis.bar(
                x,
                means,
                width,
                yerr=errors,
                capsize=2,
                label=entry.name,
                hatch="//" if entry.scratch else None,
            )
        axis.set_xticks(np.arange(len(columns)))
        axis.set_xticklabels([f"{mode}\n{budget_text(budget)}" for mode, budget in columns], fontsize=8)
        axis.set_title(task, fontsize=10)
        axis.set_ylabel("test accuracy (%)")
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
