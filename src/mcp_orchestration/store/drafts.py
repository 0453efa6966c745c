"""Drafts: a profile's config while it is being edited, kept in the store across restarts.

A draft is working state, not a published fact: it is not signed and not
content-addressed, it names the artifact it started from, and publishing or
clearing it removes it. Drafts live at ``storage/drafts/<client>/<profile>.json``;
both ids are checked before they become a path, and every write is atomic.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_orchestration.errors import IntegrityError, InvalidIdError
from mcp_orchestration.fsutil import atomic_write, ensure_dir, exclusive_lock, fsync_dir
from mcp_orchestration.ids import check_artifact_id, check_name_id
from mcp_orchestration.store.cas import canonical_bytes


@dataclass(frozen=True)
class Draft:
    """A profile's config being edited, and the published artifact it started from (if any)."""

    client: str
    profile: str
    payload: dict[str, Any]
    base_artifact: str | None
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "profile": self.profile,
            "payload": self.payload,
            "base_artifact": self.base_artifact,
            "updated_at": self.updated_at,
        }


class DraftStore:
    """Drafts of one store, one file per client profile."""

    def __init__(self, storage_dir: Path) -> None:
        self.root = storage_dir / "drafts"

    def _path(self, client: str, profile: str) -> Path:
        return self.root / check_name_id(client, "client") / f"{check_name_id(profile, 'profile')}.json"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Held for every read-change-write of a draft (separate from the index lock, which publish takes)."""
        ensure_dir(self.root)
        return exclusive_lock(self.root / ".lock")

    def get(self, client: str, profile: str) -> Draft | None:
        """The draft of ``client/profile``, or None if there is none."""
        path = self._path(client, profile)
        try:
            raw = json.loads(path.read_bytes())
            draft = Draft(
                client=client,
                profile=profile,
                payload=raw["payload"],
                base_artifact=None if raw["base_artifact"] is None else check_artifact_id(raw["base_artifact"]),
                updated_at=raw["updated_at"],
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, InvalidIdError):
            raise IntegrityError(
                f"The draft of {client}/{profile} is unreadable.",
                hint="Clear it with clear_draft_config and start again from the published config.",
            ) from None
        if not isinstance(draft.payload, dict) or (raw.get("client"), raw.get("profile")) != (client, profile):
            raise IntegrityError(f"The draft of {client}/{profile} is malformed.")
        return draft

    def save(self, draft: Draft) -> None:
        """Write ``draft`` atomically (replacing the previous one)."""
        path = self._path(draft.client, draft.profile)
        ensure_dir(path.parent)
        atomic_write(path, canonical_bytes(draft.to_json()))

    def clear(self, client: str, profile: str) -> bool:
        """Remove the draft of ``client/profile``; False if there was none."""
        path = self._path(client, profile)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(path.parent)
        return True

    def list(self) -> list[tuple[str, str]]:
        """Every ``(client, profile)`` that has a draft."""
        found = []
        if self.root.is_dir():
            for client_dir in sorted(self.root.iterdir()):
                for file in sorted(client_dir.glob("*.json")):
                    found.append((client_dir.name, file.stem))
        return found
