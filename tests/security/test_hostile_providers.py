"""Issue 15, hostile providers: nothing hangs, and one bad connection harms no other.

Each test links a hostile connection (a small server on 127.0.0.1 that misbehaves one way) beside a
well-behaved one from the sandbox, runs the real `bridge sync` in a subprocess and checks that the run
ends (a generous guard, never a timing assertion), names the hostile connection and the bound it tripped,
exits 3, and applied every action of the other connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from tests.security.conftest import (
    Book,
    Hit,
    Hostile,
    Reply,
    Run,
    drip,
    drip_headers,
    forward,
    never_answer,
    send_bytes,
    send_json,
)

STAMP = "/Date(1760000000000+0000)/"  # 2025-10-09, the same for every row: keyset paging cannot move on
QBO_STAMP = "2025-10-09T09:00:00-07:00"


def _answer(route: str, hostile: Reply, *, otherwise: Reply | None = None) -> Callable[[Hit], Reply]:
    def answer(hit: Hit) -> Reply:
        if route in hit.path:
            return hostile
        return otherwise or send_json({})

    return answer


def _good_partner(provider: str) -> str:
    return "xero" if provider == "quickbooks" else "quickbooks"


def _sync_beside(
    book: Book, provider: str, hostile: Hostile, *, timeout_seconds: int = 1, sync_deadline_seconds: int = 10
) -> tuple[Run, str]:
    good = f"good-{_good_partner(provider)}"
    book.good(_good_partner(provider), good)
    book.hostile(
        provider,
        f"hostile-{provider}",
        hostile.base_url,
        timeout_seconds=timeout_seconds,
        sync_deadline_seconds=sync_deadline_seconds,
    )
    return book.run("sync"), good


def _check_isolated(run: Run, hostile_name: str, good: str, *, says: str) -> None:
    assert run.code == 3, (run.code, run.stderr[-2000:])
    errors = run.errors_of(hostile_name)
    assert errors and any(says in e for e in errors), errors
    assert not run.errors_of(good), run.errors_of(good)
    planned = run.actions_of(good)
    assert planned, "the well-behaved connection had nothing to do: the test proves nothing"
    assert planned <= run.applied(), sorted(planned - run.applied())[:5]
    assert not run.actions_of(hostile_name)


# -- 1. pulls that never end ---------------------------------------------------------------------------


def _xero_same_page() -> Reply:
    rows = [{"InvoiceID": f"h-{i:04d}", "Type": "ACCREC", "UpdatedDateUTC": STAMP} for i in range(1000)]
    return send_json({"Invoices": rows})


def _quickbooks_same_page() -> Reply:
    rows = [{"Id": str(i), "MetaData": {"LastUpdatedTime": QBO_STAMP}} for i in range(1000)]
    # A full read asks each entity's next page in one /batch call.
    items = [{"bId": entity, "QueryResponse": {entity: rows}} for entity in ("Customer", "Invoice", "Payment")]
    return send_json({"BatchItemResponse": items})


def _freshbooks_page(rows: list[dict[str, object]], **counts: object) -> Reply:
    result = {"invoices": rows, "page": 1, "per_page": 100, **counts}
    return send_json({"response": {"result": result}})


def _freshbooks_rows() -> list[dict[str, object]]:
    return [{"id": i, "invoiceid": i, "updated": "2025-10-09 09:00:00"} for i in range(100)]


SAME_PAGE = {
    "xero": ("/Invoices", _xero_same_page, "xero page 2 brought no new invoices and did not advance the cursor"),
    "quickbooks": ("/batch", _quickbooks_same_page, "quickbooks page 2 brought no new Customer records"),
    "freshbooks": (
        "/invoices/invoices",
        lambda: _freshbooks_page(_freshbooks_rows(), pages=1_000_000_000, total=100_000_000_000),
        "freshbooks page 2 brought no new invoices",
    ),
}


@pytest.mark.parametrize("provider", sorted(SAME_PAGE))
def test_the_same_page_for_ever_stops_that_pull_and_the_other_connection_syncs(book: Book, provider: str) -> None:
    route, page, says = SAME_PAGE[provider]
    with Hostile(_answer(route, page())) as hostile:
        run, good = _sync_beside(book, provider, hostile)
    _check_isolated(run, f"hostile-{provider}", good, says=says)
    assert hostile.count(route) <= 3
    calls = hostile.count(route)
    print(f"{provider} same page for ever: stopped after {calls} calls; bridge sync took {run.seconds:.1f} s")


@pytest.mark.parametrize(
    ("counts", "says"),
    [
        ({"pages": 1_000_000_000, "total": 100}, "pages = 1000000000, more than 100 invoices at 100 a page fill"),
        ({"pages": "lots", "total": 100}, "pages = 'lots', not a whole number"),
        ({"pages": 2.5, "total": 100}, "pages = '2.5', not a whole number"),
    ],
    ids=["lying-page-count", "pages-lots", "pages-fraction"],
)
def test_a_freshbooks_page_count_that_lies_or_is_not_a_number_is_refused(
    book: Book, counts: dict[str, object], says: str
) -> None:
    route = "/invoices/invoices"
    with Hostile(_answer(route, _freshbooks_page(_freshbooks_rows(), **counts))) as hostile:
        run, good = _sync_beside(book, "freshbooks", hostile)
    _check_isolated(run, "hostile-freshbooks", good, says=says)
    assert hostile.count(route) == 1
    print(f"freshbooks {counts}: refused after {hostile.count(route)} call; bridge sync took {run.seconds:.1f} s")


def _xero_new_rows_for_ever() -> Callable[[Hit], Reply]:
    """Every page a thousand invoices never seen, each newer than the last: no progress check can stop this,
    only the pull's deadline (or the record bound)."""
    served = [0]

    def answer(hit: Hit) -> Reply:
        if "/Invoices" not in hit.path:
            return send_json({})
        served[0] += 1
        base = served[0] * 1000
        rows = [
            {
                "InvoiceID": f"n-{base + i}",
                "Type": "ACCREC",
                "UpdatedDateUTC": f"/Date({1760000000000 + base + i}+0000)/",
            }
            for i in range(1000)
        ]
        return send_json({"Invoices": rows})

    return answer


def test_a_pull_that_keeps_bringing_new_records_stops_at_its_deadline(book: Book) -> None:
    with Hostile(_xero_new_rows_for_ever()) as hostile:
        run, good = _sync_beside(book, "xero", hostile, sync_deadline_seconds=3)
    _check_isolated(run, "hostile-xero", good, says="the pull of 'hostile-xero' ran past sync_deadline_seconds = 3")
    calls = hostile.count("/Invoices")
    print(f"new records for ever: stopped by the 3 s deadline after {calls} calls; {run.seconds:.1f} s")


# -- dripping bodies -------------------------------------------------------------------------------------


def test_one_call_to_a_dripping_server_is_cut_at_its_timeout() -> None:
    from bridge.connectors.http import Wire
    from bridge.errors import CallTooSlow

    with Hostile(lambda hit: drip(every=0.5)) as hostile:
        wire = Wire("xero", 1)
        started = time.monotonic()
        with pytest.raises(
            CallTooSlow, match=r"xero did not answer GET /slow in full within 1 s \(timeout_seconds = 1\)"
        ):
            wire.request("GET", hostile.base_url + "/slow")
        took = time.monotonic() - started
    assert took < 10  # a guard only: before, a 10,000-byte drip at 2 bytes a second took 5,000 s
    print(f"dripping body: one call with timeout_seconds = 1 cut after {took:.2f} s")


def test_one_call_to_a_server_dripping_its_headers_is_cut_at_its_timeout() -> None:
    from bridge.connectors.http import Wire
    from bridge.errors import CallTooSlow

    with Hostile(lambda hit: drip_headers(every=0.5)) as hostile:
        wire = Wire("xero", 1)
        started = time.monotonic()
        with pytest.raises(CallTooSlow, match=r"xero did not answer GET /slow-headers in full within 1 s"):
            wire.request("GET", hostile.base_url + "/slow-headers")
        took = time.monotonic() - started
    assert took < 10  # a guard only: requests' timeout is per read, and every read brought a byte
    print(f"dripping headers: one call with timeout_seconds = 1 cut after {took:.2f} s")


@pytest.mark.parametrize("provider", ["xero", "quickbooks", "freshbooks"])
def test_a_dripping_provider_fails_its_connection_and_the_other_syncs(book: Book, provider: str) -> None:
    with Hostile(lambda hit: drip(every=0.5)) as hostile:
        run, good = _sync_beside(book, provider, hostile, timeout_seconds=1, sync_deadline_seconds=4)
    # Each call is cut at 1 s and retried (a timeout is worth another try) until the pull's 4 s are up.
    _check_isolated(run, f"hostile-{provider}", good, says="sync_deadline_seconds = 4")
    said = " ".join(run.errors_of(f"hostile-{provider}"))
    assert f"{provider} did not answer" in said, said  # the last failed call, named
    print(f"{provider} dripping every call: {len(hostile.hits)} calls cut, bridge sync took {run.seconds:.1f} s")


# -- 3. one provider's surprise stops only its connection ------------------------------------------------

NESTED = b"[" * 100_000 + b"]" * 100_000
# What each provider's path makes of it: our JSON parsing (Xero) raises RecursionError, which nothing expected;
# python-quickbooks wraps it in its own error.
NESTED_SAYS = {"xero": "RecursionError", "quickbooks": "Error reading json response", "freshbooks": "RecursionError"}


@pytest.mark.parametrize("provider", ["xero", "quickbooks", "freshbooks"])
def test_a_hundred_thousand_nested_brackets_fail_only_that_connection(book: Book, provider: str) -> None:
    with Hostile(lambda hit: send_bytes(NESTED)) as hostile:
        run, good = _sync_beside(book, provider, hostile)
    _check_isolated(run, f"hostile-{provider}", good, says=NESTED_SAYS[provider])
    print(f"{provider} nested brackets: failed after {len(hostile.hits)} call(s); bridge sync took {run.seconds:.1f} s")


def test_a_surprise_while_applying_fails_that_connection_only_and_nothing_applied_goes_unreported(book: Book) -> None:
    # A relay to the sandbox's Xero that answers every re-read before a write (one invoice, or several by
    # `IDs=`) with 100,000 nested brackets: the pull works, the first write's re-read blows up.
    def answer(hit: Hit) -> Reply:
        parts = hit.path.rstrip("/").split("/")
        several = parts[-1] == "Invoices" and any(k.lower() == "ids" for k in hit.query)
        if hit.method == "GET" and len(parts) >= 2 and (parts[-2] == "Invoices" or several):
            return send_bytes(NESTED)
        return forward(book.sandbox.base_url)

    book.good("quickbooks", "good-quickbooks")
    with Hostile(answer) as relay:
        book.good("xero", "odd-xero", through=relay.base_url)
        run = book.run("sync")
    assert run.code == 3, run.stderr[-2000:]
    assert run.actions_of("odd-xero"), "the relayed Xero planned nothing: the test proves nothing"
    assert not run.actions_of("odd-xero") & run.applied()
    failed = {f["key"]: f["error"] for f in run.plan["failed"]}
    assert set(failed) >= run.actions_of("odd-xero")
    assert any("RecursionError" in e for e in run.errors_of("odd-xero")), run.plan["errors"]
    planned = run.actions_of("good-quickbooks")
    assert planned and planned <= run.applied()


# -- 4. a token endpoint that never answers --------------------------------------------------------------


def _quickbooks_token_hangs(base: list[str], release: threading.Event | None = None) -> Callable[[Hit], Reply]:
    """A QuickBooks whose token endpoint never answers (or, once `release` is set, refuses the refresh)."""

    def refuse_later(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
        assert release is not None
        release.wait(600)
        send_json({"error": "invalid_grant"}, status=400)(handler, hostile, hit)

    def answer(hit: Hit) -> Reply:
        if hit.path.endswith("openid_configuration"):
            url = base[0]
            return send_json(
                {
                    "issuer": url,
                    "authorization_endpoint": f"{url}/connect/oauth2",
                    "token_endpoint": f"{url}/oauth2/v1/tokens/bearer",
                    "revocation_endpoint": f"{url}/oauth2/v1/tokens/revoke",
                    "userinfo_endpoint": f"{url}/v1/openid_connect/userinfo",
                    "jwks_uri": f"{url}/oauth2/v1/keys",
                }
            )
        if hit.path.endswith("/tokens/bearer"):
            return never_answer if release is None else refuse_later
        return send_json({}, status=401)  # the access token is refused: refresh it

    return answer


def _freshbooks_token(reply: Reply) -> Callable[[Hit], Reply]:
    def answer(hit: Hit) -> Reply:
        if hit.path.endswith("/auth/oauth/token"):
            return reply
        return send_json({}, status=401)  # the access token is refused: refresh it

    return answer


TOKEN_PATHS = {"quickbooks": "/tokens/bearer", "freshbooks": "/auth/oauth/token"}


@pytest.mark.parametrize(
    ("provider", "how"),
    [("quickbooks", "never answers"), ("freshbooks", "never answers"), ("freshbooks", "drips")],
)
def test_a_token_endpoint_that_hangs_fails_that_connection_and_the_other_syncs(
    book: Book, provider: str, how: str
) -> None:
    base: list[str] = []
    reply = never_answer if how == "never answers" else drip(every=0.5)
    answer = _quickbooks_token_hangs(base) if provider == "quickbooks" else _freshbooks_token(reply)
    with Hostile(answer) as hostile:
        base.append(hostile.base_url)
        book.good("xero", "good-xero")
        book.hostile(provider, f"hostile-{provider}", hostile.base_url, expired=True, sync_deadline_seconds=4)
        run = book.run("sync")
    # Each refresh is cut at timeout_seconds (1) and tried again until the pull's deadline (4 s) stops it.
    _check_isolated(run, f"hostile-{provider}", "good-xero", says="ran past sync_deadline_seconds = 4")
    said = " ".join(run.errors_of(f"hostile-{provider}"))
    assert "token service did not answer POST" in said and TOKEN_PATHS[provider] in said, said  # what hung
    calls = hostile.count(TOKEN_PATHS[provider])
    assert calls >= 2
    print(f"{provider} token endpoint {how}: {calls} refresh calls cut; bridge sync took {run.seconds:.1f} s")


def test_a_hung_token_refresh_holds_no_database_lock_over_another_process(book: Book) -> None:
    base: list[str] = []
    release = threading.Event()
    with Hostile(_quickbooks_token_hangs(base, release)) as hostile:
        base.append(hostile.base_url)
        book.good("xero", "good-xero")
        book.hostile(
            "quickbooks",
            "hostile-quickbooks",
            hostile.base_url,
            expired=True,
            timeout_seconds=120,
            sync_deadline_seconds=150,
        )
        stuck = book.start("sync", "--connection", "hostile-quickbooks")
        try:
            waited = 0.0
            while not hostile.count("/tokens/bearer") and waited < 60 and stuck.poll() is None:
                time.sleep(0.1)
                waited += 0.1
            assert hostile.count("/tokens/bearer"), "the refresh never started"
            # The refresh hangs now (until released), holding the connection's token lock. Another process
            # syncing another connection of the same store must not wait for it, let alone die of
            # "database is locked" (before, the refresh held SQLite's database-wide write lock).
            other = book.run("sync", "--connection", "good-xero", within=60)
            assert stuck.poll() is None, "the refresh ended before the other run: the test proves nothing"
        finally:
            release.set()  # the token endpoint now refuses the refresh: the stuck run ends, asking for a re-link
            _, err = stuck.communicate(timeout=120)
    assert other.code == 0, other.stderr[-2000:]
    assert "database is locked" not in other.stderr
    assert other.actions_of("good-xero") and other.actions_of("good-xero") <= other.applied()
    assert stuck.returncode == 1, err[-2000:]
    assert "OperationalError" not in err and "Traceback" not in err
    print(f"other process synced in {other.seconds:.1f} s while the refresh hung")


def test_a_write_done_but_answered_unreadably_is_reported_and_reconciled_next_run(book: Book) -> None:
    # The relay passes the first fee-line write (POST /Invoices, the fees of every invoice) to the sandbox, so
    # it is done, but answers it with 100,000 nested brackets. The run must not claim any of them failed for
    # sure (nor lose one): outcome unknown, left pending; the next run finds each fee line and records it applied.
    broken: list[str] = []

    def written_then_garbled(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
        relayed = _Capture()
        forward(book.sandbox.base_url)(relayed, hostile, hit)  # type: ignore[arg-type]
        assert relayed.status == 200, relayed.status
        send_bytes(NESTED)(handler, hostile, hit)

    def answer(hit: Hit) -> Reply:
        parts = hit.path.rstrip("/").split("/")
        if hit.method == "POST" and parts[-1] == "Invoices" and not broken:
            broken.append(parts[-1])
            return written_then_garbled
        return forward(book.sandbox.base_url)

    book.good("quickbooks", "good-quickbooks")
    with Hostile(answer) as relay:
        book.good("xero", "odd-xero", through=relay.base_url)
        first = book.run("sync")
        assert broken, "no fee line was written through the relay: the test proves nothing"
        assert first.code == 3, first.stderr[-2000:]
        unknown = [f for f in first.plan["failed"] if "outcome unknown, reconciled next run" in f["error"]]
        fees = {k for k in first.actions_of("odd-xero") if k.startswith("late_fee:")}
        # The fees written as lines (those going on invoices of their own are other calls).
        assert unknown and {f["key"] for f in unknown} <= fees
        assert all("RecursionError" in f["error"] for f in unknown)
        assert first.actions_of("good-quickbooks") <= first.applied()
        second = book.run("sync")
        ledger = book.run("ledger", "--connection", "odd-xero")
    assert second.code == 0, second.stderr[-2000:]
    states = {row["key"]: row["state"] for row in ledger.plan}  # type: ignore[attr-defined]
    assert all(states[f["key"]] == "applied" for f in unknown)  # reconciled from the fee lines found there
    assert all(states.get(key) == "applied" for key in first.actions_of("odd-xero")), states


class _Capture:
    """Stands in for a request handler: keeps what a Reply writes (status and body) instead of sending it."""

    def __init__(self) -> None:
        import io

        self.status = 0
        self.wfile = io.BytesIO()

    def send_response(self, status: int) -> None:
        self.status = status

    def send_header(self, name: str, value: str) -> None:
        pass

    def end_headers(self) -> None:
        pass


@pytest.mark.parametrize("value", ["0", '"soon"', "100000"])
def test_a_bad_sync_deadline_is_a_config_error_naming_the_key(book: Book, value: str) -> None:
    book.good("quickbooks", "good-quickbooks")
    book.blocks[-1] += f"sync_deadline_seconds = {value}\n"
    run = book.run("sync", "--dry-run")
    assert run.code == 2, run.stderr
    assert "sync_deadline_seconds" in run.stderr and "bridge.toml" in run.stderr, run.stderr


def test_applying_stops_at_the_connections_sync_deadline_and_the_rest_waits_for_the_next_run(book: Book) -> None:
    # A relay to the sandbox's Xero whose writes each take a second: the sync of that connection runs past
    # its 4 s deadline while applying; what is left is not attempted (planned again next run), the other
    # connection applies everything.
    def slow_write(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
        hostile.stop.wait(1.0)
        forward(book.sandbox.base_url)(handler, hostile, hit)

    def answer(hit: Hit) -> Reply:
        return slow_write if hit.method in ("POST", "PUT") else forward(book.sandbox.base_url)

    book.good("quickbooks", "good-quickbooks")
    with Hostile(answer) as relay:
        book.good("xero", "slow-xero", through=relay.base_url)
        book.blocks[-1] += "sync_deadline_seconds = 4\n"
        first = book.run("sync")
        second = book.run("sync")
    assert first.code == 3, first.stderr[-2000:]
    planned = first.actions_of("slow-xero")
    done = planned & first.applied()
    assert done and planned - done, (len(planned), len(done))  # some applied before the deadline, not all
    says = "ran past sync_deadline_seconds = 4"
    assert any(says in e for e in first.errors_of("slow-xero")), first.plan["errors"]
    assert first.actions_of("good-quickbooks") <= first.applied()
    assert (planned - done) & second.applied(), "the next run did not go on with what was left"
    print(f"slow writes: {len(done)} of {len(planned)} applied before the 4 s deadline; {first.seconds:.1f} s")


def test_a_locked_store_is_a_clear_error_naming_the_connection_never_a_raw_driver_error(
    book: Book, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3
    import sys

    from bridge import cli
    from bridge.store import engine

    book.good("quickbooks", "good-quickbooks")
    config = book.config
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 300)  # how long a writer waits for the lock (30 s in use)
    monkeypatch.setenv("BRIDGE_SECRET_KEY", book.key)
    holder = sqlite3.connect(book.folder / "bridge.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holding the database's write lock, and keeping it
        monkeypatch.setattr(sys, "argv", ["bridge", "--config", str(config), "--as-of", "2026-10-20", "sync"])
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:
        holder.rollback()
        holder.close()
    out, err = capsys.readouterr()
    said = " ".join((out + err).split())
    assert exited.value.code == 1, said[-2000:]
    assert "good-quickbooks" in said and "stayed locked by another process for more than 0.3 s" in said, said[-2000:]
    assert "OperationalError" not in said and "Traceback" not in said


def test_an_evaluation_that_blows_up_on_one_connections_invoices_fails_only_that_connection(
    book: Book, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import sys

    from bridge import cli
    from bridge.model import Invoice
    from bridge.policies import evaluate as engine  # bridge.evaluations imports it when it evaluates

    book.good("quickbooks", "good-quickbooks")
    book.good("xero", "odd-xero")
    config = book.config
    real = engine.evaluate_each

    def evaluate_each(entries, *args, **kwargs):  # type: ignore[no-untyped-def]
        entries = list(entries)
        if any(isinstance(i, Invoice) and i.connection == "odd-xero" for i in entries):
            raise RecursionError("maximum recursion depth exceeded")  # what a pathological record could do
        return real(entries, *args, **kwargs)

    monkeypatch.setattr(engine, "evaluate_each", evaluate_each)
    monkeypatch.setenv("BRIDGE_SECRET_KEY", book.key)
    monkeypatch.setattr(sys, "argv", ["bridge", "--config", str(config), "--as-of", "2026-10-20", "--json", "sync"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    plan = json.loads(capsys.readouterr().out)
    assert exited.value.code == 3
    errors = [e["error"] for e in plan["errors"] if e["connection"] == "odd-xero"]
    assert errors == ["evaluation failed: RecursionError: maximum recursion depth exceeded"], plan["errors"]
    planned = {a["key"] for a in plan["actions"] if a["connection"] == "good-quickbooks"}
    assert planned and planned <= {a["key"] for a in plan["applied"]}
    assert not [a for a in plan["actions"] if a["connection"] == "odd-xero"]
