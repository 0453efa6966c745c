"""Backup and restore of a whole store as one tar stream, verified at both ends.

A backup is a plain ustar stream, written and read as it goes (the
container's root is read-only, and a store can be large): ``MANIFEST.json``
first, then the store's files in path order. The manifest records the format,
when the backup was made, the index version, head, key-history version and
root key it was taken from, and each file's path, size and SHA-256.

A backup holds only what the signed index vouches for, laid out as the store
lays it out: the objects (``objects/sha256/<2 hex>/<62 hex>``, each named by
the hash of its bytes), ``index/HEAD`` (signed), ``index/accepted`` (the
rollback guard, recorded at the backed-up version) and the key history
``keys/<8 digits>.json`` (cross-signed from the root). Drafts are left out:
they are unsigned working state, and a restored store starts without any.
Also left out: dot files (locks, writers' temporary files), ``index/verified``
(the restore's own deep check writes a fresh one) and damaged leftovers of
interrupted publishes (``verify --deep`` reports them; no index refers to
them). Any other file in the store stops the backup. The store never holds a
private key, so no backup does either.

The manifest is not signed. What vouches for the content is the signed index
inside it, deep-verified under the store lock before a backup is written and
again before a restore is put in place (pin the root with ``--expect-key``);
the manifest catches damage, lists every file before any is extracted, and is
bound to that index.

A restore accepts only what a backup writes: the manifest first, listing only
paths of the layout above (an object's hash must be its name), sizes bounded;
then regular-file members it lists, once each, with the listed size and hash.
They go into a private staging directory beside the store; only when every
listed file has arrived, the staged store passes ``verify --deep`` and its
rollback guard is exactly the verified version is it renamed into place.
Objects no index version refers to (left by interrupted publishes) are
restored and counted: content-addressed, they hold only what their name says,
nothing reads them, and a signed head among them newer than ``HEAD`` is a
rollback. On any failure the staging directory is removed and the existing
store is untouched. Restores take a lock in the home, so one at a time runs,
and each first removes the staging directories a crashed one left.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.errors import (
    ConflictError,
    IntegrityError,
    LimitError,
    NotInitializedError,
    UsageError,
    VerificationError,
)
from mcp_orchestration.core.fsutil import WriteBatch, ensure_dir, exclusive_lock, fsync_dir
from mcp_orchestration.store.cas import MAX_OBJECT_BYTES, _read_file, digest_of
from mcp_orchestration.store.deep import VerifyReport
from mcp_orchestration.store.guard import Guard
from mcp_orchestration.store.repository import Repository
from mcp_orchestration.trust.history import KeyHistory

FORMAT = "mcp-orchestration-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
STORE_PREFIX = "storage/"
MAX_FILE_BYTES = MAX_OBJECT_BYTES
MAX_FILES = 1_000_000  # ten times the objects of a 10,000-profile store
MAX_TOTAL_BYTES = 16 << 30
MAX_MANIFEST_BYTES = 256 * MAX_FILES  # an entry takes about 170 bytes

HEAD_PATH = STORE_PREFIX + "index/HEAD"
GUARD_PATH = STORE_PREFIX + "index/accepted"
OBJECTS_PREFIX = STORE_PREFIX + "objects/sha256/"
_REQUIRED = (HEAD_PATH, GUARD_PATH, STORE_PREFIX + "keys/00000001.json")

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_NOT_ARCHIVED = frozenset({"drafts", "index/verified"})  # unsigned working state; a checkpoint
# The store's own layout (store/layout.py, store/cas.py, store/keyhistory.py), and nothing else.
_STORE_FILE = re.compile(
    r"storage/(?:objects/sha256/[0-9a-f]{2}/[0-9a-f]{62}|index/HEAD|index/accepted|keys/[0-9]{8}\.json)"
)
_HEX = re.compile(r"[0-9a-f]{64}")
RESTORE_LOCK = ".restore.lock"
_STAGING_PREFIX = ".storage.restore-"
_STAGING = re.compile(r"\.storage\.restore-[a-z0-9_]+")  # tempfile.mkdtemp's names
_FINGERPRINT = re.compile(r"SHA256:[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_REFUSED = (
    "Nothing was restored and the existing store is untouched. Use another backup, made by "
    "`mcp-orchestration backup`, and pin the root key with --expect-key."
)


@dataclass(frozen=True)
class FileRecord:
    """One archived file: its member name, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a backup holds and which verified index it was taken from."""

    created_at: str
    index_version: int
    head_id: str
    key_history_version: int
    root_fingerprint: str
    files: tuple[FileRecord, ...]

    def summary(self) -> dict[str, Any]:
        """The manifest without its file list, for reports."""
        return {
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "index_version": self.index_version,
            "head_id": self.head_id,
            "key_history_version": self.key_history_version,
            "root_fingerprint": self.root_fingerprint,
            "files": len(self.files),
            "bytes": sum(record.size for record in self.files),
        }

    def to_bytes(self) -> bytes:
        """The canonical (RFC 8785) bytes: the only form :func:`parse_manifest` accepts."""
        document = {**asdict(self), "format": FORMAT, "format_version": FORMAT_VERSION}
        return canonical_bytes(document)


@dataclass(frozen=True)
class Restored:
    """A restore's outcome: the store put in place, and where the one it replaced was kept."""

    manifest: Manifest
    replaced: Path | None
    replaced_index_version: int | None
    unreferenced_objects: int

    @property
    def older_than_replaced(self) -> bool:
        """Whether the restored index is older than the one it replaced (hosts' deploy state will refuse it)."""
        replaced = self.replaced_index_version
        return replaced is not None and replaced > self.manifest.index_version


# -- backup ------------------------------------------------------------------------------


def backup(index: Repository, out: BinaryIO, *, expect_root: str | None, now: datetime) -> Manifest:
    """Deep-verify the store, then stream it to ``out``, holding the lock every writer takes.

    No publish or rotation can run meanwhile, so the archive is one
    consistent, verified state. Drafts are not archived, so their lock is not needed.
    """
    if not index.layout.storage_dir.is_dir():
        raise NotInitializedError(f"There is no store at {index.layout.storage_dir} to back up.")
    with index.write_lock():
        report = index.verify(deep=True, expect_root=expect_root)
        files = _Files(index.layout.storage_dir, _verified_guard(report))
        manifest = Manifest(
            created_at=now.strftime(_TIME_FORMAT),
            index_version=report.index_version,
            head_id=report.head_id,
            key_history_version=report.key_history_version,
            root_fingerprint=index.load_history().root_fingerprint,
            files=files.survey(),
        )
        _write_archive(out, files, manifest, int(now.timestamp()))
    return manifest


def _verified_guard(report: VerifyReport) -> Guard:
    """The rollback guard a verified index implies: it accepted exactly its own head and key history."""
    return Guard(report.index_version, report.key_history_version)


@contextlib.contextmanager
def new_file(path: Path, *, replace: bool) -> Iterator[BinaryIO]:
    """A file that appears at ``path``, mode 0600, only once the block has written all of it.

    The data goes to a temporary file beside ``path``, fsynced, then linked
    into place (renamed over it with ``replace``): a failure or a crash never
    leaves a partial archive under the real name, and nothing is overwritten
    unless asked.
    """
    if not replace and path.exists():
        raise _file_exists(path)
    temp = path.with_name(f".{path.name}.tmp-{os.urandom(8).hex()}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UsageError(
            f"Cannot create the backup file {path}: {exc.strerror or type(exc).__name__}.",
            hint=f"Its directory, {path.parent}, must exist and be writable; or pass --out - to write to stdout.",
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                raise _file_exists(path) from None
        fsync_dir(path.parent)
    finally:
        temp.unlink(missing_ok=True)


def _file_exists(path: Path) -> ConflictError:
    return ConflictError(
        f"{path} already exists; a backup never overwrites a file.", hint="Choose another name, or pass --force."
    )


class _Files:
    """The files of a store to archive, and their bytes as archived."""

    def __init__(self, storage_dir: Path, guard: Guard) -> None:
        self._storage_dir = storage_dir
        self._guard = guard.encode()

    def survey(self) -> tuple[FileRecord, ...]:
        """Every file to archive with its size and hash, checked against the bounds a restore enforces.

        An object whose bytes are not its name is a damaged leftover no index
        refers to (the deep check just passed): it is left out.
        """
        records = []
        for path in _store_files(self._storage_dir):
            data = self.read(path)
            record = FileRecord(path, len(data), digest_of(data))
            if not _is_misnamed_object(record):
                records.append(record)
        _check_listing(records)
        return tuple(records)

    def read(self, path: str) -> bytes:
        """A file's bytes; the rollback guard is the verified index's, not a possibly lagging one on disk."""
        if path == GUARD_PATH:
            return self._guard
        return _read_file(str(self._storage_dir / path.removeprefix(STORE_PREFIX)))


def _store_files(directory: Path, prefix: str = "") -> Iterator[str]:
    """The store's files under ``directory`` as archive paths, depth first in name order.

    Dot files, drafts and the checkpoint are skipped; anything else outside the
    store's layout (a link, a stray file) stops the backup rather than being archived.
    """
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        relative = prefix + entry.name
        if entry.name.startswith(".") or relative in _NOT_ARCHIVED:
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _store_files(Path(entry.path), relative + "/")
        elif entry.is_file(follow_symlinks=False) and _is_store_path(STORE_PREFIX + relative):
            yield STORE_PREFIX + relative
        else:
            raise IntegrityError(
                f"{STORE_PREFIX}{ascii(relative)[1:-1]} is not part of the store's layout (objects, index/HEAD, "
                "index/accepted, keys): a backup holds nothing else.",
                hint="Move it out of the store, then run the backup again.",
            )


def _write_archive(out: BinaryIO, files: _Files, manifest: Manifest, mtime: int) -> None:
    """The manifest, then each listed file, re-read and checked against the manifest as it is written."""
    writer = _ArchiveWriter(out, mtime)
    writer.add(MANIFEST_NAME, manifest.to_bytes())
    for record in manifest.files:
        data = files.read(record.path)
        if digest_of(data) != record.sha256:
            raise ConflictError(
                f"{record.path} changed while it was being backed up.",
                hint="Something writes the store without taking its lock; find it, then run the backup again.",
            )
        writer.add(record.path, data)
    writer.close()


def _mode_for(path: str) -> int:
    """Objects are read-only, as the store creates them; every other file is 0600."""
    return 0o400 if path.startswith(f"{STORE_PREFIX}objects/") else 0o600


class _ArchiveWriter:
    """Regular-file members as ustar blocks, straight to a stream.

    ``tarfile.TarFile`` keeps every member's header for the archive's
    lifetime; writing the blocks here keeps memory flat at any store size.
    """

    def __init__(self, out: BinaryIO, mtime: int) -> None:
        self._out = out
        self._mtime = mtime
        self._size = 0

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), _mode_for(name), self._mtime
        self._write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
        self._write(data)
        self._write(bytes(-len(data) % _BLOCK))

    def close(self) -> None:
        """The end-of-archive marker (two zero blocks), padded to a whole record as tar writes it."""
        self._write(bytes(2 * _BLOCK))
        self._write(bytes(-self._size % _RECORD))

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._size += len(data)


# -- the manifest ------------------------------------------------------------------------


def parse_manifest(data: bytes) -> Manifest:
    """A manifest, strictly: exactly the bytes ``Manifest.to_bytes`` writes, every path safe, every size bounded."""
    try:
        raw = json.loads(data)
        if _field(raw, "format") != FORMAT or _field(raw, "format_version") != FORMAT_VERSION:
            raise UsageError(
                f"MANIFEST.json is not a version {FORMAT_VERSION} mcp-orchestration backup manifest.",
                hint="Restore it with the version of mcp-orchestration that made it.",
            )
        manifest = Manifest(
            created_at=_text(raw, "created_at", _TIMESTAMP),
            index_version=_count(raw, "index_version", 1),
            head_id=_text(raw, "head_id", _HEX),
            key_history_version=_count(raw, "key_history_version", 1),
            root_fingerprint=_text(raw, "root_fingerprint", _FINGERPRINT),
            files=tuple(_file_record(item) for item in _file_list(raw)),
        )
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"MANIFEST.json is not a valid backup manifest: {exc}.") from None
    if manifest.to_bytes() != data:
        raise IntegrityError("MANIFEST.json was edited: it is not in the exact form a backup writes.")
    _check_listing(manifest.files)
    return manifest


def _field(raw: object, name: str) -> object:
    if not isinstance(raw, dict) or name not in raw:
        raise ValueError(f"the field {name!r} is missing")
    return raw[name]


def _text(raw: object, name: str, pattern: re.Pattern[str]) -> str:
    value = _field(raw, name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"the field {name!r} is malformed")
    return value


def _count(raw: object, name: str, low: int) -> int:
    value = _field(raw, name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 2**53:
        raise ValueError(f"the field {name!r} is not a number in range")
    return value


def _file_list(raw: object) -> list[object]:
    files = _field(raw, "files")
    if not isinstance(files, list):
        raise ValueError("the field 'files' is not a list")
    if len(files) > MAX_FILES:
        raise LimitError(f"The backup lists {len(files)} files; the limit is {MAX_FILES}.")
    return files


def _file_record(raw: object) -> FileRecord:
    path = _field(raw, "path")
    if not isinstance(path, str) or not _is_store_path(path):
        raise ValueError(f"the path {str(path)[:80]!a} is not a file of the store's layout")
    record = FileRecord(path, _count(raw, "size", 0), _text(raw, "sha256", _HEX))
    if _is_misnamed_object(record):
        raise ValueError(f"the object {path} is listed with a hash that is not its name")
    return record


def _is_store_path(path: str) -> bool:
    """One of the store's own signed or verifiable files: so no absolute path, '..', dot file or stray name."""
    return _STORE_FILE.fullmatch(path) is not None


def _is_misnamed_object(record: FileRecord) -> bool:
    """Whether ``record`` is an object whose hash is not the id its path names."""
    object_id = record.path.removeprefix(OBJECTS_PREFIX).replace("/", "")
    return record.path.startswith(OBJECTS_PREFIX) and object_id != record.sha256


def _check_listing(files: Sequence[FileRecord]) -> None:
    """Refuse a listing a restore could not take: too much data, a name twice, no index or guard or key history."""
    if len(files) > MAX_FILES:
        raise LimitError(f"The store has {len(files)} files; a backup holds at most {MAX_FILES}.")
    large = next((record for record in files if record.size > MAX_FILE_BYTES), None)
    if large is not None:
        raise LimitError(f"{large.path} is {large.size} bytes; the limit is {MAX_FILE_BYTES} per file.")
    total = sum(record.size for record in files)
    if total > MAX_TOTAL_BYTES:
        raise LimitError(f"The store holds {total} bytes; a backup holds at most {MAX_TOTAL_BYTES}.")
    paths = {record.path for record in files}
    if len(paths) != len(files):
        raise IntegrityError("MANIFEST.json lists a file twice.")
    missing = [path for path in _REQUIRED if path not in paths]
    if missing:
        raise IntegrityError(f"The backup lacks {missing[0]}: it holds no complete store.")


# -- restore -----------------------------------------------------------------------------


def restore(
    storage_dir: Path,
    source: BinaryIO,
    *,
    expect_root: str | None,
    force: bool,
    now: datetime,
    check_history: Callable[[KeyHistory], None] | None = None,
) -> Restored:
    """Check a backup completely in a staging directory beside ``storage_dir``, then move it into place.

    ``check_history`` sees the staged store's verified key history before it is
    installed (the host refuses one that differs from the history it accepted).

    Without ``force`` an existing store is refused before a byte is read; with
    it, the existing store is kept beside as ``storage.pre-restore-<time>``.
    The home's restore lock is held throughout: a staging directory found
    while holding it belongs to no running restore, so it can be removed.
    """
    home = storage_dir.parent
    ensure_dir(home)
    with exclusive_lock(home / RESTORE_LOCK):
        if not force and _holds_anything(storage_dir):
            raise _store_exists(storage_dir)
        _remove_stale_staging(home)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=home))
        try:
            manifest, report = _stage(source, staging, expect_root, check_history)
            replaced, replaced_version = _install(staging, storage_dir, force=force, now=now)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # already gone once installed
    return Restored(manifest, replaced, replaced_version, report.unreferenced_objects)


def _remove_stale_staging(home: Path) -> None:
    """Remove the staging directories crashed restores left in ``home`` (the caller holds the restore lock)."""
    with os.scandir(home) as entries:
        stale = [
            entry.path for entry in entries if _STAGING.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
        ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def _stage(
    source: BinaryIO, staging: Path, expect_root: str | None, check_history: Callable[[KeyHistory], None] | None
) -> tuple[Manifest, VerifyReport]:
    """Extract into ``staging`` and deep-verify it; every refusal says the existing store was not touched."""
    try:
        manifest = _extract(_ArchiveReader(source), staging)
        report = _check_staged(staging, manifest, expect_root)
        if check_history is not None:
            check_history(Repository(staging).load_history())
    except (VerificationError, UsageError) as error:
        raise type(error)(error.message, hint=_REFUSED) from error
    except NotInitializedError:
        raise IntegrityError("The archive holds no initialised store.", hint=_REFUSED) from None
    return manifest, report


def _extract(reader: _ArchiveReader, staging: Path) -> Manifest:
    """Write each member the manifest lists into ``staging`` after checking its header, size and hash."""
    manifest = _read_manifest(reader)
    expected = {record.path: record for record in manifest.files}
    done: set[str] = set()
    batch = WriteBatch(staging)
    while (info := reader.next()) is not None:
        name = _member_name(info)
        record = expected.get(name)
        if record is None or name in done:
            problem = "twice" if name in done else "but MANIFEST.json does not list it"
            raise IntegrityError(f"The archive holds {name} {problem}.")
        if info.size != record.size:
            raise IntegrityError(f"{name} is {info.size} bytes in the archive but {record.size} in MANIFEST.json.")
        data = reader.data(info)
        if digest_of(data) != record.sha256:
            raise IntegrityError(f"{name} does not match its hash in MANIFEST.json: the archive was altered.")
        batch.create(str(staging / name.removeprefix(STORE_PREFIX)), data, _mode_for(name))
        done.add(name)
    missing = sorted(expected.keys() - done)
    if missing:
        raise IntegrityError(
            f"The archive is incomplete: {len(missing)} listed file(s) are missing, first {missing[0]}."
        )
    batch.barrier()
    return manifest


def _read_manifest(reader: _ArchiveReader) -> Manifest:
    """The first member, which must be the manifest, of bounded size (tar sizes can even be negative)."""
    info = reader.next()
    if info is None or info.name != MANIFEST_NAME or not _is_regular(info):
        raise IntegrityError("The archive does not start with MANIFEST.json: it is not a backup.")
    if not 0 <= info.size <= MAX_MANIFEST_BYTES:
        raise LimitError(f"MANIFEST.json claims {info.size} bytes; at most {MAX_MANIFEST_BYTES} are accepted.")
    return parse_manifest(reader.data(info))


def _member_name(info: tarfile.TarInfo) -> str:
    """The member's name, if it is a regular file at a safe path (checked before any of its data is read)."""
    shown = ascii(info.name[:80])
    if not _is_regular(info):
        raise IntegrityError(
            f"The archive member {shown} is not a regular file (tar type {info.type.decode('latin-1')!a})."
        )
    if not _is_store_path(info.name):
        raise IntegrityError(f"The archive member {shown} is not a file of the store's layout.")
    return info.name


def _is_regular(info: tarfile.TarInfo) -> bool:
    return info.type in (tarfile.REGTYPE, tarfile.AREGTYPE)


def _check_staged(staging: Path, manifest: Manifest, expect_root: str | None) -> VerifyReport:
    """Run ``verify --deep`` on the staged store and check that it is the index the manifest names.

    The guard must be exactly the verified version, as a backup records it:
    one set lower would let an older signed index be replayed unnoticed later.
    """
    index = Repository(staging)
    report = index.verify(deep=True, expect_root=expect_root)
    if index.guard() != _verified_guard(report):
        raise IntegrityError(
            f"{GUARD_PATH} (the rollback guard) is not at the verified index version {report.index_version}: "
            "the archive was altered."
        )
    found = {
        "index_version": report.index_version,
        "head_id": report.head_id,
        "key_history_version": report.key_history_version,
        "root_fingerprint": index.load_history().root_fingerprint,
    }
    altered = [name for name, value in found.items() if getattr(manifest, name) != value]
    if altered:
        raise IntegrityError(
            f"MANIFEST.json does not describe the archived store (its {', '.join(altered)} differ from the "
            "verified index): the manifest was altered."
        )
    return report


def _install(staging: Path, storage_dir: Path, *, force: bool, now: datetime) -> tuple[Path | None, int | None]:
    """Rename the verified staging directory to ``storage/``, moving an existing store aside first if ``force``.

    Returns where the replaced store was kept and its guard's version. The
    store's lock is held across the swap; a writer that was waiting for it
    finds the lock file gone from ``storage/`` and locks the new store instead
    (``fsutil.exclusive_lock``), so none writes into it unlocked.
    """
    home = storage_dir.parent
    if not _holds_anything(storage_dir):
        _rename_staged(staging, storage_dir)
        fsync_dir(home)
        return None, None
    if not force:
        raise _store_exists(storage_dir)
    aside = home / f"storage.pre-restore-{now:%Y%m%dT%H%M%SZ}"
    if aside.exists():
        raise ConflictError(f"{aside} already exists.", hint="Run the restore again in a second.")
    index = Repository(storage_dir)
    with index.write_lock():  # no publish is half done when the store is moved aside
        replaced_version = _accepted_version(index)
        os.rename(storage_dir, aside)
        try:
            _rename_staged(staging, storage_dir)
        except BaseException:
            os.rename(aside, storage_dir)
            raise
    fsync_dir(home)
    return aside, replaced_version


def _rename_staged(staging: Path, storage_dir: Path) -> None:
    """Rename ``staging`` to ``storage_dir`` (absent or empty); a store that appeared meanwhile is a conflict."""
    try:
        os.rename(staging, storage_dir)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise _store_exists(storage_dir) from None
        raise


def _holds_anything(storage_dir: Path) -> bool:
    """Whether ``storage_dir`` exists and is not an empty directory."""
    try:
        with os.scandir(storage_dir) as entries:
            return next(entries, None) is not None
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True


def _accepted_version(index: Repository) -> int | None:
    """The highest index version the store being replaced accepted, if its guard is readable."""
    try:
        guard = index.guard()
    except VerificationError:
        return None
    return guard.index_version if guard is not None else None


def _store_exists(storage_dir: Path) -> ConflictError:
    return ConflictError(
        f"A store already exists at {storage_dir}.",
        hint=f"Pass --force to keep it as {storage_dir.name}.pre-restore-<time> beside it and restore over it.",
    )


class _ArchiveReader:
    """The members of a tar stream, read strictly in order, without seeking (stdin works).

    Headers are parsed one block at a time with their checksum checked; no
    member list accumulates, so memory stays flat at any archive size.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source

    def next(self) -> tarfile.TarInfo | None:
        """The next member's header, or None at the end of the archive."""
        block = self._read(_BLOCK)
        if not block.strip(b"\0"):
            self._finish()
            return None
        try:
            return tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, ValueError):
            raise IntegrityError("The archive has a damaged member header.") from None

    def data(self, info: tarfile.TarInfo) -> bytes:
        """The member's bytes (its size was bounded by the caller), skipping the block padding."""
        data = self._read(info.size)
        self._read(-info.size % _BLOCK)
        return data

    def _read(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self._source.read(size)
            if not chunk:
                raise IntegrityError("The archive is truncated.")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _finish(self) -> None:
        """Read to the end: only zero padding, at most one record, may follow the end marker.

        Reading it all also lets a writer piping the archive in finish without a broken pipe.
        """
        trailing = 0
        while chunk := self._source.read(_RECORD):
            trailing += len(chunk)
            if trailing > _RECORD or chunk.strip(b"\0"):
                raise IntegrityError("Data follows the end of the archive.")
