"""The whole loop on one machine: `bridge serve` (a process) stops a review = "required" run at the plan, the
notice lands in the sandbox's Flock capture, its one-time link opens the plan, approving applies it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bridge.store.review import Reviews
from tests.server.conftest import NAME, Server, make_server, wait_until

NOTIFY = """
[notify]
on = ["review", "failed", "in_doubt", "relink"]

[notify.flock]
webhook_url_env = "BRIDGE_FLOCK_WEBHOOK"
"""


@pytest.fixture
def careful(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for server in make_server(tmp_path):
        config = server.config.read_text().replace(
            'timezone = "America/New_York"\n', 'timezone = "America/New_York"\nreview = "required"\n', 1
        )
        assert 'review = "required"' in config
        server.config.write_text(config.replace("\n[contracts.", NOTIFY + "\n[contracts.", 1))
        monkeypatch.setenv("BRIDGE_FLOCK_WEBHOOK", f"{server.sandbox.base_url}/hooks/sendMessage/team-token")
        yield server


def test_a_held_run_is_posted_to_flock_and_its_link_approves_it(careful: Server) -> None:
    careful.start()
    unpaid = [i for i in careful.sandbox.state()["quickbooks"]["Invoice"] if float(i.get("Balance", 0)) > 0]
    careful.pay_in_full(unpaid[0]["DocNumber"])  # its webhook brings the run forward (else: 07:00 tomorrow)
    posts = wait_until(
        lambda: [p for p in careful.sandbox.chat.posts() if p["channel"] == "flock"], "a Flock post", timeout=120
    )
    (post,) = posts
    print("Flock message as posted by bridge serve:", post["raw"])
    assert post["status"] == 200 and post["body"]["text"].startswith(f"{NAME}: ")
    link = post["body"]["attachments"][0]["buttons"][0]["action"]["url"]
    assert link.startswith(f"{careful.url}/review/link/")
    with careful.store() as store:
        (pending,) = Reviews(store).plans()
        assert store.ledger() == []
    browser = requests.Session()
    page = browser.get(link, timeout=30)
    assert page.status_code == 200 and page.url == f"{careful.url}/review/{pending.id}"
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    done = browser.post(
        f"{careful.url}/review/{pending.id}/approve", data={"csrf": csrf, "do": "all", "name": "Dana"}, timeout=300
    )
    assert done.status_code == 200 and "Approved" in done.text
    assert requests.get(link, timeout=30).status_code == 410
    with careful.store() as store:
        decided = Reviews(store).get(pending.id)
        assert decided is not None and decided.state == "approved" and decided.result is not None
        applied = {a["key"] for a in decided.result["applied"]}
        assert applied == {a.key for a in pending.plan.actions}
        assert {e.state for e in store.ledger()} == {"applied"}
    assert careful.stop() == 0
