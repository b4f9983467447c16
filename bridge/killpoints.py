"""Deterministic crash points for the crash tests: with `BRIDGE_KILL_AT=NAME` the process dies by SIGKILL at NAME
(`NAME:N`: the N-th time it gets there).

A kill point marks a moment where a crash is the worst case, e.g. `token-refreshed`: the provider has
rotated the refresh token and answered, and the store has not yet heard of it. Unset, it costs one lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BRIDGE_KILL_AT"


_seen: dict[str, int] = {}


def reached(name: str) -> None:
    """Die here, now, without cleanup, when the environment asks for it."""
    wanted = os.environ.get(ENV)
    if not wanted or not wanted.startswith(name):
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
