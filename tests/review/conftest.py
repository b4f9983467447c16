"""Review fixtures: a linked QuickBooks sandbox book, its plan stored as pending review, the pages on a Starlette
app of their own (`client`), and reviewers in the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from starlette.testclient import TestClient

from bridge.auth.vault import TokenVault
from bridge.config import load_settings
from bridge.notify.channels import Channels, Notifier
from bridge.notify.settings import NotifySettings
from bridge.review.auth import Keys, hash_password
from bridge.review.service import ReviewService
from bridge.review.web import review_app
from bridge.store import Store
from bridge.sync import Runtime, sync
from tests.cli.books import Book, book, module_sandbox  # noqa: F401  (fixtures)

AS_OF = date(2026, 10, 20)
PASSWORD = "correct horse battery"
SECRET = "review-tests-secret"


@dataclass
class Review:
    book: Book
    rt: Runtime
    service: ReviewService
    plan_id: str

    def client(self) -> TestClient:
        """A browser-less client of the pages (cookies kept between requests)."""
        return TestClient(review_app(self.service), base_url="http://testserver", follow_redirects=False)


def add_user(service: ReviewService, name: str, connections: tuple[str, ...] = ("*",)) -> None:
    service.reviews.add_user(name, hash_password(PASSWORD), connections)


def notify_settings(base_url: str) -> tuple[NotifySettings, dict[str, str]]:
    """Every chat channel pointed at the sandbox's capture endpoints."""
    settings = NotifySettings.model_validate(
        {
            "flock": {"webhook_url_env": "T_FLOCK"},
            "slack": {"webhook_url_env": "T_SLACK"},
            "teams": {"webhook_url_env": "T_TEAMS"},
            "webhook": {"url_env": "T_HOOK", "secret_env": "T_HOOK_SECRET"},
        }
    )
    env = {
        "T_FLOCK": f"{base_url}/hooks/sendMessage/4f1e0c6a-team",
        "T_SLACK": f"{base_url}/services/T000/B000/XXXX",
        "T_TEAMS": f"{base_url}/workflows/abc123/triggers/manual/paths/invoke",
        "T_HOOK": f"{base_url}/_sandbox/chat/webhook",
        "T_HOOK_SECRET": "generic-webhook-secret",
    }
    return settings, env


@pytest.fixture
def review(book: Book) -> Iterator[Review]:  # noqa: F811
    """The book's dry-run plan as of 2026-10-20, pending review, with notices going to the sandbox's chat."""
    settings = load_settings(book.config)
    store = Store.open(settings.store.url)
    rt = Runtime(settings, store, TokenVault(store, Fernet(book.key.encode())), env=dict(os.environ))
    notify, env = notify_settings(book.sandbox.base_url)
    notifier = Notifier(Channels(notify, env, backoff=0.01))
    service = ReviewService(rt, keys=Keys(SECRET), public_url="http://testserver", notifier=notifier, as_of=AS_OF)
    plan = sync(rt, dry_run=True, as_of=AS_OF).plan
    assert plan.actions, "the sandbox's default book should call for actions on 2026-10-20"
    plan_id = service.submit(rt, "acme-qbo", plan)
    try:
        yield Review(book, rt, service, plan_id)
    finally:
        notifier.close()
        store.close()


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> int:
    """Sign in through the form (CSRF token from the form page); the status of the post."""
    page = client.get("/review/signin")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/review/signin", data={"csrf": csrf, "name": name, "password": password, "next": "/review"})
    return answer.status_code


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture
def artifacts() -> Path:
    """Where the browser tests keep their screenshots (gitignored)."""
    path = Path(__file__).resolve().parents[1] / "artifacts"
    path.mkdir(exist_ok=True)
    return path
