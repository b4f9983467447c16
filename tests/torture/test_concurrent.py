"""Two `bridge sync` processes on the same connections at once never apply an action twice.

Both start together (as `python -m bridge`); the per-connection run lock makes the second wait for the
first and then plan from what the first left. A third run afterwards plans nothing, and the providers
hold every fee exactly once and every reminder's e-mail at most once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bridge_sandbox import Sandbox
from tests.torture.harness import Trial, duplicate_emails, occurrences
from tests.torture.test_kill9 import sandbox  # noqa: F401 (the fixture)


def test_two_syncs_at_once_apply_each_action_exactly_once(sandbox: Sandbox, tmp_path: Path) -> None:  # noqa: F811
    trial = Trial(sandbox, tmp_path)
    first, second = trial.start("sync"), trial.start("sync")
    outcomes = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode in (0, 3) and second.returncode in (0, 3), outcomes
    plans = [json.loads(out) for out, _ in outcomes]
    applied = Counter(a["key"] for plan in plans for a in plan["applied"])
    assert applied and max(applied.values()) == 1  # no key applied by both
    third = trial.run_subprocess("sync")
    assert third.returncode in (0, 3), third.stderr
    assert json.loads(third.stdout)["actions"] == []
    state = sandbox.state()
    planned = {a["key"]: a for plan in plans for a in plan["actions"]}
    for action in planned.values():
        if action["kind"] == "late_fee":
            assert occurrences(state[action["provider"]], action["description"]) == 1, action["key"]
    assert duplicate_emails(sandbox) == 0
