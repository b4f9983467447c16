"""Private files written atomically: the plan (`--out`) and the config file.

The text goes to a fresh temporary file beside the target, made by `tempfile.mkstemp` (a random name
opened with O_CREAT|O_EXCL, mode 0600: a symlink planted in the folder is never followed), is flushed,
optionally checked, and renamed over the target with `os.replace`. The target ends up 0600; a
symlink at the target's own name is replaced, not written through.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, text: str | Iterable[bytes], check: Callable[[Path], object] | None = None) -> None:
    """Write `text` to `path` (mode 0600) all at once; `check(tmp)` may refuse it by raising first.

    `text` may come in UTF-8 pieces (a large plan's `json_chunks`), written one after the other."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE)  # mkstemp's mode already, whatever the umask: say it
            handle.writelines([text.encode("utf-8")] if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
