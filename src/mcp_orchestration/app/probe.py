"""Start one stdio MCP server, ask it what it exposes, and stop it: what the tool lock records.

``lock`` runs each stdio server of a published config on the operator's host
and records its tools, prompts and resource templates, so that a server whose
definitions change later (a "rug pull") is noticed. :func:`probe` does one
server: a real MCP session with the SDK's own client in ``mode="auto"`` (the
2026-07-28 ``server/discover`` first, the 2025-11-25 ``initialize`` handshake
if the server does not know it), over :mod:`.stdio_transport`, which bounds
everything the server can write.

A kind of definition is asked for only when the server's capabilities
declare it, and a server that answers "method not found" lists none. Each
definition is kept as the SDK's model of it dumps to JSON (by alias, without
nulls): everything the protocol defines, ``_meta`` and schemas included; a
field outside the protocol is dropped, as every SDK client drops it.

The server is untrusted code, so the whole session (start, handshake, every
page) runs under one deadline, every listing is bounded in pages and items,
and what it wrote on stderr is kept only as a short tail with credentials
masked (the values of the environment it was given too) and control
characters escaped. Whatever happens, its process group is stopped before
:func:`probe` returns, which takes at most a few seconds past the deadline.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pydantic
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import get_default_environment
from mcp.shared.exceptions import MCPError

from mcp_orchestration.app.stdio_transport import BoundedStdioTransport
from mcp_orchestration.config.strict import escape_hidden
from mcp_orchestration.core.errors import (
    ServerExitedError,
    ServerProbeError,
    ServerProtocolError,
    ServerTimeoutError,
)
from mcp_orchestration.core.version import package_version
from mcp_orchestration.security.ids import shown
from mcp_orchestration.security.redaction import REDACTOR, Redactor
from mcp_orchestration.security.secret_rules import scrub_text

MAX_ITEMS = 1000  # of each kind: tools, prompts, resource templates
MAX_PAGES = 100  # of each listing

Definition = dict[str, Any]
# The SDK raises RuntimeError for an answer it cannot take (a protocol version it does not speak, say).
_Failure = ServerProbeError | MCPError | pydantic.ValidationError | RuntimeError


@dataclass(frozen=True)
class ServerListing:
    """What one server exposed, each definition whole, as its JSON."""

    protocol_version: str
    server_name: str | None
    server_version: str | None
    instructions: str | None
    """What the server tells the assistant at the handshake (clients put it into the model's context)."""
    tools: tuple[Definition, ...]
    prompts: tuple[Definition, ...]
    resource_templates: tuple[Definition, ...]
    stray_lines: int
    """Lines on stdout that were not JSON-RPC (a banner, say), tolerated up to a small limit."""
    stderr_tail: str
    """The end of the server's stderr, with credentials masked and control characters escaped."""


@dataclass(frozen=True)
class _Kind:
    """One kind of definition a server lists, page by page."""

    noun: str
    declared: Callable[[types.ServerCapabilities], bool]
    request: Callable[[types.PaginatedRequestParams | None], types.ClientRequest]
    result: type[types.PaginatedResult]
    items: Callable[[Any], Sequence[pydantic.BaseModel]]


_TOOLS = _Kind(
    "tools",
    lambda capabilities: capabilities.tools is not None,
    lambda params: types.ListToolsRequest(params=params),
    types.ListToolsResult,
    lambda page: page.tools,
)
_PROMPTS = _Kind(
    "prompts",
    lambda capabilities: capabilities.prompts is not None,
    lambda params: types.ListPromptsRequest(params=params),
    types.ListPromptsResult,
    lambda page: page.prompts,
)
_RESOURCE_TEMPLATES = _Kind(
    "resource templates",
    lambda capabilities: capabilities.resources is not None,
    lambda params: types.ListResourceTemplatesRequest(params=params),
    types.ListResourceTemplatesResult,
    lambda page: page.resource_templates,
)


def probe(
    command: str, args: Sequence[str], env: Mapping[str, str], *, timeout: float, cwd: Path | None = None
) -> ServerListing:
    """Run ``command args`` as a stdio MCP server and list what it exposes, within ``timeout`` seconds.

    Synchronous: it runs an event loop of its own, so call it from a thread
    where none runs. The server's environment is the SDK's short list of safe
    variables (HOME, PATH, USER...) and ``env`` (its config's, placeholders
    already resolved); nothing else of this process's environment reaches it.

    Raises a :class:`ServerProbeError` (carrying the stderr tail): ``ServerStartError``,
    ``ServerTimeoutError``, ``ServerExitedError`` or ``ServerProtocolError``.
    """
    masking = _Masking(env.values())
    transport = BoundedStdioTransport([command, *args], get_default_environment() | dict(env), cwd=cwd)
    try:
        listing = anyio.run(functools.partial(_session, transport, masking, timeout))
    except ServerProbeError as error:
        error.stderr_tail = masking.stderr_tail(transport.stderr_tail())
        raise
    return replace(listing, stderr_tail=masking.stderr_tail(transport.stderr_tail()))


async def _session(transport: BoundedStdioTransport, masking: _Masking, timeout: float) -> ServerListing:
    """The listing (its stderr tail still to come), or the reason there is none; the server is stopped either way."""
    listing: ServerListing | None = None
    failure: _Failure | None = None
    with anyio.move_on_after(timeout):
        try:
            async with Client(transport, mode="auto", cache=None, client_info=_client_info()) as client:
                listing = await _list_everything(client, transport, masking)
        except* (ServerProbeError, MCPError, pydantic.ValidationError, RuntimeError) as group:  # wrapped by the SDK
            failure = _first(group)
    if listing is not None:
        return listing
    if isinstance(failure, ServerProbeError):
        raise failure
    if transport.violation is not None:
        raise ServerProtocolError(transport.violation)
    if failure is None:
        raise ServerTimeoutError(f"The server did not list what it exposes within {timeout:g} seconds.")
    raise _ended(failure, transport.exit_status, masking)


def _first(group: ExceptionGroup[_Failure]) -> _Failure:
    """The first failure in ``group``, however deeply the task groups nested it."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, ExceptionGroup) else first


def _client_info() -> types.Implementation:
    return types.Implementation(name="mcp-orchestration-lock", version=package_version())


async def _list_everything(client: Client, transport: BoundedStdioTransport, masking: _Masking) -> ServerListing:
    """Each kind the server's capabilities declare, listed whole; a kind it does not declare is empty."""
    capabilities = client.server_capabilities
    server = client.server_info

    async def listed(kind: _Kind) -> tuple[Definition, ...]:
        return await _list_all(client.session, kind, masking) if kind.declared(capabilities) else ()

    return ServerListing(
        protocol_version=client.protocol_version,
        server_name=server.name if server else None,
        server_version=server.version if server else None,
        instructions=client.instructions,
        tools=await listed(_TOOLS),
        prompts=await listed(_PROMPTS),
        resource_templates=await listed(_RESOURCE_TEMPLATES),
        stray_lines=transport.stray_lines,  # counted now: not what it writes while it is being stopped
        stderr_tail="",  # read once it has stopped
    )


async def _list_all(session: ClientSession, kind: _Kind, masking: _Masking) -> tuple[Definition, ...]:
    """Every page of one listing, bounded; a server that does not implement the method lists nothing.

    The raw result goes through the session's ``send_request`` rather than
    ``list_tools``: on 2026-07-28 the latter drops tools it finds malformed,
    and a lock records what the server sent.
    """
    definitions: list[Definition] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
        try:
            page = await session.send_request(kind.request(params), kind.result)
        except MCPError as exc:
            if exc.code == types.METHOD_NOT_FOUND and cursor is None:
                return ()
            if exc.code == types.CONNECTION_CLOSED:
                raise
            raise ServerProtocolError(
                f"The server answered the request for its {kind.noun} with an error: {masking.quoted(exc.message)}."
            ) from None
        definitions += (item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in kind.items(page))
        if len(definitions) > MAX_ITEMS:
            raise ServerProtocolError(f"The server lists more than {MAX_ITEMS} {kind.noun}.")
        cursor = page.next_cursor
        if cursor is None:
            return tuple(definitions)
    raise ServerProtocolError(f"The server's list of {kind.noun} goes on past {MAX_PAGES} pages.")


def _ended(
    failure: MCPError | pydantic.ValidationError | RuntimeError, exit_status: int | None, masking: _Masking
) -> ServerProbeError:
    """The error for a session that ended before the listing was complete."""
    if isinstance(failure, pydantic.ValidationError):
        return ServerProtocolError("The server answered with a message that is not valid MCP.")
    if not isinstance(failure, MCPError):
        return ServerProtocolError(f"The MCP client refused the server's answer: {masking.quoted(str(failure))}.")
    if failure.code != types.CONNECTION_CLOSED:
        return ServerProtocolError(f"The server refused the MCP handshake: {masking.quoted(failure.message)}.")
    if exit_status is None:
        return ServerProtocolError("The server closed its stdout before it answered (it was still running).")
    return ServerExitedError(f"The server exited {_exit_reason(exit_status)} before it answered.")


def _exit_reason(status: int) -> str:
    if status >= 0:
        return f"with status {status}"
    try:
        return f"on signal {signal.Signals(-status).name}"
    except ValueError:
        return f"on signal {-status}"


class _Masking:
    """Masks what a server writes before any of it is kept: known secrets, the values of its environment,
    anything credential-like, and control characters (which could rewrite a terminal line)."""

    def __init__(self, env_values: Iterable[str]) -> None:
        self._env = Redactor()
        for value in env_values:
            self._env.register_text(value)

    def masked(self, text: str) -> str:
        return scrub_text(REDACTOR.redact(self._env.redact(text)))

    def quoted(self, text: str) -> str:
        """Server text for a message: masked, shortened and escaped."""
        return shown(self.masked(text))

    def stderr_tail(self, raw: bytes) -> str:
        """The tail as text; line breaks are kept, every other control character is escaped."""
        text = self.masked(raw.decode("utf-8", errors="replace"))
        return "\n".join(escape_hidden(line) for line in text.split("\n"))
