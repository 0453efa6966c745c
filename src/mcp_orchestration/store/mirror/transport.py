"""What a mirror transport does, and which one a URL names.

A :class:`Source` is what ``sync`` reads from; a :class:`Target` is what
``mirror push`` writes to. Both speak in mirror paths (``tree.py``). Each
implementation lives in its own module and is imported only when its URL
scheme is used, so a desktop that syncs over HTTPS never loads the OCI
client. Transports only move bytes: they bound sizes and times, refuse
answers no genuine mirror gives (typed ``Mirror*Error``), and never decide
whether what they carry is genuine.
"""

from __future__ import annotations

import importlib
import urllib.parse
from pathlib import Path
from typing import NamedTuple, Protocol

from mcp_orchestration.core.errors import MirrorError, UsageError

DEFAULT_TIMEOUT = 30.0  # seconds for one whole request, however slowly the bytes arrive


class Fetched(NamedTuple):
    """A file's bytes and the validator a later conditional fetch sends (an ETag or a digest)."""

    data: bytes
    etag: str | None


class Counters:
    """What a transport moved: the sync benchmark and ``sync --json`` report them."""

    __slots__ = ("bytes_received", "bytes_sent", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_received = 0  # headers and bodies
        self.bytes_sent = 0

    def __repr__(self) -> str:
        return f"Counters(requests={self.requests}, bytes_received={self.bytes_received}, bytes_sent={self.bytes_sent})"


class TransportOptions(NamedTuple):
    timeout: float = DEFAULT_TIMEOUT
    token_file: Path | None = None  # HTTP PUT: a file holding a bearer token (never the token itself)


class Source(Protocol):
    """A mirror to read from."""

    url: str  # as shown in messages
    counters: Counters

    def fetch(self, path: str, limit: int, *, etag: str | None = None) -> Fetched | None:
        """The file at ``path`` (at most ``limit`` bytes); None if it still matches ``etag``.

        Raises ``MirrorMissingError`` if the mirror lacks it, ``MirrorUnavailableError`` if the mirror
        cannot be reached in time, another ``MirrorError`` for an answer no mirror should give.
        """
        ...

    def close(self) -> None: ...


class Target(Protocol):
    """A mirror to write to."""

    url: str
    counters: Counters

    def read(self, path: str, limit: int) -> bytes | None:
        """The file at ``path``, or None if the mirror has none."""
        ...

    def put(self, path: str, data: bytes) -> None:
        """Write one file; objects and key versions never change, ``index/HEAD`` is replaced."""
        ...

    def commit(self) -> None:
        """Make what was put visible, after ``index/HEAD`` (a registry pushes its manifests here)."""
        ...

    def close(self) -> None: ...


def fetch_file(source: Source, path: str, limit: int) -> bytes:
    """A file's bytes: a fetch without a validator never answers "not modified"."""
    fetched = source.fetch(path, limit)
    if fetched is None:
        raise MirrorError(f"The mirror at {source.url} answered 'not modified' to a request without a validator.")
    return fetched.data


class _Scheme(NamedTuple):
    module: str
    source: str
    target: str


_SCHEMES = {
    "file": _Scheme("files", "FileSource", "DirectoryTarget"),
    "http": _Scheme("http", "HttpSource", "HttpTarget"),
    "https": _Scheme("http", "HttpSource", "HttpTarget"),
    "oci": _Scheme("oci", "OciSource", "OciTarget"),
}
_URL_HINT = "Use https://host/path, oci://registry/repository:tag, or file:///path (a directory or mounted share)."


def scheme_of(url: str) -> str:
    """The transport a mirror URL names; a plain path is a directory."""
    if not url.strip():
        raise UsageError("No mirror URL was given.", hint=_URL_HINT)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return "file"
    if scheme not in _SCHEMES:
        raise UsageError(f"Unsupported mirror URL scheme {scheme!r}.", hint=_URL_HINT)
    return scheme


def open_source(url: str, options: TransportOptions | None = None) -> Source:
    """The transport that reads the mirror at ``url``."""
    source: Source = _transport(url, "source")(url, options or TransportOptions())
    return source


def open_target(url: str, options: TransportOptions | None = None) -> Target:
    """The transport that writes the mirror at ``url``."""
    target: Target = _transport(url, "target")(url, options or TransportOptions())
    return target


def _transport(url: str, role: str) -> type:
    """The class that reads (``source``) or writes (``target``) the URL's scheme, its module imported now."""
    scheme = _SCHEMES[scheme_of(url)]
    module = importlib.import_module(f"{__package__}.{scheme.module}")
    found: type = getattr(module, getattr(scheme, role))
    return found
