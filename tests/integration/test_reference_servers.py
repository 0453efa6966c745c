"""``lock`` and ``check`` with real reference servers, fetched as a client would fetch them: from PyPI and npm.

``mcp-server-time`` runs through ``uvx`` (uv, from this venv: the ``test``
extra installs it) and ``@modelcontextprotocol/server-filesystem`` through
``npx`` (the Node.js and npm that ``.ci/run`` installs). An unpinned config is
locked at the release its package manager resolves, a pinned one at its own
pin, and each server confirms what ran by what it reports. The releases named
here are immutable on their registries, so what they expose is fixed.

Without npm or uv, or without an answer from a registry, the tests skip,
unless ``MCP_ORCHESTRATION_REQUIRE_REFERENCE_SERVERS=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest

from mcp_orchestration.core.errors import ExitCode
from mcp_orchestration.store.repository import Repository
from tests.conftest import Run
from tests.integration.test_tool_lock import Store, independent_pin

REQUIRE_VARIABLE = "MCP_ORCHESTRATION_REQUIRE_REFERENCE_SERVERS"
REQUIRED = os.environ.get(REQUIRE_VARIABLE) == "1"  # read now: each test starts without MCP_ORCHESTRATION_*
TIMEOUT = "120"  # per server: a first run downloads the package and its dependencies
ASK_SECONDS = 60

TIME = "mcp-server-time"
TIME_PINNED = "2026.10.10"  # not the latest: the pin, not the registry, decides what runs
TIME_TOOLS = {"get_current_time", "convert_time"}
FILESYSTEM = "@modelcontextprotocol/server-filesystem"
FILESYSTEM_PINNED = "2026.8.31"
FILESYSTEM_SERVER = {"name": "secure-filesystem-server", "version": "0.2.0"}  # what that release says it is
FILESYSTEM_OLDER = "2025.11.25"  # same tool names; other descriptions and annotations
FILESYSTEM_TOOLS = {
    "read_file", "read_text_file", "read_media_file", "read_multiple_files", "write_file", "edit_file",
    "create_directory", "list_directory", "list_directory_with_sizes", "directory_tree", "move_file",
    "search_files", "get_file_info", "list_allowed_directories",
}  # fmt: skip
FILESYSTEM_STABLE = {"read_text_file", "write_file", "list_directory", "list_allowed_directories"}
TLS_VARIABLES = ("SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test, or fail it where CI requires the reference servers."""
    if REQUIRED:
        pytest.fail(f"{reason}, and {REQUIRE_VARIABLE}=1 requires them")
    pytest.skip(reason)


def ask(argv: list[str], cwd: Path, stdin: str | None = None) -> str:
    """A package manager's answer, asked directly; no answer (no tool, no registry) skips the test."""
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, cwd=cwd, timeout=ASK_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"{argv[0]} did not answer: {exc}")
    if done.returncode != 0:
        unavailable(f"{' '.join(argv[:3])} failed (is the registry reachable?): {done.stderr.strip()[-300:]}")
    return done.stdout


def host_tls() -> dict[str, str]:
    """The host's CA bundle, where it names one (a TLS-intercepting proxy's, say), as placeholders.

    A server gets only the SDK's safe variables and what its config names, so
    a launcher that downloads (uv reads SSL_CERT_FILE) needs the config to name it.
    """
    return {name: f"${{env:{name}}}" for name in TLS_VARIABLES if os.environ.get(name)}


def time_server(spec: str) -> dict[str, Any]:
    return {"command": "uvx", "args": [spec, "--local-timezone=UTC"], "env": host_tls()}


def filesystem_server(spec: str, root: Path) -> dict[str, Any]:
    return {"command": "npx", "args": ["-y", spec, str(root)], "env": host_tls()}


def stored_definitions(store: Store, server: str) -> dict[str, Any]:
    """The tools of ``server`` as the signed lock object holds them, read from the store's CAS."""
    lock_id = store.got()["tool_lock"]["lock"]
    stored = json.loads(Repository(store.tmp / "home" / "storage").objects.path_for(lock_id).read_text())
    tools: dict[str, Any] = stored["servers"][server]["tools"]
    return tools


def has_float(value: Any) -> bool:
    """Whether ``value`` holds a float, whose RFC 8785 form json.dumps may write otherwise."""
    if isinstance(value, dict):
        return any(has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(has_float(item) for item in value)
    return isinstance(value, float)


def assert_pins_recompute(store: Store, server: str, names: set[str]) -> None:
    """The pins the lock shows are the SHA-256 of the stored definitions' canonical JSON, recomputed here."""
    shown = store.got()["tool_lock"]["servers"][server]["tools"]
    stored = stored_definitions(store, server)
    for name in names:
        definition = stored[name]["definition"]
        assert not has_float(definition)  # else sorted-keys compact JSON is not RFC 8785 for certain
        assert shown[name] == stored[name]["sha256"] == independent_pin(definition)


@pytest.fixture
def store(run: Run, key_file: Path, tmp_path: Path) -> Store:
    return Store(run, key_file, tmp_path, timeout=TIMEOUT)


@pytest.fixture
def uv_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """``uv`` (the resolver) and ``uvx`` (the launcher) on PATH: this venv's first, as ``make install`` puts them."""
    venv_bin = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    uv = shutil.which("uv")
    if uv is None or shutil.which("uvx") is None:
        unavailable("uv is not installed (`pip install uv`, or `make install`: the test extra has it)")
    return Path(uv)


@pytest.fixture
def npm() -> Path:
    found = shutil.which("npm")
    if found is None or shutil.which("npx") is None:
        unavailable("npm is not installed (`apt-get install nodejs npm`, as .ci/run does)")
    return Path(found)


def test_a_pypi_server_is_locked_at_the_release_uv_resolves_or_the_config_pins(
    store: Store, uv_path: Path, tmp_path: Path
) -> None:
    compile_args = ["pip", "compile", "--no-deps", "--no-header", "--no-annotate", "--quiet", "-"]
    name, _, latest = ask([str(uv_path), *compile_args], tmp_path, f"{TIME}\n").strip().partition("==")
    assert name == TIME and latest
    store.publish({"time": time_server(TIME), "time-pinned": time_server(f"{TIME}=={TIME_PINNED}")})
    locked = store.lock()
    assert locked.status == 0, locked.stderr

    servers = store.got()["tool_lock"]["servers"]
    assert servers["time"]["package"] == f"{TIME}=={latest}"
    assert servers["time"]["server"]["name"] == "mcp-time" and servers["time"]["tools"].keys() >= TIME_TOOLS
    pinned = servers["time-pinned"]
    assert pinned["package"] == f"{TIME}=={TIME_PINNED}"
    assert pinned["server"] == {"name": "mcp-time", "version": TIME_PINNED}  # the server says which release ran
    assert pinned["tools"].keys() == TIME_TOOLS and not pinned["prompts"] and not pinned["resource_templates"]
    assert_pins_recompute(store, "time-pinned", TIME_TOOLS)
    timezone = stored_definitions(store, "time-pinned")["get_current_time"]["definition"]["inputSchema"]["properties"]
    assert "Use 'UTC' as local timezone" in timezone["timezone"]["description"]  # it ran with its config's arguments

    checked = store.check()
    assert checked.status == ExitCode.OK, checked.stdout + checked.stderr


def test_an_npm_server_pinned_in_its_config_is_locked_and_checked(store: Store, npm: Path, tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    store.publish({"fs": filesystem_server(f"{FILESYSTEM}@{FILESYSTEM_PINNED}", root)})
    locked = store.lock()
    assert locked.status == 0, locked.stderr

    fs = store.got()["tool_lock"]["servers"]["fs"]
    assert fs["package"] == f"{FILESYSTEM}@{FILESYSTEM_PINNED}"
    assert fs["server"] == FILESYSTEM_SERVER
    assert fs["tools"].keys() == FILESYSTEM_TOOLS and not fs["prompts"] and not fs["resource_templates"]
    assert_pins_recompute(store, "fs", FILESYSTEM_TOOLS)

    checked = store.check()
    assert checked.status == ExitCode.OK, checked.stdout + checked.stderr


def test_an_unpinned_npm_server_is_locked_at_latest_and_an_older_release_is_drift(
    store: Store, npm: Path, tmp_path: Path
) -> None:
    latest = json.loads(ask([str(npm), "view", FILESYSTEM, "dist-tags.latest", "--json"], tmp_path))
    root = tmp_path / "shared"
    root.mkdir()
    store.publish({"fs": filesystem_server(FILESYSTEM, root)})
    locked = store.lock()
    assert locked.status == 0, locked.stderr
    fs = store.got()["tool_lock"]["servers"]["fs"]
    assert fs["package"] == f"{FILESYSTEM}@{latest}" and fs["server"]["name"] == FILESYSTEM_SERVER["name"]
    assert fs["tools"].keys() >= FILESYSTEM_STABLE
    assert store.check().status == ExitCode.OK

    store.publish({"fs": filesystem_server(f"{FILESYSTEM}@{FILESYSTEM_OLDER}", root)})
    checked = store.check()
    assert checked.status == ExitCode.DRIFT, checked.stdout + checked.stderr
    assert f"fs: package '{FILESYSTEM}@{latest}' is now '{FILESYSTEM}@{FILESYSTEM_OLDER}'" in checked.stdout
    report = json.loads(store.check("--json").stdout)
    assert report["drift"] and report["stale"]
    changed = {change["item"]: change["details"] for change in report["changes"] if change["kind"] == "changed"}
    assert any(line.startswith("description: ") for line in changed["read_media_file"])
    assert not {change["kind"] for change in report["changes"]} & {"unreachable", "added", "removed"}
