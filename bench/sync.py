"""Benchmark of the pulls: API calls and wall time per sync; QuickBooks against python-quickbooks alone, then Xero
and FreshBooks.

Run as `.venv/bin/python bench/sync.py` (or `make bench`); `--invoices N --payments N --latency-ms MS`
(defaults 10,000 / 10,000 / 20), `--check` exits 1 when a target is missed.

Everything runs in this process: the in-process sandbox serves a generated book
(`generate_book`) with `latency_ms` added to every answer and the emulator's rate limits
off, so the figures count our calls and not the emulator's throttle. The bridge's own
client-side limiter (8 calls a second, burst 2) still applies, as it does in production;
the time it made the pull wait is shown, and whether it dominates the wall time.

The bridge side is what `bridge sync` does per connection: a connector built by the
QuickBooks factory from the connection's settings (tokens from a Fernet-encrypted vault in
a temporary SQLite store, linked through `link_sandbox`), then `pull_connection`: pull,
map, and save records and cursors to the store. Evaluation and apply are not part of it.

1. first sync: keyset pull of every customer, invoice and payment, saved to the store;
2. a second sync with nothing changed (the target: at most 2 calls);
3. a sync after 10 invoices changed (10 payments created through the API, one per invoice).

The comparison is what a user of python-quickbooks alone writes: `Invoice.all(qb=client)` and
`Payment.all(qb=client)`. `ListMixin.all` sends one query with `MAXRESULTS 100` (its default
`max_results`) and no paging, i.e. it returns the first 100 records only, so the user writes
the usual loop `Invoice.all(start_position=p, max_results=100)` until a short page. The SDK
has no incremental mode: its "sync with nothing changed" is the same full read again. The
SDK side only reads (no mapping, no store), which flatters it.

API calls are counted from the sandbox's request log (`/v3/...` QuickBooks entries; OAuth
excluded); wall time with `time.perf_counter`. Note that the emulator serves from this
same process, so its work (JSON encoding of each page) shares the GIL with the client.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import requests
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.quickbooks import auth_client
from bridge.auth.vault import TokenVault
from bridge.config import ConnectionSettings, Settings
from bridge.connectors import freshbooks as freshbooks_connector
from bridge.connectors import quickbooks as qbo_connector
from bridge.connectors import xero as xero_connector
from bridge.store import Store
from bridge.sync import ConnectionRun, Runtime, pull_connection
from bridge_sandbox import Sandbox, generate_book
from bridge_sandbox.freshbooks_books import generate_freshbooks_account
from bridge_sandbox.xero_books import generate_xero_org

CONNECTION = "bench-qbo"
XERO_CONNECTION = "bench-xero"
FRESHBOOKS_CONNECTION = "bench-freshbooks"
SDK_CONNECTION = "bench-sdk-user"
CLIENT_ID, CLIENT_SECRET = "sandbox-client", "sandbox-secret"
MINOR_VERSION = 75
CHANGED_INVOICES = 10
TARGET_FULL_CALLS = 25  # the issue: 10,000 invoices + 10,000 payments in at most 25 calls
TARGET_NOCHANGE_CALLS = 2  # the issue: a sync with nothing changed costs at most 2 calls


@dataclass
class Measured:
    """One measured section: what the sandbox saw and how long it took."""

    label: str
    wall: float = 0.0
    calls: int = 0
    oauth: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    server: float = 0.0  # sum of the sandbox's duration_ms of the API calls (includes the added latency)
    statuses: Counter[int] = field(default_factory=Counter)
    waited: float = 0.0  # the bridge's client-side limiter (and retry) sleeps
    pull: float = 0.0  # connector.pull (wire + mapping); the rest of a bridge sync is saving to the store
    run: ConnectionRun | None = None
    rows: int = 0  # records the section returned (SDK: objects built)
    queries: list[tuple[str, int]] = field(default_factory=list)  # (entity, rows) per query of the bridge
    note: str = ""


def measure(
    sandbox: Sandbox, label: str, fn: Callable[[Measured], None], provider: str = "quickbooks", api: str = "/v3/"
) -> Measured:
    """Run `fn` once, timed, and attribute the sandbox's log entries written meanwhile to it."""
    mark = len(sandbox.requests())
    out = Measured(label)
    started = perf_counter()
    fn(out)
    out.wall = perf_counter() - started
    for entry in sandbox.requests()[mark:]:
        if entry.get("provider") != provider:
            continue
        if not str(entry.get("path", "")).lower().startswith(api):
            out.oauth += 1
            continue
        out.calls += 1
        out.routes[str(entry.get("route") or "?")] += 1
        out.server += float(entry.get("duration_ms") or 0.0) / 1000
        if isinstance(entry.get("status"), int):
            out.statuses[entry["status"]] += 1
    return out


# ---------------------------------------------------------------------------------------------------- bridge


def bridge_sync(rt: Runtime, name: str = CONNECTION) -> Callable[[Measured], None]:
    """One `bridge sync` pull of the connection, with a fresh connector as a new run would build."""

    def run(out: Measured) -> None:
        connectors, failed = rt.connectors(rt.select([name]))
        if failed:
            raise SystemExit(f"the connector could not be built: {failed}")
        connector = connectors[name]
        # Instrumentation only: time connector.pull apart from saving, and see every query's size.
        pull = connector.pull
        query = getattr(connector, "_query", None)  # private: the per-query row counts are skipped without it

        def timed_pull(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            try:
                return pull(*args, **kwargs)
            finally:
                out.pull = perf_counter() - started

        def counted_query(statement: str) -> dict[str, Any]:
            assert query is not None
            result: dict[str, Any] = query(statement)
            entity = statement.split(" FROM ", 1)[1].split(" ", 1)[0]
            out.queries.append((entity, len(result.get(entity, []))))
            return result

        connector.pull = timed_pull  # type: ignore[method-assign]
        if query is not None:
            connector._query = counted_query  # type: ignore[attr-defined]
        out.run = pull_connection(rt.store, connector)
        out.waited = connector.stats.waited
        out.rows = out.run.invoices + out.run.payments

    return run


def change_invoices(qb: Any, store: Store, count: int) -> list[str]:
    """Pay 1 unit on `count` open invoices (one payment each) through the API, as a client paying would."""
    open_invoices = sorted(
        (inv for inv in store.invoices(CONNECTION) if inv.amount_due >= 1), key=lambda inv: int(inv.id)
    )[:count]
    for invoice in open_invoices:
        body = {
            "CustomerRef": {"value": invoice.customer.id},
            "TotalAmt": 1,  # an int: exact, and no float near an amount
            "Line": [{"Amount": 1, "LinkedTxn": [{"TxnId": invoice.id, "TxnType": "Invoice"}]}],
        }
        qb.create_object("Payment", json.dumps(body))
    return [inv.id for inv in open_invoices]


# ---------------------------------------------------------------------------------------------------- SDK


def sdk_default_page() -> int:
    """`ListMixin.all`'s default `max_results` (100 in python-quickbooks 0.9.12)."""
    from quickbooks.mixins import ListMixin  # type: ignore[import-untyped]

    default = inspect.signature(ListMixin.all).parameters["max_results"].default
    return int(default)


def sdk_client(base_url: str, store: Store, vault: TokenVault, realm_id: str) -> Any:
    """A python-quickbooks client as its README builds one, pointed at the sandbox; its own link."""
    from quickbooks import QuickBooks

    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    # A grant of its own, so its refresh (the SDK refreshes on construction) leaves the bridge's tokens alone.
    link_sandbox("quickbooks", store, vault, base_url, SDK_CONNECTION, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    tokens, _ = vault.load(SDK_CONNECTION)
    auth = auth_client(base_url, CLIENT_ID, CLIENT_SECRET, "http://127.0.0.1:8719/callback")
    qb = QuickBooks(
        auth_client=auth,
        refresh_token=tokens.refresh_token,
        company_id=realm_id,
        minorversion=MINOR_VERSION,
        use_decimal=True,
    )
    qb.api_url_v3 = base_url + "/v3"
    return qb


def sdk_read_all(qb: Any, page: int) -> Callable[[Measured], None]:
    """What a user writes: `X.all(start_position=p, max_results=<default>)` until a short page."""
    from quickbooks.objects.invoice import Invoice  # type: ignore[import-untyped]
    from quickbooks.objects.payment import Payment  # type: ignore[import-untyped]

    def run(out: Measured) -> None:
        for cls in (Invoice, Payment):
            start = 1
            while True:
                batch = cls.all(start_position=start, max_results=page, qb=qb)
                out.rows += len(batch)
                if len(batch) < page:
                    break
                start += page

    return run


def sdk_all_once(qb: Any) -> Callable[[Measured], None]:
    """`Invoice.all(qb=client)` exactly as written, to show it returns one page."""
    from quickbooks.objects.invoice import Invoice

    def run(out: Measured) -> None:
        out.rows = len(Invoice.all(qb=qb))

    return run


# ---------------------------------------------------------------------------------------------------- report


def _ratio(a: float, b: float) -> str:
    return f"{a / b:,.1f}x" if b > 0 else "n/a"


def report(
    args: argparse.Namespace,
    customers: int,
    bridge: Sequence[Measured],
    sdk: Sequence[Measured],
    sdk_once: Measured,
    page: int,
    changed: Sequence[str],
) -> bool:
    """Print the table, the ratios, the targets and where the time went; True when every target is met."""
    first, nochange, after = bridge
    sdk_first, sdk_again = sdk
    print(
        f"QuickBooks pull: {args.invoices:,} invoices, {args.payments:,} payments, {customers:,} customers; "
        f"sandbox latency {args.latency_ms} ms per call, emulator rate limits off"
    )
    print(f"bridge client-side limiter: {qbo_connector.RATE_PER_SECOND:g} calls/s, burst {qbo_connector.BURST}")
    print()
    header = f"{'':<52} {'API calls':>9} {'wall s':>8} {'limiter s':>9} {'server s':>8} {'records':>8}"
    print(header)
    print("-" * len(header))
    rows = [
        ("bridge  1. first sync (keyset, full, saved)", first),
        ("bridge  2. second sync, nothing changed", nochange),
        (f"bridge  3. sync after {CHANGED_INVOICES} invoices changed", after),
        (f"SDK     4. Invoice.all + Payment.all, paged by {page}", sdk_first),
        ("SDK        again, nothing changed (full re-read)", sdk_again),
    ]
    for label, m in rows:
        limiter = f"{m.waited:9.2f}" if label.startswith("bridge") else f"{'-':>9}"
        print(f"{label:<52} {m.calls:>9,} {m.wall:>8.2f} {limiter} {m.server:>8.2f} {m.rows:>8,}")
    print()
    print(
        f"note: Invoice.all(qb=client) as written sends one query (MAXRESULTS {page}, the SDK default, no paging): "
        f"{sdk_once.calls} call, {sdk_once.rows:,} of {args.invoices:,} invoices; so row 4 is the loop a user "
        f"writes, all(start_position=p, max_results={page}) until a short page."
    )
    print("      The bridge rows also pull customers and save everything to the store; the SDK rows only read.")
    print()
    print("side by side                         bridge            SDK     SDK/bridge")
    print(
        f"  full pull      calls         {first.calls:>9,}      {sdk_first.calls:>9,}     "
        f"{_ratio(sdk_first.calls, first.calls):>9}"
    )
    print(f"                 wall s        {first.wall:>9.2f}      {sdk_first.wall:>9.2f}     "
          f"{_ratio(sdk_first.wall, first.wall):>9}")  # fmt: skip
    print(
        f"  nothing changed calls        {nochange.calls:>9,}      {sdk_again.calls:>9,}     "
        f"{_ratio(sdk_again.calls, nochange.calls):>9}"
    )
    print(f"                 wall s        {nochange.wall:>9.2f}      {sdk_again.wall:>9.2f}     "
          f"{_ratio(sdk_again.wall, nochange.wall):>9}")  # fmt: skip
    print()

    full_ok = first.calls <= TARGET_FULL_CALLS
    none_ok = nochange.calls <= TARGET_NOCHANGE_CALLS
    print("targets (from the issue)")
    print(
        f"  {'PASS' if full_ok else 'FAIL'}  full pull of {args.invoices:,} invoices + {args.payments:,} payments "
        f"<= {TARGET_FULL_CALLS} calls: {first.calls}"
        + ("" if (args.invoices, args.payments) == (10_000, 10_000) else "  (target is stated for 10,000 + 10,000)")
    )
    print(
        f"  {'PASS' if none_ok else 'FAIL'}  sync with nothing changed <= {TARGET_NOCHANGE_CALLS} calls: "
        f"{nochange.calls}"
    )
    print()

    print("where the bridge's time went")
    for label, m in rows[:3]:
        run = m.run
        assert run is not None
        client = max(0.0, m.pull - m.server - m.waited)
        kind = "full (keyset)" if run.full else "incremental (CDC)"
        floor = max(0, m.calls - qbo_connector.BURST) / qbo_connector.RATE_PER_SECOND
        share = m.waited / m.wall if m.wall else 0.0
        verdict = "dominated by the limiter" if share > 0.5 else "not dominated by the limiter"
        print(
            f"  {label.split('. ', 1)[1]}: {kind}; routes {dict(m.routes)}; "
            f"{run.invoices:,} invoices, {run.payments:,} payments, {run.deleted} deleted, "
            f"{run.quarantined} quarantined"
        )
        print(
            f"    wall {m.wall:.2f} s = pull {m.pull:.2f} s (sandbox {m.server:.2f} s incl. {args.latency_ms} ms x "
            f"{m.calls} latency, limiter {m.waited:.2f} s, client parse+map ~{client:.2f} s) "
            f"+ save to store {max(0.0, m.wall - m.pull):.2f} s"
        )
        print(
            f"    limiter: {m.calls} calls at {qbo_connector.RATE_PER_SECOND:g}/s need >= {floor:.2f} s "
            f"(after a burst of {qbo_connector.BURST}); it actually waited {m.waited:.2f} s = {share:.0%} of wall: "
            f"{verdict}"
        )
        if m.queries:
            per: dict[str, list[int]] = {}
            for entity, n in m.queries:
                per.setdefault(entity, []).append(n)
            parts = [f"{e}: {len(ns)} queries, {sum(ns):,} rows [{', '.join(map(str, ns))}]" for e, ns in per.items()]
            print("    queries: " + "; ".join(parts))
        if m.statuses and set(m.statuses) != {200}:
            print(f"    statuses: {dict(m.statuses)}")
    print(f"  changed invoices (one 1-unit payment each): {', '.join(changed)}")
    if first.run is not None:
        mapped = {"Customer": customers, "Invoice": first.run.invoices, "Payment": first.run.payments}
        again = {e: sum(n for q, n in first.queries if q == e) - mapped.get(e, 0) for e in mapped}
        if any(n > 0 for n in again.values()):
            print(
                f"  the keyset pull re-read {sum(again.values()):,} rows it already had ({again}): each re-query "
                "starts at the last timestamp seen, and after a full page one more query is needed to find the end"
            )
    per_call = [f"{label} {m.server / m.calls * 1000:.0f} ms" for label, m in (("bridge", first), ("SDK", sdk_first))]
    print(
        f"  sandbox time per call (incl. the {args.latency_ms} ms latency): {', '.join(per_call)}; "
        "the emulator filters and sorts every record of the entity on every query, so small pages are "
        "expensive here: the call counts are the robust comparison, the time ratio depends on the emulator"
    )
    sdk_rate = 10.0  # QuickBooks' published 10 calls/s per company: the SDK has no limiter, the real API has
    print(
        f"  at QuickBooks' published 10 calls/s the SDK's {sdk_first.calls} calls would take >= "
        f"{sdk_first.calls / sdk_rate:.1f} s and the bridge's {first.calls} calls >= {first.calls / sdk_rate:.1f} s"
    )
    return full_ok and none_ok


# ---------------------------------------------------------------------------------------------------- Xero, FreshBooks


def provider_syncs(
    args: argparse.Namespace,
    provider: str,
    name: str,
    section: Mapping[str, Any],
    factory: Any,
    api: str,
    change: Callable[[str, str, str], None],
) -> list[Measured]:
    """A first sync, one with nothing changed, and one after `change(base_url, tenant, access_token)`."""
    with tempfile.TemporaryDirectory(prefix=f"bridge-bench-{provider}-") as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            vault = TokenVault(store, Fernet(Fernet.generate_key()))
            with Sandbox({provider: section}, latency_ms=args.latency_ms, rate_limits=False) as sandbox:
                base = sandbox.base_url
                tenant = link_sandbox(provider, store, vault, base, name)
                connection = ConnectionSettings(name=name, provider=provider, tenant_id=tenant, base_url=base)
                settings = Settings(source=Path(tmp) / "bridge.toml", connections=(connection,))
                rt = Runtime(settings, store, vault, env={}, factories={provider: factory})
                runs = [measure(sandbox, "first", bridge_sync(rt, name), provider, api)]
                runs.append(measure(sandbox, "nochange", bridge_sync(rt, name), provider, api))
                change(base, tenant, vault.load(name)[0].access_token)
                runs.append(measure(sandbox, "after", bridge_sync(rt, name), provider, api))
        finally:
            store.close()
    return runs


def report_syncs(title: str, labels: Sequence[str], runs: Sequence[Measured]) -> bool:
    """The table of the three syncs and the no-change target; True when it holds."""
    print()
    print(title)
    header = f"{'':<52} {'API calls':>9} {'wall s':>8} {'limiter s':>9} {'server s':>8} {'records':>8}"
    print(header)
    print("-" * len(header))
    for label, m in zip(labels, runs, strict=True):
        print(f"{label:<52} {m.calls:>9,} {m.wall:>8.2f} {m.waited:>9.2f} {m.server:>8.2f} {m.rows:>8,}")
        if m.routes:
            print(f"{'':<8}routes {dict(m.routes)}")
    ok = runs[1].calls <= TARGET_NOCHANGE_CALLS
    print(f"  {'PASS' if ok else 'FAIL'}  sync with nothing changed <= {TARGET_NOCHANGE_CALLS} calls: {runs[1].calls}")
    return ok


def xero_bench(args: argparse.Namespace) -> bool:
    """The same three syncs against a generated Xero organisation; True when the no-change target holds."""
    org = generate_xero_org(args.invoices, args.payments)

    def change(base: str, tenant: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant, "Content-Type": "application/json"}
        for invoice in org["Invoices"][:CHANGED_INVOICES]:
            body = {"InvoiceID": invoice["InvoiceID"], "Reference": "changed"}
            url = f"{base}/api.xro/2.0/Invoices/{invoice['InvoiceID']}"
            requests.post(url, headers=headers, data=json.dumps(body), timeout=30).raise_for_status()

    runs = provider_syncs(args, "xero", XERO_CONNECTION, org, xero_connector.factory, "/api.xro/", change)
    title = (
        f"Xero pull: {args.invoices:,} invoices, {len(org['Payments']):,} payments, {len(org['Contacts']):,} contacts; "
        f"sandbox latency {args.latency_ms} ms per call, emulator rate limits off; bridge limiter "
        f"{xero_connector.CALLS_PER_MINUTE} calls in any 60 s"
    )
    labels = (
        "bridge  1. first sync (full: invoices, payments, contacts)",
        "bridge  2. second sync, nothing changed",
        f"bridge  3. sync after {CHANGED_INVOICES} invoices changed",
    )
    return report_syncs(title, labels, runs)


def freshbooks_bench(args: argparse.Namespace) -> bool:
    """The same three syncs against a generated FreshBooks account; True when the no-change target holds.

    The changes are payments (through the API, one per invoice): a FreshBooks payment changes its invoice,
    and the connector reads payments only when some invoice changed.
    """
    account = generate_freshbooks_account(args.invoices, args.payments)
    open_ids = [i["id"] for i in account["invoices"] if i["payment_status"] != "paid"][:CHANGED_INVOICES]

    def change(base: str, account_id: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for invoice_id in open_ids:
            body = {"payment": {"invoiceid": invoice_id, "amount": {"amount": "1.00"}}}
            url = f"{base}/accounting/account/{account_id}/payments/payments"
            requests.post(url, headers=headers, data=json.dumps(body), timeout=30).raise_for_status()

    factory = freshbooks_connector.factory
    runs = provider_syncs(args, "freshbooks", FRESHBOOKS_CONNECTION, account, factory, "/accounting/", change)
    title = (
        f"FreshBooks pull: {args.invoices:,} invoices, {len(account['payments']):,} payments, "
        f"{len(account['clients']):,} clients; sandbox latency {args.latency_ms} ms per call, emulator rate limits "
        f"off; bridge limiter {freshbooks_connector.CALLS_PER_MINUTE} calls in any 60 s; pages of "
        f"{freshbooks_connector.PER_PAGE} (FreshBooks' maximum)"
    )
    labels = (
        "bridge  1. first sync (full: invoices, payments, clients)",
        "bridge  2. second sync, nothing changed",
        f"bridge  3. sync after {len(open_ids)} invoices got a payment",
    )
    return report_syncs(title, labels, runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--invoices", type=int, default=10_000, help="invoices in the book (default 10,000)")
    parser.add_argument("--payments", type=int, default=10_000, help="payments in the book (default 10,000)")
    parser.add_argument("--latency-ms", type=int, default=20, help="latency the sandbox adds per call (default 20)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.invoices < CHANGED_INVOICES or args.payments < 0 or args.latency_ms < 0:
        parser.error(f"--invoices must be at least {CHANGED_INVOICES}; --payments and --latency-ms at least 0")

    started = perf_counter()
    book = generate_book(args.invoices, args.payments)
    section: Mapping[str, Any] = book["quickbooks"]
    customers = len(section.get("Customer", []))
    print(f"(book generated in {perf_counter() - started:.2f} s)")

    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            vault = TokenVault(store, Fernet(Fernet.generate_key()))
            with Sandbox(book, latency_ms=args.latency_ms, rate_limits=False) as sandbox:
                base = sandbox.base_url
                realm = link_sandbox(
                    "quickbooks", store, vault, base, CONNECTION, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
                )
                settings = Settings(
                    source=Path(tmp) / "bridge.toml",
                    connections=(
                        ConnectionSettings(name=CONNECTION, provider="quickbooks", tenant_id=realm, base_url=base),
                    ),
                )
                rt = Runtime(settings, store, vault, env={}, factories={"quickbooks": qbo_connector.factory})

                first = measure(sandbox, "first", bridge_sync(rt))
                nochange = measure(sandbox, "nochange", bridge_sync(rt))
                qb = sdk_client(base, store, vault, realm)
                changed = change_invoices(qb, store, CHANGED_INVOICES)
                after = measure(sandbox, "after", bridge_sync(rt))

                page = sdk_default_page()
                sdk_once = measure(sandbox, "sdk-once", sdk_all_once(qb))
                sdk_first = measure(sandbox, "sdk-first", sdk_read_all(qb, page))
                sdk_again = measure(sandbox, "sdk-again", sdk_read_all(qb, page))
        finally:
            store.close()

    ok = report(args, customers, (first, nochange, after), (sdk_first, sdk_again), sdk_once, page, changed)
    ok = xero_bench(args) and ok
    ok = freshbooks_bench(args) and ok
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
