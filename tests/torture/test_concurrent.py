"""Two `bridge sync` processes on the same connections at once never apply an action twice.

Both pull and plan the same actions; the ledger's pending write is the arbiter (the second
process finds the key taken and skips it). A third run afterwards plans nothing, and the
providers hold every fee exactly once and every reminder's e-mail at most once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bridge.sandbox import Sandbox
from tests.torture.test_kill9 import AS_OF, PROVIDERS, _occurrences, _setup, sandbox  # noqa: F401 (the fixture)


def _start(config: Path, key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BRIDGE_SECRET_KEY": key}
    env.pop("BRIDGE_KILL_AT", None)
    for provider in PROVIDERS:
        env[f"BRIDGE_{provider.upper()}_CLIENT_ID"] = "sandbox-client"
        env[f"BRIDGE_{provider.upper()}_CLIENT_SECRET"] = "sandbox-secret"
    command = [sys.executable, "-m", "bridge", "--config", str(config), "--as-of", AS_OF, "--json", "sync"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_syncs_at_once_apply_each_action_exactly_once(sandbox: Sandbox, tmp_path: Path) -> None:  # noqa: F811
    config, key, _ = _setup(sandbox, tmp_path)
    first, second = _start(config, key), _start(config, key)
    outcomes = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode in (0, 3) and second.returncode in (0, 3), outcomes
    plans = [json.loads(out) for out, _ in outcomes]
    applied = Counter(a["key"] for plan in plans for a in plan["applied"])
    assert applied and max(applied.values()) == 1  # no key applied by both
    third = _start(config, key)
    out, err = third.communicate(timeout=300)
    assert third.returncode in (0, 3), err
    assert json.loads(out)["actions"] == []
    state = sandbox.state()
    planned = {a["key"]: a for plan in plans for a in plan["actions"]}
    for action in planned.values():
        if action["kind"] == "late_fee":
            assert _occurrences(state[action["provider"]], action["description"]) == 1, action["key"]
    sent = Counter((m["provider"], m["invoice_id"]) for m in sandbox.outbox())
    assert not [k for k, n in sent.items() if n > 1]
