"""The kill -9 and fault torture on the SMTP channel: reminders sent from the firm's mailbox (the sandbox's SMTP
server), never twice.

Kill -9: each trial links one connection to fresh books whose contracts send reminders by SMTP, runs
`bridge sync` in its own process and kills it, then runs `bridge sync` until a run plans nothing. Four ways
to die, in turn: after the ledger says pending and before the message is handed over (`ledger-pending`),
after the whole message was sent and before the server's answer was read (`smtp-data-sent`), after the
server's 250 and before the ledger heard (`provider-answered`), or from outside at a random moment of the
sync (`random`). Then: no Message-ID arrived twice, every planned reminder is `applied` or `in_doubt` (never
sent again), every `applied` one arrived, and every late fee is in the books exactly once.

Faults: 30% of the SMTP server's answers to the end of DATA are faults (421, 450, 554, or the message
accepted and the line dropped before the answer). The sync ends in one run; no Message-ID arrives twice;
the 4xx ones were retried; a refused one (554) fails with the server's words; a lost answer is `in_doubt`.

CI runs TORTURE_SMTP_TRIALS kill trials (default 6) and TORTURE_SMTP_FAULT_RUNS faulted syncs (default 1);
`make torture` runs 120 and 10.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge_sandbox import Sandbox
from tests.torture.harness import PROVIDERS, Trial, by_smtp, exactly_once, record_tally

TRIALS = int(os.environ.get("TORTURE_SMTP_TRIALS", "6"))
FAULT_RUNS = int(os.environ.get("TORTURE_SMTP_FAULT_RUNS", "1"))
MODES = ("ledger-pending", "smtp-data-sent", "provider-answered", "random")
SMTP_RATES = {"421": 0.06, "450": 0.12, "554": 0.04, "drop_after_data": 0.08}
assert abs(sum(SMTP_RATES.values()) - 0.30) < 1e-9


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False, smtp_port=0) as sb:
        yield sb


_BASELINE: dict[str, tuple[list[dict[str, Any]], int]] = {}


def baseline(sandbox: Sandbox, folder: Path, provider: str) -> tuple[list[dict[str, Any]], int]:
    """The provider's plan on fresh books, and how many messages an uninterrupted sync sends (once per worker)."""
    if provider not in _BASELINE:
        trial = by_smtp(Trial(sandbox, folder, (provider,)))
        dry = trial.run("sync", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        clean = trial.run("sync")
        assert clean.returncode == 0, clean.stderr
        planned = json.loads(dry.stdout)["actions"]
        _BASELINE[provider] = (planned, sum(1 for a in planned if a.get("channel") == "smtp"))
    return _BASELINE[provider]


def smtp_messages(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [m for m in sandbox.outbox() if m.get("channel") == "smtp"]


def _check(sandbox: Sandbox, planned: list[dict[str, Any]], trial: Trial) -> Counter[str]:
    """Fees exactly once; per Message-ID at most one message; every applied SMTP reminder arrived."""
    from bridge.mail import message_id

    ledger = trial.ledger()
    tally = exactly_once(sandbox, planned, ledger)
    arrived = Counter(str(m["message_id"]) for m in smtp_messages(sandbox))
    tally["duplicate_message_ids"] += sum(n - 1 for n in arrived.values() if n > 1)
    for action in planned:
        if action.get("channel") != "smtp":
            continue
        tally["smtp_reminders"] += 1
        entry = ledger[action["key"]]
        sent = arrived[message_id(action["key"], "accounts@mapleandfinch.example")]
        if entry.state == "applied":
            assert sent == 1, (action["key"], entry)
        tally["smtp_in_doubt"] += entry.state == "in_doubt"
        tally["smtp_in_doubt_not_arrived"] += entry.state == "in_doubt" and sent == 0
    return tally


def _cases() -> list[Any]:
    rng = random.Random(20261207)
    return [
        pytest.param(PROVIDERS[i % 3], MODES[i % len(MODES)], rng.random(), id=f"{PROVIDERS[i % 3]}-{MODES[i % 4]}-{i}")
        for i in range(TRIALS)
    ]


@pytest.mark.parametrize(("provider", "mode", "share"), _cases())
def test_an_smtp_sync_killed_with_sigkill_never_sends_a_message_twice(
    sandbox: Sandbox, tmp_path: Path, provider: str, mode: str, share: float
) -> None:
    planned, messages = baseline(sandbox, tmp_path / "baseline", provider)
    trial = by_smtp(Trial(sandbox, tmp_path, (provider,)))
    if mode == "random":
        crashed = trial.run("sync", kill_after=0.2 + share * 3.0)
    else:
        crashed = trial.run("sync", kill_at=f"{mode}:{1 + int(share * messages)}")
    assert crashed.returncode in (0, 3, -9), crashed.stderr
    trial.converge()
    tally = _check(sandbox, planned, trial)
    tally.update(trials=1, kills=int(crashed.returncode == -9))
    record_tally({"suite": "smtp_kill9", "provider": provider, "mode": mode, **tally})
    assert tally["duplicate_message_ids"] == 0 and tally["duplicate_fees"] == 0 and tally["lost_fees"] == 0, tally


@pytest.mark.parametrize("seed", range(1, FAULT_RUNS + 1))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_smtp_sync_under_30_percent_smtp_faults_sends_each_message_at_most_once(
    sandbox: Sandbox, tmp_path: Path, provider: str, seed: int
) -> None:
    from bridge.mail import message_id

    planned, _ = baseline(sandbox, tmp_path / "baseline", provider)
    trial = by_smtp(Trial(sandbox, tmp_path / "faulted", (provider,)))
    sandbox.set_faults({"smtp": {**SMTP_RATES, "seed": seed}})
    try:
        run = trial.run("sync")
    finally:
        sandbox.set_faults({"smtp": {}})
    assert run.returncode in (0, 3), run.stderr
    plan = json.loads(run.stdout)
    ledger = trial.ledger()
    by_smtp_keys = [a["key"] for a in planned if a.get("channel") == "smtp"]
    states = Counter(ledger[k].state for k in by_smtp_keys)
    assert set(states) <= {"applied", "in_doubt", "failed"}, states
    for failure in plan["failed"]:
        if failure["key"] in by_smtp_keys and ledger[failure["key"]].state == "failed":
            assert "554 5.7.1" in failure["error"] or "421 4.3.2" in failure["error"] or "450 4.2.1" in failure["error"]
    in_doubt = sorted(k for k in by_smtp_keys if ledger[k].state == "in_doubt")
    assert sorted(d["key"] for d in plan["failed"] if d["key"] in in_doubt) == in_doubt  # each one reported
    arrived = Counter(str(m["message_id"]) for m in smtp_messages(sandbox))
    duplicates = sum(n - 1 for n in arrived.values() if n > 1)
    assert duplicates == 0, arrived
    assert len(arrived) == states["applied"] + sum(  # every applied one arrived; in doubt ones may have
        1 for k in in_doubt if arrived[message_id(k, "accounts@mapleandfinch.example")]
    )
    record_tally(
        {
            "suite": "smtp_faults",
            "provider": provider,
            "trials": 1,
            "smtp_reminders": len(by_smtp_keys),
            "applied": states["applied"],
            "failed": states["failed"],
            "in_doubt": states["in_doubt"],
            "duplicate_message_ids": duplicates,
        }
    )
