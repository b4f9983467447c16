"""The FreshBooks connector through freshbooks-sdk against the sandbox: the shared contract, and every read and
write FreshBooks makes special (no idempotency key, single-use refresh tokens, update phases, own late fees)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

import bridge.connectors.freshbooks as fb_module
from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.clock import now_utc
from bridge.connectors.freshbooks import FreshBooksConnector
from bridge.connectors.http import RateLimiter, RetryPolicy
from bridge.errors import ConnectionDropped, ServerError
from bridge.ledger import apply_actions, reconcile
from bridge.plan import WarningCode
from bridge.store import Store
from bridge.sync import pull_connection
from bridge_sandbox import Sandbox, default_seed
from bridge_sandbox.freshbooks import FreshBooksProvider, stamp
from tests.contract.suite import ConnectorContract, due_date_action, fee_action, outbox, reminder_action

FAST = RetryPolicy(initial=0.01, max_wait=0.05, max_retry_after=2)
UNLIMITED = 1000.0
TODAY = date(2026, 10, 20)


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@dataclass
class FreshBooksEnv:
    connector: FreshBooksConnector
    store: Store
    vault: TokenVault
    base_url: str
    sandbox: Sandbox

    @property
    def provider(self) -> FreshBooksProvider:
        found = self.sandbox.providers["freshbooks"]
        assert isinstance(found, FreshBooksProvider)
        return found

    def _headers(self) -> dict[str, str]:
        tokens, _ = self.vault.load(self.connector.name)
        return {"Authorization": f"Bearer {tokens.access_token}", "Content-Type": "application/json"}

    def url(self, path: str) -> str:
        return f"{self.base_url}/accounting/account/{self.connector.tenant_id}/{path}"

    def raw(self, invoice_id: str) -> dict[str, Any]:
        response = requests.get(
            self.url(f"invoices/invoices/{invoice_id}?include[]=lines"), headers=self._headers(), timeout=10
        )
        return dict(response.json(parse_float=Decimal)["response"]["result"]["invoice"])

    def state(self) -> dict[str, Any]:
        return dict(self.sandbox.state()["freshbooks"])  # type: ignore[arg-type]

    def open_invoice_id(self) -> str:
        state = self.state()
        emails = {c["id"] for c in state["clients"] if c.get("email")}
        candidates = [
            i
            for i in state["invoices"]
            if i["status"] in (2, 3)
            and i["vis_state"] == 0
            and Decimal(i["paid"]["amount"]) == 0
            and i["customerid"] in emails
        ]
        return str(sorted(candidates, key=lambda i: i["invoice_number"])[0]["id"])

    def put(self, path: str, body: Any) -> requests.Response:
        return requests.put(self.url(path), headers=self._headers(), data=json.dumps(body), timeout=10)

    def touch(self, invoice_id: str) -> None:
        response = self.put(f"invoices/invoices/{invoice_id}", {"invoice": {"notes": "touched"}})
        assert response.status_code == 200, response.text

    def delete(self, invoice_id: str) -> None:
        response = requests.delete(self.url(f"invoices/invoices/{invoice_id}"), headers=self._headers(), timeout=10)
        assert response.status_code == 200, response.text

    def pay(self, invoice_id: str, amount: str) -> dict[str, Any]:
        body = {"payment": {"invoiceid": int(invoice_id), "amount": {"amount": amount}, "date": "2026-10-19"}}
        response = requests.post(
            self.url("payments/payments"), headers=self._headers(), data=json.dumps(body), timeout=10
        )
        assert response.status_code == 200, response.text
        return dict(response.json()["response"]["result"]["payment"])

    def fee_lines(self, invoice_id: str, description: str) -> int:
        return sum(1 for line in self.raw(invoice_id).get("lines", []) if line.get("description") == description)

    def calls(self, route: str) -> list[dict[str, Any]]:
        return [r for r in self.sandbox.requests() if r.get("route") == route]


def make_env(sandbox: Sandbox, tmp_path: Path, name: str = "acme-fb") -> FreshBooksEnv:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    vault = TokenVault(store, Fernet(Fernet.generate_key()))
    account = link_sandbox("freshbooks", store, vault, sandbox.base_url, name)
    connector = FreshBooksConnector(
        name,
        account,
        vault,
        base_url=sandbox.base_url,
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        policy=FAST,
        limiter=RateLimiter(UNLIMITED, 100),
        timeout=5,
    )
    return FreshBooksEnv(connector, store, vault, sandbox.base_url, sandbox)


@pytest.fixture
def env(module_sandbox: Sandbox, tmp_path: Path) -> Iterator[FreshBooksEnv]:
    module_sandbox.reset(default_seed())  # a test may have loaded its own data
    e = make_env(module_sandbox, tmp_path)
    yield e
    e.store.close()


class TestFreshBooksContract(ConnectorContract):
    """The shared connector contract, on FreshBooks."""

    fee_write_route = "invoice.update"

    def test_a_reminder_is_sent_through_the_provider(self, env: FreshBooksEnv) -> None:  # type: ignore[override]
        """As the shared test, except the evidence: FreshBooks shows nothing the API can read about a sent
        e-mail, so the connector answers "unknown" (never a guess that would let a reminder go out twice)."""
        pull_connection(env.store, env.connector)
        invoice, raw = self.fresh(env, env.open_invoice_id())
        action = reminder_action(invoice)
        env.connector.apply(action, raw)
        mails = outbox(env.base_url)
        assert len(mails) == 1 and mails[-1]["to"] == invoice.customer.email
        assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "unknown"


def test_the_sdk_runs_with_its_own_retries_off_behind_our_session(env: FreshBooksEnv) -> None:
    assert env.connector.sdk.auto_retry is False
    for resource in (env.connector.invoices, env.connector.payments, env.connector.clients, env.connector.identity):
        assert isinstance(resource.session, fb_module._Session)
        assert not resource.session.adapters["http://"].max_retries.total


def test_a_quiet_pull_costs_two_calls_and_a_changed_invoice_brings_its_payments(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    mark = len(env.sandbox.requests())
    quiet = pull_connection(env.store, env.connector)
    assert quiet.invoices == quiet.payments == 0 and quiet.stats.calls and not quiet.full
    assert [r["route"] for r in env.sandbox.requests()[mark:]] == ["invoices", "invoices"]  # live, then deleted
    invoice_id = env.open_invoice_id()
    env.pay(invoice_id, "100.00")
    changed = pull_connection(env.store, env.connector)
    assert changed.invoices == 1 and changed.payments == 1
    (paid,) = [i for i in env.store.invoices(env.connector.name) if i.id == invoice_id]
    assert paid.status.value == "partially_paid" and paid.amount_due == paid.total - Decimal("100.00")


def test_updated_min_is_a_day_before_the_watermark_and_the_overlap_is_de_duplicated(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    cursor = env.store.cursor(env.connector.name, "invoices")
    assert cursor is not None
    env.touch(env.open_invoice_id())
    mark = len(env.sandbox.requests())
    run = pull_connection(env.store, env.connector)
    assert run.invoices == 1  # yesterday's records came back too, and were recognised as seen
    first = env.sandbox.requests()[mark]
    watermark_day = fb_module.fm.eastern_day(int(cursor.watermark))
    assert f"search%5Bupdated_min%5D={(watermark_day - timedelta(days=1)).isoformat()}" in first["query"]
    assert "include%5B%5D=lines" in first["query"] and "per_page=100" in first["query"]


def test_a_fee_line_keeps_every_existing_line(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    before = [line["lineid"] for line in raw["lines"]]
    result = env.connector.apply(fee_action(invoice), raw)
    after = env.raw(invoice.id)
    assert [line["lineid"] for line in after["lines"]][: len(before)] == before
    assert len(after["lines"]) == len(before) + 1 and result.invoice is not None
    assert after["amount"]["amount"] == str(invoice.total + Decimal("12.34"))
    assert after["outstanding"]["amount"] == str(invoice.amount_due + Decimal("12.34"))


def test_a_retried_fee_line_write_checks_the_invoice_first(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    action = fee_action(invoice)
    original = env.connector.wire.request
    lost = [0]

    def lose_the_first_answer(method: str, url: str, **kwargs: Any) -> requests.Response:
        response = original(method, url, **kwargs)
        if method == "PUT" and not lost[0]:
            lost[0] += 1
            raise ConnectionDropped("the connection dropped after the request was sent")
        return response

    env.connector.wire.request = lose_the_first_answer  # type: ignore[method-assign]
    result = env.connector.apply(action, raw)
    assert result.form == "line" and env.fee_lines(invoice.id, action.description or "") == 1
    assert len(env.calls("invoice.update")) == 1  # the retry found the line and wrote nothing


def test_a_409_on_fee_invoice_creation_is_retried_or_recognised(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    action = fee_action(invoice, form="invoice")
    env.provider.collide_next_creates = 1  # another create took the number at the same moment
    first = env.connector.apply(action, raw)
    assert [c["status"] for c in env.calls("invoices.create")] == [409, 200]
    # The same write again (an answer lost after FreshBooks made it): 409, and the invoice found is ours.
    again = env.connector.apply(action, raw)
    assert again.response_id == first.response_id and again.form == "invoice"
    mine = [i for i in env.state()["invoices"] if f"fee_for={invoice.id}" in str(i.get("notes"))]
    assert len(mine) == 1 and mine[0]["amount"]["amount"] == "12.34" and mine[0]["status"] == 2
    pull_connection(env.store, env.connector)
    created = env.store.invoice(env.connector.name, first.response_id)
    assert created is not None and created.fee_for == invoice.id


def test_a_fee_invoice_number_taken_by_someone_else_fails_without_writing(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    action = fee_action(invoice, form="invoice")
    body = {"invoice": {"customerid": raw["customerid"], "invoice_number": f"{invoice.number}-LF1", "lines": []}}
    response = requests.post(env.url("invoices/invoices"), headers=env._headers(), data=json.dumps(body), timeout=10)
    assert response.status_code == 200
    with pytest.raises(fb_module.ProviderError, match="taken by another invoice"):
        env.connector.apply(action, raw)


def test_the_reminder_carries_the_contracts_subject_and_body_and_nothing_else(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    customers = env.store.customers(env.connector.name)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), customers)  # type: ignore[misc]
    assert invoice.customer.email
    action = reminder_action(invoice)
    original, sent = env.connector.wire.request, []

    def record(method: str, url: str, **kwargs: Any) -> requests.Response:
        sent.append(json.loads(kwargs["data"]) if kwargs.get("data") else None)
        return original(method, url, **kwargs)

    env.connector.wire.request = record  # type: ignore[method-assign]
    env.connector.apply(action, raw)
    # Only the action: FreshBooks carries out the first update phase present and drops other data silently.
    assert sent == [
        {
            "invoice": {
                "action_email": True,
                "email_recipients": [invoice.customer.email],
                "invoice_customized_email": {"subject": "Invoice overdue", "body": "Please pay."},
            }
        }
    ]
    (mail,) = outbox(env.base_url)
    assert (mail["provider"], mail["to"], mail["subject"], mail["body"]) == (
        "freshbooks",
        invoice.customer.email,
        "Invoice overdue",
        "Please pay.",
    )
    assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "unknown"


def test_a_500_on_the_email_put_is_in_doubt_and_never_sent_again(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice = env.store.invoice(env.connector.name, env.open_invoice_id())
    assert invoice is not None
    action = reminder_action(invoice)
    env.provider.fail_next_emails_after_sending = 1  # FreshBooks sends, then answers 500
    connectors = {env.connector.name: env.connector}
    report = apply_actions([action], env.store, connectors, {}, lambda a: TODAY)
    assert [d["key"] for d in report.in_doubt] == [action.key] and not report.applied
    assert len(env.calls("invoice.update")) == 1  # the PUT was not repeated
    assert len(outbox(env.base_url)) == 1
    assert env.store.ledger_get(action.key).state == "in_doubt"  # type: ignore[union-attr]
    # Whatever happens next: another run, a reconciliation, the same plan applied again.
    assert reconcile(env.store, connectors, TODAY) == []
    again = apply_actions([action], env.store, connectors, {}, lambda a: TODAY)
    assert again.skipped and not again.applied
    assert len(outbox(env.base_url)) == 1


def test_an_injected_500_on_the_email_put_is_not_retried(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    requests.post(env.base_url + "/_sandbox/faults", json={"freshbooks": {"500": 1.0}}, timeout=10)
    try:
        with pytest.raises(ServerError):
            env.connector.apply(reminder_action(invoice), raw)
    finally:
        requests.post(env.base_url + "/_sandbox/faults", json={"freshbooks": {}}, timeout=10)
    assert len(env.calls("invoice.update")) == 1 and env.connector.stats.retries == 0


def test_a_429_on_the_email_put_is_waited_out_and_sent_once(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    requests.post(
        env.base_url + "/_sandbox/faults", json={"freshbooks": {"429": 0.5, "seed": 1, "retry_after": 0}}, timeout=10
    )
    try:
        env.connector.apply(reminder_action(invoice), raw)
    finally:
        requests.post(env.base_url + "/_sandbox/faults", json={"freshbooks": {}}, timeout=10)
    assert len(outbox(env.base_url)) == 1


def test_the_due_date_moves_and_a_disputed_or_archived_invoice_is_on_hold(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    env.connector.apply(due_date_action(invoice, date(2026, 12, 1)), raw)
    assert env.raw(invoice.id)["due_date"] == "2026-12-01"
    held = {i.number: i.disputed for i in env.store.invoices(env.connector.name)}
    assert held["0000006"] and held["0000009"]  # disputed (status 0), archived (vis_state 2)


def test_freshbooks_own_late_fee_line_is_marked_and_clients_allowing_them_are_warned_of(env: FreshBooksEnv) -> None:
    first = pull_connection(env.store, env.connector)
    quiet = pull_connection(env.store, env.connector)
    for run in (first, quiet):
        codes = [w.code for w in run.warnings]
        assert codes == [WarningCode.PROVIDER_LATE_FEES] * 2  # once per client with allow_late_fees
    (fee,) = [
        (i.number, line) for i in env.store.invoices(env.connector.name) for line in i.lines if line.provider_late_fee
    ]
    assert fee[0] == "0000004" and fee[1].amount == Decimal("18.75")
    # The firm turns FreshBooks' fees off for one client: the next pull that re-reads it stops warning.
    client = next(c for c in env.state()["clients"] if c["allow_late_fees"])
    assert env.put(f"users/clients/{client['id']}", {"client": {"allow_late_fees": False}}).status_code == 200
    touched = next(i for i in env.state()["invoices"] if i["customerid"] == client["id"] and i["vis_state"] == 0)
    env.touch(str(touched["id"]))
    after = pull_connection(env.store, env.connector)
    assert len([w for w in after.warnings if w.code is WarningCode.PROVIDER_LATE_FEES]) == 1


def test_a_rotated_refresh_token_is_stored_and_the_old_one_is_refused(tmp_path: Path) -> None:
    clock = [now_utc()]
    with Sandbox(rate_limits=False, clock=lambda: clock[0]) as sandbox:
        env = make_env(sandbox, tmp_path)
        old, version = env.vault.load(env.connector.name)
        clock[0] += timedelta(hours=13)  # FreshBooks access tokens live 12 hours
        pull_connection(env.store, env.connector)  # a 401 first, then one refresh under the vault's lock
        new, new_version = env.vault.load(env.connector.name)
        assert new_version > version and new.refresh_token != old.refresh_token
        refreshes = [r for r in sandbox.requests() if r["path"] == "/auth/oauth/token"]
        assert len(refreshes) == 2  # the link's code exchange and one refresh
        again = requests.post(
            f"{sandbox.base_url}/auth/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": old.refresh_token,
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
                "redirect_uri": "https://127.0.0.1:8719/callback",
            },
            timeout=10,
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # single use
        env.store.close()


def test_paging_reads_again_when_a_record_leaves_the_list_while_paging(
    env: FreshBooksEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fb_module, "PER_PAGE", 4)
    original = env.connector.invoices.list
    changed = [False]

    def list_and_change(account_id: str, builders: Any = None) -> Any:
        answer = original(account_id, builders=builders)
        if not changed[0]:
            changed[0] = True  # after our first page, someone deletes the newest invoice: the rest shift up
            newest = max((i for i in env.state()["invoices"] if i["vis_state"] != 1), key=lambda i: i["updated"])
            env.delete(str(newest["id"]))
            oldest = min(env.state()["invoices"], key=lambda i: (i["updated"], i["id"]))
            env.touch(str(oldest["id"]))  # and someone edits the oldest: it jumps to the front
        return answer

    env.connector.invoices.list = list_and_change  # type: ignore[method-assign]
    run = pull_connection(env.store, env.connector)
    live = {str(i["id"]) for i in env.state()["invoices"] if i["vis_state"] != 1}
    assert run.invoices == len(live) and {i.id for i in env.store.invoices(env.connector.name)} == live


def test_a_quiet_pull_stops_at_the_first_page_older_than_the_watermark(
    env: FreshBooksEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fb_module, "PER_PAGE", 2)  # many more records in the overlap day than fit a page
    state = env.sandbox.state()
    for invoice in state["freshbooks"]["invoices"]:  # type: ignore[index,union-attr]
        invoice["updated"] = "2026-10-19 08:00:00"  # type: ignore[index]
    state["freshbooks"]["invoices"][0]["updated"] = "2026-10-19 09:00:00"  # type: ignore[index]
    env.sandbox.reset(state)
    pull_connection(env.store, env.connector)
    calls = env.connector.stats.calls
    quiet = pull_connection(env.store, env.connector)
    assert quiet.invoices == 0 and env.connector.stats.calls - calls == 2


def test_a_deleted_payment_leaves_the_cache(env: FreshBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    payment = env.state()["payments"][0]
    response = env.put(f"payments/payments/{payment['id']}", {"payment": {"vis_state": 1}})
    assert response.status_code == 200, response.text
    run = pull_connection(env.store, env.connector)
    assert run.invoices == 1
    assert str(payment["id"]) not in {p.id for p in env.store.payments(env.connector.name)}


def test_a_quarantined_record_is_reported_and_the_rest_synced(env: FreshBooksEnv) -> None:
    state = env.sandbox.state()
    invoices = state["freshbooks"]["invoices"]  # type: ignore[index,call-overload]
    invoices[0]["amount"] = {"amount": "lots", "code": "USD"}
    env.sandbox.reset(state)
    run = pull_connection(env.store, env.connector)
    live = [i for i in invoices if i["vis_state"] != 1]
    assert run.quarantined == 1 and run.invoices == len(live) - 1
    (bad,) = env.store.quarantined(env.connector.name)
    assert "amount" in bad.error


def test_updated_is_us_eastern_and_read_as_utc(env: FreshBooksEnv) -> None:
    env.touch(env.open_invoice_id())
    before = env.sandbox.now()
    touched = max(env.state()["invoices"], key=lambda i: i["updated"])
    assert stamp(before - timedelta(seconds=5)) <= touched["updated"] <= stamp(env.sandbox.now())  # Eastern text
    assert touched["updated"][:13] != before.strftime("%Y-%m-%d %H")  # not UTC wall time (Eastern is 4-5 h behind)
    seconds = fb_module.fm.updated_seconds(touched)
    assert abs(seconds - env.sandbox.now().timestamp()) < 5
