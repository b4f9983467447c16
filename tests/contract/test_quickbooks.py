"""The QuickBooks connector through python-quickbooks and intuit-oauth against the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.clock import now_utc
from bridge.connectors.http import RetryPolicy
from bridge.connectors.quickbooks import QuickBooksConnector
from bridge.errors import ProviderError
from bridge.ledger import ApplyReport, apply_actions
from bridge.model import Invoice
from bridge.plan import Action
from bridge.store import Store
from bridge.sync import pull_connection
from bridge_sandbox import Sandbox, default_seed
from tests.contract.suite import ConnectorContract, fee_action

REALM = "9341453215647712"
FAST = RetryPolicy(initial=0.01, max_wait=0.05, max_retry_after=2)


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@dataclass
class QuickBooksEnv:
    connector: QuickBooksConnector
    store: Store
    vault: TokenVault
    base_url: str
    sandbox: Sandbox

    def _api(self, path: str) -> str:
        return f"{self.base_url}/v3/company/{REALM}/{path}"

    def _headers(self) -> dict[str, str]:
        tokens, _ = self.vault.load(self.connector.name)
        return {"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"}

    def raw(self, invoice_id: str) -> dict[str, Any]:
        response = requests.get(self._api(f"invoice/{invoice_id}"), headers=self._headers(), timeout=10)
        return dict(response.json(parse_float=Decimal)["Invoice"])

    def open_invoice_id(self) -> str:
        invoices = self.sandbox.state()["quickbooks"]["Invoice"]
        candidates = [
            i for i in invoices if Decimal(str(i["Balance"])) == Decimal(str(i["TotalAmt"])) > 0 and i.get("BillEmail")
        ]
        return str(sorted(candidates, key=lambda i: int(i["Id"]))[0]["Id"])

    def touch(self, invoice_id: str) -> None:
        raw = self.raw(invoice_id)
        body = {"Id": invoice_id, "SyncToken": raw["SyncToken"], "sparse": True, "PrivateNote": "touched"}
        response = requests.post(
            self._api("invoice"),
            headers={**self._headers(), "Content-Type": "application/json"},
            data=json.dumps(body),
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def delete(self, invoice_id: str) -> None:
        raw = self.raw(invoice_id)
        response = requests.post(
            self._api("invoice"),
            params={"operation": "delete"},
            headers={**self._headers(), "Content-Type": "application/json"},
            data=json.dumps({"Id": invoice_id, "SyncToken": raw["SyncToken"]}),
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def fee_lines(self, invoice_id: str, description: str) -> int:
        return sum(1 for line in self.raw(invoice_id).get("Line", []) if line.get("Description") == description)


def make_env(sandbox: Sandbox, tmp_path: Path, name: str = "acme-qbo") -> QuickBooksEnv:
    store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    vault = TokenVault(store, Fernet(Fernet.generate_key()))
    realm = link_sandbox("quickbooks", store, vault, sandbox.base_url, name)
    connector = QuickBooksConnector(
        name, realm, vault, base_url=sandbox.base_url, client_id="c", client_secret="s", policy=FAST, timeout=5
    )
    return QuickBooksEnv(connector, store, vault, sandbox.base_url, sandbox)


@pytest.fixture
def env(module_sandbox: Sandbox, tmp_path: Path) -> Iterator[QuickBooksEnv]:
    module_sandbox.reset(default_seed())  # a test may have loaded its own data
    e = make_env(module_sandbox, tmp_path)
    yield e
    e.store.close()


class TestQuickBooksContract(ConnectorContract):
    """The shared connector contract, on QuickBooks."""

    fee_write_route = "batch"


def test_every_write_carries_a_requestid_derived_from_the_action_key(env: QuickBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    env.connector.apply(fee_action(invoice), raw)
    writes = [r for r in env.sandbox.requests() if r["method"] == "POST" and "/invoice" in str(r["path"])]
    assert writes and all("requestid=bridge-" in str(r["query"]) for r in writes)


def test_a_repeated_write_replays_instead_of_charging_twice(env: QuickBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    action = fee_action(invoice)
    first = env.connector.apply(action, raw)
    second = env.connector.apply(action, raw)  # same key, same (now stale) SyncToken: QuickBooks replays
    assert first.response_id == second.response_id
    assert env.fee_lines(invoice.id, action.description or "") == 1
    assert any(r.get("replayed") for r in env.sandbox.requests())


def test_a_sync_token_stale_every_time_gives_up_after_a_few_rereads_and_writes_nothing(env: QuickBooksEnv) -> None:
    from bridge.connectors.quickbooks import STALE_RETRIES

    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    action = fee_action(invoice)
    env.sandbox.set_faults({"quickbooks": {"stale_synctoken": 1.0}})
    try:
        with pytest.raises(ProviderError):
            env.connector.apply(action, raw)
    finally:
        env.sandbox.set_faults({"quickbooks": {}})
    assert env.fee_lines(invoice.id, action.description or "") == 0
    refused = [r for r in env.sandbox.requests() if r["status"] == 400]
    assert len(refused) == STALE_RETRIES + 1
    assert env.connector.stats.retried["stale SyncToken"] == STALE_RETRIES


def test_a_stale_sync_token_is_reread_and_retried_once(env: QuickBooksEnv) -> None:
    pull_connection(env.store, env.connector)
    invoice, raw = env.connector.read_invoice(env.open_invoice_id(), {})  # type: ignore[misc]
    env.touch(invoice.id)  # someone edits the invoice between our read and our write
    action = fee_action(invoice)
    env.connector.apply(action, raw)
    assert env.fee_lines(invoice.id, action.description or "") == 1
    faults = [r for r in env.sandbox.requests() if r["status"] == 400]
    assert len(faults) == 1  # the 5010, then the re-read and one successful retry


def test_an_expired_access_token_is_refreshed_once_and_the_rotated_token_kept(tmp_path: Path) -> None:
    clock = [now_utc()]  # the sandbox's own clock, moved by hand below
    with Sandbox(rate_limits=False, clock=lambda: clock[0]) as sandbox:
        env = make_env(sandbox, tmp_path)
        old, version = env.vault.load(env.connector.name)
        clock[0] += timedelta(hours=2)  # the provider now considers the access token expired
        env.connector.check()
        new, new_version = env.vault.load(env.connector.name)
        assert new_version > version and new.refresh_token != old.refresh_token
        statuses = [r["status"] for r in sandbox.requests()]
        assert statuses.count(401) == 1
        # the old refresh token is single use: QuickBooks refuses it now
        refused = requests.post(
            f"{sandbox.base_url}/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": old.refresh_token},
            auth=("c", "s"),
            timeout=10,
        )
        assert refused.status_code == 400
        env.store.close()


def test_a_quarantined_record_is_reported_and_the_rest_synced(env: QuickBooksEnv) -> None:
    state = env.sandbox.state()
    state["quickbooks"]["Invoice"][0]["TotalAmt"] = "lots"
    env.sandbox.reset(state)
    run = pull_connection(env.store, env.connector)
    assert run.quarantined == 1 and run.invoices == len(state["quickbooks"]["Invoice"]) - 1
    (bad,) = env.store.quarantined(env.connector.name)
    assert "TotalAmt" in bad.error


def test_a_429_is_waited_out_as_retry_after_says(env: QuickBooksEnv) -> None:
    requests.post(
        env.base_url + "/_sandbox/faults", json={"quickbooks": {"429": 0.5, "seed": 3, "retry_after": 1}}, timeout=10
    )
    try:
        env.connector.check()
        env.connector.check()
        env.connector.check()
    finally:
        requests.post(env.base_url + "/_sandbox/faults", json={"quickbooks": {}}, timeout=10)
    throttled = [r for r in env.sandbox.requests() if r["status"] == 429]
    assert throttled, "the seeded faults should have throttled at least one call"
    assert env.connector.stats.retried["429"] == len(throttled)
    assert env.connector.stats.waited >= len(throttled) * 1.0


def _open_invoices(env: QuickBooksEnv, count: int) -> list[Invoice]:
    """`count` open invoices of the default books, read as the bridge reads them."""
    pull_connection(env.store, env.connector)
    invoices = env.sandbox.state()["quickbooks"]["Invoice"]
    ids = sorted(
        (str(i["Id"]) for i in invoices if Decimal(str(i["Balance"])) == Decimal(str(i["TotalAmt"])) > 0),
        key=int,
    )[:count]
    assert len(ids) == count
    return [env.connector.read_invoice(i, {})[0] for i in ids]  # type: ignore[index]


def _apply(env: QuickBooksEnv, actions: list[Action]) -> ApplyReport:
    return apply_actions(actions, env.store, {env.connector.name: env.connector}, {}, lambda a: date(2026, 10, 20))


def _batch_calls(env: QuickBooksEnv) -> list[dict[str, Any]]:
    return [r for r in env.sandbox.requests() if str(r["path"]).endswith("/batch")]


def test_the_fees_of_several_invoices_go_in_one_batch_each_applied_once(env: QuickBooksEnv) -> None:
    invoices = _open_invoices(env, 3)
    actions = [fee_action(invoice, k) for invoice in invoices for k in (1, 2)]
    before = len(_batch_calls(env))
    report = _apply(env, actions)
    assert sorted(a["key"] for a in report.applied) == sorted(a.key for a in actions)
    batches = _batch_calls(env)[before:]
    assert len(batches) == 1 and "requestid=bridge-" in str(batches[0]["query"])
    assert all(env.fee_lines(a.invoice.id, a.description or "") == 1 for a in actions)
    assert {e.state for e in env.store.ledger()} == {"applied"}


class _StaleFor(QuickBooksConnector):
    """Reads one invoice with a SyncToken that is never the current one (someone keeps editing it)."""

    stale_id = ""

    def _read_raws(self, invoice_ids: list[str]) -> Mapping[str, Any]:
        found = dict(super()._read_raws(invoice_ids))
        raw = found.get(self.stale_id)
        if raw is not None:
            found[self.stale_id] = {**raw, "SyncToken": str(int(raw["SyncToken"]) + 100)}
        return found


def test_one_item_of_a_batch_refused_fails_only_its_own_actions(env: QuickBooksEnv) -> None:
    from bridge.connectors.quickbooks import STALE_RETRIES

    invoices = _open_invoices(env, 3)
    connector = _StaleFor(
        env.connector.name, REALM, env.vault, base_url=env.base_url, client_id="c", client_secret="s", policy=FAST
    )
    connector.stale_id = invoices[1].id
    env.connector = connector
    actions = [fee_action(invoice, k) for invoice in invoices for k in (1, 2)]
    before = len(_batch_calls(env))
    report = _apply(env, actions)
    stale = {a.key for a in actions if a.invoice.id == invoices[1].id}
    assert {a["key"] for a in report.applied} == {a.key for a in actions} - stale
    assert {f["key"] for f in report.failed} == stale
    assert all("SyncToken was stale" in f["error"] for f in report.failed)
    assert {e.key: e.state for e in env.store.ledger() if e.key in stale} == dict.fromkeys(stale, "failed")
    # Read again and sent again on its own a few times, then left for the next run; the others written once.
    assert len(_batch_calls(env)) - before == STALE_RETRIES + 1
    assert connector.stats.retried["stale SyncToken"] == STALE_RETRIES
    for action in actions:
        assert env.fee_lines(action.invoice.id, action.description or "") == (action.key not in stale)
