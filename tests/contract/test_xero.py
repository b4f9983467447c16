"""The Xero connector through xero-python against the sandbox.

Every response body the connector receives in these tests is validated against Xero's official
OpenAPI files (tests/specs): the emulator may not drift from the real API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

import bridge.connectors.xero as xero_module
from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.clock import now_utc
from bridge.connectors.http import RateLimiter, RetryPolicy
from bridge.connectors.xero import XeroConnector
from bridge.ledger import ApplyReport, apply_actions, reconcile
from bridge.model import Invoice
from bridge.plan import Action, WarningCode
from bridge.store import Store
from bridge.sync import pull_connection
from bridge_sandbox import Sandbox, default_seed
from tests.contract.suite import ConnectorContract, due_date_action, fee_action, reminder_action
from tests.sandbox.test_xero_openapi import specs_present, validate_xero

FAST = RetryPolicy(initial=0.01, max_wait=0.05, max_retry_after=2)
UNLIMITED = 1000.0


def _now_ms() -> str:
    return f"/Date({int(now_utc().timestamp() * 1000)}+0000)/"


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@dataclass
class XeroEnv:
    connector: XeroConnector
    store: Store
    vault: TokenVault
    base_url: str
    sandbox: Sandbox
    # (method, url, request headers, status, body, content type) of every call the connector made
    seen: list[tuple[str, str, dict[str, str], int, bytes, str]] = field(default_factory=list)
    valid_data: bool = True  # False once a test loads data the real API could not hold (no spec check then)

    def _headers(self) -> dict[str, str]:
        tokens, _ = self.vault.load(self.connector.name)
        return {
            "Authorization": f"Bearer {tokens.access_token}",
            "xero-tenant-id": self.connector.tenant_id,
            "Accept": "application/json",
        }

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api.xro/2.0/{path}"

    def raw(self, invoice_id: str) -> dict[str, Any]:
        response = requests.get(self._url(f"Invoices/{invoice_id}"), headers=self._headers(), timeout=10)
        return dict(response.json(parse_float=Decimal)["Invoices"][0])

    def state(self) -> dict[str, Any]:
        return dict(self.sandbox.state()["xero"])  # type: ignore[arg-type]

    def open_invoice_id(self) -> str:
        state = self.state()
        emails = {c["ContactID"] for c in state["Contacts"] if c.get("EmailAddress")}
        candidates = [
            i
            for i in state["Invoices"]
            if i["Status"] == "AUTHORISED"
            and Decimal(str(i["AmountPaid"])) == 0
            and Decimal(str(i.get("AmountCredited", 0))) == 0
            and i["Contact"]["ContactID"] in emails
        ]
        return str(sorted(candidates, key=lambda i: i["InvoiceNumber"])[0]["InvoiceID"])

    def partly_paid_invoice_id(self) -> str:
        state = self.state()
        candidates = [i for i in state["Invoices"] if i["Status"] == "AUTHORISED" and Decimal(str(i["AmountPaid"])) > 0]
        return str(sorted(candidates, key=lambda i: i["InvoiceNumber"])[0]["InvoiceID"])

    def post(self, path: str, body: Any, method: str = "POST") -> requests.Response:
        return requests.request(
            method,
            self._url(path),
            headers={**self._headers(), "Content-Type": "application/json"},
            data=json.dumps(body),
            timeout=10,
        )

    def touch(self, invoice_id: str) -> None:
        response = self.post(f"Invoices/{invoice_id}", {"InvoiceID": invoice_id, "Reference": "touched"})
        assert response.status_code == 200, response.text

    def pay(self, invoice_id: str, amount: str) -> None:
        body = {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Amount": amount}
        response = self.post("Payments", body, method="PUT")
        assert response.status_code == 200, response.text

    def delete(self, invoice_id: str) -> None:
        # Xero deletes only drafts (an approved invoice is voided): change the record in the emulator directly.
        state = self.sandbox.state()
        for invoice in state["xero"]["Invoices"]:  # type: ignore[index,union-attr]
            if invoice["InvoiceID"] == invoice_id:  # type: ignore[index]
                invoice.update(Status="DELETED", AmountDue=0, UpdatedDateUTC=_now_ms())  # type: ignore[union-attr]
        self.sandbox.reset(state)

    def fee_lines(self, invoice_id: str, description: str) -> int:
        return sum(1 for line in self.raw(invoice_id).get("LineItems", []) if line.get("Description") == description)

    def writes(self) -> list[tuple[str, str, dict[str, str]]]:
        return [(m, u, h) for m, u, h, *_ in self.seen if m in ("PUT", "POST") and "/api.xro/" in u]


def make_env(sandbox: Sandbox, tmp_path: Path, name: str = "acme-xero", **options: Any) -> XeroEnv:
    store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    vault = TokenVault(store, Fernet(Fernet.generate_key()))
    tenant = link_sandbox("xero", store, vault, sandbox.base_url, name)
    connector = XeroConnector(
        name,
        tenant,
        vault,
        base_url=sandbox.base_url,
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        policy=FAST,
        limiter=RateLimiter(UNLIMITED, 100),
        timeout=5,
        **options,
    )
    env = XeroEnv(connector, store, vault, sandbox.base_url, sandbox)
    original = connector.http.request

    def recording(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = original(method, url, *args, **kwargs)
        headers = dict(kwargs.get("headers") or {})
        env.seen.append(
            (method, url, headers, response.status_code, response.content, response.headers.get("Content-Type", ""))
        )
        return response

    connector.http.request = recording  # type: ignore[method-assign]
    return env


def check_against_spec(env: XeroEnv) -> int:
    """Validate every 2xx body the connector received; returns how many were checked."""
    if not specs_present():
        return 0
    return sum(
        validate_xero(method, url, status, body, content_type)
        for method, url, _, status, body, content_type in env.seen
        if 200 <= status < 300
    )


@pytest.fixture
def env(module_sandbox: Sandbox, tmp_path: Path) -> Iterator[XeroEnv]:
    module_sandbox.reset(default_seed())  # a test may have loaded its own data
    e = make_env(module_sandbox, tmp_path)
    yield e
    if e.valid_data:
        check_against_spec(e)
    e.store.close()


class TestXeroContract(ConnectorContract):
    """The shared connector contract, on Xero."""

    fee_write_route = "invoices.update"


def test_every_response_the_connector_reads_conforms_to_the_official_spec(env: XeroEnv) -> None:
    if not specs_present():
        pytest.skip("the official Xero OpenAPI files are not in tests/specs")
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    env.connector.apply(fee_action(invoice), raw)
    env.connector.flush()
    env.connector.evidence(reminder_action(invoice), "2000-01-01T00:00:00+00:00")
    assert check_against_spec(env) >= 6  # invoices, payments, contacts, reminders, one invoice, the update, history


def test_every_write_carries_an_idempotency_key_derived_from_the_action_key(env: XeroEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    env.connector.apply(fee_action(invoice), raw)
    env.connector.apply(reminder_action(invoice), raw)
    env.connector.flush()
    writes = env.writes()
    assert len(writes) == 3  # fee line, the e-mail, and one history call with both notes
    keys = [h.get("Idempotency-Key", "") for _, _, h in writes]
    assert all(k.startswith("bridge-") and len(k) <= 128 for k in keys) and len(set(keys)) == 3


def test_a_repeated_write_replays_instead_of_charging_twice(env: XeroEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    action = fee_action(invoice)
    first = env.connector.apply(action, raw)
    second = env.connector.apply(action, raw)  # e.g. a retry after a lost answer: same Idempotency-Key
    assert first.response_id == second.response_id
    assert env.fee_lines(invoice.id, action.description or "") == 1
    assert any(r.get("replayed") for r in env.sandbox.requests())


def test_a_fee_line_keeps_every_existing_line(env: XeroEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    before = [line["LineItemID"] for line in raw["LineItems"]]
    env.connector.apply(fee_action(invoice), raw)
    after = [line["LineItemID"] for line in env.raw(invoice.id)["LineItems"]]
    assert after[: len(before)] == before and len(after) == len(before) + 1


def test_a_fee_on_an_invoice_with_a_payment_goes_on_a_separate_invoice(env: XeroEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.partly_paid_invoice_id(), {})  # type: ignore[misc]
    assert not invoice.editable
    action = fee_action(invoice, form="line")
    result = env.connector.apply(action, raw)
    assert result.form == "invoice"
    assert env.fee_lines(invoice.id, action.description or "") == 0
    pull_connection(env.store, env.connector)
    created = env.store.invoice(env.connector.name, result.response_id)
    assert created is not None and created.fee_for == invoice.id and created.total == Decimal("12.34")
    assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "applied"


def test_a_payment_allocated_after_the_read_falls_back_to_a_fee_invoice(env: XeroEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    env.pay(invoice.id, "10.00")  # the client pays a little between our read and our write
    action = fee_action(invoice)
    result = env.connector.apply(action, raw)  # the line update is refused (400), the fee invoice is made
    assert result.form == "invoice"
    refused = [r for r in env.sandbox.requests() if r["status"] == 400]
    assert len(refused) == 1
    fee_invoices = [i for i in env.state()["Invoices"] if "fee_for=" + invoice.id in str(i.get("Reference"))]
    assert len(fee_invoices) == 1 and fee_invoices[0]["Type"] == "ACCREC"


def test_every_action_leaves_a_history_note_unless_turned_off(env: XeroEnv, tmp_path: Path) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    for action in (fee_action(invoice), due_date_action(invoice, date(2026, 12, 31))):
        env.connector.apply(action, raw)
        raw = env.raw(invoice.id)
    env.connector.flush()
    assert len([u for _, u, _ in env.writes() if "History" in u]) == 1  # one call for the invoice's notes
    history = requests.get(env._url(f"Invoices/{invoice.id}/History"), headers=env._headers(), timeout=10).json()[
        "HistoryRecords"
    ]
    notes = [h["Details"] for h in history]
    assert len(notes) == 2 and all(n.startswith("bridge: ") for n in notes)
    assert "contracts.standard.late_fee" in notes[0] and "due date moved to 2026-12-31" in notes[1]

    quiet = make_env(env.sandbox, tmp_path / "other", name="no-notes", keeps_history=False)
    other, other_raw = quiet.connector.read_invoice(quiet.open_invoice_id(), {})  # type: ignore[misc]
    quiet.connector.apply(fee_action(other, k=2), other_raw)
    quiet.connector.flush()
    assert [m for m, u, _ in quiet.writes() if "History" in u] == []


def test_a_429_is_waited_out_as_retry_after_says(env: XeroEnv) -> None:
    requests.post(
        env.base_url + "/_sandbox/faults", json={"xero": {"429": 0.5, "seed": 3, "retry_after": 1}}, timeout=10
    )
    try:
        for _ in range(3):
            env.connector.check()
    finally:
        requests.post(env.base_url + "/_sandbox/faults", json={"xero": {}}, timeout=10)
    throttled = [r for r in env.sandbox.requests() if r["status"] == 429]
    assert throttled, "the seeded faults should have throttled at least one call"
    assert env.connector.stats.retried["429"] == len(throttled)
    assert env.connector.stats.waited >= len(throttled) * 1.0


def test_a_rotated_refresh_token_is_stored_and_the_old_one_works_only_within_the_grace_window(tmp_path: Path) -> None:
    clock = [now_utc()]
    with Sandbox(rate_limits=False, clock=lambda: clock[0]) as sandbox:
        env = make_env(sandbox, tmp_path)
        old, version = env.vault.load(env.connector.name)
        linked = len(sandbox.requests())
        clock[0] += timedelta(hours=1)  # the provider now considers the access token expired
        env.connector.check()
        new, new_version = env.vault.load(env.connector.name)
        assert new_version > version and new.refresh_token != old.refresh_token
        calls = sandbox.requests()[linked:]
        assert [r["status"] for r in calls].count(401) == 1
        assert len([r for r in calls if "token" in str(r["path"])]) == 1  # one refresh at the provider

        def refresh_with(token: str) -> int:
            return requests.post(
                f"{sandbox.base_url}/connect/token",
                data={"grant_type": "refresh_token", "refresh_token": token},
                auth=("sandbox-client", "sandbox-secret"),
                timeout=10,
            ).status_code

        clock[0] += timedelta(minutes=31)  # past Xero's 30-minute grace for the previous refresh token
        assert refresh_with(old.refresh_token) == 400
        env.store.close()

    clock = [now_utc()]
    with Sandbox(rate_limits=False, clock=lambda: clock[0]) as sandbox:
        env = make_env(sandbox, tmp_path / "again")
        old, _ = env.vault.load(env.connector.name)
        clock[0] += timedelta(hours=1)
        env.connector.check()
        clock[0] += timedelta(minutes=5)  # within the grace window: a lost refresh answer can be recovered
        assert refresh_with(old.refresh_token) == 200
        env.store.close()


def test_writes_near_the_daily_limit_are_deferred_to_the_next_run_not_failed(env: XeroEnv) -> None:
    pull_connection(env.store, env.connector)
    store, connector = env.store, env.connector
    ids = [i.id for i in store.invoices(connector.name) if i.status.is_open and i.editable][:3]
    actions = [fee_action(store.invoice(connector.name, i), k=1) for i in ids]  # type: ignore[arg-type]
    assert connector.day_remaining is not None
    # Room for the re-read of the three invoices (one call) and not for the write of their fees (one more).
    connector.daily_reserve = connector.day_remaining - 1
    report = apply_actions(actions, store, {connector.name: connector}, {}, lambda a: date(2026, 10, 20))
    assert not report.applied and not report.failed and not report.dropped
    assert {d["key"] for d in report.deferred} == {a.key for a in actions}
    assert not store.ledger(states=("applied", "pending", "failed"))

    connector.daily_reserve = 0  # the next day
    report = apply_actions(actions, store, {connector.name: connector}, {}, lambda a: date(2026, 10, 21))
    assert len(report.applied) == 3 and not report.deferred


def test_the_organisations_own_reminders_are_warned_of_on_every_sync(env: XeroEnv) -> None:
    state = env.sandbox.state()
    state["xero"]["InvoiceReminders"] = {"Enabled": True}  # type: ignore[index,call-overload]
    env.sandbox.reset(state)
    first = pull_connection(env.store, env.connector)
    calls = env.connector.stats.calls
    quiet = pull_connection(env.store, env.connector)
    for run in (first, quiet):
        assert [w.code for w in run.warnings] == [WarningCode.PROVIDER_REMINDERS]
    assert env.connector.stats.calls - calls == 2  # the setting is re-read only on the daily full pull


def test_a_quarantined_record_is_reported_and_the_rest_synced(env: XeroEnv) -> None:
    state = env.sandbox.state()
    invoices = state["xero"]["Invoices"]  # type: ignore[index,call-overload]
    invoices[0]["Total"] = "lots"
    env.sandbox.reset(state)
    env.valid_data = False
    run = pull_connection(env.store, env.connector)
    assert run.quarantined == 1 and run.invoices == len(invoices) - 1
    (bad,) = env.store.quarantined(env.connector.name)
    assert "Total" in bad.error


def test_paging_is_by_keyset_and_survives_a_page_of_records_within_one_second(
    env: XeroEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xero_module, "PAGE", 4)
    state = env.sandbox.state()
    invoices = state["xero"]["Invoices"]  # type: ignore[index,call-overload]
    stamp = f"/Date({int(now_utc().timestamp()) * 1000 - 86_400_000}+0000)/"
    for invoice in invoices[:10]:
        invoice["UpdatedDateUTC"] = stamp  # ten records in the same second: more than a page
    env.sandbox.reset(state)
    run = pull_connection(env.store, env.connector)
    assert run.invoices == len(invoices) and len({i.id for i in env.store.invoices(env.connector.name)}) == len(
        invoices
    )
    env.touch(env.open_invoice_id())
    changed = pull_connection(env.store, env.connector)
    assert changed.invoices == 1 and not changed.full


def test_a_deleted_payment_leaves_the_cache(env: XeroEnv) -> None:
    pull_connection(env.store, env.connector)
    state = env.sandbox.state()
    payment = state["xero"]["Payments"][0]  # type: ignore[index,call-overload]
    payment["Status"] = "DELETED"
    payment["UpdatedDateUTC"] = _now_ms()
    env.sandbox.reset(state)
    run = pull_connection(env.store, env.connector)
    assert run.payments == 0
    assert payment["PaymentID"] not in {p.id for p in env.store.payments(env.connector.name)}


def test_a_pending_fee_that_fell_back_to_a_fee_invoice_is_reconciled_with_that_form(env: XeroEnv) -> None:

    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.partly_paid_invoice_id(), {})  # type: ignore[misc]
    action = fee_action(invoice, form="line")
    env.store.ledger_begin(action)
    env.connector.apply(action, raw)  # the run "dies" here: the ledger still says pending
    (_settled,) = reconcile(env.store, {env.connector.name: env.connector}, date(2026, 10, 20))
    entry = env.store.ledger_get(action.key)
    assert entry is not None and entry.state == "applied" and entry.form == "invoice"


def test_each_connector_keeps_its_own_app_credentials(env: XeroEnv) -> None:
    # xero-python's Configuration() hands back a copy of the first one made in the process, arguments ignored.
    other = XeroConnector("other", env.connector.tenant_id, env.vault, client_id="another-app", client_secret="x")
    assert env.connector.api_client.configuration.oauth2_token.client_id == "sandbox-client"
    assert other.api_client.configuration.oauth2_token.client_id == "another-app"
    assert other.api_client.configuration.oauth2_token is not env.connector.api_client.configuration.oauth2_token


def _open_invoices(env: XeroEnv, count: int) -> list[Invoice]:
    pull_connection(env.store, env.connector)
    name = env.connector.name
    found = [i for i in env.store.invoices(name) if i.status.is_open and i.editable and not i.amount_due < i.total]
    assert len(found) >= count
    return found[:count]


def _apply(env: XeroEnv, actions: list[Action]) -> ApplyReport:
    return apply_actions(actions, env.store, {env.connector.name: env.connector}, {}, lambda a: date(2026, 10, 20))


def test_the_fees_of_several_invoices_go_in_one_post_each_invoice_answered_on_its_own(
    env: XeroEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    paid, voided, plain = _open_invoices(env, 3)
    actions = [fee_action(invoice, k) for invoice in (paid, voided, plain) for k in (1, 2)]
    read = env.connector._read_raws

    def others_write_meanwhile(invoice_ids: list[str]) -> Mapping[str, Any]:
        found = read(invoice_ids)
        env.pay(paid.id, "10.00")  # a payment between our read and our write: its fees go on invoices of their own
        voided_now = env.post(f"Invoices/{voided.id}", {"InvoiceID": voided.id, "Status": "VOIDED"})
        assert voided_now.status_code == 200, voided_now.text
        return found

    monkeypatch.setattr(env.connector, "_read_raws", others_write_meanwhile)
    report = _apply(env, actions)
    forms = {a["key"]: a["form"] for a in report.applied}
    assert forms == {
        a.key: "invoice" if a.invoice.id == paid.id else "line" for a in actions if a.invoice.id != voided.id
    }
    assert {f["key"] for f in report.failed} == {a.key for a in actions if a.invoice.id == voided.id}
    assert all("VOIDED" in f["error"] for f in report.failed)
    bulk = [r for r in env.sandbox.requests() if r["method"] == "POST" and str(r["path"]).lower().endswith("/invoices")]
    assert len(bulk) == 1 and "summarizeerrors=false" in str(bulk[0]["query"]).lower()
    for action in actions:
        assert env.fee_lines(action.invoice.id, action.description or "") == (action.invoice.id == plain.id)
