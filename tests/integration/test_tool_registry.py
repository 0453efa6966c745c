"""The ToolSpec table is the whole truth about the MCP tools: every tool has a row, and each row's ``writes`` is
what the server does and tells clients.

A row that said a tool only reads while it signs (or the reverse) would
mislead every client that trusts ``readOnlyHint``: after a rotation elsewhere,
exactly the writing tools must refuse with ``key_retired``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_orchestration.app import operations, rotation
from mcp_orchestration.server.app import build_server
from mcp_orchestration.server.registry import TOOLS
from mcp_orchestration.server.tools import ConfigTools
from mcp_orchestration.store.repository import Repository
from mcp_orchestration.trust import key_sources
from tests.conftest import write_key
from tests.integration.test_server_tools import CD, PROFILE, _app, connect, fails, ok, publish

pytestmark = pytest.mark.anyio

# Arguments that succeed for every tool on a store with a published profile and a draft holding "memory".
ARGUMENTS: dict[str, dict[str, Any]] = {
    "list_clients": {},
    "list_profiles": {},
    "get_config": {"client": CD, "profile": PROFILE},
    "diff_config": {"client": CD, "profile": PROFILE},
    "list_available_servers": {},
    "describe_server": {"server_id": "time"},
    "add_server_to_config": {"client": CD, "profile": PROFILE, "server_id": "github"},
    "remove_server_from_config": {"client": CD, "profile": PROFILE, "name": "memory"},
    "view_draft_config": {"client": CD, "profile": PROFILE},
    "clear_draft_config": {"client": CD, "profile": PROFILE},
    "validate_config": {"client": CD, "profile": PROFILE},
    "publish_config": {"client": CD, "profile": PROFILE},
    "get_config_history": {"client": CD, "profile": PROFILE},
    "verify_config": {"client": CD, "profile": PROFILE},
    "get_trust_info": {},
    "export_config": {"client": CD, "profile": PROFILE},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_every_tool_method_has_one_row() -> None:
    methods = {name for name, _ in inspect.getmembers(ConfigTools, inspect.isfunction) if not name.startswith("_")}
    names = [spec.name for spec in TOOLS]
    assert len(names) == len(set(names))
    assert set(names) == methods == set(ARGUMENTS)


async def test_tools_list_hints_follow_the_table(home: Path, key_file: Path) -> None:
    app = _app(home, key_file)
    operations.init(app)
    async with connect(app) as client:
        listed = {tool.name: tool.annotations for tool in (await client.list_tools()).tools}
    for spec in TOOLS:
        hints = listed[spec.name]
        assert hints is not None, spec.name
        assert hints.read_only_hint is (not spec.writes), spec.name
        assert hints.open_world_hint is False, spec.name


async def test_both_protocol_generations_serve_the_same_table(home: Path, key_file: Path) -> None:
    """One registration per row serves 2025-11-25 sessions and 2026-07-28 stateless requests alike."""
    app = _app(home, key_file)
    operations.init(app)
    tools = ConfigTools(app)
    listings = []
    for mode in ("legacy", "2026-07-28"):
        async with Client(build_server(tools), mode=mode) as client:
            listings.append([tool.model_dump(mode="json") for tool in (await client.list_tools()).tools])
            await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="time")
            await fails(client, "get_config", "not_found", client=CD, profile="nowhere")
    assert listings[0] == listings[1]
    assert [tool["name"] for tool in listings[0]] == [spec.name for spec in TOOLS]


async def test_after_a_rotation_exactly_the_writing_tools_refuse(home: Path, key_file: Path, tmp_path: Path) -> None:
    app = _app(home, key_file)
    operations.init(app)
    async with connect(app) as client:
        await publish(client, CD, PROFILE, "time")
        await ok(client, "add_server_to_config", client=CD, profile=PROFILE, server_id="memory")
        rotation.rotate(
            Repository(app.settings.storage_dir),
            key_sources.load_signing_key(app.settings.signing_key),
            write_key(tmp_path / "signing_key_next"),
        )
        for spec in TOOLS:
            if spec.writes:
                await fails(client, spec.name, "key_retired", **ARGUMENTS[spec.name])
            else:
                await ok(client, spec.name, **ARGUMENTS[spec.name])
