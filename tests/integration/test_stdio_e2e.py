"""End to end over stdio: ``python -m mcp_orchestration serve`` as a real subprocess.

The store and the key are made at run time (``mcp-orchestration init --key-file``)
and the server gets them through the environment, as the container does. Two
sessions:

- the SDK's own stdio client (``stdio_client`` + ``ClientSession``) drives the
  whole flow: list tools, add a server, validate, publish, get, verify, history;
  every line the client read from the server's stdout must have parsed as a
  JSON-RPC message;
- a hand-written client (``subprocess.Popen``) writes JSON-RPC lines to stdin and
  reads stdout line by line: every line must be a JSON-RPC 2.0 message, and after
  malformed input (truncated JSON, wrong types, binary garbage, a 1 MB line) the
  server must still answer the next valid request. The store must pass
  ``mcp-orchestration verify --deep`` afterwards. stderr may hold logs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.client.stdio import StdioServerParameters

from mcp_orchestration.app.environment import ENV_PREFIX
from mcp_orchestration.server.app import DESCRIPTIONS
from tests.conftest import run_process, write_key
from tests.integration.tool_errors import tool_error, wire_error
from tests.stdio_session import RawServer, mcp_session, running, structured

CD = "claude-desktop"
PROFILE = "e2e"
MEGABYTE = 1 << 20


@dataclass
class Store:
    home: Path
    key_file: Path
    env: dict[str, str]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A store initialised by the real CLI, and the environment ``serve`` runs with."""
    key_file = tmp_path / "secrets" / "signing_key"
    key_file.parent.mkdir()
    write_key(key_file)
    home = tmp_path / "home"
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    env.update(
        {
            "MCP_ORCHESTRATION_HOME": str(home),
            "MCP_ORCHESTRATION_HOST_STATE": os.environ["MCP_ORCHESTRATION_HOST_STATE"],
            "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "PYTHONUNBUFFERED": "1",
        }
    )
    result = run_process("init", "--key-file", str(key_file), env=env)
    assert result.returncode == 0, result.stderr
    return Store(home, key_file, env)


def verify_deep(store: Store) -> dict[str, Any]:
    result = run_process("verify", "--deep", "--json", env=store.env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


# -- the SDK's stdio client --------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_whole_flow_over_stdio(store: Store, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_orchestration", "serve"], env=store.env, cwd=tmp_path
    )
    stderr_file = tmp_path / "serve.stderr"
    async with mcp_session(params, stderr_file) as sdk:
        session = sdk.session
        assert sdk.initialized.server_info.name == "mcp-orchestration"

        tools = (await session.list_tools()).tools
        assert sorted(tool.name for tool in tools) == sorted(DESCRIPTIONS)

        draft = structured(
            await session.call_tool(
                "add_server_to_config",
                {"client": CD, "profile": PROFILE, "server_id": "time", "parameters": {"local_timezone": "UTC"}},
            )
        )
        assert draft["config"]["mcpServers"]["time"]["args"] == ["mcp-server-time", "--local-timezone=UTC"]

        report = structured(await session.call_tool("validate_config", {"client": CD, "profile": PROFILE}))
        assert report["ok"] is True

        published = structured(
            await session.call_tool("publish_config", {"client": CD, "profile": PROFILE, "changelog": "e2e"})
        )
        assert published["changed"] is True
        assert published["index_version"] == 2

        config = structured(await session.call_tool("get_config", {"client": CD, "profile": PROFILE}))
        assert config["artifact"] == published["artifact"]
        assert config["config"] == draft["config"]

        verified = structured(await session.call_tool("verify_config", {"client": CD, "profile": PROFILE}))
        assert verified["verified"] is True
        assert verified["artifact"] == published["artifact"]

        history = structured(await session.call_tool("get_config_history", {"client": CD, "profile": PROFILE}))
        assert [(v["artifact"], v["changelog"]) for v in history["versions"]] == [(published["artifact"], "e2e")]

        # A tool error travels as a result with its code, and the session goes on.
        missing = await session.call_tool("get_config", {"client": CD, "profile": "missing"})
        assert tool_error(missing)["code"] == "not_found"
        assert (await session.call_tool("list_clients", {})).is_error is False

    assert sdk.unparsed == []  # every stdout line was a JSON-RPC message
    stderr = stderr_file.read_text()
    assert "Traceback" not in stderr
    assert verify_deep(store)["index_version"] == 2


# -- a hand-written client: every stdout line, and malformed input ---------------------------


@pytest.fixture
def raw_server(store: Store, tmp_path: Path) -> Iterator[RawServer]:
    argv = [sys.executable, "-m", "mcp_orchestration", "serve"]
    with running(argv, tmp_path / "raw.stderr", env=store.env, cwd=tmp_path) as server:
        yield server


MALFORMED: dict[str, bytes] = {
    "truncated request": b'{"jsonrpc":"2.0","id":9001,"method":"tools/li',
    "truncated array": b'[{"jsonrpc":"2.0","id":9002',
    "unterminated string": b'{"jsonrpc":"2.0","id":9003,"method":"ping',
    "method is a number": b'{"jsonrpc":"2.0","id":9004,"method":5}',
    "jsonrpc is a number": b'{"jsonrpc":1,"id":9005,"method":"tools/list"}',
    "id is an object": b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}',
    "id is a float": b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
    "params is a string": b'{"jsonrpc":"2.0","id":9006,"method":"tools/call","params":"nope"}',
    "tool name is a number": b'{"jsonrpc":"2.0","id":9007,"method":"tools/call","params":{"name":5,"arguments":{}}}',
    "arguments is a string": (
        b'{"jsonrpc":"2.0","id":9008,"method":"tools/call","params":{"name":"get_config","arguments":"x"}}'
    ),
    "argument types wrong": (
        b'{"jsonrpc":"2.0","id":9009,"method":"tools/call",'
        b'"params":{"name":"get_config","arguments":{"client":1,"profile":null}}}'
    ),
    "unknown tool": b'{"jsonrpc":"2.0","id":9010,"method":"tools/call","params":{"name":"rm","arguments":{}}}',
    "unknown method": b'{"jsonrpc":"2.0","id":9011,"method":"files/write","params":{}}',
    "a response nobody asked for": b'{"jsonrpc":"2.0","id":9012,"result":{}}',
    "null": b"null",
    "number": b"42",
    "string": b'"tools/list"',
    "empty array": b"[]",
    "empty object": b"{}",
    "empty line": b"",
    "blanks": b" \t ",
    "invalid utf-8 inside a string": (
        b'{"jsonrpc":"2.0","id":9013,"method":"tools/call",'
        b'"params":{"name":"get_config","arguments":{"client":"\xff\xfe","profile":"x"}}}'
    ),
    "binary garbage": bytes(byte for byte in range(256) if byte != 0x0A) * 4,
    "1 MB of text": b"x" * MEGABYTE,
    "1 MB of nesting": b"[" * MEGABYTE,
    "1 MB valid request": (
        b'{"jsonrpc":"2.0","id":9014,"method":"tools/call","params":{"name":"describe_server",'
        b'"arguments":{"server_id":"' + b"a" * MEGABYTE + b'"}}}'
    ),
    "1 MB changelog": (
        b'{"jsonrpc":"2.0","id":9015,"method":"tools/call","params":{"name":"publish_config",'
        b'"arguments":{"client":"claude-desktop","profile":"e2e","changelog":"' + b"c" * MEGABYTE + b'"}}}'
    ),
}


def test_stdout_carries_only_json_rpc_and_malformed_lines_do_no_harm(
    store: Store, raw_server: RawServer, tmp_path: Path
) -> None:
    raw_server.initialize("raw-test")

    listed = raw_server.request("tools/list")
    assert sorted(tool["name"] for tool in listed["result"]["tools"]) == sorted(DESCRIPTIONS)

    added = raw_server.call("add_server_to_config", {"client": CD, "profile": PROFILE, "server_id": "memory"})
    assert added.get("isError") is not True, added
    published = raw_server.call("publish_config", {"client": CD, "profile": PROFILE, "changelog": "raw"})
    assert published["structuredContent"]["index_version"] == 2

    for label, line in MALFORMED.items():
        raw_server.send_line(line)
        # The server keeps answering: a valid request right after gets its response.
        pong = raw_server.request("ping")
        assert pong.get("result") == {}, (label, pong)

    # A tool call still works after all of it, with the same answers as before.
    config = raw_server.call("get_config", {"client": CD, "profile": PROFILE})
    assert config["structuredContent"]["artifact"] == published["structuredContent"]["artifact"]
    error = raw_server.call("get_config", {"client": "../x", "profile": PROFILE})
    assert wire_error(error)["code"] == "invalid_id"
    history = raw_server.call("get_config_history", {"client": CD, "profile": PROFILE})
    assert len(history["structuredContent"]["versions"]) == 1  # the 1 MB changelog published nothing

    # Closing stdin ends the server cleanly.
    assert raw_server.close() == 0

    raw_server.assert_stdout_is_only_jsonrpc()
    # Nothing the server wrote to stderr is a crash, and the key never appears anywhere.
    stderr = (tmp_path / "raw.stderr").read_bytes()
    assert b"Traceback" not in stderr
    key_body = b"".join(line for line in store.key_file.read_bytes().splitlines() if not line.startswith(b"-----"))
    for output in (stderr, b"".join(raw_server.seen)):
        assert key_body not in output

    report = verify_deep(store)
    assert report["index_version"] == 2
    assert report["deep"] is True
