"""What this host trusts about each store it uses, kept outside every store.

A store vouches for nothing about itself: whoever can write its volume can
replace it with one initialised with their own key, or rewind it, guard and
checkpoint included. Like a TUF client's trusted metadata, this file belongs
to the host (the per-user state directory) and records, per store home, the
root key fingerprint the host pinned, the last head it accepted (id and index
version) and the key history it accepted (the digest of each version). Every
reader checks the store against it: another root is ``key_untrusted``; an
older head or a shorter key history is a rollback; a head that does not
descend from the one accepted, or a key history that differs from the one
accepted (rewritten with a stolen retired key), is a fork.

The file is read through the safe-open primitive and written atomically under
a lock beside it. A damaged file is refused: it can no longer vouch for
anything. Where it cannot be written (a container's read-only root), the
checks still run against what it holds, and the pin comes from
``--expect-key`` or ``MCP_ORCHESTRATION_EXPECT_KEY`` instead.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mcp_orchestration.core.errors import RollbackError
from mcp_orchestration.core.fsutil import UnsafeFileError, atomic_write, ensure_dir, exclusive_lock, read_regular

STATE_FILE_NAME = "host-state.json"
LEGACY_STATE_FILE_NAME = "deploy-state.json"  # written by releases before the host pinned the root
_FORMAT = 2
_LEGACY_FORMAT = 1
MAX_STATE_BYTES = 4 << 20
_HEX_ID = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"SHA256:[0-9a-f]{64}")


@dataclass(frozen=True)
class StoreRecord:
    """The pinned root of one store, and the last head this host accepted from it (if any yet)."""

    root: str
    head_id: str | None = None
    index_version: int = 0
    key_history_version: int = 0
    seen_at: str | None = None
    key_history: tuple[str, ...] = ()  # the digest of each key-history version accepted, oldest first

    def accepting(self, head_id: str, index_version: int, key_history: Sequence[str], at: str) -> StoreRecord:
        return replace(
            self,
            head_id=head_id,
            index_version=index_version,
            key_history_version=len(key_history),
            key_history=tuple(key_history),
            seen_at=at,
        )


class HostState:
    """The host's state file: one record per store home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state's lock, so that two processes cannot both read, then write out of order."""
        ensure_dir(self.path.parent)
        with exclusive_lock(self.path.with_name(f"{self.path.name}.lock")):
            yield

    def get(self, home: Path) -> StoreRecord | None:
        """The record of the store at ``home`` (an absolute path), or None."""
        return self._read().get(str(home))

    def put(self, home: Path, record: StoreRecord) -> None:
        """Write ``record`` for ``home`` (call under :meth:`locked`)."""
        stores = self._read()
        stores[str(home)] = record
        document = {
            "format": _FORMAT,
            "stores": {name: _without_none(asdict(r)) for name, r in sorted(stores.items())},
        }
        atomic_write(self.path, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")

    def forget(self, home: Path) -> None:
        """Drop the record of ``home`` (call under :meth:`locked`); a new store there is pinned afresh."""
        stores = self._read()
        if stores.pop(str(home), None) is not None:
            document = {"format": _FORMAT, "stores": {name: _without_none(asdict(r)) for name, r in stores.items()}}
            atomic_write(self.path, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")

    def _read(self) -> dict[str, StoreRecord]:
        try:
            data = read_regular(self.path, MAX_STATE_BYTES)
        except (FileNotFoundError, NotADirectoryError):  # no state file (yet) on this host
            return self._read_legacy()
        except UnsafeFileError:
            raise self._damaged() from None
        stores = _parse(data, _FORMAT)
        if stores is None:
            raise self._damaged()
        return stores

    def _read_legacy(self) -> dict[str, StoreRecord]:
        """Records of ``deploy-state.json`` beside the file, kept by deploy before this file existed."""
        if self.path.name != STATE_FILE_NAME:
            return {}
        legacy = self.path.with_name(LEGACY_STATE_FILE_NAME)
        try:
            data = read_regular(legacy, MAX_STATE_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except UnsafeFileError:
            raise self._damaged(legacy) from None
        stores = _parse(data, _LEGACY_FORMAT)
        if stores is None:
            raise self._damaged(legacy)
        return stores

    def _damaged(self, path: Path | None = None) -> RollbackError:
        where = path or self.path
        return RollbackError(
            f"The host state file {where} is damaged (or not a regular file), so the roots this host pinned "
            "and the heads it accepted are unknown.",
            hint="Restore the file from a backup, or remove it and pin each store again with --expect-key.",
        )


def _without_none(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in record.items() if value is not None
    }


def _parse(data: bytes, expected_format: int) -> dict[str, StoreRecord] | None:
    """The records of a state document, or None if it is malformed."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("format") != expected_format:
        return None
    stores = document.get("stores")
    if not isinstance(stores, dict):
        return None
    records: dict[str, StoreRecord] = {}
    for name, raw in stores.items():
        home = name
        if expected_format == _LEGACY_FORMAT:  # "<root fingerprint> <home>" -> the head deploy last used
            root, _, home = name.partition(" ")
            raw = {**raw, "root": root} if isinstance(raw, dict) else raw  # noqa: PLW2901
        record = _record(raw)
        if record is None or not home.startswith("/"):
            return None
        records[home] = record
    return records


def _record(raw: object) -> StoreRecord | None:
    if not isinstance(raw, dict):
        return None
    root, head_id, seen_at = raw.get("root"), raw.get("head_id"), raw.get("seen_at")
    versions = (raw.get("index_version", 0), raw.get("key_history_version", 0))
    if not isinstance(root, str) or not _FINGERPRINT.fullmatch(root):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in versions):
        return None
    if head_id is not None and not (isinstance(head_id, str) and _HEX_ID.fullmatch(head_id) and versions[0] >= 1):
        return None
    if seen_at is not None and not isinstance(seen_at, str):
        return None
    digests = raw.get("key_history", [])
    if not isinstance(digests, list) or not all(isinstance(d, str) and _HEX_ID.fullmatch(d) for d in digests):
        return None
    if digests and len(digests) != versions[1]:
        return None
    return StoreRecord(root, head_id, versions[0], versions[1], seen_at, tuple(digests))
