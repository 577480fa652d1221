"""``RUN/metrics.jsonl``: one JSON object per line, written by the main process only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    """Append-only JSON-lines log of training and eval records.

    Every record has ``"step"`` (optimizer steps completed) and ``"kind"`` (``"train"``, ``"eval"`` or
    ``"event"``). Non-finite floats are written as strings (``"nan"``, ``"inf"``) so each line stays JSON.

    Args:
        path: the ``.jsonl`` file.
        resume_step: when resuming from the checkpoint of this step, records of later steps (written by
            the killed run after its checkpoint) are dropped first, so the log matches an uninterrupted run.
            None starts a fresh log.
        enabled: False on non-main processes (nothing is written).
    """

    def __init__(self, path: str | Path, resume_step: int | None = None, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the kill
                if record.get("step", math.inf) <= resume_step:
                    kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (flushed at once, so a kill loses at most the line being written)."""
        if not self.enabled:
            return
        clean = {
            key: (str(value) if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in record.items()
        }
        with self.path.open("a") as handle:
            handle.write(json.dumps(clean) + "\n")


def read_metrics(path: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (only those of ``kind`` if given), in order.

    Raises:
        FileNotFoundError: if the file does not exist.
    """
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [record for record in records if kind is None or record.get("kind") == kind]
