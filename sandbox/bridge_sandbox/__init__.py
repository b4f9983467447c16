"""Loopback emulators of the providers' APIs, for the demo, tests, benchmarks and fault drills.

    from bridge_sandbox import Sandbox

    with Sandbox() as sandbox:               # the default book, any free port
        print(sandbox.base_url)              # http://127.0.0.1:54321

`serve()` is what `bridge sandbox serve` runs; `generate_book()` builds large books for benchmarks.
"""

from __future__ import annotations

from bridge_sandbox.books import build_default_book, generate_book
from bridge_sandbox.core import RateLimit, SandboxError
from bridge_sandbox.seed import default_seed, read_seed, write_seed
from bridge_sandbox.server import Sandbox, serve
from bridge_sandbox.webhooks import WebhookSettings

__all__ = [
    "RateLimit",
    "Sandbox",
    "SandboxError",
    "WebhookSettings",
    "build_default_book",
    "default_seed",
    "generate_book",
    "read_seed",
    "serve",
    "write_seed",
]
