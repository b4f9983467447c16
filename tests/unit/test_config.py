"""The config file: what loads, and how every mistake is reported (docs/interfaces.md)."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.config import (
    ConnectionSettings,
    Settings,
    load_settings,
    load_terms,
    resolve_config_path,
)
from bridge.errors import ConfigError
from bridge.policies.terms import ProjectKey

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "bridge.example.toml"

# A contract that is valid on its own, for cases that break something else.
CONTRACT = """
[contracts.standard]
applies_to = ["*"]
"""


def write(folder: Path, text: str, name: str = "bridge.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, *, terms_only: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        (load_terms if terms_only else load_settings)(path)
    assert caught.value.exit_code == 2
    return str(caught.value).splitlines()


# --- what loads --------------------------------------------------------------------------------


def test_the_example_loads_with_every_section() -> None:
    settings = load_settings(EXAMPLE)

    assert settings.source == EXAMPLE
    assert [c.provider for c in settings.connections] == ["quickbooks", "xero", "freshbooks"]
    assert [c.name for c in settings.terms.contracts] == ["retainer", "standard", "other_currencies"]
    retainer, standard, other = settings.terms.contracts
    assert (retainer.currency, standard.currency, other.currency) == ("GBP", "USD", None)
    assert retainer.applies_to != ("*",)
    assert standard.applies_to == ("*",)
    assert standard.locale == "en_US"
    assert standard.project_key is ProjectKey.CUSTOMER
    assert standard.late_fee is not None
    assert standard.late_fee.max_total == Decimal("500.00")
    assert settings.terms.fee_modes == {"acme-qbo": "line", "acme-xero": "invoice"}
    assert settings.store.url == f"sqlite:///{EXAMPLE.parent / 'bridge.db'}"
    assert settings.firm is not None and settings.terms.firm_name == settings.firm.name  # it signs every message


def test_the_example_also_loads_as_terms_only() -> None:
    terms = load_terms(EXAMPLE)

    assert [c.name for c in terms.contracts] == ["retainer", "standard", "other_currencies"]
    assert terms.fee_modes == {}


def test_contracts_keep_file_order_because_the_first_match_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [contracts.zeta]
        applies_to = ["C-9"]
        [contracts.alpha]
        applies_to = ["C-1"]
        [contracts.middle.reminders]
        schedule = [1]
        [contracts.middle]
        applies_to = ["*"]
        """,
    )

    assert [c.name for c in load_settings(path).terms.contracts] == ["zeta", "alpha", "middle"]
    assert [c.name for c in load_terms(path).contracts] == ["zeta", "alpha", "middle"]


def test_a_contract_cites_its_clauses_by_table_name(tmp_path: Path) -> None:
    path = write(tmp_path, CONTRACT)

    (contract,) = load_settings(path).terms.contracts
    assert contract.clause("late_fee") == "contracts.standard.late_fee"


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.terms.firm_name == ""  # no [firm]: messages end with the closing alone

    assert settings.connections == ()
    assert settings.terms.contracts == ()
    assert settings.secrets.key_env == "BRIDGE_SECRET_KEY"


def test_a_relative_sqlite_path_is_relative_to_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, '[store]\nurl = "sqlite:///data/bridge.db"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    settings = load_settings(Path("..") / "etc" / "bridge.toml")

    assert settings.store.url == f"sqlite:///{folder / 'data' / 'bridge.db'}"
    assert settings.source == path


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/bridge/bridge.db",
        "sqlite:///:memory:",
        "sqlite://",
        "postgresql://bridge@db.internal/bridge",
        "postgresql+psycopg://db.internal:5432/bridge?sslmode=require",
    ],
)
def test_other_store_urls_are_kept_as_written(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f'[store]\nurl = "{url}"\n')

    assert load_settings(path).store.url == url


def test_the_sqlite_query_string_survives_resolution(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\nurl = "sqlite:///b.db?timeout=5"\n')

    assert load_settings(path).store.url == f"sqlite:///{tmp_path / 'b.db'}?timeout=5"


def test_connections_are_looked_up_by_name(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[[connections]]\nname = "acme-xero"\nprovider = "xero"\n'))

    assert settings.connection("acme-xero") == ConnectionSettings(name="acme-xero", provider="xero")
    with pytest.raises(ConfigError, match=r"no connection named 'acme-xro'; did you mean 'acme-xero'"):
        settings.connection("acme-xro")


def test_settings_refuse_duplicate_connection_names_when_built_directly() -> None:
    conn = ConnectionSettings(name="a", provider="xero")

    with pytest.raises(ValueError, match="duplicate connection names"):
        Settings(source=Path("x.toml"), connections=(conn, conn))


# --- how mistakes are reported -----------------------------------------------------------------

BROKEN: list[tuple[str, str, str, str]] = [
    # (id, file text, dotted key path, a word of the problem)
    ("toml-syntax", 'a = 1\n[store\nurl = "x"\n', "line 2, column 7", "invalid TOML"),
    ("toml-duplicate-table", CONTRACT + CONTRACT, "line 5", "invalid TOML"),
    ("unknown-top-level", "contract = 1\n", "contract", "did you mean 'contracts'"),
    (
        "amount-without-currency",
        CONTRACT + '[contracts.standard.late_fee]\nflat = "40.00"\n',
        "contracts.standard",
        "late_fee.flat = 40.00: a contract with money amounts must state its currency",
    ),
    ("unknown-currency", CONTRACT + 'currency = "USX"\n', "contracts.standard.currency", "not an ISO 4217"),
    (
        "unknown-key-in-late-fee",
        CONTRACT + '[contracts.standard.late_fee]\npercnt = "1.5"\n',
        "contracts.standard.late_fee.percnt",
        "did you mean 'percent'",
    ),
    (
        "unknown-key-no-close-match",
        '[store]\nflavour = "x"\n',
        "store.flavour",
        "unknown key (allowed here: url)",
    ),
    (
        "money-as-float",
        CONTRACT + "[contracts.standard.late_fee]\nmax_total = 500.5\n",
        "contracts.standard.late_fee.max_total",
        'quoted string like "500.50"',
    ),
    (
        "percent-as-float",
        CONTRACT + "[contracts.standard.late_fee]\npercent = 1.5\n",
        "contracts.standard.late_fee.percent",
        'quoted string like "1.5"',
    ),
    (
        "negative-cap",
        CONTRACT + '[contracts.standard.late_fee]\nmax_total = "-10.00"\n',
        "contracts.standard.late_fee.max_total",
        "must not be negative",
    ),
    (
        "negative-days",
        CONTRACT + "[contracts.standard.late_fee]\ngrace_days = -1\n",
        "contracts.standard.late_fee.grace_days",
        "must not be negative",
    ),
    (
        "percent-over-100",
        CONTRACT + '[contracts.standard.late_fee]\npercent = "150"\n',
        "contracts.standard.late_fee.percent",
        "must be at most 100 (got 150)",
    ),
    (
        "cap-percent-over-100",
        CONTRACT + '[contracts.standard.late_fee]\nmax_percent_of_total = "101"\n',
        "contracts.standard.late_fee.max_percent_of_total",
        "at most 100",
    ),
    (
        "money-not-a-number",
        CONTRACT + '[contracts.standard.late_fee]\nflat = "abc"\n',
        "contracts.standard.late_fee.flat",
        'must be a number in a quoted string, like "25.00"',
    ),
    (
        "money-nan",
        CONTRACT + '[contracts.standard.reminders]\nmin_balance = "NaN"\n',
        "contracts.standard.reminders.min_balance",
        "finite",
    ),
    (
        "schedule-not-increasing",
        CONTRACT + "[contracts.standard.reminders]\nschedule = [1, 7, 7]\n",
        "contracts.standard.reminders.schedule",
        "strictly increasing",
    ),
    (
        "unknown-time-zone",
        '[contracts.standard]\napplies_to = ["*"]\ntimezone = "America/Gotham"\n',
        "contracts.standard.timezone",
        "not an IANA time zone",
    ),
    (
        "unknown-holiday-country",
        CONTRACT + '[contracts.standard.reminders]\nholidays = "XX"\n',
        "contracts.standard.reminders.holidays",
        "country code",
    ),
    (
        "unknown-locale",
        '[contracts.standard]\napplies_to = ["*"]\nlocale = "xx_YY"\n',
        "contracts.standard.locale",
        "locale",
    ),
    (
        "bool-as-string",
        CONTRACT + '[contracts.standard.reminders]\nbusiness_days = "no"\n',
        "contracts.standard.reminders.business_days",
        "must be true or false",
    ),
    (
        "int-as-string",
        CONTRACT + '[contracts.standard.reminders]\nmin_gap_days = "3"\n',
        "contracts.standard.reminders.min_gap_days",
        "write 3 without quotes",
    ),
    (
        "string-as-int",
        '[[connections]]\nname = "acme"\nprovider = "quickbooks"\ntenant_id = 9341453215647712\n',
        "connections[0].tenant_id",
        'write "9341453215647712"',
    ),
    (
        "applies-to-not-an-array",
        '[contracts.standard]\napplies_to = "*"\n',
        "contracts.standard.applies_to",
        'must be an array (got the string "*"; write ["*"])',
    ),
    (
        "bad-choice",
        CONTRACT + '[contracts.standard.late_fee]\nmode = "email"\n',
        "contracts.standard.late_fee.mode",
        "must be 'line' or 'invoice'",
    ),
    (
        "contract-without-applies-to",
        '[contracts.standard]\ntimezone = "UTC"\n',
        "contracts.standard.applies_to",
        "required key is missing",
    ),
    (
        "contract-with-empty-applies-to",
        "[contracts.standard]\napplies_to = []\n",
        "contracts.standard.applies_to",
        "must not be empty",
    ),
    (
        "contract-settings-without-a-contract-name",
        '[contracts]\napplies_to = ["*"]\n',
        "contracts.applies_to",
        "[contracts.standard]",
    ),
    (
        "contract-name-key",
        CONTRACT + 'name = "other"\n',
        "contracts.standard.name",
        "table name",
    ),
    (
        "contract-name-with-a-dot",
        '[contracts."a.b"]\napplies_to = ["*"]\n',
        'contracts."a.b"',
        "contract names",
    ),
    (
        "duplicate-connection-names",
        '[[connections]]\nname = "acme"\nprovider = "xero"\n[[connections]]\nname = "acme"\nprovider = "quickbooks"\n',
        "connections[1].name",
        "duplicate connection name 'acme' (also connections[0])",
    ),
    (
        "connection-name-with-a-colon",
        '[[connections]]\nname = "acme:xero"\nprovider = "xero"\n',
        "connections[0].name",
        "colons",
    ),
    (
        "unknown-provider",
        '[[connections]]\nname = "acme"\nprovider = "sage"\n',
        "connections[0].provider",
        "unknown provider 'sage' (installed: 'freshbooks', 'quickbooks', 'xero')",
    ),
    (
        "missing-provider",
        '[[connections]]\nname = "acme"\n',
        "connections[0].provider",
        "required key is missing (installed: 'freshbooks', 'quickbooks', 'xero')",
    ),
    (
        "base-url-not-http",
        '[[connections]]\nname = "acme"\nprovider = "xero"\nbase_url = "127.0.0.1:8765"\n',
        "connections[0].base_url",
        "http:// or https:// URL",
    ),
    (
        "connections-as-a-table",
        '[connections]\nname = "acme"\nprovider = "xero"\n',
        "connections",
        "write [[connections]]",
    ),
    (
        "secret-in-a-connection",
        '[[connections]]\nname = "acme"\nprovider = "xero"\nclient_secret = "s3cr3t"\n',
        "connections[0].client_secret",
        "secrets never go in the config file",
    ),
    (
        "token-nested-in-a-connection",
        '[[connections]]\nname = "acme"\nprovider = "xero"\n[connections.oauth]\nrefresh_token = "r"\n',
        "connections[0].oauth.refresh_token",
        "token store",
    ),
    (
        "password-in-the-store-url",
        '[store]\nurl = "postgresql://bridge:hunter2@db/bridge"\n',
        "store.url",
        "PGPASSWORD",
    ),
    (
        "unsupported-database",
        '[store]\nurl = "mysql://db/bridge"\n',
        "store.url",
        "sqlite:///PATH or postgresql://",
    ),
    (
        "key-instead-of-key-env",
        '[secrets]\nkey_env = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE="\n',
        "secrets.key_env",
        "looks like the key itself",
    ),
    (
        "invoice-number-as-int",
        "[hold]\ninvoices = [1042]\n",
        "hold.invoices[0]",
        "must be a quoted string",
    ),
    (
        "unknown-placeholder",
        CONTRACT + '[contracts.standard.late_fee]\ndescription = "Fee on {invoice}"\n',
        "contracts.standard.late_fee.description",
        "placeholders",
    ),
]


@pytest.mark.parametrize(("text", "key", "word"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_broken_config_names_file_key_and_problem(tmp_path: Path, text: str, key: str, word: str) -> None:
    lines = problems_of(write(tmp_path, text))

    assert all(line.startswith(f"{tmp_path / 'bridge.toml'}: ") for line in lines), lines
    assert any(f": {key}" in line and word in line for line in lines), lines


def test_pydantic_internals_never_leak_into_messages(tmp_path: Path) -> None:
    text = CONTRACT + '[contracts.standard.late_fee]\nmax_total = 1.5\npercent = "x"\n'

    message = "\n".join(problems_of(write(tmp_path, text)))

    for internal in ("Value error", "function-after", "Input should", "[0]", ".0."):
        assert internal not in message


def test_every_problem_of_a_file_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[connections]]
        name = "acme"
        provider = "sage"

        [contracts.standard]
        applies_to = ["*"]
        timezone = "Nowhere/Else"

        [contracts.standard.late_fee]
        percent = "150"
        max_total = 500.5
        flavour = "x"
        """,
    )

    keys = [line.split(": ")[1] for line in problems_of(path)]

    assert keys == [
        "connections[0].provider",
        "contracts.standard.timezone",
        "contracts.standard.late_fee.percent",
        "contracts.standard.late_fee.max_total",
        "contracts.standard.late_fee.flavour",
    ]


def test_a_file_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path / "missing.toml")

    assert "missing.toml: cannot read the file" in line


# --- load_terms: only contracts, hold and exclude ----------------------------------------------


def test_load_terms_ignores_the_other_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [store]
        url = "mysql://not-read"
        whatever = 1

        [[connections]]
        name = "acme"
        provider = "not-read"

        [contracts.standard]
        applies_to = ["*"]

        [hold]
        invoices = ["INV-7"]
        """,
    )

    terms = load_terms(path)

    assert [c.name for c in terms.contracts] == ["standard"]
    assert terms.hold.invoices == ("INV-7",)


def test_load_terms_still_rejects_unknown_keys_inside_contracts(tmp_path: Path) -> None:
    path = write(tmp_path, CONTRACT + '[contracts.standard.late_fee]\nmax_totl = "5.00"\n')

    (line,) = problems_of(path, terms_only=True)

    assert line == (f"{path}: contracts.standard.late_fee.max_totl: unknown key; did you mean 'max_total'?")


def test_load_terms_still_rejects_unknown_keys_inside_hold(tmp_path: Path) -> None:
    (line,) = problems_of(write(tmp_path, "[hold]\ncustomer = []\n"), terms_only=True)

    assert "hold.customer: unknown key; did you mean 'customers'?" in line


# --- which file ---------------------------------------------------------------------------------


def test_the_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    cli = write(tmp_path, "", name="cli.toml")
    env = write(tmp_path, "", name="env.toml")

    assert resolve_config_path(str(cli), {"BRIDGE_CONFIG": str(env)}) == cli
    assert resolve_config_path(None, {"BRIDGE_CONFIG": str(env)}) == env


def test_the_default_is_config_bridge_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "")
    monkeypatch.chdir(tmp_path)

    assert resolve_config_path(None, {}) == Path("config/bridge.toml")
    assert resolve_config_path("", {"BRIDGE_CONFIG": ""}) == Path("config/bridge.toml")


def test_a_missing_config_lists_every_place_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as caught:
        resolve_config_path(None, {})

    message = str(caught.value)
    assert "config file not found (config/bridge.toml)" in message
    assert "--config        not given" in message
    assert "$BRIDGE_CONFIG  not set" in message
    assert f"./config/bridge.toml (no such file in {tmp_path})" in message
    assert "bridge.example.toml" in message
    assert caught.value.exit_code == 2


def test_a_missing_file_named_on_the_command_line_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        resolve_config_path(str(missing), {"BRIDGE_CONFIG": str(tmp_path / "other.toml")})

    message = str(caught.value)
    assert f"--config        {missing} (no such file)" in message
    assert "$BRIDGE_CONFIG  not consulted" in message


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a directory, not a file"):
        resolve_config_path(None, {"BRIDGE_CONFIG": str(tmp_path)})
