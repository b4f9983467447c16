"""`bridge demo --review`: the demo's plan waits for approval on the review pages instead of being applied.

Each connection's part of the plan is stored as pending review and posted to the sandbox's Flock capture; the
review pages listen on a loopback port; a one-time link per plan is printed; the demo waits until every plan
is approved or rejected (Ctrl-C stops waiting), then returns what each decision did.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import date

from bridge.notify.channels import Channels, Notifier
from bridge.notify.settings import NotifySettings
from bridge.plan import Plan
from bridge.review.auth import Keys
from bridge.review.service import ReviewService
from bridge.review.web import review_app
from bridge.store.review import ReviewPlan
from bridge.sync import Runtime

POLL = 0.5  # seconds between two looks at the store while waiting for the decisions
LINGER = 3.0  # seconds the pages stay up after the last decision


def per_connection(plan: Plan) -> dict[str, Plan]:
    """The plan's part of each connection that has actions."""
    names = sorted({a.connection for a in plan.actions})
    return {
        n: Plan.build(
            plan.as_of,
            [a for a in plan.actions if a.connection == n],
            [s for s in plan.skipped if s.connection == n],
            [w for w in plan.warnings if w.connection == n],
            [e for e in plan.errors if e.connection == n],
        )
        for n in names
    }


def review_and_wait(
    rt: Runtime, plan: Plan, sandbox_url: str, secret: str, as_of: date | None, say: Callable[[str], None]
) -> list[ReviewPlan]:
    """Store each connection's plan for review, serve the pages, print the links, wait for every decision."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    public = f"http://127.0.0.1:{port}"
    notify = NotifySettings.model_validate({"flock": {"webhook_url_env": "DEMO_FLOCK"}})
    env = {"DEMO_FLOCK": f"{sandbox_url}/hooks/sendMessage/demo-team"}
    service = ReviewService(
        rt, keys=Keys(secret), public_url=public, notifier=Notifier(Channels(notify, env)), as_of=as_of
    )
    server = uvicorn.Server(
        uvicorn.Config(review_app(service), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="demo-review-pages", daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            time.sleep(0.02)
        ids = [service.submit(rt, name, part) for name, part in per_connection(plan).items()]
        for plan_id in ids:
            stored = service.reviews.get(plan_id)
            assert stored is not None
            say(f"Review {stored.connection}: {service.link(plan_id, 'demo')}")
        say(f"Waiting for approval (the notices are at {sandbox_url}/_sandbox/chat; Ctrl-C stops waiting).")
        while True:
            decided = [service.reviews.get(i) for i in ids]
            if all(p is not None and p.state != "pending" for p in decided):
                time.sleep(LINGER)  # the last reviewer's browser still loads the result page
                return [p for p in decided if p is not None]
            time.sleep(POLL)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        service.close()
