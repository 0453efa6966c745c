"""Crash-safe file primitives: atomic replace, no-clobber create, exclusive lock.

A file is either the old bytes or the new bytes after a crash, never a mix:
the data goes to a temporary file in the same directory, which is fsynced,
renamed over the target, and the directory is fsynced so the rename itself
survives a power loss. Files carry their final permissions from the moment
they are created.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

_TEMP_PREFIX = ".tmp-"


def ensure_dir(path: Path, mode: int = 0o700) -> None:
    """Create ``path`` and its parents with ``mode`` (existing ones are left as they are)."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` to a new fsynced temporary file in ``directory`` created with ``mode``."""
    name = directory / f"{_TEMP_PREFIX}{os.urandom(8).hex()}"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        name.unlink(missing_ok=True)
        raise
    os.close(fd)
    return name


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    temp = _write_temp(path.parent, data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` with ``data`` atomically; raise ``FileExistsError`` rather than overwrite."""
    temp = _write_temp(path.parent, data, mode)
    try:
        if owner is not None:
            os.chown(temp, owner[0], owner[1])
        os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the lock file ``path`` for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_stale_temps(directory: Path) -> int:
    """Delete temporary files a crashed writer left in ``directory``; return how many."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in directory.iterdir():
            if entry.name.startswith(_TEMP_PREFIX):
                entry.unlink(missing_ok=True)
                removed += 1
    return removed
