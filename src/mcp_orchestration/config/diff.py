"""What changed between two configs, in a form that is safe to show.

Changes are detected on the real values, so a rotated token still counts as a
change, but they are shown only through :func:`mask_secrets`: ``env`` and
``headers`` appear as names added, removed or changed, never with their values,
and the unified text diff is taken between the masked, key-sorted JSON texts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_orchestration.config.masking import mask_secrets
from mcp_orchestration.config.model import NAMED_FIELDS, SERVERS_KEY, SHOWN_FIELDS


@dataclass(frozen=True)
class ValueChange:
    """A field's masked value before and after (None where absent)."""

    old: Any
    new: Any


@dataclass(frozen=True)
class NamesChange:
    """Keys of an object that were added, removed, or kept with a different value (values not shown)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerChange:
    """One server present in both configs whose definition changed; None marks an unchanged field."""

    name: str
    command: ValueChange | None = None
    args: ValueChange | None = None
    url: ValueChange | None = None
    env: NamesChange | None = None
    headers: NamesChange | None = None
    other_fields: NamesChange | None = None


@dataclass(frozen=True)
class ConfigDiff:
    """Servers added, removed and modified, other top-level keys, and a unified text diff of the masked JSON."""

    changed: bool
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[ServerChange, ...]
    top_level: NamesChange
    unified: str


def diff_configs(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> ConfigDiff:
    """Compare ``old`` (None when nothing was published yet) with ``new``."""
    masked_old = mask_secrets(old) if old is not None else None
    masked_new = mask_secrets(new)
    old_servers, new_servers = _servers(old), _servers(new)
    shown_old, shown_new = _servers(masked_old), _servers(masked_new)
    modified = tuple(
        _server_change(name, old_servers[name], new_servers[name], shown_old[name], shown_new[name])
        for name in sorted(old_servers.keys() & new_servers.keys())
        if not _same(old_servers[name], new_servers[name])
    )
    old_rest = {k: v for k, v in (old or {}).items() if k != SERVERS_KEY}
    new_rest = {k: v for k, v in new.items() if k != SERVERS_KEY}
    return ConfigDiff(
        changed=old is None or not _same(old, new),
        added=tuple(sorted(new_servers.keys() - old_servers.keys())),
        removed=tuple(sorted(old_servers.keys() - new_servers.keys())),
        modified=modified,
        top_level=_names_change(old_rest, new_rest) or NamesChange(),
        unified=_unified(masked_old, masked_new),
    )


def _servers(config: Mapping[str, Any] | None) -> dict[str, Any]:
    servers = config.get(SERVERS_KEY) if config is not None else None
    return dict(servers) if isinstance(servers, Mapping) else {}


def _server_change(name: str, old: Any, new: Any, shown_old: Any, shown_new: Any) -> ServerChange:
    """Field-level changes; a server that is not an object (invalid) is only named."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return ServerChange(name)
    values = {
        field: ValueChange(shown_old.get(field), shown_new.get(field))
        for field in SHOWN_FIELDS
        if not _same(old.get(field), new.get(field))
    }
    named = {field: _names_change(old.get(field), new.get(field)) for field in NAMED_FIELDS}
    known = SHOWN_FIELDS + NAMED_FIELDS
    other = _names_change(
        {k: v for k, v in old.items() if k not in known}, {k: v for k, v in new.items() if k not in known}
    )
    return ServerChange(
        name,
        command=values.get("command"),
        args=values.get("args"),
        url=values.get("url"),
        env=named["env"],
        headers=named["headers"],
        other_fields=other,
    )


def _names_change(old: Any, new: Any) -> NamesChange | None:
    """Which keys changed, or None if nothing did; a value that is not an object counts as empty."""
    if _same(old, new):
        return None
    before = old if isinstance(old, Mapping) else {}
    after = new if isinstance(new, Mapping) else {}
    return NamesChange(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(k for k in before.keys() & after.keys() if not _same(before[k], after[k]))),
    )


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (``true`` is not ``1``), whatever the key order."""
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_as_dict)


def _as_dict(value: object) -> dict[str, Any]:
    """Let ``json`` encode any Mapping (the signatures promise Mappings, ``json`` knows only dicts)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _unified(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    import difflib  # on first use: the server starts without it

    before = _pretty(old).splitlines() if old is not None else []
    after = _pretty(new).splitlines()
    return "\n".join(difflib.unified_diff(before, after, fromfile="old", tofile="new", lineterm=""))


def _pretty(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, indent=2, ensure_ascii=False)
