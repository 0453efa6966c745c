"""One way to talk to ``serve`` over stdio, for the integration and the container tests alike.

Two clients, as the tests need them:

- :func:`mcp_session`: the SDK's own stdio client (``stdio_client`` + ``ClientSession``),
  initialised, with every stdout line that was not a JSON-RPC message collected;
- :func:`running` and :class:`RawServer`: a hand-written client that writes JSON-RPC
  lines (or any bytes) to stdin and keeps every line read from stdout, so a test can
  check the stream byte for byte.

The command is whatever the test gives: ``python -m mcp_orchestration serve``,
``docker run -i ...`` or ``docker-compose run -T ...``.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, InitializeResult

PROTOCOL_VERSION = "2025-11-25"
SERVER_NAME = "mcp-orchestration"
RESPONSE_TIMEOUT = 15.0
SESSION_TIMEOUT = 60.0


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result (a tool error fails the test)."""
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


# -- the SDK's stdio client ----------------------------------------------------------------------


@dataclass
class SdkSession:
    """An initialised SDK session, what ``initialize`` answered, and the stdout lines that did not parse."""

    session: ClientSession
    initialized: InitializeResult
    unparsed: list[Exception]


@asynccontextmanager
async def mcp_session(
    params: StdioServerParameters, errlog_path: Path, timeout: float = SESSION_TIMEOUT
) -> AsyncIterator[SdkSession]:
    """Start the server, initialise a session and yield it; the server's stderr goes to ``errlog_path``.

    The whole session, the caller's steps included, must finish within ``timeout`` seconds.
    """
    unparsed: list[Exception] = []

    async def on_message(message: object) -> None:
        if isinstance(message, Exception):  # a stdout line that was not a JSON-RPC message
            unparsed.append(message)

    with errlog_path.open("w") as errlog, anyio.fail_after(timeout):
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, message_handler=on_message) as session,
        ):
            initialized = await session.initialize()
            yield SdkSession(session, initialized, unparsed)


# -- a hand-written client -----------------------------------------------------------------------


def is_jsonrpc_message(message: object) -> bool:
    """A JSON-RPC 2.0 request, notification, result or error."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    if "method" in message:
        return isinstance(message["method"], str) and set(message) <= {"jsonrpc", "id", "method", "params"}
    if "id" not in message or not isinstance(message["id"], str | int | type(None)):
        return False
    if ("result" in message) == ("error" in message):
        return False
    if "error" in message:
        error = message["error"]
        return isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    return isinstance(message["result"], dict) and set(message) == {"jsonrpc", "id", "result"}


@dataclass
class RawServer:
    """``serve`` driven line by line; every stdout line is kept in ``seen``."""

    process: subprocess.Popen[bytes]
    lines: queue.Queue[bytes | None] = field(default_factory=queue.Queue)
    seen: list[bytes] = field(default_factory=list)
    next_id: int = 1

    def start_reader(self) -> None:
        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def write(self, data: bytes) -> None:
        """Write raw bytes to stdin (a line in pieces, say)."""
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send_line(self, data: bytes) -> None:
        self.write(data + b"\n")

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send_line(json.dumps(message).encode())

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its response (other messages read meanwhile are kept too)."""
        self.next_id += 1
        request_id = self.next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send_line(json.dumps(message).encode())
        return self.response(request_id)

    def initialize(self, client_name: str) -> dict[str, Any]:
        """The MCP handshake: ``initialize`` (the server must name itself), then ``notifications/initialized``."""
        initialized = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": client_name, "version": "1"},
            },
        )
        assert initialized["result"]["serverInfo"]["name"] == SERVER_NAME
        self.notify("notifications/initialized")
        return initialized

    def _next_line(self, waiting_for: str, deadline: float) -> bytes:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {waiting_for} within {RESPONSE_TIMEOUT} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the server closed stdout before sending {waiting_for}")
            self.seen.append(line)
            return line

    def next_message(self) -> dict[str, Any]:
        """The next message on stdout, whatever it is (an error answering no id, say)."""
        message = json.loads(self._next_line("message", time.monotonic() + RESPONSE_TIMEOUT))
        assert isinstance(message, dict), message
        return message

    def response(self, request_id: object) -> dict[str, Any]:
        deadline = time.monotonic() + RESPONSE_TIMEOUT
        while True:
            message = json.loads(self._next_line(f"response to request {request_id!r}", deadline))
            if isinstance(message, dict) and message.get("id") == request_id and "method" not in message:
                return message

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response = self.request("tools/call", {"name": name, "arguments": arguments})
        assert "result" in response, response
        result = response["result"]
        assert isinstance(result, dict)
        return result

    def drain(self) -> None:
        """Collect what is left on stdout after stdin was closed."""
        while True:
            try:
                line = self.lines.get(timeout=RESPONSE_TIMEOUT)
            except queue.Empty:
                raise AssertionError("stdout did not close after stdin was closed") from None
            if line is None:
                return
            self.seen.append(line)

    def close(self) -> int:
        """Close stdin, read stdout to its end and return the exit status."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.drain()
        return self.process.wait(timeout=30)

    def assert_stdout_is_only_jsonrpc(self) -> None:
        """Every line seen on stdout is one JSON document, and a JSON-RPC 2.0 message."""
        assert self.seen
        for line in self.seen:
            assert line.endswith(b"\n")
            assert is_jsonrpc_message(json.loads(line)), line[:300]


@contextmanager
def running(argv: list[str], stderr_path: Path, **popen: Any) -> Iterator[RawServer]:
    """A server process driven line by line; killed and reaped afterwards.

    stderr goes to a file: a pipe nobody reads could fill up and stall the server.
    """
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, **popen)
        server = RawServer(process)
        server.start_reader()
        try:
            yield server
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
