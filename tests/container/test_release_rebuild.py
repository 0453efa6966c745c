"""A released image, pushed to and pulled from a real registry, against a rebuild: the same, or the difference named.

``make verify-release`` ends with build/rebuild-compare.sh: it checks out the
commit the image names, pulls the two bases the release published beside the
image, checks them against the ids the image names, rebuilds on them with
``--no-cache`` and compares
(build/repro_check.py). This publishes the image the way release.yml does, to
a distribution registry on 127.0.0.1, and runs that; then the comparison on a
pushed copy that was altered, and on a registry serving the wrong base. The
refusals that need no engine are in tests/unit/test_release_scripts.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.conftest import DOCKER, IMAGE, ROOT, docker, pyproject_version
from tests.mirror_servers import RegistryServer, registry

pytestmark = pytest.mark.container

BUILDER_BASE = os.environ.get("BUILDER_IMAGE", "mcp-orchestration/debian:13-slim")
RUNTIME_BASE = os.environ.get("RUNTIME_IMAGE", "mcp-orchestration/distroless-python3-debian13:nonroot")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


def _layers() -> int:
    """How many layers the built image has (rootfs.diff_ids, empty ones included)."""
    return len(json.loads(docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", IMAGE).stdout))


def _push(name: str) -> str:
    """Push a local image and return it by the digest the registry holds."""
    docker("push", name)
    digests = docker("image", "inspect", "-f", "{{range .RepoDigests}}{{println .}}{{end}}", name).stdout.split()
    repository = name.rsplit(":", 1)[0]
    pinned = [digest for digest in digests if digest.startswith(repository + "@")]
    assert len(pinned) == 1, digests
    return pinned[0]


def _compare(reference: str) -> subprocess.CompletedProcess[str]:
    docker("image", "rm", reference, check=False)
    docker("pull", reference)  # what a verifier has: the image as the registry serves it
    command = [sys.executable, str(ROOT / "build" / "repro_check.py"), "--docker", DOCKER, reference, IMAGE]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_a_release_pulled_from_a_registry_matches_its_rebuild(server: RegistryServer) -> None:
    released = f"{server.host}/mcp-orchestration:release"
    docker("tag", IMAGE, released)
    try:
        result = _compare(_push(released))
    finally:
        docker("image", "rm", released, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"repro-check: the same: {_layers()} layer digests equal, image ids equal" in result.stdout


def test_a_released_image_with_a_planted_file_is_reported_file_by_file(server: RegistryServer, tmp_path: Path) -> None:
    """An attacker with push rights adds a layer: the rebuild does not have it, and the report says what it holds."""
    (tmp_path / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY planted.pth /venv/lib/python3.13/site-packages/\n")
    (tmp_path / "planted.pth").write_text("import os\n")
    tampered = f"{server.host}/mcp-orchestration:tampered"
    docker("build", "--quiet", "-t", tampered, str(tmp_path), env={**os.environ, "DOCKER_BUILDKIT": "1"})
    try:
        result = _compare(_push(tampered))
    finally:
        docker("image", "rm", tampered, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"layers: A has {_layers() + 1}, B has {_layers()}" in result.stdout


def _publish(server: RegistryServer, runtime_base: str = RUNTIME_BASE) -> str:
    """What release.yml publishes: the two bases tagged by the config digests the image names, then the image."""
    name = f"{server.host}/mcp-orchestration"
    labels = json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", IMAGE).stdout)
    for role, local in (("builder", BUILDER_BASE), ("runtime", runtime_base)):
        config = labels[f"io.mcp-orchestration.base.{role}.config"].removeprefix("sha256:")
        docker("tag", local, f"{name}:base-{role}-{config}")
        docker("push", f"{name}:base-{role}-{config}")
    docker("tag", IMAGE, f"{name}:{pyproject_version()}")
    return _push(f"{name}:{pyproject_version()}")


def _rebuild_compare(reference: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "build" / "rebuild-compare.sh"
    command = [str(script), reference, f"v{pyproject_version()}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)


def _image_is_the_commit() -> bool:
    """The built image is the checkout's commit alone: no change, tracked or not, went into it."""
    status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True, cwd=ROOT)
    return not status.stdout.strip()


def test_a_release_rebuilds_bit_for_bit_from_its_commit_on_the_bases_it_published(server: RegistryServer) -> None:
    """rebuild-compare.sh: the image's commit alone, the published bases checked against the signed ids, --no-cache.

    A file planted untracked in this checkout's src/ must not reach the rebuild: it builds the commit, not the tree.
    """
    if not _image_is_the_commit():
        pytest.skip("the image was built from a tree with changes: a rebuild of its commit differs")
    reference = _publish(server)
    planted = ROOT / "src" / "mcp_orchestration" / "planted_untracked.py"
    planted.write_text("raise SystemExit('planted')\n")
    try:
        result = _rebuild_compare(reference)
    finally:
        planted.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"repro-check: the same: {_layers()} layer digests equal, image ids equal" in result.stdout


def test_a_published_base_that_is_not_the_images_is_refused(server: RegistryServer) -> None:
    """A registry that serves another runtime base under the release's tag cannot pass the rebuild off as equal."""
    result = _rebuild_compare(_publish(server, runtime_base=BUILDER_BASE))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the runtime base" in result.stderr and "has layers sha256:" in result.stderr


def test_a_published_base_with_its_layers_but_another_config_is_refused(server: RegistryServer, tmp_path: Path) -> None:
    """Same layers, so the same chain id, but an ONBUILD that would run in the verifier's rebuild: refused first."""
    (tmp_path / "Dockerfile").write_text(f"FROM {RUNTIME_BASE}\nONBUILD RUN echo planted\n")
    doctored = "mcp-orchestration/doctored-runtime:test"
    docker("build", "--quiet", "-t", doctored, str(tmp_path), env={**os.environ, "DOCKER_BUILDKIT": "1"})
    try:
        result = _rebuild_compare(_publish(server, runtime_base=doctored))
    finally:
        docker("image", "rm", doctored, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the runtime base" in result.stderr and "has config sha256:" in result.stderr
    assert "repro-check" not in result.stdout  # refused before anything was built or compared
