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

from typing import TYPE_CHECKING

from mcp_orchestration.core.errors import MirrorError, MirrorMissingError, MirrorTooLargeError, UsageError
from mcp_orchestration.store.mirror.http import HttpClient
from mcp_orchestration.store.mirror.oci_layout import (
    ARTIFACT_TYPE,
    EMPTY_BLOB,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    OBJECTS_ARTIFACT_TYPE,
    OBJECTS_TAG_SUFFIX,
    Blob,
    digest_of_bytes,
    manifest_bytes,
    media_type_of,
    object_digest,
    parse_manifest,
    parse_url,
)
from mcp_orchestration.store.mirror.transport import Counters, Fetched, TransportOptions
from mcp_orchestration.store.mirror.tree import HEAD_PATH, is_mirror_path

if TYPE_CHECKING:
    from mcp_orchestration.store.mirror.oci_registry import Registry


class _RegistryUser:
    """A transport that opens its registry client (requests, oras-py: slow to import) on first use."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.url = url
        self.ref = parse_url(url)
        self.options = options
        self.counters = Counters()
        self._client: Registry | None = None

    @property
    def _registry(self) -> Registry:
        if self._client is None:
            from mcp_orchestration.store.mirror.oci_registry import Registry

            self._client = Registry(self.url, self.options, self.counters)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class OciSource(_RegistryUser):
    """Reads a mirror from a registry: the tag's manifest (conditionally), then blobs by digest."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        self._layers: dict[str, Blob] | None = None  # the tag's manifest last read: keys come from the same one

    def fetch(self, path: str, limit: int, *, etag: str | None = None) -> Fetched | None:
        if not is_mirror_path(path):
            raise UsageError(f"{path!r} is not a mirror path.")
        if path.startswith("objects/"):
            digest = object_digest(path)
            return Fetched(self._registry.blob(digest, limit, path), etag=digest)
        tag = self.ref.tag
        manifest_digest = None
        if path == HEAD_PATH:
            read = self._head_manifest(etag)
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
            raise MirrorMissingError(f"{self.url}: the manifest of {self.ref.tag!r} has no {path}.")
        if blob.size > limit:
            raise MirrorTooLargeError(f"{self.url}: {path} is {blob.size} bytes, over the {limit}-byte limit.")
        data = self._registry.blob(blob.digest, limit, path)
        return Fetched(data, etag=manifest_digest if path == HEAD_PATH else blob.digest)

    def _head_manifest(self, etag: str | None) -> tuple[bytes, str] | None:
        """The tag's manifest and its digest; None if it is still ``etag``.

        A scheduled sync asks with ``etag``: first as one anonymous conditional GET
        over ``http.client``, so an unchanged mirror costs one request and no
        registry client (requests and oras-py are slow to import). A registry that
        wants credentials, or answers anything else, is asked again by the client
        (with the credentials that worked, once it has them).
        """
        if etag is not None and self._client is None:
            scheme = "http" if self.ref.plain_http else "https"
            client = HttpClient(f"{scheme}://{self.ref.registry}/", self.options)
            client.counters = self.counters
            try:
                headers = {"Accept": MANIFEST_MEDIA_TYPE, "If-None-Match": f'"{etag}"'}
                target = f"/v2/{self.ref.repository}/manifests/{self.ref.tag}"
                reply = client.send("GET", target, headers, limit=MAX_MANIFEST_BYTES)
            finally:
                client.close()
            if reply.status == 304:
                return None
            digest = digest_of_bytes(reply.body)
            if reply.status == 200 and reply.headers.get("docker-content-digest", digest) == digest:
                return reply.body, digest
        return self._registry.manifest_if_changed(self.ref.tag, etag)

    def _parse(self, data: bytes) -> dict[str, Blob]:
        layers = parse_manifest(data, ARTIFACT_TYPE, f"{self.url}: the manifest of {self.ref.tag!r}")
        if HEAD_PATH not in layers:
            raise MirrorError(f"{self.url}: the manifest of {self.ref.tag!r} has no {HEAD_PATH} layer.")
        return layers


class OciTarget(_RegistryUser):
    """Writes a mirror to a registry: blobs as they are put, the two manifests on commit."""

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        self._files: dict[str, Blob] = {}  # index/HEAD and key versions put since the last commit
        self._objects: dict[str, Blob] = {}

    def _tags(self) -> tuple[str, str]:
        tag = self.ref.tag
        return tag, tag + OBJECTS_TAG_SUFFIX

    def _current(self, tag: str, artifact_type: str) -> dict[str, Blob]:
        """The layers of the manifest ``tag`` names now, none if there is none."""
        try:
            data, _ = self._registry.manifest(tag)
        except MirrorMissingError:
            return {}
        return parse_manifest(data, artifact_type, f"{self.url}: the manifest of {tag!r}")

    def read(self, path: str, limit: int) -> bytes | None:
        if not is_mirror_path(path):
            raise UsageError(f"{path!r} is not a mirror path.")
        if path.startswith("objects/"):
            digest = object_digest(path)
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
        digest = digest_of_bytes(data)
        if path.startswith("objects/") and digest != object_digest(path):
            raise UsageError(f"The bytes put at {path} are not that object (their digest is {digest}).")
        self._registry.push_blob(data)
        blob = Blob(media_type_of(path), digest, len(data))
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
                    objects_tag, manifest_bytes(OBJECTS_ARTIFACT_TYPE, objects | self._objects)
                )
        files = self._current(tag, ARTIFACT_TYPE) | self._files
        if HEAD_PATH not in files:
            raise UsageError(f"Nothing was put at {HEAD_PATH}, and the registry has none: there is nothing to tag.")
        self._registry.push_manifest(tag, manifest_bytes(ARTIFACT_TYPE, files))
        self._files.clear()
        self._objects.clear()

    def close(self) -> None:
        self._registry.close()
