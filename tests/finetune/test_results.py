import json
import math

import pytest
from scipy import stats

from infomug.finetune.report_files import markdown
from infomug.finetune.results import FinetuneReport, Fit, Interval, ModelEntry, paired_difference


def test_interval_is_a_student_t_interval_over_seeds():
    values = [0.5, 0.6, 0.7]
    interval = Interval.of(values)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert interval.mean == pytest.approx(0.6) and interval.half_width == pytest.approx(half)
    one = Interval.of([0.4])
    assert one.mean == 0.4 and math.isnan(one.low) and one.n == 1
    assert Interval.of([math.nan]).n == 0


SETTINGS = {
    "seeds": 2,
    "val_fraction": 0.1,
    "linear": {"max_iter": 10, "weight_decay_grid": [1e-3]},
    "partial": {"blocks": 2, "steps": 5, "batch_size": 8, "lr_grid": [1e-3]},
    "full": {
        "layer_decay": 0.75, "warmup_fraction": 0.1, "label_smoothing": 0.1, "drop_path": 0.1,
        "weight_decay": 0.05, "steps": 5, "batch_size": 8, "lr_grid": [1e-3],
    },
}  # fmt: skip


def _fit(key, seed, test, mode="full", lr=1e-3):
    return Fit(key, "t", mode, 0, seed, {"lr": lr}, {"a": 0.5}, {"a": test}, 100, 10, 50, 5, 1.0)


def _report():
    info = {"description": "d", "labels": {"a": 2}, "train_pool": 90, "val": 10, "test": 50}
    report = FinetuneReport(settings={}, tasks={"t": info})
    report.models = [ModelEntry("pre", "p", "run"), ModelEntry("scratch", "s", "random init", scratch=True)]
    report.fits = [_fit("p", 0, 0.8), _fit("p", 1, 0.9), _fit("s", 0, 0.6), _fit("s", 1, 0.75)]
    return report


def test_differences_are_paired_by_seed():
    cells = {c.model_key: c for c in _report().cells()}
    gain = paired_difference(cells["p"], cells["s"])
    assert gain.mean == pytest.approx(0.175) and gain.n == 2
    assert gain.half_width == pytest.approx(
        stats.t.ppf(0.975, 1) * 0.025 * 2 / 2 * math.sqrt(2) / math.sqrt(2)
    )


def test_json_round_trip_keeps_every_fit(tmp_path):
    report = _report()
    report.write(tmp_path / "f.json")
    again = FinetuneReport.read(tmp_path / "f.json")
    assert json.dumps(again.to_dict()) == json.dumps(report.to_dict())
    assert len(again.fits) == 4 and again.models == report.models


def test_markdown_has_the_table_the_gain_and_the_grid():
    report = _report()
    report.settings = SETTINGS
    text = markdown(report)
    assert "| pre | 85.0 ± " in text and "+17.5 [" in text and "*lr 0.001: 50.0" in text


def test_a_choice_at_the_end_of_its_grid_is_flagged():
    from infomug.finetune.report_files import grid_edge

    report = _report()
    report.fits += [_fit("p", 0, 0.1, lr=3e-3), _fit("p", 0, 0.1, lr=1e-4)]
    report.fits[-1].val_accuracy = {"a": 0.9}  # the smallest lr wins on validation
    cell = next(c for c in report.cells() if c.model_key == "p")
    assert cell.chosen == {"lr": 1e-4} and grid_edge(cell) == ", grid bottom"
    report.fits[-1].val_accuracy = {"a": 0.1}
    report.fits[-2].val_accuracy = {"a": 0.9}
    assert grid_edge(next(c for c in report.cells() if c.model_key == "p")) == ", grid top"
    report.fits[-2].val_accuracy = {"a": 0.1}
    assert grid_edge(next(c for c in report.cells() if c.model_key == "p")) == ""


def test_measure_md_closes_with_the_fine_tuning_tables_once(tmp_path):
    from infomug.finetune.report_files import append_to_measure_report

    report = _report()
    report.settings = SETTINGS
    path = tmp_path / "measure.md"
    path.write_text("# Measure\n\n## Information on equal terms\n")
    append_to_measure_report(report, path)
    append_to_measure_report(report, path)  # a rerun replaces the section, never repeats it
    text = path.read_text()
    assert text.startswith("# Measure") and text.count("## Fine-tuning transfer") == 1 and "### t: d" in text
