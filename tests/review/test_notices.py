"""Notices: each channel's body in the shape its provider documents, posted to the sandbox's capture endpoints,
retried when a channel fails, reported when it keeps failing, and never holding up the run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import requests

from bridge.notify import formats
from bridge.notify.channels import Channels, Delivery, sign, verify
from bridge.notify.formats import Notice
from tests.review.conftest import Review, notify_settings

FLOCKML_TAGS = {"flockml", "b", "i", "u", "br", "a", "strong", "em", "action", "user"}


def big_notice() -> Notice:
    """A notice at its worst: markup in names, many failures, long details, several currencies."""
    return Notice(
        kind="review",
        connection="acme-qbo",
        link="https://bridge.example.com/review/link/" + "x" * 200,
        reminders=12,
        fees={"USD": "45.00", "EUR": "10.00", "JPY": "1500"},
        fee_count=5,
        other=1,
        failed=tuple(f'INV-{i}: <b>&"broken"</b> ' + "y" * 300 for i in range(40)),
        in_doubt=("R-1: no answer",),
        detail="Amy's <Bird> Sanctuary & Co. " * 50,
        plan_id="p1",
        as_of="2026-10-20",
    )


def test_flockml_is_well_formed_and_escapes_what_it_quotes() -> None:
    body = formats.flock(big_notice())
    root = ET.fromstring(body["flockml"])
    assert root.tag == "flockml"
    assert {e.tag for e in root.iter()} <= FLOCKML_TAGS
    assert "<Bird>" in "".join(root.itertext())  # shown as text, not markup
    assert len(json.dumps(body, ensure_ascii=False)) <= formats.FLOCK_MAX
    (attachment,) = body["attachments"]
    (button,) = attachment["buttons"]
    assert button["action"] == {"type": "openBrowser", "url": big_notice().link, "sendContext": False}
    assert body["text"] and body["notification"]


def _texts(value: Any) -> list[tuple[str, str]]:
    """Every (key, string) inside a JSON value."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += [(k, v)] if isinstance(v, str) else _texts(v)
    elif isinstance(value, list):
        for v in value:
            out += _texts(v)
    return out


def test_block_kit_stays_within_slacks_limits() -> None:
    body = formats.slack(big_notice())
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= 50
    header, section, actions = blocks
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert len(header["text"]["text"]) <= 150
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert len(section["text"]["text"]) <= 3000
    assert "<b>" not in section["text"]["text"] and "&lt;b&gt;&amp;" in section["text"]["text"]
    assert section["text"]["text"].endswith("…")
    (button,) = actions["elements"]
    assert button["type"] == "button" and len(button["text"]["text"]) <= 75
    assert button["url"] == big_notice().link and len(button["url"]) <= 3000
    assert len(button["action_id"]) <= 255
    assert body["text"] and len(body["text"]) <= 3000


def test_the_teams_card_is_an_adaptive_card_1_4_with_an_open_url_action() -> None:
    body = formats.teams(big_notice())
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert {e["type"] for e in card["body"]} <= {"TextBlock", "FactSet"}  # elements of schema 1.0, all in 1.4
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the review", "url": big_notice().link}]


def test_a_notice_says_the_connection_the_counts_the_fees_per_currency_and_the_link() -> None:
    notice = big_notice()
    text = formats.headline(notice)
    assert (
        text
        == "acme-qbo: 12 reminders and 5 late fees (EUR 10.00, JPY 1500, USD 45.00) and 1 other action wait for review"
    )
    hook = formats.webhook(notice)
    assert hook["late_fee_total"] == {"EUR": "10.00", "JPY": "1500", "USD": "45.00"}
    assert hook["link"] == notice.link and len(hook["failed"]) == 40
    assert all(Decimal(v) for v in hook["late_fee_total"].values())
    assert "Failed: 30 more" in formats.lines(notice)


def test_a_review_notice_reaches_every_channel_each_with_its_own_one_time_link(review: Review) -> None:
    assert review.service.notifier is not None
    (future,) = review.service.notifier.sent
    deliveries = future.result(timeout=60)
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("flock", True),
        ("slack", True),
        ("teams", True),
        ("webhook", True),
    ]
    posts = requests.get(f"{review.book.sandbox.base_url}/_sandbox/chat", timeout=10).json()
    assert [p["channel"] for p in posts] == ["flock", "slack", "teams", "webhook"]
    assert all(p["status"] in (200, 202) for p in posts)
    flock, slack, teams, hook = (p["body"] for p in posts)
    print("Flock message as posted:\n" + json.dumps(flock, indent=2, ensure_ascii=False))
    links = {
        flock["attachments"][0]["buttons"][0]["action"]["url"],
        slack["blocks"][2]["elements"][0]["url"],
        teams["attachments"][0]["content"]["actions"][0]["url"],
        hook["link"],
    }
    assert len(links) == 4 and all(link.startswith("http://testserver/review/link/") for link in links)
    assert flock["text"].startswith("acme-qbo: ") and "wait for review" in flock["text"]
    assert hook["plan_id"] == review.plan_id and hook["event"] == "review"
    raw = posts[3]["raw"].encode("utf-8")
    assert verify("generic-webhook-secret", raw, posts[3]["headers"]["x-bridge-signature"])


def test_a_failing_channel_is_retried_and_one_that_keeps_failing_is_reported(review: Review) -> None:
    base = review.book.sandbox.base_url
    assert review.service.notifier is not None
    review.service.notifier.sent[0].result(timeout=60)  # the fixture's own notice is out of the way
    requests.post(f"{base}/_sandbox/reset", timeout=10)
    requests.post(f"{base}/_sandbox/chat/faults", json={"flock": 2, "slack": 9}, timeout=10)
    settings, env = notify_settings(base)
    channels = Channels(settings, env, attempts=3, backoff=0.01)
    deliveries = {d.channel: d for d in channels.send(big_notice())}
    assert deliveries["flock"] == Delivery("flock", True, 3)
    assert not deliveries["slack"].ok and deliveries["slack"].attempts == 3 and "503" in deliveries["slack"].error
    assert deliveries["teams"].ok and deliveries["webhook"].ok


def test_a_dead_channel_never_holds_up_the_run(review: Review) -> None:
    """Notices go out on the notifier's thread: submitting a plan returns its id whatever the channels do."""
    settings, env = notify_settings("http://127.0.0.1:9")  # nothing listens on the discard port
    assert review.service.notifier is not None
    review.service.notifier.channels = Channels(settings, env, attempts=2, backoff=0.01, timeout=2)
    plan = review.service.reviews.get(review.plan_id)
    assert plan is not None
    newer = review.service.submit(review.rt, "acme-qbo", plan.plan)
    assert review.service.reviews.get(newer) is not None
    deliveries = review.service.notifier.sent[-1].result(timeout=120)
    assert deliveries and not any(d.ok for d in deliveries)
    assert all(d.attempts == 2 and "ConnectError" in d.error for d in deliveries)


def test_a_forged_signature_on_the_generic_webhook_does_not_verify() -> None:
    body = json.dumps(formats.webhook(big_notice()), separators=(",", ":")).encode()
    good = sign("generic-webhook-secret", body)
    assert good.startswith("sha256=") and len(good) == len("sha256=") + 64
    assert verify("generic-webhook-secret", body, good)
    assert not verify("generic-webhook-secret", body, sign("another-secret", body))
    assert not verify("generic-webhook-secret", body + b" ", good)
    assert not verify("generic-webhook-secret", body, None)
    assert not verify("generic-webhook-secret", body, "sha256=" + "0" * 64)


def test_kinds_not_in_notify_on_are_not_sent() -> None:
    settings, env = notify_settings("http://127.0.0.1:9")
    quiet = Channels(settings.model_copy(update={"on": ("review",)}), env)
    assert quiet.send(Notice("relink", "acme-qbo", "http://x/review", detail="refresh refused")) == []
