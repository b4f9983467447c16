"""Run a singer tap nobody here wrote against the emulators: runs inside the tap's own virtualenv.

    .venv-peers/tap-quickbooks/bin/python bench/peer_runner.py quickbooks BASE_URL -- TAP ARGS...
    .venv-peers/tap-xero/bin/python bench/peer_runner.py xero BASE_URL -- TAP ARGS...

It imports the tap, points its base-URL constants at the emulator (API and OAuth token refresh) and calls
the tap's own `main` with TAP ARGS (`--config`, `--discover`, `--catalog`, `--state`); the tap writes its
Singer messages to stdout as usual. Nothing of the tap is changed but where it sends its requests:

- tap-quickbooks 2.5.0: `client.PROD_ENDPOINT_BASE`, `client.SANDBOX_ENDPOINT_BASE` and
  `client.TOKEN_REFRESH_URL` (module globals, read when the session is built and at each call);
- tap-xero 2.6.0: `client.BASE_URL`; its token endpoint `https://identity.xero.com/connect/token` is a
  literal inside `XeroClient.refresh_credentials`, not a constant, so that one URL is rewritten to the
  emulator's token endpoint where requests sends it.

This file imports nothing of the bridge: it runs under the tap's interpreter, which has only the tap.
"""

from __future__ import annotations

import os
import sys
from typing import Any

XERO_IDENTITY = "https://identity.xero.com/"


def quickbooks(base: str) -> Any:
    """Point tap-quickbooks at `base`; returns its main."""
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the emulator is plain http on loopback
    import tap_quickbooks
    from tap_quickbooks import client

    client.PROD_ENDPOINT_BASE = base
    client.SANDBOX_ENDPOINT_BASE = base
    client.TOKEN_REFRESH_URL = base + "/oauth2/v1/tokens/bearer"
    return tap_quickbooks.main


def xero(base: str) -> Any:
    """Point tap-xero at `base`; returns its main."""
    import requests
    import tap_xero
    from tap_xero import client

    client.BASE_URL = base + "/api.xro/2.0"
    send = requests.Session.request

    def request(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and url.startswith(XERO_IDENTITY):
            url = base + "/" + url[len(XERO_IDENTITY) :]
        return send(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign]
    return tap_xero.main


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[2] != "--" or argv[0] not in ("quickbooks", "xero"):
        print(__doc__, file=sys.stderr)
        return 2
    provider, base = argv[0], argv[1].rstrip("/")
    tap_main = quickbooks(base) if provider == "quickbooks" else xero(base)
    sys.argv = [f"tap-{provider}", *argv[3:]]
    tap_main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
