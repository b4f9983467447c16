"""Peers side by side: the bridge, singer-io's tap-quickbooks and tap-xero, and a plain python-quickbooks script,
each pulling the same books from the emulators with the providers' published rate limits on.

Run as `.venv/bin/python -m bench.peers` (part of `make bench`; `make peers` runs the conformance alone on a
small book). Options: `--invoices N --payments N` (default 10,000 each per provider), `--changes K` (change K
invoices through the API between each tap's full and incremental sync; default 0, so the incremental pull is
a no-change pull like the bridge's second run), `--conformance` (the taps only, no table).

What it does:

1. Creates `.venv-peers/tap-quickbooks` and `.venv-peers/tap-xero` (gitignored; one virtualenv each, as the
   two taps pin different singer-python releases) with the pinned taps, unless they exist. They are never
   project dependencies.
2. Writes a seed of N invoices + N payments per provider (`generate_book` for QuickBooks, `generate_xero_org`
   for Xero) and starts `bridge sandbox serve` on it (a process of its own; published limits).
3. Per provider: the bridge (`bridge sync --dry-run` on a fresh store, then again with nothing changed), the tap
   (a full sync, then an incremental one from the state the first left), and for QuickBooks the plain
   python-quickbooks loop of bench/sync.py (`Invoice.all` / `Payment.all` paged by the SDK's default; it has no
   incremental mode, so its second pull is the same full read). Before each measured pull the sandbox is reset
   (same data; the rate windows cleared, as if the pull ran later); the sandbox's request log then gives the API
   calls, the OAuth calls and the 429s of that pull alone.
4. Conformance: each tap must finish both syncs, and the ids it emits as Singer RECORD messages must be exactly
   the seeded ids (full sync) and exactly the ids updated at or after the bookmark the full sync left
   (incremental: the taps read `>=` their bookmark), compared with `/_sandbox/state`. A miss exits 1.

The taps run through bench/peer_runner.py, which imports the tap in its own venv, points its base-URL
constants (and OAuth token endpoint) at the emulator and calls the tap's main.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from time import perf_counter
from typing import Any

import requests
from cryptography.fernet import Fernet

from bench.endtoend import compile_bridge
from bench.policy import interpreter_speed
from bench.sync import sdk_client, sdk_default_page, sdk_read_all
from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import Store
from bridge_sandbox import generate_book, write_seed
from bridge_sandbox.books import AS_OF
from bridge_sandbox.xero_books import generate_xero_org
from bridge_sandbox.xero_where import parse_ms_date

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".venv-peers"
RUNNER = ROOT / "bench" / "peer_runner.py"
DEMO_CONTRACTS = ROOT / "config" / "demo.toml"
CLIENT_ID, CLIENT_SECRET = "sandbox-client", "sandbox-secret"
START_DATE = "2020-01-01T00:00:00Z"


@dataclass(frozen=True)
class Peer:
    """A tap: its package, the emulated provider, the streams selected, and each stream's seed list and id."""

    name: str
    requirement: str
    provider: str
    streams: Mapping[str, tuple[str, str]]  # stream -> (seed list, id field)
    bookmark: str  # the field of each stream's bookmark in the tap's state
    extra: tuple[str, ...] = ()  # what the tap imports without declaring it

    @property
    def python(self) -> Path:
        return PEERS_VENV / self.name / "bin" / "python"


TAP_QUICKBOOKS = Peer(
    "tap-quickbooks",
    "tap-quickbooks==2.5.0",
    "quickbooks",
    {"invoices": ("Invoice", "Id"), "payments": ("Payment", "Id"), "customers": ("Customer", "Id")},
    "LastUpdatedTime",
)
TAP_XERO = Peer(
    "tap-xero",
    "tap-xero==2.6.0",
    "xero",
    {
        "invoices": ("Invoices", "InvoiceID"),
        "payments": ("Payments", "PaymentID"),
        "contacts": ("Contacts", "ContactID"),
    },
    "UpdatedDateUTC",
    # tap_xero/client.py imports six, which it does not declare: it came with python-dateutil < 2.9
    # (through singer-python), and the python-dateutil pip resolves today no longer brings it.
    ("six",),
)
PEERS = (TAP_QUICKBOOKS, TAP_XERO)
API_PREFIX = {"quickbooks": "/v3/", "xero": "/api.xro/"}
MAKE_VENVS = "make peers"  # builds .venv-peers/ and runs the conformance


class ConformanceError(AssertionError):
    """A tap did not complete, or emitted other ids than the emulator holds."""


# ---------------------------------------------------------------------------------------------------- venvs


def venvs_ready() -> bool:
    """Whether both taps' virtualenvs are built."""
    return all((PEERS_VENV / peer.name / ".installed").is_file() for peer in PEERS)


def ensure_venvs() -> None:
    """Build `.venv-peers/<tap>` for each tap that lacks one (pip from the usual index; a minute or two each)."""
    for peer in PEERS:
        home = PEERS_VENV / peer.name
        stamp = home / ".installed"
        if stamp.is_file():
            continue
        print(f"building {home} with {peer.requirement} (not a project dependency)", flush=True)
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run([str(peer.python), "-m", "pip", "install", "--quiet", peer.requirement, *peer.extra], check=True)
        stamp.write_text(peer.requirement + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------- sandbox


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulators:
    """`bridge sandbox serve` in a process of its own, and its control endpoints."""

    def __init__(self, seed: Path) -> None:
        port = _free_port()
        argv = [str(Path(sys.executable).with_name("bridge")), "--json", "sandbox", "serve", "--seed", str(seed)]
        argv += ["--port", str(port), "--rate-limits", "published"]
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise SystemExit(f"bridge sandbox serve did not start (exit {self.process.returncode})")
        self.base = str(json.loads(line)["base_url"])
        self.http = requests.Session()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def reset(self) -> None:
        """Same data (the seed), request log and rate windows cleared; linked tokens stay valid."""
        self.http.post(f"{self.base}/_sandbox/reset", timeout=120).raise_for_status()

    def log(self) -> list[dict[str, Any]]:
        return list(self.http.get(f"{self.base}/_sandbox/requests", timeout=120).json())

    def state(self) -> dict[str, Any]:
        return dict(self.http.get(f"{self.base}/_sandbox/state", timeout=120).json(parse_float=Decimal))


# ---------------------------------------------------------------------------------------------------- measuring


@dataclass
class Pull:
    """One measured pull: who, which, and what the sandbox saw of it."""

    client: str
    provider: str
    kind: str  # full | incremental
    wall: float = 0.0
    calls: int = 0
    oauth: int = 0
    throttled: int = 0  # 429 answers to API calls
    server: float = 0.0  # seconds the emulator spent answering the pull's API calls (its log's duration_ms)
    records: int = 0
    inner: float | None = None  # the bridge: seconds its own log gives the pull (the rest: start-up, plan, output)
    routes: Counter[str] = field(default_factory=Counter)
    note: str = ""


def measured(emulators: Emulators, pull: Pull, run: Callable[[], int], *, reset: bool = True) -> Pull:
    """Run `run` (returns the records it read) timed; the sandbox's log since then gives its calls."""
    mark = 0
    if reset:
        emulators.reset()
    else:
        mark = len(emulators.log())
    started = perf_counter()
    pull.records = run()
    pull.wall = perf_counter() - started
    for entry in emulators.log()[mark:]:
        if entry.get("provider") != pull.provider:
            continue
        if not str(entry.get("path", "")).lower().startswith(API_PREFIX[pull.provider]):
            pull.oauth += 1
            continue
        pull.calls += 1
        pull.routes[str(entry.get("route") or "?")] += 1
        pull.throttled += entry.get("status") == 429
        pull.server += float(entry.get("duration_ms") or 0.0) / 1000
    print(
        f"  {pull.provider} {pull.client} {pull.kind}: {pull.calls} calls, {pull.wall:.2f} s, {pull.records:,} records",
        file=sys.stderr,
        flush=True,
    )
    return pull


# ---------------------------------------------------------------------------------------------------- the bridge

PULLED = re.compile(r"pulled (\d+) invoice\(s\), (\d+) payment\(s\) in ([\d.]+) s")


class Bridge:
    """The bridge as a user runs it: a config, a store, `bridge sync --dry-run` in a process of its own."""

    def __init__(self, folder: Path, base: str, store: Store, vault: TokenVault, key: str) -> None:
        self.config = folder / "bridge.toml"
        self.plan = folder / "plan.json"
        lines = [f'[store]\nurl = "sqlite:///{folder / "bridge.db"}"\n']
        for provider, name in (("quickbooks", "bench-qbo"), ("xero", "bench-xero")):
            tenant = link_sandbox(provider, store, vault, base, name)
            lines.append(
                f'[[connections]]\nname = "{name}"\nprovider = "{provider}"\ntenant_id = "{tenant}"\n'
                f'base_url = "{base}"\n'
            )
        self.config.write_text("\n".join(lines) + "\n" + DEMO_CONTRACTS.read_text(encoding="utf-8"), encoding="utf-8")
        self.env = {**os.environ, "BRIDGE_SECRET_KEY": key}
        for provider in ("QUICKBOOKS", "XERO"):
            self.env[f"BRIDGE_{provider}_CLIENT_ID"] = CLIENT_ID
            self.env[f"BRIDGE_{provider}_CLIENT_SECRET"] = CLIENT_SECRET

    def sync(self, connection: str, pull: Pull) -> Callable[[], int]:
        def run() -> int:
            # --json: the plan goes to a file as machine output (as the taps' records go to a pipe); a terminal
            # table of a 10,000-invoice plan would time rich's rendering, not the sync.
            argv = [str(Path(sys.executable).with_name("bridge")), "--json", "--config", str(self.config)]
            argv += ["--as-of", AS_OF.isoformat(), "sync", "--dry-run", "--connection", connection]
            with self.plan.open("wb") as plan:
                done = subprocess.run(argv, env=self.env, stdout=plan, stderr=subprocess.PIPE, text=True, check=False)
            if done.returncode not in (0, 1):  # 1: the plan holds actions (a dry run applies none)
                raise SystemExit(f"bridge sync failed ({done.returncode}):\n{done.stderr[-3000:]}")
            found = PULLED.search(done.stderr)
            if found is None:
                raise SystemExit(f"bridge sync said nothing of its pull:\n{done.stderr[-3000:]}")
            pull.inner = float(found.group(3))
            return int(found.group(1)) + int(found.group(2))

        return run


# ---------------------------------------------------------------------------------------------------- the taps


@dataclass
class TapRun:
    """What one tap invocation emitted."""

    ids: dict[str, list[str]] = field(default_factory=dict)  # stream -> ids in the order emitted
    state: dict[str, Any] = field(default_factory=dict)  # the last STATE message

    @property
    def records(self) -> int:
        return sum(len(v) for v in self.ids.values())


class Tap:
    """One tap, its config file (the tap rewrites it with each rotated refresh token) and its catalog."""

    def __init__(self, peer: Peer, emulators: Emulators, folder: Path, refresh_token: str, tenant: str) -> None:
        self.peer, self.emulators, self.folder = peer, emulators, folder
        self.config = folder / f"{peer.name}.config.json"
        config: dict[str, Any] = {
            "start_date": START_DATE,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
            "user_agent": "bridge-bench peers",
        }
        config.update({"realm_id": tenant} if peer.provider == "quickbooks" else {"tenant_id": tenant})
        self.config.write_text(json.dumps(config), encoding="utf-8")
        self.catalog = folder / f"{peer.name}.catalog.json"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.peer.python), str(RUNNER), self.peer.provider, self.emulators.base, "--"]
        done = subprocess.run([*argv, "--config", str(self.config), *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ConformanceError(
                f"{self.peer.name} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        return done

    def discover(self) -> None:
        """`--discover` (the tap's own access check against the emulator), then select the streams."""
        catalog = json.loads(self._run("--discover").stdout)
        names = {entry["tap_stream_id"] for entry in catalog["streams"]}
        if not set(self.peer.streams) <= names:
            raise ConformanceError(f"{self.peer.name} discovered no {sorted(set(self.peer.streams) - names)}")
        for entry in catalog["streams"]:
            for item in entry.get("metadata", []):
                if item.get("breadcrumb") == []:
                    item["metadata"]["selected"] = entry["tap_stream_id"] in self.peer.streams
        self.catalog.write_text(json.dumps(catalog), encoding="utf-8")

    def sync(self, state: Mapping[str, Any] | None, out: TapRun) -> Callable[[], int]:
        def run() -> int:
            args = ["--catalog", str(self.catalog)]
            if state is not None:
                path = self.folder / f"{self.peer.name}.state.json"
                path.write_text(json.dumps(state), encoding="utf-8")
                args += ["--state", str(path)]
            for line in self._run(*args).stdout.splitlines():
                if not line.startswith("{"):
                    continue
                message = json.loads(line)
                if message.get("type") == "RECORD":
                    stream = message["stream"]
                    out.ids.setdefault(stream, []).append(str(message["record"][self.peer.streams[stream][1]]))
                elif message.get("type") == "STATE":
                    out.state = message["value"]
            return out.records

        return run


def _instant(value: str) -> datetime:
    moment = parse_ms_date(value)
    if moment is None:
        raise ConformanceError(f"not a timestamp: {value!r}")
    return moment.astimezone(UTC)


def _updated(obj: Mapping[str, Any]) -> str:
    meta = obj.get("MetaData")
    return str(meta["LastUpdatedTime"] if isinstance(meta, Mapping) else obj["UpdatedDateUTC"])


def expected_ids(peer: Peer, state: Mapping[str, Any], since: Mapping[str, str] | None) -> dict[str, set[str]]:
    """Per stream, the ids the emulator holds (all, or those updated at or after the stream's bookmark)."""
    section = state[peer.provider]
    out: dict[str, set[str]] = {}
    for stream, (kind, id_field) in peer.streams.items():
        objs = section.get(kind, [])
        if since is not None:
            # One-second precision: the taps' bookmarks and the emulators' filters carry no milliseconds.
            cut = _instant(since[stream]).replace(microsecond=0)
            objs = [o for o in objs if _instant(_updated(o)).replace(microsecond=0) >= cut]
        out[stream] = {str(o[id_field]) for o in objs}
    return out


def check(peer: Peer, kind: str, run: TapRun, expected: Mapping[str, set[str]]) -> None:
    """Exactly the expected ids per stream, each at most once; ConformanceError otherwise."""
    problems = []
    for stream, want in expected.items():
        got = run.ids.get(stream, [])
        twice = [i for i, n in Counter(got).items() if n > 1]
        missing, extra = want - set(got), set(got) - want
        if missing or extra or twice:
            problems.append(
                f"{stream}: {len(got)} records, {len(want)} expected; missing {sorted(missing)[:5]} ({len(missing)}),"
                f" not expected {sorted(extra)[:5]} ({len(extra)}), twice {twice[:5]} ({len(twice)})"
            )
    if problems:
        raise ConformanceError(f"{peer.name} {kind} sync: " + "; ".join(problems))


def bookmarks(peer: Peer, run: TapRun) -> dict[str, str]:
    marks = run.state.get("bookmarks", {})
    try:
        return {stream: str(marks[stream][peer.bookmark]) for stream in peer.streams}
    except KeyError as exc:
        raise ConformanceError(f"{peer.name} left no bookmark for {exc} in its state: {run.state}") from None


# ---------------------------------------------------------------------------------------------------- changes


def change_invoices(emulators: Emulators, provider: str, token: str, tenant: str, count: int) -> None:
    """Change `count` open invoices through the API: a 1.00 payment each (QuickBooks), a new Reference (Xero)."""
    state = emulators.state()[provider]
    http = emulators.http
    if provider == "quickbooks":
        open_invoices = [i for i in state["Invoice"] if Decimal(str(i.get("Balance", 0))) >= 1][:count]
        url = f"{emulators.base}/v3/company/{tenant}/payment?minorversion=75"
        for invoice in open_invoices:
            body = {
                "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
                "TotalAmt": 1,
                "Line": [{"Amount": 1, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            }
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            http.post(url, json=body, headers=headers, timeout=30).raise_for_status()
        return
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant, "Accept": "application/json"}
    for invoice in state["Invoices"][:count]:
        url = f"{emulators.base}/api.xro/2.0/Invoices/{invoice['InvoiceID']}"
        body = {"InvoiceID": invoice["InvoiceID"], "Reference": "changed by the peers bench"}
        http.post(url, json=body, headers=headers, timeout=30).raise_for_status()


# ---------------------------------------------------------------------------------------------------- the runs


@dataclass
class Linked:
    """The bench's store of grants: one linked connection per client, so each refreshes its own tokens."""

    store: Store
    vault: TokenVault
    base: str

    def grant(self, provider: str, name: str) -> tuple[str, str, str]:
        """(tenant, refresh token, access token) of a new connection `name`."""
        tenant = link_sandbox(provider, self.store, self.vault, self.base, name)
        tokens, _ = self.vault.load(name)
        return tenant, tokens.refresh_token, tokens.access_token


def run_tap(peer: Peer, emulators: Emulators, linked: Linked, folder: Path, changes: int) -> list[Pull]:
    """Discovery, a full and an incremental sync of one tap, each checked against the emulator's state."""
    tenant, refresh, _ = linked.grant(peer.provider, f"peer-{peer.name}")
    tap = Tap(peer, emulators, folder, refresh, tenant)
    tap.discover()
    full, again = TapRun(), TapRun()
    pulls = [measured(emulators, Pull(peer.name, peer.provider, "full"), tap.sync(None, full))]
    check(peer, "full", full, expected_ids(peer, emulators.state(), None))
    marks = bookmarks(peer, full)
    if changes:
        _, _, token = linked.grant(peer.provider, f"changes-{peer.name}")
        change_invoices(emulators, peer.provider, token, tenant, changes)
    pull = Pull(peer.name, peer.provider, "incremental")
    pulls.append(measured(emulators, pull, tap.sync(full.state, again), reset=not changes))
    check(peer, "incremental", again, expected_ids(peer, emulators.state(), marks))
    for p, r in zip(pulls, (full, again), strict=True):
        p.note = ", ".join(f"{s} {len(ids):,}" for s, ids in sorted(r.ids.items()))
    return pulls


def run_sdk(emulators: Emulators, linked: Linked) -> list[Pull]:
    """bench/sync.py's plain python-quickbooks loop, twice (it has no incremental mode)."""
    state = emulators.state()["quickbooks"]
    realm = str(state["realm_id"])
    qb = sdk_client(emulators.base, linked.store, linked.vault, realm)
    page = sdk_default_page()
    pulls = []
    for kind in ("full", "incremental"):
        counted = Pull("python-quickbooks", "quickbooks", kind, note=f"all(start_position, max_results={page})")

        def run() -> int:
            holder = _Rows()
            sdk_read_all(qb, page)(holder)
            return holder.rows

        pulls.append(measured(emulators, counted, run))
    if pulls[0].records != len(state["Invoice"]) + len(state["Payment"]):
        raise ConformanceError(f"python-quickbooks read {pulls[0].records} records, the book holds more")
    return pulls


@dataclass
class _Rows:
    rows: int = 0


def run_bridge(emulators: Emulators, bridge: Bridge, provider: str, connection: str) -> list[Pull]:
    pulls = [Pull("bridge", provider, kind) for kind in ("full", "incremental")]
    return [measured(emulators, pull, bridge.sync(connection, pull)) for pull in pulls]


@contextmanager
def workspace(invoices: int, payments: int) -> Iterator[tuple[Path, Emulators, Linked, str]]:
    """A temporary folder with the seed, the running emulators, and the bench's store of grants."""
    with tempfile.TemporaryDirectory(prefix="bridge-peers-") as tmp:
        folder = Path(tmp)
        seed = {**generate_book(invoices, payments), "xero": generate_xero_org(invoices, payments)}
        write_seed(seed, folder / "seed.json")
        emulators = Emulators(folder / "seed.json")
        key = Fernet.generate_key().decode()
        store = Store.open(f"sqlite:///{folder / 'bridge.db'}")
        try:
            yield folder, emulators, Linked(store, TokenVault(store, Fernet(key.encode())), emulators.base), key
        finally:
            store.close()
            emulators.close()


def conformance(invoices: int, payments: int, changes: int) -> list[Pull]:
    """Both taps, full and incremental, checked; raises ConformanceError on the first miss."""
    pulls: list[Pull] = []
    with workspace(invoices, payments) as (folder, emulators, linked, _key):
        for peer in PEERS:
            pulls += run_tap(peer, emulators, linked, folder, changes)
    return pulls


# ---------------------------------------------------------------------------------------------------- report


def table(pulls: Sequence[Pull]) -> str:
    header = (
        f"{'provider':<11} {'client':<18} {'pull':<12} {'API calls':>9} {'OAuth':>5} {'429s':>5} "
        f"{'wall s':>8} {'server s':>8} {'records':>8}"
    )
    lines = [header, "-" * len(header)]
    for p in pulls:
        lines.append(
            f"{p.provider:<11} {p.client:<18} {p.kind:<12} {p.calls:>9,} {p.oauth:>5} {p.throttled:>5} "
            f"{p.wall:>8.2f} {p.server:>8.2f} {p.records:>8,}"
            + (f"   {p.note}" if p.note else "")
            + (f"   (of which the pull itself {p.inner:.1f} s)" if p.inner is not None else "")
        )
    return "\n".join(lines)


def verdicts(pulls: Sequence[Pull]) -> list[tuple[bool, str]]:
    """The issue's targets, each with whether it holds."""
    by = {(p.provider, p.client, p.kind): p for p in pulls}
    out: list[tuple[bool, str]] = []
    for provider, tap in (("quickbooks", "tap-quickbooks"), ("xero", "tap-xero")):
        again = by.get((provider, "bridge", "incremental"))
        if again is not None:
            out.append((again.wall <= 1.0, f"{provider} bridge no-change sync <= 1.0 s wall: {again.wall:.2f} s"))
            out.append((again.calls <= 2, f"{provider} bridge no-change sync <= 2 calls: {again.calls}"))
        first, peer = by.get((provider, "bridge", "full")), by.get((provider, tap, "full"))
        if first is None or peer is None:
            continue
        if provider == "quickbooks":
            out.append(
                (first.calls <= peer.calls, f"QuickBooks first pull: bridge {first.calls} calls <= {tap} {peer.calls}")
            )
        else:
            out.append((first.calls < peer.calls, f"Xero first pull: bridge {first.calls} calls < {tap} {peer.calls}"))
        fastest = min((p for p in pulls if p.provider == provider and p.kind == "full"), key=lambda p: p.wall)
        out.append(
            (fastest.client == "bridge", f"{provider} fastest full pull: {fastest.client} ({fastest.wall:.2f} s)")
        )
    sdk = [p for p in pulls if p.client == "python-quickbooks"]
    if sdk:
        out.append((all(p.throttled == 0 for p in sdk), "python-quickbooks completes with published limits, no 429"))
    return out


def _load() -> str:
    """The machine's load: wall times on a shared machine are only comparable within one run."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--invoices", type=int, default=10_000, help="invoices per provider (default 10,000)")
    parser.add_argument("--payments", type=int, default=10_000, help="payments per provider (default 10,000)")
    parser.add_argument("--changes", type=int, default=0, help="invoices changed before each tap's incremental sync")
    parser.add_argument("--conformance", action="store_true", help="the taps' conformance only, no table")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target of the table is missed")
    parser.add_argument("--bridge-only", action="store_true", help="the bridge's rows alone (no taps, no venvs)")
    args = parser.parse_args(argv)

    print(
        f"interpreter: Python {sys.version.split()[0]} at {sys.executable}; "
        f"sum(range(100)) takes {interpreter_speed():.2f} µs; {_load()}; {compile_bridge()}",
        flush=True,
    )
    if not args.bridge_only:
        ensure_venvs()
    try:
        if args.conformance:
            pulls = conformance(args.invoices, args.payments, args.changes)
            print(table(pulls))
            print("conformance: PASS (both taps, full and incremental, exactly the seeded ids)")
            return 0
        pulls = []
        with workspace(args.invoices, args.payments) as (folder, emulators, linked, key):
            bridge = Bridge(folder, emulators.base, linked.store, linked.vault, key)
            pulls += run_bridge(emulators, bridge, "quickbooks", "bench-qbo")
            if not args.bridge_only:
                pulls += run_tap(TAP_QUICKBOOKS, emulators, linked, folder, args.changes)
                pulls += run_sdk(emulators, linked)
            pulls += run_bridge(emulators, bridge, "xero", "bench-xero")
            if not args.bridge_only:
                pulls += run_tap(TAP_XERO, emulators, linked, folder, args.changes)
    except ConformanceError as exc:
        print(f"conformance: FAIL: {exc}", file=sys.stderr)
        return 1
    print(
        f"Peers side by side: {args.invoices:,} invoices + {args.payments:,} payments per provider, "
        "bridge sandbox serve --rate-limits published, each pull after a sandbox reset (same data, rate windows "
        "cleared); incremental = nothing changed since the full pull"
    )
    print(table(pulls))
    if not args.bridge_only:
        print("conformance: PASS (both taps, full and incremental, exactly the seeded ids)")
    print(f"at the end {_load()}")
    results = verdicts(pulls)
    for ok, text in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 1 if args.check and not all(ok for ok, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
