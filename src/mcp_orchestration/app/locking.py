"""Tool locks: list what each server of a published config exposes, sign it as the profile's lock, check it later.

An operator command for the publisher's host or a CI job, where the servers can
run; never an MCP tool. Each stdio server is started the way a client would
start it, except that a launcher (npx, uvx, pipx run, docker run) is pointed at
the exact release its package manager resolves now, so the lock records which
release the definitions came from. A server gets the values of the ``${env:NAME}``
placeholders its config names, and nothing else of this environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mcp_orchestration.app.attribution import current_principal
from mcp_orchestration.app.operations import App, check_changelog, read_published
from mcp_orchestration.app.package_pins import resolve
from mcp_orchestration.app.probe import ServerListing, probe
from mcp_orchestration.config.launchers import package_ref, with_spec
from mcp_orchestration.config.lockdiff import Change, compare
from mcp_orchestration.config.model import McpConfig, StdioServer
from mcp_orchestration.config.placeholders import PLACEHOLDER, substitute_env
from mcp_orchestration.config.toollock import (
    ITEM_NOUN,
    KEY_FIELD,
    MAX_LOCK_BYTES,
    SURFACE_KINDS,
    ServerSurface,
    SurfaceKind,
    ToolLock,
    definition_digest,
)
from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.clock import format_time
from mcp_orchestration.core.errors import (
    IntegrityError,
    LimitError,
    LockMissingError,
    PackageResolveError,
    ServerProbeError,
    ServerProtocolError,
    ValidationError,
)
from mcp_orchestration.security.ids import shown
from mcp_orchestration.security.redaction import REDACTOR

DEFAULT_TIMEOUT = 60.0  # per server: npx and uvx may download the package first
REMOTE_NOT_LOCKED = "a remote server: lock starts local (stdio) servers only"


def lock(
    app: App, client: str, profile: str, *, timeout: float = DEFAULT_TIMEOUT, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """List every stdio server of ``client/profile``'s published config and sign what they expose as its lock.

    The key is checked first, so no server runs for a lock that could not be signed.
    """
    app.require_writable()
    return sign_lock(app, observe_lock(app, client, profile, timeout=timeout, environ=environ))


def observe_lock(
    app: App, client: str, profile: str, *, timeout: float = DEFAULT_TIMEOUT, environ: Mapping[str, str] | None = None
) -> ToolLock:
    """The lock ``client/profile``'s servers would get now, with no key (``lock --out`` in a sandbox or CI job).

    Every server must answer: a lock with a gap would approve less than the config runs.
    """
    entry, payload = read_published(app, client, profile)
    config = McpConfig.from_payload(payload, "The profile's config")
    environ = os.environ if environ is None else environ
    surfaces = {name: observe(name, server, environ, timeout) for name, server in _local_servers(config).items()}
    remote = {name: REMOTE_NOT_LOCKED for name in config.servers if name not in surfaces}
    tool_lock = ToolLock(client, profile, entry.artifact, format_time(datetime.now(UTC)), surfaces, remote)
    _check_storable(tool_lock.to_json())
    return tool_lock


def read_observed_lock(data: bytes, client: str, profile: str) -> ToolLock:
    """A lock ``lock --out`` wrote, for ``lock --from``: every pin checked, and for the profile named."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise ValidationError("The observed lock file is not JSON.") from None
    try:
        tool_lock = ToolLock.from_json(raw, "The observed lock file")
    except IntegrityError as exc:
        raise ValidationError(exc.message) from None
    if (tool_lock.client, tool_lock.profile) != (client, profile):
        raise ValidationError(f"The observed lock file is for {tool_lock.client}/{tool_lock.profile}.")
    return tool_lock


def sign_lock(app: App, tool_lock: ToolLock) -> dict[str, Any]:
    """Sign ``tool_lock`` as its profile's lock in a new index version; refused (``conflict``) if the profile
    publishes another artifact now. A lock that differs from the one in place only in its time changes nothing."""
    with app.telemetry.operation("lock") as event:
        key = app.require_writable()
        client, profile = tool_lock.client, tool_lock.profile
        entry, _ = read_published(app, client, profile)
        if entry.lock is not None and _same_approval(app.index.lock(entry.lock), tool_lock):
            tool_lock = app.index.lock(entry.lock)  # nothing changed but the time: the lock in place stands
        body = tool_lock.to_json()
        _check_storable(body)
        changelog = _changelog(tool_lock)
        check_changelog(changelog)
        version, lock_id, changed = app.index.record_lock(
            key,
            client,
            profile,
            artifact=tool_lock.artifact,
            lock=body,
            changelog=changelog,
            published_by=current_principal(),
        )
        event.set(keyid=key.keyid, index_version=version, servers=len(tool_lock.servers), changed=changed)
        return {
            "client": client,
            "profile": profile,
            "artifact": tool_lock.artifact,
            "lock": lock_id,
            "index_version": version,
            "changed": changed,
            "servers": {name: surface.summary() for name, surface in sorted(tool_lock.servers.items())},
            "not_locked": dict(sorted(tool_lock.not_locked.items())),
        }


def check(
    app: App, client: str, profile: str, *, timeout: float = DEFAULT_TIMEOUT, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """List every server again and compare with the signed lock: ``drift`` is true on any difference.

    A server that cannot be started or listed is a difference too (``unreachable``),
    and so is a lock taken for another version of the config (``stale``).
    """
    with app.telemetry.operation("check") as event:
        entry, payload = read_published(app, client, profile)
        if entry.lock is None:
            raise LockMissingError(f"{client}/{profile} has no tool lock to check against.")
        tool_lock = app.index.lock(entry.lock)
        config = McpConfig.from_payload(payload, "The profile's config")
        environ = os.environ if environ is None else environ
        changes: list[Change] = []
        local = _local_servers(config)
        for name, server in local.items():
            locked = tool_lock.servers.get(name)
            if locked is None:
                changes.append(Change(name, "server_added", f"server {name!r} is not in the lock"))
                continue
            try:
                observed = observe(name, server, environ, timeout)
            except (ServerProbeError, PackageResolveError) as exc:
                changes.append(_unreachable(name, exc))
                continue
            changes.extend(compare(name, locked, observed))
        for name in sorted(tool_lock.servers.keys() - local.keys()):
            changes.append(Change(name, "server_removed", f"server {name!r} is locked but no longer in the config"))
        stale = tool_lock.artifact != entry.artifact
        drift = stale or any(change.drift for change in changes)
        event.set(servers=len(local), changes=len(changes), drift=drift)
        return {
            "client": client,
            "profile": profile,
            "artifact": entry.artifact,
            "lock": entry.lock,
            "locked_at": tool_lock.locked_at,
            "lock_artifact": tool_lock.artifact,
            "stale": stale,
            "drift": drift,
            "servers_checked": len(local),
            "changes": [change.to_json() for change in changes],
        }


def observe(name: str, server: StdioServer, environ: Mapping[str, str], timeout: float) -> ServerSurface:
    """Start one server the way its config says (its launcher pointed at the exact release resolved now) and
    list what it exposes; errors name the server."""
    try:
        values = _named_values(server, environ)
        ref = package_ref(server)
        # A reference no registry release names (a URL, local code) runs as written, with no package recorded.
        resolved = resolve(ref, timeout=timeout) if ref is not None and ref.problem is None else None
        args = with_spec(server, ref, resolved.pin) if ref is not None and resolved is not None else server.args or ()
        command = substitute_env(server.command, values)
        env = {env_name: substitute_env(value, values) for env_name, value in (server.env or {}).items()}
        listing = probe(command, [substitute_env(arg, values) for arg in args], env, timeout=timeout)
        return surface_of(listing, None if resolved is None else resolved.to_json())
    except (ServerProbeError, PackageResolveError, ValidationError) as exc:
        raise _about(name, exc) from None


def surface_of(listing: ServerListing, package: Mapping[str, Any] | None) -> ServerSurface:
    """A listing as a lockable surface: each kind keyed by its name (a name listed twice is a protocol error)."""
    definitions = {kind: _keyed(listing, kind) for kind in SURFACE_KINDS}
    return ServerSurface(
        listing.protocol_version,
        listing.server_name,
        listing.server_version,
        package,
        **definitions,
        instructions=listing.instructions,
    )


def _keyed(listing: ServerListing, kind: SurfaceKind) -> dict[str, Mapping[str, Any]]:
    """Each definition by its name, every one of them hashable (else comparing it would fail, not report it)."""
    keyed: dict[str, Mapping[str, Any]] = {}
    for definition in getattr(listing, kind):
        name = definition.get(KEY_FIELD[kind])
        if not isinstance(name, str) or name in keyed:
            raise ServerProtocolError(f"The server lists a {ITEM_NOUN[kind]} without a name, or one name twice.")
        try:
            definition_digest(definition)
        except ValidationError:
            raise ServerProtocolError(
                f"The server defines a {ITEM_NOUN[kind]} with a value no lock can hold (an integer past 2**53)."
            ) from None
        keyed[name] = definition
    return keyed


def _local_servers(config: McpConfig) -> dict[str, StdioServer]:
    return {name: server for name, server in config.servers.items() if isinstance(server, StdioServer)}


def _named_values(server: StdioServer, environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the ``${env:NAME}`` placeholders ``server`` names, registered with the redactor: a server
    that echoes one back in a definition cannot get it into the lock or a report."""
    texts = [server.command, *(server.args or ()), *(server.env or {}).values()]
    found = {(kind, ref) for text in texts for kind, ref in PLACEHOLDER.findall(text)}
    inputs = sorted(ref for kind, ref in found if kind == "input")
    if inputs:
        raise ValidationError(
            f"The server asks for ${{input:...}} values ({', '.join(inputs)}), which only VS Code can prompt for.",
            "Publish it with ${env:NAME} placeholders and set those variables where lock and check run.",
        )
    missing = sorted(ref for _, ref in found if not environ.get(ref))
    if missing:
        raise ValidationError(
            f"The server's config names {', '.join(missing)}, not set (or empty) in this environment.",
            "Export the variables where lock and check run (a CI secret); their values are never stored.",
        )
    values = {ref: environ[ref] for _, ref in found}
    for value in values.values():
        REDACTOR.register_text(value)
    return values


def _same_approval(old: ToolLock, new: ToolLock) -> bool:
    return replace(old, locked_at=new.locked_at) == new


def _check_storable(body: dict[str, Any]) -> None:
    """A lock is bounded, and holds no value of this process's secrets (a server echoing its token)."""
    data = canonical_bytes(body)
    if len(data) > MAX_LOCK_BYTES:
        raise LimitError(f"The tool lock is {len(data)} bytes; the limit is {MAX_LOCK_BYTES}.")
    text = data.decode()
    if REDACTOR.redact(text) != text:
        raise ValidationError(
            "A server's definitions contain a secret value this process passed to it (or holds); nothing was locked.",
            "Fix the server so that it never puts a credential in what it tells the assistant.",
        )


def _changelog(tool_lock: ToolLock) -> str:
    counts = [
        f"{sum(len(s.definitions(kind)) for s in tool_lock.servers.values())} {kind.replace('_', ' ')}"
        for kind in SURFACE_KINDS
    ]
    return f"tool lock: {len(tool_lock.servers)} servers, " + ", ".join(counts)


def _unreachable(name: str, exc: ServerProbeError | PackageResolveError) -> Change:
    tail = exc.stderr_tail.splitlines()[-5:] if isinstance(exc, ServerProbeError) else []
    return Change(name, "unreachable", f"{exc.code}: {exc.message}", tuple(f"stderr: {line}" for line in tail))


def _about(
    name: str, exc: ServerProbeError | PackageResolveError | ValidationError
) -> ServerProbeError | PackageResolveError | ValidationError:
    """``exc`` again, its message naming the server it is about."""
    message = f"Server {shown(name)}: {exc.message}"
    if isinstance(exc, ServerProbeError):
        return type(exc)(message, exc.hint or None, stderr_tail=exc.stderr_tail)
    return type(exc)(message, exc.hint or None)
