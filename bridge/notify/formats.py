"""What a notice says, and each channel's body for it. Pure: no I/O, no clock.

A notice says in one glance: the connection, how many reminders and late fees (the fees' total per
currency), anything failed or in doubt, and a button to the page. The channel formats:

- Flock incoming webhook: `text` (plain, for notifications), `flockml` (a `<flockml>` document: `b`, `i`,
  `br`, `a`), and one attachment whose button opens the page (`action.type = "openBrowser"`). 32,768 characters.
- Slack incoming webhook: `text` (the notification line) and Block Kit `blocks`: a header (plain text, 150
  characters at most), a mrkdwn section (3,000 at most) and an actions block with a URL button (label 75, URL
  3,000 at most): a URL button opens the page without any interactivity endpoint.
- Microsoft Teams Workflows webhook ("When a Teams webhook request is received"): a `message` whose one attachment
  is an Adaptive Card (schema version 1.4) with an `Action.OpenUrl`.
- Generic webhook: the notice as JSON (the sender signs it).
- E-mail digest: subject and text of one message for one or more notices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from bridge.plan import Plan

FLOCK_MAX = 32_768
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3_000
SLACK_BUTTON_TEXT_MAX = 75
SLACK_URL_MAX = 3_000
ADAPTIVE_CARD_VERSION = "1.4"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
LISTED = 10  # failures or doubts listed by name; the rest are counted
BUTTON = "Open the review"


@dataclass(frozen=True)
class Notice:
    """One thing the team should hear of: `kind` is review, failed, in_doubt or relink."""

    kind: str
    connection: str
    link: str
    reminders: int = 0
    fees: Mapping[str, str] = field(default_factory=dict)  # currency -> total, exact minor units
    fee_count: int = 0
    other: int = 0  # due-date updates and refusals
    failed: tuple[str, ...] = ()
    in_doubt: tuple[str, ...] = ()
    detail: str = ""
    plan_id: str | None = None
    as_of: str | None = None


def for_plan(connection: str, plan: Plan, link: str, plan_id: str, *, replaced: str | None = None) -> Notice:
    """The review notice of a plan waiting for approval."""
    summary = plan.summary()
    detail = f"It replaces the earlier plan {replaced}, which can no longer be approved." if replaced else ""
    return Notice(
        kind="review",
        connection=connection,
        link=link,
        reminders=summary["reminders"],
        fees=dict(summary["late_fee_total"]),
        fee_count=summary["late_fees"],
        other=summary["due_date_updates"] + summary["renegotiations_refused"],
        failed=tuple(f"{e.record}: {e.error}" for e in plan.errors),
        detail=detail,
        plan_id=plan_id,
        as_of=plan.as_of.isoformat(),
    )


def for_result(connection: str, result: Mapping[str, Any], link: str, plan_id: str) -> Notice | None:
    """After approval: a `failed` notice when some actions failed or are in doubt, else None."""
    failed = tuple(f"{f['key']}: {f.get('error', '')}" for f in result.get("failed", []))
    doubt = tuple(f"{f['key']}: {f.get('error', '')}" for f in result.get("in_doubt", []))
    if not failed and not doubt:
        return None
    kind = "failed" if failed else "in_doubt"
    return Notice(kind, connection, link, failed=failed, in_doubt=doubt, plan_id=plan_id)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def fees_text(notice: Notice) -> str:
    """'2 late fees (USD 45.00, EUR 10.00)' or '' when none."""
    if not notice.fee_count:
        return ""
    totals = ", ".join(f"{cur} {amount}" for cur, amount in sorted(notice.fees.items()))
    return f"{_plural(notice.fee_count, 'late fee')} ({totals})"


def headline(notice: Notice) -> str:
    """The one line a phone shows."""
    if notice.kind == "review":
        parts = [_plural(notice.reminders, "reminder")]
        if notice.fee_count:
            parts.append(fees_text(notice))
        if notice.other:
            parts.append(_plural(notice.other, "other action"))
        return f"{notice.connection}: {' and '.join(parts)} wait for review"
    if notice.kind == "failed":
        count = len(notice.failed)
        return f"{notice.connection}: {_plural(count, 'action') + ' failed' if count else 'the run failed'}"
    if notice.kind == "in_doubt":
        count = len(notice.in_doubt)
        return f"{notice.connection}: {_plural(count, 'action') if count else 'an action'} in doubt (not sent again)"
    return f"{notice.connection}: the link must be renewed (bridge link)"


def lines(notice: Notice) -> list[str]:
    """The body under the headline, plain text, one fact per line."""
    out: list[str] = []
    if notice.as_of:
        out.append(f"Plan of {notice.as_of}.")
    for title, items in (("Failed", notice.failed), ("In doubt", notice.in_doubt)):
        for item in items[:LISTED]:
            out.append(f"{title}: {item}")
        if len(items) > LISTED:
            out.append(f"{title}: {len(items) - LISTED} more")
    if notice.detail:
        out.append(notice.detail)
    if notice.kind == "review":
        out.append("Nothing goes out until someone approves it. The link works once and expires.")
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flockml(notice: Notice) -> str:
    """The FlockML document: a well-formed `<flockml>` element (text escaped)."""
    body = "<br/>".join(escape(line) for line in lines(notice))
    link = f'<a href="{escape(notice.link, {chr(34): "&quot;"})}">{BUTTON}</a>'
    return f"<flockml><b>{escape(headline(notice))}</b><br/>{body}<br/>{link}</flockml>"


def flock(notice: Notice) -> dict[str, Any]:
    """Flock incoming-webhook message."""
    text = "\n".join([headline(notice), *lines(notice), notice.link])
    message: dict[str, Any] = {
        "text": _clip(text, 4_000),
        "flockml": flockml(notice),
        "notification": _clip(headline(notice), 200),
        "attachments": [
            {
                "title": _clip(headline(notice), 200),
                "description": _clip(" ".join(lines(notice)), 1_000),
                "buttons": [
                    {
                        "name": BUTTON,
                        "id": "open-review",
                        "action": {"type": "openBrowser", "url": notice.link, "sendContext": False},
                    }
                ],
            }
        ],
    }
    return message


def _fit(parts: list[str], limit: int) -> str:
    """Whole lines (already escaped: never cut inside an entity) up to `limit` characters, then '…'."""
    out: list[str] = []
    used = 0
    for part in parts:
        if used + len(part) + 1 > limit - 2:
            out.append("…")
            break
        out.append(part)
        used += len(part) + 1
    return "\n".join(out)


def _mrkdwn(text: str) -> str:
    """Slack's escaping: only &, < and > (the control characters of mrkdwn links and mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(notice: Notice) -> dict[str, Any]:
    """Slack incoming-webhook message with Block Kit blocks."""
    section = _fit([_mrkdwn(line) for line in lines(notice)] or [_mrkdwn(headline(notice))], SLACK_SECTION_MAX)
    return {
        "text": _clip(headline(notice), SLACK_SECTION_MAX),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(headline(notice), SLACK_HEADER_MAX)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open-review",
                        "text": {"type": "plain_text", "text": BUTTON},
                        "url": notice.link[:SLACK_URL_MAX],
                        "style": "primary",
                    }
                ],
            },
        ],
    }


def teams(notice: Notice) -> dict[str, Any]:
    """A Teams Workflows webhook message: one Adaptive Card with an Action.OpenUrl."""
    facts = [{"title": "Connection", "value": notice.connection}]
    if notice.kind == "review":
        facts.append({"title": "Reminders", "value": str(notice.reminders)})
        facts.append({"title": "Late fees", "value": fees_text(notice) or "none"})
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": headline(notice), "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "FactSet", "facts": facts},
        *({"type": "TextBlock", "text": line, "wrap": True} for line in lines(notice)),
    ]
    card = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": BUTTON, "url": notice.link}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def webhook(notice: Notice) -> dict[str, Any]:
    """The generic webhook's JSON."""
    return {
        "event": notice.kind,
        "connection": notice.connection,
        "headline": headline(notice),
        "plan_id": notice.plan_id,
        "as_of": notice.as_of,
        "reminders": notice.reminders,
        "late_fees": notice.fee_count,
        "late_fee_total": dict(sorted(notice.fees.items())),
        "other_actions": notice.other,
        "failed": list(notice.failed),
        "in_doubt": list(notice.in_doubt),
        "detail": notice.detail,
        "link": notice.link,
    }


def email(notices: Sequence[Notice]) -> tuple[str, str]:
    """Subject and text of the e-mail digest of `notices`."""
    subject = headline(notices[0]) if len(notices) == 1 else f"{len(notices)} notices from the billing bridge"
    parts = []
    for notice in notices:
        parts.append("\n".join([headline(notice), *lines(notice), f"{BUTTON}: {notice.link}"]))
    return subject, "\n\n".join(parts) + "\n"
