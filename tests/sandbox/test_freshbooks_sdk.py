"""The FreshBooks emulator driven through the official freshbooks-sdk, unchanged (only its base URLs point here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from freshbooks.builders.filter import FilterBuilder
from freshbooks.builders.includes import IncludesBuilder
from freshbooks.builders.paginator import PaginateBuilder
from freshbooks.builders.sort import SortBuilder
from freshbooks.client import Client
from freshbooks.errors import FreshBooksError

from bridge_sandbox import Sandbox, default_seed
from bridge_sandbox.core import RateLimit
from bridge_sandbox.freshbooks import FreshBooksProvider

from .conftest import FakeClock

ACCOUNT = "kX7mQ2"
REDIRECT = "https://localhost:8765/freshbooks/callback"


def linked(base: str, monkeypatch: pytest.MonkeyPatch) -> Client:
    """The SDK pointed at the sandbox the documented way (environment variables), then the OAuth code flow."""
    monkeypatch.setenv("FRESHBOOKS_API_URL", base)
    monkeypatch.setenv("FRESHBOOKS_AUTH_URL", base)
    client = Client("fb-test", "s3cret", redirect_uri=REDIRECT, auto_retry=False)
    consent = requests.get(client.get_auth_request_url(["user:profile:read"]) + "&state=xyz", allow_redirects=False)
    assert consent.status_code == 302
    back = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["Location"]).query).items()}
    assert back["state"] == "xyz"
    client.get_access_token(back["code"])
    return client


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@pytest.fixture
def fb(module_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Client:
    module_sandbox.reset(default_seed())
    return linked(module_sandbox.base_url, monkeypatch)


def provider(sandbox: Sandbox) -> FreshBooksProvider:
    found = sandbox.providers["freshbooks"]
    assert isinstance(found, FreshBooksProvider)
    return found


def test_the_identity_lists_the_business_with_its_account_id(fb: Client) -> None:
    me = fb.current_user()
    (membership,) = me.data["business_memberships"]
    assert membership["business"]["account_id"] == ACCOUNT and membership["role"] == "owner"
    assert fb.access_token_expires_at is not None


def test_lists_come_in_the_envelope_with_money_as_strings_and_lines_only_when_included(fb: Client) -> None:
    plain = fb.invoices.list(ACCOUNT)
    assert plain.pages.per_page == 15 and plain.pages.total == 19  # the deleted one is left out
    first = plain.data["invoices"][0]
    assert "lines" not in first and isinstance(first["amount"]["amount"], str)
    includes = IncludesBuilder()
    includes.include("lines")
    full = fb.invoices.list(ACCOUNT, builders=[includes, PaginateBuilder(1, 500)])
    assert full.pages.per_page == 100 and all(i["lines"] for i in full.data["invoices"])
    total = sum(Decimal(line["amount"]["amount"]) for line in full.data["invoices"][1]["lines"])
    assert str(total) == full.data["invoices"][1]["amount"]["amount"]


def test_updated_min_has_day_granularity_sort_and_vis_state(fb: Client) -> None:
    since = FilterBuilder()
    since.between("updated_min", "2026-10-19")
    sort = SortBuilder()
    sort.descending("updated")
    rows = fb.invoices.list(ACCOUNT, builders=[since, sort]).data["invoices"]
    assert [r["updated"][:10] for r in rows] == ["2026-10-19", "2026-10-19"]  # the whole day, whatever the hour
    assert rows[0]["updated"] > rows[1]["updated"]
    deleted = FilterBuilder()
    deleted.equals("vis_state", 1)
    (gone,) = fb.invoices.list(ACCOUNT, builders=[deleted]).data["invoices"]
    assert gone["vis_state"] == 1
    assert fb.invoices.get(ACCOUNT, gone["id"]).data["vis_state"] == 1


def test_a_payment_keeps_outstanding_paid_and_the_statuses_consistent(fb: Client) -> None:
    invoice = fb.invoices.get(ACCOUNT, 102).data
    assert (invoice["v3_status"], invoice["payment_status"]) == ("sent", "unpaid")
    fb.payments.create(ACCOUNT, {"invoiceid": 102, "amount": {"amount": "850.00"}, "date": "2026-10-19"})
    part = fb.invoices.get(ACCOUNT, 102).data
    assert (part["status"], part["v3_status"], part["payment_status"]) == (8, "partial", "partial")
    assert part["paid"]["amount"] == "850.00" and part["outstanding"]["amount"] == "2000.00"
    fb.payments.create(ACCOUNT, {"invoiceid": 102, "amount": {"amount": "2000.00"}, "date": "2026-10-20"})
    paid = fb.invoices.get(ACCOUNT, 102).data
    assert (paid["status"], paid["v3_status"], paid["payment_status"]) == (4, "paid", "paid")
    assert paid["outstanding"]["amount"] == "0.00" and paid["date_paid"] == "2026-10-20"
    assert paid["updated"] >= part["updated"] > invoice["updated"]
    with pytest.raises(FreshBooksError) as refused:
        fb.payments.create(ACCOUNT, {"invoiceid": 102, "amount": {"amount": "1.00"}})
    assert refused.value.status_code == 400 and refused.value.error_code


def test_a_put_with_every_line_adds_one_and_an_action_put_drops_the_data(fb: Client, module_sandbox: Sandbox) -> None:
    includes = IncludesBuilder()
    includes.include("lines")
    invoice = fb.invoices.get(ACCOUNT, 102, includes=includes).data
    lines = [{"lineid": line["lineid"]} for line in invoice["lines"]]
    new = {"name": "Late Fee", "description": "fee", "qty": "1", "unit_cost": {"amount": "10.00", "code": "USD"}}
    updated = fb.invoices.update(ACCOUNT, 102, {"lines": [*lines, new]}, includes=includes).data
    assert [line["lineid"] for line in updated["lines"]] == [1, 2, 3]
    assert updated["amount"]["amount"] == "2860.00" and updated["outstanding"]["amount"] == "2860.00"
    # An action PUT carries out the action only: the due date in the same body is dropped silently.
    body = {
        "action_email": True,
        "email_recipients": ["someone@example.com"],
        "invoice_customized_email": {"subject": "A word", "body": "About the invoice"},
        "due_date": "2027-01-01",
    }
    sent = fb.invoices.update(ACCOUNT, 102, body).data
    assert sent["due_date"] == invoice["due_date"]
    (mail,) = module_sandbox.outbox()
    assert (mail["to"], mail["subject"], mail["body"]) == ("someone@example.com", "A word", "About the invoice")
    draft = fb.invoices.update(ACCOUNT, 115, {"action_mark_as_sent": True}).data
    assert (draft["status"], draft["v3_status"]) == (2, "sent")


def test_invoice_number_collisions_answer_409(fb: Client, module_sandbox: Sandbox) -> None:
    body = {"customerid": 1, "invoice_number": "0000001", "lines": []}
    with pytest.raises(FreshBooksError) as taken:
        fb.invoices.create(ACCOUNT, body)
    assert taken.value.status_code == 409 and taken.value.error_code == 2008
    provider(module_sandbox).collide_next_creates = 1
    with pytest.raises(FreshBooksError) as concurrent:
        fb.invoices.create(ACCOUNT, {"customerid": 1, "lines": []})
    assert concurrent.value.status_code == 409
    created = fb.invoices.create(ACCOUNT, {"customerid": 1, "lines": []}).data
    assert created["invoice_number"] == "0000021" and created["status"] == 1


def test_errors_use_the_envelope_with_errno(fb: Client) -> None:
    with pytest.raises(FreshBooksError) as missing:
        fb.invoices.get(ACCOUNT, 99999)
    assert (missing.value.status_code, missing.value.error_code, str(missing.value)) == (
        404,
        1012,
        "Invoice not found.",
    )
    with pytest.raises(FreshBooksError) as other:
        fb.invoices.list("not-mine")
    assert other.value.status_code == 403


def test_refresh_tokens_are_single_use(fb: Client) -> None:
    old = fb.refresh_token
    assert old is not None
    fb.refresh_access_token()
    assert fb.refresh_token != old
    with pytest.raises(FreshBooksError):
        fb.refresh_access_token(old)
    assert fb.clients.list(ACCOUNT).pages.total == 7


def test_access_tokens_expire_after_twelve_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(datetime(2026, 10, 20, 12, tzinfo=UTC))
    with Sandbox(rate_limits=False, clock=clock) as sandbox:
        fb = linked(sandbox.base_url, monkeypatch)
        assert fb.access_token_expires_at == clock.now + timedelta(hours=12)
        clock.advance(hours=12, seconds=1)
        with pytest.raises(FreshBooksError) as expired:
            fb.clients.list(ACCOUNT)
        assert expired.value.status_code == 401


def test_the_configured_rate_limit_answers_429_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(rate_limits={"freshbooks": [RateLimit(3, 60.0)]}) as sandbox:
        fb = linked(sandbox.base_url, monkeypatch)
        for _ in range(3):
            fb.clients.list(ACCOUNT)
        answer = requests.get(
            f"{sandbox.base_url}/accounting/account/{ACCOUNT}/users/clients",
            headers={"Authorization": f"Bearer {fb.access_token}"},
            timeout=5,
        )
        assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["response"]["errors"][0]["errno"]


def test_the_sdks_default_auto_retry_would_resend_a_put(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the connector turns it off: with auto_retry=True a PUT answered 500 is sent again by the SDK."""
    with Sandbox(rate_limits=False, faults={"freshbooks": {"500": 1.0}}) as sandbox:
        fb = linked(sandbox.base_url, monkeypatch)
        fb.auto_retry = True
        with pytest.raises(FreshBooksError):
            fb.invoices.update(ACCOUNT, 102, {"action_email": True})
        puts = [r for r in sandbox.requests() if r["method"] == "PUT"]
        assert len(puts) > 1


def test_state_round_trips(fb: Client, module_sandbox: Sandbox) -> None:
    fb.payments.create(ACCOUNT, {"invoiceid": 102, "amount": {"amount": "1.00"}})
    state = module_sandbox.state()
    with Sandbox(state, rate_limits=False) as other:
        assert other.state() == state


def test_a_clients_flags(fb: Client) -> None:
    clients: list[dict[str, Any]] = fb.clients.list(ACCOUNT, builders=[PaginateBuilder(1, 100)]).data["clients"]
    flagged = [c["organization"] for c in clients if c["allow_late_fees"]]
    assert flagged == ["Northwind Traders", "Orchard Row Co-op"]
    assert all("allow_late_notifications" in c for c in clients)
