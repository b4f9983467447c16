"""Finding 2 of issue 15: provider and user text is printed as text.

Markup, emoji codes and terminal escapes in a customer name, an invoice number or a line description
come back from the QuickBooks sandbox through the real CLI: `sync --dry-run`, `sync`, `evaluate`,
`ledger`, `connections list` and the errors print them literally, with control characters escaped,
and never crash (a rich MarkupError used to lose a real sync's summary after it had applied actions).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.text import Text

from bridge import render
from bridge.render import console, printable, safe
from bridge_sandbox import Sandbox
from tests.security._text_fixtures import (
    HOSTILE_NAME,
    ROOT,
    Book,
    assert_shown_as_text,
    hostile_seed,
    linked_book,
    module_sandbox,  # noqa: F401 (the fixture)
)


@pytest.fixture
def book(module_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Book:  # noqa: F811
    return linked_book(module_sandbox, tmp_path, monkeypatch, hostile_seed())


def test_printable_escapes_control_and_invisible_characters_and_keeps_the_rest() -> None:
    assert printable("a\x1b[2Jb\x07\x9b\u202e\x00") == "a\\x1b[2Jb\\x07\\x9b\\u202e\\x00"
    assert printable("line\nnext\ttab") == "line\\x0anext\\x09tab"
    assert printable("line\nnext\ttab\r", multiline=True) == "line\nnext\ttab\\x0d"
    assert printable("[/bold] :x: Zoë 北京") == "[/bold] :x: Zoë 北京"
    assert printable(None) == ""
    shown = safe(HOSTILE_NAME)
    assert isinstance(shown, Text) and not shown.spans and "[/bold]" in shown.plain


def test_the_console_prints_markup_and_emoji_codes_literally() -> None:
    import io

    buffer = io.StringIO()
    out = console(file=buffer, width=300)
    out.print("[/bold] [link=https://evil.example]x[/link] :x:")
    assert buffer.getvalue() == "[/bold] [link=https://evil.example]x[/link] :x:\n"


def test_a_dry_run_prints_hostile_names_numbers_and_descriptions_as_text(bridge, book: Book, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    wide = render.console
    monkeypatch.setattr("bridge.cli.console", lambda **kw: wide(**{**kw, "width": 1000}))  # no cell wraps the text
    for flags in ([], ["-v"]):
        dry = bridge(*book.args(*flags, "sync", "--dry-run"))
        assert dry.code in (0, 3), dry.err
        assert " skipped" in dry.out and "Dry run: nothing was written" in dry.out
        assert "[/bold]" in dry.out and "[link=https://evil.example/pay" in dry.out and ":x:" in dry.out
        assert "\\x1b[2J" in dry.out and "\\x1b]0;pwned\\x07" in dry.out
        assert_shown_as_text(dry.both)
    as_json = bridge(*book.args("--json", "sync", "--dry-run"))
    plan = json.loads(as_json.out)
    assert any(a["invoice"]["customer"] == HOSTILE_NAME for a in plan["actions"])  # the data itself is intact


def test_a_real_sync_applies_reports_its_summary_and_the_ledger_shows_the_numbers_as_text(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    real = bridge(*book.args("sync"))
    assert real.code == 0, real.err
    assert " applied, " in real.out and "already done." in real.out  # the summary that a MarkupError used to lose
    assert "[/]:x:\\x1b[2J" in real.out
    assert_shown_as_text(real.both)
    assert book.sandbox.outbox()  # reminders were sent: the crash came after this, now there is none
    for flags in ([], ["-v"]):
        ledger = bridge(*book.args(*flags, "ledger"))
        assert ledger.code == 0, ledger.err
        assert "[/]:x:\\x1b[2J" in ledger.out
        assert_shown_as_text(ledger.both)
    listed = bridge(*book.args("connections", "list"))
    assert listed.code == 0 and "acme-qbo" in listed.out
    assert_shown_as_text(listed.both)
    checked = bridge(*book.args("connections", "check", "acme-qbo"))
    assert checked.code == 0 and "(Evil [/bold]" in checked.out
    assert_shown_as_text(checked.both)


def test_evaluate_prints_hostile_input_as_text(bridge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    invoices = json.loads((ROOT / "config" / "examples" / "invoices.json").read_text())
    for invoice in invoices:
        invoice["customer"]["name"] = HOSTILE_NAME
        invoice["connection"] = ":x:[/bold]"  # a connection name that is an emoji code and a closing tag
        invoice["number"] = invoice["number"] + "[/]:x:\x1b[2J"
        for line in invoice.get("lines", []):
            line["description"] = "[/bold]\x1b]0;t\x07"
    path = tmp_path / "invoices.json"
    path.write_text(json.dumps(invoices))
    config = ROOT / "config" / "examples" / "bridge.toml"
    for flags in ([], ["-v"], ["-q"]):
        result = bridge("--as-of", "2026-10-20", "--config", str(config), *flags, "evaluate", "--invoices", str(path))
        assert result.code in (0, 3), result.err
        assert " skipped" in result.out
        if not flags:
            assert "[/bold]" in result.out and "\\x1b[2J" in result.out and ":x:[/bold]" in result.out
        assert_shown_as_text(result.both)


def test_errors_and_the_link_wizard_show_data_as_text(  # type: ignore[no-untyped-def]
    bridge, book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = bridge("--config", str(book.config), "link", "xero", "--name", ":x:[/bold]\x1b[2J", "--base-url", "http://x")
    assert bad.code == 2 and ":x:[/bold]" in bad.err
    assert_shown_as_text(bad.both)
    unknown = bridge(*book.args("sync", "--connection", "nope[/bold]\x1b]0;t\x07"))
    assert unknown.code == 2 and "nope[/bold]" in unknown.err
    assert_shown_as_text(unknown.both)
    # Linking says which company it linked, by the name the provider gives.
    qbo = bridge(
        "--config", str(book.config), "link", "quickbooks", "--name", "qbo-2", "--base-url", book.sandbox.base_url
    )
    assert qbo.code == 0 and "Linked qbo-2: QuickBooks company" in qbo.err and "Evil [/bold]" in qbo.err
    assert_shown_as_text(qbo.both)
    # The wizard lists the organisations it may link by name: a hostile tenant name is printed as text.
    from bridge.auth import link as linking

    tenants = [linking.Tenant("t1", HOSTILE_NAME), linking.Tenant("t2", "Second")]
    monkeypatch.setattr(linking.XeroFlow, "tenants", lambda self, tokens, params: tenants)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("click.prompt", lambda *a, **k: 2)
    wizard = bridge("--config", str(book.config), "link", "xero", "--base-url", book.sandbox.base_url)
    assert "1. Evil [/bold]" in wizard.err
    assert_shown_as_text(wizard.both)


def test_renegotiate_prints_the_decision_and_the_message_as_text(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    from datetime import date, timedelta
    from decimal import Decimal

    open_invoices = [
        i for i in book.sandbox.state()["quickbooks"]["Invoice"] if Decimal(str(i["Balance"])) > 0 and i.get("DueDate")
    ]
    by_customer: dict[str, list[dict[str, object]]] = {}
    for inv in open_invoices:
        by_customer.setdefault(inv["CustomerRef"]["value"], []).append(inv)
    first, second = next(v for v in by_customer.values() if len(v) >= 2)[:2]
    for inv, note in ((first, "[/bold] :x: \x1b]0;t\x07"), (second, "again")):
        later = (date.fromisoformat(str(inv["DueDate"])) + timedelta(days=5)).isoformat()
        number = str(inv["DocNumber"])
        args = ["renegotiate", "--connection", "acme-qbo", "--invoice", number, "--new-due-date", later]
        result = bridge(*book.args(*args, "--note", note, "--by", "[link=https://evil.example]me[/link]"))
        assert result.code == 0, result.err
        assert "Subject:" in result.out and "\\x1b[2J" in result.out
        assert_shown_as_text(result.both)


def test_a_verbose_dry_run_shows_the_messages_in_the_contracts_words_as_text(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    # By SMTP the contract's own words go out, so the plan carries them and -v shows each one's first lines.
    text = book.config.read_text().replace('channel = "provider"', 'channel = "smtp"')
    smtp = '[smtp]\nhost = "127.0.0.1"\nport = 2525\nsecurity = "none"\nfrom = "Accounts <a@firm.example>"\n\n'
    book.config.write_text('[firm]\nname = "Firm [bold]\\u001b[31m"\n\n' + smtp + text)  # TOML escape: ESC
    dry = bridge(*book.args("-v", "sync", "--dry-run"))
    assert dry.code in (0, 3), dry.err
    assert "Messages" in dry.out and "Subject: " in dry.out
    assert "Dear Evil [/bold] [link=https://evil.example/pay]pay here[/link]" in dry.out  # the name, as text
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in dry.out
    assert_shown_as_text(dry.both)
