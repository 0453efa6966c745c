"""``mcp-orchestration serve --http`` as a test starts it: a real process on a loopback port, stopped by the test.

The port is the one the server picked (``--http 127.0.0.1:0``), read from the
line it logs once listening, so tests never race for a free port. The
process's stderr is kept in a file the test can search (for leaks, for
refusals).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

START_TIMEOUT = 30.0
_LISTENING = re.compile(r"Serving MCP over HTTP on \S+:(\d+) at (\S+)")
PROTOCOL = "2025-11-25"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class HttpServer:
    """A running ``serve --http``: its endpoint URL, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return self.url.removesuffix("/mcp")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def post(self, body: Any, *, token: str | None = None, headers: dict[str, str] | None = None) -> httpx2.Response:
        """One raw JSON-RPC POST to the endpoint (a new session unless ``headers`` name one)."""
        auth = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx2.post(self.url, json=body, headers=MCP_HEADERS | auth | (headers or {}), timeout=10)


@contextmanager
def http_server(*options: str, env: dict[str, str] | None = None, log: Path) -> Iterator[HttpServer]:
    """Run ``serve --http 127.0.0.1:0 OPTIONS`` until the block ends; fail if it does not listen in time."""
    argv = [sys.executable, "-m", "mcp_orchestration", "serve", "--http", "127.0.0.1:0", *options]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=env or dict(os.environ), stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    try:
        yield HttpServer(_wait_listening(process, log), process, log)
    finally:
        stop(process)


def _wait_listening(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(2)
        if process.poll() is not None:
            raise AssertionError(f"serve --http exited {process.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise AssertionError(f"serve --http did not listen within {START_TIMEOUT:g} s:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers: the server must not outlive its test."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
