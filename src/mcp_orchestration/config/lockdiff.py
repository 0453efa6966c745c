"""Drift: how what a server exposes now differs from what its tool lock approved.

Each difference is one :class:`Change` a person can read in a CI log: an item
added or removed, a description or the server's instructions changed (shown
as a word diff), a schema changed (shown as the JSON pointers that differ),
another release of the package, another server version. Texts from the server are escaped before they
are shown: a tool description can hold anything, terminal escapes included.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mcp_orchestration.config.strict import escape_hidden
from mcp_orchestration.config.toollock import ITEM_NOUN, SURFACE_KINDS, ServerSurface, definition_digest
from mcp_orchestration.security.secret_rules import scrub_text

ChangeKind = Literal[
    "added",
    "removed",
    "changed",
    "package",
    "server_version",
    "instructions",
    "protocol",
    "unreachable",
    "server_added",
    "server_removed",
]

TEXT_FIELDS = ("description", "title")  # shown as word diffs; every other field as the paths that differ
MAX_DETAILS = 20  # lines of detail per change: enough to read, bounded for a flood of changes
MAX_WORDS_SHOWN = 40


@dataclass(frozen=True)
class Change:
    """One difference on one server. ``drift`` is False for a change that alters nothing the assistant is told
    (the negotiated protocol version)."""

    server: str
    kind: ChangeKind
    summary: str
    details: tuple[str, ...] = ()
    item: str | None = None
    drift: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "kind": self.kind,
            "item": self.item,
            "summary": self.summary,
            "details": list(self.details),
            "drift": self.drift,
        }


def compare(server: str, locked: ServerSurface, observed: ServerSurface) -> list[Change]:
    """Every difference between the locked surface of ``server`` and the observed one (empty: identical)."""
    changes = list(_identity_changes(server, locked, observed))
    for kind in SURFACE_KINDS:
        before, after = locked.definitions(kind), observed.definitions(kind)
        noun = ITEM_NOUN[kind]
        for name in sorted(after.keys() - before.keys()):
            changes.append(Change(server, "added", f"{noun} {_quoted(name)} was added", _summary(after[name]), name))
        for name in sorted(before.keys() - after.keys()):
            changes.append(Change(server, "removed", f"{noun} {_quoted(name)} was removed", (), name))
        for name in sorted(before.keys() & after.keys()):
            if definition_digest(before[name]) != definition_digest(after[name]):
                details = tuple(definition_changes(before[name], after[name]))[:MAX_DETAILS]
                changes.append(Change(server, "changed", f"{noun} {_quoted(name)} changed", details, name))
    return changes


def _identity_changes(server: str, locked: ServerSurface, observed: ServerSurface) -> Iterator[Change]:
    if locked.package_pin != observed.package_pin:
        summary = f"package {_quoted(locked.package_pin)} is now {_quoted(observed.package_pin)}"
        yield Change(server, "package", summary)
    if (locked.server_name, locked.server_version) != (observed.server_name, observed.server_version):
        before = f"{locked.server_name} {locked.server_version}"
        after = f"{observed.server_name} {observed.server_version}"
        yield Change(server, "server_version", f"the server reports {_quoted(after)}, not {_quoted(before)}")
    if locked.instructions != observed.instructions:
        details = (f"instructions: {word_diff(locked.instructions or '', observed.instructions or '')}",)
        yield Change(server, "instructions", "the server's instructions changed", details)
    if locked.protocol_version != observed.protocol_version:
        summary = f"protocol version {locked.protocol_version!r} is now {_quoted(observed.protocol_version)}"
        yield Change(server, "protocol", summary, drift=False)


def definition_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[str]:
    """Readable lines for one changed definition: word diffs for texts, changed JSON pointers for the rest."""
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in TEXT_FIELDS and isinstance(old, str) and isinstance(new, str):
            yield f"{name}: {word_diff(old, new)}"
        else:
            yield from changed_paths(old, new, f"/{_escaped_key(name)}")


def word_diff(old: str, new: str) -> str:
    """The words that changed, as ``[-removed-]`` and ``{+added+}`` in their context (git's word-diff style)."""
    before, after = old.split(), new.split()
    parts: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag == "equal":
            words = before[i1:i2]
            parts.append(" ".join(words) if len(words) <= 6 else f"{' '.join(words[:3])} ... {' '.join(words[-3:])}")
            continue
        if i2 > i1:
            parts.append("[-" + _clipped(before[i1:i2]) + "-]")
        if j2 > j1:
            parts.append("{+" + _clipped(after[j1:j2]) + "+}")
    return _safe(" ".join(parts))


def changed_paths(old: Any, new: Any, path: str = "") -> Iterator[str]:
    """JSON pointers where ``old`` and ``new`` differ: ``+ /p`` added, ``- /p`` removed, ``~ /p`` changed."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            child = f"{path}/{_escaped_key(key)}"
            if key not in old:
                yield f"+ {child}"
            elif key not in new:
                yield f"- {child}"
            elif old[key] != new[key]:
                yield from changed_paths(old[key], new[key], child)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                yield from changed_paths(a, b, f"{path}/{index}")
    elif old is None:
        yield f"+ {path}"
    elif new is None:
        yield f"- {path}"
    else:
        yield f"~ {path}"


def _summary(definition: Mapping[str, Any]) -> tuple[str, ...]:
    description = definition.get("description")
    return (f"description: {_safe(description[:200])}",) if isinstance(description, str) else ()


def _clipped(words: list[str]) -> str:
    shown = words[:MAX_WORDS_SHOWN]
    return " ".join(shown) + (f" ... (+{len(words) - MAX_WORDS_SHOWN} words)" if len(words) > MAX_WORDS_SHOWN else "")


def _escaped_key(key: str) -> str:
    return _safe(key).replace("~", "~0").replace("/", "~1")


def _quoted(value: str | None) -> str:
    return "none" if value is None else repr(_safe(value))


def _safe(text: str) -> str:
    """Server text as shown: credential-like words masked, control and invisible characters escaped."""
    return escape_hidden(scrub_text(text))
