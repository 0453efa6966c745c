"""A released image, pushed to and pulled from a real registry, against a rebuild: the same, or the difference named.

``make verify-release`` ends with ``make repro-check REFERENCE=NAME@sha256:...``;
this runs that comparison (build/repro_check.py) on an image that went through
a distribution registry on 127.0.0.1, and on one whose pushed copy was altered.
It also checks that build/verify-release.sh refuses what it cannot verify:
a tag instead of a digest, and a machine without cosign (no verdict, exit 2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.conftest import DOCKER, IMAGE, docker
from tests.mirror_servers import RegistryServer, registry

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "a" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


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
    assert "repro-check: the same: 6 layer digests equal" in result.stdout


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
    assert "layers: A has 7, B has 6" in result.stdout


def _verify_release(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root")}
    script = ROOT / "build" / "verify-release.sh"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60, check=False, env=env)


def test_verify_release_refuses_an_image_named_by_tag() -> None:
    result = _verify_release("ghcr.io/owner/repo:1.0.0", "v1.0.0", path=os.environ["PATH"])
    assert result.returncode == 2
    assert "name the image by digest" in result.stderr


def test_verify_release_without_cosign_gives_no_verdict(tmp_path: Path) -> None:
    """Signature checks are not optional: without the tool there is no verdict, never a pass."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "git", "make", "python3", "sed", "dirname"):
        found = subprocess.run(["which", tool], capture_output=True, text=True, check=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    result = _verify_release(f"ghcr.io/owner/repo@{DIGEST}", "v1.0.0", path=str(bin_dir))
    assert result.returncode == 2
    assert "no cosign on PATH" in result.stderr
