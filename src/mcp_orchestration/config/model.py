"""The MCP config model: one neutral server entry per transport, its fields defined once.

A config is ``{"mcpServers": {name: server, ...}, ...}``; a server is local
(:class:`StdioServer`: ``command``, ``args``, ``env``) or remote
(:class:`HttpServer`: ``url``, ``headers``). Validation, masking, diff, client
rendering and deploy all take their field names from here, so a new field or
transport is one change. :meth:`McpConfig.from_payload` checks the shape only
(what rendering needs); :func:`mcp_orchestration.config.validation.parse_config`
adds every publishing rule (limits, names, URLs, secrets).

Fields absent from a payload stay absent (``None``), so a server entry read and
rendered again (:func:`server_entry`) is the same JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from mcp_orchestration.core.errors import ValidationError
from mcp_orchestration.security.ids import SERVER_NAME_RULE, is_server_name, shown

SERVERS_KEY = "mcpServers"
NAMED_FIELDS = ("env", "headers")  # names mapped to values: where secrets live, so values are always masked
SHOWN_FIELDS = ("command", "args", "url")  # shown (masked where a secret rule flags them) in outputs and diffs


@dataclass(frozen=True)
class StdioServer:
    """A local server: the client starts ``command`` with ``args`` and ``env``."""

    transport: ClassVar[str] = "stdio"
    command: str
    args: tuple[str, ...] | None = None
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class HttpServer:
    """A remote server the client reaches over streamable HTTP at ``url``, sending ``headers``."""

    transport: ClassVar[str] = "http"
    url: str
    headers: Mapping[str, str] | None = None


Server = StdioServer | HttpServer
SERVER_TYPES: tuple[type[StdioServer], type[HttpServer]] = (StdioServer, HttpServer)

# Each transport's neutral fields; the first is required and tells the transports apart.
NEUTRAL_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {kind.transport: tuple(f.name for f in fields(kind)) for kind in SERVER_TYPES}
)
_TEXT, _LIST, _MAP = "a non-empty string", "a list of strings", "an object mapping names to strings"
_FIELD_KINDS = {"command": _TEXT, "args": _LIST, "env": _MAP, "url": _TEXT, "headers": _MAP}


def server_entry(server: Server) -> dict[str, Any]:
    """The neutral JSON entry of ``server``: only the fields it has."""
    entry: dict[str, Any] = {}
    for name in NEUTRAL_FIELDS[server.transport]:
        value = getattr(server, name)
        if isinstance(value, tuple):
            entry[name] = list(value)
        elif isinstance(value, Mapping):
            entry[name] = dict(value)
        elif value is not None:
            entry[name] = value
    return entry


@dataclass(frozen=True)
class McpConfig:
    """A config: servers by name (in the payload's order), and any other top-level keys as given."""

    servers: Mapping[str, Server]
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_payload(cls, payload: object, what: str = "The config") -> McpConfig:
        """The typed form of ``payload``; ``ValidationError`` if it does not have the neutral shape."""
        if not isinstance(payload, Mapping):
            raise ValidationError(f'{what} must be a JSON object such as {{"{SERVERS_KEY}": {{...}}}}.')
        servers = payload.get(SERVERS_KEY, {})
        if not isinstance(servers, Mapping):
            raise ValidationError(f"{what}: '{SERVERS_KEY}' is not an object of servers.")
        typed = {_server_name(name): _server(name, entry) for name, entry in servers.items()}
        extra = {key: value for key, value in payload.items() if key != SERVERS_KEY}
        return cls(MappingProxyType(typed), MappingProxyType(extra))


def _server_name(name: object) -> str:
    if not is_server_name(name):  # the rule validation applies, and with its code
        raise ValidationError(f"A server is named {shown(name)}; server names are {SERVER_NAME_RULE}.")
    return name


def _server(name: str, entry: object) -> Server:
    """Check one neutral server entry and build its typed form."""
    what = f"Server {name!r}"
    if not isinstance(entry, Mapping):
        raise ValidationError(f"{what} must be an object such as {{'command': ..., 'args': [...]}}.")
    kinds = [kind for kind in SERVER_TYPES if NEUTRAL_FIELDS[kind.transport][0] in entry]
    if len(kinds) != 1:
        raise ValidationError(f"{what} needs exactly one of 'command' (a local server) or 'url' (a remote one).")
    kind = kinds[0]
    values: dict[str, Any] = {}
    for field_name, value in entry.items():
        if field_name not in NEUTRAL_FIELDS[kind.transport]:
            raise ValidationError(
                f"{what} has the field {shown(field_name)}, which a {kind.transport} server cannot carry."
            )
        typed = _typed(_FIELD_KINDS[field_name], value)
        if typed is None:
            raise ValidationError(f"{what}: {field_name!r} must be {_FIELD_KINDS[field_name]}.")
        values[field_name] = typed
    return kind(**values)


def _typed(kind: str, value: object) -> Any:
    """``value`` as the field's type if it is of ``kind`` (copied, immutable), else ``None``."""
    if kind == _TEXT:
        return value if isinstance(value, str) and value else None
    if kind == _LIST:
        return tuple(value) if isinstance(value, list) and all(isinstance(item, str) for item in value) else None
    if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return MappingProxyType(dict(value))
    return None
