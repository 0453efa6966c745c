"""A hostile mirror for tests: a real HTTP server on 127.0.0.1 that serves a genuine mirror tree, except
where a test tells it to misbehave for one path.

The tree is the output of a real ``mirror push`` (a directory). By default
every file is served as a static web server serves it: ``200`` with the
file's bytes, an ETag (the bytes' SHA-256) and ``304`` to a matching
``If-None-Match``. A test sets a :data:`Behaviour` per mirror path
(``index/HEAD``, ``objects/sha256/ab/cd...``) in :attr:`HostileMirror.behaviours`:
other bytes, another status, a redirect, an endless or dripping body, or
silence. Every request is logged (path and ``If-None-Match``).

The server runs in a daemon thread, bound to 127.0.0.1 on a port the OS
picks, and stops when the context ends: a handler that is holding a client
(drip, silence, endless) checks the stop event and gives up within a bounded
time whatever the client does.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ALIAS = "moved/"  # a same-origin redirect target: /moved/<mirror path> serves the genuine <mirror path>
MAX_HOLD = 20.0  # seconds a handler ever holds a client (silence, drip, endless), stop or not
FILE_TYPE = "application/octet-stream"
HOSTILE_CANARY = "hostile-mirror-canary-7f3a"  # in every page the mirror makes up: no message may quote it


@dataclass(frozen=True)
class Genuine:
    """The tree's own file (what every path gets unless a test says otherwise)."""


@dataclass(frozen=True)
class Body:
    """These bytes instead of the file. ``content_length`` is the header sent (None: the true length); a
    lying one is followed by closing the connection, as a server that crashed mid-body does."""

    data: bytes
    content_type: str = FILE_TYPE
    content_length: int | None = None
    etag: str | None = None  # None: the bytes' own


@dataclass(frozen=True)
class Status:
    """A bodiless-looking answer with this status (a small HTML page, as real servers send)."""

    code: int


@dataclass(frozen=True)
class Redirect:
    location: str
    code: int = 302


@dataclass(frozen=True)
class Endless:
    """A chunked body that never ends (until the client hangs up, or the server stops)."""


@dataclass(frozen=True)
class Oversized:
    """A Content-Length far over any limit, then an endless body."""

    content_length: int = 1 << 40


@dataclass(frozen=True)
class Drip:
    """The genuine file, one byte every ``interval`` seconds: each read returns, the whole takes ages."""

    interval: float = 0.2


@dataclass(frozen=True)
class Silence:
    """Accept the request, then never send a byte of the answer."""


@dataclass(frozen=True)
class ChangingEtag:
    """The genuine file (or ``data``) with a new ETag on every request (so no ``If-None-Match`` ever matches)."""

    data: bytes | None = None


Behaviour = Genuine | Body | Status | Redirect | Endless | Oversized | Drip | Silence | ChangingEtag


def etag_of(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


@dataclass
class HostileMirror:
    """The running server: its URL, the behaviour per mirror path, and the requests it answered."""

    root: Path
    url: str = ""
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, If-None-Match)
    stopping: threading.Event = field(default_factory=threading.Event)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def genuine(self, path: str) -> bytes | None:
        """The tree's file at mirror path ``path``, or None (nothing outside the tree is ever read)."""
        parts = path.split("/")
        if not path or any(part in ("", ".", "..") for part in parts):
            return None
        file = self.root.joinpath(*parts)
        return file.read_bytes() if file.is_file() and not file.is_symlink() else None

    def next_etag(self) -> str:
        with self._lock:
            self._counter += 1
            return f'"changing-{self._counter}"'

    def log(self, path: str, etag: str | None) -> None:
        with self._lock:
            self.requests.append((path, etag))


def _handler(mirror: HostileMirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept-alive connections and chunked bodies, as the client expects
        server_version = "hostile/1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out as two writes: without this, Nagle's algorithm holds the body back
            # for the client's delayed ACK (40 ms a request on Linux), which is the test's cost, not sync's.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the mirror keeps its own request log."""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].lstrip("/")
            if_none_match = self.headers.get("If-None-Match")
            mirror.log(path, if_none_match)
            with contextlib.suppress(OSError):  # the client hung up: that is its right
                self._answer(path, if_none_match)

        def _answer(self, path: str, if_none_match: str | None) -> None:
            aliased = path.startswith(ALIAS)
            if aliased:
                path = path.removeprefix(ALIAS)
            behaviour = Genuine() if aliased else mirror.behaviours.get(path, Genuine())
            match behaviour:
                case Genuine():
                    data = mirror.genuine(path)
                    if data is None:
                        self._status(404)
                    else:
                        self._file(data, etag_of(data), if_none_match)
                case ChangingEtag(data):
                    self._file(data or mirror.genuine(path) or b"", mirror.next_etag(), if_none_match)
                case Body(data, content_type, content_length, etag):
                    length = len(data) if content_length is None else content_length
                    self._file(data, etag or etag_of(data), if_none_match, content_type, length)
                case Status(code):
                    self._status(code)
                case Redirect(location, code):
                    self.send_response(code)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                case Endless():
                    self.send_response(200)
                    self.send_header("Content-Type", FILE_TYPE)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self._endless(chunked=True)
                case Oversized(content_length):
                    self.send_response(200)
                    self.send_header("Content-Type", FILE_TYPE)
                    self.send_header("Content-Length", str(content_length))
                    self.end_headers()
                    self._endless(chunked=False)
                case Drip(interval):
                    self._drip(mirror.genuine(path) or b"", interval)
                case Silence():
                    self.close_connection = True
                    mirror.stopping.wait(MAX_HOLD)

        def _file(
            self,
            data: bytes,
            etag: str,
            if_none_match: str | None,
            content_type: str = FILE_TYPE,
            length: int | None = None,
        ) -> None:
            if if_none_match is not None and if_none_match == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(data)
            if length is not None and length != len(data):
                self.close_connection = True  # the rest promised never comes

        def _status(self, code: int) -> None:
            page = f"<html><body><h1>{code}</h1><p>{HOSTILE_CANARY}</p></body></html>".encode()
            self.send_response(code)
            if code != 304:
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            if code != 304:
                self.wfile.write(page)

        def _endless(self, *, chunked: bool) -> None:
            self.close_connection = True
            chunk = b"\0" * 65536
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            deadline = time.monotonic() + MAX_HOLD
            while not mirror.stopping.is_set() and time.monotonic() < deadline:
                self.wfile.write(frame)

        def _drip(self, data: bytes, interval: float) -> None:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", FILE_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            deadline = time.monotonic() + MAX_HOLD
            for byte in data:
                if mirror.stopping.wait(interval) or time.monotonic() > deadline:
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    return Handler


@contextlib.contextmanager
def serve_hostile(root: Path) -> Iterator[HostileMirror]:
    """A hostile mirror over the tree in ``root``, at ``mirror.url``; stopped (bounded) when the context ends."""
    mirror = HostileMirror(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror))
    server.daemon_threads = True
    server.block_on_close = False
    port = server.server_address[1]
    mirror.url = f"http://127.0.0.1:{port}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        mirror.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
