"""The stop flag of an applying run: set by the first SIGINT/SIGTERM while armed, the handlers restored after."""

from __future__ import annotations

import os
import signal

import pytest

from bridge.interrupt import StopOnSignal, armed


def test_a_signal_while_armed_only_raises_the_flag_and_a_second_aborts() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = StopOnSignal()
    with stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.received is signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_nothing_is_installed_outside_the_armed_block() -> None:
    stop = StopOnSignal()
    before = signal.getsignal(signal.SIGINT)
    with armed(None):
        assert signal.getsignal(signal.SIGINT) is before
    with armed(stop):
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before and not stop()
