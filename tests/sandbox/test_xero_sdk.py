"""The Xero emulator driven through the official xero-python SDK.

Every Invoices, Payments, Contacts and Connections body the SDK receives here is also validated against
Xero's official OpenAPI file (see test_xero_openapi.py) (tests/specs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from xero_python.accounting import AccountingApi
from xero_python.accounting.models import (
    Account,
    Contact,
    HistoryRecord,
    HistoryRecords,
    Invoice,
    Invoices,
    LineItem,
    Payment,
    RequestEmpty,
)
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.exceptions import ApiException
from xero_python.identity import IdentityApi

from bridge_sandbox import Sandbox

from .conftest import FakeClock
from .test_xero_openapi import specs_present, validate_xero

TENANT = "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31"
REDIRECT = "http://localhost:8765/xero/callback"
SCOPE = "offline_access accounting.invoices accounting.payments accounting.contacts"
CLIENT_ID, CLIENT_SECRET = "xero-test", "s3cret"


@dataclass
class Xero:
    """xero-python clients linked to a sandbox through its OAuth endpoints, with every response recorded."""

    base: str
    api_client: ApiClient
    accounting: AccountingApi
    identity: IdentityApi
    token: dict[str, Any]
    saved: list[dict[str, Any]] = field(default_factory=list)
    seen: list[tuple[str, str, int, bytes, str]] = field(default_factory=list)


def authorize(base: str) -> dict[str, Any]:
    """The authorization-code flow: consent (at once, sandbox only), then the code for tokens."""
    consent = requests.get(
        base + "/identity/connect/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
            "state": "st4te",
        },
        allow_redirects=False,
        timeout=5,
    )
    assert consent.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["Location"]).query).items()}
    assert query["state"] == "st4te"
    answer = requests.post(
        base + "/connect/token",
        data={"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    token: dict[str, Any] = answer.json()
    assert token["expires_in"] == 1800 and token["refresh_token"]
    return token


def connect(base: str, monkeypatch: pytest.MonkeyPatch) -> Xero:
    """xero-python pointed at the sandbox (API base URLs and the token URL)."""
    monkeypatch.setattr(TokenApi, "refresh_token_url", base + "/connect/token")
    monkeypatch.setattr(TokenApi, "revoke_token_url", base + "/connect/revocation")
    token = authorize(base)
    holder: dict[str, Any] = {"token": token}
    saved: list[dict[str, Any]] = []

    def saver(new: dict[str, Any]) -> None:
        saved.append(new)
        holder["token"] = new

    api_client = ApiClient(
        Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)),
        pool_threads=1,
        oauth2_token_getter=lambda: holder["token"],
        oauth2_token_saver=saver,
    )
    api_client.set_oauth2_token(token)
    xero = Xero(
        base,
        api_client,
        AccountingApi(api_client, base_url=base + "/api.xro/2.0"),
        IdentityApi(api_client, base_url=base),
        token,
        saved,
    )
    rest = api_client.rest_client
    original = rest.request

    def recording(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = original(method, url, *args, **kwargs)
        xero.seen.append((method, url, response.status, response.data, response.getheader("Content-Type") or ""))
        return response

    monkeypatch.setattr(rest, "request", recording)
    return xero


def check_against_spec(xero: Xero) -> None:
    """Validate every recorded 2xx body of the endpoints the spec check covers."""
    if not specs_present():
        return
    for method, url, status, body, content_type in xero.seen:
        if 200 <= status < 300:
            validate_xero(method, url, status, body, content_type)


@pytest.fixture(scope="module")
def module_xero_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@pytest.fixture
def xero(module_xero_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Xero]:
    """A freshly reset sandbox and linked clients; the bodies received are checked against the spec after."""
    module_xero_sandbox.reset()
    client = connect(module_xero_sandbox.base_url, monkeypatch)
    yield client
    check_against_spec(client)


def raw(xero: Xero, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {
        "Authorization": f"Bearer {xero.token['access_token']}",
        "xero-tenant-id": TENANT,
        "Accept": "application/json",
        **kwargs.pop("headers", {}),
    }
    return requests.request(method, xero.base + "/api.xro/2.0" + path, headers=headers, timeout=5, **kwargs)


def state(xero: Xero) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(xero.base + "/_sandbox/state", timeout=5).json()["xero"]
    return answer


# ---------------------------------------------------------------------------------------------------- reads


def test_connections_list_the_organisation(xero: Xero) -> None:
    connections = xero.identity.get_connections()
    assert [(c.tenant_id, c.tenant_type, c.tenant_name) for c in connections] == [
        (TENANT, "ORGANISATION", "Kea & Kowhai Studio")
    ]


def test_incremental_read_with_if_modified_since_order_and_pages(xero: Xero) -> None:
    since = datetime(2026, 9, 1, tzinfo=UTC)
    first = xero.accounting.get_invoices(
        TENANT, if_modified_since=since, order="UpdatedDateUTC ASC", page=1, page_size=5
    )
    assert len(first.invoices) == 5
    assert first.pagination.item_count == 13 and first.pagination.page_count == 3
    everything = list(first.invoices)
    for page in (2, 3):
        everything += xero.accounting.get_invoices(
            TENANT, if_modified_since=since, order="UpdatedDateUTC ASC", page=page, page_size=5
        ).invoices
    stamps = [inv.updated_date_utc for inv in everything]
    assert len(everything) == 13 and stamps == sorted(stamps)
    assert all(stamp >= since for stamp in stamps)
    assert all(inv.line_items for inv in everything)  # paged reads carry the lines
    unpaged = xero.accounting.get_invoices(TENANT)
    assert len(unpaged.invoices) == 25 and all(not inv.line_items for inv in unpaged.invoices)
    again = xero.accounting.get_invoices(TENANT, if_modified_since=datetime(2026, 12, 1, tzinfo=UTC), page=1)
    assert again.invoices == []


def test_where_statuses_and_a_single_invoice(xero: Xero) -> None:
    contact = state(xero)["Contacts"][0]["ContactID"]
    found = xero.accounting.get_invoices(
        TENANT, where=f'Type=="ACCREC" AND Contact.ContactID==Guid("{contact}") AND Status=="AUTHORISED"'
    ).invoices
    assert {inv.invoice_number for inv in found} == {"INV-0008", "INV-0023"}
    overdue = xero.accounting.get_invoices(
        TENANT, where="DueDate<DateTime(2026,09,01) AND AmountDue>0", statuses=["AUTHORISED"]
    ).invoices
    assert {inv.invoice_number for inv in overdue} == {"INV-0003", "INV-0006"}
    voided = xero.accounting.get_invoices(TENANT, statuses=["VOIDED", "DRAFT"]).invoices
    assert sorted(inv.invoice_number for inv in voided) == ["INV-0005", "INV-0016", "INV-0019", "INV-0024"]
    by_number = xero.accounting.get_invoices(TENANT, where='InvoiceNumber=="INV-0006"').invoices[0]
    one = xero.accounting.get_invoice(TENANT, by_number.invoice_id).invoices[0]
    assert one.status == "AUTHORISED" and one.line_items and one.amount_paid > 0
    assert Decimal(str(one.amount_due)) == Decimal(str(one.total)) - Decimal(str(one.amount_paid))
    payments = xero.accounting.get_payments(
        TENANT, if_modified_since=datetime(2026, 10, 1, tzinfo=UTC), page=1
    ).payments
    assert payments and all(p.updated_date_utc >= datetime(2026, 10, 1, tzinfo=UTC) for p in payments)
    assert len(xero.accounting.get_contacts(TENANT).contacts) == 8
    assert xero.accounting.get_invoice_reminders(TENANT).invoice_reminders[0].enabled is False


def test_tenant_header_is_required(xero: Xero) -> None:
    assert raw(xero, "GET", "/Invoices", headers={"xero-tenant-id": ""}).status_code == 403
    wrong = raw(xero, "GET", "/Invoices", headers={"xero-tenant-id": "00000000-0000-0000-0000-000000000000"})
    assert wrong.status_code == 403
    with pytest.raises(ApiException) as caught:
        xero.accounting.get_invoices("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 403
    missing = raw(xero, "GET", "/Invoices/5a9b3b5e-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/plain")


# ---------------------------------------------------------------------------------------------------- writes


def test_create_then_update_with_the_line_rules(xero: Xero) -> None:
    contact = state(xero)["Contacts"][1]["ContactID"]
    new = Invoice(
        type="ACCREC",
        contact=Contact(contact_id=contact),
        date=date(2026, 10, 20),
        due_date=date(2026, 11, 19),
        status="AUTHORISED",
        line_items=[
            LineItem(description="Design", quantity=2.0, unit_amount=100.0, account_code="200"),
            LineItem(description="Printing", quantity=1.0, unit_amount=45.5, account_code="200"),
        ],
    )
    created = xero.accounting.create_invoices(TENANT, Invoices(invoices=[new])).invoices[0]
    assert created.invoice_number == "INV-0026" and created.total == 245.5 and created.amount_due == 245.5
    keep, drop = created.line_items
    updated = xero.accounting.update_invoice(
        TENANT,
        created.invoice_id,
        Invoices(
            invoices=[
                Invoice(
                    line_items=[
                        LineItem(line_item_id=keep.line_item_id, description="Design", quantity=3.0, unit_amount=100.0),
                        LineItem(description="Late fee", quantity=1.0, unit_amount=12.25, account_code="200"),
                    ]
                )
            ]
        ),
    ).invoices[0]
    lines = {line.description: line for line in updated.line_items}
    assert set(lines) == {"Design", "Late fee"}  # the omitted line was deleted
    assert lines["Design"].line_item_id == keep.line_item_id and drop.line_item_id not in {
        line.line_item_id for line in updated.line_items
    }
    assert updated.total == 312.25 and updated.amount_due == 312.25


def test_an_invoice_with_a_payment_allocated_cannot_be_edited(xero: Xero) -> None:
    partly = xero.accounting.get_invoices(TENANT, where='InvoiceNumber=="INV-0006"', page=1).invoices[0]
    lines = [LineItem(line_item_id=line.line_item_id) for line in partly.line_items]
    lines.append(LineItem(description="Late fee", quantity=1.0, unit_amount=25.0, account_code="200"))
    with pytest.raises(ApiException) as caught:
        xero.accounting.update_invoice(TENANT, partly.invoice_id, Invoices(invoices=[Invoice(line_items=lines)]))
    assert caught.value.status == 400
    body = raw(xero, "POST", f"/Invoices/{partly.invoice_id}", json={"Invoices": [{"LineItems": []}]}).json()
    assert body["ErrorNumber"] == 10 and body["Type"] == "ValidationException"
    assert body["Elements"][0]["ValidationErrors"][0]["Message"] == (
        "This document cannot be edited as it has a payment or credit note allocated to it."
    )
    # A new due date is still accepted (XeroSettings.allocated_editable_fields; unsure on the real service).
    moved = xero.accounting.update_invoice(
        TENANT, partly.invoice_id, Invoices(invoices=[Invoice(due_date=date(2026, 11, 30))])
    ).invoices[0]
    assert moved.due_date == date(2026, 11, 30) and moved.amount_paid == partly.amount_paid
    big = raw(xero, "GET", "/Invoices", params={"page": "1", "pageSize": "5000"}).json()
    assert big["pagination"]["pageSize"] == 1000 and len(big["Invoices"]) == 25
    # summarizeErrors=false: 200 with the element marked, the good ones saved.
    other = xero.accounting.get_invoices(TENANT, where='InvoiceNumber=="INV-0008"').invoices[0]
    mixed = xero.accounting.update_or_create_invoices(
        TENANT,
        Invoices(
            invoices=[
                Invoice(invoice_id=partly.invoice_id, line_items=lines),
                Invoice(invoice_id=other.invoice_id, reference="PO-1"),
            ]
        ),
        summarize_errors=False,
    ).invoices
    assert [inv.status_attribute_string for inv in mixed] == ["ERROR", "OK"]
    assert mixed[0].validation_errors[0].message.startswith("This document cannot be edited")


def test_idempotency_key_replays_the_first_answer(xero: Xero) -> None:
    contact = state(xero)["Contacts"][2]["ContactID"]
    body = Invoices(
        invoices=[
            Invoice(
                type="ACCREC",
                contact=Contact(contact_id=contact),
                line_items=[LineItem(description="Fee invoice", quantity=1.0, unit_amount=30.0, account_code="200")],
            )
        ]
    )
    first = xero.accounting.create_invoices(TENANT, body, idempotency_key="late_fee:x:1").invoices[0]
    second = xero.accounting.create_invoices(TENANT, body, idempotency_key="late_fee:x:1").invoices[0]
    assert first.invoice_id == second.invoice_id
    assert len(state(xero)["Invoices"]) == 26
    too_long = raw(xero, "PUT", "/Invoices", json={"Invoices": []}, headers={"Idempotency-Key": "k" * 129})
    assert too_long.status_code == 400


def test_email_history_and_payments(xero: Xero, module_xero_sandbox: Sandbox) -> None:
    invoices = {i["InvoiceNumber"]: i for i in state(xero)["Invoices"]}
    target = invoices["INV-0003"]
    result = xero.accounting.email_invoice(TENANT, target["InvoiceID"], RequestEmpty(), _return_http_data_only=False)
    assert result[1] == 204
    outbox = module_xero_sandbox.outbox()
    assert [(m["provider"], m["invoice_id"], m["to"]) for m in outbox] == [
        ("xero", target["InvoiceID"], "finance@hamiltonsmith.example")
    ]
    for number in ("INV-0016", "INV-0009"):  # a draft; a contact without an e-mail address
        with pytest.raises(ApiException) as caught:
            xero.accounting.email_invoice(TENANT, invoices[number]["InvoiceID"], RequestEmpty())
        assert caught.value.status == 400
    history = xero.accounting.create_invoice_history(
        TENANT, target["InvoiceID"], HistoryRecords(history_records=[HistoryRecord(details="Reminder 1 sent")])
    )
    assert history.history_records[0].details == "Reminder 1 sent"
    account = Account(code="090")
    part = xero.accounting.create_payment(
        TENANT,
        Payment(
            invoice=Invoice(invoice_id=target["InvoiceID"]), account=account, amount=400.0, date=date(2026, 10, 20)
        ),
    )
    assert part.payments[0].amount == 400.0
    after = xero.accounting.get_invoice(TENANT, target["InvoiceID"]).invoices[0]
    assert (after.amount_paid, after.amount_due, after.status) == (400.0, 3000.0, "AUTHORISED")
    with pytest.raises(ApiException):  # more than is due
        xero.accounting.create_payment(
            TENANT, Payment(invoice=Invoice(invoice_id=target["InvoiceID"]), account=account, amount=3000.01)
        )
    xero.accounting.create_payment(
        TENANT, Payment(invoice=Invoice(invoice_id=target["InvoiceID"]), account=account, amount=3000.0)
    )
    paid = xero.accounting.get_invoice(TENANT, target["InvoiceID"]).invoices[0]
    assert (paid.amount_due, paid.status) == (0.0, "PAID")


# ---------------------------------------------------------------------------------------------------- tokens and limits


def test_refresh_tokens_rotate_with_a_grace_window(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(datetime(2026, 10, 20, 9, 0, tzinfo=UTC))
    with Sandbox(rate_limits=False, clock=clock) as sandbox:
        xero = connect(sandbox.base_url, monkeypatch)
        api = TokenApi(xero.api_client, CLIENT_ID, CLIENT_SECRET)
        first = xero.token["refresh_token"]
        second = api.refresh_token(first, SCOPE.split())
        assert second["refresh_token"] != first
        clock.advance(minutes=20)
        # The previous one again (a lost response): accepted within 30 minutes, same current token back.
        retry = api.refresh_token(first, SCOPE.split())
        assert retry["refresh_token"] == second["refresh_token"]
        third = api.refresh_token(second["refresh_token"], SCOPE.split())
        clock.advance(minutes=31)
        with pytest.raises(ApiException, match="invalid_grant"):
            api.refresh_token(second["refresh_token"], SCOPE.split())  # previous, grace over
        with pytest.raises(ApiException, match="invalid_grant"):
            api.refresh_token(first, SCOPE.split())  # two rotations old
        assert api.refresh_token(third["refresh_token"], SCOPE.split())["access_token"]
        # Access tokens live 30 minutes on the sandbox clock.
        headers = {"Authorization": f"Bearer {third['access_token']}", "xero-tenant-id": TENANT}
        assert requests.get(sandbox.base_url + "/api.xro/2.0/Contacts", headers=headers, timeout=5).status_code == 401


def test_rate_limits_answer_429_with_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(options={"xero": {"minute_limit": 3, "daily_limit": 5}}) as sandbox:
        xero = connect(sandbox.base_url, monkeypatch)
        answers = [raw(xero, "GET", "/Contacts") for _ in range(3)]
        assert [a.headers["X-MinLimit-Remaining"] for a in answers] == ["2", "1", "0"]
        assert [a.headers["X-DayLimit-Remaining"] for a in answers] == ["4", "3", "2"]
        # A POST (urllib3 under xero-python silently waits out Retry-After and retries GETs and PUTs).
        with pytest.raises(ApiException) as caught:
            xero.accounting.update_invoice(TENANT, "INV-0003", Invoices(invoices=[Invoice(reference="x")]))
        assert caught.value.status == 429
        limited = raw(xero, "GET", "/Contacts")
        assert limited.status_code == 429
        assert limited.headers["X-Rate-Limit-Problem"] == "minute" and int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["X-MinLimit-Remaining"] == "0" and limited.headers["X-DayLimit-Remaining"] == "2"
    with Sandbox(options={"xero": {"daily_limit": 2}}) as sandbox:
        xero = connect(sandbox.base_url, monkeypatch)
        assert [raw(xero, "GET", "/Contacts").status_code for _ in range(3)] == [200, 200, 429]
        assert raw(xero, "GET", "/Contacts").headers["X-Rate-Limit-Problem"] == "daily"
        # Injected faults apply to Xero as to QuickBooks.
        requests.post(sandbox.base_url + "/_sandbox/faults", json={"xero": {"503": 1.0}}, timeout=5)
        assert raw(xero, "GET", "/Contacts").status_code == 503
        spec = {"xero": {"429": 1.0, "retry_after": 7}}
        requests.post(sandbox.base_url + "/_sandbox/faults", json=spec, timeout=5)
        injected = raw(xero, "GET", "/Contacts")
        assert injected.status_code == 429 and injected.headers["Retry-After"] == "7"
        assert injected.headers["X-Rate-Limit-Problem"] == "minute" and "X-DayLimit-Remaining" in injected.headers


def test_state_round_trips(xero: Xero) -> None:
    before = state(xero)
    with Sandbox({"xero": before}, rate_limits=False) as other:
        again = requests.get(other.base_url + "/_sandbox/state", timeout=5).json()["xero"]
    assert again == before
    assert sum(1 for i in before["Invoices"] if i["Status"] == "PAID") == 7


def test_more_than_five_calls_in_flight_for_one_organisation_get_a_concurrent_429() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Sandbox(latency_ms=400) as sandbox:  # published limits on; each answer takes 0.4 s
        token = authorize(sandbox.base_url)["access_token"]
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT, "Accept": "application/json"}

        def call(_: int) -> requests.Response:
            return requests.get(sandbox.base_url + "/api.xro/2.0/Organisation", headers=headers, timeout=10)

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(call, range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) >= 5 and statuses.count(429) >= 1 and set(statuses) == {200, 429}
    refused = [a for a in answers if a.status_code == 429]
    assert all(a.headers["X-Rate-Limit-Problem"] == "concurrent" and a.headers["Retry-After"] for a in refused)
