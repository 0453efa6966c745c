"""Content-addressable objects: written once, addressed by SHA-256, re-hashed on every read.

An object's id is the hex SHA-256 of its bytes; for JSON values those bytes are
the RFC 8785 canonical form, so equal values always share one id. Objects live
at ``objects/sha256/<first two hex>/<remaining 62 hex>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import rfc8785

from mcp_orchestration.errors import IntegrityError, ValidationError
from mcp_orchestration.fsutil import WriteBatch, atomic_write, ensure_dir
from mcp_orchestration.ids import check_artifact_id

_OBJECT_MODE = 0o400


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; values JCS cannot represent are a validation error."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError):
        raise ValidationError(
            "The value cannot be canonicalised as JSON (RFC 8785): integers must lie within +/-2**53 "
            "and NaN or Infinity are not allowed."
        ) from None


def digest_of(data: bytes) -> str:
    """The object id of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ContentStore:
    """Immutable objects under ``root``, addressed by SHA-256 of their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root / "sha256"

    def path_for(self, object_id: str) -> Path:
        """The object's path; the id is checked before it touches the filesystem."""
        check_artifact_id(object_id)
        return self.root / object_id[:2] / object_id[2:]

    def put_bytes(self, data: bytes, batch: WriteBatch | None = None) -> str:
        """Store ``data`` (once) and return its id; a corrupted copy on disk is replaced.

        With a ``batch`` the object is durable only after the batch's barrier.
        """
        object_id = digest_of(data)
        path = self.path_for(object_id)
        if path.exists() and self._is_intact(path, object_id):
            if batch is not None:
                batch.include(path)
            return object_id
        ensure_dir(path.parent)
        if batch is None:
            atomic_write(path, data, mode=_OBJECT_MODE)
        else:
            batch.write(path, data, mode=_OBJECT_MODE)
        return object_id

    def put_json(self, value: Any, batch: WriteBatch | None = None) -> str:
        """Store the canonical bytes of a JSON value and return its id."""
        return self.put_bytes(canonical_bytes(value), batch)

    def get_bytes(self, object_id: str) -> bytes:
        """The object's bytes, re-hashed: corrupted bytes are never returned."""
        path = self.path_for(object_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            # Every id read here comes from the signed index: a missing object is damage.
            raise IntegrityError(f"Object {object_id} is referenced by the index but missing from the store.") from None
        if digest_of(data) != object_id:
            raise IntegrityError(f"Object {object_id} is corrupted: its bytes no longer hash to its id.")
        return data

    def get_json(self, object_id: str) -> Any:
        """The object parsed as JSON (after the hash check)."""
        data = self.get_bytes(object_id)
        try:
            return json.loads(data)
        except ValueError:
            raise IntegrityError(f"Object {object_id} is not valid JSON.") from None

    def contains(self, object_id: str) -> bool:
        return self.path_for(object_id).exists()

    def iter_ids(self) -> Iterator[str]:
        """Every object id present on disk (names that are not ids are skipped)."""
        try:
            fanouts = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for fanout in fanouts:
            if len(fanout.name) != 2 or not fanout.is_dir():
                continue
            for entry in os.scandir(fanout.path):
                if len(entry.name) == 62 and not entry.name.startswith("."):
                    yield fanout.name + entry.name

    def _is_intact(self, path: Path, object_id: str) -> bool:
        try:
            return digest_of(path.read_bytes()) == object_id
        except OSError:
            return False
