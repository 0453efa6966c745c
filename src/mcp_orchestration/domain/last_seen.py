"""``deploy``'s own memory of the newest index it accepted from each store, kept outside the store.

The store's rollback guard lives in the store, so whoever can rewrite the whole
volume can rewind it consistently. Like a TUF client's trusted metadata, this
file lives with the operator (the per-user state directory) and remembers, per
store (its pinned root key and home), the index version, key-history version
and head last deployed from; an older index, a shorter key history or another
head at the same version is refused.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_orchestration.errors import RollbackError
from mcp_orchestration.fsutil import atomic_write, ensure_dir, exclusive_lock

ENV_STATE_FILE = "MCP_ORCHESTRATION_DEPLOY_STATE"
STATE_FILE_NAME = "deploy-state.json"
_FORMAT = 1
_HEAD_ID = re.compile(r"[0-9a-f]{64}")


def default_state_file(environ: Mapping[str, str]) -> Path:
    """``$MCP_ORCHESTRATION_DEPLOY_STATE``, else ``deploy-state.json`` in the per-user state directory."""
    if environ.get(ENV_STATE_FILE):
        return Path(environ[ENV_STATE_FILE])
    import platformdirs

    from mcp_orchestration.settings import APP_NAME

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)) / STATE_FILE_NAME


def store_key(root_fingerprint: str, home: Path) -> str:
    """The state's name for one store: a fixed-length fingerprint, a space, the absolute home."""
    return f"{root_fingerprint} {home}"


@dataclass(frozen=True)
class Seen:
    """The versions and head of one verified index."""

    index_version: int
    key_history_version: int
    head_id: str


class LastSeen:
    """The state file: checked before a deploy, raised after it, under a lock next to it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state's lock, so two deploys cannot both check and then record out of order."""
        ensure_dir(self.path.parent)
        with exclusive_lock(self.path.with_name(f"{self.path.name}.lock")):
            yield

    def check(self, store: str, seen: Seen) -> None:
        """Refuse ``seen`` if it is older than, or a fork of, what was last deployed from ``store``."""
        record = self._read().get(store)
        if record is None:
            return
        last = Seen(record["index_version"], record["key_history_version"], record["head_id"])
        if seen.index_version < last.index_version:
            problem = (
                f"The store's index is version {seen.index_version}, older than version {last.index_version} "
                "that this machine last deployed from: an old index was replayed."
            )
        elif seen.key_history_version < last.key_history_version:
            problem = (
                f"The store's key history has {seen.key_history_version} version(s), fewer than the "
                f"{last.key_history_version} seen at the last deploy: key history versions were removed."
            )
        elif seen.index_version == last.index_version and seen.head_id != last.head_id:
            problem = (
                f"The store's index version {seen.index_version} is not the one this machine last deployed from: "
                "the index was replaced."
            )
        else:
            return
        raise RollbackError(
            problem,
            hint=(
                "Do not deploy from this store. If it was restored or recreated on purpose, remove the entry "
                f"{store!r} from {self.path} to trust its current index."
            ),
        )

    def record(self, store: str, seen: Seen, at: str) -> None:
        """Remember ``seen`` as the newest index deployed from ``store`` (call under :meth:`locked`)."""
        stores = self._read()
        stores[store] = {
            "index_version": seen.index_version,
            "key_history_version": seen.key_history_version,
            "head_id": seen.head_id,
            "seen_at": at,
        }
        document = {"format": _FORMAT, "stores": stores}
        atomic_write(self.path, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")

    def _read(self) -> dict[str, dict[str, Any]]:
        """Every store's record; a damaged file is refused, since it can no longer vouch for anything."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            document = None
        stores = document.get("stores") if isinstance(document, dict) and document.get("format") == _FORMAT else None
        if not isinstance(stores, dict) or not all(_is_record(record) for record in stores.values()):
            raise RollbackError(
                f"The deploy state file {self.path} is damaged, so the last deployed index versions are unknown.",
                hint="Restore the file, or remove it to trust each store's current index again.",
            )
        return stores


def _is_record(record: object) -> bool:
    if not isinstance(record, dict):
        return False
    versions = (record.get("index_version"), record.get("key_history_version"))
    head_id = record.get("head_id")
    return (
        all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in versions)
        and isinstance(head_id, str)
        and _HEAD_ID.fullmatch(head_id) is not None
    )
