"""Where a store keeps what, and the check that its directories are its own.

On disk, under ``storage/``::

    objects/sha256/ab/cdef...   every object (artifacts, entries, trees, roots, head envelopes)
    index/HEAD                  the current head, a DSSE envelope (also kept in objects/)
    index/accepted              the highest head version this store has accepted
    index/verified              the last head whose whole chain was verified
    keys/00000001.json ...      the public key history
    .lock                       held for every write
"""

from __future__ import annotations

from pathlib import Path

from mcp_orchestration.core.errors import IntegrityError
from mcp_orchestration.core.fsutil import UnsafeFileError, require_real_directories

_DIRECTORIES = ("index", "keys", "objects", "objects/sha256")  # drafts/ is opened through no-follow descriptors


class Layout:
    """The paths of one store."""

    def __init__(self, storage_dir: Path) -> None:
        self.storage_dir = storage_dir
        self.objects_dir = storage_dir / "objects"
        self.index_dir = storage_dir / "index"
        self.keys_dir = storage_dir / "keys"
        self.head_path = self.index_dir / "HEAD"
        self.accepted_path = self.index_dir / "accepted"
        self.verified_path = self.index_dir / "verified"
        self.lock_path = storage_dir / ".lock"

    def check(self) -> None:
        """The store's own directories are real directories: a link in their place would lead reads and writes
        outside the store."""
        try:
            require_real_directories(self.storage_dir, _DIRECTORIES)
        except UnsafeFileError as exc:
            raise IntegrityError(
                f"{exc.filename} is not a directory of the store (a link?): the store's layout was tampered with."
            ) from None
