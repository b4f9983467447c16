"""Connections and the token vault's rows."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.model import RenegotiationRequest
from bridge.store import Cursor, Quarantined, Store
from tests.store.factories import D, invoice, late_fee, payment, raw_invoice


def test_upsert_connection_adds_then_updates_keeping_created_at(store: Store) -> None:
    store.upsert_connection("zeta-xero", "xero", "tenant-1", None)
    store.upsert_connection("acme-qbo", "quickbooks", "9341", "http://127.0.0.1:8765")
    created = store.get_connection("acme-qbo")
    assert created is not None
    store.upsert_connection("acme-qbo", "quickbooks", "9342", None)

    assert [c.name for c in store.connections()] == ["acme-qbo", "zeta-xero"]
    updated = store.get_connection("acme-qbo")
    assert updated is not None
    assert (updated.provider, updated.tenant_id, updated.base_url) == ("quickbooks", "9342", None)
    assert updated.created_at == created.created_at
    assert updated.last_sync_at is None
    assert store.get_connection("nobody") is None


def test_mark_synced(store: Store) -> None:
    store.upsert_connection("acme", "quickbooks", "9341", None)
    at = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
    store.mark_synced("acme", at)
    row = store.get_connection("acme")
    assert row is not None and row.last_sync_at == at
    store.mark_synced("unknown", at)  # nothing to record, nothing raised
    assert store.get_connection("unknown") is None


def test_remove_connection_forgets_its_state_but_keeps_the_audit_trail(store: Store) -> None:
    for name in ("acme", "other"):
        store.upsert_connection(name, "quickbooks", None, None)
        store.save_token(name, b"ct", None, None)
        store.save_pull(
            name,
            invoices=[(invoice("1", connection=name), raw_invoice("1"))],
            payments=[(payment("7", connection=name), {"Id": "7"})],
            customers=[{"Id": "3", "DisplayName": "Amy"}],
            cursors={"invoices": Cursor("2026-10-20T00:00:00Z")},
            quarantined=[Quarantined("invoices", "2", "DueDate missing", {"Id": "2"})],
        )
    store.ledger_begin(late_fee(connection="acme"))
    store.add_renegotiation(
        RenegotiationRequest(connection="acme", requested_on=D("2026-10-01"), new_due_date=D("2026-10-30"))
    )

    store.remove_connection("acme")

    assert [c.name for c in store.connections()] == ["other"]
    assert store.load_token("acme") is None
    assert store.cursor("acme", "invoices") is None
    assert store.invoices("acme") == [] and store.payments("acme") == []
    assert store.customers("acme") == {} and store.quarantined("acme") == []
    assert [e.key for e in store.ledger(connection="acme")] == ["late_fee:acme:130:1"]
    assert len(store.renegotiations(["acme"])) == 1
    # the other connection is untouched
    assert store.load_token("other") is not None and len(store.invoices("other")) == 1


def test_tokens_are_opaque_bytes_with_a_version_that_bumps_on_each_save(store: Store) -> None:
    assert store.load_token("acme") is None
    access = datetime(2026, 10, 20, 10, 0, tzinfo=UTC)
    refresh = datetime(2027, 1, 28, 10, 0, tzinfo=UTC)
    store.save_token("acme", b"\x00first\xff", access, refresh)
    first = store.load_token("acme")
    assert first is not None
    assert (first.ciphertext, first.access_expires_at, first.refresh_expires_at, first.version) == (
        b"\x00first\xff",
        access,
        refresh,
        1,
    )
    store.save_token("acme", b"second", None, None)
    second = store.load_token("acme")
    assert second is not None
    assert (second.ciphertext, second.access_expires_at, second.refresh_expires_at, second.version) == (
        b"second",
        None,
        None,
        2,
    )
    assert second.updated_at >= first.updated_at
    assert "second" not in repr(second)
