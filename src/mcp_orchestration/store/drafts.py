"""Drafts: a profile's config while it is being edited, kept in the store across restarts.

A draft is working state, not a published fact: it is not signed and not
content-addressed, it names the artifact it started from, and publishing or
clearing it removes it. Drafts live at ``storage/drafts/<client>/<profile>.json``.

Whoever can write the store's volume can write a draft file, and the next
``publish_config`` would sign it. So each draft carries a MAC under a secret
derived from the signing key (never stored): a draft without a valid MAC for
its own client and profile is refused. Every file operation is relative to a
directory descriptor opened without following links, so a link planted under
``storage/drafts`` can never send a read, write or delete out of the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.errors import (
    DraftUnauthenticatedError,
    IntegrityError,
    InvalidIdError,
    LimitError,
    ValidationError,
)
from mcp_orchestration.core.fsutil import (
    UnsafeFileError,
    atomic_write_at,
    exclusive_lock_in,
    open_directory,
    read_regular,
)
from mcp_orchestration.security.ids import check_artifact_id, check_name_id
from mcp_orchestration.trust.signer import DerivedKey, Signer

log = logging.getLogger(__name__)

MAC_PURPOSE = b"mcp-orchestration draft-mac v1"
MAX_DRAFT_BYTES = 1 << 20
DRAFTS = "drafts"
_SUFFIX = ".json"
_LOCK = ".lock"
_FIELDS = frozenset({"client", "profile", "payload", "base_artifact", "updated_at"})


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


def _mac_key(key: Signer) -> DerivedKey:
    return key.derive_key(MAC_PURPOSE)


class DraftStore:
    """Drafts of one store, one file per client profile, each authenticated by the signing key."""

    def __init__(self, storage_dir: Path) -> None:
        self.storage_dir = storage_dir

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held for every read-change-write of a draft (separate from the index lock, which publish takes)."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(exclusive_lock_in(self.storage_dir, [DRAFTS], _LOCK))
            except UnsafeFileError as exc:
                raise _unsafe(DRAFTS if exc.filename == DRAFTS else f"{DRAFTS}/{_LOCK}") from None
            yield

    @contextlib.contextmanager
    def _directory(self, client: str, *, create: bool) -> Iterator[int]:
        """A descriptor of ``drafts/<client>``, no link followed; ``FileNotFoundError`` if absent and not ``create``."""
        check_name_id(client, "client")
        try:
            fd = open_directory(self.storage_dir, [DRAFTS, client], create=create)
        except UnsafeFileError:
            raise _unsafe(f"{DRAFTS}/{client}") from None
        try:
            yield fd
        finally:
            os.close(fd)

    def get(self, client: str, profile: str, key: Signer) -> Draft | None:
        """The draft of ``client/profile`` if there is one, after its MAC is checked with ``key``."""
        name = f"{check_name_id(profile, 'profile')}{_SUFFIX}"
        try:
            with self._directory(client, create=False) as fd:
                data = read_regular(name, MAX_DRAFT_BYTES, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError:
            raise _unreadable(client, profile) from None
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            raise _unreadable(client, profile) from None
        return _authenticated(raw, client, profile, _mac_key(key))

    def save(self, draft: Draft, key: Signer) -> None:
        """Write ``draft`` with its MAC under ``key``, atomically (replacing the previous one)."""
        name = f"{check_name_id(draft.profile, 'profile')}{_SUFFIX}"
        fields = draft.to_json()
        data = canonical_bytes({**fields, "mac": _mac_key(key).mac(canonical_bytes(fields)).hex()})
        if len(data) > MAX_DRAFT_BYTES:
            raise LimitError(
                f"The draft of {draft.client}/{draft.profile} would be {len(data)} bytes; "
                f"the limit is {MAX_DRAFT_BYTES}."
            )
        with self._directory(draft.client, create=True) as fd:
            atomic_write_at(fd, name, data)

    def clear(self, client: str, profile: str) -> bool:
        """Remove the draft of ``client/profile``; False if there was none."""
        name = f"{check_name_id(profile, 'profile')}{_SUFFIX}"
        try:
            with self._directory(client, create=False) as fd:
                os.unlink(name, dir_fd=fd)
                os.fsync(fd)
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            raise _unsafe(f"{DRAFTS}/{client}/{name}") from None
        return True

    def list(self) -> list[tuple[str, str]]:
        """Every ``(client, profile)`` that has a draft file: only valid ids, only real directories and files.

        Names come from a volume others may write, so anything that is not a
        plain directory or file with a valid id for a name is skipped unread.
        """
        found: list[tuple[str, str]] = []
        try:
            root = open_directory(self.storage_dir, [DRAFTS], create=False)
        except FileNotFoundError:
            return found
        except UnsafeFileError:
            log.warning("storage/%s is a link or not a directory; its drafts are ignored.", DRAFTS)
            return found
        try:
            for client in _names(root, directories=True):
                with contextlib.suppress(OSError):  # replaced or removed since it was listed
                    fd = open_directory(self.storage_dir, [DRAFTS, client], create=False)
                    try:
                        found.extend((client, profile) for profile in _names(fd, directories=False))
                    finally:
                        os.close(fd)
        finally:
            os.close(root)
        return sorted(found)


def _names(dir_fd: int, *, directories: bool) -> list[str]:
    """Valid ids in a directory: of its subdirectories, or of its ``<id>.json`` regular files."""
    names = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if directories:
                name = entry.name
                kind_ok = entry.is_dir(follow_symlinks=False)
            else:
                name = entry.name.removesuffix(_SUFFIX)
                kind_ok = entry.name.endswith(_SUFFIX) and entry.is_file(follow_symlinks=False)
            if kind_ok and _is_valid_id(name):
                names.append(name)
    return names


def _is_valid_id(name: str) -> bool:
    """Whether a name read from disk is an id the tools would accept (and so may be echoed)."""
    try:
        check_name_id(name, "id")
    except InvalidIdError:
        return False
    return True


def _authenticated(raw: object, client: str, profile: str, mac_key: DerivedKey) -> Draft:
    """The draft in ``raw`` if its MAC, over its fields with this client and profile, verifies."""
    if not isinstance(raw, dict) or set(raw) != _FIELDS | {"mac"} or not isinstance(raw["mac"], str):
        raise _unauthenticated(client, profile)
    fields = {name: raw[name] for name in _FIELDS}
    try:
        tag = bytes.fromhex(raw["mac"])
        message = canonical_bytes(fields)
    except (ValueError, ValidationError):
        raise _unauthenticated(client, profile) from None
    if not mac_key.verify(message, tag) or (raw["client"], raw["profile"]) != (client, profile):
        raise _unauthenticated(client, profile)
    payload, base, updated_at = raw["payload"], raw["base_artifact"], raw["updated_at"]
    if not isinstance(payload, dict) or not isinstance(updated_at, str):
        raise IntegrityError(f"The draft of {client}/{profile} is malformed.")
    return Draft(client, profile, payload, None if base is None else check_artifact_id(base), updated_at)


def _unauthenticated(client: str, profile: str) -> DraftUnauthenticatedError:
    return DraftUnauthenticatedError(
        f"The draft of {client}/{profile} is not authenticated by this server's signing key: it was written "
        "or changed by someone else, for another profile, or under another key."
    )


def _unreadable(client: str, profile: str) -> IntegrityError:
    return IntegrityError(
        f"The draft of {client}/{profile} is unreadable.",
        hint="Clear it with clear_draft_config and start again from the published config.",
    )


def _unsafe(where: str) -> IntegrityError:
    return IntegrityError(
        f"storage/{where} is a link, or not the plain directory or file a draft needs; "
        "drafts are never followed out of the store.",
        hint="Remove it (see SECURITY.md, 'Tamper response'); drafts directories are recreated when needed.",
    )
