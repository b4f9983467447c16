"""Linking a company: the OAuth 2.0 authorization-code flow of each provider, one code path for all uses.

`bridge link`, `bridge demo` and the tests all go through `link()`; only the way the
browser's redirect comes back differs (`follow_redirect` against the sandbox, `paste`
for a headless server, `LoopbackCallback` with a real browser). The `state` is random
and checked on return; Xero also gets PKCE (S256). Tokens go to the vault, never to
output: errors name what failed, not the values.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from bridge import providers
from bridge.auth import xero as xero_auth
from bridge.auth.vault import TokenSet, TokenVault
from bridge.errors import AuthError, ConfigError, TransportError
from bridge.store import Store

CALLBACK_PORT = 8719
LINK_TIMEOUT = 30.0  # seconds one call of the linking flow may take in all
REDIRECT_URI = f"http://127.0.0.1:{CALLBACK_PORT}/callback"
SANDBOX_CLIENT = ("sandbox-client", "sandbox-secret")  # the sandbox accepts any client credentials


@dataclass(frozen=True)
class App:
    """The OAuth app the firm registered with the provider (its credentials and redirect URI)."""

    client_id: str
    client_secret: str
    redirect_uri: str = REDIRECT_URI


@dataclass(frozen=True)
class Tenant:
    """A company the consent gave access to: QuickBooks realm, Xero organisation, FreshBooks account."""

    id: str
    name: str = ""


@dataclass(frozen=True)
class Linked:
    """The outcome of `link`: the connection as it goes into the config."""

    name: str
    provider: str
    tenant: Tenant
    base_url: str | None


class Flow(Protocol):
    """One provider's authorization-code flow."""

    provider: str
    pkce: bool

    def authorize_url(self, app: App, state: str, challenge: str | None) -> str:
        """The consent page."""
        ...

    def exchange(self, app: App, params: Mapping[str, str], verifier: str | None) -> TokenSet:
        """The code from the redirect for tokens."""
        ...

    def tenants(self, tokens: TokenSet, params: Mapping[str, str]) -> list[Tenant]:
        """The companies the consent covers."""
        ...

    def revoke(self, app: App, tokens: TokenSet) -> bool:
        """Revoke the refresh token at the provider; False when the provider has no revocation."""
        ...


def _http(method: str, url: str, what: str, **kwargs: object) -> requests.Response:
    """One call of the linking flow, bounded in wall-clock time like every connector call (connect to last byte)."""
    from bridge.connectors.http import Wire

    try:
        return Wire("the provider", LINK_TIMEOUT, bound="the linking flow's 30 s limit").request(method, url, **kwargs)
    except (TransportError, requests.RequestException) as exc:
        raise AuthError(f"{what} could not be reached at {url}: {exc}") from None


def _check(response: requests.Response, what: str) -> requests.Response:
    if response.status_code >= 400:
        try:
            error = response.json().get("error", "")
        except ValueError:
            error = ""
        raise AuthError(f"{what} was refused (HTTP {response.status_code}{', ' + error if error else ''})")
    return response


class QuickBooksFlow:
    """Intuit's OAuth through intuit-oauth (the sandbox publishes a discovery document like Intuit's)."""

    provider = "quickbooks"
    pkce = False

    def __init__(self, base_url: str | None, environment: str = "production") -> None:
        self.base_url = base_url
        self.environment = environment

    def _client(self, app: App) -> object:
        from bridge.auth.quickbooks import auth_client

        return auth_client(
            self.base_url, app.client_id, app.client_secret, app.redirect_uri, environment=self.environment
        )

    def authorize_url(self, app: App, state: str, challenge: str | None) -> str:
        from intuitlib.enums import Scopes  # type: ignore[import-untyped]

        url: str = self._client(app).get_authorization_url([Scopes.ACCOUNTING], state_token=state)  # type: ignore[attr-defined]
        return url

    def exchange(self, app: App, params: Mapping[str, str], verifier: str | None) -> TokenSet:
        from intuitlib.exceptions import AuthClientError  # type: ignore[import-untyped]

        from bridge.auth.quickbooks import tokens_from

        client = self._client(app)
        try:
            client.get_bearer_token(params["code"], realm_id=params.get("realmId"))  # type: ignore[attr-defined]
        except AuthClientError as exc:
            raise AuthError(f"QuickBooks refused the authorization code (HTTP {exc.status_code})") from None
        return tokens_from(client)

    def tenants(self, tokens: TokenSet, params: Mapping[str, str]) -> list[Tenant]:
        realm = params.get("realmId")
        if not realm:
            raise AuthError("QuickBooks sent no company (realmId) back with the consent")
        return [Tenant(realm)]

    def revoke(self, app: App, tokens: TokenSet) -> bool:
        from intuitlib.exceptions import AuthClientError

        try:
            self._client(app).revoke(token=tokens.refresh_token)  # type: ignore[attr-defined]
        except AuthClientError as exc:
            raise AuthError(f"QuickBooks refused to revoke the token (HTTP {exc.status_code})") from None
        return True


class XeroFlow:
    """Xero's OAuth 2.0 with PKCE; the organisations come from `/connections`."""

    provider = "xero"
    pkce = True

    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None

    def authorize_url(self, app: App, state: str, challenge: str | None) -> str:
        base = f"{self.base_url}/identity/connect/authorize" if self.base_url else xero_auth.PRODUCTION_AUTHORIZE
        query = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uri,
            "scope": " ".join(xero_auth.SCOPES),
            "state": state,
        }
        if challenge:
            query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        return f"{base}?{urlencode(query)}"

    def exchange(self, app: App, params: Mapping[str, str], verifier: str | None) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": app.redirect_uri}
        if verifier:
            form["code_verifier"] = verifier
        answer = _http(
            "POST",
            xero_auth.token_url(self.base_url),
            "Xero's token endpoint",
            data=form,
            auth=(app.client_id, app.client_secret),
        )
        return xero_auth.tokens_from(_check(answer, "Xero's token exchange").json())

    def tenants(self, tokens: TokenSet, params: Mapping[str, str]) -> list[Tenant]:
        url = f"{self.base_url or xero_auth.PRODUCTION_API}/connections"
        answer = _check(
            _http("GET", url, "Xero's /connections", headers={"Authorization": f"Bearer {tokens.access_token}"}),
            "Xero's /connections",
        )
        found = [
            c for c in answer.json() if isinstance(c, Mapping) and c.get("tenantType", "ORGANISATION") == "ORGANISATION"
        ]
        return [Tenant(str(c.get("tenantId")), str(c.get("tenantName") or "")) for c in found]

    def revoke(self, app: App, tokens: TokenSet) -> bool:
        url = (
            f"{self.base_url}/connect/revocation"
            if self.base_url
            else f"{xero_auth.PRODUCTION_IDENTITY}/connect/revocation"
        )
        _check(
            _http(
                "POST",
                url,
                "Xero's revocation endpoint",
                data={"token": tokens.refresh_token},
                auth=(app.client_id, app.client_secret),
            ),
            "Xero's token revocation",
        )
        return True


class FreshBooksFlow:
    """FreshBooks' OAuth through freshbooks-sdk; the businesses come from `users/me`.

    FreshBooks only redirects to https addresses, so against the real service link with `--manual`.
    """

    provider = "freshbooks"
    pkce = False

    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url
        self._client: object | None = None

    def _sdk(self, app: App) -> object:
        from bridge.auth.freshbooks import sdk_client

        if self._client is None:
            self._client = sdk_client(self.base_url, app.client_id, app.client_secret, redirect_uri=app.redirect_uri)
        return self._client

    def authorize_url(self, app: App, state: str, challenge: str | None) -> str:
        from bridge.auth.freshbooks import SCOPES

        url: str = self._sdk(app).get_auth_request_url(list(SCOPES))  # type: ignore[attr-defined]
        return url + "&" + urlencode({"state": state})

    def exchange(self, app: App, params: Mapping[str, str], verifier: str | None) -> TokenSet:
        from freshbooks.errors import FreshBooksError

        from bridge.auth.freshbooks import tokens_from

        try:
            return tokens_from(self._sdk(app).get_access_token(params["code"]))  # type: ignore[attr-defined]
        except (FreshBooksError, ValueError, KeyError) as exc:
            raise AuthError(f"FreshBooks refused the authorization code ({type(exc).__name__})") from None

    def tenants(self, tokens: TokenSet, params: Mapping[str, str]) -> list[Tenant]:
        from freshbooks.errors import FreshBooksError

        from bridge.auth.freshbooks import account_ids

        if self._client is None:
            raise AuthError("FreshBooks: no code was exchanged")
        try:
            identity = self._client.current_user().data  # type: ignore[attr-defined]
        except FreshBooksError as exc:
            raise AuthError(f"FreshBooks refused users/me ({type(exc).__name__})") from None
        return [Tenant(account, name) for account, name in account_ids(identity)]

    def revoke(self, app: App, tokens: TokenSet) -> bool:
        return False  # the bridge knows no FreshBooks revocation endpoint: remove the app in FreshBooks' settings


def redirect_uri(provider: str) -> str:
    """The redirect address the provider's app is registered with (its descriptor's, else the loopback one)."""
    return providers.get(provider).redirect_uri or REDIRECT_URI


def app_for(
    provider: str, env: Mapping[str, str], client_id: str | None, client_secret: str | None, *, sandbox: bool
) -> App:
    """The app credentials: `client_id` (an option) or `BRIDGE_<PROVIDER>_CLIENT_ID`, `client_secret` (the
    environment or a hidden prompt, never an option) or `BRIDGE_<PROVIDER>_CLIENT_SECRET`; against the sandbox, any."""
    prefix = f"BRIDGE_{provider.upper()}_"
    cid = client_id or env.get(prefix + "CLIENT_ID") or (SANDBOX_CLIENT[0] if sandbox else None)
    secret = client_secret or env.get(prefix + "CLIENT_SECRET") or (SANDBOX_CLIENT[1] if sandbox else None)
    if not cid or not secret:
        missing = (
            f"--client-id / {prefix}CLIENT_ID"
            if not cid
            else f"{prefix}CLIENT_SECRET (or type the secret at the hidden prompt on a terminal)"
        )
        raise ConfigError(f"linking {provider} needs your app's credentials: {missing} is not set")
    return App(cid, secret, redirect_uri(provider))


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a redirect URL (the first value of each); none for text that is not a URL."""
    try:
        query = urlsplit(url.strip()).query
    except ValueError:  # e.g. an unbalanced '[' in the host
        return {}
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def follow_redirect(url: str) -> dict[str, str]:
    """Sandbox only: its authorize endpoint consents at once; read where it sends the browser."""
    response = _http("GET", url, "the sandbox's consent page", allow_redirects=False)
    location = response.headers.get("Location", "")
    if response.status_code not in (301, 302, 303, 307) or not location:
        raise AuthError(f"the consent page answered HTTP {response.status_code} without a redirect; is it the sandbox?")
    return query_of(location)


def paste(ask: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    """Headless: show the consent URL, take the URL the browser was sent to afterwards."""

    def get(url: str) -> dict[str, str]:
        pasted = ask(url).strip()
        params = query_of(pasted)
        if not pasted.lower().startswith(("http://", "https://")) or not params:
            raise ConfigError(
                "the pasted text is not the address the consent page sent you to (an http(s) URL with "
                "?code=...&state=... in it): copy the whole address from the browser and try again"
            )
        return params

    return get


class LoopbackCallback:
    """An HTTP server on 127.0.0.1 that waits for the browser's redirect and says it may close the tab.

    Each connection is served on its own daemon thread with a read timeout, so an idle connection (or a
    TLS hello sent to the plain-HTTP port) never stalls the flow. Only a `/callback` carrying the state of
    the consent URL ends it; any other request gets an error page and the server keeps waiting.
    """

    PAGE = b"<!doctype html><title>bridge</title><p>Linked. You can close this tab and go back to the terminal.</p>"
    WRONG = (
        b"<!doctype html><title>bridge</title><p>This address does not answer the link attempt in progress "
        b"(its state does not match). Nothing was linked.</p>"
    )
    CONNECTION_TIMEOUT = 10.0  # seconds one connection may take to send its request

    def __init__(
        self, port: int = CALLBACK_PORT, timeout: float = 300.0, open_browser: Callable[[str], object] | None = None
    ):
        self.port, self.timeout, self.open_browser = port, timeout, open_browser

    def __call__(self, url: str) -> dict[str, str]:
        expected = query_of(url).get("state", "")
        if not expected:
            raise AuthError("the consent URL carries no state: refusing to wait for an unverifiable answer")
        received: dict[str, str] = {}
        done = threading.Event()
        lock = threading.Lock()
        page, wrong, per_connection = self.PAGE, self.WRONG, self.CONNECTION_TIMEOUT

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = per_connection  # StreamRequestHandler sets it on the socket

            def do_GET(self) -> None:
                if urlsplit(self.path).path != "/callback":
                    self.send_error(404)
                    return
                params = query_of(self.path)
                if not states_match(params.get("state", ""), expected):
                    self._answer(400, wrong)
                    return
                with lock:
                    if not done.is_set():
                        received.update(params)
                        done.set()
                self._answer(200, page)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # the query holds the code: never logged
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        try:
            server = Server(("127.0.0.1", self.port), Handler)
        except OSError as exc:
            raise AuthError(f"cannot listen on 127.0.0.1:{self.port} for the callback ({exc}); use --manual") from None
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        serving.start()
        try:
            if self.open_browser is not None:
                self.open_browser(url)
            done.wait(self.timeout)
        finally:
            server.shutdown()
            server.server_close()
        if not done.is_set():
            raise AuthError(f"no answer from the browser within {self.timeout:g} s; try again, or use --manual")
        return received


class ServerCallback:
    """The redirect received by a `bridge serve` at `server` (its `public_url`), for providers that redirect only to
    https addresses: the state is announced to the server, the browser is sent to the consent page, and the
    redirect's parameters are collected from the server once they arrive (see `bridge.server.oauth`). The state
    and PKCE checks, the exchange and the storage stay `link`'s."""

    POLL = 1.0  # seconds between two asks

    def __init__(
        self,
        server: str,
        provider: str,
        open_browser: Callable[[str], object],
        *,
        timeout: float = 300.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.base = f"{server.rstrip('/')}/oauth/{provider}"
        self.open_browser, self.timeout = open_browser, timeout
        self._sleep = sleep or time.sleep

    @staticmethod
    def redirect_uri(server: str, provider: str) -> str:
        """The redirect address to register with the provider's app for linking through `server`."""
        return f"{server.rstrip('/')}/oauth/{provider}/callback"

    def __call__(self, url: str) -> dict[str, str]:
        state = query_of(url).get("state", "")
        if not state:
            raise AuthError("the consent URL carries no state: refusing to wait for an unverifiable answer")
        _check(_http("POST", f"{self.base}/start", "the server's link endpoint", json={"state": state}), "the server")
        self.open_browser(url)
        waited = 0.0
        while waited <= self.timeout:
            answer = _http("POST", f"{self.base}/result", "the server's link endpoint", json={"state": state})
            if answer.status_code == 200:
                params = answer.json().get("params")
                if isinstance(params, dict):
                    return {str(k): str(v) for k, v in params.items()}
            elif answer.status_code != 202:
                _check(answer, "the server")
                raise AuthError(f"the server answered HTTP {answer.status_code} while waiting for the redirect")
            self._sleep(self.POLL)
            waited += self.POLL
        raise AuthError(f"no answer reached the server within {self.timeout:g} s; try again, or use --manual")


def browse_sandbox(url: str) -> None:
    """Sandbox only: the browser's part, without a browser (the consent page redirects at once; follow it home)."""
    _http("GET", url, "the sandbox's consent page", allow_redirects=True)


def states_match(got: str, expected: str) -> bool:
    """Constant-time comparison of a returned state with the one sent; any text (non-ASCII too) is fine."""
    return secrets.compare_digest(got.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def link(
    store: Store,
    vault: TokenVault,
    provider: str,
    *,
    name: str,
    app: App,
    base_url: str | None,
    receive: Callable[[str], Mapping[str, str]],
    choose: Callable[[list[Tenant]], Tenant],
    environment: str = "production",
) -> Linked:
    """Consent, callback (state checked), code exchange, tenant choice; the tokens are stored encrypted."""
    flow = providers.get(provider).link_flow(base_url, environment)  # a ConfigError naming the installed ones
    state = secrets.token_urlsafe(24)
    verifier, challenge = _pkce() if flow.pkce else (None, None)
    params = receive(flow.authorize_url(app, state, challenge))
    if params.get("error"):
        raise AuthError(f"the consent was not given ({params['error']})")
    if not params.get("state"):
        raise AuthError("the redirect carries no state: refused (it may not come from this link attempt)")
    if not states_match(params["state"], state):
        raise AuthError("the redirect's state does not match this link attempt: refused")
    if not params.get("code"):
        raise AuthError("the redirect carries no authorization code")
    tokens = flow.exchange(app, params, verifier)
    tenants = flow.tenants(tokens, params)
    if not tenants:
        raise AuthError(f"the consent gave access to no {provider} company")
    tenant = choose(tenants)
    store.upsert_connection(name, provider, tenant.id, base_url)
    vault.save(name, tokens)
    return Linked(name, provider, tenant, base_url)


def pick(wanted: str | None, ask: Callable[[list[Tenant]], Tenant] | None = None) -> Callable[[list[Tenant]], Tenant]:
    """Tenant choice: `--tenant`, else the only one, else `ask` (an error listing them when there is no one to ask)."""

    def choose(tenants: list[Tenant]) -> Tenant:
        listing = ", ".join(f"{t.id} ({t.name})" if t.name else t.id for t in tenants)
        if wanted is not None:
            found = next((t for t in tenants if t.id == wanted), None)
            if found is None:
                raise ConfigError(f"--tenant {wanted}: not among the companies the consent covers: {listing}")
            return found
        if len(tenants) == 1:
            return tenants[0]
        if ask is None:
            raise ConfigError(f"the consent covers {len(tenants)} companies; choose one with --tenant: {listing}")
        return ask(tenants)

    return choose


def link_sandbox(
    provider: str,
    store: Store,
    vault: TokenVault,
    base_url: str,
    name: str,
    *,
    client_id: str = SANDBOX_CLIENT[0],
    client_secret: str = SANDBOX_CLIENT[1],
    tenant: str | None = None,
) -> str:
    """Link a connection against the sandbox (which consents at once) through `link`; returns the tenant id."""
    app = App(client_id, client_secret, redirect_uri(provider))
    linked = link(
        store, vault, provider, name=name, app=app, base_url=base_url, receive=follow_redirect, choose=pick(tenant)
    )
    return linked.tenant.id
