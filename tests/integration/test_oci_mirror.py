"""The oci:// transport against a real CNCF distribution registry (tests/mirror_servers.py); nothing mocked.

Skips without ``/usr/bin/docker-registry`` unless
``MCP_ORCHESTRATION_REQUIRE_MIRROR_SERVERS=1`` (CI).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_orchestration.core.errors import (
    MirrorError,
    MirrorMissingError,
    MirrorTimeoutError,
    MirrorTooLargeError,
    MirrorUnavailableError,
)
from mcp_orchestration.store.mirror.oci import OciSource, OciTarget
from mcp_orchestration.store.mirror.oci_layout import (
    ARTIFACT_TYPE,
    HEAD_MEDIA_TYPE,
    KEY_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    OBJECT_MEDIA_TYPE,
)
from mcp_orchestration.store.mirror.transport import TransportOptions
from mcp_orchestration.store.mirror.tree import HEAD_PATH, key_path, object_path
from tests.mirror_servers import RegistryServer, free_port, registry

OPTIONS = TransportOptions(timeout=10.0)
USER = "publisher"
PASSWORD = "registry-pw-5b1f0c7e"  # must never appear in an error


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry(tmp_path_factory.mktemp("auth-registry"), users={USER: PASSWORD}) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_docker_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test uses the developer's own `docker login`."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


def obj(data: bytes) -> tuple[str, bytes]:
    return object_path(hashlib.sha256(data).hexdigest()), data


def push(url: str, files: dict[str, bytes]) -> None:
    target = OciTarget(url, OPTIONS)
    try:
        for path, data in files.items():
            target.put(path, data)
        target.commit()
    finally:
        target.close()


def raw_manifest(server: RegistryServer, repository: str, tag: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://{server.host}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_MEDIA_TYPE}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http://127.0.0.1 only
        manifest: dict[str, object] = json.loads(response.read())
        return manifest


def titles(manifest: dict[str, object]) -> dict[str, str]:
    layers = manifest["layers"]
    assert isinstance(layers, list)
    return {layer["annotations"]["org.opencontainers.image.title"]: layer["mediaType"] for layer in layers}


def test_push_then_read_round_trips_head_keys_and_objects(server: RegistryServer) -> None:
    url = server.url("fleet/round-trip", "v1")
    object_one = obj(b'{"object": 1}')
    push(url, {object_one[0]: object_one[1], key_path(1): b"key history 1", HEAD_PATH: b"head 1"})

    target = OciTarget(url, OPTIONS)
    assert target.read(HEAD_PATH, 1024) == b"head 1"
    assert target.read(key_path(1), 1024) == b"key history 1"
    assert target.read(object_one[0], 1024) == object_one[1]
    assert target.read(key_path(2), 1024) is None
    assert target.read(obj(b"never pushed")[0], 1024) is None
    target.close()

    manifest = raw_manifest(server, "fleet/round-trip", "v1")
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert titles(manifest) == {HEAD_PATH: HEAD_MEDIA_TYPE, key_path(1): KEY_MEDIA_TYPE}
    object_id = hashlib.sha256(object_one[1]).hexdigest()
    assert titles(raw_manifest(server, "fleet/round-trip", "v1-objects")) == {object_one[0]: OBJECT_MEDIA_TYPE}
    with urllib.request.urlopen(f"http://{server.host}/v2/fleet/round-trip/blobs/sha256:{object_id}", timeout=10) as r:
        assert r.read() == object_one[1]  # a desktop fetches an object by its id


def test_a_second_push_adds_objects_and_keeps_the_first_ones_and_the_key_versions(server: RegistryServer) -> None:
    url = server.url("fleet/two-pushes")
    first, second = obj(b"first object"), obj(b"second object")
    push(url, {first[0]: first[1], key_path(1): b"key 1", HEAD_PATH: b"head 1"})
    push(url, {second[0]: second[1], key_path(2): b"key 2", HEAD_PATH: b"head 2"})

    assert set(titles(raw_manifest(server, "fleet/two-pushes", "latest-objects"))) == {first[0], second[0]}
    assert set(titles(raw_manifest(server, "fleet/two-pushes", "latest"))) == {HEAD_PATH, key_path(1), key_path(2)}
    source = OciSource(url, OPTIONS)
    fetched = source.fetch(HEAD_PATH, 1024)
    assert fetched is not None and fetched.data == b"head 2"
    source.close()


def test_a_put_of_an_existing_blob_uploads_nothing(server: RegistryServer) -> None:
    url = server.url("fleet/dedup")
    one = obj(b"only once")
    push(url, {one[0]: one[1], HEAD_PATH: b"head"})
    target = OciTarget(url, OPTIONS)
    target.put(*one)
    assert target.counters.requests == 1  # the HEAD that finds it
    assert target.counters.bytes_sent < 1024
    target.close()


def test_source_reads_head_then_keys_from_the_same_manifest_and_objects_by_digest(server: RegistryServer) -> None:
    url = server.url("fleet/source", "prod")
    one = obj(b"an object")
    push(url, {one[0]: one[1], key_path(1): b"key 1", HEAD_PATH: b"head 1"})

    source = OciSource(url, OPTIONS)
    head = source.fetch(HEAD_PATH, 1024)
    assert head is not None and head.data == b"head 1" and head.etag and head.etag.startswith("sha256:")
    assert source.counters.requests == 2  # the manifest, the head blob
    key = source.fetch(key_path(1), 1024)
    assert key is not None and key.data == b"key 1"
    assert source.counters.requests == 3  # the key blob only: the manifest is not fetched again
    fetched = source.fetch(one[0], 1024)
    assert fetched is not None and fetched.data == one[1]
    with pytest.raises(MirrorMissingError):
        source.fetch(key_path(2), 1024)
    source.close()

    keys_first = OciSource(url, OPTIONS)  # keys before the head: the manifest is fetched for them
    key = keys_first.fetch(key_path(1), 1024)
    assert key is not None and key.data == b"key 1"
    assert keys_first.counters.requests == 2
    keys_first.close()


def test_an_unchanged_head_costs_one_small_request_and_a_changed_one_a_new_etag(server: RegistryServer) -> None:
    url = server.url("fleet/conditional")
    push(url, {HEAD_PATH: b"head 1"})
    first = OciSource(url, OPTIONS).fetch(HEAD_PATH, 1024)
    assert first is not None and first.etag

    source = OciSource(url, OPTIONS)
    assert source.fetch(HEAD_PATH, 1024, etag=first.etag) is None
    assert source.counters.requests == 1
    assert source.counters.bytes_received < 2048

    push(url, {HEAD_PATH: b"head 2"})
    changed = source.fetch(HEAD_PATH, 1024, etag=first.etag)
    assert changed is not None and changed.data == b"head 2"
    assert changed.etag and changed.etag != first.etag
    source.close()


def test_missing_tag_and_missing_object_are_mirror_missing(server: RegistryServer) -> None:
    source = OciSource(server.url("fleet/never-pushed"), OPTIONS)
    with pytest.raises(MirrorMissingError):
        source.fetch(HEAD_PATH, 1024)
    url = server.url("fleet/missing-object")
    push(url, {HEAD_PATH: b"head"})
    source = OciSource(url, OPTIONS)
    with pytest.raises(MirrorMissingError):
        source.fetch(obj(b"not there")[0], 1024)
    source.close()


def test_a_registry_that_is_down_is_unavailable() -> None:
    source = OciSource(f"oci://127.0.0.1:{free_port()}/fleet/mirror", OPTIONS)
    started = time.monotonic()
    with pytest.raises(MirrorUnavailableError):
        source.fetch(HEAD_PATH, 1024)
    assert time.monotonic() - started < 5  # no retries with back-off
    assert source.counters.requests == 1


def test_a_blob_over_the_limit_is_too_large(server: RegistryServer) -> None:
    url = server.url("fleet/large")
    big = obj(b"x" * 5000)
    push(url, {big[0]: big[1], HEAD_PATH: b"h" * 3000})
    source = OciSource(url, OPTIONS)
    with pytest.raises(MirrorTooLargeError):
        source.fetch(big[0], 4096)
    with pytest.raises(MirrorTooLargeError):
        source.fetch(HEAD_PATH, 1024)
    assert source.counters.bytes_received < 4096
    source.close()


def test_a_tag_holding_something_else_is_refused(server: RegistryServer) -> None:
    url = server.url("fleet/foreign")
    push(url, {HEAD_PATH: b"head"})
    manifest = raw_manifest(server, "fleet/foreign", "latest")
    manifest["artifactType"] = "application/vnd.example.other"
    request = urllib.request.Request(
        f"http://{server.host}/v2/fleet/foreign/manifests/latest",
        data=json.dumps(manifest).encode(),
        headers={"Content-Type": MANIFEST_MEDIA_TYPE},
        method="PUT",
    )
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - http://127.0.0.1 only
    with pytest.raises(MirrorError, match="something else"):
        OciSource(url, OPTIONS).fetch(HEAD_PATH, 1024)
    target = OciTarget(url, OPTIONS)
    target.put(HEAD_PATH, b"head 2")
    with pytest.raises(MirrorError, match="something else"):
        target.commit()  # a push never overwrites what it did not make


def test_an_anonymous_push_to_a_registry_with_auth_is_refused_without_quoting_secrets(
    auth_server: RegistryServer,
) -> None:
    target = OciTarget(auth_server.url("fleet/private"), OPTIONS)
    with pytest.raises(MirrorError) as caught:
        target.put(HEAD_PATH, b"head")
    assert "docker login" in caught.value.hint
    shown = f"{caught.value} {caught.value!r} {caught.value.diagnostics()}"
    assert PASSWORD not in shown and "Basic " not in shown


def test_a_push_with_docker_config_credentials_succeeds(
    auth_server: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = tmp_path / "docker-login"
    docker.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {auth_server.host: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    url = auth_server.url("fleet/private")
    push(url, {HEAD_PATH: b"authenticated head"})
    source = OciSource(url, OPTIONS)
    fetched = source.fetch(HEAD_PATH, 1024)
    assert fetched is not None and fetched.data == b"authenticated head"
    assert source.counters.requests == 3  # the challenge, then the manifest and the blob with the credentials
    assert source.fetch(HEAD_PATH, 1024, etag=fetched.etag) is None
    assert source.counters.requests == 4  # the credentials that worked are sent right away
    source.close()


def test_wrong_docker_config_credentials_are_refused_without_quoting_them(
    auth_server: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = tmp_path / "docker-login"
    docker.mkdir()
    token = base64.b64encode(f"{USER}:wrong-{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {auth_server.host: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    with pytest.raises(MirrorError, match="refused the credentials") as caught:
        OciSource(auth_server.url("fleet/private"), OPTIONS).fetch(HEAD_PATH, 1024)
    shown = f"{caught.value} {caught.value!r} {caught.value.diagnostics()}"
    assert PASSWORD not in shown and token not in shown


def test_a_body_that_drips_in_is_cut_at_the_timeout() -> None:
    """A server sending a byte every 0.1 s never trips a read timeout; the whole-request deadline stops it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                try:
                    connection.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    source = OciSource(f"oci://127.0.0.1:{listener.getsockname()[1]}/fleet/slow", TransportOptions(timeout=1.0))
    started = time.monotonic()
    try:
        with pytest.raises(MirrorTimeoutError):
            source.fetch(obj(b"slow")[0], 1 << 20)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
