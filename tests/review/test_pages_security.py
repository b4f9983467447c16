"""The review pages' guards, without a browser: no session, another user's plan, replayed and forged links,
CSRF, throttled sign-ins, cookie flags."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from bridge.review.auth import Keys
from bridge.review.service import ReviewService
from bridge.review.web import review_app
from tests.review.conftest import PASSWORD, SECRET, Review, add_user, csrf_of, sign_in


def _nothing_applied(review: Review) -> None:
    stored = review.service.reviews.get(review.plan_id)
    assert stored is not None and stored.state == "pending"
    assert review.rt.store.ledger() == [] and review.book.outbox() == []


@pytest.mark.parametrize("path", ["/review", "/review/{plan}", "/review/no-such-plan"])
def test_every_page_without_a_session_redirects_to_sign_in(review: Review, path: str) -> None:
    client = review.client()
    answer = client.get(path.format(plan=review.plan_id))
    assert answer.status_code == 303 and answer.headers["location"].startswith("/review/signin?next=")
    assert review.plan_id not in answer.text and "acme-qbo" not in answer.text


@pytest.mark.parametrize("form", ["approve", "reject"])
def test_every_form_without_a_session_is_refused(review: Review, form: str) -> None:
    client = review.client()
    data = {"do": "all", "reason": "no", "csrf": "x"}
    answer = client.post(f"/review/{review.plan_id}/{form}", data=data)
    assert answer.status_code == 401
    assert client.post("/review/signout", data={"csrf": "x"}).status_code == 401
    _nothing_applied(review)


def test_a_forged_session_cookie_is_no_session(review: Review) -> None:
    add_user(review.service, "alice")
    other = Keys("another-secret")
    client = review.client()
    client.cookies.set("bridge_review", other.dump_session(other.new_session("alice")), path="/review")
    assert client.get(f"/review/{review.plan_id}").status_code == 303


def test_another_users_plan_is_not_found(review: Review) -> None:
    add_user(review.service, "bob", ("globex-xero",))  # bob reviews another connection only
    client = review.client()
    assert sign_in(client, "bob") == 303
    listing = client.get("/review")
    assert listing.status_code == 200 and review.plan_id not in listing.text
    page = client.get(f"/review/{review.plan_id}")
    assert page.status_code == 404 and "acme-qbo" not in page.text
    csrf = csrf_of(client.get("/review").text)
    answer = client.post(f"/review/{review.plan_id}/approve", data={"csrf": csrf, "do": "all"})
    assert answer.status_code == 404
    _nothing_applied(review)


def test_a_signed_in_user_sees_the_plan_grouped_by_client(review: Review) -> None:
    add_user(review.service, "alice")
    client = review.client()
    assert sign_in(client, "alice") == 303
    page = client.get(f"/review/{review.plan_id}")
    assert page.status_code == 200
    stored = review.service.reviews.get(review.plan_id)
    assert stored is not None
    for action in stored.plan.actions:
        assert action.key in page.text and action.clause in page.text
    assert page.text.count("<section") == len({a.invoice.customer for a in stored.plan.actions})


def test_a_one_time_link_works_once(review: Review) -> None:
    link = review.service.link(review.plan_id, "flock").removeprefix("http://testserver")
    first = review.client()
    answer = first.get(link)
    assert answer.status_code == 303 and answer.headers["location"] == f"/review/{review.plan_id}"
    assert first.get(f"/review/{review.plan_id}").status_code == 200
    replay = review.client()
    again = replay.get(link)
    assert again.status_code == 410 and "works once" in again.text
    assert replay.get(f"/review/{review.plan_id}").status_code == 303


def test_a_link_opens_only_its_own_plan(review: Review) -> None:
    stored = review.service.reviews.get(review.plan_id)
    assert stored is not None
    newer = review.service.submit(review.rt, "acme-qbo", stored.plan)
    client = review.client()
    assert client.get(review.service.link(newer, "slack").removeprefix("http://testserver")).status_code == 303
    assert client.get(f"/review/{newer}").status_code == 200
    assert client.get(f"/review/{review.plan_id}").status_code == 404
    assert review.plan_id not in client.get("/review").text


def test_expired_and_forged_links_are_refused(review: Review) -> None:
    expired = ReviewService(review.rt, keys=Keys(SECRET, link_age=-1), public_url="http://testserver")
    client = TestClient(review_app(expired), base_url="http://testserver", follow_redirects=False)
    answer = client.get(review.service.link(review.plan_id, "teams").removeprefix("http://testserver"))
    assert answer.status_code == 403 and "expired" in answer.text
    forged = Keys("not-our-secret").make_link_token(review.plan_id, "flock")
    answer = review.client().get(f"/review/link/{forged}")
    assert answer.status_code == 403 and "not valid" in answer.text
    assert "set-cookie" not in {k.lower() for k in answer.headers}


def test_forms_need_the_csrf_token(review: Review) -> None:
    add_user(review.service, "alice")
    client = review.client()
    assert sign_in(client, "alice") == 303
    for data in ({"do": "all"}, {"do": "all", "csrf": "forged"}):
        assert client.post(f"/review/{review.plan_id}/approve", data=data).status_code == 403
        assert client.post(f"/review/{review.plan_id}/reject", data={**data, "reason": "x"}).status_code == 403
    _nothing_applied(review)
    fresh = review.client()
    page = fresh.get("/review/signin")
    assert page.status_code == 200
    no_token = fresh.post("/review/signin", data={"name": "alice", "password": PASSWORD})
    assert no_token.status_code == 403
    assert fresh.get("/review").status_code == 303


def test_failed_sign_ins_are_throttled(review: Review) -> None:
    add_user(review.service, "alice")
    client = review.client()
    for _ in range(5):
        assert sign_in(client, "alice", "wrong password") == 401
    assert sign_in(client, "alice") == 429  # the right password too, until the window has passed
    assert client.get("/review").status_code == 303


def test_session_cookies_are_httponly_samesite_and_secure_behind_https(review: Review) -> None:
    add_user(review.service, "alice")
    plain = review.client().get("/review/signin").headers["set-cookie"].lower()
    assert "httponly" in plain and "samesite=lax" in plain and "secure" not in plain
    https = ReviewService(review.rt, keys=Keys(SECRET), public_url="https://bridge.example.com")
    client = TestClient(review_app(https), base_url="https://testserver", follow_redirects=False)
    secure = client.get("/review/signin").headers["set-cookie"].lower()
    assert "httponly" in secure and "samesite=lax" in secure and "secure" in secure


def test_sign_in_never_sends_you_to_another_site(review: Review) -> None:
    add_user(review.service, "alice")
    for target in ("//evil.example/review", "https://evil.example/", "/reviewer\\..\\x"):
        client = review.client()  # signing in starts a new session: a fresh one (and token) for each try
        csrf = csrf_of(client.get("/review/signin").text)
        answer = client.post(
            "/review/signin", data={"csrf": csrf, "name": "alice", "password": PASSWORD, "next": target}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/review"
