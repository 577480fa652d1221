"""A report folder: ``measure.json`` (everything), ``measure.md`` (for people) and the plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from infomug.files import write_atomically

from .markdown import render_markdown
from .plots import write_plots
from .results import Report

logger = logging.getLogger(__name__)

JSON_FILE = "measure.json"
MARKDOWN_FILE = "measure.md"


def write_report(report: Report, out: str | Path) -> list[Path]:
    """Write ``measure.json``, ``measure.md`` and the plots into ``out`` (created); return the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out / JSON_FILE, out / MARKDOWN_FILE
    write_atomically(json_path, json.dumps(report.to_dict(), indent=1) + "\n")
    write_atomically(markdown_path, render_markdown(report))
    paths = [json_path, markdown_path, *write_plots(report, out)]
    logger.info("report written to %s", out)
    return paths


def read_report(path: str | Path) -> Report:
    """Read a report from its folder or its ``measure.json``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid JSON or not a report of this schema version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / JSON_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no report at {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON (truncated?): {error}") from error
    if not isinstance(data, dict) or "models" not in data:
        raise ValueError(f"{path} is not an infomug measure report")
    try:
        return Report.from_dict(data)
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path} is not a complete infomug measure report: {error!r} is missing or wrong"
        ) from error
