"""Kill -9 torture: `bridge sync` on one provider killed with SIGKILL, then run until it converges.

Each trial links one connection (QuickBooks, Xero or FreshBooks) to a fresh copy of the sandbox's
default books, runs `bridge sync` in its own process and kills it, then runs plain `bridge sync` until
a run plans nothing. Then, against what the provider holds: every late fee of the plan is there exactly
once (no duplicate, no loss), no client got a second e-mail for one reminder, and every reminder whose
outcome could not be known is `in_doubt` in the ledger (reported, never sent again).

Three ways to die, in turn:
- `ledger-pending`: at the N-th action, after the ledger says pending and before the provider is called;
- `provider-answered`: at the N-th action, after the provider did it and before the ledger heard;
- `random`: SIGKILL from outside after a random share of a whole sync's duration (start-up, pull,
  planning, writes, reconciliation: wherever it lands).

CI runs TORTURE_TRIALS trials per provider (default 30); `make torture` runs 200 per provider.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge_sandbox import Sandbox
from tests.torture.harness import PROVIDERS, Trial, exactly_once, record_tally

TRIALS = int(os.environ.get("TORTURE_TRIALS", "30"))
MODES = ("ledger-pending", "provider-answered", "random")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sb:
        yield sb


_BASELINE: dict[str, tuple[list[dict[str, Any]], float]] = {}


def baseline(sandbox: Sandbox, folder: Path, provider: str) -> tuple[list[dict[str, Any]], float]:
    """The provider's plan on fresh books, and how long an uninterrupted sync of it takes (once per worker)."""
    if provider not in _BASELINE:
        trial = Trial(sandbox, folder, (provider,))
        dry = trial.run("sync", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        started = time.monotonic()
        clean = trial.run("sync")
        assert clean.returncode in (0, 3), clean.stderr
        _BASELINE[provider] = (json.loads(dry.stdout)["actions"], time.monotonic() - started)
    return _BASELINE[provider]


def _trial(sandbox: Sandbox, folder: Path, provider: str, mode: str, share: float) -> Counter[str]:
    planned, duration = baseline(sandbox, folder / "baseline", provider)
    trial = Trial(sandbox, folder, (provider,))
    if mode == "random":
        crashed = trial.run("sync", kill_after=share * duration)
    else:
        crashed = trial.run("sync", kill_at=f"{mode}:{1 + int(share * len(planned))}")
    assert crashed.returncode in (0, 3, -9), crashed.stderr
    trial.converge()
    tally = exactly_once(sandbox, planned, trial.ledger())
    tally.update(trials=1, kills=int(crashed.returncode == -9))
    return tally


def _cases() -> list[Any]:
    rng = random.Random(20261020)
    return [
        pytest.param(provider, MODES[i % len(MODES)], rng.random(), id=f"{provider}-{MODES[i % len(MODES)]}-{i}")
        for provider in PROVIDERS
        for i in range(TRIALS)
    ]


@pytest.mark.parametrize(("provider", "mode", "share"), _cases())
def test_a_sync_killed_with_sigkill_converges_to_exactly_once(
    sandbox: Sandbox, tmp_path: Path, provider: str, mode: str, share: float
) -> None:
    tally = _trial(sandbox, tmp_path, provider, mode, share)
    record_tally({"suite": "kill9", "provider": provider, "mode": mode, **tally})
    assert tally["duplicate_fees"] == 0 and tally["lost_fees"] == 0 and tally["duplicate_emails"] == 0, tally
