"""deploy/swarm/publisher.stack.yml on a single-node swarm, driven by SECURITY.md's runbook.

The ``stack`` scenario's blocks (``<!-- doc-test: container scenario=stack -->``) run one at
a time in one bash process, as an operator types them into one terminal (the ``once``
helper of the first block serves the second). Between them the SDK's own HTTP client
checks what the publisher serves: its tools, a publish attributed to the token
(``published_by``), a request without the token refused, the key rotated from
``signing_key_v1`` to ``signing_key_v2`` while the service keeps answering, then the
new key signing once ``docker service update`` has swapped the secret versions.

Swarm mode is switched on if it is off (and off again afterwards, only then). The
runbook's fixed names (stack ``mcp-orchestration``, services ``publisher-*``, secrets
``signing_key_v*`` and ``http_token_v1``) must be free, and are removed afterwards
whatever happens; the store volume and the port are the test's own, through the
variables the stack file reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_orchestration.server.app import DESCRIPTIONS, ERROR_META_KEY
from tests.container.conftest import DOCKER, IMAGE, NONROOT, docker
from tests.container.mcp_http import TOOL_COUNT, free_port, healthz, mcp_http, post_without_session, wait_until
from tests.doc_blocks import Block, provide, scenarios
from tests.stdio_session import structured

pytestmark = pytest.mark.container

BIN = Path(sys.executable).parent
CLI = BIN / "mcp-orchestration"
STACK = "mcp-orchestration"
SERVICE = f"{STACK}_publisher"
ONE_SHOT = ("publisher-init", "publisher-rotate")
SECRETS = ("signing_key_v1", "signing_key_v2", "http_token_v1")
LABEL = "mcp-orchestration.store"
STEP_TIMEOUT = 180.0  # one runbook block, its waits for swarm included
CLEANUP_TIMEOUT = 60.0
CD = "claude-desktop"
PROFILE = "stack"


# -- the runbook, one block at a time ----------------------------------------------------------


class Runbook:
    """One ``bash`` running a scenario's blocks in turn: variables and functions carry over, as in a terminal."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its own process group, killed whole by close()
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._send("set -euo pipefail\n")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def step(self, block: Block, timeout: float = STEP_TIMEOUT) -> str:
        """Run ``block`` as written (stdin closed, so no command eats the script); return what it printed."""
        marker = f"--- {block.where} done {uuid.uuid4().hex} ---"
        self._send(f"# {block.where}\n{{\n{block.text}}} </dev/null\nprintf '%s\\n' '{marker}'\n")
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                pytest.fail(f"{block.where} did not finish within {timeout:.0f} s:\n{''.join(output)[-4000:]}")
            if line is None:
                code = self.process.wait()
                pytest.fail(f"{block.where} failed (bash exited {code}):\n{''.join(output)[-4000:]}")
            if line.rstrip("\n") == marker:
                return "".join(output)
            output.append(line)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class Stack:
    """The runbook's shell, its directory, and where the publisher answers."""

    runbook: Runbook
    directory: Path
    port: int
    volume: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def token(self) -> str:
        return (self.directory / "http_token").read_text().strip()


def _service_exists(name: str) -> bool:
    return docker("service", "inspect", name, check=False).returncode == 0


def _node_labels(node: str) -> dict[str, str]:
    labels = docker("node", "inspect", "--format", "{{json .Spec.Labels}}", node).stdout
    return dict(json.loads(labels) or {})


def _cleanup(volume: str, node: str, label_was_there: bool) -> None:
    """Services first (they hold secrets, volume and port), then what they held, each wait bounded."""
    docker("stack", "rm", STACK, check=False)
    docker("service", "rm", *ONE_SHOT, check=False)
    deadline = time.monotonic() + CLEANUP_TIMEOUT

    def containers() -> list[str]:
        ids: list[str] = []
        for service in (SERVICE, *ONE_SHOT):
            listed = docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={service}", check=False)
            ids += listed.stdout.split()
        return ids

    while containers() and time.monotonic() < deadline:
        time.sleep(0.5)  # swarm removes the tasks' containers asynchronously
    for secret in SECRETS:
        while docker("secret", "inspect", secret, check=False).returncode == 0 and time.monotonic() < deadline:
            if docker("secret", "rm", secret, check=False).returncode != 0:
                time.sleep(0.5)
    while docker("network", "inspect", f"{STACK}_default", check=False).returncode == 0:
        if docker("network", "rm", f"{STACK}_default", check=False).returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    while docker("volume", "rm", "-f", volume, check=False).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    if not label_was_there:
        docker("node", "update", "--label-rm", LABEL, node, check=False)


@pytest.fixture
def stack(swarm_mode: None, tmp_path: Path) -> Iterator[Stack]:
    """The runbook's shell in a scratch directory with its inputs; the runbook's names free before, gone after."""
    taken = [name for name in (SERVICE, *ONE_SHOT) if _service_exists(name)]
    taken += [name for name in SECRETS if docker("secret", "inspect", name, check=False).returncode == 0]
    assert not taken, f"the stack runbook's names are in use here: {taken}"
    node = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    label_was_there = LABEL in _node_labels(node)
    blocks = scenarios("container")["stack"]
    for block in blocks:
        for file in block.files:
            provide(file, tmp_path)
    docker_dir = tmp_path / ".bin"  # `docker` in the blocks is the engine's own client
    docker_dir.mkdir()
    (docker_dir / "docker").symlink_to(DOCKER)
    port = free_port()
    volume = f"mcpo-stack-{uuid.uuid4().hex[:12]}"
    env = {
        "PATH": f"{docker_dir}:{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "MCP_ORCHESTRATION_IMAGE": IMAGE,
        "MCP_ORCHESTRATION_VOLUME": volume,
        "MCP_ORCHESTRATION_HTTP_PORT": str(port),
        "MCP_ORCHESTRATION_HTTP_RESOURCE": f"http://127.0.0.1:{port}/mcp",
    }
    if "PYTHONPATH" in os.environ:  # the host's CLI from the tree under test
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    runbook = Runbook(tmp_path, env)
    try:
        yield Stack(runbook, tmp_path, port, volume)
    finally:
        runbook.close()
        _cleanup(volume, node, label_was_there)


# -- helpers -----------------------------------------------------------------------------------


def fingerprint(path: Path) -> str:
    result = subprocess.run(
        [str(CLI), "--json", "keys", "fingerprint", "--key-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["fingerprint"])


def task_container() -> dict[str, Any]:
    """``docker inspect`` of the publisher's one running container."""
    ids = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}").stdout.split()
    assert len(ids) == 1, ids
    return dict(json.loads(docker("inspect", ids[0]).stdout)[0])


def service_secrets() -> dict[str, tuple[str, str, str, int]]:
    """The service's secrets by target: (secret name, uid, gid, mode)."""
    spec = json.loads(docker("service", "inspect", "--format", "{{json .Spec}}", SERVICE).stdout)
    return {
        s["File"]["Name"]: (s["SecretName"], s["File"]["UID"], s["File"]["GID"], s["File"]["Mode"])
        for s in spec["TaskTemplate"]["ContainerSpec"]["Secrets"]
    }


def tool_error_code(result: Any) -> str:
    assert result.is_error, result
    assert result.meta is not None and ERROR_META_KEY in result.meta, result
    return str(result.meta[ERROR_META_KEY]["code"])


def keys_of(trust: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key["fingerprint"], key["status"]) for key in trust["keys"]]


async def publish(client: Client, server_id: str, changelog: str) -> dict[str, Any]:
    """Draft a server into the profile and publish it, over MCP."""
    args = {"client": CD, "profile": PROFILE}
    structured(await client.call_tool("add_server_to_config", {**args, "server_id": server_id}))
    return structured(await client.call_tool("publish_config", {**args, "changelog": changelog}))


# -- the stack ---------------------------------------------------------------------------------


def test_the_stack_serves_http_and_rotates_its_key_through_secret_versions(stack: Stack) -> None:
    deploy, rotate, swap = scenarios("container")["stack"]
    stack.runbook.step(deploy)
    v1 = fingerprint(stack.directory / "signing_key")
    static = f"static-token:{hashlib.sha256(stack.token.encode()).hexdigest()[:16]}"
    by = {"subject": static, "client_id": "static-token", "issuer": stack.url}

    # What swarm runs: one replica, stop-first, hardened, the secrets owned by 65532 with mode 0400.
    spec = json.loads(docker("service", "inspect", "--format", "{{json .Spec}}", SERVICE).stdout)
    container_spec, task = spec["TaskTemplate"]["ContainerSpec"], spec["TaskTemplate"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 1
    assert (spec["UpdateConfig"]["Order"], spec["RollbackConfig"]["Order"]) == ("stop-first", "stop-first")
    assert (container_spec["ReadOnly"], container_spec["Init"], container_spec["User"]) == (True, True, "65532:65532")
    assert container_spec["CapabilityDrop"] == ["ALL"]
    assert "--http" in container_spec["Healthcheck"]["Test"]
    assert task["RestartPolicy"]["Condition"] == "any"
    assert task["Resources"]["Limits"]["MemoryBytes"] > 0 and task["Resources"]["Limits"]["NanoCPUs"] > 0
    assert f"node.labels.{LABEL} == true" in task["Placement"]["Constraints"]
    assert not [v for v in container_spec.get("Env", []) if "TOKEN" in v or "KEY" in v]
    owned = (str(NONROOT), str(NONROOT), 0o400)
    assert service_secrets() == {"signing_key": ("signing_key_v1", *owned), "http_token": ("http_token_v1", *owned)}
    first = task_container()
    assert first["State"]["Health"]["Status"] == "healthy"  # the runbook waited for Running
    assert stack.token not in json.dumps(first)
    assert healthz(f"http://127.0.0.1:{stack.port}")

    # Over HTTP: refused without the token; with it, the tools, a read, and a publish attributed to the token.
    refused = post_without_session(stack.url)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer ")

    async def before_rotation(client: Client) -> dict[str, Any]:
        tools = (await client.list_tools()).tools
        assert sorted(tool.name for tool in tools) == sorted(DESCRIPTIONS) and len(tools) == TOOL_COUNT
        trust = structured(await client.call_tool("get_trust_info", {}))
        assert (trust["signed_by"], keys_of(trust)) == (v1, [(v1, "active")])
        published = await publish(client, "time", "over HTTP from the stack")
        assert published["keyid"] == v1.removeprefix("SHA256:")
        history = structured(await client.call_tool("get_config_history", {"client": CD, "profile": PROFILE}))
        assert [(v["artifact"], v["published_by"]) for v in history["versions"]] == [(published["artifact"], by)]
        return published

    published = mcp_http(stack.url, stack.token, before_rotation)

    # The rotation, with the publisher serving: reads as before, writes refused with key_retired.
    output = stack.runbook.step(rotate)
    v2 = fingerprint(stack.directory / "signing_key_next")
    assert f"Rotated: {v1} -> {v2}" in output, output

    async def during_rotation(client: Client) -> None:
        args = {"client": CD, "profile": PROFILE}
        assert structured(await client.call_tool("get_config", args))["artifact"] == published["artifact"]
        trust = structured(await client.call_tool("get_trust_info", {}))
        assert keys_of(trust) == [(v1, "retired"), (v2, "active")]
        draft = await client.call_tool("add_server_to_config", {**args, "server_id": "fetch"})
        assert tool_error_code(draft) == "key_retired"

    mcp_http(stack.url, stack.token, during_rotation)
    assert task_container()["Id"] == first["Id"]  # still the same task, still healthy
    assert task_container()["State"]["Health"]["Status"] == "healthy"

    # The swap: a new task with signing_key_v2 as signing_key, healthy before the update returns.
    stack.runbook.step(swap)
    second = task_container()
    assert second["Id"] != first["Id"] and second["State"]["Health"]["Status"] == "healthy"
    assert service_secrets() == {"signing_key": ("signing_key_v2", *owned), "http_token": ("http_token_v1", *owned)}
    assert docker("secret", "inspect", "signing_key_v1", check=False).returncode != 0

    async def after_rotation(client: Client) -> None:
        trust = structured(await client.call_tool("get_trust_info", {}))
        assert keys_of(trust) == [(v1, "retired"), (v2, "active")]
        again = await publish(client, "fetch", "after the rotation")
        assert again["keyid"] == v2.removeprefix("SHA256:")
        assert again["index_version"] == published["index_version"] + 2  # the rotation re-signed one version
        history = structured(await client.call_tool("get_config_history", {"client": CD, "profile": PROFILE}))
        assert [(v["artifact"], v["published_by"]) for v in history["versions"]] == [
            (again["artifact"], by),
            (published["artifact"], by),
        ]
        assert structured(await client.call_tool("verify_config", {"client": CD, "profile": PROFILE}))["verified"]

    wait_until(lambda: healthz(f"http://127.0.0.1:{stack.port}"), 30, "the new task answering")
    mcp_http(stack.url, stack.token, after_rotation)
