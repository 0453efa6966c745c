"""``deploy``: write a profile's verified servers into a client's config file on this machine.

An operator action run on the host, never an MCP tool. Nothing is read from the
store before its key history is checked against the root this host pinned and
its signed index chain verifies; the index must also descend from the last one
this host accepted (:mod:`mcp_orchestration.app.anchor`), which catches a store
rewound or replaced as a whole, its own rollback guard included.

Merge rule: the profile's servers, in the client's shape, are set under the
client's config key, each replacing a server of the same name whole; servers
with other names and every other top-level key stay as they are, in their
order (deploy never removes a server). Values are written as published, so
``${env:NAME}`` placeholders stay placeholders for the clients that expand
them. A client that expands none (Claude Desktop) would start the server with
the literal text as the value, so deploy refuses, unless the operator asks
(``resolve_env``) to write the values of those variables from deploy's own
environment: the file then holds them, so its mode is narrowed to at most
0600, and the values are registered with the redactor. The old bytes go to a
timestamped backup beside the file, ``<file>.bak-YYYYmmddTHHMMSSZ`` (or, when
a deploy in the same second took that name, the first free ``...Z-1``,
``...Z-2``, created exclusively so no backup is ever overwritten); the file is
then replaced atomically with its permission bits kept (0600 for a new file)
except set-id, sticky and world-write, which neither the new file nor the
backup ever gets. A file already equal as JSON is not rewritten.

The file is read as a regular file within the payload limit (a linked file is
resolved first and written where it lives); a FIFO or a device there is refused
before anything is written.

The diff is of the JSON texts with ``env`` and ``headers`` values and
secret-looking strings masked, so showing it never prints a credential.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from mcp_orchestration.app.policy_rules import require_current_lock, require_pinned
from mcp_orchestration.config.clients import ClientSpec, get_client
from mcp_orchestration.config.masking import mask_secrets
from mcp_orchestration.config.model import McpConfig
from mcp_orchestration.config.payload import MAX_PAYLOAD_BYTES, parse_payload
from mcp_orchestration.config.placeholders import PLACEHOLDER, substitute_env
from mcp_orchestration.core.errors import ConflictError, UsageError, ValidationError, unreadable_file
from mcp_orchestration.core.fsutil import UnsafeFileError, atomic_write, create_exclusive, ensure_dir, read_regular_stat
from mcp_orchestration.security.redaction import REDACTOR

if TYPE_CHECKING:
    from mcp_orchestration.app.operations import App

NEW_FILE_MODE = 0o600
MAX_BACKUPS_PER_SECOND = 1000
SECRET_FILE_MODE = 0o600  # the widest mode for a file that holds resolved values
_PLATFORMS = {"linux": "linux", "darwin": "macos", "win32": "windows"}


@dataclass(frozen=True)
class DeployResult:
    """What a deploy wrote (or, on a dry run, would write)."""

    client: str
    profile: str
    path: str
    artifact: str
    index_version: int
    servers: tuple[str, ...]
    resolved_env: tuple[str, ...]  # names of the variables whose values were written (never the values)
    created: bool
    changed: bool
    dry_run: bool
    backup: str | None
    diff: str


@dataclass(frozen=True)
class VerifiedConfig:
    """A profile's payload read under one fully verified index, and that index's identity."""

    index_version: int
    keyid: str
    root_fingerprint: str
    artifact: str
    payload: Any


def deploy(
    app: App,
    client: str,
    profile: str,
    *,
    config_path: Path | None = None,
    dry_run: bool = False,
    resolve_env: bool = False,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> DeployResult:
    """Merge ``client/profile``'s servers into the client's config file (``config_path`` or its default place).

    ``environ`` (default ``os.environ``) is where ``resolve_env`` reads values and where the client's
    default config path is expanded (``%APPDATA%``).
    A dry run reads and checks everything but writes nothing to the client's file.
    """
    spec = get_client(client)
    environ = os.environ if environ is None else environ
    target = config_path or default_config_path(spec, environ)
    with app.telemetry.operation("deploy") as event:
        event.set(dry_run=dry_run)
        source = _verified_source(app, client, profile)
        event.set(keyid=source.keyid, index_version=source.index_version)
        result = apply(
            spec, profile, source, target, dry_run=dry_run, resolve_env=resolve_env, environ=environ, now=now
        )
        event.set(changed=result.changed)
        return result


def apply(
    spec: ClientSpec,
    profile: str,
    source: VerifiedConfig,
    config_path: Path,
    *,
    dry_run: bool = False,
    resolve_env: bool = False,
    environ: Mapping[str, str],
    now: datetime | None = None,
) -> DeployResult:
    """Merge a verified profile's servers into the client's config file at ``config_path``: what ``deploy``
    and ``sync`` write, by the same rules."""
    target = config_path.resolve()  # a linked file is written where it lives
    when = (now or datetime.now(UTC)).astimezone(UTC)
    servers, values = _expand_placeholders(spec, _rendered_servers(spec, source.payload), resolve_env, environ)
    old, mode = _read_existing(target)
    if values:
        mode &= SECRET_FILE_MODE
    current = parse_payload(old, str(target)) if old is not None else {}
    merged = _merge(current, spec.config_key, servers, target)
    changed = old is None or merged != current
    backup = None
    if not dry_run:
        if changed:
            backup = _replace(target, old, mode, merged, when)
        elif values:
            os.chmod(target, mode)  # unchanged, but it holds the values: narrowed all the same
    return DeployResult(
        client=spec.id,
        profile=profile,
        path=str(target),
        artifact=source.artifact,
        index_version=source.index_version,
        servers=tuple(servers),
        resolved_env=tuple(sorted(values)),
        created=old is None,
        changed=changed,
        dry_run=dry_run,
        backup=str(backup) if backup is not None else None,
        diff=_diff(
            target,
            current if old is not None else None,
            merged,
            spec.config_key,
            deployed=servers,
            values=values,
        ),
    )


def default_config_path(spec: ClientSpec, environ: Mapping[str, str]) -> Path:
    """The client's config file on this platform."""
    platform = _PLATFORMS.get(sys.platform)
    if platform is None:
        raise UsageError(
            f"{spec.name} has no known config file location on {sys.platform}.", hint="Pass --config-path."
        )
    return Path(spec.config_path(platform, environ, Path.home(), list_dir=_entry_names))


def _entry_names(directory: PurePath) -> list[str]:
    """The names in ``directory``; none if it is missing or unreadable (then there is no Store install to find)."""
    try:
        return os.listdir(directory)
    except OSError:
        return []


def deployable(
    app: App, spec: ClientSpec, profile: str, *, resolve_env: bool, environ: Mapping[str, str]
) -> tuple[VerifiedConfig, dict[str, Any], dict[str, str]]:
    """The verified source of ``spec``'s ``profile``, its servers exactly as deploy writes them, and the
    values it resolved (see :func:`_expand_placeholders`). Every writer of a client's servers starts here."""
    source = _verified_source(app, spec.id, profile)
    servers, values = _expand_placeholders(spec, _rendered_servers(spec, source.payload), resolve_env, environ)
    return source, servers, values


def _verified_source(app: App, client: str, profile: str) -> VerifiedConfig:
    """Verify the key history and index chain, then read the profile's artifact under that same head (and its
    tool lock, when the store's policy requires one; and its launchers pinned, when it requires that)."""
    report = app.index.verify()
    entry, payload = app.index.get_artifact(client, profile)
    policy = app.index.store_policy()
    require_current_lock(policy, entry, app.index.lock)
    require_pinned(policy, McpConfig.from_payload(payload, "The profile's config"), refused="nothing was written")
    history, head = app.index.snapshot()
    if head.head_id != report.head_id:
        raise ConflictError("The store's index changed while deploy read it (a publish ran).", hint="Run it again.")
    return VerifiedConfig(report.index_version, report.keyid, history.root_fingerprint, entry.artifact, payload)


def _rendered_servers(spec: ClientSpec, payload: Any) -> dict[str, Any]:
    """The profile's servers, by name, in the client's own entry shape."""
    rendered: dict[str, Any] = spec.render(McpConfig.from_payload(payload, "The profile's config"))[spec.config_key]
    return rendered


def _expand_placeholders(
    spec: ClientSpec, servers: dict[str, Any], resolve_env: bool, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``servers`` with each ``${env:NAME}`` the client cannot expand replaced by its value; and the values used.

    Refuses (writing nothing) a placeholder the client cannot expand unless it
    is an environment variable, ``resolve_env`` is set and the variable has a
    value; and a placeholder in a name, where no client expands one.
    """
    if any(PLACEHOLDER.search(key) for key in _keys(servers)):
        raise ValidationError(
            "A server's field name holds a placeholder; placeholders belong in values. Nothing was written."
        )
    found = {
        (kind, name)
        for text in _strings(servers)
        for kind, name in PLACEHOLDER.findall(text)
        if kind not in spec.placeholders
    }
    inputs = sorted(name for kind, name in found if kind == "input")
    if inputs:
        raise ValidationError(
            f"{spec.name} cannot ask for ${{input:...}} values ({', '.join(inputs)}); nothing was written.",
            hint="Deploy this profile to VS Code, or publish it with ${env:NAME} placeholders.",
        )
    names = sorted(name for _, name in found)
    if not names:
        return servers, {}
    if not resolve_env:
        raise ValidationError(
            f"{spec.name} does not expand ${{env:NAME}} placeholders: it would start the servers with the literal "
            f"text as the value of {', '.join(names)}; nothing was written.",
            hint="Set those variables and run deploy with --resolve-env to write their values into the file "
            f"(its mode becomes at most {SECRET_FILE_MODE:04o}), or deploy to a client that expands placeholders.",
        )
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise ValidationError(
            f"--resolve-env: {', '.join(missing)} not set (or empty) in this environment; nothing was written.",
            hint="Export the variables in the shell that runs deploy.",
        )
    values = {name: environ[name] for name in names}
    for value in values.values():  # a backstop: the diff shows placeholders, never these values
        REDACTOR.register_text(value)

    return _map_strings(servers, lambda text: substitute_env(text, values)), values


def _strings(value: Any) -> Iterator[str]:
    """Every string value in a JSON value (not its keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _keys(value: Any) -> Iterator[str]:
    """Every key of every object in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """A copy of a JSON value with ``change`` applied to every string value (keys kept)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    return value


def _read_existing(path: Path) -> tuple[bytes | None, int]:
    """The file's bytes and the mode to keep, both from one descriptor of the regular file at ``path``.

    ``path`` is already resolved, so a link here appeared since: refused, as
    are a FIFO or device (never waited on or read without end) and a file over
    the payload limit. The mode kept drops set-id, sticky and world-write bits.
    """
    try:
        data, info = read_regular_stat(path, MAX_PAYLOAD_BYTES)
    except FileNotFoundError:
        return None, NEW_FILE_MODE
    except UnsafeFileError as exc:
        hint = "Nothing was written. Pass --config-path naming the client's regular JSON config file."
        raise unreadable_file(f"The config file {path}", exc, kind=ValidationError, hint=hint) from None
    return data, kept_mode(info.st_mode)


def kept_mode(mode: int) -> int:
    """The permission bits deploy carries over to the new file and the backup: never set-id, sticky or o+w."""
    return stat.S_IMODE(mode) & 0o777 & ~stat.S_IWOTH


def _merge(document: dict[str, Any], config_key: str, servers: dict[str, Any], path: Path) -> dict[str, Any]:
    """``document`` with ``servers`` set under ``config_key``; everything else kept, in its order."""
    existing = document.get(config_key, {})
    if not isinstance(existing, dict):
        raise ValidationError(
            f"{path}: {config_key!r} is not an object of servers, so deploy cannot merge into it; nothing was written."
        )
    return {**document, config_key: {**existing, **servers}}


def _replace(target: Path, old: bytes | None, mode: int, merged: dict[str, Any], when: datetime) -> Path | None:
    """Back up ``old`` (if the file exists) next to ``target``, then replace ``target``; return the backup's path."""
    backup = None
    if old is not None:
        backup = _create_backup(target, old, mode, when)
    else:
        ensure_dir(target.parent)
    atomic_write(target, _text(merged).encode(), mode)
    os.chmod(target, mode)
    return backup


def _create_backup(target: Path, data: bytes, mode: int, when: datetime) -> Path:
    """A new backup of ``data`` beside ``target``: ``.bak-<time>``, else the first free ``.bak-<time>-N``."""
    stem = f"{target.name}.bak-{when:%Y%m%dT%H%M%SZ}"
    for number in range(MAX_BACKUPS_PER_SECOND):
        backup = target.with_name(f"{stem}-{number}" if number else stem)
        try:
            create_exclusive(backup, data, mode)
        except FileExistsError:
            continue
        os.chmod(backup, mode)  # the umask may have narrowed the mode it was created with
        return backup
    raise ConflictError(
        f"{MAX_BACKUPS_PER_SECOND} backups of {target} already exist for {when:%Y-%m-%dT%H:%M:%SZ}.",
        hint="Run deploy again in a second.",
    )


def _text(document: dict[str, Any]) -> str:
    """A config file's text as deploy writes it."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _diff(
    path: Path,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    config_key: str,
    *,
    deployed: Mapping[str, Any],
    values: Mapping[str, str],
) -> str:
    """The unified diff of the file's text before and after, masked; in the ``deployed`` servers, each
    resolved value is shown as its placeholder (before, too: an earlier deploy wrote the same values)."""

    def shown(document: dict[str, Any]) -> list[str]:
        return _text(_masked(_unresolved(document, config_key, deployed, values), config_key)).splitlines()

    before = shown(old) if old is not None else []
    lines = difflib.unified_diff(before, shown(new), f"{path} (current)", f"{path} (deployed)", lineterm="")
    return "\n".join(lines)


def _unresolved(
    document: dict[str, Any], config_key: str, deployed: Mapping[str, Any], values: Mapping[str, str]
) -> dict[str, Any]:
    """``document`` with each resolved value in the ``deployed`` servers written as its ``${env:NAME}`` again."""
    servers = document.get(config_key)
    if not values or not isinstance(servers, dict):
        return document
    by_length = sorted(values.items(), key=lambda item: len(item[1]), reverse=True)
    pattern = re.compile("|".join(re.escape(value) for _, value in by_length))
    names = {value: name for name, value in by_length}

    def placeholders(text: str) -> str:
        return pattern.sub(lambda match: f"${{env:{names[match[0]]}}}", text)

    unresolved = {
        name: _map_strings(entry, placeholders) if name in deployed else entry for name, entry in servers.items()
    }
    return {**document, config_key: unresolved}


def _masked(document: dict[str, Any], config_key: str) -> dict[str, Any]:
    """``document`` with its servers masked as a config's are, and secret-looking values elsewhere."""
    shown = mask_secrets({key: value for key, value in document.items() if key != config_key})
    if config_key in document:
        shown[config_key] = mask_secrets({"mcpServers": document[config_key]})["mcpServers"]
    return {key: shown[key] for key in document}
