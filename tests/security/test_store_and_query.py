"""Findings 7 and 8 of issue 15.

7. A store this bridge cannot migrate (written by a newer bridge, or tables without `alembic_version`)
   is refused with exit 2 naming what was found and what to do, never an Alembic or SQL traceback;
   and an existing store file open to others is tightened to 0600.
8. QuickBooks query values are escaped as Intuit documents (`\\'`); a value holding a backslash or a
   control character (which the query language has no documented escape for) is refused with a
   DataError, never sent where it could end the string early. The sandbox's query parser reads
   escapes in one pass, as the tokenizer does.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bridge.auth.vault import TokenVault
from bridge.config import load_settings
from bridge.connectors.quickbooks import factory
from bridge.errors import ConfigError, DataError
from bridge.mapping.quickbooks import query_string
from bridge.plan import Plan
from bridge.store import Store
from bridge.store.migrate import head_revision
from bridge_sandbox import Sandbox, default_seed
from bridge_sandbox.quickbooks_query import QueryError, parse_query
from tests.security._text_fixtures import (
    Book,
    linked_book,
    module_sandbox,  # noqa: F401 (the fixture)
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    (tmp_path / "bridge.toml").write_text('[store]\nurl = "sqlite:///bridge.db"\n')
    return tmp_path


# -- finding 7: the store ------------------------------------------------------------------------------


def test_a_store_written_by_a_newer_bridge_exits_2_saying_upgrade(bridge, folder: Path) -> None:  # type: ignore[no-untyped-def]
    Store.open(f"sqlite:///{folder / 'bridge.db'}").close()
    with sqlite3.connect(folder / "bridge.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed9999'")
    before = (folder / "bridge.db").read_bytes()
    for command in (["ledger"], ["sync", "--dry-run"], ["connections", "list"]):
        result = bridge("--config", str(folder / "bridge.toml"), *command)
        assert result.code == 2, result.err
        assert "written by a newer bridge (revision f00dfeed9999" in result.err and "upgrade bridge" in result.err
        assert head_revision() in result.err and "Traceback" not in result.err
    assert (folder / "bridge.db").read_bytes() == before


@pytest.mark.parametrize("tables", [["notes"], "bridge-without-version"])
def test_tables_without_alembic_version_exit_2_saying_it_is_not_a_bridge_store(  # type: ignore[no-untyped-def]
    bridge, folder: Path, tables: object
) -> None:
    path = folder / "bridge.db"
    if tables == "bridge-without-version":  # a store from before migrations: bridge's tables, no revision
        Store.open(f"sqlite:///{path}").close()
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE alembic_version")
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE notes (body TEXT)")
    result = bridge("--config", str(folder / "bridge.toml"), "ledger")
    assert result.code == 2, result.err
    assert "no alembic_version: it is not a bridge store, or was made by a bridge from before migrations" in result.err
    assert "Point [store] url at a new file" in result.err and "Traceback" not in result.err
    with sqlite3.connect(path) as db:
        assert "alembic_version" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    with pytest.raises(ConfigError, match="not a bridge store"):
        Store.open(f"sqlite:///{path}")


def test_an_existing_store_open_to_others_is_tightened_to_0600(bridge, folder: Path) -> None:  # type: ignore[no-untyped-def]
    path = folder / "bridge.db"
    Store.open(f"sqlite:///{path}").close()
    os.chmod(path, 0o644)
    result = bridge("--config", str(folder / "bridge.toml"), "ledger")
    assert result.code == 0, result.err
    for name in ("bridge.db", "bridge.db-wal", "bridge.db-shm"):
        if (folder / name).exists():
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


# -- finding 8: QuickBooks query values ---------------------------------------------------------------

HOSTILE_VALUES = [
    "O'Brien",
    "1001' AND Id = '5",
    "x' ORDERBY Id --",
    "''",
    "'",
    '%_[]*"',
    "Zoë 北京 ✓",
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_an_escaped_value_stays_one_literal_in_the_sandboxs_query_parser(value: str) -> None:
    query = parse_query(f"SELECT * FROM Invoice WHERE DocNumber = {query_string(value, 'number')} MAXRESULTS 5")
    assert [(c.op, c.values) for c in query.where] == [("=", (value,))]
    assert query.max_results == 5


@pytest.mark.parametrize(
    "value", ["1001\\", "a\\'b", "\\", "x\x00y", "tab\there", "line\nbreak", "esc\x1b[2J", "c1\x9b"]
)
def test_a_value_the_query_language_cannot_carry_is_refused(value: str) -> None:
    with pytest.raises(DataError, match="backslash or a control character"):
        query_string(value, "the fee invoice number")


def test_the_sandbox_parser_reads_escapes_in_one_pass() -> None:
    def literal(text: str) -> object:
        return parse_query(f"SELECT * FROM Item WHERE Name = {text}").where[0].values[0]

    assert literal("'a\\'b'") == "a'b"
    assert literal("'a\\\\'") == "a\\"  # an escaped backslash ends the value: the quote after it closes it
    assert literal("'x\\\\\\'y'") == "x\\'y"
    assert literal("'it''s'") == "it's"
    with pytest.raises(QueryError):  # the old f-string: `'1001\'` never closes
        parse_query("SELECT * FROM Invoice WHERE DocNumber = '1001\\'")


def _numbers_seed() -> dict[str, object]:
    seed = copy.deepcopy(default_seed())
    for i, invoice in enumerate(seed["quickbooks"]["Invoice"]):
        invoice["DocNumber"] = f"{invoice['DocNumber']}\\" if i % 2 else f"{invoice['DocNumber']}'"
    return seed


def test_invoice_numbers_with_a_quote_or_a_final_backslash_through_sync_and_reconciliation(  # type: ignore[no-untyped-def]
    bridge,
    module_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book: Book = linked_book(module_sandbox, tmp_path, monkeypatch, _numbers_seed(), extra='fee_mode = "invoice"\n')
    real = bridge(*book.args("--json", "sync"))
    assert real.code == 0, real.err
    plan = Plan.from_dict(json.loads(real.out))
    fees = [a for a in plan.actions if a.kind.value == "late_fee"]
    assert {a.invoice.number[-1] for a in fees} == {"'", "\\"}  # both kinds were charged
    created = [i["DocNumber"] for i in module_sandbox.state()["quickbooks"]["Invoice"] if "-LF" in i["DocNumber"]]
    assert len(created) == len(fees)
    # Reconciliation looks the fee invoices up by number: found for a quote, in doubt (never re-sent) for a
    # backslash, and no query ever carries the unescaped value.
    sent: list[str] = []
    settings = load_settings(book.config)
    with Store.open(f"sqlite:///{tmp_path / 'bridge.db'}") as store:
        connector = factory(settings.connections[0], TokenVault(store, Fernet(book.key.encode())), {})
        original = connector._query
        monkeypatch.setattr(connector, "_query", lambda statement: sent.append(statement) or original(statement))
        for action in fees:
            evidence = connector.evidence(action, "2026-10-20T00:00:00+00:00")
            if action.invoice.number.endswith("'"):
                assert evidence.found == "applied", evidence
            else:
                assert evidence.found == "unknown" and "backslash" in evidence.detail
    assert sent and all("\\'" in s and "\\\\" not in s for s in sent)


def test_a_fee_item_name_with_a_quote_is_found_again_and_one_with_a_backslash_fails_clearly(  # type: ignore[no-untyped-def]
    bridge,
    module_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book: Book = linked_book(module_sandbox, tmp_path, monkeypatch)
    text = book.config.read_text()
    book.config.write_text(text.replace('item = "Late Fee"', "item = \"O'Brien's Fee\""))
    first = bridge(*book.args("--json", "sync"))
    assert first.code == 0, first.err
    items = [i for i in module_sandbox.state()["quickbooks"]["Item"] if i["Name"] == "O'Brien's Fee"]
    assert len(items) == 1  # created once, then found by the escaped query (no duplicate-name error)
    module_sandbox.reset()
    linked = linked_book(module_sandbox, tmp_path / "b", monkeypatch)
    linked.config.write_text(linked.config.read_text().replace('item = "Late Fee"', "item = 'Fee \\ Item'"))
    refused = bridge(*linked.args("--json", "sync"))
    failed = json.loads(refused.out)["failed"]
    assert refused.code != 0 and failed
    fees = [f for f in failed if f["key"].startswith("late_fee:")]
    assert fees and all("backslash or a control character" in f["error"] for f in fees)
    # A reminder that counted on one of those fees in the balance it states is dropped, not sent wrong.
    others = [f for f in failed if not f["key"].startswith("late_fee:")]
    assert all(f["key"].startswith("reminder:") and "plan_mismatch" in f["error"] for f in others), others


def test_a_last_updated_time_from_the_provider_enters_a_query_only_as_a_timestamp() -> None:
    from bridge.errors import ProviderError
    from bridge.mapping.quickbooks import stamp_literal

    assert stamp_literal("2026-10-20T10:00:00-07:00") == "'2026-10-20T10:00:00-07:00'"
    for hostile in ("2026-10-20' OR Id > '0", "2026-10-20T10:00:00\\", "now"):
        with pytest.raises(ProviderError, match="not a timestamp"):
            stamp_literal(hostile)
