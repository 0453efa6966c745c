"""pip-audit's JSON report (``pip-audit -f json``) as typed values.

The format is pip-audit's ``pip_audit/_format/json.py``: ``{"dependencies":
[...], "fixes": [...]}``, where each dependency is either audited (``name``,
``version``, ``vulns``) or skipped (``name``, ``skip_reason``: pip-audit could
not look it up). Everything the gate relies on is checked here, so a report in
another shape stops the gate instead of passing as "nothing found"; keys the
gate does not use (``description``, ``fixes``) are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mcp_orchestration.audit.errors import ReportMalformedError, ReportUnreadableError


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares it, so `Foo_Bar` in one file matches `foo-bar` in another."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Vulnerability:
    """One advisory against an audited package: its id, the other ids it is known by, the versions that fix it."""

    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def ids(self) -> frozenset[str]:
        """Every id of the advisory, upper-cased: exceptions may name any of them."""
        return frozenset(name.upper() for name in (self.id, *self.aliases))


@dataclass(frozen=True)
class AuditedDependency:
    """A package pip-audit looked up; ``vulns`` is empty when it has no known vulnerability."""

    name: str
    version: str
    vulns: tuple[Vulnerability, ...]


@dataclass(frozen=True)
class SkippedDependency:
    """A package pip-audit could not look up (no advisory source, unknown to PyPI, invalid version, ...)."""

    name: str
    skip_reason: str


Dependency = AuditedDependency | SkippedDependency


@dataclass(frozen=True)
class Report:
    """One pip-audit run: where it was read from and every package it lists."""

    source: str
    dependencies: tuple[Dependency, ...]


def load_report(path: Path) -> Report:
    """Read and check a report file; any failure is a typed error, never a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise ReportUnreadableError(f"Cannot read the pip-audit report {path}: {reason}.") from None
    return parse_report(text, str(path))


def parse_report(text: str, source: str) -> Report:
    """Parse the text of a report; ``source`` names it in messages."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ReportMalformedError(f"{source} is not JSON ({error}).") from None
    if not isinstance(document, dict) or not isinstance(document.get("dependencies"), list):
        raise ReportMalformedError(f"{source} has no `dependencies` list.")
    entries: list[object] = document["dependencies"]
    return Report(source, tuple(_dependency(entry, f"{source}: dependency {i + 1}") for i, entry in enumerate(entries)))


def _dependency(entry: object, where: str) -> Dependency:
    if not isinstance(entry, dict):
        raise ReportMalformedError(f"{where} is not an object.")
    name = _text(entry, "name", where)
    where = f"{where} ({name})"
    if "skip_reason" in entry:
        if "vulns" in entry:
            raise ReportMalformedError(f"{where} is both skipped and audited.")
        return SkippedDependency(name, _text(entry, "skip_reason", where))
    vulns = entry.get("vulns")
    if not isinstance(vulns, list):
        raise ReportMalformedError(f"{where} has neither `vulns` nor `skip_reason`.")
    return AuditedDependency(name, _text(entry, "version", where), tuple(_vulnerability(v, where) for v in vulns))


def _vulnerability(entry: object, where: str) -> Vulnerability:
    if not isinstance(entry, dict):
        raise ReportMalformedError(f"{where}: a vulnerability is not an object.")
    vuln_id = _text(entry, "id", where)
    where = f"{where}: {vuln_id}"
    # pip-audit leaves `aliases` out with `--aliases off`: then only the id can match an exception.
    return Vulnerability(vuln_id, _texts(entry, "aliases", where, default=()), _texts(entry, "fix_versions", where))


def _text(entry: dict[str, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ReportMalformedError(f"{where}: `{key}` is missing or not a non-empty string.")
    return value


def _texts(entry: dict[str, object], key: str, where: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    value = entry.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ReportMalformedError(f"{where}: `{key}` is missing or not a list of strings.")
    return tuple(value)
