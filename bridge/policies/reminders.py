"""Reminders (docs/policy.md §4): schedule, repeats, business days, catch-up, min gap, max count."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, timedelta

from bridge.policies.calendar import next_business_day
from bridge.policies.history import InvoiceHistory
from bridge.policies.terms import Reminders


@dataclass(frozen=True, slots=True)
class Step:
    """Reminder step `number` (1-based, repeats continue the count): its calendar date and its business-day date."""

    number: int
    raw_date: date
    date: date


def step_raw_date(effective_due: date, terms: Reminders, number: int) -> date:
    """Date of step `number` before any business-day shift."""
    schedule = terms.schedule
    if number <= len(schedule):
        return effective_due + timedelta(days=schedule[number - 1])
    last = effective_due + timedelta(days=schedule[-1])
    return last + timedelta(days=(number - len(schedule)) * terms.repeat_every_days)


def step_at(effective_due: date, terms: Reminders, number: int) -> Step:
    """Step `number` with its (possibly shifted) date."""
    raw = step_raw_date(effective_due, terms, number)
    shifted = next_business_day(raw, terms.holidays) if terms.business_days else raw
    return Step(number, raw, shifted)


def latest_due_step(effective_due: date, terms: Reminders, today: date) -> Step | None:
    """The latest step whose (shifted) date is on or before `today`, or None when no step is due yet.

    Raw dates strictly increase and the business-day shift never moves a date
    backwards, so the answer is the last step whose raw date is <= today, or
    one just before it when the shift pushed that one past today.
    """
    schedule = terms.schedule
    if not schedule:
        return None
    days = (today - effective_due).days
    if days >= schedule[-1] and terms.repeat_every_days > 0:
        number = len(schedule) + (days - schedule[-1]) // terms.repeat_every_days
    else:
        number = bisect_right(schedule, days)
    while number >= 1:
        step = step_at(effective_due, terms, number)
        if step.date <= today:
            return step
        number -= 1
    return None


@dataclass(frozen=True, slots=True)
class ReminderDecision:
    """What the reminder clause calls for today on one invoice.

    `send` is the step to send (None when nothing is sent); `blocked` names why a due
    step is held back (`min_gap` or `max_reminders`); `superseded` are the earlier
    unsent steps the catch-up rule drops for good.
    """

    step: Step
    send: bool
    blocked: str | None
    blocked_detail: str
    superseded: tuple[int, ...]


def decide_reminder(
    effective_due: date, terms: Reminders, history: InvoiceHistory, today: date
) -> ReminderDecision | None:
    """At most one reminder per evaluation: the latest due step, if not sent yet (the catch-up rule).

    Returns None when nothing is due, or the latest due step was sent already (or
    a later one was: steps are never sent out of order).
    """
    step = latest_due_step(effective_due, terms, today)
    return None if step is None else decide_step(step, terms, history, today)


def decide_step(step: Step, terms: Reminders, history: InvoiceHistory, today: date) -> ReminderDecision | None:
    """`decide_reminder` once the latest due step is known (the engine works it out once per due date)."""
    sent = history.reminders
    if not sent:  # the common case: nothing sent yet, so no gap to keep and nothing to count
        if terms.max_reminders <= 0:
            return ReminderDecision(step, False, "max_reminders", "0 of max_reminders = 0 already sent", ())
        return ReminderDecision(step, True, None, "", tuple(range(1, step.number)))
    last_step = history.last_step
    if step.number in sent or step.number <= last_step:
        return None
    if len(sent) >= terms.max_reminders:
        return ReminderDecision(
            step, False, "max_reminders", f"{len(sent)} of max_reminders = {terms.max_reminders} already sent", ()
        )
    superseded = tuple(n for n in range(last_step + 1, step.number) if n not in sent)
    last_on = history.last_reminded_on
    if last_on is not None and (today - last_on).days < terms.min_gap_days:
        gap = (today - last_on).days
        days = f"{gap} day{'s' if gap != 1 else ''}"
        detail = f"last reminder went out {days} ago on {last_on}; min_gap_days = {terms.min_gap_days}"
        return ReminderDecision(step, False, "min_gap", detail, superseded)
    return ReminderDecision(step, True, None, "", superseded)
