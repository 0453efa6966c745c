"""Container tests: the built image on a real Docker engine.

Every test module here sets ``pytestmark = pytest.mark.container``
(``make test-container`` builds the image first, then runs ``pytest -m container``). Without an engine they skip, unless
``MCP_ORCHESTRATION_REQUIRE_DOCKER=1`` (CI), where a missing engine or image
is a failure.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
IMAGE = os.environ.get("MCP_ORCHESTRATION_IMAGE", "mcp-orchestration:latest")
REQUIRE_VARIABLE = "MCP_ORCHESTRATION_REQUIRE_DOCKER"
ROOT = Path(__file__).resolve().parents[2]
NONROOT = 65532
# The flags the Claude Desktop snippet (`claude-config`) uses, minus the volume and key mounts.
HARDENED = (
    "--init", "--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "--tmpfs", "/tmp:rw,noexec,nosuid,size=16m",
)  # fmt: skip


def docker(*args: str, check: bool = True, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the Docker client; with ``check``, a failure shows its output."""
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result  # type: ignore[no-any-return]


def _unavailable() -> str | None:
    """Why the container tests cannot run here, or None."""
    try:
        info = subprocess.run([DOCKER, "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Docker client at {DOCKER}: {exc}"
    if info.returncode != 0:
        return "no Docker engine answers"
    image = subprocess.run([DOCKER, "image", "inspect", IMAGE], capture_output=True, timeout=30, check=False)
    if image.returncode != 0:
        return f"image {IMAGE} is not built (make image)"
    return None


@pytest.hookimpl(trylast=True)  # after ``-m`` deselection: only the container tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    unmarked = [item.nodeid for item in ours if item.get_closest_marker("container") is None]
    if unmarked:
        raise pytest.UsageError(f"container tests must be marked 'container' (pytestmark): {unmarked}")
    reason = _unavailable() if ours else None
    if reason is None:
        return
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        raise pytest.UsageError(f"{REQUIRE_VARIABLE}=1 but {reason}")
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def volume() -> Iterator[str]:
    """A fresh named volume for the store, removed afterwards."""
    name = f"mcpo-test-{uuid.uuid4().hex[:12]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name)  # fails if a test left a container holding it


@pytest.fixture
def secret_key(tmp_path: Path) -> Path:
    """A signing key file as a Docker secret must be: readable by uid 65532 only (mode 0400)."""
    from tests.conftest import write_key

    path = tmp_path / "secrets" / "signing_key"
    path.parent.mkdir()
    write_key(path)
    os.chown(path, NONROOT, NONROOT)
    path.chmod(0o400)
    return path


@pytest.fixture(scope="module")
def swarm_mode() -> Iterator[None]:
    """Swarm mode for a module: initialised here only if it was off, and then left again."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    networks = set(docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    if state == "active":
        yield
        return
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        yield
    finally:
        docker("swarm", "leave", "--force", check=False)
        if "docker_gwbridge" not in networks:  # `swarm init` made it; leaving does not remove it
            docker("network", "rm", "docker_gwbridge", check=False)


@dataclass(frozen=True)
class Filesystem:
    """The exported root filesystem: every member's metadata, contents read on demand from the tar."""

    archive: Path
    members: dict[str, tarfile.TarInfo]

    def names(self) -> Iterator[PurePosixPath]:
        return (PurePosixPath(name) for name in self.members)

    def read(self, name: str) -> bytes:
        with tarfile.open(self.archive) as tar:
            handle = tar.extractfile(self.members[name])
            assert handle is not None, f"{name} is not a regular file"
            return handle.read()

    def regular_files(self) -> Iterator[tuple[str, bytes]]:
        """Every regular file's name and bytes, in one pass over the archive."""
        with tarfile.open(self.archive) as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    yield _name(member), handle.read()


def _name(member: tarfile.TarInfo) -> str:
    return member.name.removeprefix("./").strip("/")


@pytest.fixture(scope="module")
def filesystem(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filesystem]:
    """The image's filesystem, flattened by ``docker export`` of a created (never started) container."""
    archive = tmp_path_factory.mktemp("image") / "rootfs.tar"
    container = docker("create", "--network", "none", IMAGE).stdout.strip()
    try:
        docker("export", "--output", str(archive), container)
    finally:
        docker("rm", "-f", "-v", container, check=False)  # -v: the VOLUME made an anonymous volume
    with tarfile.open(archive) as tar:
        members = {_name(member): member for member in tar if _name(member)}
    yield Filesystem(archive, members)
    archive.unlink(missing_ok=True)


def pyproject_version() -> str:
    """The version pyproject.toml declares: the image's label, and a release's tag without its "v"."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    assert isinstance(version, str)
    return version
