"""`python -m bridge_sandbox [--seed FILE.json] [--port N] [--latency-ms N] [--faults SPEC]`.

The same as `bridge sandbox serve`, for when the CLI is not at hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge_sandbox.core import SandboxError
from bridge_sandbox.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bridge_sandbox", description="Run the provider emulators.")
    parser.add_argument("--seed", help="seed JSON file (default: the shipped book)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay added to every response")
    parser.add_argument("--faults", help="JSON text or a JSON file, as POST /_sandbox/faults")
    parser.add_argument("--no-rate-limits", action="store_true", help="turn the providers' rate limits off")
    args = parser.parse_args(argv)
    try:
        serve(
            args.seed,
            args.port,
            args.latency_ms,
            args.faults,
            rate_limits=not args.no_rate_limits,
            echo=lambda line: print(line, flush=True),
        )
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
