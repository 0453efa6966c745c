"""The signing key as a swarm secret: ownership and mode as asked, the exposure warning, rotation.

Outside swarm, compose's file secrets are bind mounts and ignore uid/gid/mode; in swarm
mode the engine writes the secret with the uid, gid and mode of the service's secret
reference. These tests run one-shot services (``--restart-condition none``) against a
store volume and read what happened from the task's exit code and ``docker service logs``.
They double as the swarm runbook checks for SECURITY.md.

Swarm mode is switched on if it is off (and off again afterwards, only then). Swarm
services on this engine cannot use ``--network none`` or no-new-privileges (no such flags),
so they get ``--read-only --cap-drop ALL`` and the image's non-root user.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import IMAGE, NONROOT, docker

pytestmark = pytest.mark.container

CLI = Path(sys.executable).with_name("mcp-orchestration")  # the venv's console script, as an operator runs it
HOME = "/var/lib/mcp-orchestration"
PYTHON = "/venv/bin/python"
WARNING = "is readable by group or others"
TASK_TIMEOUT = 60.0
FINAL_STATES = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


@dataclass
class Task:
    """How a one-shot service's only task ended."""

    state: str
    exit_code: int | None
    stdout: str
    stderr: str
    error: str


@dataclass
class Swarm:
    """Creates services, secrets and volumes with a per-test prefix, and removes them all."""

    prefix: str
    services: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def secret(self, label: str, path: Path) -> str:
        """``docker secret create`` from a key file on the host."""
        name = f"{self.prefix}-{label}"
        docker("secret", "create", name, str(path))
        self.secrets.append(name)
        return name

    def volume(self) -> str:
        name = f"{self.prefix}-store"
        docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def run(
        self,
        label: str,
        *args: str,
        secrets: Sequence[str] = (),
        volume: str | None = None,
        env: dict[str, str] | None = None,
        entrypoint: str | None = None,
    ) -> Task:
        """A one-shot service: create it, wait for its task to end, return exit code and logs."""
        name = f"{self.prefix}-{label}"
        options = ["--detach", "--quiet", "--name", name, "--restart-condition", "none"]
        options += ["--read-only", "--cap-drop", "ALL", "--init"]
        if volume is not None:
            options += ["--mount", f"type=volume,source={volume},target={HOME}"]
        for secret in secrets:
            options += ["--secret", secret]
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        if entrypoint is not None:
            options += ["--entrypoint", entrypoint]
        self.services.append(name)
        docker("service", "create", *options, IMAGE, *args)
        return wait_for_task(name)

    def cleanup(self) -> None:
        """Services first (they hold secrets and volumes), then secrets, then volumes once the tasks are gone."""
        if self.services:
            docker("service", "rm", *self.services, check=False)
        for secret in self.secrets:
            docker("secret", "rm", secret, check=False)
        deadline = time.monotonic() + 30
        for volume in self.volumes:
            while docker("volume", "rm", "-f", volume, check=False).returncode != 0 and time.monotonic() < deadline:
                time.sleep(0.5)  # the tasks' containers are removed asynchronously


def wait_for_task(service: str) -> Task:
    """Poll the service's task until it reaches a final state; then its logs, stdout and stderr apart."""
    deadline = time.monotonic() + TASK_TIMEOUT
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        tasks = docker("service", "ps", "--quiet", "--no-trunc", service).stdout.split()
        if tasks:
            status = json.loads(docker("inspect", "--format", "{{json .Status}}", tasks[0]).stdout)
            if status.get("State") in FINAL_STATES:
                break
        time.sleep(0.25)
    else:
        pytest.fail(f"service {service} did not finish within {TASK_TIMEOUT} s: {status}")
    logs = docker("service", "logs", "--raw", service)
    container = status.get("ContainerStatus") or {}
    return Task(str(status["State"]), container.get("ExitCode"), logs.stdout, logs.stderr, str(status.get("Err", "")))


def cli(*args: str) -> Any:
    """The host's CLI with ``--json``: what an operator runs next to the engine."""
    result = subprocess.run([str(CLI), "--json", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def generate_key(path: Path) -> str:
    """A new key as SECURITY.md makes one for the container (owner 65532, mode 0400); its fingerprint."""
    fingerprint = str(
        cli("keys", "generate", "--out", str(path), "--owner", str(NONROOT), "--mode", "0400")["fingerprint"]
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    return fingerprint


def secret_ref(name: str, target: str = "signing_key", mode: str = "0400") -> str:
    """A service's secret reference: the container user owns it, with the given mode."""
    return f"source={name},target={target},uid={NONROOT},gid={NONROOT},mode={mode}"


# Prints the secret file's owner and mode, then becomes `mcp-orchestration keys fingerprint`:
# one task shows both how the secret arrived and that the product loads it.
STAT_THEN_FINGERPRINT = (
    "import json, os, sys;"
    "path = sys.argv[1];"
    "info = os.stat(path);"
    "print(json.dumps({'path': path, 'uid': info.st_uid, 'gid': info.st_gid, 'mode': info.st_mode & 0o7777,"
    " 'process': [os.getuid(), os.getgid()]}), flush=True);"
    "os.execv('/venv/bin/mcp-orchestration', ['mcp-orchestration', '--json', 'keys', 'fingerprint'])"
)


def stat_then_fingerprint(task: Task) -> tuple[dict[str, Any], str]:
    """The two JSON documents the task printed: the file's stat, then the fingerprint."""
    assert (task.state, task.exit_code) == ("complete", 0), task
    decoder = json.JSONDecoder()
    text = task.stdout.strip()
    info, end = decoder.raw_decode(text)
    fingerprint, _ = decoder.raw_decode(text[end:].strip())
    return info, str(fingerprint["fingerprint"])


@pytest.fixture
def swarm(swarm_mode: None) -> Iterator[Swarm]:
    objects = Swarm(f"mcpo-swarm-{uuid.uuid4().hex[:10]}")
    yield objects
    objects.cleanup()


# -- the secret as it arrives ------------------------------------------------------------------


def test_a_swarm_secret_arrives_owned_by_65532_mode_0400_and_loads(swarm: Swarm, secret_key: Path) -> None:
    secret = swarm.secret("key", secret_key)
    task = swarm.run(
        "fingerprint",
        "-c",
        STAT_THEN_FINGERPRINT,
        "/run/secrets/signing_key",
        secrets=[secret_ref(secret)],
        entrypoint=PYTHON,
    )
    info, fingerprint = stat_then_fingerprint(task)
    assert info == {
        "path": "/run/secrets/signing_key",
        "uid": NONROOT,
        "gid": NONROOT,
        "mode": 0o400,
        "process": [NONROOT, NONROOT],  # and cap-drop ALL: no DAC override, so only the owner can read it
    }
    assert fingerprint == cli("keys", "fingerprint", "--key-file", str(secret_key))["fingerprint"]
    assert WARNING not in task.stderr


def test_a_world_readable_secret_warns_only_outside_run_secrets(swarm: Swarm, secret_key: Path) -> None:
    """Mode 0444 (swarm's default) under /run/secrets is exempt, as SECURITY.md says; elsewhere it warns."""
    secret = swarm.secret("key", secret_key)
    expected = cli("keys", "fingerprint", "--key-file", str(secret_key))["fingerprint"]

    in_secrets = swarm.run(
        "in-secrets",
        "-c",
        STAT_THEN_FINGERPRINT,
        "/run/secrets/signing_key",
        secrets=[secret_ref(secret, mode="0444")],
        entrypoint=PYTHON,
    )
    info, fingerprint = stat_then_fingerprint(in_secrets)
    assert (info["mode"], fingerprint) == (0o444, expected)
    assert WARNING not in in_secrets.stderr

    outside = "/etc/mcp-orchestration/signing_key"
    elsewhere = swarm.run(
        "elsewhere",
        "-c",
        STAT_THEN_FINGERPRINT,
        outside,
        secrets=[secret_ref(secret, target=outside, mode="0444")],
        env={"MCP_ORCHESTRATION_SIGNING_KEY_FILE": outside},
        entrypoint=PYTHON,
    )
    info, fingerprint = stat_then_fingerprint(elsewhere)
    assert (info["mode"], fingerprint) == (0o444, expected)
    assert f"The signing key file {outside} {WARNING} (mode 0444)" in elsewhere.stderr


# -- rotation ----------------------------------------------------------------------------------


def test_rotation_with_swarm_secrets(swarm: Swarm, secret_key: Path, tmp_path: Path) -> None:
    """SECURITY.md's rotation with swarm secrets: init, rotate with signing_key_next, then swap the secrets."""
    old = cli("keys", "fingerprint", "--key-file", str(secret_key))["fingerprint"]
    new = generate_key(tmp_path / "signing_key_next")
    current = swarm.secret("key-1", secret_key)
    following = swarm.secret("key-2", tmp_path / "signing_key_next")
    store = swarm.volume()

    init = swarm.run("init", "--json", "init", secrets=[secret_ref(current)], volume=store)
    assert (init.state, init.exit_code) == ("complete", 0), init
    assert json.loads(init.stdout)["fingerprint"] == old

    rotate = swarm.run(
        "rotate",
        "--json",
        "keys",
        "rotate",
        secrets=[secret_ref(current), secret_ref(following, target="signing_key_next")],
        volume=store,
    )
    assert (rotate.state, rotate.exit_code) == ("complete", 0), rotate
    report = json.loads(rotate.stdout)
    assert (report["old_fingerprint"], report["new_fingerprint"], report["already_done"]) == (old, new, False)

    # The old key, still the signing_key secret of some service: writes refused, key_retired.
    retired = swarm.run("retired", "keys", "revoke", new, secrets=[secret_ref(current)], volume=store)
    assert (retired.state, retired.exit_code) == ("failed", 4), retired
    assert "key_retired" in retired.stderr

    # The swap: the second secret now mounted as signing_key; signing_key_next is gone.
    listed = swarm.run("list", "--json", "keys", "list", secrets=[secret_ref(following)], volume=store)
    assert (listed.state, listed.exit_code) == ("complete", 0), listed
    keys = json.loads(listed.stdout)
    assert keys["root"] == old
    assert [(k["fingerprint"], k["status"]) for k in keys["keys"]] == [(old, "retired"), (new, "active")]
    assert [(k["first_index"], k["last_index"]) for k in keys["keys"]] == [(1, 1), (2, None)]

    healthy = swarm.run("health", "healthcheck", secrets=[secret_ref(following)], volume=store)
    assert (healthy.state, healthy.exit_code, healthy.stderr) == ("complete", 0, ""), healthy
