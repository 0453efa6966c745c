"""How a mirror lies in an OCI registry: the reference an ``oci://`` URL names, media types, manifests.

An OCI 1.1 artifact with this project's media types. Every mirror file is a
blob, and an object's blob digest is ``sha256:<object id>``, so a desktop
fetches an object by its id. The tag names a small manifest whose layers are
``index/HEAD`` and every ``keys/NNNNNNNN.json``, each titled with its mirror
path; ``<tag>-objects`` names a manifest listing every object so the
registry's garbage collection keeps them (a desktop never reads it). A
registry bounds a manifest's size (distribution: 4 MiB, about 20,000 objects).

Plain HTTP only for a loopback registry (``localhost``, ``127.0.0.1``,
``::1``), as Docker does for a local one; HTTPS everywhere else.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, NamedTuple

from mcp_orchestration.core.errors import MirrorError, MirrorTooLargeError, UsageError
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
LOOPBACK_NAMES = frozenset({"localhost"})

_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,119}")  # 120, so that "<tag>-objects" is a tag too
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
LOGIN_HINT = (
    "Log in with `docker login REGISTRY` (the credentials go to the Docker config or its credential store, "
    "which this reads; set DOCKER_CONFIG for another config directory), and check that the account may "
    "read (sync) or push (mirror push) this repository."
)


class Reference(NamedTuple):
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
            hint=LOGIN_HINT,
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


def digest_of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def media_type_of(path: str) -> str:
    if path == HEAD_PATH:
        return HEAD_MEDIA_TYPE
    return KEY_MEDIA_TYPE if path.startswith("keys/") else OBJECT_MEDIA_TYPE


def object_digest(path: str) -> str:
    """``objects/sha256/ab/cdef...`` is the blob ``sha256:abcdef...``."""
    _, _, prefix, rest = path.split("/")
    return f"sha256:{prefix}{rest}"


class Blob(NamedTuple):
    """A manifest layer: one mirror file."""

    media_type: str
    digest: str
    size: int

    def descriptor(self, path: str) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, "annotations": {TITLE: path}}


def manifest_bytes(artifact_type: str, layers: Mapping[str, Blob]) -> bytes:
    """An OCI 1.1 artifact manifest (empty config), layers in path order so equal content gives equal digests."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": digest_of_bytes(EMPTY_BLOB), "size": len(EMPTY_BLOB)},
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


def parse_manifest(data: bytes, artifact_type: str, what: str) -> dict[str, Blob]:
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
    found: dict[str, Blob] = {}
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
            and media_type == media_type_of(path)
            and isinstance(digest, str)
            and _DIGEST.fullmatch(digest)
            and isinstance(size, int)
            and size >= 0
            and (media_type != OBJECT_MEDIA_TYPE or digest == object_digest(path))
        ):
            raise MirrorError(f"{what} has a layer that is not a mirror file of ours.")
        found[path] = Blob(media_type, digest, size)
    return found
