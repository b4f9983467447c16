"""Clients nobody here wrote accept our emulators: singer-io's tap-quickbooks 2.5.0 and tap-xero 2.6.0.

Each tap runs in its own virtualenv (`.venv-peers/`, built by `make peers`; never project dependencies) through
bench/peer_runner.py, against `bridge sandbox serve` with the published rate limits on: discovery (the taps'
own access checks), a full sync that must emit exactly the seeded ids, five invoices changed through the API,
and an incremental sync from the state the first left that must emit exactly the ids updated at or after its
bookmark (the changed invoices and their new payments among them).
"""

from __future__ import annotations

import pytest

from bench.peers import MAKE_VENVS, PEERS_VENV, conformance, venvs_ready


def test_tap_quickbooks_and_tap_xero_sync_exactly_the_seeded_ids() -> None:
    if not venvs_ready():
        # The one skip the conformance allows: the taps are not project dependencies and are not installed
        # offline; `make peers` builds their virtualenvs from the package index.
        pytest.skip(f"the taps' virtualenvs are not in {PEERS_VENV}: run `{MAKE_VENVS}` to build them")
    pulls = conformance(invoices=250, payments=250, changes=5)
    seen = {(p.client, p.kind): p for p in pulls}
    for tap in ("tap-quickbooks", "tap-xero"):
        full, again = seen[(tap, "full")], seen[(tap, "incremental")]
        # 250 invoices, 250 payments and the customers/contacts; then at least the 5 changed invoices.
        assert full.records > 500 and full.calls > 0
        assert 5 <= again.records < full.records
