"""``loss.png``: each loss term of ``metrics.jsonl``, train as a line and eval as markers."""

import math

from infomug.train.loss_plot import loss_figure, save_loss_plot
from infomug.train.metrics import MetricsLog

PNG = b"\x89PNG\r\n\x1a\n"


def _lines(figure) -> dict[str, list]:
    return {line.get_label(): list(line.get_ydata()) for line in figure.axes[0].get_lines()}


def test_every_loss_term_of_train_and_eval_records_is_drawn():
    records = [
        {"kind": "train", "step": 1, "loss": 2.0, "loss_pixel": 1.0, "loss_caption": 10.0, "lr": 1e-3},
        {"kind": "eval", "step": 1, "eval_loss": 1.8, "eval_loss_pixel": 0.9, "eval_loss_caption": 9.0},
        {"kind": "event", "step": 2, "event": "diverged", "term": "loss_caption"},
        {"kind": "train", "step": 2, "loss": "nan", "loss_pixel": 0.8, "loss_caption": math.inf, "lr": 1e-3},
    ]
    lines = _lines(loss_figure(records))
    assert lines == {
        "train loss": [2.0],  # the "nan" string and inf are left out
        "eval loss": [1.8],
        "train loss_pixel": [1.0, 0.8],
        "eval loss_pixel": [0.9],
        "train loss_caption": [10.0],
        "eval loss_caption": [9.0],
    }
    assert loss_figure(records).axes[0].get_yscale() == "log", "terms in their own units, all positive"


def test_a_term_equal_to_the_loss_is_drawn_once():
    # MAE's only term is its loss: one line, not a second one hiding the first.
    records = [{"kind": "train", "step": s, "loss": 1.0 / s, "loss_pixel": 1.0 / s} for s in (1, 2)]
    assert set(_lines(loss_figure(records))) == {"train loss"}


def test_the_png_is_written_from_the_log_and_not_before_a_finite_loss(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    assert save_loss_plot(log.path, tmp_path / "loss.png") is None
    assert not (tmp_path / "loss.png").exists()
    log.write({"kind": "train", "step": 1, "loss": -0.5})  # e.g. a bound's negative loss: a linear axis
    log.write({"kind": "train", "step": 2, "loss": 0.5})
    assert save_loss_plot(log.path, tmp_path / "loss.png") == tmp_path / "loss.png"
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG
    assert sorted(path.name for path in tmp_path.iterdir()) == ["loss.png", "metrics.jsonl"], "no temp file"
