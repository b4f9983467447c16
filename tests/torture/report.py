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
    smtp_kill: dict[str, Counter[str]] = defaultdict(Counter)
    smtp_faults: dict[str, Counter[str]] = defaultdict(Counter)
    forgive: dict[str, Counter[str]] = defaultdict(Counter)
    for row in _rows(path):
        provider = row.pop("provider")
        suite = row.pop("suite")
        if suite in ("smtp_kill9", "smtp_faults"):
            row.pop("mode", None)
            (smtp_kill if suite == "smtp_kill9" else smtp_faults)[provider].update(
                {k: v for k, v in row.items() if isinstance(v, int)}
            )
            continue
        if suite == "forgive_kill9":
            modes_forgive = row.pop("mode")
            forgive[provider].update({k: v for k, v in row.items() if isinstance(v, int)}, **{modes_forgive: 1})
            continue
        if suite == "kill9":
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
    if smtp_kill or smtp_faults:
        print("SMTP channel (reminders from the firm's mailbox; a Message-ID per action)")
    for provider, t in sorted(smtp_kill.items()):
        print(
            f"  kill -9     {provider:<11} trials {t['trials']:>4}, kills {t['kills']}; SMTP reminders"
            f" {t['smtp_reminders']}: duplicate Message-IDs {t['duplicate_message_ids']}, in doubt {t['smtp_in_doubt']}"
            f" ({t['smtp_in_doubt_not_arrived']} of them never arrived); fees duplicated {t['duplicate_fees']},"
            f" lost {t['lost_fees']}"
        )
        bad += t["duplicate_message_ids"] + t["duplicate_fees"] + t["lost_fees"]
    for provider, t in sorted(smtp_faults.items()):
        print(
            f"  30% faults  {provider:<11} syncs {t['trials']:>4}; SMTP reminders {t['smtp_reminders']}: applied"
            f" {t['applied']}, refused (554 or retries spent) {t['failed']}, in doubt {t['in_doubt']};"
            f" duplicate Message-IDs {t['duplicate_message_ids']}"
        )
        bad += t["duplicate_message_ids"]
    if forgive:
        print("kill -9 of bridge forgive (then forgive again and sync until it converges)")
    for provider, t in sorted(forgive.items()):
        how = ", ".join(f"{m} {t[m]}" for m in ("ledger-pending", "provider-answered", "random") if t[m])
        print(
            f"  {provider:<11} trials {t['trials']:>4} ({how}), kills {t['kills']}; fees not taken back"
            f" {t['fee_left']}, other lines changed {t['other_lines_changed']},"
            f" forgive attempts {t['forgive_attempts']}"
        )
        bad += t["fee_left"] + t["other_lines_changed"]
    print("duplicates and losses:", "none" if bad == 0 else bad)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
