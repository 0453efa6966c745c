"""``serve`` over stdio answers what it cannot parse, and never holds an over-long line.

The splitter is tested alone; the rest runs ``serve`` as a real subprocess:
a request nested 3,000 deep gets a JSON-RPC parse error (the SDK alone never
answers it), a 64 MiB line (written in pieces, never held by the test) gets an
error without the server's memory growing with it, and normal requests work
before and after.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.core.lines import TOO_LONG, LineSplitter
from mcp_orchestration.server.stdio import MAX_LINE_BYTES
from tests.conftest import run_process
from tests.stdio_session import RawServer, running


def test_the_splitter_yields_lines_and_drops_an_over_long_one_as_it_arrives() -> None:
    splitter = LineSplitter(limit=8)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\n\nde") == [b"abc", b""]
    assert splitter.feed(b"fghijkl") == []  # "defghijkl" is past the limit: dropped, not buffered
    assert len(splitter._buffer) == 0 and splitter.overflowing
    assert splitter.feed(b"mn\nok\n") == [TOO_LONG, b"ok"]
    assert not splitter.overflowing
    assert splitter.feed(b"12345678\n123456789\n") == [b"12345678", TOO_LONG]
    assert splitter.feed(b"tail") == []
    assert splitter.finish() == [b"tail"]
    assert splitter.feed(b"x" * 20) == [] and splitter.finish() == [TOO_LONG]
    assert splitter.finish() == []


def _peak_rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.fixture
def server(key_file: Path, tmp_path: Path) -> Iterator[RawServer]:
    assert run_process("init", "--key-file", str(key_file)).returncode == 0
    env = {**os.environ, "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file)}
    argv = [sys.executable, "-m", "mcp_orchestration", "serve"]
    with running(argv, tmp_path / "serve.stderr", env=env, cwd=tmp_path) as started:
        started.initialize("t")
        yield started


def _is_error(message: dict[str, Any], code: int) -> bool:
    return message.get("id", "absent") is None and message.get("error", {}).get("code") == code


def test_a_request_nested_3000_deep_gets_a_parse_error_and_the_server_goes_on(server: RawServer) -> None:
    depth = 3000
    arguments = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    server.write(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_clients","arguments":'
        + arguments
        + b"}}\n"
    )
    assert _is_error(server.next_message(), -32700)
    tools = server.request("tools/list")
    assert tools["id"] == server.next_id and tools["result"]["tools"]


def test_a_64_mib_line_is_answered_without_being_held(server: RawServer) -> None:
    started = time.monotonic()
    piece = b"x" * (1 << 20)
    server.write(b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"')
    for _ in range(64):
        server.write(piece)
    server.write(b'"}}\n')
    reply = server.next_message()
    assert _is_error(reply, -32600) and str(MAX_LINE_BYTES) in reply["error"]["message"]
    assert server.request("ping") == {"jsonrpc": "2.0", "id": server.next_id, "result": {}}
    assert (
        _peak_rss_bytes(server.process.pid) < 300 << 20
    )  # the line was 64 MiB; the SDK alone held it several times over
    assert time.monotonic() - started < 20
