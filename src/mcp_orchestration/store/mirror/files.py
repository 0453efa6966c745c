"""A mirror in a directory: a path, a ``file://`` URL, a mounted share, or a store itself.

Every read goes through the safe open, one directory at a time under the
mirror's root, so a link planted in the mirror is refused rather than
followed out of it. Files are written atomically and world-readable (a web
server serves the tree); objects and key versions are written once, the head
last, so a reader never sees a head naming a file that is not there yet.
"""

from __future__ import annotations

import errno
import os
import re
import urllib.parse
from pathlib import Path

from mcp_orchestration.core.errors import (
    MirrorError,
    MirrorMissingError,
    MirrorTooLargeError,
    MirrorUnavailableError,
    UsageError,
)
from mcp_orchestration.core.fsutil import UnsafeFileError, atomic_write_at, open_directory, read_regular_stat
from mcp_orchestration.store.mirror.transport import Counters, Fetched, TransportOptions
from mcp_orchestration.store.mirror.tree import HEAD_PATH, is_mirror_path

PUBLIC_FILE_MODE = 0o644  # served by a web server, which runs as another user
PUBLIC_DIRECTORY_MODE = 0o755
_WINDOWS_DRIVE = re.compile(r"/[A-Za-z]:[/\\]")  # file:///C:/mirror


def directory_of(url: str) -> Path:
    """The local directory a ``file://`` URL or a plain path names."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "file":
        return Path(url).expanduser()
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"{url} names another host.", hint="Mount the share and use file:///mount/point.")
    path = urllib.parse.unquote(parts.path)
    return Path(path[1:] if _WINDOWS_DRIVE.match(path) else path)


def _split(path: str) -> tuple[list[str], str]:
    if not is_mirror_path(path):
        raise UsageError(f"{path!r} is not a path a mirror holds.")
    *directories, name = path.split("/")
    return directories, name


class _Directory:
    def __init__(self, url: str) -> None:
        self.url = url
        self.root = directory_of(url)
        self.counters = Counters()

    def _read(self, path: str, limit: int, etag: str | None = None) -> Fetched | None:
        directories, name = _split(path)
        self.counters.requests += 1
        try:
            fd = open_directory(self.root, directories, create=False)
        except FileNotFoundError:
            if not self.root.is_dir():
                raise MirrorUnavailableError(f"The mirror directory {self.root} is not there (not mounted?).") from None
            raise MirrorMissingError(f"The mirror at {self.url} has no {path}.") from None
        except UnsafeFileError:
            raise MirrorError(f"{path} in the mirror at {self.url} is behind a link: refused.") from None
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if etag is not None and _validator(info) == etag:
                return None
            data, info = read_regular_stat(name, limit, dir_fd=fd)
        except FileNotFoundError:
            raise MirrorMissingError(f"The mirror at {self.url} has no {path}.") from None
        except UnsafeFileError as exc:
            if exc.errno == errno.EFBIG:
                raise MirrorTooLargeError(f"{path} in the mirror at {self.url} is over {limit} bytes.") from None
            raise MirrorError(f"{path} in the mirror at {self.url} {exc.strerror}: refused.") from None
        finally:
            os.close(fd)
        self.counters.bytes_received += len(data)
        return Fetched(data, _validator(info))

    def close(self) -> None:
        """Nothing is held open between reads."""


class FileSource(_Directory):
    """Reads a mirror directory; the validator is the head file's size, time and inode."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url)

    def fetch(self, path: str, limit: int, *, etag: str | None = None) -> Fetched | None:
        return self._read(path, limit, etag)


class DirectoryTarget(_Directory):
    """Writes a mirror directory (created if missing)."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url)
        self.root.mkdir(mode=PUBLIC_DIRECTORY_MODE, parents=True, exist_ok=True)

    def read(self, path: str, limit: int) -> bytes | None:
        try:
            fetched = self._read(path, limit)
        except MirrorMissingError:
            return None
        return None if fetched is None else fetched.data

    def put(self, path: str, data: bytes) -> None:
        directories, name = _split(path)
        fd = open_directory(self.root, directories, create=True, mode=PUBLIC_DIRECTORY_MODE)
        try:
            if path != HEAD_PATH and _exists(name, fd):
                return  # written once: the same id is the same bytes
            atomic_write_at(fd, name, data, PUBLIC_FILE_MODE)
        finally:
            os.close(fd)
        self.counters.requests += 1
        self.counters.bytes_sent += len(data)

    def commit(self) -> None:
        """The head was the last file written: the mirror is complete."""


def _validator(info: os.stat_result) -> str:
    """A file's ETag: its size, time and inode, which change whenever its bytes are replaced."""
    return f'"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"'


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
