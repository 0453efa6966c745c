"""An external MCP client drives ``mcp-orchestration serve``: the MCP Inspector CLI, over stdio and over HTTP.

The Inspector (npm ``@modelcontextprotocol/inspector``) is pinned to an exact
version in ``build/node/package.json`` and ``package-lock.json``; ``.ci/run``
installs it with ``npm ci --prefix build/node`` and sets
``MCP_ORCHESTRATION_REQUIRE_INSPECTOR`` so CI never skips these tests. On a
machine without ``build/node/node_modules`` they are skipped, unless that
variable is set, in which case they fail.

Each Inspector run connects, does one request and exits. Over stdio it spawns
the server (``python -m mcp_orchestration serve``); the server's store and key
reach it only through the Inspector's ``-e KEY=VALUE`` option. The flow is the
one of the stdio test: tools/list, add, validate, publish, get, verify,
history. Over streamable HTTP (``--transport http --server-url URL``) it
reaches a running ``serve --http --issuer URL`` with a bearer token minted by
the test's issuer (``tests/oidc_issuer.py``) in ``--header "Authorization:
Bearer ..."``, and ``--stored-auth-only``, so that a refused token ends the
run instead of starting an interactive OAuth flow.

Exit codes of the pinned version (2.12.0), as documented in its
``docs/cli-smoke-testing.md`` ("Branch on exit codes") and coded in
``EXIT_CODES`` of ``clients/cli/build/index.js``: 0 success, 1 usage or
unexpected error, 3 authorization required (the server answered 401), 4 server
unreachable, 5 tool error (``isError: true``, or the tool was not found). A
tool error still prints the result on stdout, and a one-line JSON error
envelope (``tool_is_error`` / ``tool_not_found`` / ``auth_required``) ends
stderr.

The pinned Inspector declares ``engines.node >= 22.19`` but runs these
commands on the machine's Node 20; these tests are what shows it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mcp_orchestration.app.environment import ENV_PREFIX
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.server.app import DESCRIPTIONS
from mcp_orchestration.store.repository import Repository
from tests.http_server import INITIALIZE, HttpServer, http_server
from tests.integration.tool_errors import wire_error
from tests.oidc_issuer import Issuer

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "build" / "node"
INSPECTOR = NODE_DIR / "node_modules" / ".bin" / "mcp-inspector"
PINNED_VERSION = "2.12.0"
REQUIRE_VARIABLE = "MCP_ORCHESTRATION_REQUIRE_INSPECTOR"
AUTH_REQUIRED_EXIT = 3  # the Inspector's EXIT_CODES.AUTH_REQUIRED
TOOL_ERROR_EXIT = 5  # the Inspector's EXIT_CODES.TOOL_ERROR
RUN_TIMEOUT = 120

CD = "claude-desktop"
PROFILE = "default"
READ = "mcp-orchestration:read"

if not (NODE_DIR / "node_modules").is_dir() and not os.environ.get(REQUIRE_VARIABLE):
    pytest.skip(
        "the MCP Inspector is not installed: run `npm ci --prefix build/node` "
        f"(CI does, and sets {REQUIRE_VARIABLE} so these tests never skip there)",
        allow_module_level=True,
    )


def require_inspector() -> None:
    assert INSPECTOR.exists(), (
        f"{INSPECTOR} is missing although {REQUIRE_VARIABLE} is set: run `npm ci --prefix build/node`"
    )


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The ``result`` of the Inspector's ``--format json`` envelope on stdout."""
        try:
            envelope = json.loads(self.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"the Inspector printed no JSON (exit {self.status}):\n{self.stdout}\n{self.stderr}")
        assert isinstance(envelope, dict) and "result" in envelope, envelope
        return dict(envelope["result"])

    def error_envelope(self) -> dict[str, Any]:
        """The Inspector's one-line JSON error envelope: the last line of stderr."""
        last = self.stderr.strip().splitlines()[-1]
        return dict(json.loads(last)["error"])


class Inspector:
    """Runs the pinned Inspector CLI against one server, named by ``target`` (:func:`over_stdio`, :func:`over_http`)."""

    def __init__(self, tmp_path: Path, target: Sequence[str]) -> None:
        require_inspector()
        self.target = list(target)
        storage = tmp_path / "inspector"
        storage.mkdir(exist_ok=True)
        # The Inspector's own state (catalog, OAuth tokens, client config) stays in the test's directory. The
        # server's variables are removed, so the server can only get them through ``-e``.
        self.env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
        self.env.update(
            MCP_STORAGE_DIR=str(storage),
            MCP_INSPECTOR_OAUTH_STATE_PATH=str(storage / "oauth.json"),
            MCP_CATALOG_PATH=str(storage / "mcp.json"),
            MCP_CLIENT_CONFIG_PATH=str(storage / "client.json"),
        )
        self.runs: list[Run] = []

    def run(self, *options: str) -> Run:
        argv = [str(INSPECTOR), "--cli", *self.target, "--format", "json", "--connect-timeout", "60000", *options]
        completed = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=RUN_TIMEOUT, check=False
        )
        run = Run(completed.returncode, completed.stdout, completed.stderr)
        self.runs.append(run)
        return run

    def listing(self, method: str) -> list[dict[str, Any]]:
        """What a successful ``tools/list``, ``resources/list`` or ``prompts/list`` lists."""
        run = self.run("--method", method)
        assert run.status == 0, f"{method} exited {run.status}:\n{run.stdout}\n{run.stderr}"
        return list(run.result()[method.removesuffix("/list")])

    def call(self, tool: str, **arguments: str) -> Run:
        """``tools/call`` with ``--tool-arg key=value`` pairs (the Inspector JSON-parses values that parse)."""
        pairs = [f"{key}={value}" for key, value in arguments.items()]
        return self.run("--method", "tools/call", "--tool-name", tool, *(["--tool-arg", *pairs] if pairs else []))

    def ok(self, tool: str, **arguments: str) -> dict[str, Any]:
        """A successful call's structured content."""
        run = self.call(tool, **arguments)
        assert run.status == 0, f"{tool} exited {run.status}:\n{run.stdout}\n{run.stderr}"
        result = run.result()
        assert result.get("isError") is False, result
        # The text content is the same data as the structured content.
        assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
        return dict(result["structuredContent"])


def over_stdio(server_env: dict[str, str]) -> list[str]:
    """The target ``python -m mcp_orchestration serve`` on stdio: ``server_env`` reaches it only through ``-e``."""
    server_env = {"MCP_ORCHESTRATION_HOST_STATE": os.environ["MCP_ORCHESTRATION_HOST_STATE"], **server_env}
    env_options = [part for name, value in server_env.items() for part in ("-e", f"{name}={value}")]
    # Under --cli, what stands before "--" is the server command, what follows is the Inspector's options.
    return [sys.executable, "-m", "mcp_orchestration", "serve", "--", *env_options]


def over_http(url: str, token: str | None, era: str = "legacy") -> list[str]:
    """The target ``serve --http`` at ``url``, sent ``token`` (if any) as a bearer token, never OAuth's browser flow.

    ``era`` is the Inspector's ``--protocol-era``: ``legacy`` speaks 2025-11-25
    (sessions), ``modern`` pins 2026-07-28 (stateless requests) and fails if the
    server does not speak it.
    """
    header = [] if token is None else ["--header", f"Authorization: Bearer {token}"]
    return ["--transport", "http", "--server-url", url, "--protocol-era", era, "--stored-auth-only", *header]


def check_tools(inspector: Inspector) -> None:
    """tools/list shows the server's 16 tools, with their descriptions and object input schemas."""
    listed = {tool["name"]: tool for tool in inspector.listing("tools/list")}
    assert len(listed) == 16
    assert {name: tool["description"] for name, tool in listed.items()} == DESCRIPTIONS
    assert all(tool["inputSchema"]["type"] == "object" for tool in listed.values())


def key_canaries(key_file: Path) -> set[str]:
    """Encodings of the signing key that must never be printed: PEM text and lines, raw seed."""
    pem = key_file.read_text().strip()
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    private = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return {
        pem,
        "".join(body),
        *(line for line in body if len(line) >= 16),
        seed.hex(),
        base64.b64encode(seed).decode().rstrip("="),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
    }


@pytest.fixture(scope="module")
def inspector_version() -> str:
    require_inspector()
    completed = subprocess.run(
        [str(INSPECTOR), "--cli", "--version"], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    return completed.stdout.strip()


@pytest.fixture
def inspector(tmp_path: Path, initialised: Path, key_file: Path) -> Inspector:
    return Inspector(
        tmp_path,
        over_stdio({"MCP_ORCHESTRATION_HOME": str(initialised), "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file)}),
    )


@pytest.fixture
def http_served(issuer: Issuer, server_env: dict[str, str], tmp_path: Path) -> Iterator[HttpServer]:
    """``serve --http`` on loopback, accepting the tokens of ``issuer``, on the store ``initialised`` made."""
    with http_server("--issuer", issuer.url, env=server_env, log=tmp_path / "server.log") as server:
        yield server


def test_the_pinned_inspector_is_installed(inspector_version: str) -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    manifest = json.loads((NODE_DIR / "package.json").read_text())
    assert manifest["dependencies"]["@modelcontextprotocol/inspector"] == PINNED_VERSION
    assert lock["packages"]["node_modules/@modelcontextprotocol/inspector"]["version"] == PINNED_VERSION
    assert inspector_version == PINNED_VERSION


def test_inspector_runs_the_publish_flow(inspector: Inspector, initialised: Path, key_file: Path) -> None:
    check_tools(inspector)

    draft = inspector.ok("add_server_to_config", client=CD, profile=PROFILE, server_id="time")
    assert draft["client"] == CD and draft["profile"] == PROFILE
    assert draft["base_artifact"] is None
    assert draft["config"]["mcpServers"]["time"]["command"] == "uvx"

    report = inspector.ok("validate_config", client=CD, profile=PROFILE)
    assert report["ok"] is True and report["problems"] == []

    published = inspector.ok("publish_config", client=CD, profile=PROFILE, changelog="add the time server")
    artifact = published["artifact"]
    assert len(artifact) == 64 and int(artifact, 16) >= 0
    assert published["changed"] is True
    assert published["index_version"] >= 2  # init wrote version 1

    config = inspector.ok("get_config", client=CD, profile=PROFILE)
    assert config["artifact"] == artifact
    assert config["index_version"] == published["index_version"]
    assert config["changelog"] == "add the time server"
    assert config["config"]["mcpServers"]["time"] == {"command": "uvx", "args": ["mcp-server-time"], "env": {}}

    verified = inspector.ok("verify_config", client=CD, profile=PROFILE)
    assert verified["verified"] is True
    assert verified["artifact"] == artifact
    assert verified["index_version"] == published["index_version"]

    history = inspector.ok("get_config_history", client=CD, profile=PROFILE)
    assert [version["artifact"] for version in history["versions"]] == [artifact]
    assert history["versions"][0]["changelog"] == "add the time server"

    # The published draft is gone, and the store the Inspector's server wrote still verifies in full.
    profiles = inspector.ok("list_profiles", client=CD)["profiles"]
    assert profiles == [{"client": CD, "profile": PROFILE, "published": True, "has_draft": False}]
    Repository(load_settings(home=initialised, environ={}).storage_dir).verify(deep=True)

    canaries = key_canaries(key_file)
    for run in inspector.runs:
        for stream in (run.stdout, run.stderr):
            assert not [canary for canary in canaries if canary in stream]


def test_a_tool_error_exits_5_with_the_structured_error(inspector: Inspector) -> None:
    run = inspector.call("get_config", client=CD, profile="no-such-profile")
    assert run.status == TOOL_ERROR_EXIT, run.stderr
    result = run.result()  # the failed result is still printed on stdout
    assert wire_error(result)["code"] == "not_found"
    assert result["content"][0]["text"].startswith("[not_found] ")
    assert run.error_envelope()["code"] == "tool_is_error"


def test_an_invalid_id_exits_5(inspector: Inspector) -> None:
    run = inspector.call("get_config", client="../../etc", profile=PROFILE)
    assert run.status == TOOL_ERROR_EXIT, run.stderr
    assert wire_error(run.result())["code"] == "invalid_id"


def test_an_unknown_tool_exits_5(inspector: Inspector) -> None:
    run = inspector.call("delete_everything", client=CD)
    assert run.status == TOOL_ERROR_EXIT, run.stderr
    assert run.error_envelope()["code"] == "tool_not_found"


def test_read_only_server_answers_key_unavailable(tmp_path: Path, initialised: Path) -> None:
    """Without a signing key the server still serves reads; a write is a tool error (exit 5)."""
    inspector = Inspector(tmp_path, over_stdio({"MCP_ORCHESTRATION_HOME": str(initialised)}))
    run = inspector.call("add_server_to_config", client=CD, profile=PROFILE, server_id="time")
    assert run.status == TOOL_ERROR_EXIT, run.stderr
    assert wire_error(run.result())["code"] == "key_unavailable"
    trust = inspector.run("--method", "tools/call", "--tool-name", "get_trust_info")
    assert trust.status == 0, trust.stderr
    assert trust.result()["structuredContent"]["index_version"] == 1


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_over_http_lists_and_reads_with_a_read_token(
    era: str, http_served: HttpServer, issuer: Issuer, tmp_path: Path
) -> None:
    inspector = Inspector(tmp_path, over_http(http_served.url, issuer.mint(http_served.url, scopes=READ), era))

    check_tools(inspector)

    trust = inspector.ok("get_trust_info")
    assert trust["index_version"] == 1
    assert [key["status"] for key in trust["keys"]] == ["active"]
    clients = inspector.ok("list_clients")["clients"]
    assert CD in {client["id"] for client in clients}

    resources = {resource["uri"] for resource in inspector.listing("resources/list")}
    assert resources == {"mcp-orchestration://capabilities", "mcp-orchestration://keys"}
    assert [prompt["name"] for prompt in inspector.listing("prompts/list")] == ["review_draft"]


def test_inspector_over_http_a_read_token_cannot_publish(
    http_served: HttpServer, issuer: Issuer, tmp_path: Path
) -> None:
    inspector = Inspector(tmp_path, over_http(http_served.url, issuer.mint(http_served.url, scopes=READ)))
    run = inspector.call("publish_config", client=CD, profile=PROFILE, changelog="not allowed")
    assert run.status == TOOL_ERROR_EXIT, run.stderr
    result = run.result()
    assert wire_error(result)["code"] == "insufficient_scope"
    assert result["content"][0]["text"].startswith("[insufficient_scope] publish_config needs the scope ")
    assert run.error_envelope()["code"] == "tool_is_error"


@pytest.mark.parametrize("token", ["none", "another audience's"])
def test_inspector_over_http_without_a_valid_token_fails_with_401(
    token: str, http_served: HttpServer, issuer: Issuer, tmp_path: Path
) -> None:
    """Exit 3 (auth required) on the server's 401, quoted in the envelope: its ``invalid_token`` body.

    The Inspector's envelope carries no status here, so the same token (or
    none) is also sent by hand: 401, with the challenge naming the RFC 9728
    metadata.
    """
    bearer = None if token == "none" else issuer.mint("http://127.0.0.1:1/mcp", scopes=READ)
    run = Inspector(tmp_path, over_http(http_served.url, bearer)).run("--method", "tools/list")
    assert run.status == AUTH_REQUIRED_EXIT, f"{run.stdout}\n{run.stderr}"
    envelope = run.error_envelope()
    assert envelope["code"] == "auth_required"
    assert '"error": "invalid_token"' in envelope["message"]
    refused = http_served.post(INITIALIZE, token=bearer)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    assert "resource_metadata=" in refused.headers["WWW-Authenticate"]
