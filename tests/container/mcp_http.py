"""Talking to a containerised ``serve --http`` from the host, the way a remote client does.

- :func:`mcp_http`: the SDK's own client (``Client`` over ``streamable_http_client``) with
  the bearer token in an ``httpx2.AsyncClient``'s headers, bounded as a whole;
- :func:`post_without_session`: one raw JSON-RPC POST, to see what the server answers
  a request without (or with a wrong) token; :func:`healthz`, its unauthenticated probe;
- :func:`free_port`, :func:`wait_until`: a port to publish, and a bounded poll.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.container.conftest import NONROOT

T = TypeVar("T")
SESSION_TIMEOUT = 60.0
TOOL_COUNT = 16
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def free_port() -> int:
    """A TCP port nothing listens on now, on every address (swarm's host-mode ports bind 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 (only to find a free port)
        return int(sock.getsockname()[1])


def write_token(path: Path) -> str:
    """A static bearer token as the publisher reads it: one word, >= 32 characters, readable by 65532 only."""
    token = secrets.token_urlsafe(32)
    path.write_text(token + "\n")
    os.chown(path, NONROOT, NONROOT)  # as the secret_key fixture: the tests run as root
    path.chmod(0o400)
    return token


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something other than None, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


async def _session(url: str, token: str, steps: Callable[[Client], Awaitable[T]], timeout: float) -> T:
    with anyio.fail_after(timeout):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            return await steps(client)


def mcp_http(url: str, token: str, steps: Callable[[Client], Awaitable[T]], timeout: float = SESSION_TIMEOUT) -> T:
    """Run ``steps(client)`` in one SDK session against ``url`` with ``token``, within ``timeout`` seconds."""
    return anyio.run(_session, url, token, steps, timeout)


def healthz(base: str) -> bool | None:
    """True once ``base``/healthz answers 200 with ``{"status": "ok"}``; None while nothing answers (for wait_until)."""
    try:
        response = httpx2.get(f"{base}/healthz", timeout=5)
    except httpx2.TransportError:
        return None
    assert (response.status_code, response.json()) == (200, {"status": "ok"}), response.text
    return True


def post_without_session(url: str, token: str | None = None) -> httpx2.Response:
    """One JSON-RPC ``ping`` POSTed to ``url``, with ``token`` as the bearer if given."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(url, json=PING, headers=headers, timeout=10)
