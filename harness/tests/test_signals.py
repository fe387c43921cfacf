"""procs.signals_interrupt(): SIGTERM and SIGHUP run the Ctrl-C cleanup."""

import os
import signal
import time

import pytest

from harness.procs import signals_interrupt


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_raises_keyboard_interrupt_and_cleanup_runs(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    cleaned = []
    with pytest.raises(KeyboardInterrupt, match=sig.name):
        with signals_interrupt():
            try:
                os.kill(os.getpid(), sig)
                time.sleep(5)   # the handler raises before this ends
            finally:
                cleaned.append(True)
    assert cleaned == [True]
    assert signal.getsignal(sig) == before
