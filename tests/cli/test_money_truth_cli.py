"""Issue 14, through the public command line against the sandbox: what the plan says is what happens.

- A config naming a template set or a channel that does not exist is refused when it is loaded (exit 2),
  not when the first reminder is due.
- `--json` on every command: stdout holds only the JSON document.
- Ctrl-C (SIGINT) or SIGTERM while applying finishes the action in flight, reports what was applied and
  what was not started, leaves nothing pending, and exits 130; the next sync does the rest exactly once.
- An unknown connection name is a usage error (exit 2) on every command that takes one.
- Provider amounts finer than the currency's minor unit are never rounded: the record is quarantined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_settings, load_terms
from bridge.sandbox import Sandbox
from tests.torture.harness import AS_OF, PROVIDERS, Trial

ROOT = Path(__file__).resolve().parents[2]
Bridge = Callable[..., Any]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as running:
        yield running


def linked(
    sandbox: Sandbox,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    providers: tuple[str, ...] = PROVIDERS,
    seed: dict[str, Any] | None = None,
) -> Trial:
    """A folder with a config and a store linked to the sandbox's (re)seeded books; the environment set for it."""
    trial = Trial(sandbox, folder, providers, seed=seed)
    for name, value in trial.env().items():
        if name.startswith("BRIDGE_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    return trial


def human(trial: Trial, *args: str) -> list[str]:
    """`bridge` arguments for the trial's config without --json."""
    return ["--config", str(trial.config), "--as-of", AS_OF, *args]


# -- 6. template sets and channels are checked when the config is loaded -------------------------------------


def _with_reminders(setting: str) -> str:
    demo = (ROOT / "config" / "demo.toml").read_text()
    assert 'channel = "provider"\n' in demo
    return demo.replace('channel = "provider"\n', setting + "\n")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            'template = "politee"',
            "contracts.standard.reminders.template: unknown template set 'politee'; available: firm, polite; "
            "did you mean 'polite'?",
        ),
        (
            'channel = "smtp"',
            "contracts.standard.reminders.channel: 'smtp' is not available yet",
        ),
        (
            'channel = "e-mail"',
            "contracts.standard.reminders.channel: unknown channel 'e-mail'; available: provider",
        ),
    ],
    ids=["template", "smtp", "unknown-channel"],
)
def test_an_unknown_template_set_or_channel_is_a_config_error_before_anything_runs(
    bridge: Bridge, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: str
) -> None:
    trial = linked(sandbox, tmp_path / "books", monkeypatch, ("quickbooks",))
    config = trial.config.read_text()
    trial.config.write_text(config.replace(config[config.index("# Contracts") :], _with_reminders(setting)))
    contracts = tmp_path / "contracts.toml"
    contracts.write_text(_with_reminders(setting))
    (tmp_path / "invoices.json").write_text("[]")
    requests_before = len(sandbox.requests())
    for args, source in (
        (human(trial, "sync", "--dry-run"), trial.config),
        (human(trial, "sync"), trial.config),
        (human(trial, "evaluate", "--invoices", str(tmp_path / "invoices.json")), trial.config),
        (["evaluate", "--invoices", str(tmp_path / "invoices.json"), "--contracts", str(contracts)], contracts),
        (["demo", "--dry-run", "--contracts", str(contracts)], contracts),
    ):
        result = bridge(*args)
        assert result.code == 2, (args, result.code, result.err)
        assert f"{source}: {expected}" in result.err, result.err
        assert "Traceback" not in result.err
    assert len(sandbox.requests()) == requests_before  # refused before any provider was called
    assert trial.ledger() == {}


def test_every_shipped_config_still_loads() -> None:
    for path in sorted((ROOT / "config").rglob("*.toml")):
        terms = load_terms(path)
        assert terms.contracts, path
        assert {c.reminders.channel for c in terms.contracts} == {"provider"}
    assert load_settings(ROOT / "config" / "bridge.example.toml").connections
