"""``RUN/loss.png``: the loss curves of a run, drawn from its ``metrics.jsonl``.

Each loss term is one colour: the training records as a line, the eval records (``eval_<term>``) as
dashed markers; a term equal to the total loss at every step (MAE's pixel loss) is drawn once, as
``loss``. The terms are in their own units (a pixel MSE, nats per token, ...), so the axis is logarithmic
when every value is positive. Built on `matplotlib.figure.Figure` (no pyplot, nothing shown).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure

from infomug.files import write_atomically

from .metrics import read_metrics

LOSS_PLOT_FILE = "loss.png"


def _curve(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
    points = [(step, value) for step, value in points if math.isfinite(value)]
    return [step for step, _ in points], [value for _, value in points]


def loss_figure(records: list[dict[str, Any]], title: str = "loss") -> Figure | None:
    """The loss terms of metrics ``records`` (`read_metrics`) against the step; None when none is finite."""
    train = [r for r in records if r.get("kind") == "train"]
    evaluation = [r for r in records if r.get("kind") == "eval"]
    terms = list(dict.fromkeys(key for r in train for key in r if key.startswith("loss")))
    # A term that is the whole loss (MAE's pixel loss, CLIP's contrastive loss) would hide its line.
    terms = [t for t in terms if t == "loss" or any(r.get(t) != r.get("loss") for r in train)]
    figure = Figure(figsize=(6.4, 4.0))
    ax = figure.subplots()
    drawn: list[float] = []
    for index, term in enumerate(terms):
        colour = colormaps["tab10"](index % 10)
        steps, values = _curve(train, term)
        if values:
            ax.plot(steps, values, color=colour, label=f"train {term}")
        eval_steps, eval_values = _curve(evaluation, f"eval_{term}")
        if eval_values:
            ax.plot(eval_steps, eval_values, "o--", color=colour, markersize=4, label=f"eval {term}")
        drawn += values + eval_values
    if not drawn:
        return None
    ax.set(xlabel="step", ylabel="loss term (own units)", title=title)
    if min(drawn) > 0:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def save_loss_plot(metrics_path: str | Path, path: str | Path) -> Path | None:
    """Draw the loss terms of ``metrics_path`` (`loss_figure`) into the PNG ``path``, written atomically.

    Returns:
        ``path``, or None when the log holds no finite loss yet (nothing is written).
    """
    figure = loss_figure(read_metrics(metrics_path), title=f"loss: {Path(metrics_path).parent.name}")
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return write_atomically(path, buffer.getvalue())
