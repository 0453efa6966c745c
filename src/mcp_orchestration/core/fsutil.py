"""Crash-safe file primitives: atomic replace, no-clobber create, exclusive lock.

A file is either the old bytes or the new bytes after a crash, never a mix:
the data goes to a temporary file in the same directory, which is fsynced,
renamed over the target, and the directory is fsynced so the rename itself
survives a power loss. Files carry their final permissions from the moment
they are created.

A :class:`WriteBatch` makes many new files durable with one barrier (Linux
``syncfs``), so that a publish writing half a dozen objects costs about as
much as one atomic write; where ``syncfs`` is missing it falls back to an
fsync per file and per directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

_TEMP_PREFIX = ".tmp-"
_SAFE_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFileError(OSError):
    """A path that ``read_regular`` refuses: a link, a FIFO, a device, a directory, or a file over the limit."""


def require_real_directories(base: Path, parts: Iterable[str]) -> None:
    """Refuse if any of ``parts`` (paths relative to ``base``) exists as anything but a real directory.

    A store's own directories are never links: one planted in place of
    ``index/`` or an object fan-out directory would lead reads, and writes,
    outside the store. (``O_NOFOLLOW`` guards only the last component of a path.)
    """
    for part in parts:
        path = base / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeFileError(errno.ELOOP, "is not a directory of the store (a link?)", str(path))


def read_regular(path: str | os.PathLike[str], limit: int, *, dir_fd: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them, without following a link.

    The one way the product reads a store, key or config file. ``O_NOFOLLOW``
    refuses a link as the last component; ``O_NONBLOCK`` keeps a FIFO from
    hanging the open; ``fstat`` on the open descriptor refuses anything but a
    regular file (a device such as ``/dev/zero`` would never end); and a file
    larger than ``limit``, or one that grows past it while read, is refused
    rather than read whole. ``FileNotFoundError`` and ``PermissionError`` pass
    through unchanged; everything else refused is :class:`UnsafeFileError`.
    """
    return read_regular_stat(path, limit, dir_fd=dir_fd)[0]


def read_regular_stat(
    path: str | os.PathLike[str], limit: int, *, dir_fd: int | None = None
) -> tuple[bytes, os.stat_result]:
    """:func:`read_regular`, with the ``fstat`` of the very descriptor read (its mode, owner, size)."""
    fd = _open_regular(path, _SAFE_READ_FLAGS, dir_fd)
    try:
        info = os.fstat(fd)
        _check_regular(info, limit, path)
        return _read_to_end(fd, info.st_size, limit, path), info
    finally:
        os.close(fd)


def read_named_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The regular file an operator named, following a link at that path, at most ``limit`` bytes.

    An operator's own path (a key or passphrase secret, ``--file``, a public
    key, a catalog) may legitimately be a link: Kubernetes mounts secrets and
    config maps as links into ``..data/``. So the path is resolved first, and
    then the file reached is read with :func:`read_regular`: it must still be a
    regular file within ``limit``, never a FIFO or a device. Store paths never
    come through here: a link inside the store is always refused.
    """
    return read_regular(os.path.realpath(path), limit)


def open_regular_stream(path: str | os.PathLike[str]) -> BinaryIO:
    """A binary stream of the regular file an operator named (a link at the path is followed), unbounded.

    For large inputs read as a stream (a backup archive). A FIFO or device is
    refused without blocking; a stream from a pipe is the caller's ``-``.
    """
    return _stream(_open_regular(path, _SAFE_READ_FLAGS & ~os.O_NOFOLLOW, None), path)


def open_regular_stream_at(dir_fd: int, name: str) -> BinaryIO:
    """:func:`open_regular_stream` for ``name`` in an open directory (:func:`open_directory`): a link is refused.

    ``name`` is one path component (``ValueError`` otherwise): ``O_NOFOLLOW``
    guards only the last, so a linked folder in a longer path would be
    followed. Reach a file deeper down with :func:`open_directory`.
    """
    return _stream(_open_regular(_single_component(name), _SAFE_READ_FLAGS, dir_fd), name)


def _single_component(name: str) -> str:
    """``name``, if it is one path component: not empty, ``.`` or ``..``, and without ``/`` or NUL."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"{name!a} is not a single path component")
    return name


def _stream(fd: int, path: str | os.PathLike[str]) -> BinaryIO:
    """A blocking binary stream of the open ``fd``, or :class:`UnsafeFileError` (fd closed) if not a regular file."""
    try:
        _check_regular(os.fstat(fd), None, path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_regular(path: str | os.PathLike[str], flags: int, dir_fd: int | None) -> int:
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise _refusal(exc, path) from None


def _refusal(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """The error for a failed safe open: :class:`UnsafeFileError` for what is not a regular file, else ``exc``."""
    if exc.errno in (errno.ELOOP, errno.EMLINK):  # EMLINK: FreeBSD's answer to O_NOFOLLOW on a link
        return UnsafeFileError(errno.ELOOP, "is a symbolic link", str(path))
    if exc.errno == errno.EISDIR:
        return UnsafeFileError(errno.EISDIR, "is a directory", str(path))
    if exc.errno == errno.ENXIO:  # a socket, or a FIFO with no writer
        return UnsafeFileError(errno.ENXIO, "is not a regular file", str(path))
    return exc


def _check_regular(info: os.stat_result, limit: int | None, path: str | os.PathLike[str]) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise UnsafeFileError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError(errno.EINVAL, "is not a regular file", str(path))
    if limit is not None and info.st_size > limit:
        raise UnsafeFileError(errno.EFBIG, f"is larger than {limit} bytes", str(path))


def _read_to_end(fd: int, size: int, limit: int, path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, ``size`` of them by ``fstat``, refusing more than ``limit`` (it may grow meanwhile).

    Every object read comes here, so the common case is two system calls: one
    read of the whole size and a byte more, and the read that sees the end.
    """
    data = os.read(fd, size + 1)
    if len(data) <= size and not os.read(fd, 1):
        return data
    os.lseek(fd, 0, os.SEEK_SET)  # grown, or a short read: start over, in bounded chunks
    chunks = []
    total = 0
    while total <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise UnsafeFileError(errno.EFBIG, f"is larger than {limit} bytes", str(path))
    return b"".join(chunks)


def open_directory(base: Path, parts: Sequence[str], *, create: bool, mode: int = 0o700) -> int:
    """A descriptor of the directory ``base/parts[0]/parts[1]/...``, no component under ``base`` a link.

    ``base`` is the operator's configured location and is opened as given; each
    part is one name, opened with ``O_NOFOLLOW`` relative to the directory
    before it, so a link planted anywhere below ``base`` is refused
    (:class:`UnsafeFileError`) rather than followed out of it. With ``create``
    missing parts are made with ``mode``; without, ``FileNotFoundError`` passes
    through. The caller closes the descriptor.
    """
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in map(_single_component, parts):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=fd)
            try:
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
                    raise UnsafeFileError(exc.errno, "is a link or not a directory", part) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write_at(dir_fd: int, name: str, data: bytes, mode: int = 0o600) -> None:
    """Replace the file ``name`` in the open directory ``dir_fd`` with ``data``, crash-safely.

    Like :func:`atomic_write`, but every step is relative to the descriptor, so
    the write lands in that directory whatever its path has become. A link at
    ``name`` is replaced, never followed.
    """
    temp = f"{_TEMP_PREFIX}{os.urandom(8).hex()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def ensure_dir(path: Path, mode: int = 0o700) -> None:
    """Create ``path`` and its parents with ``mode`` (existing ones are left as they are)."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_temp(directory: Path, data: bytes, mode: int, *, sync: bool = True) -> Path:
    """Write ``data`` to a new temporary file in ``directory`` created with ``mode`` (fsynced if ``sync``)."""
    name = directory / f"{_TEMP_PREFIX}{os.urandom(8).hex()}"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        _write_all(fd, data)
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        name.unlink(missing_ok=True)
        raise
    os.close(fd)
    return name


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    _rename_into_place(_write_temp(path.parent, data, mode), path)
    fsync_dir(path.parent)


def _rename_into_place(temp: Path, path: Path) -> None:
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs(2)`` where it exists (Linux), else None; looked up on first use (ctypes is slow to
    import, and a reader never needs it)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return function


class WriteBatch:
    """New files written without their own fsync, made durable together by :meth:`barrier`.

    Nothing written through a batch may be relied on until ``barrier`` returns.
    Files staged with :meth:`stage` are written but not yet renamed: after the
    barrier, :meth:`commit` renames each into place and fsyncs its directory,
    so the staged file (a head, say) can never be durable before the files
    it refers to.
    """

    def __init__(self, anchor: Path) -> None:
        self.anchor = anchor
        self._written: list[str] = []
        self._staged: list[tuple[Path, Path]] = []

    def create(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Create a new file at ``path`` (and its directory) in place; ``FileExistsError`` if it exists.

        Not atomic: only for files nothing refers to before the barrier, whose
        content can be checked after a crash (content-addressed objects).
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, mode)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, flags, mode)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        self._written.append(path)

    def write(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        """Create or replace ``path`` atomically now; durable after the barrier."""
        _rename_into_place(_write_temp(path.parent, data, mode, sync=False), path)
        self._written.append(str(path))

    def include(self, path: str | Path) -> None:
        """Flush an existing file at the barrier too (a crashed writer may have left it unflushed)."""
        self._written.append(str(path))

    def stage(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        """Write ``data`` for ``path`` to a temporary file, to be renamed by :meth:`commit`."""
        temp = _write_temp(path.parent, data, mode, sync=False)
        self._written.append(str(temp))
        self._staged.append((temp, path))

    def barrier(self) -> None:
        """Make every file written or staged so far durable."""
        if not self._written:
            return
        syncfs = _syncfs()
        if syncfs is not None:
            import ctypes

            fd = os.open(self.anchor, os.O_RDONLY | os.O_DIRECTORY)
            try:
                failed = syncfs(fd) != 0
                error = ctypes.get_errno()
            finally:
                os.close(fd)
            if not failed:
                self._written.clear()
                return
            if error != errno.ENOSYS:  # a write-back error (EIO, ENOSPC) must not be lost
                raise OSError(error, os.strerror(error), str(self.anchor))
        for path in self._written:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for directory in {os.path.dirname(path) for path in self._written}:
            fsync_dir(Path(directory))
        self._written.clear()

    def commit(self) -> None:
        """After the barrier: rename the staged files into place, durably."""
        self.barrier()
        for temp, path in self._staged:
            _rename_into_place(temp, path)
        for directory in {path.parent for _, path in self._staged}:
            fsync_dir(directory)
        self._staged.clear()


def create_exclusive(path: Path, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` with ``data`` atomically; raise ``FileExistsError`` rather than overwrite."""
    temp = _write_temp(path.parent, data, mode)
    try:
        if owner is not None:
            os.chown(temp, owner[0], owner[1])
        os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the lock file ``path`` for the block."""
    fd = _lock_file_at(path, lambda: os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    try:
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock_in(base: Path, parts: Sequence[str], name: str) -> Iterator[None]:
    """:func:`exclusive_lock` on ``base/parts.../name``, where no component under ``base`` may be a link.

    The directories are made (0700) as needed, as by :func:`open_directory`;
    a link or anything but a regular file at ``name`` is :class:`UnsafeFileError`.
    """

    def open_lock_file() -> int:
        dir_fd = open_directory(base, parts, create=True)
        try:
            fd = os.open(
                name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
            )
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
                raise UnsafeFileError(exc.errno, "is a link or not a regular file", name) from None
            raise
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafeFileError(errno.EINVAL, "is not a regular file", name)
        return fd

    fd = _lock_file_at(base.joinpath(*parts, name), open_lock_file)
    try:
        yield
    finally:
        os.close(fd)


def _lock_file_at(path: Path, open_file: Callable[[], int]) -> int:
    """An open, locked descriptor of the file that is at ``path`` once the lock is granted.

    A lock is on a file, not a name: if the file was moved or replaced while
    this waited (a restore moves the whole store aside), the lock guards
    nothing at ``path`` any more, so it is taken again on the file now there.
    """
    while True:
        fd = open_file()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_file_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open ``fd`` is still the file at ``path``."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


def remove_stale_temps(directory: Path) -> int:
    """Delete temporary files a crashed writer left in ``directory``; return how many."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in directory.iterdir():
            if entry.name.startswith(_TEMP_PREFIX):
                entry.unlink(missing_ok=True)
                removed += 1
    return removed
