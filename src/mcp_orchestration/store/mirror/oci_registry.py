"""The registry client behind ``oci://`` mirrors: bounded exchanges, with Docker's credentials when asked.

oras-py supplies the reference model, the Docker credential lookup
(``auths``, ``credHelpers``, ``credsStore``) and the bearer-token flow. Its
``Registry.do_request`` retries any failure five times with sleeps of up to
83 seconds and sets no timeout, so every request here goes through
:class:`Session` instead: counted, at most ``options.timeout`` seconds from
connect to last byte, at most 5 redirects (blob GETs only; registries
redirect those to object storage). Imported only when a registry must be
read or written beyond one conditional fetch (see ``oci.py``): requests and
oras-py are slow to import.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import oras.auth
import oras.container
import requests

from mcp_orchestration.core.errors import (
    MirrorError,
    MirrorMissingError,
    MirrorRedirectError,
    MirrorTimeoutError,
    MirrorTooLargeError,
    MirrorUnavailableError,
    UsageError,
)
from mcp_orchestration.core.fsutil import read_named_file
from mcp_orchestration.store.mirror.oci_layout import (
    LOGIN_HINT,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    MAX_REDIRECTS,
    digest_of_bytes,
    parse_url,
)
from mcp_orchestration.store.mirror.transport import Counters, TransportOptions

MAX_ERROR_BODY_BYTES = 64 * 1024  # of a refusal, only its error code is read
MAX_TOKEN_BYTES = 1 << 20  # a token endpoint's answer (read for oras-py's bearer flow)
MAX_DOCKER_CONFIG_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024
MISSING_CODES = frozenset({"MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"})
_CODE = re.compile(r"[A-Z_]{1,64}")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def error_code(self) -> str | None:
        """The registry's error code (``MANIFEST_UNKNOWN``, ...), if its body names a plausible one."""
        try:
            errors = json.loads(self.body)["errors"]
            code = errors[0]["code"]
        except (ValueError, LookupError, TypeError):
            return None
        return code if isinstance(code, str) and _CODE.fullmatch(code) else None


class _Session(requests.Session):
    """Every request of one transport, oras-py's token requests included: counted and bounded in time.

    ``deadline`` (``time.monotonic()``) is set per exchange; each send gets the
    time left as its connect and read timeout.
    """

    def __init__(self, counters: Counters) -> None:
        super().__init__()
        self.counters = counters
        self.deadline = 0.0
        self.max_redirects = MAX_REDIRECTS
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # as oras-py: registries' cookies unwanted

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise requests.Timeout("deadline passed")
        kwargs["timeout"] = (left, left)
        body = request.body if isinstance(request.body, bytes) else b""
        self.counters.requests += 1
        self.counters.bytes_sent += len(body) + _request_header_bytes(request)
        streamed = kwargs.get("stream", False)
        kwargs["stream"] = True
        response = super().send(request, **kwargs)
        self.counters.bytes_received += _response_header_bytes(response)
        if not streamed:  # oras-py's token request: read here, under the same bounds as ours
            response._content = read_body(response, MAX_TOKEN_BYTES, self.deadline, self.counters)
        return response


def _request_header_bytes(request: requests.PreparedRequest) -> int:
    """The request line and headers as sent (HTTP/1.1), for the byte counters."""
    line = len(request.method or "") + len(request.path_url) + 11
    return line + sum(len(k) + len(v) + 4 for k, v in request.headers.items()) + 2


def _response_header_bytes(response: requests.Response) -> int:
    line = 13 + len(response.reason or "")
    return line + sum(len(k) + len(v) + 4 for k, v in response.headers.items()) + 2


@contextlib.contextmanager
def _cut_at(deadline: float, response: requests.Response) -> Iterator[None]:
    """Shut the response's socket down at ``deadline``: a read timeout alone restarts with every byte that drips in."""
    connection = getattr(response.raw, "connection", None)  # urllib3 2: the connection this response reads from
    sock = getattr(connection, "sock", None)
    if not isinstance(sock, socket.socket):
        yield
        return
    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), _shutdown, (sock,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def read_body(response: requests.Response, limit: int, deadline: float, counters: Counters) -> bytes:
    """The body of ``response``: at most ``limit`` bytes, all of it before ``deadline``."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise MirrorTooLargeError(f"{response.url} is {declared} bytes, over the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    with _cut_at(deadline, response):
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            counters.bytes_received += len(chunk)
            if size > limit:
                response.close()
                raise MirrorTooLargeError(f"{response.url} is over the {limit}-byte limit.")
            chunks.append(chunk)
    if time.monotonic() > deadline:
        raise requests.Timeout("deadline passed")
    return b"".join(chunks)


def docker_config() -> dict[str, Any]:
    """Docker's own choice of config: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.

    oras-py (0.2) reads only the latter; its credential lookups then run on this.
    """
    directory = os.environ.get("DOCKER_CONFIG")
    path = Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"
    try:
        data = read_named_file(path, MAX_DOCKER_CONFIG_BYTES)  # Docker's own file: a link is followed, bounded
    except FileNotFoundError:
        data = b"{}"
    except OSError as exc:
        raise UsageError(f"The Docker config {path} cannot be read: {exc.strerror}.") from None
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        config = None
    if not isinstance(config, dict):
        raise UsageError(f"The Docker config {path} is not a JSON object of at most {MAX_DOCKER_CONFIG_BYTES} bytes.")
    return {
        "auths": config.get("auths") or {},
        "credsStore": config.get("credsStore"),
        "credHelpers": config.get("credHelpers") or {},
    }


class Registry:
    """One repository of one registry: bounded exchanges, with Docker's credentials when it asks for them."""

    def __init__(self, url: str, options: TransportOptions, counters: Counters) -> None:
        self.url = url
        self.ref = parse_url(url)
        self.timeout = options.timeout
        self.session = _Session(counters)
        self.counters = counters
        self.container = oras.container.Container(f"{self.ref.repository}:{self.ref.tag}", registry=self.ref.registry)
        self.auth = oras.auth.get_auth_backend("token", self.session, insecure=self.ref.plain_http)
        self.auth._auth_config = docker_config()
        self._credentials_loaded = False
        self._basic: str | None = None  # the Basic answer a registry with htpasswd auth took

    def exchange(
        self,
        method: str,
        url: str,
        *,
        limit: int,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        redirects: bool = False,
    ) -> Reply:
        """One request (with the auth handshake a registry asks for), its body read: within ``options.timeout``."""
        self.session.deadline = time.monotonic() + self.timeout
        sent = dict(headers or {})
        try:
            response = self._send(method, url, sent, data, redirects)
            for attempt in range(2):  # a token for the wrong scope is refreshed once, as oras-py does
                if response.status_code not in (401, 403):
                    break
                response.close()
                sent = self._authenticate(response, sent, refresh=attempt > 0)
                response = self._send(method, url, sent, data, redirects)
            if response.status_code in (401, 403):
                response.close()
                raise MirrorError(f"{self.url}: the registry refused the credentials (HTTP {response.status_code}).")
            with response:
                if method == "HEAD":  # its Content-Length is the blob's, not a body's
                    return Reply(response.status_code, response.headers, b"")
                ok = 200 <= response.status_code < 300
                body = read_body(response, limit if ok else MAX_ERROR_BODY_BYTES, self.session.deadline, self.counters)
                return Reply(response.status_code, response.headers, body)
        except requests.TooManyRedirects:
            raise MirrorRedirectError(f"{self.url}: more than {MAX_REDIRECTS} redirects.") from None
        except requests.exceptions.SSLError:
            raise MirrorError(
                f"{self.url}: the registry's TLS certificate is not trusted here.",
                hint="Install the registry's CA in the system trust store, or set REQUESTS_CA_BUNDLE to a CA file.",
            ) from None
        except requests.RequestException as exc:
            if isinstance(exc, requests.Timeout) or time.monotonic() >= self.session.deadline:
                raise MirrorTimeoutError(f"{self.url}: no complete answer within {self.timeout:g} s.") from None
            raise MirrorUnavailableError(
                f"{self.url}: the registry cannot be reached ({type(exc).__name__})."
            ) from None

    def _send(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, redirects: bool
    ) -> requests.Response:
        token = getattr(self.auth, "token", None)
        answer = self._basic or (f"Bearer {token}" if token else None)
        if answer and self._same_origin(url) and "Authorization" not in headers:
            headers = {**headers, "Authorization": answer}
        elif not self._same_origin(url):  # an upload location on another host gets no credentials of ours
            headers = {k: v for k, v in headers.items() if k != "Authorization"}
        return self.session.request(method, url, headers=headers, data=data, stream=True, allow_redirects=redirects)

    def _same_origin(self, url: str) -> bool:
        return url.startswith(self.ref.base.split("/v2/")[0] + "/")

    def _authenticate(self, response: requests.Response, headers: dict[str, str], *, refresh: bool) -> dict[str, str]:
        """Answer the registry's challenge with the Docker credentials for it (Basic, or a bearer token)."""
        if not self._credentials_loaded:
            self.auth.load_configs(self.container)  # auths, then credHelpers, then credsStore
            self._credentials_loaded = True
        challenge = response.headers.get("WWW-Authenticate", "")
        basic = getattr(self.auth, "_basic_auth", None)
        if challenge.lower().startswith("basic"):
            if not basic or refresh or response.request.headers.get("Authorization"):  # none, or refused
                raise self._refused(response.status_code, has_credentials=bool(basic))
            self._basic = f"Basic {basic}"  # sent with every later request: one round trip each, not two
            return {**headers, "Authorization": self._basic}
        headers = {k: v for k, v in headers.items() if k != "Authorization"}
        try:
            updated, changed = self.auth.authenticate_request(response, headers, refresh=refresh)
        except ValueError:  # a token endpoint's answer that is not JSON
            raise MirrorError(f"{self.url}: the registry's token service gave an unreadable answer.") from None
        if not changed:
            raise self._refused(response.status_code, has_credentials=bool(basic))
        return {str(k): str(v) for k, v in updated.items()}

    def _refused(self, status: int, *, has_credentials: bool) -> MirrorError:
        which = "refused the credentials" if has_credentials else "needs credentials and none are configured"
        return MirrorError(f"{self.url}: the registry {which} (HTTP {status}).", hint=LOGIN_HINT)

    def check(self, reply: Reply, what: str) -> None:
        """Raise the typed error for a reply that is not a success."""
        if 200 <= reply.status < 300:
            return
        code = reply.error_code()
        if reply.status == 404 or code in MISSING_CODES:
            raise MirrorMissingError(f"{self.url}: the registry has no {what} ({code or 'HTTP 404'}).")
        if reply.status == 429 or reply.status >= 500:
            raise MirrorUnavailableError(f"{self.url}: the registry is unavailable (HTTP {reply.status}).")
        if 300 <= reply.status < 400:
            raise MirrorRedirectError(f"{self.url}: the registry redirected a request for {what}.")
        raise MirrorError(
            f"{self.url}: the registry refused {what} (HTTP {reply.status}{f', {code}' if code else ''})."
        )

    def manifest(self, tag: str) -> tuple[bytes, str]:
        """The manifest ``tag`` names, and its digest."""
        read = self.manifest_if_changed(tag, None)
        if read is None:
            raise MirrorError(f"{self.url}: the registry answered an unconditional request with 304 Not Modified.")
        return read

    def manifest_if_changed(self, tag: str, etag: str | None) -> tuple[bytes, str] | None:
        """The manifest ``tag`` names and its digest; None if it is still ``etag`` (HTTP 304)."""
        headers = {"Accept": MANIFEST_MEDIA_TYPE}
        if etag:
            headers["If-None-Match"] = f'"{etag}"'
        reply = self.exchange("GET", f"{self.ref.base}/manifests/{tag}", limit=MAX_MANIFEST_BYTES, headers=headers)
        if reply.status == 304:
            return None
        self.check(reply, f"manifest {tag!r}")
        digest = digest_of_bytes(reply.body)
        claimed = reply.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise MirrorError(f"{self.url}: the manifest of {tag!r} does not match the digest the registry gives.")
        return reply.body, digest

    def blob(self, digest: str, limit: int, what: str) -> bytes:
        """A blob by digest, checked against it."""
        reply = self.exchange("GET", f"{self.ref.base}/blobs/{digest}", limit=limit, redirects=True)
        self.check(reply, what)
        if digest_of_bytes(reply.body) != digest:
            raise MirrorError(f"{self.url}: the registry served other bytes than {what} ({digest}).")
        return reply.body

    def has_blob(self, digest: str) -> bool:
        reply = self.exchange("HEAD", f"{self.ref.base}/blobs/{digest}", limit=0, redirects=True)
        if reply.status == 404:
            return False
        self.check(reply, f"blob {digest}")
        return True

    def push_blob(self, data: bytes) -> str:
        """Upload ``data`` unless the registry has it (POST, then PUT of the whole blob); its digest."""
        digest = digest_of_bytes(data)
        if self.has_blob(digest):
            return digest
        start = f"{self.ref.base}/blobs/uploads/"
        reply = self.exchange("POST", start, limit=MAX_ERROR_BODY_BYTES, headers={"Content-Length": "0"})
        self.check(reply, "an upload session")
        location = reply.headers.get("Location")
        if not location:
            raise MirrorError(f"{self.url}: the registry started an upload without a Location.")
        session = urllib.parse.urljoin(start, location)
        separator = "&" if urllib.parse.urlsplit(session).query else "?"
        put = f"{session}{separator}{urllib.parse.urlencode({'digest': digest})}"
        reply = self.exchange(
            "PUT", put, limit=MAX_ERROR_BODY_BYTES, headers={"Content-Type": "application/octet-stream"}, data=data
        )
        self.check(reply, f"the upload of blob {digest}")
        return digest

    def push_manifest(self, tag: str, data: bytes) -> None:
        reply = self.exchange(
            "PUT",
            f"{self.ref.base}/manifests/{tag}",
            limit=MAX_ERROR_BODY_BYTES,
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            data=data,
        )
        self.check(reply, f"manifest {tag!r}")

    def close(self) -> None:
        self.session.close()
