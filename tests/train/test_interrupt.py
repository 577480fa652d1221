"""`StopSignals` turns SIGINT / SIGTERM into a request the loop reads; `TrainingInterrupted` names the
checkpoint and the shell's exit status. (The loop's side, a real run stopped and resumed, is in
test_train_cli.py.)"""

import os
import signal
import threading
from pathlib import Path

import pytest

from infomug.train.interrupt import StopSignals, TrainingInterrupted, exit_status


def _deliver(number: int) -> None:
    os.kill(os.getpid(), number)  # Python runs the handler before the next bytecode of the main thread


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_the_first_signal_is_recorded_and_a_second_aborts(number):
    before = signal.getsignal(number)
    with pytest.raises(KeyboardInterrupt) as aborted, StopSignals() as signals:
        _deliver(number)
        assert signals.received == number, "recorded, not raised"
        _deliver(number)
    assert not isinstance(aborted.value, TrainingInterrupted)
    assert signal.getsignal(number) == before, "the previous handler is restored"


def test_under_torchrun_repeats_are_ignored():
    # torchrun passes a terminal's Ctrl-C on to workers that received it already.
    with StopSignals(abort_on_repeat=False) as signals:
        _deliver(signal.SIGINT)
        _deliver(signal.SIGINT)
        _deliver(signal.SIGTERM)
    assert signals.received == signal.SIGINT


def test_outside_the_main_thread_no_handler_is_installed():
    before, seen = signal.getsignal(signal.SIGINT), {}

    def enter():
        with StopSignals() as signals:
            seen["handler"] = signal.getsignal(signal.SIGINT)
            seen["received"] = signals.received

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == {"handler": before, "received": None}


def test_training_interrupted_names_the_checkpoint_and_the_shell_status():
    stopped = TrainingInterrupted(
        65, signal.SIGTERM, Path("runs/x/checkpoints/step_00000065"), Path("runs/x")
    )
    assert isinstance(stopped, KeyboardInterrupt), "`except Exception` does not swallow it"
    assert (stopped.step, stopped.signal_name, stopped.exit_status) == (65, "SIGTERM", 143)
    assert str(stopped) == (
        "interrupted at step 65 (SIGTERM); checkpoint written to runs/x/checkpoints/step_00000065;"
        " resume with: infomug train --out runs/x"
    )
    assert exit_status(signal.SIGINT) == 130
