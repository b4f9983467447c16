"""Sum the per-trial tallies the torture tests append to $TORTURE_TALLY (`make torture` prints this).

Exit status 1 when any duplicate fee, lost fee or duplicate e-mail was counted.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


def _rows(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def main(path: str) -> int:
    kill: dict[str, Counter[str]] = defaultdict(Counter)
    modes: dict[str, Counter[str]] = defaultdict(Counter)
    faults: dict[str, Counter[str]] = defaultdict(Counter)
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for row in _rows(path):
        provider = row.pop("provider")
        if row.pop("suite") == "kill9":
            modes[provider][row.pop("mode")] += 1
            kill[provider].update({k: v for k, v in row.items() if isinstance(v, int)})
        else:
            kinds[provider].update(row.pop("fault_kinds"))
            row.pop("seed")
            faults[provider].update({k: v for k, v in row.items() if isinstance(v, int)})
    bad = 0
    print("kill -9 (SIGKILL mid-sync, then sync until it converges)")
    for provider, t in sorted(kill.items()):
        how = ", ".join(f"{m} {n}" for m, n in sorted(modes[provider].items()))
        print(
            f"  {provider:<11} trials {t['trials']:>4} ({how}),"
            f" kills {t['kills']}; fees {t['fees']}: duplicates {t['duplicate_fees']}, lost {t['lost_fees']};"
            f" reminders {t['reminders']}: duplicate e-mails {t['duplicate_emails']}, in doubt {t['in_doubt']}"
        )
        bad += t["duplicate_fees"] + t["lost_fees"] + t["duplicate_emails"]
    print("faults (30% of API calls faulted; end state compared with a fault-free sync)")
    for provider, t in sorted(faults.items()):
        listed = ", ".join(f"{k} {n}" for k, n in sorted(kinds[provider].items(), key=lambda kv: (-kv[1], kv[0])))
        print(
            f"  {provider:<11} syncs {t['trials']:>3}, API calls {t['api_calls']}, faults injected {t['faults']}"
            f" ({listed}); all ended as the fault-free sync; in doubt {t['in_doubt']}"
        )
    print("duplicates and losses:", "none" if bad == 0 else bad)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
