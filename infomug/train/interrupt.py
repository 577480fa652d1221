"""Stop a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (a cluster's pre-emption notice).

While `StopSignals` is active, the first of these signals only records a request; the loop reads it at
the next step boundary, writes a checkpoint there and raises `TrainingInterrupted`, whose exit status is
the shell's for that signal (130 for SIGINT, 143 for SIGTERM). On one process a second signal aborts at
once (`KeyboardInterrupt`, what Ctrl-C does by default). Under ``torchrun`` repeats are ignored: torchrun
passes the signal it receives on to its workers, so a worker sees a terminal's Ctrl-C twice, and it kills
workers itself once its grace period is over.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signal_number: int) -> int:
    """The status a shell gives a process killed by ``signal_number``: 128 + the number (130 for SIGINT)."""
    return 128 + signal_number


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM at a step boundary, after writing a checkpoint there.

    A `KeyboardInterrupt`, so that ``except Exception`` does not swallow it.

    Attributes:
        step: optimizer steps completed (the checkpoint's step).
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        exit_status: 130 for SIGINT, 143 for SIGTERM.
        checkpoint: the checkpoint written at ``step``.
        run_dir: the run folder; training it again resumes from ``checkpoint``.
    """

    def __init__(self, step: int, signal_number: int, checkpoint: Path, run_dir: Path) -> None:
        self.step, self.checkpoint, self.run_dir = step, checkpoint, run_dir
        self.signal_name = signal.Signals(signal_number).name
        self.exit_status = exit_status(signal_number)
        super().__init__(
            f"interrupted at step {step} ({self.signal_name}); checkpoint written to {checkpoint};"
            f" resume with: infomug train --out {run_dir}"
        )


class StopSignals:
    """A context manager that turns SIGINT and SIGTERM into a stop request read with `received`.

    The handlers are installed only in the main thread (Python delivers signals there alone); elsewhere
    the context does nothing and the signals keep their previous handlers. The previous handlers are
    restored on exit.

    Args:
        abort_on_repeat: a second signal raises `KeyboardInterrupt` at once (False under ``torchrun``).
    """

    def __init__(self, abort_on_repeat: bool = True) -> None:
        self.abort_on_repeat = abort_on_repeat
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signal_number: int, frame: FrameType | None) -> None:
        # No I/O here: the handler runs between two bytecodes of whatever the loop was doing, which may be
        # a write to the same stream. The loop reports the request at the step boundary.
        if self.received is None:
            self.received = signal_number
        elif self.abort_on_repeat:
            raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, previous in self._previous.items():
            # None: the previous handler was not set from Python; the default is the nearest to it.
            signal.signal(number, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
