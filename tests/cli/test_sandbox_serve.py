"""`bridge sandbox serve` as a user runs it: a process that prints its URLs and answers until stopped."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import requests


def test_sandbox_serve_prints_its_url_serves_the_seed_and_takes_faults(tmp_path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"quickbooks": {"500": 0.5, "seed": 1}}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--latency-ms",
            "1",
            "--faults",
            str(faults),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, first
        base = match.group(0)
        state = requests.get(f"{base}/_sandbox/state", timeout=10).json()
        assert len(state["quickbooks"]["Invoice"]) >= 40
        assert requests.get(f"{base}/_sandbox/faults", timeout=10).json()["quickbooks"]["500"] == 0.5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_a_bad_fault_spec_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "sandbox", "serve", "--port", "0", "--faults", '{"quickbooks": {"500": 7}}'],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "500" in proc.stderr


def test_webhook_url_and_key_go_together_and_are_announced(tmp_path) -> None:
    alone = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--webhook-url",
            "http://127.0.0.1:9/hooks",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert alone.returncode == 2 and "--webhook-key" in alone.stderr
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "bridge", "sandbox", "serve", "--port", "0"),
            *("--webhook-url", "http://127.0.0.1:9/hooks", "--webhook-key", "test-key"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        assert any("webhooks: every change is sent, signed, to http://127.0.0.1:9/hooks/{provider}" in x for x in lines)
        base = re.search(r"http://127\.0\.0\.1:\d+", lines[0])
        assert base and requests.get(f"{base.group(0)}/_sandbox/webhooks", timeout=10).json() == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
