"""`bridge demo --review`: prints a review link per plan and waits; approving through the links ends it."""

from __future__ import annotations

import os
import subprocess
import sys

import requests


def test_demo_review_prints_links_and_applies_once_approved(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "--as-of", "2026-10-20", "demo", "--review"],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "demo.err", "w"),  # noqa: SIM115 (closed with the process)
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        assert proc.stdout is not None
        links: dict[str, str] = {}
        for line in proc.stdout:
            if line.startswith("Review "):
                name, link = line.removeprefix("Review ").strip().split(": ", 1)
                links[name] = link
            if line.startswith("Waiting for approval"):
                break
        assert set(links) == {"demo-qbo", "demo-xero", "demo-freshbooks"}, (tmp_path / "demo.err").read_text()
        for name, link in links.items():
            browser = requests.Session()
            page = browser.get(link, timeout=30)
            assert page.status_code == 200 and name in page.text
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            plan_url = page.url
            if name == "demo-xero":
                done = browser.post(
                    f"{plan_url}/reject",
                    data={"csrf": csrf, "name": "Pat", "reason": "not today"},
                    allow_redirects=False,
                )
            else:
                done = browser.post(
                    f"{plan_url}/approve",
                    data={"csrf": csrf, "name": "Pat", "do": "all"},
                    allow_redirects=False,
                )
            assert done.status_code == 303
        rest = proc.stdout.read()
        assert proc.wait(timeout=300) == 0, (tmp_path / "demo.err").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert "demo-qbo: approved by Pat (one-time link from demo)" in rest
    assert "demo-xero: rejected by Pat (one-time link from demo): 0 applied" in rest
    assert "What changed in the sandbox:" in rest
