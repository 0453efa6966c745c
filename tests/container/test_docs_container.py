"""The ``container`` blocks of README.md and SECURITY.md, run as written against the built image.

The ``stack`` scenario (the publisher as a swarm service) runs in ``test_swarm_stack.py``
instead, block by block, with the checks over HTTP between its steps.

Each scenario runs in a scratch directory (so Compose names its project after
it) with a fresh store volume; the swarm runbook's fixed names (service
``mcpo-*``, secrets ``mcpo_key_*``, network ``mcpo-internal``, volume
``mcpo-store``) must not exist beforehand and are removed afterwards, and a
swarm the test had to start is left again.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.conftest import DOCKER, docker
from tests.doc_blocks import provide, scenarios, script

pytestmark = pytest.mark.container

BIN = Path(sys.executable).parent
SWARM_SERVICES = ("mcpo-init", "mcpo-rotate", "mcpo-list")
SWARM_SECRETS = ("mcpo_key_1", "mcpo_key_2")
SWARM_VOLUME = "mcpo-store"


def _swarm_active() -> bool:
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    return state == "active"


@pytest.fixture
def swarm_names_free() -> Iterator[None]:
    """The swarm runbook's resources are free before, and gone after, whatever happens."""
    was_active = _swarm_active()
    taken = [f"volume {SWARM_VOLUME}"] if docker("volume", "inspect", SWARM_VOLUME, check=False).returncode == 0 else []
    if was_active:
        taken += [name for name in SWARM_SERVICES if docker("service", "inspect", name, check=False).returncode == 0]
        taken += [name for name in SWARM_SECRETS if docker("secret", "inspect", name, check=False).returncode == 0]
    assert not taken, f"the swarm runbook's names are in use here: {taken}"
    yield
    if _swarm_active():
        docker("service", "rm", *SWARM_SERVICES, check=False)
        docker("secret", "rm", *SWARM_SECRETS, check=False)
        docker("network", "rm", "mcpo-internal", check=False)
        if not was_active:
            docker("swarm", "leave", "--force")
    deadline = time.monotonic() + 60  # the volume is released once the tasks' containers are gone
    while docker("volume", "rm", "-f", SWARM_VOLUME, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"volume {SWARM_VOLUME} is still in use"
        time.sleep(1)


ELSEWHERE = {"stack"}  # tests/container/test_swarm_stack.py runs it, with checks between the blocks


@pytest.mark.parametrize("name", sorted(set(scenarios("container")) - ELSEWHERE), ids=str)
def test_documented_container_runbooks_run_as_written(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if name == "swarm":
        request.getfixturevalue("swarm_names_free")
    blocks = scenarios("container")[name]
    for block in blocks:
        for file in block.files:
            provide(file, tmp_path)
    volume = f"mcpo-doc-{uuid.uuid4().hex[:12]}"
    docker_dir = tmp_path / ".bin"  # `docker` in the blocks is the engine's own client
    docker_dir.mkdir()
    (docker_dir / "docker").symlink_to(DOCKER)
    env = {
        "PATH": f"{docker_dir}:{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "VOLUME": volume,
        "MCP_ORCHESTRATION_VOLUME": volume,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    try:
        result = subprocess.run(
            ["bash", "-c", script(blocks)], cwd=tmp_path, env={**env, "DOCKER_BUILDKIT": "1"},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        docker("volume", "rm", "-f", volume, check=False)
    where = ", ".join(block.where for block in blocks)
    assert result.returncode == 0, f"{where} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
