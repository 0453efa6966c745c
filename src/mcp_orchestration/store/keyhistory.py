"""The key history's files: ``keys/00000001.json`` ... , one signed version each.

The store reads and writes the bytes; :class:`KeyHistory` (in trust) verifies
them. Every file named like a version must be a regular file of at most
``MAX_VERSION_BYTES``: a link, FIFO or device there is damage
(:class:`KeyHistoryError`), never followed, waited on or read without end.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from mcp_orchestration.core.errors import KeyHistoryError, NotInitializedError
from mcp_orchestration.core.fsutil import UnsafeFileError, atomic_write, ensure_dir, read_regular
from mcp_orchestration.trust.history import HistoryVersion, KeyHistory
from mcp_orchestration.trust.signer import Signer

_VERSION_FILE = re.compile(r"([0-9]{8})\.json")
MAX_VERSION_BYTES = 1 << 20  # a version lists every key ever used, a few hundred bytes each

FilesState = tuple[tuple[str, int, int, int], ...]
"""Name, size, inode and mtime of each file: unchanged, the history verified from them still holds."""


class KeyHistoryFiles:
    """One store's ``keys/`` directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, version: int) -> Path:
        return self.directory / f"{version:08d}.json"

    def exists(self) -> bool:
        return self.path_for(1).exists()

    def load(self, *, expect_root: str | None = None) -> KeyHistory:
        """Read every version file, oldest first, and verify the chain they hold."""
        files = sorted(int(m.group(1)) for name in self._names() if (m := _VERSION_FILE.fullmatch(name)))
        if not files:
            raise NotInitializedError(f"No key history in {self.directory}: the store is not initialised.")
        if files != list(range(1, len(files) + 1)):
            raise KeyHistoryError(f"The key history in {self.directory} has a gap: versions {files}.")
        return KeyHistory.verify((self._read(number) for number in files), expect_root=expect_root)

    def create(self, key: Signer, created_at: str) -> KeyHistory:
        """Write version 1, pinning ``key`` as the one active key from index version 1."""
        ensure_dir(self.directory)
        first = KeyHistory.genesis(key, created_at)
        atomic_write(self.path_for(1), first.envelope_bytes)
        return KeyHistory([first])

    def append(self, history: KeyHistory, version: HistoryVersion) -> None:
        """Write ``version`` durably, then take it into ``history``."""
        atomic_write(self.path_for(version.version), version.envelope_bytes)
        history.append(version)

    def state(self) -> FilesState:
        """What the directory holds now, cheaply (no file is read)."""
        try:
            entries = os.scandir(self.directory)
        except FileNotFoundError:
            return ()
        state = []
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # a writer's temporary file, renamed or removed at any moment
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat()
                    state.append((entry.name, st.st_size, st.st_ino, st.st_mtime_ns))
        return tuple(sorted(state))

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.directory)
        except FileNotFoundError:
            return []

    def _read(self, number: int) -> bytes:
        """A version file's bytes: only a regular file within the bound is a version, anything else is damage."""
        path = self.path_for(number)
        what = f"key history version {number}"
        try:
            return read_regular(path, MAX_VERSION_BYTES)
        except UnsafeFileError as exc:
            raise KeyHistoryError(
                f"The file of {what} ({path.name}) is not a regular file of the store: it {exc.strerror}."
            ) from None
        except FileNotFoundError:
            raise KeyHistoryError(f"The file of {what} ({path.name}) was removed while the history was read.") from None
        except OSError as exc:
            raise KeyHistoryError(f"The file of {what} ({path.name}) cannot be read ({exc.strerror}).") from None
