"""The review pages in a real browser: Debian's Chromium, headless, driven by Playwright.

Sign in (keyboard only, JavaScript off), open the pending plan, approve a selection, see the result; reject
with a reason; a one-time link works once and then not; a form without its CSRF token is refused.
Screenshots of the plan page are kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from bridge.review.auth import Keys
from bridge.review.service import ReviewService
from bridge.review.web import review_app
from tests.conftest import service_unavailable
from tests.review.conftest import AS_OF, PASSWORD, SECRET, Review, add_user

CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Pages:
    """The review pages on a real port (uvicorn in a thread), with links pointing at it."""

    def __init__(self, review: Review) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.service = ReviewService(review.rt, keys=Keys(SECRET), public_url=self.url, as_of=AS_OF)
        config = uvicorn.Config(review_app(self.service), host="127.0.0.1", port=port, log_config=None, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="review-pages", daemon=True)

    def __enter__(self) -> _Pages:
        self.thread.start()
        while not self.server.started:  # waiting for start-up, not measuring it
            if not self.thread.is_alive():
                raise RuntimeError("the review pages did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _sign_in(page, pages: _Pages) -> None:
    page.goto(f"{pages.url}/review/signin")
    page.get_by_label("Name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{pages.url}/review")


@pytest.fixture
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        service_unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def pages(review: Review) -> Iterator[_Pages]:
    add_user(review.service, "alice")
    with _Pages(review) as running:
        yield running


def test_sign_in_open_a_plan_approve_a_selection_and_see_the_result(
    review: Review, pages: _Pages, browser, artifacts: Path
) -> None:
    """Keyboard only and JavaScript off: the pages need neither a mouse nor a script."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    page.goto(f"{pages.url}/review/{review.plan_id}")
    assert page.url.startswith(f"{pages.url}/review/signin")
    page.keyboard.type("alice")  # the name field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{pages.url}/review/{review.plan_id}")
    stored = review.service.reviews.get(review.plan_id)
    assert stored is not None
    first, second, *rest = stored.plan.actions
    assert page.get_by_role("heading", name=f"acme-qbo: plan of {AS_OF}").is_visible()
    assert page.locator(".action").count() == len(stored.plan.actions)
    assert page.get_by_text(first.clause).first.is_visible()
    page.screenshot(path=str(artifacts / "review-plan-phone.png"))
    wide = context.new_page()
    wide.set_viewport_size({"width": 1280, "height": 900})
    wide.goto(f"{pages.url}/review/{review.plan_id}")
    wide.screenshot(path=str(artifacts / "review-plan.png"))  # the first screenful
    wide.screenshot(path=str(artifacts / "review-plan-full.png"), full_page=True)
    wide.close()
    print(f"screenshots: {artifacts / 'review-plan.png'}, {artifacts / 'review-plan-phone.png'}")
    for action in rest:
        page.locator(f'input[name="key"][value="{action.key}"]').uncheck()
    page.get_by_role("button", name="Approve selected").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{pages.url}/review/{review.plan_id}")
    result = page.locator("table").inner_text()
    assert first.key in result and second.key in result and "applied" in result
    assert "left out (not selected)" in result
    page.screenshot(path=str(artifacts / "review-result.png"), full_page=True)
    for action in (first, second):
        entry = review.rt.store.ledger_get(action.key)
        assert entry is not None and entry.state == "applied"
    assert all(review.rt.store.ledger_get(a.key) is None for a in rest)
    context.close()


def test_reject_with_a_reason(review: Review, pages: _Pages, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, pages)
    page.get_by_role("link", name=f"acme-qbo: plan of {AS_OF}").click()
    page.get_by_label("Reason (required)").fill("the client called: paying on Friday")
    page.get_by_role("button", name="Reject the whole plan").click()
    page.wait_for_url(f"{pages.url}/review/{review.plan_id}")
    assert "Rejected by alice" in page.inner_text("main")
    assert "the client called: paying on Friday" in page.inner_text("main")
    assert review.book.outbox() == []
    assert {e.state for e in review.rt.store.ledger()} == {"dropped"}
    context.close()


def test_a_one_time_link_works_once_and_then_not(review: Review, pages: _Pages, browser) -> None:
    link = pages.service.link(review.plan_id, "flock")
    first = browser.new_context()
    page = first.new_page()
    page.goto(link)
    assert page.url == f"{pages.url}/review/{review.plan_id}"
    assert page.get_by_role("button", name="Approve all").is_visible()
    again = browser.new_context().new_page()
    answer = again.goto(link)
    assert answer is not None and answer.status == 410
    assert "works once" in again.inner_text("main")
    page.get_by_label("Your name (recorded with the approval)").fill("Dana")
    page.get_by_role("button", name="Approve all").click()
    page.wait_for_url(f"{pages.url}/review/{review.plan_id}")
    stored = review.service.reviews.get(review.plan_id)
    assert stored is not None and stored.state == "approved"
    assert stored.decided_by == "Dana (one-time link from flock)"
    first.close()


def test_a_form_without_its_csrf_token_is_refused(review: Review, pages: _Pages, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, pages)
    page.goto(f"{pages.url}/review/{review.plan_id}")
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    with page.expect_navigation():
        page.get_by_role("button", name="Approve all").click()
    assert "CSRF" in page.inner_text("main")
    stored = review.service.reviews.get(review.plan_id)
    assert stored is not None and stored.state == "pending" and review.rt.store.ledger() == []
    context.close()
