"""Fault torture: a sync under injected faults on 30% of API calls ends where a fault-free sync ends.

For each provider, the same fresh books are synced twice: once with no faults, once with the sandbox
answering 30% of API calls with a fault (429 with and without Retry-After, 500, 503, a stalled call the
client times out on, a dropped connection, an expired access token, and the request done but its answer
lost), plus stale SyncTokens on 30% of QuickBooks writes. The faulted sync must finish in one run,
within the retry budget, and say what it retried; afterwards the provider's books are the same as after
the fault-free sync (every fee and due date, compared field by field, ids and timestamps aside).

E-mails are the one allowed difference, and only in one direction: a send whose answer never came
(a 5xx, a timeout, a lost answer) is never repeated, so it is `in_doubt` in the ledger and listed as
such; every e-mail the fault-free run sent was sent by the faulted run or is in doubt, and the faulted
run sent nothing more.

CI runs TORTURE_FAULT_RUNS faulted syncs per provider (default 1); `make torture` runs 10.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge_sandbox import Sandbox
from tests.torture.harness import PROVIDERS, Trial, record_tally

RUNS = int(os.environ.get("TORTURE_FAULT_RUNS", "1"))
RATES = {
    "429": 0.05,
    "429_no_retry_after": 0.03,
    "500": 0.05,
    "503": 0.04,
    "timeout": 0.03,
    "drop": 0.04,
    "expired_token": 0.03,
    "lost_response": 0.03,
}
assert abs(sum(RATES.values()) - 0.30) < 1e-9
FLAGS = {"quickbooks": {"stale_synctoken": 0.30}}
# The stalled call hangs longer than the client waits (timeout_seconds = 1 in the trial's config).
BEHAVIOUR = {"retry_after": 1, "timeout_seconds": 3}
# What changes from run to run whatever happens: ids the provider makes up, timestamps, versions,
# and the e-mail marks (e-mails are compared through the outbox).
VOLATILE = frozenset(
    {
        "Id",
        "id",
        "InvoiceID",
        "LineItemID",
        "invoiceid",
        "lineid",
        "logid",
        "SyncToken",
        "MetaData",
        "UpdatedDateUTC",
        "updated",
        "created_at",
        "DeliveryInfo",
        "EmailStatus",
        "SentToContact",
    }
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sb:
        yield sb


def canonical(node: Any) -> Any:
    """The books without volatile fields, with lists in a stable order."""
    if isinstance(node, dict):
        return {k: canonical(v) for k, v in node.items() if k not in VOLATILE}
    if isinstance(node, list):
        return sorted((canonical(v) for v in node), key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return node


@dataclass
class EndState:
    books: Any
    ledger: dict[str, str]
    emails: Counter[tuple[str, str]]


def end_state(sandbox: Sandbox, trial: Trial, provider: str) -> EndState:
    return EndState(
        canonical(sandbox.state()[provider]),
        {key: entry.state for key, entry in trial.ledger().items()},
        Counter((m["invoice_id"], m["subject"]) for m in sandbox.outbox()),
    )


_CLEAN: dict[str, EndState] = {}


def clean_end_state(sandbox: Sandbox, folder: Path, provider: str) -> EndState:
    """Where a fault-free sync of the provider's fresh books ends (once per worker)."""
    if provider not in _CLEAN:
        trial = Trial(sandbox, folder, (provider,), timeout_seconds=1)
        run = trial.run("sync")
        assert run.returncode == 0, run.stderr
        _CLEAN[provider] = end_state(sandbox, trial, provider)
    return _CLEAN[provider]


def _differences(clean: Any, faulted: Any, path: str = "") -> list[str]:
    if isinstance(clean, dict) and isinstance(faulted, dict):
        out = []
        for key in sorted(set(clean) | set(faulted)):
            out += _differences(clean.get(key), faulted.get(key), f"{path}.{key}")
        return out
    if clean == faulted:
        return []
    if isinstance(clean, list) and isinstance(faulted, list) and len(clean) == len(faulted):
        pairs = enumerate(zip(clean, faulted, strict=True))
        return [d for i, (a, b) in pairs for d in _differences(a, b, f"{path}[{i}]")]
    return [f"{path}: {json.dumps(clean, default=str)[:300]} != {json.dumps(faulted, default=str)[:300]}"]


@pytest.mark.parametrize("seed", range(1, RUNS + 1))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_sync_under_injected_faults_ends_where_a_fault_free_sync_ends(
    sandbox: Sandbox, tmp_path: Path, provider: str, seed: int
) -> None:
    clean = clean_end_state(sandbox, tmp_path / "clean", provider)
    trial = Trial(sandbox, tmp_path / "faulted", (provider,), timeout_seconds=1)
    sandbox.set_faults({provider: {**RATES, **FLAGS.get(provider, {}), **BEHAVIOUR, "seed": seed}})
    try:
        run = trial.run("sync")
    finally:
        sandbox.set_faults({provider: {}})
    injected = Counter(str(e["fault"]) for e in sandbox.requests() if e.get("fault"))
    # A flag is drawn on every call but only bites a write, which is then refused (400).
    injected.update(f for e in sandbox.requests() if e["status"] == 400 for f in e.get("flags", ()))  # type: ignore[union-attr]
    api_calls = sum(1 for e in sandbox.requests() if e["provider"] == provider and e["tenant"] is not None)

    plan = json.loads(run.stdout)
    in_doubt = [f["key"] for f in plan["failed"] if f["error"].startswith("outcome unknown")]
    failed = [f for f in plan["failed"] if f["key"] not in in_doubt]
    assert not failed, failed  # nothing given up on: every fault was within the retry budget
    assert run.returncode == (3 if in_doubt else 0), run.stderr
    assert "retried" in run.stderr, run.stderr  # the run says what it retried

    faulted = end_state(sandbox, trial, provider)
    assert _differences(clean.books, faulted.books) == []
    assert faulted.ledger.keys() == clean.ledger.keys()
    for key, state in clean.ledger.items():
        allowed = {state, "in_doubt"} if key.startswith("reminder:") else {state}
        assert faulted.ledger[key] in allowed, (key, faulted.ledger[key], state)
    assert sorted(k for k, s in faulted.ledger.items() if s == "in_doubt") == sorted(in_doubt)
    assert max(faulted.emails.values(), default=0) <= 1  # no e-mail twice
    assert faulted.emails.keys() <= clean.emails.keys()  # nothing the fault-free run did not send
    not_sent = clean.emails.keys() - faulted.emails.keys()
    assert len(not_sent) <= len(in_doubt), (not_sent, in_doubt)  # only the in-doubt ones are missing

    record_tally(
        {
            "suite": "faults",
            "provider": provider,
            "seed": seed,
            "trials": 1,
            "api_calls": api_calls,
            "faults": sum(injected.values()),
            "fault_kinds": dict(injected),
            "in_doubt": len(in_doubt),
            "duplicate_fees": 0,
            "lost_fees": 0,
        }
    )
