"""`bridge preview`: the messages the next sync would send, exactly as the client will receive them.

The plan comes from a dry run (the same pull and evaluation as `sync --dry-run`: nothing is
written, nothing is sent). Each message of the SMTP channel is composed as the real send
composes it (`bridge.smtp.compose_for`: same bytes apart from `Date`), the provider's PDF and
pay link fetched through the connectors (reads only). A message the provider sends itself is
listed with what the provider really sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bridge import clock
from bridge.delivery import reminder_delivery
from bridge.plan import Action
from bridge.smtp import compose_for, smtp_actions
from bridge.sync import Progress, Runtime, sync

__all__ = ["Preview", "eml_name", "preview"]


@dataclass(frozen=True)
class Preview:
    """One message of the next sync: who gets what, and how it leaves."""

    action: Action
    how: str  # in words: the firm's mailbox, or what the provider sends
    message: EmailMessage | None  # the e-mail itself (the SMTP channel)
    attachments: tuple[str, ...] = ()
    pay_link: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the headers and both bodies as received (SMTP), or the provider's words."""
        out: dict[str, Any] = {
            "key": self.action.key,
            "kind": self.action.kind.value,
            "connection": self.action.connection,
            "invoice": self.action.invoice.number,
            "to": self.action.to,
            "how": self.how,
        }
        if self.action.cc:  # copies (escalation): shown only when there are, like the plan
            out["cc"] = list(self.action.cc)
        if self.action.bcc:
            out["bcc"] = list(self.action.bcc)
        if self.message is None:
            out.update(subject=self.action.subject, text=self.action.body)
            return out
        text = self.message.get_body(preferencelist=("plain",))
        html = self.message.get_body(preferencelist=("html",))
        out.update(
            subject=str(self.message["Subject"]),
            headers={name: str(value) for name, value in self.message.items()},
            text=text.get_content() if text is not None else None,
            html=html.get_content() if html is not None else None,
            attachments=list(self.attachments),
            pay_link=self.pay_link,
            notes=list(self.notes),
        )
        return out


def eml_name(action: Action) -> str:
    """The file name `--out` writes a message to: the action key, file-safe."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in action.key) + ".eml"


def preview(
    rt: Runtime,
    names: Sequence[str] = (),
    *,
    as_of: date | None = None,
    invoice: str | None = None,
    progress: Progress | None = None,
) -> tuple[list[Preview], int]:
    """The messages of the next sync (only those of invoice number `invoice` when given), and the dry run's exit
    code (3 when a connection could not be read)."""
    outcome = sync(rt, names, dry_run=True, as_of=as_of, progress=progress)
    actions = [
        a
        for a in outcome.plan.actions
        if a.to and a.subject is not None and (invoice is None or a.invoice.number == invoice)
    ]
    smtp = rt.settings.smtp
    wanted = {a.connection for a in actions if smtp_actions(a)}
    selected = [c for c in rt.select(names) if c.name in wanted]
    connectors, _ = rt.connectors(selected) if smtp is not None and selected else ({}, {})
    now = clock.now_utc()
    previews: list[Preview] = []
    for action in actions:
        connector = connectors.get(action.connection)
        if smtp is not None and smtp_actions(action) and connector is not None:
            composed = compose_for(
                action, getattr(connector, "inner", connector), smtp, rt.settings.firm, rt.locale_of(action), now
            )
            how = f"from {smtp.from_} through {smtp.host}:{smtp.effective_port}"
            notes = composed.notes
            if composed.attachments and action.balance is not None and action.balance != action.invoice.amount_due:
                notes += (
                    "the PDF shown is the invoice as the provider has it now; the one sent is fetched after this "
                    "run's late fee is written and shows the new balance",
                )
            previews.append(Preview(action, how, composed.message, composed.attachments, composed.pay_link, notes))
        else:
            channels = rt.settings.terms.provider_channels
            how = reminder_delivery(action.provider, action.channel or "provider", channels).what
            if action.sends != "contract_text":
                how = "not sent: handed to you to pass on" if action.sends == "nothing" else how
            previews.append(Preview(action, how, None))
    return previews, outcome.exit_code


def write_eml(folder: Path, previews: Sequence[Preview]) -> list[Path]:
    """One `.eml` file per SMTP message in `folder` (created), byte for byte what would be handed over."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in previews:
        if item.message is None:
            continue
        path = folder / eml_name(item.action)
        path.write_bytes(item.message.as_bytes())
        written.append(path)
    return written
