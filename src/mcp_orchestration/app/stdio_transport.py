"""A stdio transport for the SDK's ``mcp.Client`` that an untrusted server cannot exhaust.

The tool lock runs each stdio server of a config on the operator's machine,
and a server is code from a package registry: it may be hostile. The SDK's own
``stdio_client`` trusts it in two ways this module does not:

- it reads stdout a line at a time with no bound, so a server that writes
  without ever sending a newline grows the client's memory until it is
  stopped. Here stdout is split by :class:`~mcp_orchestration.core.lines.LineSplitter`
  and the wire ends as soon as a line passes :attr:`StdioLimits.max_line_bytes`,
  stdout passes :attr:`StdioLimits.max_stdout_bytes` in all, or the server has
  sent :attr:`StdioLimits.max_messages`;
- its ``errlog`` must be a real file, so a server that floods stderr fills
  the disk. Here stderr is read continuously and only its last
  :attr:`StdioLimits.stderr_tail_bytes` are kept.

Lines on stdout that are not JSON-RPC messages (a banner, a stray ``print``)
are counted and dropped, up to :attr:`StdioLimits.max_stray_lines`. When the
wire ends for any of these reasons, :attr:`BoundedStdioTransport.violation`
says why, and the session sees its read stream end.

The server runs with its own session and process group (``close_fds``, only
stdin, stdout and stderr open) and the environment it is given, nothing more.
However the session ends, its whole process group is stopped as the MCP
lifecycle asks: stdin is closed, then after a short grace SIGTERM, then SIGKILL
(the SDK's :func:`~mcp.os.posix.utilities.terminate_posix_process_tree`).
POSIX only, like the rest of the product.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import cast

import anyio
import mcp_types as types
import pydantic
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client._transport import TransportStreams
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage

from mcp_orchestration.core.errors import ServerStartError
from mcp_orchestration.core.lines import TOO_LONG, LineSplitter
from mcp_orchestration.security.ids import shown

# Stopping the server: how long it may take to exit once its stdin is closed, then after SIGTERM.
EXIT_GRACE_SECONDS = 0.5
TERMINATE_GRACE_SECONDS = 1.0
# Only a process that survives SIGKILL (stuck in the kernel) runs this out; it is then left behind.
_REAP_SECONDS = 1.0
_GROUP_POLL_SECONDS = 0.01
# Pipe errors that mean "the other end is gone": the wire is over, nothing to report.
_PIPE_GONE = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError)

_WHITESPACE = re.compile(rb"\s")

_ToSession = MemoryObjectSendStream[SessionMessage | Exception]


@dataclass(frozen=True)
class StdioLimits:
    """How much a server may write before the wire is cut."""

    max_line_bytes: int = 8 << 20
    max_stdout_bytes: int = 64 << 20
    max_stray_lines: int = 16
    # The SDK's dispatcher starts a task for each request or notification it receives, so a server sending
    # small messages without end would pile up tasks; a probe's session needs a few hundred at most.
    max_messages: int = 10_000
    stderr_tail_bytes: int = 16 << 10


class _WireViolation(Exception):
    """The server broke a limit of the wire; the message says which."""


class BoundedStdioTransport:
    """Runs ``argv`` as a child process and carries newline-delimited JSON-RPC over its stdin and stdout.

    An async context manager yielding the ``(read_stream, write_stream)`` pair
    ``mcp.Client`` takes. Use it once. Afterwards it tells why the wire ended:
    :attr:`violation` (the server broke a limit), :attr:`exit_status` (the
    server exited by itself), and keeps :attr:`stray_lines` and the end of
    stderr (:meth:`stderr_tail`).

    Raises :class:`ServerStartError` on entry if the command cannot be started.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path | None = None,
        limits: StdioLimits = StdioLimits(),
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._limits = limits
        self._stderr = bytearray()
        self._stderr_cut = False
        self._messages = 0
        self.stray_lines = 0
        self.violation: str | None = None
        self.exit_status: int | None = None
        """The server's exit status if it exited before it had to be signalled; None if it was stopped."""

    async def __aenter__(self) -> TransportStreams:
        process = self._process = await self._start()
        # All three are pipes (anyio types them as optional).
        stdin = cast(ByteSendStream, process.stdin)
        stdout, stderr = cast(ByteReceiveStream, process.stdout), cast(ByteReceiveStream, process.stderr)
        to_session, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, from_session = anyio.create_memory_object_stream[SessionMessage](0)
        self._session_ends = (read_stream, write_stream)
        # No await from the start until the tasks run (entering a task group does not yield), so a cancellation
        # cannot leave the process running with nothing to stop it.
        tasks = self._tasks = anyio.create_task_group()
        await tasks.__aenter__()
        tasks.start_soon(self._read_stdout, stdout, to_session)
        tasks.start_soon(self._write_stdin, stdin, from_session, to_session)
        tasks.start_soon(self._read_stderr, stderr)
        return read_stream, write_stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop the server, then the tasks that served it.

        The session's own exception is not handed to the task group, which
        would wrap it in an exception group: it goes on as it is.
        """
        for end in self._session_ends:
            end.close()  # the reader goes on draining stdout, so the server is never stuck writing while it stops
        with anyio.CancelScope(shield=True):
            await self._stop(self._process)
            self._tasks.cancel_scope.cancel()
            if self._process.returncode is not None:  # else it survived SIGKILL, and is left behind
                await self._process.aclose()
        await self._tasks.__aexit__(None, None, None)

    def stderr_tail(self) -> bytes:
        """The end of what the server wrote on stderr; if earlier bytes were dropped, it starts after a whitespace,
        so no word (a token, say) is kept cut in half, where the secret rules could no longer recognise it."""
        if not self._stderr_cut:
            return bytes(self._stderr)
        space = _WHITESPACE.search(self._stderr)
        return bytes(self._stderr[space.end() :]) if space else b""

    async def _start(self) -> Process:
        try:
            return await anyio.open_process(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            raise ServerStartError(self._cannot_start(exc)) from None

    def _cannot_start(self, exc: OSError | ValueError) -> str:
        """Why the command did not start, naming the command or the directory (never an argument)."""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if self._cwd is not None and str(getattr(exc, "filename", None)) == str(self._cwd):
            return f"Cannot start the server in the working directory {shown(str(self._cwd))}: {reason}."
        return f"Cannot start the server command {shown(self._argv[0])}: {reason}."

    async def _read_stdout(self, stdout: ByteReceiveStream, to_session: _ToSession) -> None:
        """Hand each JSON-RPC line to the session; once the wire ends, read and drop the rest."""
        with to_session:
            try:
                await self._deliver_lines(stdout, to_session)
            except _WireViolation as exc:
                self.violation = str(exc)
            except _PIPE_GONE:
                pass  # stdout closed, or the session is over
        with suppress(*_PIPE_GONE):
            while True:
                await stdout.receive()

    async def _deliver_lines(self, stdout: ByteReceiveStream, to_session: _ToSession) -> None:
        limits = self._limits
        splitter = LineSplitter(limits.max_line_bytes)
        received = 0
        async for chunk in stdout:
            received += len(chunk)
            if received > limits.max_stdout_bytes:
                raise _WireViolation(f"The server wrote more than {limits.max_stdout_bytes} bytes on stdout.")
            for line in splitter.feed(chunk):
                await self._deliver(line, to_session)
            if splitter.overflowing:  # give up now, not at a newline that may never come
                await self._deliver(TOO_LONG, to_session)
        for line in splitter.finish():
            await self._deliver(line, to_session)

    async def _deliver(self, line: bytes | None, to_session: _ToSession) -> None:
        if line is TOO_LONG:
            raise _WireViolation(f"The server wrote a line longer than {self._limits.max_line_bytes} bytes on stdout.")
        if not line.strip():
            return
        try:
            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except pydantic.ValidationError:
            self._count_stray_line()
            return
        self._messages += 1
        if self._messages > self._limits.max_messages:
            raise _WireViolation(f"The server sent more than {self._limits.max_messages} messages.")
        await to_session.send(SessionMessage(message))

    def _count_stray_line(self) -> None:
        self.stray_lines += 1
        if self.stray_lines > self._limits.max_stray_lines:
            raise _WireViolation(
                f"The server wrote more than {self._limits.max_stray_lines} lines that are not JSON-RPC on stdout."
            )

    async def _write_stdin(
        self,
        stdin: ByteSendStream,
        from_session: MemoryObjectReceiveStream[SessionMessage],
        to_session: _ToSession,
    ) -> None:
        """Write each message as one line; if the server stops reading, end the session's read stream too,
        so a request does not wait for an answer that cannot come."""
        try:
            with from_session:
                async for message in from_session:
                    line = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await stdin.send(line.encode())
        except _PIPE_GONE:
            to_session.close()

    async def _read_stderr(self, stderr: ByteReceiveStream) -> None:
        keep = self._limits.stderr_tail_bytes
        with suppress(*_PIPE_GONE):
            async for chunk in stderr:
                self._stderr += chunk
                if len(self._stderr) > keep:
                    del self._stderr[:-keep]
                    self._stderr_cut = True

    async def _stop(self, process: Process) -> None:
        """Close stdin and give the server a moment to exit, then stop whatever is left of its process group."""
        with anyio.move_on_after(EXIT_GRACE_SECONDS):
            if process.stdin is not None:
                with suppress(*_PIPE_GONE):
                    await process.stdin.aclose()
            await process.wait()
        self.exit_status = process.returncode
        await terminate_posix_process_tree(process, TERMINATE_GRACE_SECONDS)
        with anyio.move_on_after(_REAP_SECONDS):
            await process.wait()
            # SIGKILL is sent, not awaited: a descendant may still be dying when the leader is reaped.
            while _group_alive(process.pid):
                await anyio.sleep(_GROUP_POLL_SECONDS)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the server's group is left; only ESRCH proves none is (EPERM does not)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a zombie, or a member run as another user: no proof that the group is gone
    return True
