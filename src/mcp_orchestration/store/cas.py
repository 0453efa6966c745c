"""Content-addressable objects: written once, addressed by SHA-256, re-hashed on every read.

An object's id is the hex SHA-256 of its bytes; for JSON values those bytes are
the RFC 8785 canonical form, so equal values always share one id. Objects live
at ``objects/sha256/<first two hex>/<remaining 62 hex>``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.errors import IntegrityError
from mcp_orchestration.core.fsutil import UnsafeFileError, WriteBatch, read_regular, require_real_directories
from mcp_orchestration.security.ids import check_artifact_id

_HEX_ID = re.compile(r"[0-9a-f]{64}")
_OBJECT_MODE = 0o400
MAX_OBJECT_BYTES = 64 * 1024 * 1024  # far above any object a publish writes; a bound for readers


def digest_of(data: bytes) -> str:
    """The object id of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ContentStore:
    """Immutable objects under ``root``, addressed by SHA-256 of their bytes.

    New objects are created in place (exclusively, never replacing anything):
    no index refers to them until the writer's barrier has made them durable,
    so a reader can never see one half-written, and a leftover from a crash is
    caught by its hash and replaced when the same content is stored again.
    """

    def __init__(self, root: Path) -> None:
        self.root = root / "sha256"
        self._root = str(self.root)

    def path_for(self, object_id: str) -> Path:
        """The object's path; the id is checked before it touches the filesystem."""
        return Path(self._location(object_id))

    def _location(self, object_id: str) -> str:
        check_artifact_id(object_id)
        return f"{self._root}/{object_id[:2]}/{object_id[2:]}"

    def put_bytes(self, data: bytes, batch: WriteBatch | None = None) -> str:
        """Store ``data`` (once) and return its id; a corrupted copy on disk is replaced.

        With a ``batch`` the object is durable only after the batch's barrier;
        without one it is durable on return.
        """
        own_batch = batch is None
        batch = WriteBatch(self.root) if batch is None else batch
        object_id = digest_of(data)
        location = self._location(object_id)
        _require_real_fanout(location)
        try:
            batch.create(location, data, mode=_OBJECT_MODE)
        except FileExistsError:
            if not self._is_intact(location, object_id):
                batch.write(Path(location), data, mode=_OBJECT_MODE)
            batch.include(location)
        if own_batch:
            batch.barrier()
        return object_id

    def put_replacing(self, data: bytes, batch: WriteBatch) -> str:
        """Store ``data`` by atomic rename (temporary file, then rename), durable only at ``batch``'s barrier.

        For an object that something already refers to when it is written (a
        head's own copy, written after it became ``HEAD``): a writer killed
        midway leaves no object, never a torn one.
        """
        object_id = digest_of(data)
        location = Path(self._location(object_id))
        _require_real_fanout(str(location))
        if not self._is_intact(str(location), object_id):
            location.parent.mkdir(mode=0o700, exist_ok=True)
            batch.write(location, data, mode=_OBJECT_MODE)
        return object_id

    def put_json(self, value: Any, batch: WriteBatch | None = None) -> str:
        """Store the canonical bytes of a JSON value and return its id."""
        return self.put_bytes(canonical_bytes(value), batch)

    def get_bytes(self, object_id: str) -> bytes:
        """The object's bytes, re-hashed: corrupted bytes are never returned."""
        try:
            data = _read_file(self._location(object_id))
        except FileNotFoundError:
            # Every id read here comes from the signed index: a missing object is damage.
            raise IntegrityError(f"Object {object_id} is referenced by the index but missing from the store.") from None
        except OSError:
            raise IntegrityError(
                f"Object {object_id} is not a regular file of the store (a link, a FIFO or device, or too large)."
            ) from None
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
                object_id = fanout.name + entry.name
                if _HEX_ID.fullmatch(object_id):
                    yield object_id

    def _is_intact(self, location: str, object_id: str) -> bool:
        try:
            return digest_of(_read_file(location)) == object_id
        except OSError:
            return False


def _read_file(location: str) -> bytes:
    """A whole object file, through the one safe open (plain system calls: it is hot).

    Links are not followed and anything but a regular file of bounded size is
    refused (:class:`~mcp_orchestration.core.fsutil.UnsafeFileError`), so a planted
    link, FIFO or device can make a reader neither open a file outside the
    store, nor hang, nor read without end.
    """
    directory, name = os.path.split(location)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # the fan-out directory is a link, or not a directory
            raise UnsafeFileError(errno.ELOOP, "is in a directory that is a link", location) from None
        raise
    try:
        return read_regular(name, MAX_OBJECT_BYTES, dir_fd=fd)
    finally:
        os.close(fd)


def _require_real_fanout(location: str) -> None:
    """Refuse to write an object through a fan-out directory that was replaced by a link."""
    try:
        require_real_directories(Path(os.path.dirname(location)), [""])
    except UnsafeFileError:
        raise IntegrityError(
            f"The object directory {os.path.dirname(location)} is not a directory of the store (a link?)."
        ) from None
