"""A mirror in an OCI registry (CNCF distribution, Harbor, GHCR, ...), through oras-py.

``oci://REGISTRY[:PORT]/REPOSITORY[:TAG]`` (tag ``latest`` by default). The
registry is spoken to over HTTPS, except on a loopback host (``localhost``,
``127.0.0.1``, ``::1``), which gets plain HTTP as Docker does for a local
registry. Credentials come only from the operator's ``docker login``: the
Docker config (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``)
with its ``auths``, ``credsStore`` and ``credHelpers``; never from the URL.

Layout (an OCI 1.1 artifact with this project's media types). Every mirror
file is a blob, and an object's blob digest is ``sha256:<object id>``, so a
desktop fetches an object by its id. The tag names a small manifest whose
layers are ``index/HEAD`` and every ``keys/NNNNNNNN.json``, each titled with
its mirror path; ``<tag>-objects`` names a manifest listing every object so
the registry's garbage collection keeps them (a desktop never reads it). A
registry bounds a manifest's size (distribution: 4 MiB, about 20,000
objects). A push puts the blobs, then ``commit`` pushes ``<tag>-objects``
first and the tag last, so a reader never sees a head whose objects are
unlisted.

A no-change sync is one conditional GET of the tag's manifest: distribution
answers ``If-None-Match: "<manifest digest>"`` with 304 and no body.

oras-py supplies the reference model, the Docker credential lookup and the
bearer-token flow. Its ``Registry.do_request`` retries any failure five
times with sleeps of up to 83 seconds and sets no timeout, so every request
here goes through :class:`_Session` instead: counted, at most
``options.timeout`` seconds from connect to last byte, at most 5 redirects
(blob GETs only; registries redirect those to object storage).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
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
from mcp_orchestration.store.mirror.transport import Counters, Fetched, TransportOptions
from mcp_orchestration.store.mirror.tree import HEAD_PATH, is_mirror_path

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.mcp-orchestration.mirror.v1"
OBJECTS_ARTIFACT_TYPE = "application/vnd.mcp-orchestration.mirror-objects.v1"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
HEAD_MEDIA_TYPE = "application/vnd.mcp-orchestration.head.v1+dsse"
KEY_MEDIA_TYPE = "application/vnd.mcp-orchestration.key-history.v1+dsse"
OBJECT_MEDIA_TYPE = "application/vnd.mcp-orchestration.object.v1"
TITLE = "org.opencontainers.image.title"
OBJECTS_TAG_SUFFIX = "-objects"
MAX_MANIFEST_BYTES = 4 << 20  # distribution's default limit on a manifest it accepts
MAX_REDIRECTS = 5
MAX_ERROR_BODY_BYTES = 64 * 1024  # of a refusal, only its error code is read
MAX_TOKEN_BYTES = 1 << 20  # a token endpoint's answer (read for oras-py's bearer flow)
MAX_DOCKER_CONFIG_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024
MISSING_CODES = frozenset({"MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"})
LOOPBACK_NAMES = frozenset({"localhost"})

_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,119}")  # 120, so that "<tag>-objects" is a tag too
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CODE = re.compile(r"[A-Z_]{1,64}")
_LOGIN_HINT = (
    "Log in with `docker login REGISTRY` (the credentials go to the Docker config or its credential store, "
    "which this reads; set DOCKER_CONFIG for another config directory), and check that the account may "
    "read (sync) or push (mirror push) this repository."
)


@dataclass(frozen=True)
class Reference:
    """Where an ``oci://`` URL points."""

    registry: str  # host[:port] as in a request URL (an IPv6 host in brackets)
    repository: str
    tag: str
    plain_http: bool  # a loopback registry; every other is HTTPS

    @property
    def base(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.registry}/v2/{self.repository}"


def parse_url(url: str) -> Reference:
    """Parse ``oci://REGISTRY[:PORT]/REPOSITORY[:TAG]``, refusing credentials in it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "oci":
        raise UsageError(f"{url!r} is not an oci:// URL.")
    if "@" in parts.netloc:
        raise UsageError(
            "An oci:// URL must not carry a user name or password (it would show in process lists and logs).",
            hint=_LOGIN_HINT,
        )
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"The port of {parts.netloc!r} is not a number from 0 to 65535.") from None
    host = parts.hostname
    if not host or parts.query or parts.fragment:
        raise UsageError(f"{url!r} is not oci://REGISTRY[:PORT]/REPOSITORY[:TAG].")
    repository, _, tag = parts.path.lstrip("/").partition(":")
    tag = tag or "latest"
    if not _REPOSITORY.fullmatch(repository):
        raise UsageError(
            f"{repository!r} is not a repository name: lowercase letters and digits, separated by '.', '_', "
            "'__', '-' or '/'."
        )
    if not _TAG.fullmatch(tag):
        raise UsageError(f"{tag!r} is not a tag: letters, digits, '_', '.' or '-', at most 120 characters.")
    shown = f"[{host}]" if ":" in host else host
    registry = f"{shown}:{port}" if port is not None else shown
    return Reference(registry, repository, tag, plain_http=_is_loopback(host))


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _media_type(path: str) -> str:
    if path == HEAD_PATH:
        return HEAD_MEDIA_TYPE
    return KEY_MEDIA_TYPE if path.startswith("keys/") else OBJECT_MEDIA_TYPE


def _object_digest(path: str) -> str:
    """``objects/sha256/ab/cdef...`` is the blob ``sha256:abcdef...``."""
    _, _, prefix, rest = path.split("/")
    return f"sha256:{prefix}{rest}"


@dataclass(frozen=True)
class _Blob:
    """A manifest layer: one mirror file."""

    media_type: str
    digest: str
    size: int

    def descriptor(self, path: str) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, "annotations": {TITLE: path}}


@dataclass(frozen=True)
class _Reply:
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


def _manifest_bytes(artifact_type: str, layers: Mapping[str, _Blob]) -> bytes:
    """An OCI 1.1 artifact manifest (empty config), layers in path order so equal content gives equal digests."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": _digest(EMPTY_BLOB), "size": len(EMPTY_BLOB)},
        "layers": [layers[path].descriptor(path) for path in sorted(layers)],
    }
    data = json.dumps(manifest, separators=(",", ":")).encode()
    if len(data) > MAX_MANIFEST_BYTES:
        raise MirrorTooLargeError(
            f"The {artifact_type} manifest would be {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit "
            "registries put on a manifest (about 20,000 objects).",
            hint="Prune the store's history, or mirror it over HTTPS instead (no manifest lists the objects there).",
        )
    return data


def _parse_manifest(data: bytes, artifact_type: str, what: str) -> dict[str, _Blob]:
    """The layers of one of our manifests, by mirror path; anything else is refused."""
    try:
        manifest = json.loads(data)
    except ValueError:
        raise MirrorError(f"{what} is not JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("artifactType") != artifact_type:
        raise MirrorError(f"{what} is not a {artifact_type} manifest: the tag holds something else.")
    layers = manifest.get("layers")
    if manifest.get("mediaType") != MANIFEST_MEDIA_TYPE or not isinstance(layers, list):
        raise MirrorError(f"{what} is not an OCI image manifest with layers.")
    found: dict[str, _Blob] = {}
    for layer in layers:
        try:
            path, media_type, digest, size = (
                layer["annotations"][TITLE],
                layer["mediaType"],
                layer["digest"],
                layer["size"],
            )
        except (LookupError, TypeError):
            raise MirrorError(f"{what} has a layer without a title, media type, digest or size.") from None
        if not (
            isinstance(path, str)
            and is_mirror_path(path)
            and media_type == _media_type(path)
            and isinstance(digest, str)
            and _DIGEST.fullmatch(digest)
            and isinstance(size, int)
            and size >= 0
            and (media_type != OBJECT_MEDIA_TYPE or digest == _object_digest(path))
        ):
            raise MirrorError(f"{what} has a layer that is not a mirror file of ours.")
        found[path] = _Blob(media_type, digest, size)
    return found


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


def _docker_config() -> dict[str, Any]:
    """Docker's own choice of config: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.

    oras-py (0.2) reads only the latter; its credential lookups then run on this.
    """
    directory = os.environ.get("DOCKER_CONFIG")
    path = Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"
    try:
        with path.open("rb") as file:
            data = file.read(MAX_DOCKER_CONFIG_BYTES + 1)
    except FileNotFoundError:
        data = b"{}"
    except OSError as exc:
        raise UsageError(f"The Docker config {path} cannot be read: {exc.strerror}.") from None
    try:
        config = json.loads(data) if len(data) <= MAX_DOCKER_CONFIG_BYTES else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise UsageError(f"The Docker config {path} is not a JSON object of at most {MAX_DOCKER_CONFIG_BYTES} bytes.")
    return {
        "auths": config.get("auths") or {},
        "credsStore": config.get("credsStore"),
        "credHelpers": config.get("credHelpers") or {},
    }


class _Registry:
    """One repository of one registry: bounded exchanges, with Docker's credentials when it asks for them."""

    def __init__(self, url: str, options: TransportOptions, counters: Counters) -> None:
        self.url = url
        self.ref = parse_url(url)
        self.timeout = options.timeout
        self.session = _Session(counters)
        self.counters = counters
        self.container = oras.container.Container(f"{self.ref.repository}:{self.ref.tag}", registry=self.ref.registry)
        self.auth = oras.auth.get_auth_backend("token", self.session, insecure=self.ref.plain_http)
        self.auth._auth_config = _docker_config()
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
    ) -> _Reply:
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
                    return _Reply(response.status_code, response.headers, b"")
                ok = 200 <= response.status_code < 300
                body = read_body(response, limit if ok else MAX_ERROR_BODY_BYTES, self.session.deadline, self.counters)
                return _Reply(response.status_code, response.headers, body)
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
        return MirrorError(f"{self.url}: the registry {which} (HTTP {status}).", hint=_LOGIN_HINT)

    def check(self, reply: _Reply, what: str) -> None:
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
        digest = _digest(reply.body)
        claimed = reply.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise MirrorError(f"{self.url}: the manifest of {tag!r} does not match the digest the registry gives.")
        return reply.body, digest

    def blob(self, digest: str, limit: int, what: str) -> bytes:
        """A blob by digest, checked against it."""
        reply = self.exchange("GET", f"{self.ref.base}/blobs/{digest}", limit=limit, redirects=True)
        self.check(reply, what)
        if _digest(reply.body) != digest:
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
        digest = _digest(data)
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


class OciSource:
    """Reads a mirror from a registry: the tag's manifest (conditionally), then blobs by digest."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.url = url
        self.counters = Counters()
        self._registry = _Registry(url, options, self.counters)
        self._layers: dict[str, _Blob] | None = None  # the tag's manifest last read: keys come from the same one

    def fetch(self, path: str, limit: int, *, etag: str | None = None) -> Fetched | None:
        if not is_mirror_path(path):
            raise UsageError(f"{path!r} is not a mirror path.")
        if path.startswith("objects/"):
            digest = _object_digest(path)
            return Fetched(self._registry.blob(digest, limit, path), etag=digest)
        tag = self._registry.ref.tag
        manifest_digest = None
        if path == HEAD_PATH:
            read = self._registry.manifest_if_changed(tag, etag)
            if read is None:
                return None
            data, manifest_digest = read
            self._layers = self._parse(data)
            if manifest_digest == etag:  # a registry that ignores If-None-Match: still one request
                return None
        elif self._layers is None:
            self._layers = self._parse(self._registry.manifest(tag)[0])
        blob = self._layers.get(path)
        if blob is None:
            raise MirrorMissingError(f"{self.url}: the manifest of {self._registry.ref.tag!r} has no {path}.")
        if blob.size > limit:
            raise MirrorTooLargeError(f"{self.url}: {path} is {blob.size} bytes, over the {limit}-byte limit.")
        data = self._registry.blob(blob.digest, limit, path)
        return Fetched(data, etag=manifest_digest if path == HEAD_PATH else blob.digest)

    def _parse(self, data: bytes) -> dict[str, _Blob]:
        layers = _parse_manifest(data, ARTIFACT_TYPE, f"{self.url}: the manifest of {self._registry.ref.tag!r}")
        if HEAD_PATH not in layers:
            raise MirrorError(f"{self.url}: the manifest of {self._registry.ref.tag!r} has no {HEAD_PATH} layer.")
        return layers

    def close(self) -> None:
        self._registry.close()


class OciTarget:
    """Writes a mirror to a registry: blobs as they are put, the two manifests on commit."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.url = url
        self.counters = Counters()
        self._registry = _Registry(url, options, self.counters)
        self._files: dict[str, _Blob] = {}  # index/HEAD and key versions put since the last commit
        self._objects: dict[str, _Blob] = {}

    def _tags(self) -> tuple[str, str]:
        tag = self._registry.ref.tag
        return tag, tag + OBJECTS_TAG_SUFFIX

    def _current(self, tag: str, artifact_type: str) -> dict[str, _Blob]:
        """The layers of the manifest ``tag`` names now, none if there is none."""
        try:
            data, _ = self._registry.manifest(tag)
        except MirrorMissingError:
            return {}
        return _parse_manifest(data, artifact_type, f"{self.url}: the manifest of {tag!r}")

    def read(self, path: str, limit: int) -> bytes | None:
        if not is_mirror_path(path):
            raise UsageError(f"{path!r} is not a mirror path.")
        if path.startswith("objects/"):
            digest = _object_digest(path)
        else:
            blob = self._current(self._tags()[0], ARTIFACT_TYPE).get(path)
            if blob is None:
                return None
            digest = blob.digest
        try:
            return self._registry.blob(digest, limit, path)
        except MirrorMissingError:
            return None

    def put(self, path: str, data: bytes) -> None:
        if not is_mirror_path(path):
            raise UsageError(f"{path!r} is not a mirror path.")
        digest = _digest(data)
        if path.startswith("objects/") and digest != _object_digest(path):
            raise UsageError(f"The bytes put at {path} are not that object (their digest is {digest}).")
        self._registry.push_blob(data)
        blob = _Blob(_media_type(path), digest, len(data))
        (self._objects if path.startswith("objects/") else self._files)[path] = blob

    def commit(self) -> None:
        """Push ``<tag>-objects`` (merged with what it listed), then the tag (merged with its key versions)."""
        if not self._files and not self._objects:
            return
        tag, objects_tag = self._tags()
        self._registry.push_blob(EMPTY_BLOB)
        if self._objects:
            objects = self._current(objects_tag, OBJECTS_ARTIFACT_TYPE)
            if not self._objects.keys() <= objects.keys():
                self._registry.push_manifest(
                    objects_tag, _manifest_bytes(OBJECTS_ARTIFACT_TYPE, objects | self._objects)
                )
        files = self._current(tag, ARTIFACT_TYPE) | self._files
        if HEAD_PATH not in files:
            raise UsageError(f"Nothing was put at {HEAD_PATH}, and the registry has none: there is nothing to tag.")
        self._registry.push_manifest(tag, _manifest_bytes(ARTIFACT_TYPE, files))
        self._files.clear()
        self._objects.clear()

    def close(self) -> None:
        self._registry.close()
