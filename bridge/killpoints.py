"""Deterministic crash points for the crash tests: with `BRIDGE_KILL_AT=NAME` the process dies by SIGKILL at NAME.

A kill point marks a moment where a crash is the worst case, e.g. `token-refreshed`: the provider has
rotated the refresh token and answered, and the store has not yet heard of it. Unset, it costs one lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BRIDGE_KILL_AT"


def reached(name: str) -> None:
    """Die here, now, without cleanup, when the environment asks for it."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
