"""A provider account's rate window shared by every process on this machine (`MachineLimiter`, a file).

The fake clock drives the window where one process is enough; where two processes must share it, real
processes record the times their calls were counted at (the clock reading the limiter wrote to the file) and
the test checks those times, never how long anything took.
"""

from __future__ import annotations

import array
import fcntl
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.connectors.budget import STALE_WINDOW, MachineLimiter, machine_folder, on_this_machine
from bridge.connectors.http import RateLimiter, WindowLimiter, set_budget, shared_limiter
from tests.unit.test_http_policy import FakeClock


def _log(path: Path) -> list[float]:
    return list(array.array("d", path.read_bytes()))


def _most_in_any_window(stamps: list[float], per_seconds: float) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps[i:] if t < start + per_seconds) for i, start in enumerate(stamps))


def test_two_limiters_on_one_file_share_one_window(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "acme.window"
    first, second = (MachineLimiter(path, 60, 60.0, clock=clock) for _ in range(2))
    stamps = []
    for i in range(200):
        (first if i % 2 else second).acquire()
        stamps.append(clock.now)
        clock.now += 0.01
    assert stamps[59] < 1.0  # a short run uses the whole minute's allowance at once
    assert _most_in_any_window(stamps, 60.0) == 60
    assert stamps[-1] == pytest.approx(180.0, abs=2.0)  # then 60 a minute, not 60 each
    assert len(_log(path)) == 60  # the file holds the calls still in the window, no more


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from bridge.connectors.budget import MachineLimiter

    class Recording:
        # The limiter reads the clock once per try; the last reading is the time it counted the call at.
        last = 0.0
        def monotonic(self):
            self.last = time.monotonic()
            return self.last
        sleep = staticmethod(time.sleep)

    path, calls, max_calls, per_seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    clock = Recording()
    limiter = MachineLimiter(path, max_calls, per_seconds, clock=clock)
    print("ready", flush=True)
    sys.stdin.readline()  # both start together
    stamps = []
    for _ in range(calls):
        limiter.acquire()
        stamps.append(clock.last)
    print(json.dumps(stamps), flush=True)
    """
)


def _child(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def test_two_processes_sharing_a_window_never_exceed_it_together(tmp_path: Path) -> None:
    max_calls, per_seconds, calls = 4, 0.3, 10
    children = [_child(tmp_path / "acme.window", calls, max_calls, per_seconds) for _ in range(2)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        stamps = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert [len(s) for s in stamps] == [calls, calls]
    # Each alone would have let `max_calls` through in its first window: together, twice the allowance.
    assert _most_in_any_window(stamps[0] + stamps[1], per_seconds) == max_calls


@pytest.mark.parametrize(
    "content",
    [
        b"not a window",  # not whole 8-byte times: a torn write, another program's bytes
        array.array("d", [1.0, math.nan]).tobytes(),
        array.array("d", [5.0, 1.0]).tobytes(),  # out of order
    ],
)
def test_a_corrupt_window_file_counts_as_empty_and_is_written_afresh(tmp_path: Path, content: bytes) -> None:
    clock = FakeClock()
    clock.now = 10.0
    path = tmp_path / "acme.window"
    path.write_bytes(content)
    limiter = MachineLimiter(path, 1, 60.0, clock=clock)
    assert limiter.acquire() == 0.0
    assert _log(path) == [10.0]


def test_a_missing_window_file_is_made_again(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "acme.window"
    limiter = MachineLimiter(path, 2, 60.0, clock=clock)
    limiter.acquire()
    path.unlink()
    clock.now = 1.0
    assert limiter.acquire() == 0.0
    assert _log(path) == [1.0]


def test_times_later_than_now_are_from_before_a_reboot_and_dropped(tmp_path: Path) -> None:
    clock = FakeClock()
    clock.now = 3.0  # the monotonic clock started again at boot
    path = tmp_path / "acme.window"
    path.write_bytes(array.array("d", [1.0, 500.0]).tobytes())
    limiter = MachineLimiter(path, 2, 60.0, clock=clock)
    assert limiter.acquire() == 0.0
    assert _log(path) == [1.0, 3.0]


def test_a_full_window_waits_for_its_oldest_call_to_leave(tmp_path: Path) -> None:
    clock = FakeClock()
    limiter = MachineLimiter(tmp_path / "acme.window", 2, 60.0, clock=clock)
    limiter.acquire()
    clock.now = 20.0
    limiter.acquire()
    clock.now = 30.0
    assert limiter.acquire() == pytest.approx(30.0)
    assert clock.now == pytest.approx(60.0)


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bridge.connectors.budget import MachineLimiter

    with MachineLimiter(Path(sys.argv[1]), 1, 60.0).held():
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_a_process_killed_while_holding_the_window_leaves_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "acme.window"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the holder has it
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel with the process
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        holder.kill()
        holder.wait()
    assert MachineLimiter(path, 1, 60.0).acquire() == 0.0
    assert len(_log(path)) == 1


def test_every_account_limiter_is_shared_on_this_machine_unless_a_budget_is_set() -> None:
    set_budget(None)
    try:
        account = ("xero", "http://127.0.0.1:1/api.xro/2.0", "tenant-a")
        limiter = shared_limiter(account, lambda: WindowLimiter(58, 60.0))
        assert isinstance(limiter, MachineLimiter)
        assert (limiter.max_calls, limiter.per_seconds) == (58, 60.0)
        assert limiter.path.parent == machine_folder()
        assert shared_limiter(account, lambda: WindowLimiter(58, 60.0)) is limiter
        other = shared_limiter((*account[:2], "tenant-b"), lambda: WindowLimiter(58, 60.0))
        assert isinstance(other, MachineLimiter) and other.path != limiter.path

        kept = WindowLimiter(1, 1.0)
        set_budget(lambda key, local: kept)  # a budget across machines (Redis) takes the place of the file
        assert shared_limiter(account, lambda: WindowLimiter(58, 60.0)) is kept
    finally:
        set_budget(None)


def test_a_token_bucket_is_shared_as_the_window_of_its_burst() -> None:
    limiter = on_this_machine(("quickbooks", "http://127.0.0.1:1", "1"), RateLimiter(8.0, 2))
    assert isinstance(limiter, MachineLimiter)
    assert (limiter.max_calls, limiter.per_seconds) == (2, 0.25)


def test_without_a_folder_for_the_windows_each_process_paces_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # no folder can be made below a file
    local = WindowLimiter(58, 60.0)
    assert on_this_machine(("xero", "http://127.0.0.1:1", "t"), local) is local


def test_windows_untouched_for_a_day_are_swept_away() -> None:
    folder = machine_folder()
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / "stale.window", folder / "fresh.window"
    for path in (stale, fresh):
        path.write_bytes(b"")
    day_old = fresh.stat().st_mtime - STALE_WINDOW - 60
    os.utime(stale, (day_old, day_old))
    on_this_machine(("xero", "http://127.0.0.1:1", "swept"), WindowLimiter(58, 60.0))
    assert not stale.exists() and fresh.exists()
