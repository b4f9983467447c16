"""The e-mail notice goes through [smtp]: here the sandbox's SMTP server, whose messages land in its outbox."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bridge.config import FirmSettings, Settings, SmtpSettings
from bridge.errors import ConfigError
from bridge.notify.channels import Channels
from bridge.notify.formats import Notice
from bridge.notify.settings import NotifySettings
from bridge.review.service import smtp_sender
from bridge_sandbox import Sandbox


def test_the_email_notice_is_sent_through_smtp() -> None:
    with Sandbox(rate_limits=False, smtp_port=0) as sandbox:
        assert sandbox.smtp_address is not None
        host, port = sandbox.smtp_address
        settings = Settings(
            source=Path("bridge.toml"),
            smtp=SmtpSettings.model_validate(
                {"host": host, "port": port, "security": "none", "from": "Maple & Finch <accounts@maple.example>"}
            ),
            firm=FirmSettings(name="Maple & Finch Design", reply_to="accounts@maple.example"),
        )
        rt = cast(Any, SimpleNamespace(settings=settings, env={}))
        notify = NotifySettings.model_validate({"email": {"to": ["pm@maple.example"]}})
        channels = Channels(notify, {}, email=smtp_sender(rt))
        notice = Notice("failed", "acme-qbo", "https://bridge.example.com/review", failed=("1037: HTTP 500",))
        assert [(d.channel, d.ok) for d in channels.send(notice)] == [("email", True)]
        (mail,) = [m for m in sandbox.outbox() if m.get("channel") == "smtp"]
        assert mail["to"] == "pm@maple.example" or "pm@maple.example" in str(mail["to"])
        assert mail["subject"] == "acme-qbo: 1 action failed"
        assert "Failed: 1037: HTTP 500" in mail["body"] and "https://bridge.example.com/review" in mail["body"]


def test_email_notices_need_an_smtp_section(tmp_path: Path) -> None:
    from bridge.config import load_settings

    path = tmp_path / "bridge.toml"
    path.write_text('[notify.email]\nto = ["pm@maple.example"]\n')
    with pytest.raises(ConfigError, match=r"notify.email: the e-mail notices go through \[smtp\]"):
        load_settings(path)
