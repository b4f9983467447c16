"""`[firm]` and `[smtp]`: checked when the config loads, each problem naming its key (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli_setup import check
from bridge.config import load_settings
from bridge.errors import ConfigError

CONTRACT = '[contracts.standard]\napplies_to = ["*"]\n[contracts.standard.reminders]\nchannel = "smtp"\n'
GOOD_SMTP = (
    '[smtp]\nhost = "smtp.example.com"\nusername = "accounts@maple.example"\n'
    'from = "Maple & Fïnch <accounts@maple.example>"\n'
)


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return load_settings(path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return caught.value.problems


def test_a_good_smtp_section_loads_with_its_defaults(tmp_path: Path) -> None:
    settings = _load(tmp_path, '[firm]\nname = "Maple & Finch"\n' + GOOD_SMTP + CONTRACT)
    smtp = settings.smtp  # type: ignore[attr-defined]
    assert (smtp.security, smtp.effective_port, smtp.password_env) == ("starttls", 587, "BRIDGE_SMTP_PASSWORD")
    assert smtp.sender.display_name == "Maple & Fïnch" and smtp.sender.addr_spec == "accounts@maple.example"
    assert settings.firm.name == "Maple & Finch" and settings.firm.reply_to is None  # type: ignore[attr-defined]
    assert settings.terms.contracts[0].reminders.channel == "smtp"  # type: ignore[attr-defined]


def test_channel_smtp_needs_an_smtp_section(tmp_path: Path) -> None:
    assert _problems(tmp_path, CONTRACT) == [
        "contracts.standard.reminders.channel: 'smtp' needs an [smtp] section (host, from, ...)"
    ]


@pytest.mark.parametrize(
    ("smtp", "expected"),
    [
        (GOOD_SMTP + 'security = "none"\n', 'smtp.security: "none" sends the password and the messages in clear'),
        (
            GOOD_SMTP.replace("Maple & Fïnch <accounts@maple.example>", "nobody"),
            "smtp.from: must be one e-mail address",
        ),
        (GOOD_SMTP + 'password_env = "hunter2!"\n', "smtp.password_env: must be the name of an environment variable"),
        (GOOD_SMTP + "port = 70000\n", "smtp.port:"),
        (GOOD_SMTP + 'security = "tls"\n', "smtp.security:"),
        (GOOD_SMTP + 'password = "x"\n', "smtp.password: looks like a secret"),
        (
            '[firm]\nname = "F"\nreply_to = "a@b.example, c@d.example"\n' + GOOD_SMTP,
            "firm.reply_to: must be one e-mail address",
        ),
    ],
)
def test_each_bad_setting_is_named(tmp_path: Path, smtp: str, expected: str) -> None:
    problems = _problems(tmp_path, smtp + CONTRACT)
    assert any(p.startswith(expected) for p in problems), problems


def test_plain_smtp_is_accepted_for_a_loopback_host(tmp_path: Path) -> None:
    settings = _load(tmp_path, '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\nfrom = "a@b.example"\n' + CONTRACT)
    assert settings.smtp.effective_port == 25  # type: ignore[attr-defined]


def test_config_check_says_when_the_smtp_password_is_not_in_the_environment(tmp_path: Path) -> None:
    settings = _load(tmp_path, GOOD_SMTP + CONTRACT)
    assert any(
        p.startswith("smtp.password_env: the environment variable BRIDGE_SMTP_PASSWORD is not set")
        for p in check(settings, {})
    )  # type: ignore[arg-type]
    assert not [p for p in check(settings, {"BRIDGE_SMTP_PASSWORD": "x"}) if p.startswith("smtp")]  # type: ignore[arg-type]
