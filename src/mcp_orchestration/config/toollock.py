"""A tool lock: what each local server of one published config exposed when it was approved.

For each stdio server: the exact package release it ran (when a launcher such as
npx names one), what the server said it is and the instructions it gave the
assistant, and every tool, prompt and resource template as the server defined
it, each with the SHA-256 of its RFC 8785 form, so anyone can recompute a pin
from the definition alone. The lock is a CAS
object named by the profile's signed entry: it is signed with the index and
travels with it (mirror, backup, sync). ``config/lockdiff.py`` compares two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from mcp_orchestration.config.strict import escape_hidden
from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.errors import IntegrityError, InvalidIdError
from mcp_orchestration.security.ids import check_artifact_id, is_name_id, is_server_name
from mcp_orchestration.security.secret_rules import scrub_text

LOCK_TYPE = "tool_lock"
MAX_LOCK_BYTES = 4 << 20  # a lock of 100 servers of 100 tools with long schemas; the bound every reader applies

SurfaceKind = Literal["tools", "prompts", "resource_templates"]
SURFACE_KINDS: tuple[SurfaceKind, ...] = ("tools", "prompts", "resource_templates")
ITEM_NOUN: Mapping[SurfaceKind, str] = MappingProxyType(
    {"tools": "tool", "prompts": "prompt", "resource_templates": "resource template"}
)
KEY_FIELD: Mapping[SurfaceKind, str] = MappingProxyType(
    {"tools": "name", "prompts": "name", "resource_templates": "uriTemplate"}
)
"""The field that names an item of each kind, unique within a server's listing."""

Definitions = Mapping[str, Mapping[str, Any]]


def definition_digest(definition: Mapping[str, Any]) -> str:
    """The pin of one definition: SHA-256 of its RFC 8785 bytes, hex."""
    return hashlib.sha256(canonical_bytes(dict(definition))).hexdigest()


def _empty() -> Definitions:
    return MappingProxyType({})


@dataclass(frozen=True)
class ServerSurface:
    """What one server exposed: its identity and its definitions of each kind, by name."""

    protocol_version: str
    server_name: str | None = None
    server_version: str | None = None
    package: Mapping[str, Any] | None = None  # the resolved release (app/package_pins.py), None: no launcher
    tools: Definitions = field(default_factory=_empty)
    prompts: Definitions = field(default_factory=_empty)
    resource_templates: Definitions = field(default_factory=_empty)
    instructions: str | None = None  # the handshake's instructions, which clients hand to the model as they are

    def definitions(self, kind: SurfaceKind) -> Definitions:
        return getattr(self, kind)  # type: ignore[no-any-return]

    @property
    def package_pin(self) -> str | None:
        return None if self.package is None else str(self.package.get("pin"))

    def summary(self) -> dict[str, Any]:
        """What a person approving a lock reads first: the release, the server's identity, the pins by name.

        The texts the server (or its registry) chose are shown as ``lockdiff`` shows them, control and invisible
        characters escaped, since ``lock`` prints them to a terminal and ``get_config`` hands them to a model.
        """
        return {
            "package": _shown(self.package_pin),
            "server": {"name": _shown(self.server_name), "version": _shown(self.server_version)},
            "protocol_version": _shown(self.protocol_version),
        } | {
            kind: {name: definition_digest(body) for name, body in sorted(self.definitions(kind).items())}
            for kind in SURFACE_KINDS
        }

    def to_json(self) -> dict[str, Any]:
        surface: dict[str, Any] = {
            "protocol_version": self.protocol_version,
            "server_info": {"name": self.server_name, "version": self.server_version},
            "package": None if self.package is None else dict(self.package),
        }
        if self.instructions is not None:  # absent, not null: locks of servers without any keep their bytes
            surface["instructions"] = self.instructions
        for kind in SURFACE_KINDS:
            surface[kind] = {
                name: {"sha256": definition_digest(body), "definition": dict(body)}
                for name, body in sorted(self.definitions(kind).items())
            }
        return surface

    @classmethod
    def from_json(cls, raw: Any, what: str) -> ServerSurface:
        """Parse a stored surface; every pin must match its definition (the pins are what others compare)."""
        if not isinstance(raw, dict):
            raise IntegrityError(f"{what} is not an object.")
        info = raw.get("server_info")
        package = raw.get("package")
        protocol = raw.get("protocol_version")
        if not (isinstance(info, dict) and isinstance(protocol, str)):
            raise IntegrityError(f"{what} has a malformed server_info or protocol_version.")
        if package is not None and not (isinstance(package, dict) and isinstance(package.get("pin"), str)):
            raise IntegrityError(f"{what} has a malformed package.")
        name, version = info.get("name"), info.get("version")
        if not all(value is None or isinstance(value, str) for value in (name, version)):
            raise IntegrityError(f"{what} has a malformed server_info.")
        instructions = raw.get("instructions")
        if not (instructions is None or isinstance(instructions, str)):
            raise IntegrityError(f"{what} has malformed instructions.")
        kinds = {kind: _definitions_from_json(raw.get(kind), kind, what) for kind in SURFACE_KINDS}
        return cls(protocol, name, version, package, **kinds, instructions=instructions)


def _shown(text: str | None) -> str | None:
    """Server text as shown: credential-like words masked, control and invisible characters escaped."""
    return None if text is None else escape_hidden(scrub_text(text))


def _definitions_from_json(raw: Any, kind: SurfaceKind, what: str) -> Definitions:
    if not isinstance(raw, dict):
        raise IntegrityError(f"{what} has a malformed {kind!r} map.")
    parsed: dict[str, Mapping[str, Any]] = {}
    for name, pinned in raw.items():
        body = pinned.get("definition") if isinstance(pinned, dict) else None
        if not isinstance(body, dict) or body.get(KEY_FIELD[kind]) != name:
            raise IntegrityError(f"{what} has a malformed {ITEM_NOUN[kind]} definition.")
        if pinned.get("sha256") != definition_digest(body):
            raise IntegrityError(f"{what}: the pin of a {ITEM_NOUN[kind]} does not match its definition.")
        parsed[name] = MappingProxyType(body)
    return MappingProxyType(parsed)


@dataclass(frozen=True)
class ToolLock:
    """The approved surface of ``client/profile``'s config ``artifact``, taken at ``locked_at``.

    ``not_locked`` names the servers a lock cannot start (remote servers), with why.
    """

    client: str
    profile: str
    artifact: str
    locked_at: str
    servers: Mapping[str, ServerSurface]
    not_locked: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": LOCK_TYPE,
            "client": self.client,
            "profile": self.profile,
            "artifact": self.artifact,
            "locked_at": self.locked_at,
            "servers": {name: surface.to_json() for name, surface in sorted(self.servers.items())},
            "not_locked": dict(sorted(self.not_locked.items())),
        }

    @classmethod
    def from_json(cls, raw: Any, what: str) -> ToolLock:
        if not isinstance(raw, dict) or raw.get("_type") != LOCK_TYPE:
            raise IntegrityError(f"{what} is not a {LOCK_TYPE} object.")
        client, profile, servers = raw.get("client"), raw.get("profile"), raw.get("servers")
        not_locked, locked_at = raw.get("not_locked"), raw.get("locked_at")
        if not (is_name_id(client) and is_name_id(profile) and isinstance(locked_at, str)):
            raise IntegrityError(f"{what} names a malformed client, profile or time.")
        if not (isinstance(servers, dict) and isinstance(not_locked, dict)):
            raise IntegrityError(f"{what} has a malformed servers map.")
        names = [*servers, *not_locked]
        if not all(is_server_name(name) for name in names) or not all(isinstance(v, str) for v in not_locked.values()):
            raise IntegrityError(f"{what} has a malformed server name.")
        try:
            artifact = check_artifact_id(raw.get("artifact"))
        except InvalidIdError:
            raise IntegrityError(f"{what} refers to a malformed artifact id.") from None
        parsed = {name: ServerSurface.from_json(body, f"{what}, server {name!r}") for name, body in servers.items()}
        return cls(client, profile, artifact, locked_at, MappingProxyType(parsed), MappingProxyType(dict(not_locked)))
