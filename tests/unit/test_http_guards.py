"""The HTTP server's guards as ASGI code: bounded request bodies, and the names and origins it answers to."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest

from mcp_orchestration.core.errors import UsageError
from mcp_orchestration.server.http import BoundedBody, HttpEndpoint

pytestmark = pytest.mark.anyio
ANYWHERE = "0.0.0.0"  # noqa: S104 (an address the endpoint would listen on; nothing listens here)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """An ASGI app that reads the whole body it is given, and what the guard sent instead."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.sent: list[MutableMapping[str, Any]] = []

    async def app(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.body = body

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)


def request(length: int | None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}


def chunks(*parts: bytes, then_wait: bool = False) -> Any:
    queue = list(parts)

    async def receive() -> dict[str, Any]:
        if queue:
            part = queue.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(queue) or then_wait}
        await anyio.sleep(3600)  # a client that stopped sending
        return {"type": "http.disconnect"}

    return receive


async def test_a_body_within_bounds_reaches_the_app_whole() -> None:
    recorder = Recorder()
    await BoundedBody(recorder.app, limit=10)(request(6), chunks(b"abc", b"def"), recorder.send)
    assert recorder.body == b"abcdef" and recorder.sent == []


@pytest.mark.parametrize("declared", [11, None])
async def test_a_body_past_the_limit_is_413_declared_or_not(declared: int | None) -> None:
    recorder = Recorder()
    await BoundedBody(recorder.app, limit=10)(request(declared), chunks(b"x" * 6, b"x" * 6), recorder.send)
    assert recorder.status == 413 and recorder.body is None


async def test_a_body_that_stops_arriving_is_408_at_the_deadline() -> None:
    recorder = Recorder()
    with anyio.fail_after(5):
        await BoundedBody(recorder.app, deadline=0.2)(request(100), chunks(b"{", then_wait=True), recorder.send)
    assert recorder.status == 408 and recorder.body is None


async def test_a_malformed_length_is_refused() -> None:
    recorder = Recorder()
    scope = {**request(None), "headers": [(b"content-length", b"-1")]}
    await BoundedBody(recorder.app)(scope, chunks(b""), recorder.send)
    assert recorder.status == 413


def test_off_loopback_the_public_url_is_required_and_must_end_in_mcp() -> None:
    with pytest.raises(UsageError, match="public URL"):
        HttpEndpoint(ANYWHERE, 8080).check()
    with pytest.raises(UsageError, match="/mcp"):
        HttpEndpoint(ANYWHERE, 8080, resource="https://mcp.example.com/").check()
    for odd in ("https://mcp.example.com/mcp?x=1", "https://mcp.example.com/mcp#f", "https://u:p@mcp.example.com/mcp"):
        with pytest.raises(UsageError, match="/mcp"):
            HttpEndpoint(ANYWHERE, 8080, resource=odd).check()
    HttpEndpoint(ANYWHERE, 8080, resource="https://mcp.example.com/mcp").check()


def test_the_server_answers_to_its_own_names_only() -> None:
    endpoint = HttpEndpoint(ANYWHERE, 8080, resource="https://mcp.example.com/mcp", extra_origins=["https://a.example"])
    security = endpoint.transport_security()
    assert security.enable_dns_rebinding_protection
    assert set(security.allowed_hosts) == {"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "mcp.example.com"}
    assert set(security.allowed_origins) == {
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
        "https://mcp.example.com",
        "https://a.example",
    }
