"""``serve`` over stdio answers what it cannot parse, and never holds an over-long line.

The splitter is tested alone; the rest runs ``serve`` as a real subprocess:
a request nested 3,000 deep gets a JSON-RPC parse error (the SDK alone never
answers it), a 64 MiB line (written in pieces, never held by the test) gets an
error without the server's memory growing with it, and normal requests work
before and after.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.server.stdio import MAX_LINE_BYTES, TOO_LONG, LineSplitter
from tests.conftest import run_process

TIMEOUT = 15.0
PROTOCOL_VERSION = "2025-11-25"


def test_the_splitter_yields_lines_and_drops_an_over_long_one_as_it_arrives() -> None:
    splitter = LineSplitter(limit=8)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\n\nde") == [b"abc", b""]
    assert splitter.feed(b"fghijkl") == []  # "defghijkl" is past the limit: dropped, not buffered
    assert len(splitter._buffer) == 0
    assert splitter.feed(b"mn\nok\n") == [TOO_LONG, b"ok"]
    assert splitter.feed(b"12345678\n123456789\n") == [b"12345678", TOO_LONG]
    assert splitter.feed(b"tail") == []
    assert splitter.finish() == [b"tail"]
    assert splitter.feed(b"x" * 20) == [] and splitter.finish() == [TOO_LONG]
    assert splitter.finish() == []


class Server:
    """``serve`` driven by lines; a reader thread collects its stdout."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_orchestration", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def request(self, request_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.write(json.dumps(message).encode() + b"\n")
        return self.next_message()

    def next_message(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no reply within {TIMEOUT} s") from None
        message: dict[str, Any] = json.loads(line)
        return message

    def peak_rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024


@pytest.fixture
def server(key_file: Path, tmp_path: Path) -> Iterator[Server]:
    assert run_process("init", "--key-file", str(key_file)).returncode == 0
    env = {**os.environ, "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file)}
    running = Server(env, tmp_path)
    try:
        initialized = running.request(
            1,
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        )
        assert initialized["result"]["serverInfo"]["name"] == "mcp-orchestration"
        running.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        yield running
    finally:
        running.process.kill()
        running.process.wait(timeout=TIMEOUT)


def _is_error(message: dict[str, Any], code: int) -> bool:
    return message.get("id", "absent") is None and message.get("error", {}).get("code") == code


def test_a_request_nested_3000_deep_gets_a_parse_error_and_the_server_goes_on(server: Server) -> None:
    depth = 3000
    arguments = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    server.write(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_clients","arguments":'
        + arguments
        + b"}}\n"
    )
    assert _is_error(server.next_message(), -32700)
    tools = server.request(8, "tools/list")
    assert tools["id"] == 8 and tools["result"]["tools"]


def test_a_64_mib_line_is_answered_without_being_held(server: Server) -> None:
    started = time.monotonic()
    piece = b"x" * (1 << 20)
    server.write(b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"')
    for _ in range(64):
        server.write(piece)
    server.write(b'"}}\n')
    reply = server.next_message()
    assert _is_error(reply, -32600) and str(MAX_LINE_BYTES) in reply["error"]["message"]
    assert server.request(10, "ping") == {"jsonrpc": "2.0", "id": 10, "result": {}}
    assert server.peak_rss_bytes() < 300 << 20  # the line was 64 MiB; the SDK alone held it several times over
    assert time.monotonic() - started < 20
