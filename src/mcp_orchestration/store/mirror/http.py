"""A mirror on a web server: a static tree read with GET, written with PUT (WebDAV, or a bucket's API).

Built on the standard library's ``http.client`` (no dependency, and a cold
start cheap enough for a sync every few minutes), over one kept-alive
connection. A hostile or broken server gets nothing from us and can hold us
for no longer than the timeout:

- each request, from connect to last byte, runs under a watchdog that closes
  the socket at the deadline, so a slow drip ends like a silent server;
- a body is refused as soon as it (or its Content-Length) passes the limit;
- a redirect is followed only within the mirror's own origin (scheme, host,
  port), at most three times; one to another host is refused;
- a body whose Content-Type is not a file's (an HTML error or login page) is refused;
- credentials never ride in the URL; a PUT token comes from a file.

A proxy named by the usual variables (``https_proxy``, ``http_proxy``,
``no_proxy``, as curl and pip read them) is used: HTTPS through a CONNECT
tunnel, so the proxy sees neither the paths nor the bytes.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import NamedTuple

from mcp_orchestration.core.errors import (
    MirrorContentTypeError,
    MirrorError,
    MirrorMissingError,
    MirrorRedirectError,
    MirrorTimeoutError,
    MirrorTooLargeError,
    MirrorUnavailableError,
    UsageError,
)
from mcp_orchestration.core.fsutil import read_named_file
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.store.mirror.transport import Counters, Fetched, TransportOptions
from mcp_orchestration.store.mirror.tree import is_mirror_path

MAX_REDIRECTS = 3
MAX_TOKEN_BYTES = 16 * 1024
_FILE_TYPES = ("application/octet-stream", "binary/octet-stream", "application/json")
_OWN_TYPES = "application/vnd.mcp-orchestration."
_USER_AGENT = "mcp-orchestration-mirror"
_READ_CHUNK = 64 * 1024


class _Origin(NamedTuple):
    scheme: str
    host: str
    port: int


class HttpResponse(NamedTuple):
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


def _parse(url: str) -> tuple[_Origin, str]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "A mirror URL may not carry credentials.",
            hint="For a PUT mirror give the token in a file (--token-file); reads need no credentials.",
        )
    if parts.query or parts.fragment or not parts.hostname:
        raise UsageError(
            f"{parts.scheme}://{parts.hostname or ''}{parts.path} is not a mirror URL (host and path only)."
        )
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UsageError("The mirror URL's port is not a number.") from None
    base = parts.path if parts.path.endswith("/") else parts.path + "/"
    return _Origin(scheme, parts.hostname, port), base


class _Proxy(NamedTuple):
    origin: _Origin
    headers: Mapping[str, str]  # Proxy-Authorization, when the proxy URL carries a user


def _proxy_for(origin: _Origin) -> _Proxy | None:
    """The proxy for ``origin``: the environment's (``*_proxy``, ``no_proxy``), or on macOS and Windows the
    system's settings; None for none."""
    in_environment = any(name.lower() in ("http_proxy", "https_proxy", "all_proxy") for name in os.environ)
    if not in_environment and sys.platform.startswith("linux"):
        return None  # the common case pays for no import
    import urllib.request

    proxies = urllib.request.getproxies()
    url = proxies.get(origin.scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(origin.host):
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise UsageError(
            f"The {origin.scheme} proxy must be an http:// URL (HTTPS goes through it in a CONNECT tunnel).",
        )
    headers = {}
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        REDACTOR.register_text(credentials)
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    return _Proxy(_Origin("http", parts.hostname, parts.port or 80), headers)


class HttpClient:
    """One origin over a kept-alive connection; every request bounded in time and size."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.origin, self.base = _parse(url)
        host = f"[{self.origin.host}]" if ":" in self.origin.host else self.origin.host
        self.url = f"{self.origin.scheme}://{host}:{self.origin.port}{self.base}"
        self.timeout = options.timeout
        self.counters = Counters()
        self._proxy = _proxy_for(self.origin)
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            origin, proxy = self.origin, self._proxy
            host, port = (proxy.origin.host, proxy.origin.port) if proxy is not None else (origin.host, origin.port)
            if origin.scheme == "https":
                context = ssl.create_default_context()
                self._connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)
                if proxy is not None:
                    self._connection.set_tunnel(origin.host, origin.port, headers=dict(proxy.headers))
            else:
                self._connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return self._connection

    def _wire_target(self, target: str) -> tuple[str, dict[str, str]]:
        """The request target and extra headers: an absolute URL through a plain-HTTP proxy."""
        if self._proxy is None or self.origin.scheme == "https":
            return target, {}
        return self.url[: -len(self.base)] + target, dict(self._proxy.headers)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self, method: str, path: str, headers: dict[str, str], *, body: bytes | None = None, limit: int = 0
    ) -> HttpResponse:
        """One request for a mirror path, redirects within the origin followed; ``limit`` bounds the body."""
        if not is_mirror_path(path):
            raise UsageError(f"{path!r} is not a path a mirror holds.")
        return self.send(method, self.base + path, headers, body=body, limit=limit)

    def send(
        self, method: str, target: str, headers: dict[str, str], *, body: bytes | None = None, limit: int = 0
    ) -> HttpResponse:
        """One request for ``target`` (a path on this origin), redirects within the origin followed."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._exchange(method, target, headers, body, limit)
            if response.status not in (301, 302, 303, 307, 308) or method != "GET":
                return response
            target = self._redirect_target(target, response.headers.get("location", ""))
        raise MirrorRedirectError(f"The mirror at {self.url} redirected {target} more than {MAX_REDIRECTS} times.")

    def _redirect_target(self, current: str, location: str) -> str:
        here = f"{self.origin.scheme}://{self.origin.host}:{self.origin.port}{current}"
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(here, location))
        try:
            origin = _Origin(
                parts.scheme.lower(), parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
            )
        except ValueError:
            origin = _Origin("", "", 0)
        if origin != self.origin or parts.username is not None:
            raise MirrorRedirectError(
                f"The mirror at {self.url} redirected to another origin ({parts.scheme}://{parts.hostname}): refused.",
            )
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None, limit: int
    ) -> HttpResponse:
        """One request and its bounded response, under a watchdog; a stale kept-alive connection is retried once."""
        deadline = time.monotonic() + self.timeout
        for attempt in (1, 2):
            connection = self._connect()
            expired = threading.Event()
            watchdog = threading.Timer(self.timeout, _cut, (connection, expired))
            watchdog.daemon = True
            watchdog.start()
            try:
                self.counters.requests += 1
                wire, extra = self._wire_target(target)
                connection.request(method, wire, body=body, headers={"User-Agent": _USER_AGENT, **headers, **extra})
                self.counters.bytes_sent += len(body or b"") + _header_bytes(wire, headers)
                response = connection.getresponse()
                fields = {name.lower(): value for name, value in response.getheaders()}
                self.counters.bytes_received += _header_bytes(f"HTTP/1.1 {response.status} {response.reason}", fields)
                data = self._read_body(response, fields, limit, deadline, expired) if method != "HEAD" else b""
                if fields.get("connection", "").lower() == "close":
                    self.close()
                return HttpResponse(response.status, fields, data)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if expired.is_set():
                    raise self._timeout() from None
                if attempt == 2:
                    raise MirrorUnavailableError(
                        f"The mirror at {self.url} closed the connection ({type(exc).__name__})."
                    ) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if expired.is_set() or isinstance(exc, TimeoutError):
                    raise self._timeout() from None
                raise MirrorUnavailableError(f"The mirror at {self.url} cannot be reached: {_reason(exc)}.") from None
            except MirrorError:
                self.close()
                raise
            finally:
                watchdog.cancel()
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_body(
        self,
        response: http.client.HTTPResponse,
        fields: Mapping[str, str],
        limit: int,
        deadline: float,
        expired: threading.Event,
    ) -> bytes:
        """The body, whole: one cut short (the watchdog closed the socket mid-drip, or the server hung up
        before the Content-Length it announced) is a timeout or an unavailable mirror, never a file."""
        length = fields.get("content-length", "")
        if length.isdigit() and int(length) > limit and response.status == 200:
            raise MirrorTooLargeError(f"The mirror at {self.url} sent {length} bytes, over the {limit} allowed.")
        bound = limit if response.status == 200 else _READ_CHUNK  # an error page is read (bounded) and dropped
        chunks: list[bytes] = []
        total = 0
        while chunk := response.read1(_READ_CHUNK):
            total += len(chunk)
            self.counters.bytes_received += len(chunk)
            if total > bound:
                if response.status != 200:
                    self.close()  # the rest of an endless error page is never read
                    break
                raise MirrorTooLargeError(f"The mirror at {self.url} sent more than the {limit} bytes allowed.")
            if time.monotonic() > deadline:
                raise self._timeout()
            chunks.append(chunk)
        if expired.is_set():
            raise self._timeout()
        if response.status == 200 and length.isdigit() and total != int(length):
            raise MirrorUnavailableError(
                f"The mirror at {self.url} closed the connection after {total} of the {length} bytes it announced."
            )
        response.read()  # at the end already: marks the response done, so the connection can be reused
        return b"".join(chunks)

    def _timeout(self) -> MirrorTimeoutError:
        return MirrorTimeoutError(f"The mirror at {self.url} did not answer within {self.timeout:g} seconds.")


def _header_bytes(first_line: str, headers: Mapping[str, str]) -> int:
    """About what a request or status line and its headers take on the wire (HTTP/1.1), for the counters."""
    return len(first_line) + 2 + sum(len(name) + len(value) + 4 for name, value in headers.items()) + 2


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The watchdog: the deadline passed, so end whatever read or write is blocked on the socket."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its TLS certificate does not verify ({exc.verify_message})"
    if isinstance(exc, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or type(exc).__name__


def _check_type(url: str, path: str, fields: Mapping[str, str]) -> None:
    content_type = fields.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in _FILE_TYPES and not content_type.startswith(_OWN_TYPES):
        raise MirrorContentTypeError(
            f"The mirror at {url} served {path} as {content_type[:60]!r}, not as a file: an error or login page?",
        )


class HttpSource(HttpClient):
    """Reads a static mirror tree with (conditional) GETs."""

    def fetch(self, path: str, limit: int, *, etag: str | None = None) -> Fetched | None:
        headers = {"Accept": "application/octet-stream, application/json", "Accept-Encoding": "identity"}
        if etag is not None:
            headers["If-None-Match"] = etag
        response = self.request("GET", path, headers, limit=limit)
        if response.status == 304 and etag is not None:
            return None
        _raise_for_status(self.url, path, response.status)
        _check_type(self.url, path, response.headers)
        return Fetched(response.body, response.headers.get("etag"))


class HttpTarget(HttpClient):
    """Writes a mirror tree with PUT (nginx's WebDAV module, or any server that stores what it is sent)."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        self._auth: dict[str, str] = {}
        if options.token_file is not None:
            try:
                token = read_named_file(options.token_file, MAX_TOKEN_BYTES).decode("utf-8").strip()
            except (OSError, UnicodeDecodeError):
                raise UsageError(f"The token file {options.token_file} cannot be read as text.") from None
            REDACTOR.register_text(token)
            self._auth = {"Authorization": f"Bearer {token}"}

    def read(self, path: str, limit: int) -> bytes | None:
        response = self.request("GET", path, {"Accept-Encoding": "identity", **self._auth}, limit=limit)
        if response.status == 404:
            return None
        _raise_for_status(self.url, path, response.status)
        return response.body

    def put(self, path: str, data: bytes) -> None:
        headers = {"Content-Type": "application/octet-stream", **self._auth}
        response = self.request("PUT", path, headers, body=data)
        if response.status not in (200, 201, 204):
            _raise_for_status(self.url, path, response.status, writing=True)

    def commit(self) -> None:
        """The head was the last file PUT: the mirror is complete."""


def _raise_for_status(url: str, path: str, status: int, *, writing: bool = False) -> None:
    if status == 200 and not writing:
        return
    if status in (404, 410):
        raise MirrorMissingError(f"The mirror at {url} has no {path} (HTTP {status}).")
    if status in (401, 403):
        raise MirrorError(
            f"The mirror at {url} refused access to {path} (HTTP {status}).",
            hint="Check the token file given with --token-file, and the server's access rules."
            if writing
            else "A mirror serves its files to anyone who may sync: check the server's access rules.",
        )
    if status in (408, 429) or status >= 500:
        raise MirrorUnavailableError(f"The mirror at {url} answered HTTP {status} for {path}.")
    if status in (301, 302, 303, 307, 308):
        raise MirrorRedirectError(f"The mirror at {url} redirected a write of {path}: refused.")
    raise MirrorError(f"The mirror at {url} answered HTTP {status} for {path}.")
