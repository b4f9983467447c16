"""The linking flow's own calls are bounded in wall-clock time, like every connector call."""

from __future__ import annotations

import time

import pytest

from bridge.auth import link
from bridge.errors import AuthError
from tests.security.conftest import Hostile, drip, drip_headers


@pytest.mark.parametrize("reply", [drip, drip_headers], ids=["body", "headers"])
def test_a_dripping_consent_page_or_token_endpoint_ends_the_link_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, reply: object
) -> None:
    monkeypatch.setattr(link, "LINK_TIMEOUT", 1.0)
    with Hostile(lambda hit: reply(every=0.5)) as hostile:  # type: ignore[operator]
        started = time.monotonic()
        with pytest.raises(AuthError, match=r"could not be reached at .* within 1 s"):
            link.follow_redirect(hostile.base_url + "/identity/connect/authorize?state=x")
        took = time.monotonic() - started
    assert took < 10  # a guard only: requests' per-read timeout never trips on a drip
    print(f"linking: a dripping {reply.__name__} cut after {took:.2f} s")  # type: ignore[attr-defined]
