"""The rollback guard: the highest index and key-history versions a store has accepted.

The store keeps the numbers; the verifier (``check_rollback``) refuses anything older.

Kept in ``storage/index/accepted`` as two fixed-width numbers, so every update
is one same-length write over the same bytes (old or new after a crash, never
a mix, and no rename that would force a flush). It is written durably once,
at init; from then on a missing or unreadable guard is itself a rollback.

This guards against replaying old files into a store; it cannot stop someone
who rewrites the whole volume consistently. State kept outside the store (the
operator's pinned root key, ``deploy``'s own last-seen version) covers that.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mcp_orchestration.core.errors import RollbackError
from mcp_orchestration.core.fsutil import UnsafeFileError, atomic_write, read_regular

_FORMAT = re.compile(rb"([0-9]{20}) ([0-9]{20})\n")
_MAX_BYTES = 64  # the guard is 42 bytes; a bound for the read


@dataclass(frozen=True)
class Guard:
    """The highest index version and key-history version accepted so far."""

    index_version: int
    history_version: int

    def encode(self) -> bytes:
        return f"{self.index_version:020d} {self.history_version:020d}\n".encode()


def read_guard(path: Path) -> Guard | None:
    """The guard, or None if the file does not exist (a store never initialised)."""
    try:
        data = read_regular(path, _MAX_BYTES)
    except FileNotFoundError:
        return None
    except UnsafeFileError as exc:
        raise RollbackError(
            f"The rollback guard {path.name} is not a regular file of the store: it {exc.strerror}."
        ) from None
    except OSError as exc:
        raise RollbackError(f"The rollback guard {path.name} cannot be read ({exc.strerror}).") from None
    match = _FORMAT.fullmatch(data)
    if match is None:
        raise RollbackError(f"The rollback guard {path.name} is damaged or was reset.")
    return Guard(int(match.group(1)), int(match.group(2)))


def create_guard(path: Path, guard: Guard) -> None:
    """Write the first guard durably (at init)."""
    atomic_write(path, guard.encode())


def raise_guard(path: Path, guard: Guard) -> None:
    """Overwrite the guard in place with a higher one (no fsync: losing it lowers it by one write)."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.pwrite(fd, guard.encode(), 0)
    finally:
        os.close(fd)
