"""Resolving launchers' packages with the real package managers: npm's registry, PyPI, a Docker engine.

Nothing is mocked. A test skips when its tool is absent (npm; uv; a Docker
client and engine), except that ``MCP_ORCHESTRATION_REQUIRE_DOCKER=1`` (CI)
makes a missing engine a failure, and the registry test follows
``MCP_ORCHESTRATION_REQUIRE_MIRROR_SERVERS`` (tests/mirror_servers.py). The
answers are checked against what the tools say when asked another way
(``npm view``, pip against uv, ``docker push``'s digest), never against a
copy of the resolver's own logic.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_orchestration.app.package_pins import STDERR_LIMIT, STDOUT_LIMIT, ResolvedPackage, resolve
from mcp_orchestration.config.launchers import PackageKind, PackageRef, package_ref
from mcp_orchestration.config.model import StdioServer
from mcp_orchestration.core.errors import PackageResolveError, ValidationError
from mcp_orchestration.security.redaction import REDACTOR
from tests.mirror_servers import free_port, registry

TIMEOUT = 60.0
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
REQUIRE_DOCKER = "MCP_ORCHESTRATION_REQUIRE_DOCKER"
NPM = shutil.which("npm")
UV = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))  # PATH, or this venv's
FILESYSTEM = "@modelcontextprotocol/server-filesystem"
PASSWORD = "Rg7-registry-password-2b9f4c"  # in a registry URL: must never reach a message
LOADED_SECRET = "a-secret-this-process-loaded-5d1e"  # registered with the redactor, as key loaders do

needs_npm = pytest.mark.skipif(NPM is None, reason="npm is not installed")
needs_uv = pytest.mark.skipif(UV is None, reason="uv is not installed (`pip install uv`)")


def ref_of(command: str, *args: str) -> PackageRef:
    ref = package_ref(StdioServer(command, args))
    assert ref is not None
    return ref


def tool(*argv: str, stdin: str | None = None) -> str:
    """Run a tool as a test asks it something; its output, or the test fails with it."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, f"{argv} exited {done.returncode}: {done.stderr}"
    return done.stdout


def semver_key(version: str) -> tuple[int, ...]:
    """Order plain x.y.z releases (the ones these tests compare)."""
    return tuple(int(part) for part in version.split("."))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers: a registry that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in [*accepted, listener]:
        connection.close()


# -- what needs no tool ---------------------------------------------------------------------------


PINNED_DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (("npx", "-y", f"{FILESYSTEM}@2025.8.21"), ("npm", FILESYSTEM, f"{FILESYSTEM}@2025.8.21", "2025.8.21", None)),
        (("uvx", "mcp-server-time@0.6.2"), ("pypi", "mcp-server-time", "mcp-server-time@0.6.2", "0.6.2", None)),
        (("pipx", "run", "--spec", "mcp-server-fetch===0.6.2", "x"),
         ("pypi", "mcp-server-fetch", "mcp-server-fetch===0.6.2", "0.6.2", None)),
        (("docker", "run", "-i", f"mcp/time:1@{PINNED_DIGEST}"),
         ("oci", "mcp/time", f"mcp/time:1@{PINNED_DIGEST}", None, PINNED_DIGEST)),
    ],
)  # fmt: skip
def test_a_pinned_config_is_its_own_answer_and_starts_no_tool(
    server: tuple[str, ...], expected: tuple[PackageKind, str, str, str | None, str | None]
) -> None:
    kind, name, pin, version, digest = expected
    resolved = resolve(ref_of(*server), timeout=TIMEOUT, program="/nonexistent/tool")
    assert resolved == ResolvedPackage(kind, name, pin, "config", version, digest)


def test_a_spec_that_names_no_release_is_refused_with_its_reason() -> None:
    ref = ref_of("uvx", "--from", "git+https://github.com/oraios/serena", "serena")
    with pytest.raises(PackageResolveError) as raised:
        resolve(ref, timeout=TIMEOUT)
    assert raised.value.message == ref.problem
    assert raised.value.code == "package_resolve"


@pytest.mark.parametrize(
    ("server", "launcher", "tool_name"),
    [
        (("npx", "-y", "pkg"), "npx", "npm"),
        (("uvx", "pkg"), "uvx", "uv"),
        (("pipx", "run", "pkg"), "pipx", "pip"),
        (("podman", "run", "img"), "podman", "podman"),
    ],
)
def test_a_missing_tool_is_named(server: tuple[str, ...], launcher: str, tool_name: str) -> None:
    with pytest.raises(PackageResolveError) as raised:
        resolve(ref_of(*server), timeout=TIMEOUT, program="/nonexistent/tool")
    assert raised.value.message == (
        f"/nonexistent/tool is not installed (or not on PATH): {launcher} packages are resolved with {tool_name}."
    )
    assert raised.value.hint.startswith(("Install", "Run with a Python that has pip"))


def test_a_resolved_package_round_trips_through_its_json_form() -> None:
    resolved = ResolvedPackage(
        "oci", "ghcr.io/github/github-mcp-server", "x@sha256:" + "1" * 64, "registry", None, "sha256:" + "1" * 64
    )
    stored = json.dumps(resolved.to_json())
    assert list(json.loads(stored)) == ["kind", "name", "version", "digest", "pin", "source"]
    assert ResolvedPackage.from_json(json.loads(stored)) == resolved  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"kind": "npm", "name": "a", "version": "1.0.0", "pin": "a@1.0.0", "source": "registry"},
        {
            "kind": "npm",
            "name": "a",
            "version": "1.0.0",
            "digest": None,
            "pin": "a@1.0.0",
            "source": "registry",
            "x": 1,
        },
        {"kind": "cargo", "name": "a", "version": "1", "digest": None, "pin": "a@1", "source": "registry"},
        {"kind": "npm", "name": "a", "version": "1", "digest": None, "pin": "a@1", "source": "cache"},
        {"kind": "npm", "name": "a", "version": 1, "digest": None, "pin": "a@1", "source": "registry"},
        {"kind": "npm", "name": "a", "version": "1", "digest": None, "pin": "", "source": "registry"},
        {"kind": ["npm"], "name": "a", "version": "1", "digest": None, "pin": "a@1", "source": "registry"},
    ],
)
def test_anything_but_the_json_form_is_refused(data: object) -> None:
    with pytest.raises(ValidationError):
        ResolvedPackage.from_json(data)


def stand_in(tmp_path: Path, name: str, script: str) -> str:
    """An executable that takes a package manager's place and behaves as ``script`` (sh) says."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def test_what_a_tool_prints_on_failure_is_quoted_short_and_without_credentials(tmp_path: Path) -> None:
    REDACTOR.register({LOADED_SECRET})
    token = "npm_" + "Yh3kP9sQ2wE5rT8uI1oA4dF7gJ0lZ6xC3vB5"
    npm = stand_in(
        tmp_path,
        "npm",
        "echo 'npm warn config something' >&2\n"
        f"echo 'npm error 401 Unauthorized - GET https://mcp:{PASSWORD}@npm.corp.example/pkg' >&2\n"
        f"echo 'npm error token {token} was refused; {LOADED_SECRET}' >&2\n"
        + "echo 'npm error more detail' >&2\n" * 3000
        + "exit 1",
    )
    with pytest.raises(PackageResolveError) as raised:
        resolve(ref_of("npx", "-y", "pkg"), timeout=TIMEOUT, program=npm)
    message = raised.value.message
    assert message.startswith("npm could not resolve 'pkg' (exit status 1): npm error 401 Unauthorized - GET ")
    assert len(message) < 600 and "warn" not in message
    for secret in (PASSWORD, token, LOADED_SECRET):
        assert secret not in message


def test_a_tool_s_output_is_kept_to_a_bound(tmp_path: Path) -> None:
    npm = stand_in(tmp_path, "npm", f"head -c {STDOUT_LIMIT * 2} /dev/zero; head -c {STDERR_LIMIT * 4} /dev/zero >&2")
    with pytest.raises(PackageResolveError, match="npm did not print the JSON it was asked for"):
        resolve(ref_of("npx", "-y", "pkg"), timeout=TIMEOUT, program=npm)


def test_a_tool_reads_its_input_and_runs_in_a_scratch_directory(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    uv = stand_in(tmp_path, "uv", f'cat > {seen}; pwd >> {seen}; echo "$*" >> {seen}; echo "corp-mcp==2.0.1"')
    ref = ref_of("uvx", "--index", "https://pypi.corp.example/simple", "corp-mcp>=2")
    assert resolve(ref, timeout=TIMEOUT, program=uv).pin == "corp-mcp==2.0.1"
    requirement, directory, arguments = seen.read_text().splitlines()
    assert requirement == "corp-mcp>=2"
    assert Path(directory).name.startswith("mcp-orchestration-resolve-") and not Path(directory).exists()
    assert arguments.endswith("--index https://pypi.corp.example/simple -")


# -- npm ------------------------------------------------------------------------------------------


@needs_npm
def test_npm_resolves_a_bare_name_to_its_latest_tag() -> None:
    assert NPM is not None
    resolved = resolve(ref_of("npx", "-y", FILESYSTEM, "/data"), timeout=TIMEOUT)
    latest = json.loads(tool(NPM, "view", FILESYSTEM, "dist-tags.latest", "--json"))
    assert resolved == ResolvedPackage("npm", FILESYSTEM, f"{FILESYSTEM}@{latest}", "registry", latest)


@needs_npm
def test_npm_resolves_a_range_to_the_highest_match_that_npx_would_fetch() -> None:
    assert NPM is not None
    spec = f"{FILESYSTEM}@^2025.1"  # the latest tag (2026.x) is outside it: npm must pick the highest 2025 release
    matching = json.loads(tool(NPM, "view", spec, "version", "--json"))
    assert isinstance(matching, list) and len(matching) > 1  # npm view lists them all, in the registry's order
    resolved = resolve(ref_of("npx", "-y", spec), timeout=TIMEOUT)
    assert resolved.version == max(matching, key=semver_key)
    assert resolved.pin == f"{FILESYSTEM}@{resolved.version}"
    assert ref_of("npx", "-y", resolved.pin).pinned


@needs_npm
def test_npm_says_when_no_release_matches() -> None:
    with pytest.raises(PackageResolveError) as raised:
        resolve(ref_of("npx", "-y", f"{FILESYSTEM}@^1999"), timeout=TIMEOUT)
    assert raised.value.message.startswith(f"npm could not resolve '{FILESYSTEM}@^1999' (exit status 1): npm error")
    assert "ETARGET" in raised.value.message


@needs_npm
def test_npm_asks_the_registry_the_config_names_within_the_timeout(silent_port: int) -> None:
    ref = ref_of("npx", "--registry", f"http://127.0.0.1:{silent_port}/", "-y", "some-private-mcp")
    started = time.monotonic()
    with pytest.raises(PackageResolveError, match=r"npm did not answer within 3 s\."):
        resolve(ref, timeout=3)
    assert time.monotonic() - started < 10


@needs_npm
def test_npm_errors_never_quote_a_registry_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("npm_config_fetch_retries", "0")  # the environment reaches npm: fail at once, not in 70 s
    port = free_port()  # nothing listens there
    ref = ref_of("npx", "--registry", f"http://mcp:{PASSWORD}@127.0.0.1:{port}/", "-y", "some-private-mcp")
    with pytest.raises(PackageResolveError) as raised:
        resolve(ref, timeout=TIMEOUT)
    assert "ECONNREFUSED" in raised.value.message
    assert PASSWORD not in raised.value.diagnostics()


# -- PyPI -------------------------------------------------------------------------------------------


@needs_uv
def test_uv_and_pip_resolve_a_bare_name_to_the_same_latest_release() -> None:
    by_uv = resolve(ref_of("uvx", "mcp-server-time", "--local-timezone=UTC"), timeout=TIMEOUT, program=UV)
    by_pip = resolve(ref_of("pipx", "run", "mcp-server-time"), timeout=TIMEOUT)
    assert by_uv.version is not None and by_uv.version == by_pip.version
    assert (by_uv.pin, by_uv.source) == (f"mcp-server-time=={by_uv.version}", "registry")


@needs_uv
@pytest.mark.parametrize(
    ("args", "pin"),
    [
        (("--from", "mcp-server-time>=0.6,<0.6.3", "mcp-server-time"), "mcp-server-time==0.6.2"),
        (("mcp_server_time[extra]<0.6.3",), "mcp_server_time[extra]==0.6.2"),
    ],
)
def test_uv_resolves_a_range_to_its_highest_release(args: tuple[str, ...], pin: str) -> None:
    resolved = resolve(ref_of("uvx", *args), timeout=TIMEOUT, program=UV)
    assert (resolved.version, resolved.pin) == ("0.6.2", pin)


@needs_uv
def test_uv_resolves_latest_in_its_own_form() -> None:
    resolved = resolve(ref_of("uvx", "mcp-server-time@latest"), timeout=TIMEOUT, program=UV)
    assert resolved.pin == f"mcp-server-time@{resolved.version}"


def test_pip_resolves_pipx_spec_option_to_its_highest_release() -> None:
    resolved = resolve(ref_of("pipx", "run", "--spec", "mcp-server-time>=0.6,<0.6.3", "x"), timeout=TIMEOUT)
    assert resolved == ResolvedPackage("pypi", "mcp-server-time", "mcp-server-time==0.6.2", "registry", "0.6.2")


@needs_uv
def test_uv_and_pip_say_when_the_project_does_not_exist() -> None:
    name = f"no-such-project-{uuid.uuid4().hex[:12]}"
    with pytest.raises(PackageResolveError, match=rf"uv could not resolve '{name}' \(exit status 1\): error: "):
        resolve(ref_of("uvx", name), timeout=TIMEOUT, program=UV)
    with pytest.raises(PackageResolveError, match=rf"pip could not resolve '{name}' \(exit status 1\): ERROR: "):
        resolve(ref_of("pipx", "run", name), timeout=TIMEOUT)


@needs_uv
def test_uv_asks_the_index_the_config_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # the environment reaches uv: fail at once, not after 3 retries
    port = free_port()  # nothing listens there
    ref = ref_of("uvx", "--index-url", f"http://mcp:{PASSWORD}@127.0.0.1:{port}/simple", "corp-mcp")
    with pytest.raises(PackageResolveError) as raised:
        resolve(ref, timeout=TIMEOUT, program=UV)
    assert f"Failed to fetch: http://127.0.0.1:{port}/simple/corp-mcp/" in raised.value.message
    assert PASSWORD not in raised.value.diagnostics()


# -- OCI images on a Docker engine ------------------------------------------------------------------


def _engine_missing() -> str | None:
    try:
        info = subprocess.run([DOCKER, "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Docker client at {DOCKER}: {exc}"
    return None if info.returncode == 0 else "no Docker engine answers (build/docker-engine.sh starts one)"


@pytest.fixture(scope="module")
def engine() -> str:
    """The Docker client, with an engine that answers; skip (or fail, in CI) without one."""
    missing = _engine_missing()
    if missing is not None:
        if os.environ.get(REQUIRE_DOCKER) == "1":
            pytest.fail(f"{missing}, and {REQUIRE_DOCKER}=1 requires one")
        pytest.skip(missing)
    return DOCKER


@pytest.fixture
def local_image(engine: str, tmp_path: Path) -> Iterator[str]:
    """A tiny image built here (FROM scratch, one file): in no registry. Its name; removed afterwards."""
    (tmp_path / "hello.txt").write_text(f"built for {tmp_path.name}\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    name = f"mcpo-pins-test/{uuid.uuid4().hex[:12]}:v1"
    tool(engine, "build", "--quiet", "--tag", name, str(tmp_path))
    yield name
    subprocess.run([engine, "image", "rm", "--force", name], capture_output=True, timeout=TIMEOUT, check=False)


def _image_id(engine: str, name: str) -> str:
    return tool(engine, "image", "inspect", "--format", "{{.Id}}", name).strip()


def test_an_image_built_here_is_pinned_by_its_local_image_id(engine: str, local_image: str) -> None:
    resolved = resolve(ref_of("docker", "run", "-i", "--rm", local_image), timeout=TIMEOUT, program=engine)
    image_id = _image_id(engine, local_image)
    assert resolved == ResolvedPackage("oci", local_image.rsplit(":", 1)[0], image_id, "local-image", None, image_id)
    assert ref_of("docker", "run", "-i", "--rm", resolved.pin).pinned


def test_an_image_from_a_registry_is_pulled_and_pinned_by_its_manifest_digest(
    engine: str, local_image: str, tmp_path: Path
) -> None:
    with registry(tmp_path / "registry") as server:
        remote = f"{server.host}/pins/probe:v1"
        tool(engine, "tag", local_image, remote)
        pushed = tool(engine, "push", remote)
        digest = pushed.rsplit("digest: ", 1)[1].split()[0]
        tool(engine, "image", "rm", remote)  # not held here any more under that name: resolving must pull it
        try:
            resolved = resolve(ref_of("docker", "run", "-i", "--rm", remote), timeout=TIMEOUT, program=engine)
            again = resolve(ref_of("docker", "run", "-i", local_image), timeout=TIMEOUT, program=engine)
        finally:
            subprocess.run([engine, "image", "rm", remote], capture_output=True, timeout=TIMEOUT, check=False)
    repository = f"{server.host}/pins/probe"
    assert resolved == ResolvedPackage("oci", repository, f"{repository}@{digest}", "registry", None, digest)
    assert again.source == "local-image"  # the same image, but no digest is recorded for *its* repository


def test_an_image_no_registry_serves_is_an_error_with_the_engine_s_reason(engine: str) -> None:
    missing = f"127.0.0.1:{free_port()}/pins/absent:v1"
    with pytest.raises(PackageResolveError) as raised:
        resolve(ref_of("docker", "run", "-i", missing), timeout=TIMEOUT, program=engine)
    assert raised.value.message.startswith(f"docker could not resolve '{missing}' (exit status 1): ")
    assert "connection refused" in raised.value.message


def test_a_pull_that_hangs_is_cut_at_the_timeout(engine: str, silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(PackageResolveError, match=r"docker did not answer within 3 s\."):
        resolve(ref_of("docker", "run", "-i", f"127.0.0.1:{silent_port}/pins/hangs:v1"), timeout=3, program=engine)
    assert time.monotonic() - started < 10


def test_the_engine_options_of_the_config_are_used(engine: str, local_image: str, tmp_path: Path) -> None:
    ref = ref_of("docker", "--host", f"unix://{tmp_path}/no-engine.sock", "run", "-i", local_image)
    with pytest.raises(PackageResolveError, match=r"no-engine\.sock"):
        resolve(ref, timeout=TIMEOUT, program=engine)
