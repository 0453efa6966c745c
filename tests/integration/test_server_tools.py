"""Every MCP tool, resource and prompt through the SDK's in-memory client, error paths included.

Each test builds the real server (``build_server(ConfigTools(app))``) over a
store and keys created at run time in ``tmp_path`` and talks to it with
``mcp.Client``, exactly as a model would: success results are checked by their
structured content, failures by the stable code of the error in the result's
``_meta`` (``tool_error``).

The ``tools/list`` snapshot (names, descriptions and input schemas) lives in
``tests/integration/snapshots/tools_list.json`` and is compared exactly: a tool
description that changes silently is how tool poisoning starts. After an
intended change, regenerate it by hand and review the diff::

    UPDATE_TOOLS_SNAPSHOT=1 .venv/bin/pytest tests/integration/test_server_tools.py -k snapshot

"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_orchestration.app import operations, rotation
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import Settings
from mcp_orchestration.security.ids import SERVER_NAME
from mcp_orchestration.server import app as server_app
from mcp_orchestration.server.app import DESCRIPTIONS, build_server
from mcp_orchestration.server.tools import ConfigTools
from mcp_orchestration.store.drafts import Draft, DraftStore
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import key_sources, keys
from mcp_orchestration.trust.key_sources import KeySpec
from tests.conftest import write_key
from tests.integration.tool_errors import tool_error

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"
UPDATE_SNAPSHOT_VARIABLE = "UPDATE_TOOLS_SNAPSHOT"

CD = "claude-desktop"
PROFILE = "default"
ALL_TOOLS = sorted(DESCRIPTIONS)
WRITE_TOOLS = ("add_server_to_config", "remove_server_from_config", "clear_draft_config", "publish_config")
MASK = "***"
PLACEHOLDER = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}")

# Ids that must never reach a path or an index: traversal, separators, NUL, look-alike and invisible
# unicode, case and length tricks.
BAD_IDS: dict[str, str] = {
    "traversal": "../x",
    "dot-dot": "..",
    "slash": "a/b",
    "backslash": "a\\b",
    "absolute": "/etc",
    "nul": "claude-desktop\x00",
    "nul-only": "\x00",
    "newline": "claude-desktop\n",
    "cyrillic-es": "\u0441laude-desktop",
    "fullwidth": "\uff43\uff4c\uff41\uff55\uff44\uff45",
    "zero-width-space": "claude\u200b-desktop",
    "rtl-override": "\u202eclaude",
    "combining-accent": "claude\u0301",
    "kelvin-sign": "\u212aey",
    "dotless-i": "cl\u0131ent",
    "upper-case": "CLAUDE-DESKTOP",
    "empty": "",
    "space": "claude desktop",
    "leading-dot": ".hidden",
    "leading-dash": "-x",
    "too-long": "a" * 65,
    "huge": "b" * 100_000,
}

# Tools that take a client and a profile, with the other arguments they need.
PROFILE_TOOLS: dict[str, dict[str, Any]] = {
    "get_config": {},
    "diff_config": {},
    "add_server_to_config": {"server_id": "time"},
    "remove_server_from_config": {"name": "time"},
    "view_draft_config": {},
    "clear_draft_config": {},
    "validate_config": {},
    "publish_config": {},
    "get_config_history": {},
    "verify_config": {},
    "export_config": {},
}


def _fake_token(prefix: str = "ghp_", length: int = 36) -> str:
    """A credential-shaped string made at run time (never a real one)."""
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(scope="module")
def signing_key_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One key per module, generated at run time.

    Every key a process loads is taught to the process-wide redactor, which
    rebuilds its pattern each time; a key per test would make later tests slow.
    """
    path = tmp_path_factory.mktemp("module-key") / "signing_key"
    write_key(path)
    return path.read_bytes()


@pytest.fixture
def signing_key_file(tmp_path: Path, signing_key_bytes: bytes) -> Path:
    """A fresh store's key file, as a secret file arrives (mode 0600)."""
    path = tmp_path / "secrets" / "signing_key"
    path.parent.mkdir()
    path.write_bytes(signing_key_bytes)
    path.chmod(0o600)
    return path


def _app(home: Path, key_file: Path | None) -> App:
    return App(Settings(home=home, signing_key=KeySpec("file", key_file, None)))


@pytest.fixture
def app(home: Path, signing_key_file: Path) -> App:
    """An initialised store whose App holds the signing key."""
    application = _app(home, signing_key_file)
    operations.init(application)
    return application


@pytest.fixture
def keyless_app(app: App, home: Path) -> App:
    """An App over the same store without any signing key (an explicit ``None`` path, never /run/secrets)."""
    return _app(home, None)


@asynccontextmanager
async def connect(target: App | ConfigTools) -> AsyncIterator[Client]:
    tools = target if isinstance(target, ConfigTools) else ConfigTools(target)
    with anyio.fail_after(30):
        async with Client(build_server(tools)) as client:
            yield client


async def ok(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """Call ``tool`` and return its structured content, which must not be an error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, arguments, result.content)
    assert isinstance(result.structured_content, dict)
    # The text content is the same data (for clients that ignore structured content).
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content
    return result.structured_content


async def fails(client: Client, tool: str, code: str, /, **arguments: Any) -> dict[str, str]:
    """Call ``tool``, expect a tool error with ``code``; return the error object."""
    result = await client.call_tool(tool, arguments)
    error = tool_error(result)
    assert error["code"] == code, (tool, arguments, error)
    assert error["message"].strip()
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"[{code}] ")
    assert "Traceback" not in text
    assert 'File "' not in text
    return error


async def publish(client: Client, client_id: str, profile: str, *server_ids: str, changelog: str = "") -> str:
    """Draft the given catalog servers (no parameters) into a profile and publish it; return the artifact."""
    for server_id in server_ids:
        await ok(client, "add_server_to_config", client=client_id, profile=profile, server_id=server_id)
    result = await ok(client, "publish_config", client=client_id, profile=profile, changelog=changelog)
    return str(result["artifact"])


def operator_publish(app: App, client: str, profile: str, config: dict[str, Any], changelog: str = "") -> str:
    """Sign a config in unchecked, as an earlier release's ``publish`` did (today every publish validates)."""
    result = app.index.publish(app.signing_key, [ProfileUpdate(client, profile, config, changelog)])
    return result.artifacts[f"{client}/{profile}"]


def servers_of(result: dict[str, Any]) -> dict[str, Any]:
    return dict(result["config"]["mcpServers"])


def drafts_dir(home: Path) -> Path:
    return home / "storage" / "drafts"


# -- browsing --------------------------------------------------------------------------------


async def test_list_clients(app: App) -> None:
    async with connect(app) as client:
        result = await ok(client, "list_clients")
    by_id = {entry["id"]: entry for entry in result["clients"]}
    assert {"claude-desktop", "cursor", "vscode", "windsurf"} <= set(by_id)
    assert by_id["claude-desktop"]["name"] == "Claude Desktop"
    assert by_id["claude-desktop"]["transports"] == ["stdio"]
    assert by_id["vscode"]["config_key"] == "servers"
    assert by_id["cursor"]["config_key"] == "mcpServers"


async def test_list_available_servers(app: App) -> None:
    async with connect(app) as client:
        result = await ok(client, "list_available_servers")
    by_id = {entry["id"]: entry for entry in result["servers"]}
    assert {"filesystem", "fetch", "git", "memory", "time", "everything", "github"} <= set(by_id)
    for entry in by_id.values():
        assert set(entry) == {"id", "name", "description", "transport"}
        assert entry["transport"] == "stdio"
        assert entry["description"]


async def test_describe_server(app: App) -> None:
    async with connect(app) as client:
        github = (await ok(client, "describe_server", server_id="github"))["server"]
        filesystem = (await ok(client, "describe_server", server_id="filesystem"))["server"]
    assert github["id"] == "github"
    assert github["command"] == "docker"
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in github["required_env"]
    assert github["homepage"].startswith("https://")
    assert "paths" in json.dumps(filesystem["parameters"])
    assert filesystem["required_env"] == []


async def test_describe_server_errors(app: App) -> None:
    async with connect(app) as client:
        error = await fails(client, "describe_server", "not_found", server_id="no-such-server")
        assert "list_available_servers" in error["hint"]
        for bad in BAD_IDS.values():
            await fails(client, "describe_server", "invalid_id", server_id=bad)


async def test_operator_catalog_extends_the_bundled_one(app: App, tmp_path: Path) -> None:
    extra = {
        "servers": [
            {
                "id": "internal-wiki",
                "name": "Internal wiki",
                "description": "Searches the team wiki.",
                "transport": "stdio",
                "command": "uvx",
                "args": ["wiki-mcp", "--space={space}"],
                "parameters": [{"name": "space", "description": "Wiki space key.", "required": True, "kind": "string"}],
                "required_env": ["WIKI_TOKEN"],
                "optional_env": [],
                "homepage": "https://wiki.example.com/mcp",
            }
        ]
    }
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(extra))
    async with connect(ConfigTools(app, catalog_file)) as client:
        ids = {entry["id"] for entry in (await ok(client, "list_available_servers"))["servers"]}
        assert {"internal-wiki", "github"} <= ids
        draft = await ok(
            client,
            "add_server_to_config",
            client=CD,
            profile=PROFILE,
            server_id="internal-wiki",
            parameters={"space": "ENG"},
        )
        assert servers_of(draft)["internal-wiki"] == {
            "command": "uvx",
            "args": ["wiki-mcp", "--space=ENG"],
            "env": {"WIKI_TOKEN": "${env:WIKI_TOKEN}"},
        }
        await fails(client, "add_server_to_config", "validation", client=CD, profile=PROFILE, server_id="internal-wiki")


# -- drafts ----------------------------------------------------------------------------------


async def test_add_server_to_config(app: App) -> None:
    async with connect(app) as client:
        draft = await ok(
            client,
            "add_server_to_config",
            client=CD,
            profile=PROFILE,
            server_id="filesystem",
            parameters={"paths": ["/srv/data", "/home/shared"]},
        )
        assert draft["client"] == CD
        assert draft["profile"] == PROFILE
        assert draft["base_artifact"] is None
        assert servers_of(draft)["filesystem"]["args"][-2:] == ["/srv/data", "/home/shared"]

        draft = await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="github")
        assert servers_of(draft)["github"]["env"] == {
            "GITHUB_PERSONAL_ACCESS_TOKEN": "${env:GITHUB_PERSONAL_ACCESS_TOKEN}"
        }

        draft = await ok(
            client,
            "add_server_to_config",
            client=CD,
            profile=PROFILE,
            server_id="fetch",
            name="web",
            parameters={"user_agent": "TeamBot/1.0"},
            optional_env=["MCP_FETCH_SSL_VERIFY"],
        )
        web = servers_of(draft)["web"]
        assert web["command"] == "uvx"
        assert "--user-agent=TeamBot/1.0" in web["args"]
        assert not any(arg.startswith("--proxy-url") for arg in web["args"])  # optional, left out
        assert web["env"] == {"MCP_FETCH_SSL_VERIFY": "${env:MCP_FETCH_SSL_VERIFY}"}

        draft = await ok(
            client, "add_server_to_config", client=CD, profile=PROFILE, server_id="git", parameters={"repository": "/r"}
        )
        assert servers_of(draft)["git"]["args"] == ["mcp-server-git", "--repository", "/r"]
        assert sorted(servers_of(draft)) == ["filesystem", "git", "github", "web"]


@pytest.mark.parametrize(
    ("server_id", "arguments", "code"),
    [
        pytest.param("filesystem", {}, "validation", id="missing-required-parameter"),
        pytest.param("filesystem", {"parameters": {"paths": []}}, "validation", id="empty-required-list"),
        pytest.param("filesystem", {"parameters": {"paths": "/srv/data"}}, "validation", id="list-given-a-string"),
        pytest.param("filesystem", {"parameters": {"paths": ["relative/dir"]}}, "validation", id="path-not-absolute"),
        pytest.param("filesystem", {"parameters": {"paths": [7]}}, "validation", id="list-item-wrong-kind"),
        pytest.param("filesystem", {"parameters": {"paths": ["/a"] * 65}}, "limit", id="too-many-list-items"),
        pytest.param("time", {"parameters": {"local_timezone": 5}}, "validation", id="string-given-a-number"),
        pytest.param("time", {"parameters": {"local_timezone": ["UTC"]}}, "validation", id="string-given-a-list"),
        pytest.param("time", {"parameters": {"local_timezone": "x" * 5000}}, "limit", id="value-too-long"),
        pytest.param("time", {"parameters": {"local_timezone": "-rf"}}, "validation", id="option-injection"),
        pytest.param("time", {"parameters": {"local_timezone": "${env:HOME}"}}, "validation", id="interpolation"),
        pytest.param("time", {"parameters": {"local_timezone": "UTC\u202e"}}, "validation", id="invisible-char"),
        pytest.param("time", {"parameters": {"bogus": "x"}}, "validation", id="unknown-parameter"),
        pytest.param("git", {"parameters": {"repository": "repo"}}, "validation", id="path-parameter-relative"),
        pytest.param("fetch", {"optional_env": ["NOT_DECLARED"]}, "validation", id="unknown-optional-env"),
        pytest.param("time", {"name": "../x"}, "invalid_id", id="name-traversal"),
        pytest.param("time", {"name": "Time\u200b"}, "invalid_id", id="name-invisible"),
        pytest.param("no-such-server", {}, "not_found", id="unknown-server"),
    ],
)
async def test_add_server_to_config_errors(app: App, server_id: str, arguments: dict[str, Any], code: str) -> None:
    async with connect(app) as client:
        await fails(client, "add_server_to_config", code, client=CD, profile=PROFILE, server_id=server_id, **arguments)
        # Nothing was saved: the profile still has no draft.
        assert (await ok(client, "list_profiles"))["profiles"] == []


async def test_add_server_refuses_a_secret_parameter_and_explains_placeholders(app: App) -> None:
    token = _fake_token()
    async with connect(app) as client:
        result = await client.call_tool(
            "add_server_to_config",
            {"client": CD, "profile": PROFILE, "server_id": "fetch", "parameters": {"user_agent": token}},
        )
    error = tool_error(result)
    assert error["code"] == "validation"
    assert "${env:" in error["message"] + error["hint"]
    assert token not in json.dumps(result.model_dump(mode="json"))


async def test_unknown_client_is_not_found(app: App) -> None:
    async with connect(app) as client:
        for tool in ("add_server_to_config", "view_draft_config", "clear_draft_config", "diff_config", "export_config"):
            extra = PROFILE_TOOLS[tool]
            error = await fails(client, tool, "not_found", client="no-such-client", profile=PROFILE, **extra)
            assert "list_clients" in error["hint"]
        for tool in ("publish_config", "validate_config", "remove_server_from_config"):
            await fails(client, tool, "not_found", client="no-such-client", profile=PROFILE, **PROFILE_TOOLS[tool])


async def test_remove_server_from_config(app: App) -> None:
    async with connect(app) as client:
        for server_id in ("time", "memory"):
            await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id=server_id)
        draft = await ok(client, "remove_server_from_config", client=CD, profile=PROFILE, name="time")
        assert list(servers_of(draft)) == ["memory"]
        error = await fails(client, "remove_server_from_config", "not_found", client=CD, profile=PROFILE, name="time")
        assert "time" in error["message"]
        await fails(client, "remove_server_from_config", "not_found", client=CD, profile="other", name="memory")
        # A long name is shown shortened in the error, never echoed whole.
        error = await fails(
            client, "remove_server_from_config", "not_found", client=CD, profile=PROFILE, name="n" * 5000
        )
        assert len(error["message"]) < 300


async def test_view_and_clear_draft(app: App) -> None:
    async with connect(app) as client:
        empty = await ok(client, "view_draft_config", client=CD, profile=PROFILE)
        assert empty["config"] == {"mcpServers": {}}
        assert empty["base_artifact"] is None
        assert empty["diff"]["changed"] is True  # nothing published yet

        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="memory")
        view = await ok(client, "view_draft_config", client=CD, profile=PROFILE)
        assert list(servers_of(view)) == ["memory"]
        assert view["diff"]["added"] == ["memory"]
        assert view["updated_at"].endswith("Z")

        assert (await ok(client, "clear_draft_config", client=CD, profile=PROFILE))["cleared"] is True
        assert (await ok(client, "clear_draft_config", client=CD, profile=PROFILE))["cleared"] is False
        assert servers_of(await ok(client, "view_draft_config", client=CD, profile=PROFILE)) == {}

        # With a published config, a new draft starts from it.
        artifact = await publish(client, CD, PROFILE, "time")
        view = await ok(client, "view_draft_config", client=CD, profile=PROFILE)
        assert view["base_artifact"] == artifact
        assert list(servers_of(view)) == ["time"]
        assert view["diff"]["changed"] is False


async def test_list_profiles(app: App) -> None:
    async with connect(app) as client:
        assert (await ok(client, "list_profiles"))["profiles"] == []
        await ok(client, "add_server_to_config", client="cursor", profile="team", server_id="time")
        await publish(client, CD, PROFILE, "memory")
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="time")
        profiles = (await ok(client, "list_profiles"))["profiles"]
        assert profiles == [
            {"client": CD, "profile": PROFILE, "published": True, "has_draft": True},
            {"client": "cursor", "profile": "team", "published": False, "has_draft": True},
        ]
        only_cursor = (await ok(client, "list_profiles", client="cursor"))["profiles"]
        assert [(p["client"], p["profile"]) for p in only_cursor] == [("cursor", "team")]
        assert (await ok(client, "list_profiles", client="vscode"))["profiles"] == []
        for bad in BAD_IDS.values():
            await fails(client, "list_profiles", "invalid_id", client=bad)


async def test_drafts_survive_a_restart(app: App, home: Path, signing_key_file: Path) -> None:
    async with connect(app) as client:
        await ok(client, "add_server_to_config", client="vscode", profile="team", server_id="github")
        before = await ok(client, "view_draft_config", client="vscode", profile="team")
    # A new process: a new App, new tools and a new server over the same store.
    async with connect(_app(home, signing_key_file)) as client:
        after = await ok(client, "view_draft_config", client="vscode", profile="team")
        assert after == before
        profiles = (await ok(client, "list_profiles"))["profiles"]
        assert profiles == [{"client": "vscode", "profile": "team", "published": False, "has_draft": True}]
        published = await ok(client, "publish_config", client="vscode", profile="team", changelog="after restart")
        assert published["index_version"] == 2
        assert "github" in servers_of(await ok(client, "get_config", client="vscode", profile="team"))


async def test_a_corrupted_draft_is_an_integrity_error_and_can_be_cleared(app: App, home: Path) -> None:
    async with connect(app) as client:
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="time")
        (drafts_dir(home) / CD / f"{PROFILE}.json").write_bytes(b'{"payload": [')
        for tool in ("view_draft_config", "validate_config", "diff_config", "publish_config"):
            error = await fails(client, tool, "integrity", client=CD, profile=PROFILE)
            assert "clear_draft_config" in error["hint"]
        assert (await ok(client, "clear_draft_config", client=CD, profile=PROFILE))["cleared"] is True
        assert servers_of(await ok(client, "view_draft_config", client=CD, profile=PROFILE)) == {}


# -- validation and publishing ---------------------------------------------------------------


async def test_validate_config(app: App) -> None:
    async with connect(app) as client:
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="github")
        report = await ok(client, "validate_config", client=CD, profile=PROFILE)
        [warning] = report.pop("warnings")  # the catalog's image has no digest: valid, but each client may differ
        assert report == {"client": CD, "profile": PROFILE, "ok": True, "problems": [], "omitted": 0}
        assert (warning["code"], warning["path"]) == ("unpinned", "/mcpServers/github/args/5")


async def test_validate_and_publish_refuse_secrets_without_echoing_them(app: App) -> None:
    token = _fake_token()
    operator_publish(app, CD, PROFILE, {"mcpServers": {"gh": {"command": "gh-mcp", "env": {"GH_TOKEN": token}}}})
    async with connect(app) as client:
        report = await ok(client, "validate_config", client=CD, profile=PROFILE)
        assert report["ok"] is False
        [problem] = report["problems"]
        assert problem["code"] == "secret"
        assert problem["path"] == "/mcpServers/gh/env/GH_TOKEN"
        assert "${env:GH_TOKEN}" in problem["message"]

        # A draft holding the secret (as an operator's edit might leave it) is refused at publish.
        payload = {"mcpServers": {"gh": {"command": "gh-mcp", "env": {"GH_TOKEN": token}}}}
        draft = Draft(CD, PROFILE, payload, None, "2026-01-01T00:00:00Z")
        DraftStore(app.settings.storage_dir).save(draft, app.signing_key)
        result = await client.call_tool("publish_config", {"client": CD, "profile": PROFILE})
        error = tool_error(result)
        assert error["code"] == "validation"
        assert "${env:" in error["hint"]
        # A model editing this draft is told the same, and nothing is saved.
        await fails(client, "add_server_to_config", "validation", client=CD, profile=PROFILE, server_id="time")
        assert token not in json.dumps(result.model_dump(mode="json"))
        assert token not in json.dumps(report)
        history = await ok(client, "get_config_history", client=CD, profile=PROFILE)
        assert len(history["versions"]) == 1


async def test_publish_config(app: App) -> None:
    async with connect(app) as client:
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="time")
        first = await ok(client, "publish_config", client=CD, profile=PROFILE, changelog="first")
        assert first["changed"] is True
        assert first["index_version"] == 2
        assert re.fullmatch(r"[0-9a-f]{64}", first["artifact"])
        assert (await ok(client, "list_profiles"))["profiles"][0]["has_draft"] is False  # the draft is gone

        # With the draft gone there is nothing to publish.
        await fails(client, "publish_config", "not_found", client=CD, profile=PROFILE)

        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="memory")
        second = await ok(client, "publish_config", client=CD, profile=PROFILE, changelog="second")
        assert second["index_version"] == 3
        assert second["artifact"] != first["artifact"]


async def test_publish_and_add_enforce_the_server_count_limit(app: App) -> None:
    tools = ConfigTools(app)
    many = {"mcpServers": {f"s{n}": {"command": "uvx", "args": ["mcp-server-time"]} for n in range(101)}}
    tools.drafts.save(Draft(CD, PROFILE, many, None, "2025-01-01T00:00:00Z"), app.signing_key)
    async with connect(tools) as client:
        report = await ok(client, "validate_config", client=CD, profile=PROFILE)
        assert report["ok"] is False
        assert any(problem["code"] == "limit" for problem in report["problems"])
        await fails(client, "publish_config", "limit", client=CD, profile=PROFILE)
        await fails(client, "add_server_to_config", "limit", client=CD, profile=PROFILE, server_id="memory")


# -- published configs -----------------------------------------------------------------------


async def test_get_config_and_its_history(app: App) -> None:
    async with connect(app) as client:
        first = await publish(client, CD, PROFILE, "time", changelog="add time")
        second = await publish(client, CD, PROFILE, "memory", changelog="add memory")

        latest = await ok(client, "get_config", client=CD, profile=PROFILE)
        assert latest["artifact"] == second
        assert latest["index_version"] == 3
        assert latest["changelog"] == "add memory"
        assert sorted(servers_of(latest)) == ["memory", "time"]

        past = await ok(client, "get_config", client=CD, profile=PROFILE, artifact=first)
        assert past["artifact"] == first
        assert list(servers_of(past)) == ["time"]

        history = await ok(client, "get_config_history", client=CD, profile=PROFILE)
        assert [v["artifact"] for v in history["versions"]] == [second, first]
        assert [v["changelog"] for v in history["versions"]] == ["add memory", "add time"]
        assert [v["index_version"] for v in history["versions"]] == [3, 2]
        assert history["versions"][0]["previous_entry"] is not None


async def test_get_config_errors(app: App) -> None:
    async with connect(app) as client:
        await fails(client, "get_config", "not_found", client=CD, profile=PROFILE)
        artifact = await publish(client, CD, PROFILE, "time")
        await fails(client, "get_config", "not_found", client=CD, profile="other")
        await fails(client, "get_config", "not_found", client="cursor", profile=PROFILE)
        await fails(client, "get_config", "not_found", client=CD, profile=PROFILE, artifact="0" * 64)
        for bad_artifact in ("00", artifact.upper(), artifact[:-1], "../" + artifact[3:], artifact + "\x00", "g" * 64):
            await fails(client, "get_config", "invalid_id", client=CD, profile=PROFILE, artifact=bad_artifact)
        # An artifact of another profile is not served under this one.
        other = await publish(client, "cursor", "team", "memory")
        await fails(client, "get_config", "not_found", client=CD, profile=PROFILE, artifact=other)
        await fails(client, "get_config_history", "not_found", client=CD, profile="other")


async def test_diff_config(app: App) -> None:
    async with connect(app) as client:
        unpublished = await ok(client, "diff_config", client=CD, profile=PROFILE)
        assert unpublished["changed"] is True
        await publish(client, CD, PROFILE, "time", "memory")
        unchanged = await ok(client, "diff_config", client=CD, profile=PROFILE)
        assert unchanged["changed"] is False
        assert unchanged["added"] == unchanged["removed"] == unchanged["modified"] == []

        await ok(client, "remove_server_from_config", client=CD, profile=PROFILE, name="memory")
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="github")
        await ok(
            client,
            "add_server_to_config",
            client=CD,
            profile=PROFILE,
            server_id="time",
            parameters={"local_timezone": "Europe/Paris"},
        )
        diff = await ok(client, "diff_config", client=CD, profile=PROFILE)
        assert diff["changed"] is True
        assert diff["added"] == ["github"]
        assert diff["removed"] == ["memory"]
        [modified] = diff["modified"]
        assert modified["name"] == "time"
        assert modified["args"] == {
            "old": ["mcp-server-time"],
            "new": ["mcp-server-time", "--local-timezone=Europe/Paris"],
        }
        assert '+    "github": {' in diff["unified"]


async def test_verify_config(app: App) -> None:
    async with connect(app) as client:
        artifact = await publish(client, CD, PROFILE, "time")
        report = await ok(client, "verify_config", client=CD, profile=PROFILE)
        assert report["verified"] is True
        assert report["artifact"] == artifact
        assert report["index_version"] == 2
        await fails(client, "verify_config", "not_found", client=CD, profile="other")


async def test_get_trust_info(app: App, signing_key_file: Path) -> None:
    key = key_sources.load_signing_key(KeySpec("file", signing_key_file, None))
    async with connect(app) as client:
        info = await ok(client, "get_trust_info")
        assert info["root"] == key.fingerprint
        assert info["signed_by"] == key.fingerprint
        assert info["index_version"] == 1
        assert info["key_history_version"] == 1
        assert info["keys"] == [
            {"fingerprint": key.fingerprint, "status": "active", "first_index": 1, "last_index": None}
        ]
        await publish(client, CD, PROFILE, "time")
        assert (await ok(client, "get_trust_info"))["index_version"] == 2


async def test_export_config(app: App) -> None:
    async with connect(app) as client:
        for client_id in ("claude-desktop", "cursor", "vscode", "windsurf"):
            artifact = await publish(client, client_id, PROFILE, "github")
            exported = await ok(client, "export_config", client=client_id, profile=PROFILE)
            assert exported["artifact"] == artifact
            assert exported["index_version"] == (await ok(client, "get_trust_info"))["index_version"]
            key = "servers" if client_id == "vscode" else "mcpServers"
            assert list(exported["config"]) == [key]
            entry = exported["config"][key]["github"]
            assert entry["command"] == "docker"
            assert entry["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${env:GITHUB_PERSONAL_ACCESS_TOKEN}"}
            if client_id == "vscode":
                assert entry["type"] == "stdio"
        await fails(client, "export_config", "not_found", client=CD, profile="other")


async def test_export_refuses_a_transport_the_client_cannot_run(app: App) -> None:
    operator_publish(app, CD, "remote", {"mcpServers": {"api": {"url": "https://mcp.example.com/mcp"}}})
    operator_publish(app, "windsurf", "remote", {"mcpServers": {"api": {"url": "https://mcp.example.com/mcp"}}})
    async with connect(app) as client:
        error = await fails(client, "export_config", "validation", client=CD, profile="remote")
        assert "stdio" in error["message"]
        windsurf = await ok(client, "export_config", client="windsurf", profile="remote")
        assert windsurf["config"]["mcpServers"]["api"] == {"serverUrl": "https://mcp.example.com/mcp"}


async def test_export_of_a_valid_config_with_an_upper_case_server_name(app: App) -> None:
    operator_publish(app, "cursor", PROFILE, {"mcpServers": {"GitHub": {"command": "gh-mcp", "args": []}}})
    async with connect(app) as client:
        assert (await ok(client, "validate_config", client="cursor", profile=PROFILE))["ok"] is True
        exported = await ok(client, "export_config", client="cursor", profile=PROFILE)
        assert "GitHub" in exported["config"]["mcpServers"]


# -- ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", sorted(PROFILE_TOOLS))
async def test_every_profile_tool_refuses_bad_ids(app: App, home: Path, tool: str) -> None:
    async with connect(app) as client:
        await publish(client, CD, PROFILE, "time")
        for field in ("client", "profile"):
            for label, bad in BAD_IDS.items():
                arguments = {"client": CD, "profile": PROFILE, **PROFILE_TOOLS[tool], field: bad}
                error = await fails(client, tool, "invalid_id", **arguments)
                message = error["message"]
                assert message.isascii(), (label, message)  # escaped, so nothing invisible or look-alike
                assert message.isprintable(), (label, message)
                assert len(message) < 300, label
    # Nothing was created for any of them.
    assert list(drafts_dir(home).rglob("*.json")) == []
    for path in home.rglob("*"):
        assert path.name.isascii(), path
        assert path.name.isprintable(), path


async def test_add_server_refuses_bad_server_ids(app: App) -> None:
    async with connect(app) as client:
        for bad in BAD_IDS.values():
            await fails(client, "add_server_to_config", "invalid_id", client=CD, profile=PROFILE, server_id=bad)
            if bad and not SERVER_NAME.fullmatch(bad):  # empty means the default; names may use upper case
                await fails(
                    client, "add_server_to_config", "invalid_id", client=CD, profile=PROFILE, server_id="time", name=bad
                )


# -- keys and integrity ----------------------------------------------------------------------


async def test_without_a_key_reads_work_and_writes_answer_key_unavailable(app: App, keyless_app: App) -> None:
    async with connect(app) as client:
        artifact = await publish(client, CD, PROFILE, "time")
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="memory")
    async with connect(keyless_app) as client:
        assert (await ok(client, "get_config", client=CD, profile=PROFILE))["artifact"] == artifact
        assert (await ok(client, "verify_config", client=CD, profile=PROFILE))["verified"] is True
        assert (await ok(client, "export_config", client=CD, profile=PROFILE))["artifact"] == artifact
        assert len((await ok(client, "get_config_history", client=CD, profile=PROFILE))["versions"]) == 1
        assert (await ok(client, "get_trust_info"))["index_version"] == 2
        assert len((await ok(client, "list_profiles"))["profiles"]) == 1
        assert (await ok(client, "list_clients"))["clients"]
        assert (await ok(client, "list_available_servers"))["servers"]
        await fails(client, "describe_server", "not_found", server_id="no-such-server")

        writes = {
            "add_server_to_config": {"server_id": "github"},
            "remove_server_from_config": {"name": "memory"},
            "clear_draft_config": {},
            "publish_config": {},
        }
        # Reading a draft needs the key too: only the key can tell a genuine draft from a planted one.
        draft_reads: dict[str, dict[str, str]] = {"view_draft_config": {}, "diff_config": {}, "validate_config": {}}
        for tool, extra in {**writes, **draft_reads}.items():
            error = await fails(client, tool, "key_unavailable", client=CD, profile=PROFILE, **extra)
            assert "--key-file" in error["hint"] or "signing_key" in error["hint"]
        assert (await ok(client, "get_trust_info"))["index_version"] == 2
    # Nothing changed: the draft and the index are as they were.
    async with connect(app) as client:
        assert sorted(servers_of(await ok(client, "view_draft_config", client=CD, profile=PROFILE))) == [
            "memory",
            "time",
        ]
        assert (await ok(client, "get_trust_info"))["index_version"] == 2


async def test_after_a_rotation_elsewhere_writes_answer_key_retired(app: App, tmp_path: Path) -> None:
    new_key = write_key(tmp_path / "secrets" / "signing_key_next")
    async with connect(app) as client:
        artifact = await publish(client, CD, PROFILE, "time")
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="memory")

        # Another process (its own Repository on the same store) rotates to a new key.
        other = Repository(app.settings.storage_dir)
        old_key = key_sources.load_signing_key(app.settings.signing_key)
        result = rotation.rotate(other, old_key, new_key)
        assert result.new_fingerprint == new_key.fingerprint

        for tool, extra in {
            "add_server_to_config": {"server_id": "github"},
            "remove_server_from_config": {"name": "memory"},
            "clear_draft_config": {},
            "publish_config": {},
        }.items():
            error = await fails(client, tool, "key_retired", client=CD, profile=PROFILE, **extra)
            assert old_key.fingerprint in error["message"]
            assert "restart" in error["hint"]

        # Reads keep working and see the rotation.
        assert (await ok(client, "get_config", client=CD, profile=PROFILE))["artifact"] == artifact
        assert (await ok(client, "verify_config", client=CD, profile=PROFILE))["verified"] is True
        info = await ok(client, "get_trust_info")
        assert {k["fingerprint"]: k["status"] for k in info["keys"]} == {
            old_key.fingerprint: "retired",
            new_key.fingerprint: "active",
        }
        assert info["signed_by"] == new_key.fingerprint
        assert "memory" in servers_of(await ok(client, "view_draft_config", client=CD, profile=PROFILE))


async def test_a_flipped_byte_in_an_artifact_is_an_integrity_error(app: App) -> None:
    async with connect(app) as client:
        artifact = await publish(client, CD, PROFILE, "time")
        path = app.index.objects.path_for(artifact)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.chmod(0o600)
        path.write_bytes(bytes(data))

        for tool in ("get_config", "verify_config", "export_config", "diff_config", "view_draft_config"):
            error = await fails(client, tool, "integrity", client=CD, profile=PROFILE)
            assert artifact in error["message"]
            assert "backup" in error["hint"]
        await fails(client, "get_config", "integrity", client=CD, profile=PROFILE, artifact=artifact)
        await fails(client, "add_server_to_config", "integrity", client=CD, profile=PROFILE, server_id="memory")
        with pytest.raises(MCPError, match=r"\[integrity\]"):
            await client.read_resource(f"mcp-orchestration://config/{CD}/{PROFILE}")
        # What does not read the damaged object still answers.
        assert len((await ok(client, "get_config_history", client=CD, profile=PROFILE))["versions"]) == 1
        assert (await ok(client, "get_trust_info"))["index_version"] == 2


# -- masking ---------------------------------------------------------------------------------


def _walk_named_values(value: Any, found: list[tuple[str, Any]]) -> None:
    """Every value under an ``env`` or ``headers`` object, anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("env", "headers") and isinstance(item, dict):
                found.extend((f"{key}/{name}", inner) for name, inner in item.items())
            _walk_named_values(item, found)
    elif isinstance(value, list):
        for item in value:
            _walk_named_values(item, found)


def _is_masked_or_placeholder(value: Any) -> bool:
    if value == MASK:
        return True
    return (
        isinstance(value, str)
        and bool(PLACEHOLDER.search(value))
        and PLACEHOLDER.sub("", value).strip() in ("", "Bearer")
    )


async def test_every_env_value_in_every_output_is_masked_or_a_placeholder(app: App, tmp_path: Path) -> None:
    token, bearer = _fake_token(), _fake_token("", 40)
    literals = {
        "token": token,
        "bearer": bearer,
        "plain env value": "verbose-debug-level-7",
        "another plain value": "production-eu-west",
        "header value": "team-internal-header",
    }
    operator_publish(
        app,
        CD,
        "secrets",
        {
            "mcpServers": {
                "gh": {
                    "command": "docker",
                    "args": ["run", "-i", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
                    "env": {
                        "GITHUB_PERSONAL_ACCESS_TOKEN": token,
                        "LOG_LEVEL": "verbose-debug-level-7",
                        "HOME_DIR": "${env:HOME}",
                    },
                },
                "plain": {"command": "uvx", "args": ["mcp-server-time"], "env": {"REGION": "production-eu-west"}},
            }
        },
    )
    operator_publish(
        app,
        CD,
        "plain",
        {
            "mcpServers": {
                "plain": {"command": "uvx", "args": ["mcp-server-time"], "env": {"REGION": "production-eu-west"}}
            }
        },
    )
    operator_publish(
        app,
        "cursor",
        "remote",
        {
            "mcpServers": {
                "api": {
                    "url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": f"Bearer {bearer}", "X-Team": "team-internal-header"},
                }
            }
        },
    )
    outside_before = sorted(p for p in tmp_path.rglob("*") if app.settings.home not in p.parents)

    outputs: list[Any] = []

    async def record(client: Client, tool: str, /, **arguments: Any) -> None:
        result = await client.call_tool(tool, arguments)
        outputs.append(result.model_dump(mode="json"))

    async with connect(app) as client:
        for client_id, profile in ((CD, "secrets"), (CD, "plain"), ("cursor", "remote")):
            where = {"client": client_id, "profile": profile}
            for tool in ("get_config", "export_config", "view_draft_config", "diff_config", "validate_config"):
                await record(client, tool, **where)
            for tool in ("get_config_history", "verify_config", "publish_config"):
                await record(client, tool, **where)
            outputs.append(
                (await client.read_resource(f"mcp-orchestration://config/{client_id}/{profile}")).model_dump()
            )
        # Edits of drafts that started from a config with literal values show those values masked.
        await record(client, "add_server_to_config", client=CD, profile="plain", server_id="github")
        await record(client, "view_draft_config", client=CD, profile="plain")
        await record(client, "diff_config", client=CD, profile="plain")
        await record(client, "remove_server_from_config", client=CD, profile="secrets", name="plain")
        await record(client, "view_draft_config", client=CD, profile="secrets")
        await record(client, "diff_config", client=CD, profile="secrets")
        await record(client, "publish_config", client=CD, profile="plain", changelog="github added")
        await record(client, "get_config", client=CD, profile="plain")
        await record(client, "export_config", client=CD, profile="plain")
        await record(client, "list_profiles")
        await record(client, "get_trust_info")

    # Every output is a JSON document: the resource bodies are parsed so their env objects are seen too.
    documents: list[Any] = []
    for output in outputs:
        documents.append(output)
        for content in output.get("content") or output.get("contents") or []:
            text = content.get("text")
            if isinstance(text, str) and text.startswith("{"):
                documents.append(json.loads(text))
    named: list[tuple[str, Any]] = []
    for document in documents:
        _walk_named_values(document, named)
    assert len(named) > 20  # the walk did find the configs
    shown = [(name, value) for name, value in named if not _is_masked_or_placeholder(value)]
    assert shown == []
    assert ("env/HOME_DIR", "${env:HOME}") in named  # placeholders stay readable

    everything = json.dumps(outputs)
    for label, literal in literals.items():
        assert literal not in everything, label
    # No tool wrote outside the store.
    assert sorted(p for p in tmp_path.rglob("*") if app.settings.home not in p.parents) == outside_before


# -- failures of the server itself ------------------------------------------------------------


async def test_an_unexpected_exception_is_a_generic_error_without_details(
    app: App, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _fake_token()
    tools = ConfigTools(app)

    def explode() -> dict[str, Any]:
        raise RuntimeError(f"unexpected failure holding {token}")

    monkeypatch.setattr(tools, "list_clients", explode)
    async with connect(tools) as client:
        result = await client.call_tool("list_clients", {})
        # The server keeps serving afterwards.
        assert (await ok(client, "list_available_servers"))["servers"]
    error = tool_error(result)
    assert error["message"] == "Internal error; the server logged the details."
    dumped = json.dumps(result.model_dump(mode="json"))
    assert token not in dumped
    assert "RuntimeError" not in dumped
    assert "Traceback" not in dumped
    assert any("Unexpected error in a tool call" in record.getMessage() for record in caplog.records)


async def test_an_unexpected_exception_has_the_internal_code(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = ConfigTools(app)

    def explode() -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(tools, "list_clients", explode)
    async with connect(tools) as client:
        await fails(client, "list_clients", "internal")


async def test_a_slow_call_is_cut_off_with_a_limit_error(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_app, "CALL_TIMEOUT_SECONDS", 0.2)
    tools = ConfigTools(app)
    release = threading.Event()
    original = tools.list_clients

    def slow() -> object:
        release.wait(10.0)  # an uncut call would take this long
        return original()

    monkeypatch.setattr(tools, "list_clients", slow)
    try:
        async with connect(tools) as client:
            started = time.monotonic()
            result = await client.call_tool("list_clients", {})
            elapsed = time.monotonic() - started
    finally:
        release.set()
    assert tool_error(result)["code"] == "limit"
    assert elapsed < 5.0  # slack for a loaded machine, far below the 10 s of an uncut call


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        pytest.param("get_config", {"client": 1, "profile": PROFILE}, id="client-is-a-number"),
        pytest.param("get_config", {"client": CD}, id="profile-missing"),
        pytest.param("get_config", {"client": CD, "profile": PROFILE, "artifact": ["x"]}, id="artifact-is-a-list"),
        pytest.param(
            "add_server_to_config",
            {"client": CD, "profile": PROFILE, "server_id": "time", "parameters": []},
            id="parameters-is-a-list",
        ),
        pytest.param(
            "add_server_to_config",
            {"client": CD, "profile": PROFILE, "server_id": "fetch", "optional_env": "X"},
            id="optional-env-is-a-string",
        ),
        pytest.param("list_profiles", {"client": {"nested": True}}, id="client-is-an-object"),
    ],
)
async def test_arguments_of_the_wrong_type_are_a_validation_error(
    app: App, tool: str, arguments: dict[str, Any]
) -> None:
    async with connect(app) as client:
        await fails(client, tool, "validation", **arguments)
        # The server keeps serving, and nothing was saved.
        assert (await ok(client, "list_profiles"))["profiles"] == []


async def test_a_changelog_over_its_bound_is_a_limit_error_as_on_the_command_line(app: App) -> None:
    async with connect(app) as client:
        await fails(client, "publish_config", "limit", client=CD, profile=PROFILE, changelog="x" * 1001)
        assert (await ok(client, "list_profiles"))["profiles"] == []


async def test_a_rejected_argument_is_never_echoed(app: App) -> None:
    token = _fake_token()
    async with connect(app) as client:
        for tool, arguments in (
            ("publish_config", {"client": CD, "profile": PROFILE, "changelog": token + "x" * 1000}),
            ("get_config", {"client": CD, "profile": [token]}),
            ("add_server_to_config", {"client": CD, "profile": PROFILE, "server_id": "time", "name": 7, "x": token}),
            ("describe_server", {"server_id": token}),
            ("get_config", {"client": CD, "profile": PROFILE, "artifact": token}),
        ):
            result = await client.call_tool(tool, arguments)
            assert result.is_error, tool
            assert token not in json.dumps(result.model_dump(mode="json")), tool
            assert token[:12] not in json.dumps(result.model_dump(mode="json")), tool


async def test_a_result_that_breaks_its_output_schema_is_an_internal_error(app: App) -> None:
    """The SDK checks every result against the published schema; a mismatch is our bug, never a usage error."""

    class Drifted(ConfigTools):
        def list_clients(self) -> Any:
            return {**super().list_clients(), "unpublished": True}

    async with connect(Drifted(app)) as client:
        result = await client.call_tool("list_clients", {})
        error = tool_error(result)
        assert error["code"] == "internal"
        assert error["message"] == "Internal error; the server logged the details."
        assert (await ok(client, "list_available_servers"))["servers"]


async def test_an_unknown_tool_is_a_tool_error(app: App) -> None:
    async with connect(app) as client:
        result = await client.call_tool("write_file", {"path": "/etc/passwd"})
        assert tool_error(result)["code"] in ("usage", "not_found")
        assert (await ok(client, "list_clients"))["clients"]


async def test_concurrent_edits_of_one_draft_lose_nothing(app: App) -> None:
    tools = ConfigTools(app)
    barrier = threading.Barrier(2, timeout=1.0)
    original_get = tools.drafts.get

    def get_in_step(client: str, profile: str, key: keys.SigningKey) -> Draft | None:
        # Make both calls read before either writes: the interleaving a busy server hits by chance.
        with suppress(threading.BrokenBarrierError):
            barrier.wait()
        return original_get(client, profile, key)

    tools.drafts.get = get_in_step  # type: ignore[method-assign, assignment]
    async with connect(tools) as client:
        async with anyio.create_task_group() as group:
            for server_id in ("time", "memory"):
                group.start_soon(
                    client.call_tool, "add_server_to_config", {"client": CD, "profile": PROFILE, "server_id": server_id}
                )
        tools.drafts.get = original_get  # type: ignore[method-assign]
        draft = await ok(client, "view_draft_config", client=CD, profile=PROFILE)
    assert sorted(servers_of(draft)) == ["memory", "time"]


# -- resources and the prompt ----------------------------------------------------------------


async def test_resources(app: App) -> None:
    async with connect(app) as client:
        artifact = await publish(client, CD, PROFILE, "github")
        listed = {str(resource.uri) for resource in (await client.list_resources()).resources}
        assert listed == {"mcp-orchestration://capabilities", "mcp-orchestration://keys"}
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        assert templates == ["mcp-orchestration://config/{client}/{profile}"]

        def body(result: Any) -> Any:
            [content] = result.contents
            assert content.mime_type == "application/json"
            return json.loads(content.text)

        capabilities = body(await client.read_resource("mcp-orchestration://capabilities"))
        assert capabilities["tools"] == ALL_TOOLS
        assert {c["id"] for c in capabilities["clients"]} >= {"claude-desktop", "cursor", "vscode", "windsurf"}
        assert "github" in {s["id"] for s in capabilities["servers"]}

        assert body(await client.read_resource("mcp-orchestration://keys")) == await ok(client, "get_trust_info")

        config = body(await client.read_resource(f"mcp-orchestration://config/{CD}/{PROFILE}"))
        assert config == await ok(client, "get_config", client=CD, profile=PROFILE)
        assert config["artifact"] == artifact

        with pytest.raises(MCPError, match=r"\[not_found\]"):
            await client.read_resource(f"mcp-orchestration://config/{CD}/other")
        for bad in ("CLAUDE", "..", "%2e%2e", "a%00b", "-x"):
            with pytest.raises(MCPError, match=r"\[invalid_id\]|Unknown resource"):
                await client.read_resource(f"mcp-orchestration://config/{bad}/{PROFILE}")
        with pytest.raises(MCPError):
            await client.read_resource("mcp-orchestration://config/a/b/c")


async def test_review_draft_prompt(app: App) -> None:
    async with connect(app) as client:
        [prompt] = (await client.list_prompts()).prompts
        assert prompt.name == "review_draft"
        assert [(a.name, a.required) for a in prompt.arguments or []] == [("client", True), ("profile", True)]
        result = await client.get_prompt("review_draft", {"client": CD, "profile": "team"})
    [message] = result.messages
    assert message.role == "user"
    text = message.content.text  # type: ignore[union-attr]
    assert f"{CD}/team" in text
    for tool in ("view_draft_config", "validate_config", "publish_config"):
        assert tool in text


# -- the tools/list snapshot -----------------------------------------------------------------


def _tools_listing(tools: Any) -> list[dict[str, Any]]:
    return [
        {"name": t.name, "description": t.description, "inputSchema": t.input_schema, "outputSchema": t.output_schema}
        for t in tools
    ]


@pytest.fixture
def snapshot_update() -> Iterator[bool]:
    yield os.environ.get(UPDATE_SNAPSHOT_VARIABLE) == "1"


async def test_tools_list_snapshot(app: App, snapshot_update: bool) -> None:
    """``tools/list`` (names, descriptions, input and output schemas) must equal the committed snapshot exactly.

    To accept an intended change, regenerate by hand and review the diff:
    ``UPDATE_TOOLS_SNAPSHOT=1 .venv/bin/pytest tests/integration/test_server_tools.py -k snapshot``.
    """
    async with connect(app) as client:
        listing = _tools_listing((await client.list_tools()).tools)
    if snapshot_update:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(listing, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"rewrote {SNAPSHOT.name}; review the diff and commit it")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert [t["name"] for t in listing] == [t["name"] for t in expected]
    assert listing == expected
    assert sorted(t["name"] for t in listing) == ALL_TOOLS
    assert {t["name"]: t["description"] for t in listing} == DESCRIPTIONS


async def test_every_tool_publishes_a_closed_output_schema(app: App) -> None:
    """Each result's shape is named field by field; nothing unnamed can reach a client."""
    async with connect(app) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        schema = tool.output_schema
        assert schema is not None, tool.name
        assert schema["type"] == "object", tool.name
        assert schema["additionalProperties"] is False, tool.name
        assert set(schema["required"]) == set(schema["properties"]), tool.name
