"""Issue 20, "What a newcomer tripped over": each point as a newcomer meets it on the command line."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.books import ROOT, Book

LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \S+")


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("2026-13-45", "month 13 is not 1-12"),
        ("2026-02-30", "day 30 is not in month 02 (1-28)"),
        ("2026-04-31", "day 31 is not in month 04 (1-30)"),
        ("next tuesday", "not of the form YYYY-MM-DD"),
    ],
)
def test_a_bad_as_of_says_which_part_is_wrong(bridge, given: str, said: str) -> None:  # type: ignore[no-untyped-def]
    result = bridge("--as-of", given, "ledger")
    assert result.code == 2
    assert said in result.err, result.err


def test_read_only_commands_need_no_secret_key(bridge, book: Book, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert bridge(*book.args("sync")).code in (0, 3)
    monkeypatch.delenv("BRIDGE_SECRET_KEY")
    ledger = bridge("--config", str(book.config), "ledger")
    assert ledger.code == 0, ledger.err
    assert "acme-qbo" in ledger.out
    listed = bridge("--config", str(book.config), "connections", "list")
    assert listed.code == 0, listed.err
    assert "acme-qbo" in listed.out and "yes" in listed.out
    # ... but a command that decrypts tokens still says what is missing.
    check = bridge("--config", str(book.config), "connections", "check", "acme-qbo")
    assert check.code == 2 and "BRIDGE_SECRET_KEY is not set" in check.err


def test_timestamps_are_local_time_to_the_second_with_the_zone(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    assert bridge(*book.args("sync")).code in (0, 3)
    listed = bridge("--config", str(book.config), "connections", "list")
    assert LOCAL_TIME.search(listed.out), listed.out
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d+", listed.out)  # no microseconds, no raw ISO text
    as_json = json.loads(bridge("--config", str(book.config), "--json", "connections", "list").out)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T.*\+00:00", as_json[0]["last_sync_at"])  # JSON keeps ISO 8601
    ledger = bridge("--config", str(book.config), "ledger")
    assert LOCAL_TIME.search(ledger.out), ledger.out


def test_an_empty_config_says_how_to_start(bridge, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("BRIDGE_SECRET_KEY", raising=False)
    config = tmp_path / "bridge.toml"
    config.write_text('[store]\nurl = "sqlite:///bridge.db"\n')
    for command in (["connections", "list"], ["ledger"]):
        result = bridge("--config", str(config), *command)
        assert result.code == 0, result.err
        assert "No connections yet: run `bridge link quickbooks|xero|freshbooks`" in result.out


def test_the_summary_line_reads_naturally(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    result = bridge(*book.args("-q", "sync", "--dry-run"))
    line = result.out.strip().splitlines()[-1]
    assert "(s)" not in line and "totalling none" not in line, line
    assert re.fullmatch(r"(\d+ [a-z -]+( \([^)]*\))?, )*\d+ [a-z -]+( \([^)]*\))?; \d+ skipped(, .*)?\.", line), line


def test_an_empty_plan_says_nothing_to_do() -> None:
    from datetime import date

    from bridge.plan import Plan
    from bridge.render import summary_line

    assert summary_line(Plan.build(date(2026, 12, 7), [])) == "Nothing to do; 0 skipped."


def test_serve_on_a_busy_port_says_so_without_a_traceback() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "bridge", "sandbox", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert f"port {port} is in use: stop the other process or pass --port" in proc.stderr
    assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr


def test_serve_listens_on_8765_by_default() -> None:
    from bridge.cli import sandbox_serve

    port = next(p for p in sandbox_serve.params if p.name == "port")
    assert port.default == 8765


COMMENTED = """# top: what this file is
[store]
url = "sqlite:///bridge.db"

# before the first block
[[connections]]
# inside the first block
name = "first"
provider = "quickbooks"
tenant_id = "1"
# between the two blocks

[[connections]]
name = "second"  # on the second block's line
provider = "xero"
tenant_id = "2"

# after the blocks, above [secrets]
[secrets]
# inside [secrets]
key_env = "BRIDGE_SECRET_KEY"
"""


@pytest.mark.parametrize("removed", ["first", "second"])
def test_removing_a_connection_keeps_the_comments_around_it(bridge, tmp_path: Path, monkeypatch, removed: str) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    config = tmp_path / "bridge.toml"
    config.write_text(COMMENTED)
    result = bridge("--config", str(config), "connections", "remove", removed)
    assert result.code == 0, result.err
    text = config.read_text()
    kept = "second" if removed == "first" else "first"
    assert f'name = "{kept}"' in text and f'name = "{removed}"' not in text
    for comment in (
        "# top: what this file is",
        "# before the first block",
        "# between the two blocks",
        "# after the blocks, above [secrets]",
        "# inside [secrets]",
    ):
        assert comment in text, (comment, text)
    survivor = "# on the second block's line" if kept == "second" else "# inside the first block"
    assert survivor in text
    assert text.index("# after the blocks, above [secrets]") < text.index("[secrets]")
    assert text.index("# between the two blocks") < text.index("[secrets]")


def test_a_failed_link_leaves_no_file_it_created(bridge, tmp_path: Path, module_sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    folder = tmp_path / "config"
    config = folder / "bridge.toml"
    result = bridge(
        "--config", str(config), "link", "xero", "--tenant", "no-such-tenant", "--base-url", module_sandbox.base_url
    )
    assert result.code != 0
    assert not folder.exists(), list(folder.iterdir())
    # A config and store that were there before stay.
    folder.mkdir()
    config.write_text('[store]\nurl = "sqlite:///bridge.db"\n')
    before = config.read_text()
    result = bridge(
        "--config", str(config), "link", "xero", "--tenant", "no-such-tenant", "--base-url", module_sandbox.base_url
    )
    assert result.code != 0
    assert config.read_text() == before
    assert sorted(p.name for p in folder.iterdir()) == ["bridge.toml"]  # the store it made is gone


STAMPED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \S+ ", re.M)


def test_waits_and_each_connections_pull_and_apply_log_timestamped_lines_off_a_terminal(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    book.sandbox.set_faults({"quickbooks": {"429": 0.1, "seed": 5, "retry_after": 1}})
    try:
        result = bridge(*book.args("sync"))
    finally:
        book.sandbox.set_faults({})
    assert result.code in (0, 3), result.err
    lines = [line for line in result.err.splitlines() if STAMPED.match(line)]
    said = "\n".join(lines)
    assert re.search(r"acme-qbo: pulling from http://127\.0\.0\.1:\d+", said), result.err
    assert re.search(r"acme-qbo: pulled \d+ invoice\(s\), \d+ payment\(s\) in [\d.]+ s", said), result.err
    assert re.search(r"acme-qbo: applying \d+ action\(s\)", said), result.err
    assert re.search(r"acme-qbo: applying done in [\d.]+ s: \d+ applied", said), result.err
    assert re.search(r"acme-qbo: waiting 1\.0 s for the rate limit \(429; attempt \d of 8\)", said), result.err
    assert "│" not in said  # plain lines, no live display off a terminal


def test_quiet_silences_the_progress_lines(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    result = bridge(*book.args("-q", "sync", "--dry-run"))
    assert not STAMPED.search(result.err), result.err


def test_an_unreachable_provider_is_one_clear_line_within_seconds(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    book.config.write_text(book.config.read_text().replace(book.sandbox.base_url, url))
    began = time.monotonic()
    result = bridge(*book.args("sync", "--dry-run"))
    took = time.monotonic() - began
    assert took < 8, took
    assert result.code == 1
    said = f"acme-qbo: pull failed: cannot reach {url} (connection refused); is the provider or emulator running?"
    assert said in result.err, result.err
    assert "Max retries exceeded" not in result.err + result.out and "HTTPConnectionPool" not in result.err + result.out


def on_terminal(args: list[str], answer: str | None, timeout: float = 120) -> tuple[int, str, bool]:
    """Run `bridge ARGS` with stdin, stdout and stderr on a pseudo-terminal; answer its [y/N] question."""
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT
    )
    os.close(slave)
    out, asked, end = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if not asked and b"[y/N]" in out:
                    asked = True
                    if answer is not None:
                        os.write(master, answer.encode() + b"\n")
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)
    return proc.returncode, out.decode(errors="replace"), asked


def test_sync_on_a_terminal_shows_the_plan_and_applies_nothing_when_told_no(book: Book) -> None:
    code, out, asked = on_terminal(book.args("sync"), "n")
    assert asked, out
    question = re.search(r"Apply these (\d+) actions\? \[y/N\]", out)
    assert question, out
    assert out.index("Plan as of") < question.start() and "late_fee" in out[: question.start()]
    assert "Nothing was applied." in out and code == 1, (code, out)
    assert book.outbox() == []
    from bridge.store import Store

    with Store.open(f"sqlite:///{book.config.parent / 'bridge.db'}") as store:
        assert store.ledger() == []


def test_sync_on_a_terminal_applies_the_plan_it_showed_when_told_yes(book: Book) -> None:
    code, out, asked = on_terminal(book.args("sync"), "y")
    assert asked and code in (0, 3), (code, out)
    n = int(re.search(r"Apply these (\d+) actions\?", out).group(1))  # type: ignore[union-attr]
    assert re.search(rf"{n} applied", out), out
    assert out.count("Plan as of") == 1  # shown once, before the question


def test_yes_and_json_do_not_ask(book: Book) -> None:
    code, out, asked = on_terminal(book.args("sync", "--yes"), None)
    assert not asked and code in (0, 3), out
    code, out, asked = on_terminal(["--yes", *book.args("sync", "--dry-run")], None)
    assert not asked and code in (0, 3), out
    code, out, asked = on_terminal(["--json", *book.args("sync")], None)
    assert not asked and code in (0, 3), out


def test_off_a_terminal_it_applies_without_asking_and_says_so(bridge, book: Book) -> None:  # type: ignore[no-untyped-def]
    said = "not a terminal: applying without asking (use --yes to silence this)"
    result = bridge(*book.args("sync"))
    assert result.code in (0, 3) and said in result.err, result.err
    assert "[y/N]" not in result.err + result.out
    book.sandbox.reset()
    result = bridge("--yes", *book.args("sync"))
    assert said not in result.err


def test_connections_remove_on_a_terminal_asks_first(book: Book) -> None:
    before = book.config.read_text()
    code, out, asked = on_terminal(["--config", str(book.config), "connections", "remove", "acme-qbo"], "n")
    assert asked and code == 1 and "Nothing was removed." in out, out
    assert book.config.read_text() == before
    code, out, asked = on_terminal(["--config", str(book.config), "connections", "remove", "acme-qbo"], "y")
    assert asked and code == 0, out
    assert 'name = "acme-qbo"' not in book.config.read_text()


def test_the_plan_names_the_time_zones_where_today_is_another_day(bridge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # UTC+14 and UTC-11: never the same day.
    text = (ROOT / "config" / "examples" / "bridge.toml").read_text()
    text = text.replace('timezone = "America/New_York"', 'timezone = "Pacific/Kiritimati"', 1)
    text = text.replace('timezone = "America/New_York"', 'timezone = "Pacific/Pago_Pago"', 1)
    config = tmp_path / "bridge.toml"
    config.write_text(text)
    invoices = ROOT / "config" / "examples" / "invoices.json"
    result = bridge("--config", str(config), "evaluate", "--invoices", str(invoices))
    heading = re.search(r"Plan as of (\S+) \((.*)\)", result.out)
    assert heading, result.out
    assert re.fullmatch(r"Pacific/(Kiritimati|Pago_Pago): \d{4}-\d{2}-\d{2}", heading.group(2)), heading.group(0)
    assert heading.group(1) not in heading.group(2)
    same = bridge("--as-of", "2026-10-20", "--config", str(config), "evaluate", "--invoices", str(invoices))
    assert "Plan as of 2026-10-20\n" in same.out  # one date given: one date said


def test_plan_heading() -> None:
    from datetime import date

    from bridge.plan import Plan
    from bridge.render import plan_heading

    plan = Plan.build(date(2026, 12, 7), [])
    days = {"America/New_York": date(2026, 12, 6), "Europe/Paris": date(2026, 12, 7)}
    assert plan_heading(plan, days) == "Plan as of 2026-12-07 (America/New_York: 2026-12-06)"
    assert plan_heading(plan, {"Europe/Paris": date(2026, 12, 7)}) == "Plan as of 2026-12-07"


def test_renegotiate_on_a_terminal_shows_the_decision_before_writing_it_back(book: Book) -> None:
    due = book.invoice("1032")["DueDate"]
    args = book.args("renegotiate", "--connection", "acme-qbo", "--invoice", "1032", "--new-due-date", "2026-11-30")
    code, out, asked = on_terminal(args, "n")
    assert asked and code == 1, (code, out)
    question = out.index("[y/N]")
    assert "Request to move invoice 1032 to 2026-11-30" in out[:question] and "Nothing was applied." in out
    assert book.invoice("1032")["DueDate"] == due


def test_a_client_hanging_up_leaves_no_traceback_in_the_sandbox_console() -> None:
    import signal
    import struct
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "sandbox", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert match
        for _ in range(5):  # half a request, then a reset (SO_LINGER 0)
            with socket.create_connection(("127.0.0.1", int(match.group(1)))) as conn:
                conn.sendall(b"GET /_sandbox/state HTTP/1.1\r\nHost: x\r\n")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with socket.create_connection(("127.0.0.1", int(match.group(1)))) as conn:
                conn.sendall(b"GET /_sandbox/state HTTP/1.1\r\nHost: x\r\n\r\n")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err and "ConnectionResetError" not in err and "BrokenPipeError" not in err, err
