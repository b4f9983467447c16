"""Regenerate (or check) the shipped default seed, sandbox/bridge_sandbox/seeds/default.json.

python -m bridge_sandbox.make_seed            # rewrite the file from `build_default_book()`
python -m bridge_sandbox.make_seed --check    # exit 1 when the file differs from the generator
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge_sandbox.books import build_default_book
from bridge_sandbox.core import dumps, loads

DEFAULT_SEED_PATH = Path(__file__).parent / "seeds" / "default.json"


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate (or `--check`) the shipped default seed."""
    parser = argparse.ArgumentParser(
        prog="python -m bridge_sandbox.make_seed", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_SEED_PATH)
    parser.add_argument("--check", action="store_true", help="fail if the file differs from the generator")
    args = parser.parse_args(argv)
    text = dumps(build_default_book(), indent=1) + "\n"
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if loads(current or "null") != loads(text):
            print(f"{args.out} is out of date: run python -m bridge_sandbox.make_seed", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
