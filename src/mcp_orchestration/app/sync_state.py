"""What a desktop remembers between syncs: the root it pinned, the head it accepted, what it applied.

One directory per desktop (``--state-dir``), private to its user::

    state.json          the accepted head (id, version, expiry), the key history length, the mirror's
                        validator for the next conditional fetch, and each applied profile's artifact
    keys/00000001.json  the key history versions verified so far (so a sync fetches only new ones)
    .lock               held by a sync from its first read to its last write

This is the desktop's trust anchor, as ``host-state.json`` is a publisher's:
a damaged file is refused (not reset), because forgetting the accepted head
would let a mirror roll the desktop back. Removing the directory on purpose
re-pins on the next sync.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mcp_orchestration.core.errors import RollbackError
from mcp_orchestration.core.fsutil import atomic_write_at, exclusive_lock, open_directory, read_regular
from mcp_orchestration.store.mirror.tree import MAX_KEY_VERSION_BYTES

STATE_FILE = "state.json"
KEYS_DIR = "keys"
_FORMAT = 1
MAX_STATE_BYTES = 1 << 20
_HEX_ID = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"SHA256:[0-9a-f]{64}")


class Applied(NamedTuple):
    """One profile applied to one client's config file."""

    artifact: str
    path: str


class SyncState(NamedTuple):
    """The state file's content (records, not dataclasses: a scheduled sync imports no ``dataclasses``)."""

    root: str  # the pinned root fingerprint, SHA256:<hex>
    head_id: str
    index_version: int
    key_history_version: int
    expires: str | None
    root_object: str  # the accepted head's root: unchanged roots need no tree fetched
    url: str  # the mirror the validator belongs to
    etag: str | None
    synced_at: str
    applied: Mapping[str, Applied]  # by "client/profile"

    def to_json(self) -> dict[str, Any]:
        applied = {name: item._asdict() for name, item in self.applied.items()}
        return {"format": _FORMAT, **self._asdict(), "applied": applied}


class StateDir:
    """A desktop's sync state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Create the directory (0700) and hold its lock: one sync at a time per desktop."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with exclusive_lock(self.path / ".lock"):
            yield

    def load(self) -> SyncState | None:
        """The state, or None before the first sync; anything unreadable or malformed is refused."""
        try:
            data = read_regular(self.path / STATE_FILE, MAX_STATE_BYTES)
        except FileNotFoundError:
            return None
        except OSError:
            raise self._damaged() from None
        state = _parse(data)
        if state is None:
            raise self._damaged()
        return state

    def save(self, state: SyncState) -> None:
        fd = open_directory(self.path, [], create=False)
        try:
            atomic_write_at(fd, STATE_FILE, json.dumps(state.to_json(), indent=2, sort_keys=True).encode() + b"\n")
        finally:
            os.close(fd)

    def key_versions(self, count: int) -> list[bytes]:
        """The first ``count`` stored key history versions (each re-verified by the caller)."""
        versions = []
        fd = open_directory(self.path, [KEYS_DIR], create=True)
        try:
            for number in range(1, count + 1):
                try:
                    versions.append(read_regular(f"{number:08d}.json", MAX_KEY_VERSION_BYTES, dir_fd=fd))
                except OSError:
                    raise self._damaged() from None
        finally:
            os.close(fd)
        return versions

    def add_key_versions(self, first: int, documents: list[bytes]) -> None:
        """Store verified key history versions ``first``, ``first + 1``, ..."""
        fd = open_directory(self.path, [KEYS_DIR], create=True)
        try:
            for number, data in enumerate(documents, start=first):
                atomic_write_at(fd, f"{number:08d}.json", data)
        finally:
            os.close(fd)

    def _damaged(self) -> RollbackError:
        return RollbackError(
            f"The sync state in {self.path} is damaged or unreadable: the head this desktop accepted is unknown, "
            "so a rolled-back mirror could not be told apart.",
            hint="Find out who changed it. To start over on purpose, remove the directory: the next sync pins "
            "the root given by --expect-key again and accepts the mirror's current index.",
        )


def _parse(data: bytes) -> SyncState | None:
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        return None
    applied = raw.get("applied")
    if not isinstance(applied, dict):
        return None
    try:
        state = SyncState(
            root=_text(raw, "root", _FINGERPRINT),
            head_id=_text(raw, "head_id", _HEX_ID),
            index_version=_count(raw, "index_version"),
            key_history_version=_count(raw, "key_history_version"),
            expires=None if raw.get("expires") is None else _text(raw, "expires"),
            root_object=_text(raw, "root_object", _HEX_ID),
            url=_text(raw, "url"),
            etag=None if raw.get("etag") is None else _text(raw, "etag"),
            synced_at=_text(raw, "synced_at"),
            applied={
                str(name): Applied(_text(item, "artifact", _HEX_ID), _text(item, "path"))
                for name, item in applied.items()
            },
        )
    except (TypeError, ValueError):
        return None
    return state


def _text(raw: Any, name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        raise ValueError(name)
    return value


def _count(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(name)
    return value
