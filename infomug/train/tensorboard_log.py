"""Optional TensorBoard logging (``train.tensorboard=true``): every metric of ``metrics.jsonl`` as a scalar.

    RUN/tensorboard/    events of `torch.utils.tensorboard.SummaryWriter`; view with
                        ``tensorboard --logdir RUN/tensorboard``

Train records go under ``train/`` (``train/loss``, ``train/lr``, ...), eval records under ``eval/``
without their ``eval_`` prefix (``eval/loss``), so both loss curves sit side by side.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TENSORBOARD_DIR = "tensorboard"
INSTALL = "pip install 'infomug[tensorboard]' (or pip install tensorboard)"


def require_tensorboard() -> None:
    """Check that `torch.utils.tensorboard` can be imported.

    Raises:
        ValueError: naming the package to install (a config asks for what this environment lacks).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as error:
        raise ValueError(
            f"train.tensorboard=true needs the tensorboard package: {INSTALL} ({error})"
        ) from error


class TensorBoardLog:
    """Writes the scalars of each metrics record to ``RUN/tensorboard/``.

    Args:
        run_dir: the run folder.
        resume_step: when resuming from the checkpoint of this step, events of later steps (written by
            the stopped run after its checkpoint) are hidden, as `MetricsLog` drops their lines.

    Raises:
        ValueError: the tensorboard package is not installed (see `require_tensorboard`).
    """

    def __init__(self, run_dir: str | Path, resume_step: int | None = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        purge_step = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge_step)

    def write(self, record: dict[str, Any]) -> None:
        """Add every finite number of a ``train`` or ``eval`` record at its ``step`` (others are skipped)."""
        kind = record.get("kind")
        if kind not in ("train", "eval"):
            return
        for key, value in record.items():
            if key in ("kind", "step") or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(f"{kind}/{key.removeprefix('eval_')}", value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
