"""Config facts (diffs, validation reports, catalog entries) as the typed results the use cases return.

The config layer sits below the result types, so it hands back its own
dataclasses; these are their one typed rendering, field for field, in the
order they go over the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_orchestration.app import results
    from mcp_orchestration.config.catalog import CatalogServer
    from mcp_orchestration.config.diff import ConfigDiff, NamesChange, ValueChange
    from mcp_orchestration.config.validation import ValidationReport


def diff_view(diff: ConfigDiff) -> results.ConfigDiff:
    """A diff's servers added, removed and modified, other top-level keys and its unified text."""
    return {
        "changed": diff.changed,
        "added": list(diff.added),
        "removed": list(diff.removed),
        "modified": [
            {
                "name": server.name,
                "command": _value_change(server.command),
                "args": _value_change(server.args),
                "url": _value_change(server.url),
                "env": _names_change(server.env),
                "headers": _names_change(server.headers),
                "other_fields": _names_change(server.other_fields),
            }
            for server in diff.modified
        ],
        "top_level": _names(diff.top_level),
        "unified": diff.unified,
    }


def _value_change(change: ValueChange | None) -> results.ValueChange | None:
    return None if change is None else {"old": change.old, "new": change.new}


def _names_change(change: NamesChange | None) -> results.NamesChange | None:
    return None if change is None else _names(change)


def _names(change: NamesChange) -> results.NamesChange:
    return {"added": list(change.added), "removed": list(change.removed), "changed": list(change.changed)}


def validation_view(client: str, profile: str, report: ValidationReport) -> results.ValidationResult:
    """A profile's validation report: its problems (the first ones) and how many more were left out."""
    return {
        "client": client,
        "profile": profile,
        "ok": report.ok,
        "problems": [{"code": p.code, "path": p.path, "message": p.message} for p in report.problems],
        "omitted": report.omitted,
        "warnings": [{"code": p.code, "path": p.path, "message": p.message} for p in report.warnings],
    }


def server_description(server: CatalogServer) -> results.ServerDescription:
    """A catalog entry: how it is launched and what it needs (names only, never values)."""
    return {
        "id": server.id,
        "name": server.name,
        "description": server.description,
        "transport": server.transport,
        "command": server.command,
        "args": [" ".join(item.parts) for item in server.args],
        "parameters": [
            {"name": p.name, "description": p.description, "required": p.required, "kind": p.kind, "items": p.items}
            for p in server.parameters.values()
        ],
        "required_env": list(server.required_env),
        "optional_env": list(server.optional_env),
        "homepage": server.homepage,
    }
