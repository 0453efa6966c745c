"""compose.secrets.yml on a real engine, driven by docker-compose 1.29 as an operator would.

These double as the runbook checks for SECURITY.md: every step is the command an
operator types (``docker-compose -f compose.secrets.yml ...``), with the key as a
file secret readable only by uid 65532. Each test gets its own compose project
(``-p``), secrets directory and store volume through the variables the compose
file reads, so tests never share state; everything they create is removed.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, ClientSession
from mcp.client.stdio import StdioServerParameters

from mcp_orchestration.server.app import DESCRIPTIONS, ERROR_META_KEY
from tests.container.conftest import DOCKER, IMAGE, NONROOT, docker
from tests.container.mcp_http import (
    TOOL_COUNT,
    free_port,
    healthz,
    mcp_http,
    post_without_session,
    wait_until,
    write_token,
)
from tests.stdio_session import mcp_session, structured

pytestmark = pytest.mark.container

COMPOSE = os.environ.get("DOCKER_COMPOSE", "/usr/bin/docker-compose")
ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.secrets.yml"
DOCKERFILE = ROOT / "Dockerfile.distroless"
CLI = Path(sys.executable).with_name("mcp-orchestration")  # the venv's console script, as an operator runs it
DEV_IMAGE = "mcp-orchestration:dev"
# The base images `make image` assembles locally (see Makefile); the Dockerfile's defaults need a registry.
BUILDER_IMAGE = os.environ.get("BUILDER_IMAGE", "mcp-orchestration/debian:13-slim")
RUNTIME_IMAGE = os.environ.get("RUNTIME_IMAGE", "mcp-orchestration/distroless-python3-debian13:nonroot")
SERVICE = "mcp-orchestration"
HTTP_SERVICE = "publisher"  # the `http` profile: serve --http on a published port
SERVICES = {"mcp-orchestration", "rotate", "refresh", "dev", HTTP_SERVICE}
NETWORKED = {"refresh"}  # it pushes the re-signed index to the mirror
HEALTH_TIMEOUT = 60.0  # the publisher's first health check runs 10 s after it starts
CD = "claude-desktop"
PROFILE = "compose"
HEALTHCHECK_HELP = "exit 0 if the store, its chain and the key are healthy"
CONFIG_A = {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/a"]}}}
CONFIG_B = {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/b"]}}}


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class Project:
    """One compose project: its name, secrets directory, store volume and environment."""

    name: str
    secrets: Path
    volume: str
    env: dict[str, str]
    overrides: list[Path] = field(default_factory=list)

    def argv(self, *args: str) -> list[str]:
        files = [COMPOSE_FILE, *self.overrides]
        return [COMPOSE, *(arg for path in files for arg in ("-f", str(path))), "-p", self.name, *args]

    def compose(
        self, *args: str, input: str = "", check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run docker-compose; stdin is a closed pipe unless ``input`` is given (never the test's terminal)."""
        result = subprocess.run(
            self.argv(*args),
            check=False,
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            output = f"{result.stdout}\n{result.stderr}"[-6000:]  # a failed build prints a lot; its end says why
            pytest.fail(f"docker-compose {' '.join(args)} exited {result.returncode}:\n{output}")
        return result

    def run(self, *argv: str, input: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        """``docker-compose run --rm -T mcp-orchestration ARGV``: one CLI command in the hardened service."""
        return self.compose("run", "--rm", "-T", SERVICE, *argv, input=input, check=check)

    def run_json(self, *argv: str, input: str = "") -> Any:
        return json.loads(self.run("--json", *argv, input=input).stdout)

    @property
    def key(self) -> Path:
        return self.secrets / "signing_key"

    @property
    def next_key(self) -> Path:
        return self.secrets / "signing_key_next"


@pytest.fixture(scope="module")
def docker_on_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose ``docker`` is $DOCKER.

    docker-compose 1.29 builds and attaches through the ``docker`` found on PATH; here that
    is a newer client without buildx (BuildKit builds then fail), so put Debian's first.
    """
    directory = tmp_path_factory.mktemp("docker-bin")
    (directory / "docker").symlink_to(DOCKER)
    return directory


@pytest.fixture
def project(secret_key: Path, docker_on_path: Path) -> Iterator[Project]:
    """A compose project of its own, with the signing key as ``secrets/signing_key`` (65532, 0400)."""
    tag = uuid.uuid4().hex[:10]
    env = {name: value for name, value in os.environ.items() if not name.startswith("MCP_ORCHESTRATION_")}
    volume = f"mcpo-compose-{tag}"
    env.update(
        {
            "MCP_ORCHESTRATION_SECRETS_DIR": str(secret_key.parent),
            "MCP_ORCHESTRATION_VOLUME": volume,
            "MCP_ORCHESTRATION_IMAGE": IMAGE,
            "PATH": f"{docker_on_path}{os.pathsep}{os.environ.get('PATH', '')}",
            "DOCKER_BUILDKIT": "1",
        }
    )
    proj = Project(f"mcpo-compose-{tag}", secret_key.parent, volume, env)
    yield proj
    _remove_project(proj)


def _remove_project(project: Project) -> None:
    """Remove every container (one-off runs included), the network if any, and the store volume."""
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project.name}", check=False)
    if ids.stdout.split():
        docker("rm", "-f", *ids.stdout.split(), check=False)
    for network in ("default", "http"):
        docker("network", "rm", f"{project.name}_{network}", check=False)
    docker("volume", "rm", "-f", project.volume, check=False)


def generate_key(path: Path) -> str:
    """A new key, made the documented way for the container: owner 65532, mode 0400. Returns its fingerprint."""
    result = subprocess.run(
        [str(CLI), "--json", "keys", "generate", "--out", str(path), "--owner", str(NONROOT), "--mode", "0400"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    info = path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NONROOT, 0o400)
    return str(json.loads(result.stdout)["fingerprint"])


def host_fingerprint(path: Path) -> str:
    """The fingerprint the host's CLI reads from a key file: what an operator records and pins."""
    result = subprocess.run(
        [str(CLI), "--json", "keys", "fingerprint", "--key-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["fingerprint"])


def yaml_to_data(text: str) -> Any:
    """Parse YAML; PyYAML is no test dependency, so fall back to docker-compose's own interpreter, which has it."""
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        interpreter = Path(COMPOSE).read_text(errors="replace").splitlines()[0].removeprefix("#!").split()
        script = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
        result = subprocess.run([*interpreter, "-c", script], input=text, capture_output=True, text=True, check=True)
        return json.loads(result.stdout)
    return yaml.safe_load(text)


def tool_error_code(result: Any) -> str:
    """The stable code of a tool error result (``_meta``), as a client reads it."""
    assert result.is_error, result
    assert result.meta is not None and ERROR_META_KEY in result.meta, result
    return str(result.meta[ERROR_META_KEY]["code"])


async def _session(project: Project, errlog: Path, steps: Any) -> Any:
    """Run ``steps(session)`` over stdio through ``docker-compose run --rm -T mcp-orchestration``."""
    params = StdioServerParameters(
        command=COMPOSE, args=project.argv("run", "--rm", "-T", SERVICE)[1:], env=project.env, cwd=ROOT
    )
    async with mcp_session(params, errlog, timeout=60) as sdk:
        return await steps(sdk.session)


def session(project: Project, errlog: Path, steps: Any) -> Any:
    """Synchronous wrapper: one MCP session against the compose service."""
    return anyio.run(_session, project, errlog, steps)


def init(project: Project) -> str:
    """``docker-compose run --rm mcp-orchestration init`` (as in the compose file's header); returns the root key."""
    result = project.compose("run", "--rm", SERVICE, "init")
    line = next(line for line in result.stdout.splitlines() if line.startswith("Root key: "))
    return line.removeprefix("Root key: ").strip()


def publish(project: Project, config: dict[str, Any], changelog: str) -> dict[str, Any]:
    """``publish --file -`` with the config on stdin (stdin_open in the compose file)."""
    args = ("publish", "--client", CD, "--profile", PROFILE, "--file", "-", "--changelog", changelog)
    report = project.run_json(*args, input=json.dumps(config))
    assert isinstance(report, dict)
    return report


# -- the compose file --------------------------------------------------------------------------


def test_config_is_valid_and_every_service_is_hardened_with_the_key_only_as_a_secret(project: Project) -> None:
    project.compose("config", "-q")
    text = project.compose("config").stdout
    config = yaml_to_data(text)
    services = config["services"]
    assert set(services) == SERVICES  # 1.29 prints every service, whatever its profile
    for name, service in services.items():
        where = f"service {name}"
        assert service.get("read_only") is True, where
        assert service.get("cap_drop") == ["ALL"], where
        assert not service.get("cap_add") and not service.get("privileged"), where
        assert "no-new-privileges:true" in service.get("security_opt", []), where
        assert service.get("user") == f"{NONROOT}:{NONROOT}", where
        assert service.get("init") is True, where
        assert service.get("tty") is False, where  # a TTY would corrupt the JSON-RPC stream
        assert "signing_key" in [secret["source"] for secret in service["secrets"]], where
        environment = json.dumps(service.get("environment", {}))
        assert "SIGNING_KEY" not in environment and "/run/secrets" not in environment, where
        assert "TOKEN" not in environment, where
        assert "store:/var/lib/mcp-orchestration:rw" in service["volumes"], where
        if name == HTTP_SERVICE:
            continue
        assert service.get("network_mode") == ("bridge" if name in NETWORKED else "none"), where
        assert service.get("stdin_open") is True, where
        assert not service.get("ports"), where
    # The publisher: a bridge network of its own, whose only way in is the port published on loopback.
    publisher = services[HTTP_SERVICE]
    assert publisher["profiles"] == ["http"]
    assert "network_mode" not in publisher and list(publisher["networks"]) == ["http"]
    assert config["networks"]["http"]["driver"] == "bridge"
    assert publisher["ports"] == ["127.0.0.1:8080:8080/tcp"]
    assert publisher["stdin_open"] is False
    assert [s["source"] for s in publisher["secrets"]] == ["signing_key", "http_token"]
    assert publisher["command"][:3] == ["serve", "--http", "0.0.0.0:8080"]
    assert publisher["command"][-2:] == ["--token-file", "/run/secrets/http_token"]
    assert publisher["healthcheck"]["test"] == [
        "CMD", "/venv/bin/mcp-orchestration", "healthcheck", "--http", "http://127.0.0.1:8080/healthz",
    ]  # fmt: skip
    assert [s["source"] for s in services["rotate"]["secrets"]] == ["signing_key", "signing_key_next"]
    assert config["secrets"] == {
        "signing_key": {"file": str(project.key)},
        "signing_key_next": {"file": str(project.next_key)},
        "http_token": {"file": str(project.secrets / "http_token")},
    }
    assert config["volumes"]["store"]["name"] == project.volume
    assert "PRIVATE KEY" not in text


def test_a_run_container_is_hardened_and_gets_the_key_as_a_read_only_file(project: Project) -> None:
    """What compose 1.29 actually creates, not just what it prints: nothing silently dropped."""
    container = project.compose("run", "-d", SERVICE).stdout.strip().splitlines()[-1]
    info = json.loads(docker("inspect", container).stdout)[0]
    host, config = info["HostConfig"], info["Config"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Init"] is True
    assert config["User"] == f"{NONROOT}:{NONROOT}"
    assert config["Tty"] is False and config["OpenStdin"] is True
    assert not [variable for variable in config["Env"] if "SIGNING_KEY" in variable or "/run/secrets" in variable]
    secrets = [mount for mount in info["Mounts"] if mount["Destination"].startswith("/run/secrets")]
    assert [(m["Type"], m["Source"], m["Destination"], m["RW"]) for m in secrets] == [
        ("bind", str(project.key), "/run/secrets/signing_key", False)
    ]


# -- init, healthcheck, the stdio server -------------------------------------------------------


def test_init_then_healthcheck_then_an_mcp_session_over_compose_run(project: Project, tmp_path: Path) -> None:
    assert init(project) == host_fingerprint(project.key)
    health = project.run("healthcheck")
    assert (health.returncode, health.stdout) == (0, "")

    async def steps(session: ClientSession) -> dict[str, Any]:
        tools = (await session.list_tools()).tools
        assert sorted(tool.name for tool in tools) == sorted(DESCRIPTIONS)
        trust = structured(await session.call_tool("get_trust_info", {}))
        assert trust["signed_by"] == host_fingerprint(project.key)
        args = {"client": CD, "profile": PROFILE}
        structured(await session.call_tool("add_server_to_config", {**args, "server_id": "time"}))
        published = structured(await session.call_tool("publish_config", {**args, "changelog": "over compose"}))
        assert published["index_version"] == 2
        got = structured(await session.call_tool("get_config", args))
        assert got["artifact"] == published["artifact"]
        return published

    errlog = tmp_path / "serve.stderr"
    published = session(project, errlog, steps)
    assert "Traceback" not in errlog.read_text()
    # What the session published is in the volume: the next container verifies it.
    report = project.run_json("verify", "--deep")
    assert (report["index_version"], report["profiles"]) == (2, 1)
    history = project.run_json("history", "--client", CD, "--profile", PROFILE)
    assert [v["artifact"] for v in history["versions"]] == [published["artifact"]]


# -- the publisher over HTTP (profile http) ----------------------------------------------------


def test_the_publisher_serves_mcp_over_http_hardened_with_its_token_from_a_secret_file(project: Project) -> None:
    """The header's `--profile http up -d publisher`: the image serving streamable HTTP on 127.0.0.1 only."""
    token = write_token(project.secrets / "http_token")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    project.env.update({"MCP_ORCHESTRATION_HTTP_PORT": str(port), "MCP_ORCHESTRATION_HTTP_RESOURCE": url})
    root = init(project)
    project.compose("--profile", "http", "up", "-d", HTTP_SERVICE)
    container = project.compose("--profile", "http", "ps", "-q", HTTP_SERVICE).stdout.strip()
    info = json.loads(docker("inspect", container).stdout)[0]
    host, config = info["HostConfig"], info["Config"]
    assert host["ReadonlyRootfs"] is True and host["Init"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert config["User"] == f"{NONROOT}:{NONROOT}"
    assert host["PortBindings"] == {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert list(info["NetworkSettings"]["Networks"]) == [f"{project.name}_http"]
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=16m"}
    secrets = sorted(
        (m["Source"], m["Destination"], m["RW"]) for m in info["Mounts"] if m["Destination"].startswith("/run/secrets")
    )
    assert secrets == [
        (str(project.secrets / "http_token"), "/run/secrets/http_token", False),
        (str(project.key), "/run/secrets/signing_key", False),
    ]
    assert token not in json.dumps(info)  # not in the command, the environment or a label

    wait_until(lambda: healthz(f"http://127.0.0.1:{port}"), HEALTH_TIMEOUT, f"the publisher on 127.0.0.1:{port}")
    for refused in (post_without_session(url), post_without_session(url, "x" * 43)):
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer "), refused.headers

    async def steps(client: Client) -> None:
        tools = (await client.list_tools()).tools
        assert sorted(tool.name for tool in tools) == sorted(DESCRIPTIONS) and len(tools) == TOOL_COUNT
        trust = structured(await client.call_tool("get_trust_info", {}))
        assert (trust["signed_by"], trust["index_version"]) == (root, 1)
        clients = structured(await client.call_tool("list_clients", {}))
        assert CD in json.dumps(clients)

    mcp_http(url, token, steps)

    def healthy() -> bool | None:
        status = docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
        assert status in ("starting", "healthy"), docker("inspect", "--format", "{{json .State.Health}}", container)
        return True if status == "healthy" else None

    wait_until(healthy, HEALTH_TIMEOUT, "the publisher's health check")
    logs = docker("logs", container)
    assert token not in logs.stdout + logs.stderr
    assert "Traceback" not in logs.stderr


# -- rotation ----------------------------------------------------------------------------------


def test_rotation_runbook_with_compose(project: Project, tmp_path: Path) -> None:
    """SECURITY.md's rotation, step by step, with compose's file secrets."""
    old = init(project)
    before = publish(project, CONFIG_A, "before rotation")

    # 1. The new key next to the current one, as secrets/signing_key_next.
    new = generate_key(project.next_key)
    # 2. Rotate with the current key still configured.
    rotated = project.compose("--profile", "rotate", "run", "--rm", "rotate")
    assert f"Rotated: {old} -> {new}" in rotated.stdout

    # A process still holding the old key: writes are key_retired (exit 4), reads keep working.
    refused = project.run("publish", "--client", CD, "--profile", PROFILE, "--file", "-", input="{}", check=False)
    assert refused.returncode == 4 and "key_retired" in refused.stderr, refused.stderr
    assert json.loads(project.run("get", "--client", CD, "--profile", PROFILE).stdout) == CONFIG_A

    async def old_key_steps(session: ClientSession) -> None:
        args = {"client": CD, "profile": PROFILE}
        draft = await session.call_tool("add_server_to_config", {**args, "server_id": "time"})
        assert tool_error_code(draft) == "key_retired"
        refused = await session.call_tool("publish_config", {**args, "changelog": "refused"})
        assert tool_error_code(refused) == "key_retired"
        assert structured(await session.call_tool("get_config", args))["artifact"] == before["artifact"]
        assert structured(await session.call_tool("verify_config", args))["verified"] is True

    session(project, tmp_path / "old-key.stderr", old_key_steps)

    # 3. The new key becomes signing_key, signing_key_next goes away, the service restarts.
    project.key.rename(project.secrets / "signing_key.retired")
    project.next_key.rename(project.key)
    after = publish(project, CONFIG_B, "after rotation")
    assert after["keyid"] == new.removeprefix("SHA256:")
    assert json.loads(project.run("get", "--client", CD, "--profile", PROFILE).stdout) == CONFIG_B
    keys = project.run_json("keys", "list")
    assert keys["root"] == old
    assert [(k["fingerprint"], k["status"]) for k in keys["keys"]] == [(old, "retired"), (new, "active")]
    # Signed before the rotation, still verifies: the whole store, and the old config itself.
    report = project.run_json("verify", "--deep")
    assert (report["index_version"], report["keyid"]) == (after["index_version"], new.removeprefix("SHA256:"))
    old_config = project.run("get", "--client", CD, "--profile", PROFILE, "--artifact", before["artifact"])
    assert json.loads(old_config.stdout) == CONFIG_A
    assert project.run("healthcheck").returncode == 0


# -- the dev profile ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_image(docker_on_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``docker-compose --profile dev build dev``, once per module (the lead owns mcp-orchestration:latest)."""
    secrets = tmp_path_factory.mktemp("dev-secrets")
    env = {name: value for name, value in os.environ.items() if not name.startswith("MCP_ORCHESTRATION_")}
    env.update(
        {
            "MCP_ORCHESTRATION_SECRETS_DIR": str(secrets),
            "PATH": f"{docker_on_path}{os.pathsep}{os.environ.get('PATH', '')}",
            "DOCKER_BUILDKIT": "1",
        }
    )
    project = Project(f"mcpo-devbuild-{uuid.uuid4().hex[:10]}", secrets, "unused", env)
    args = ("--build-arg", f"BUILDER_IMAGE={BUILDER_IMAGE}", "--build-arg", f"RUNTIME_IMAGE={RUNTIME_IMAGE}")
    project.compose("--profile", "dev", "build", *args, "dev", timeout=900)
    yield DEV_IMAGE


def probe_image(image: str) -> dict[str, Any]:
    """What an attacker with code execution would find: a shell, pip, a package manager."""
    script = (
        "import importlib.util, json, os, shutil;"
        "bins = ['/bin', '/usr/bin', '/usr/local/bin', '/venv/bin', '/buildenv/bin'];"
        "names = lambda p: [f'{d}/{n}' for d in bins if os.path.isdir(d) for n in os.listdir(d) if n.startswith(p)];"
        "print(json.dumps({'sh': [p for p in ('/bin/sh', '/bin/bash', '/bin/busybox') if os.path.exists(p)],"
        "'pip': names('pip'), 'pip_module': importlib.util.find_spec('pip') is not None,"
        "'apt': names('apt') + names('dpkg')}))"
    )
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "/venv/bin/python", image, "-c", script)
    return dict(json.loads(result.stdout))


def test_the_dev_stage_is_not_the_final_stage_of_the_dockerfile() -> None:
    """`docker build` without --target (make image) builds the last stage: that must not be dev."""
    stages = [line.split() for line in DOCKERFILE.read_text().splitlines() if line.upper().startswith("FROM ")]
    names = [words[3] if len(words) >= 4 and words[2].upper() == "AS" else None for words in stages]
    assert "dev" in names
    assert names[-1] != "dev" and names[-1] == "runtime", names
    assert not any(words[1] == "dev" for words in stages), "no stage may be built FROM dev"


def test_the_shipped_image_has_no_shell_and_no_pip() -> None:
    probe = probe_image(IMAGE)
    assert probe == {"sh": [], "pip": [], "pip_module": False, "apt": []}
    no_shell = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", IMAGE, "-c", "true", check=False)
    assert no_shell.returncode != 0


def test_the_dev_profile_builds_an_image_with_a_shell_and_pip(dev_image: str) -> None:
    """The dev target is a different image from the shipped one: it keeps the builder's tools."""
    assert docker("image", "inspect", "--format", "{{.Id}}", dev_image).stdout != (
        docker("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout
    )
    probe = probe_image(dev_image)
    assert probe["sh"] and probe["pip"], probe
    shell = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", dev_image, "-c", "true", check=False)
    assert shell.returncode == 0, shell.stderr


def test_a_src_change_is_live_on_the_next_dev_start(dev_image: str, project: Project, tmp_path: Path) -> None:
    """The dev service runs ./src from the bind mount; a copy stands in for ./src so the real tree is untouched."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in [src, *src.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by 65532
    override = tmp_path / "compose.dev-src.yml"
    override.write_text(f'version: "3.8"\nservices:\n  dev:\n    volumes:\n      - {src}:/src/src:ro\n')
    project.overrides.append(override)

    def dev_help() -> str:
        return project.compose("--profile", "dev", "run", "--rm", "-T", "dev", "--help").stdout

    assert HEALTHCHECK_HELP in " ".join(dev_help().split())
    cli_source = src / "mcp_orchestration" / "cli.py"
    marker = "healthcheck probe changed in the dev copy"
    text = cli_source.read_text()
    assert HEALTHCHECK_HELP in text
    cli_source.write_text(text.replace(HEALTHCHECK_HELP, marker, 1))
    changed = " ".join(dev_help().split())  # argparse wraps long help lines
    assert marker in changed and HEALTHCHECK_HELP not in changed
    assert HEALTHCHECK_HELP in (ROOT / "src" / "mcp_orchestration" / "cli.py").read_text()
