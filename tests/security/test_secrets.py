"""Finding 6 of issue 15: secrets and private files.

Plans (`--out`) and the config are written through `bridge.files.write_private`: a fresh mkstemp file
beside the target, renamed over it, mode 0600; a symlink planted at the old predictable temporary name
(`.NAME.tmp`) is never followed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.files import write_private
from bridge.sandbox import Sandbox
from tests.security._text_fixtures import (
    Book,
    linked_book,
    module_sandbox,  # noqa: F401 (the fixture)
    run_bridge,
)


@pytest.fixture
def bridge(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return run_bridge(capsys, monkeypatch)


@pytest.fixture
def book(module_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Book:  # noqa: F811
    return linked_book(module_sandbox, tmp_path, monkeypatch)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- private files, written atomically ---------------------------------------------------------------


def test_write_private_makes_a_0600_file_and_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "plan.json"
    (tmp_path / ".plan.json.tmp").symlink_to(victim)  # the old fixed temporary name
    old_umask = os.umask(0)
    try:
        write_private(target, "{}")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "{}" and _mode(target) == 0o600
    assert victim.read_text() == "precious"
    # A symlink at the target's own name is replaced, not written through.
    target.unlink()
    target.symlink_to(victim)
    write_private(target, "{}")
    assert not target.is_symlink() and victim.read_text() == "precious"
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [".plan.json.tmp", "plan.json", "victim"]


def test_a_refused_check_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "bridge.toml"
    target.write_text("old")

    def refuse(path: Path) -> None:
        raise ConfigError("no")

    with pytest.raises(ConfigError):
        write_private(target, "new", check=refuse)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["bridge.toml"]


def test_plan_out_is_private_and_a_planted_symlink_at_the_temp_name_is_not_followed(  # type: ignore[no-untyped-def]
    bridge, book: Book, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "plan.json"
    (tmp_path / ".plan.json.tmp").symlink_to(victim)
    result = bridge(*book.args("--json", "sync", "--dry-run", "--out", str(out)))
    assert result.code == 0, result.err
    assert json.loads(out.read_text())["actions"] and _mode(out) == 0o600
    assert victim.read_text() == "precious"


def test_link_writes_the_config_0600_and_never_through_a_planted_symlink(  # type: ignore[no-untyped-def]
    bridge,
    module_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = linked_book(module_sandbox, tmp_path, monkeypatch)
    os.chmod(book.config, 0o644)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".bridge.toml.tmp").symlink_to(victim)
    result = bridge("--config", str(book.config), "link", "xero", "--base-url", module_sandbox.base_url)
    assert result.code == 0, result.err
    assert 'provider = "xero"' in book.config.read_text() and _mode(book.config) == 0o600
    assert victim.read_text() == "precious"
    removed = bridge("--config", str(book.config), "connections", "remove", "xero")
    assert removed.code == 0, removed.err
    assert _mode(book.config) == 0o600 and victim.read_text() == "precious"
