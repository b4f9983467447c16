"""Renegotiation requests: every one kept, accepted or refused, with who, when and why."""

from __future__ import annotations

from bridge.model import RenegotiationRequest
from bridge.store import Store
from tests.store.factories import D


def test_renegotiations_round_trip_in_request_order(store: Store) -> None:
    accepted = RenegotiationRequest(
        connection="acme",
        invoice_id="130",
        invoice_number="1037",
        requested_on=D("2026-09-01"),
        new_due_date=D("2026-09-30"),
        note="cash flow, sorry — café closed in August",
        requested_by="amy@example.com",
        status="accepted",
        reason="contracts.standard.renegotiation: first request for the project",
        decided_on=D("2026-09-01"),
        original_due_date=D("2026-09-07"),
        previous_due_date=D("2026-09-07"),
        project="3",
    )
    refused = accepted.model_copy(
        update={
            "requested_on": D("2026-09-20"),
            "new_due_date": D("2026-10-30"),
            "status": "refused",
            "reason": "contracts.standard.renegotiation: max_per_project 1 already used",
            "previous_due_date": D("2026-09-30"),
        }
    )
    undecided = RenegotiationRequest(connection="beta", requested_on=D("2026-09-05"), new_due_date=D("2026-09-25"))

    ids = [store.add_renegotiation(r) for r in (accepted, undecided, refused)]
    assert ids == sorted(ids) and len(set(ids)) == 3

    assert store.renegotiations(["acme"]) == [accepted, refused]
    assert store.renegotiations(["acme", "beta"]) == [accepted, undecided, refused]
    assert store.renegotiations(["nobody"]) == []
    assert store.renegotiations([]) == []
