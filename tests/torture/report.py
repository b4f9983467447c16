"""Sum the per-trial tallies the torture tests append to $TORTURE_TALLY (`make torture` prints this)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def main(path: str) -> int:
    total: Counter[str] = Counter()
    points: Counter[str] = Counter()
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        points[row.pop("point")] += 1
        row.pop("nth")
        total.update(row)
    print(f"trials {total['trials']} (each: QuickBooks, Xero and FreshBooks in one sync), kills {total['kills']}")
    print(f"kill points: {dict(points)}")
    print(f"late fees checked {total['fees']}: duplicates {total['duplicate_fees']}, lost {total['lost_fees']}")
    print(
        f"reminders checked {total['reminders']}: duplicate e-mails {total['duplicate_emails']}, "
        f"in doubt (reported, not re-sent) {total['in_doubt']}"
    )
    return 0 if total["duplicate_fees"] == total["lost_fees"] == total["duplicate_emails"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
