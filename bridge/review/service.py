"""Plans waiting for a person, and what a person decides about them.

    reviews = ReviewService(rt, notifier=notifier, public_url="https://bridge.example.com", keys=keys)
    plan_id = reviews.submit(rt, "acme-qbo", plan)                  # the server's ReviewSink: stored, team told
    result = reviews.approve(plan_id, "alice", keys={...}, forgive={...})
    reviews.reject(plan_id, "alice", "client called: paying Friday")

Approving applies through the ledger exactly as `bridge apply` does (`bridge.sync.apply_plan`): the connections
are pulled again and the contracts re-evaluated, and an action the books no longer call for is dropped as
`plan_mismatch`, never applied as written. Rejected and forgiven actions are recorded in the ledger as dropped
with who and why; approved ones get a ledger event naming who approved them. A forgiven late fee is left out of
every later plan sent for review.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from bridge.errors import ConfigError, ConflictError
from bridge.notify import formats
from bridge.notify.channels import Channels, EmailSender, Notifier
from bridge.plan import Action, ActionKind, Plan, Skip, SkipCode
from bridge.review.auth import Keys
from bridge.store.review import ReviewPlan, Reviews
from bridge.sync import Runtime, apply_plan

log = logging.getLogger("bridge.review")


def for_runtime(rt: Runtime, public_url: str, *, email: EmailSender | None = None) -> ReviewService:
    """The review service of a server: keys derived from the bridge's secret key, notices to `[notify]`."""
    secret = rt.env.get(rt.settings.secrets.key_env, "")
    if not secret:
        raise ConfigError(
            f"${rt.settings.secrets.key_env} is not set: the review pages sign their cookies and links with it"
        )
    if email is None and rt.settings.smtp is not None:
        email = smtp_sender(rt)
    notifier = Notifier(Channels(rt.settings.notify, rt.env, email=email))
    return ReviewService(rt, keys=Keys(secret), public_url=public_url, notifier=notifier)


def smtp_sender(rt: Runtime) -> EmailSender:
    """Sends the e-mail notices through `[smtp]` (the same transport, retries and TLS rules as reminders)."""
    from email.message import EmailMessage
    from email.utils import make_msgid

    from bridge.smtp import SmtpTransport

    smtp = rt.settings.smtp
    assert smtp is not None
    transport = SmtpTransport(smtp, rt.env)

    def send(to: Sequence[str], subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = smtp.from_
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="bridge.notices")
        if rt.settings.firm is not None and rt.settings.firm.reply_to:
            message["Reply-To"] = rt.settings.firm.reply_to
        message.set_content(text)
        transport.send(message)

    return send


class ReviewService:
    """The review's one home for storing, approving and rejecting plans (the pages and the server call it)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        keys: Keys,
        public_url: str,
        notifier: Notifier | None = None,
        as_of: date | None = None,
    ) -> None:
        self.rt = rt
        self.reviews = Reviews(rt.store)
        self.keys = keys
        self.public_url = public_url.rstrip("/")
        self.notifier = notifier
        self.as_of = as_of  # evaluate approvals as of this day (emulators only; None: today)

    def close(self) -> None:
        """Let the notices in flight go out, then stop the notifier's thread."""
        if self.notifier is not None:
            self.notifier.close()

    # -- links --------------------------------------------------------------------------------------

    def link(self, plan_id: str, channel: str) -> str:
        """A one-time link to a plan's page, for one channel."""
        return f"{self.public_url}/review/link/{self.keys.make_link_token(plan_id, channel)}"

    def page(self, plan_id: str | None = None) -> str:
        """The page's address (sign-in needed)."""
        return f"{self.public_url}/review" + (f"/{plan_id}" if plan_id else "")

    # -- the server's sinks ---------------------------------------------------------------------------

    def submit(self, rt: Runtime, connection: str, plan: Plan) -> str:
        """Store `plan` as the connection's pending review (replacing an older one) and tell the team."""
        plan = self._without_forgiven(plan)
        plan_id, replaced = self.reviews.submit(connection, plan)
        if replaced:
            log.info("%s: plan %s replaces the pending plan %s", connection, plan_id, replaced)
        log.info("%s: plan %s of %d action(s) waits for review", connection, plan_id, len(plan.actions))
        notice = formats.for_plan(connection, plan, self.page(plan_id), plan_id, replaced=replaced)
        self._notify(notice)
        return plan_id

    def notice(self, kind: str, connection: str, text: str) -> None:
        """A failure, a reminder in doubt, a link to renew: to every channel that wants it (never raises).

        A `review` notice is left out here: `submit` has already sent it, with the counts and the button."""
        if kind == "review":
            return
        self._notify(formats.Notice(kind, connection, self.page(), detail=text))

    def _notify(self, notice: formats.Notice) -> None:
        if self.notifier is None or not self.notifier.channels.wants(notice.kind):
            return
        if notice.plan_id is not None:
            plan_id = notice.plan_id
            self.notifier.notify(notice, link_for=lambda channel: self.link(plan_id, channel))
        else:
            self.notifier.notify(notice)

    def _without_forgiven(self, plan: Plan) -> Plan:
        forgiven = {d.key for d in self.reviews.decisions(decision="forgiven")}
        kept = [a for a in plan.actions if a.key not in forgiven]
        if len(kept) == len(plan.actions):
            return plan
        skips = [
            Skip(a.connection, a.invoice.number, SkipCode.FORGIVEN, "forgiven by a reviewer", a.clause, a.key)
            for a in plan.actions
            if a.key in forgiven
        ]
        return Plan.build(plan.as_of, kept, [*plan.skipped, *skips], plan.warnings, plan.errors)

    # -- decisions ------------------------------------------------------------------------------------

    def approve(
        self,
        plan_id: str,
        by: str,
        *,
        keys: Collection[str] | None = None,
        forgive: Collection[str] = (),
        note: str = "",
    ) -> dict[str, Any]:
        """Approve all actions (`keys` None) or those named, forgive the named late fees, and apply.

        Returns the result (also stored with the plan): applied, dropped (with the reason), failed, in doubt,
        left out (not selected) and forgiven, each a list of {key, ...}.
        """
        stored = self._pending(plan_id)
        actions = {a.key: a for a in stored.plan.actions}
        unknown = sorted((set(keys or ()) | set(forgive)) - set(actions))
        if unknown:
            raise ValueError(f"not in plan {plan_id}: {', '.join(unknown)}")
        fees = {k for k in forgive if actions[k].kind is ActionKind.LATE_FEE}
        chosen = [a for a in stored.plan.actions if (keys is None or a.key in keys) and a.key not in fees]
        left = [a for a in stored.plan.actions if a.key not in fees and a not in chosen]
        what = "all" if keys is None and not fees else f"{len(chosen)} of {len(actions)} action(s)"
        self.reviews.claim(plan_id, "approved", by, note or f"approved {what}")
        result = self._apply(stored, chosen)
        for action in (actions[k] for k in sorted(fees)):
            self._drop(action, f"forgiven by {by}" + (f": {note}" if note else ""), result, "forgiven")
        result["left"] = [{"key": a.key, "reason": "not selected"} for a in left]
        decisions = [(a.key, "approved", note) for a in chosen]
        decisions += [(k, "forgiven", note) for k in sorted(fees)] + [(a.key, "left", "") for a in left]
        ledger = [(a.key, a.connection, f"approved by {by} in review {plan_id}") for a in chosen]
        self.reviews.record(plan_id, decisions, by, ledger=ledger, result=result)
        self._after(stored, result)
        return result

    def reject(self, plan_id: str, by: str, reason: str) -> dict[str, Any]:
        """Reject a whole plan with a reason: nothing is applied; each action is recorded dropped in the ledger."""
        if not reason.strip():
            raise ValueError("a rejection needs a reason")
        stored = self._pending(plan_id)
        self.reviews.claim(plan_id, "rejected", by, reason)
        result: dict[str, Any] = {"applied": [], "dropped": [], "failed": [], "in_doubt": [], "rejected": []}
        for action in stored.plan.actions:
            self._drop(action, f"rejected by {by}: {reason}", result, "rejected")
        decisions = [(None, "rejected", reason), *((a.key, "rejected", reason) for a in stored.plan.actions)]
        self.reviews.record(plan_id, decisions, by, result=result)
        return result

    def _pending(self, plan_id: str) -> ReviewPlan:
        stored = self.reviews.get(plan_id)
        if stored is None:
            raise KeyError(plan_id)
        if stored.state != "pending":
            raise ConflictError(f"plan {plan_id} is {stored.state}, no longer pending: nothing was done")
        return stored

    def _apply(self, stored: ReviewPlan, chosen: list[Action]) -> dict[str, Any]:
        result: dict[str, Any] = {"applied": [], "dropped": [], "failed": [], "in_doubt": []}
        if not chosen:
            return result
        plan = Plan.build(stored.plan.as_of, chosen)
        try:
            outcome = apply_plan(self.rt, plan, as_of=self.as_of)
        except Exception as exc:  # recorded with the plan: the page says what happened, nothing half-claimed
            log.exception("%s: applying approved plan %s failed", stored.connection, stored.id)
            result["failed"] = [{"key": a.key, "error": f"{type(exc).__name__}: {exc}"} for a in chosen]
            return result
        report = outcome.report
        if report is None:
            return result
        result["applied"] = [dict(x) for x in report.applied]
        result["dropped"] = [{"key": d["key"], "reason": d["reason"]} for d in report.dropped]
        result["failed"] = [{"key": f["key"], "error": f.get("error", "")} for f in report.failed]
        result["in_doubt"] = [{"key": d["key"], "error": d.get("error", "")} for d in report.in_doubt]
        for part in ("deferred", "not_started"):
            result["failed"] += [
                {"key": d["key"], "error": d.get("reason") or "left for the next run"} for d in getattr(report, part)
            ]
        return result

    def _drop(self, action: Action, reason: str, result: dict[str, Any], part: str) -> None:
        try:
            self.rt.store.ledger_drop(action, reason)
        except ConflictError as exc:  # already carried out elsewhere: say so, change nothing
            result.setdefault(part, []).append({"key": action.key, "reason": f"{reason} (not recorded: {exc})"})
            return
        result.setdefault(part, []).append({"key": action.key, "reason": reason})

    def _after(self, stored: ReviewPlan, result: dict[str, Any]) -> None:
        notice = formats.for_result(stored.connection, result, self.page(stored.id), stored.id)
        if notice is not None:
            self._notify(dataclasses.replace(notice, plan_id=None))
