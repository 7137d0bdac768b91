"""Files only their owner may read (the session key, the audit signing key), created once by
whichever process gets there first."""
from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def read(path: Path) -> bytes:
    """The file's bytes; a warning when others may read it."""
    data = path.read_bytes()
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users: chmod 600 it", path)
    return data


def read_or_create(path: Path, make: Callable[[], bytes]) -> tuple[bytes, bool]:
    """The bytes in `path`, writing `make()` there first if the file is missing; (bytes,
    created)."""
    if path.exists():
        return read(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make()
    # Written whole to a private temporary file (mkstemp makes it 0600), then linked into place:
    # two processes starting together both end up with the one file that got there first.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return read(path), False
    finally:
        os.unlink(tmp)
    return data, True
