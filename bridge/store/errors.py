"""Errors of the store that the bridge's exception tree does not already name."""

from __future__ import annotations

from bridge.errors import BridgeError


class StoreBusyError(BridgeError):
    """Another process held a lock in the store for longer than we were willing to wait; try again."""

    retriable = True
