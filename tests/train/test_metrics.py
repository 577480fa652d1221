"""``metrics.jsonl``: JSON lines that stay valid, and a resume that drops what the killed run wrote later."""

import json
import math

import pytest

from infomug.train import read_metrics
from infomug.train.metrics import MetricsLog


def _write_run(path, steps):
    log = MetricsLog(path)
    for step in steps:
        log.write({"kind": "train", "step": step, "loss": 1.0 / step})
        if step % 2 == 0:
            log.write({"kind": "eval", "step": step, "eval_loss": 2.0 / step})
    return log


def test_records_round_trip_in_order_and_read_metrics_filters_by_kind(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"  # the folder is created
    _write_run(path, [1, 2, 3, 4])
    everything = read_metrics(path)
    assert [(r["kind"], r["step"]) for r in everything] == [
        ("train", 1),
        ("train", 2),
        ("eval", 2),
        ("train", 3),
        ("train", 4),
        ("eval", 4),
    ]
    assert [r["step"] for r in read_metrics(path, kind="train")] == [1, 2, 3, 4]
    assert read_metrics(path, kind="eval") == [
        {"kind": "eval", "step": 2, "eval_loss": 1.0},
        {"kind": "eval", "step": 4, "eval_loss": 0.5},
    ]
    assert read_metrics(path, kind="event") == []


def test_non_finite_floats_are_written_as_strings_so_every_line_is_strict_json(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write(
        {"kind": "train", "step": 1, "loss": math.nan, "grad_norm": math.inf, "x": -math.inf, "lr": 0.5}
    )
    line = path.read_text().splitlines()[0]

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    record = json.loads(line, parse_constant=refuse)
    assert record == {"kind": "train", "step": 1, "loss": "nan", "grad_norm": "inf", "x": "-inf", "lr": 0.5}


def test_resume_drops_later_records_and_a_half_written_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_run(path, [1, 2, 3, 4, 5])
    with path.open("a") as handle:
        handle.write('{"kind": "train", "step": 6, "lo')  # the line the kill cut
    resumed = MetricsLog(path, resume_step=3)
    assert [(r["kind"], r["step"]) for r in read_metrics(path)] == [
        ("train", 1),
        ("train", 2),
        ("eval", 2),
        ("train", 3),
    ]
    resumed.write({"kind": "train", "step": 4, "loss": 9.0})
    assert [r["loss"] for r in read_metrics(path, kind="train")] == [1.0, 0.5, 1.0 / 3, 9.0]
    assert path.read_text().endswith("}\n")


def test_a_cut_line_in_the_middle_is_dropped_and_a_resume_without_a_file_starts_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train", "step": 1}\n{"kind": "tra\n{"kind": "train", "step": 2}\n')
    MetricsLog(path, resume_step=5)
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    fresh = tmp_path / "other" / "metrics.jsonl"
    MetricsLog(fresh, resume_step=5).write({"kind": "train", "step": 6})
    assert read_metrics(fresh) == [{"kind": "train", "step": 6}]


def test_a_fresh_log_replaces_an_old_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_run(path, [1, 2])
    MetricsLog(path).write({"kind": "train", "step": 1, "loss": 7.0})
    assert read_metrics(path) == [{"kind": "train", "step": 1, "loss": 7.0}]


def test_a_disabled_log_writes_nothing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_run(path, [1])
    before = path.read_text()
    log = MetricsLog(path, resume_step=0, enabled=False)
    log.write({"kind": "train", "step": 2})
    assert path.read_text() == before, "non-main processes must neither truncate nor append"
    assert not (tmp_path / "none.jsonl").exists()
    MetricsLog(tmp_path / "none.jsonl", enabled=False).write({"kind": "train", "step": 1})
    assert not (tmp_path / "none.jsonl").exists()


def test_read_metrics_of_a_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "missing.jsonl")
