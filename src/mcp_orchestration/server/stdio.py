"""The stdio transport with a bounded stdin: no request line is held whole past a limit, none goes unanswered.

The SDK's stdio transport reads stdin a line at a time with no bound (a 400 MB
line is held whole, and more, while it is decoded and parsed) and drops a
line it cannot parse without a word, so a client that sent a request nested
too deep waits forever. Here stdin is read in chunks and split on ``\\n``:

- a line longer than :data:`MAX_LINE_BYTES` is discarded up to its newline as
  it arrives, never held, and answered with a JSON-RPC ``Invalid Request``
  error (``id`` null: the id was in the discarded bytes);
- a line the SDK's own JSON-RPC parser cannot parse as JSON (malformed, or
  nested deeper than its recursion limit, which it checks cheaply) is answered
  with a JSON-RPC ``Parse error`` (-32700, ``id`` null);
- a blank line is skipped; every other line goes to the SDK unchanged, which
  handles it exactly as before (a JSON message that is not JSON-RPC is still
  dropped there).

Everything else is the SDK's: its ``stdio_server`` writes stdout (and keeps
fd 1 pointed at stderr while serving, so stray output misses the wire), and
its server runs on the streams it yields. This module only hands it the
lines, and takes fd 0 the same way the SDK would (pointed at the null device
while serving, so nothing else can read the wire).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread
import mcp_types as types
import pydantic
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from mcp_orchestration.core.lines import LineSplitter

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MAX_LINE_BYTES = 4 << 20  # a request line; the largest tool arguments accepted are far smaller
_CHUNK_BYTES = 256 << 10


def parse_refusal(line: str) -> bool:
    """Whether the SDK's JSON-RPC parser would refuse ``line`` as JSON (not merely as JSON-RPC).

    The parser's recursion limit makes a deeply nested line a JSON error too,
    found without recursing in Python. Parsing here uses that same parser, so
    what passes here parses the same way there.
    """
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except pydantic.ValidationError as exc:
        return any(error["type"] == "json_invalid" for error in exc.errors())
    return False


def error_reply(code: int, message: str) -> SessionMessage:
    """A JSON-RPC error with ``id`` null: the request's id is unknown."""
    return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(code=code, message=message)))


class BoundedStdin:
    """The lines ``read`` returns, for the SDK's stdio transport; a refused line is answered on the write stream."""

    def __init__(self, read: Callable[[int], bytes], limit: int = MAX_LINE_BYTES) -> None:
        self._read = read
        self._limit = limit
        self._reply: Any = None
        self._ready = anyio.Event()

    def answer_on(self, write_stream: Any) -> None:
        """Where error replies go: the transport's write stream (known once it is open)."""
        self._reply = write_stream
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        await self._ready.wait()
        splitter = LineSplitter(self._limit)
        while True:
            chunk = await anyio.to_thread.run_sync(self._read, _CHUNK_BYTES, abandon_on_cancel=True)
            for line in splitter.feed(chunk) if chunk else splitter.finish():
                text = await self._accepted(line)
                if text is not None:
                    yield text
            if not chunk:
                return

    async def _accepted(self, line: bytes | None) -> str | None:
        """``line`` as text for the SDK, or None once it has been answered (or is blank)."""
        if line is None:  # TOO_LONG
            await self._answer(types.INVALID_REQUEST, f"Invalid request: a line is longer than {self._limit} bytes.")
            return None
        if not line.strip():
            return None
        text = line.decode("utf-8", errors="replace")  # as the SDK's own stdin reader decodes
        if parse_refusal(text):
            await self._answer(types.PARSE_ERROR, "Parse error: the line is not JSON, or is nested too deeply.")
            return None
        return text

    async def _answer(self, code: int, message: str) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._reply.send(error_reply(code, message))


@contextlib.contextmanager
def _claimed_stdin() -> Iterator[Callable[[int], bytes]]:
    """A read function for the wire on stdin, taken as the SDK takes it.

    If ``sys.stdin`` is fd 0, the wire is read from a private duplicate and fd
    0 points at the null device meanwhile. The duplicate is never closed: a
    worker thread may still be blocked reading it after the transport ends,
    and a recycled number would be read in its place. If fd 0 cannot be moved
    aside, or ``sys.stdin`` is not fd 0 (a test harness's stand-in), stdin's
    own buffer is read in place.
    """
    buffer = sys.stdin.buffer
    try:
        backed = buffer.fileno() == 0
        private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3) if backed else -1
    except (AttributeError, OSError, ValueError):
        private = -1
    if private < 0:
        yield getattr(buffer, "read1", buffer.read)
        return
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        yield functools.partial(os.read, private)
    finally:
        os.dup2(private, 0)


async def serve_stdio(server: MCPServer) -> None:
    """Run ``server`` over stdio as ``MCPServer.run("stdio")`` does, with the bounded stdin above."""
    lowlevel = server._lowlevel_server  # the SDK's own run_stdio_async does exactly this, on its streams
    with _claimed_stdin() as read:
        stdin = BoundedStdin(read)
        async with stdio_server(stdin=cast("anyio.AsyncFile[str]", stdin)) as (read_stream, write_stream):
            stdin.answer_on(write_stream)
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
