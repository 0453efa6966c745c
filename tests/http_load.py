"""An MCP server over streamable HTTP as a subprocess, and a bounded load on it, timed.

:func:`start` runs a server command with its stderr in a log file and waits
until it listens: until it announces its URL (``serve --http`` with port 0
logs ``Serving MCP over HTTP on HOST:PORT at URL``), or, for a server on a
known port, until the port accepts a connection. :func:`memory_kib` reads its
resident memory from ``/proc``.

:func:`run_load` drives the load through the SDK's own client (``mcp.Client``
over ``streamable_http_client``, one ``httpx2.AsyncClient`` with its bearer
token per client): 2025-11-25 sessions (initialize handshake, a few
``tools/call``, then the session's DELETE) and 2026-07-28 stateless clients
(``server/discover``, then each ``tools/call`` a request of its own), at most
``concurrency`` clients at once. Every HTTP status the server answers is
counted, every call timed; a failure is kept by its exception's class and
message, never raised, so one run reports all of them.

Used by ``tests/integration/test_http_load.py`` and ``benchmarks/http_bench.py``.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ANNOUNCEMENT = re.compile(r"Serving MCP over HTTP on \S+ at (http://\S+)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LEGACY = "legacy"  # the 2025-11-25 initialize handshake: a session
STATELESS = "auto"  # against a 2026-07-28 server: server/discover, then one request per call


@dataclass
class Served:
    """A server process, the URL of its MCP endpoint and its log (stdout and stderr)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        return memory_kib(self.pid, "VmRSS")

    def peak_kib(self) -> int:
        return memory_kib(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int, name: str = "VmRSS") -> int:
    """A memory figure of ``/proc/PID/status`` in KiB: ``VmRSS`` (resident now), ``VmHWM`` (its peak)."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(f"{name}:"):
            return int(row.split()[1])
    raise LookupError(f"{name} not in /proc/{pid}/status")


def start(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path, port: int | None = None, path: str = "/mcp"
) -> Served:
    """Start ``argv`` (in its own process group) and wait until it listens.

    Without ``port``, the server must announce its URL on stderr; with one, it
    listens at ``http://127.0.0.1:PORT{path}`` once the port accepts.
    """
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited {process.returncode} before listening:\n{log.read_text()}")
            if port is None:
                found = ANNOUNCEMENT.search(log.read_text(errors="replace"))
                if found:
                    return Served(process, found[1], log)
            else:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        return Served(process, f"http://127.0.0.1:{port}{path}", log)
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not listen within {START_TIMEOUT:g} s:\n{log.read_text()}")
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, then SIGKILL if it has not exited in time."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


_TLS: list[ssl.SSLContext] = []


def _tls() -> ssl.SSLContext:
    """One TLS context for every client: httpx2 builds one per client otherwise, about 35 ms of CPU each."""
    if not _TLS:
        _TLS.append(ssl.create_default_context())
    return _TLS[0]


def http_client(token: str | None, statuses: Counter[int] | None = None) -> httpx2.AsyncClient:
    """An HTTP client with the bearer token (if any) and the SDK's own timeouts; counts statuses into ``statuses``.

    The clients share one TLS context (unused on loopback ``http://``), so a
    load of many clients measures the server rather than certificate loading.
    """

    async def count(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses[response.status_code] += 1

    return httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=httpx2.Timeout(30.0, read=300.0),
        verify=_tls(),
        event_hooks={"response": [count]},
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p50 of 500 values is the 250th smallest, p99 the 495th)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass
class LoadResult:
    """What a load run did and how the server answered."""

    sessions: int  # 2025-11-25 sessions asked for
    stateless: int  # 2026-07-28 stateless clients asked for
    calls_per_client: int
    wall_seconds: float = 0.0
    completed_clients: int = 0  # clients whose every call succeeded and that closed cleanly
    calls: list[float] = field(default_factory=list)  # seconds per successful tools/call
    setups: list[float] = field(default_factory=list)  # seconds to connect (handshake or discover)
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    protocols: Counter[str] = field(default_factory=Counter)  # the protocol version each client negotiated

    @property
    def expected_calls(self) -> int:
        return (self.sessions + self.stateless) * self.calls_per_client

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def calls_per_second(self) -> float:
        return len(self.calls) / self.wall_seconds

    @property
    def clients_per_second(self) -> float:
        return self.completed_clients / self.wall_seconds

    def describe(self) -> str:
        """One paragraph of figures (for a test's output or a benchmark's report)."""
        return (
            f"{self.sessions} sessions + {self.stateless} stateless clients x {self.calls_per_client} tools/call "
            f"in {self.wall_seconds:.2f} s: {self.clients_per_second:.1f} clients/s, "
            f"{self.calls_per_second:.0f} tools/call/s, p50 {percentile(self.calls, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(self.calls, 0.99) * 1000:.1f} ms; connect p50 "
            f"{percentile(self.setups, 0.5) * 1000:.1f} ms, p99 {percentile(self.setups, 0.99) * 1000:.1f} ms; "
            f"{len(self.calls)}/{self.expected_calls} calls succeeded, {len(self.failures)} failures; "
            f"HTTP statuses {dict(sorted(self.statuses.items()))}; protocols {dict(sorted(self.protocols.items()))}"
        )


async def run_load(
    url: str,
    *,
    tool: str,
    arguments: dict[str, Any],
    sessions: int,
    stateless: int,
    calls_per_client: int,
    concurrency: int,
    tokens: Sequence[str] | None = None,
) -> LoadResult:
    """``sessions`` + ``stateless`` clients, at most ``concurrency`` at once, each making ``calls_per_client`` calls.

    ``tokens``: one bearer token per client (sessions first), or None for a server without auth.
    """
    if tokens is not None and len(tokens) < sessions + stateless:
        raise ValueError("one token per client is needed")
    result = LoadResult(sessions, stateless, calls_per_client)
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int, mode: str) -> None:
        async with limiter:
            token = tokens[index] if tokens is not None else None
            try:
                async with http_client(token, result.statuses) as http:
                    started = time.perf_counter()
                    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                        result.setups.append(time.perf_counter() - started)
                        result.protocols[str(client.session.protocol_version)] += 1
                        for _ in range(calls_per_client):
                            begun = time.perf_counter()
                            answer = await client.call_tool(tool, arguments)
                            elapsed = time.perf_counter() - begun
                            if answer.is_error:
                                result.failures.append(f"{mode}: tool error {answer.content!r:.200}")
                                return
                            result.calls.append(elapsed)
                result.completed_clients += 1
            except Exception as error:
                result.failures.append(f"{mode}: {type(error).__name__}: {error!s:.200}")

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for index in range(sessions + stateless):
            group.start_soon(one, index, LEGACY if index < sessions else STATELESS)
    result.wall_seconds = time.perf_counter() - started
    return result


async def answers(url: str, tool: str, arguments: dict[str, Any], token: str | None, mode: str = LEGACY) -> bool:
    """Whether a fresh client gets a successful answer to one call."""
    async with http_client(token) as http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        return not (await client.call_tool(tool, arguments)).is_error
