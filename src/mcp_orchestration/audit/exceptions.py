"""The reviewed exceptions file (``audit-exceptions.toml``): which known vulnerability may ship, why, and until when.

An exception is a decision a person made and signed with their name, so every
field but the optional ``covers_fixable`` is required and nothing unknown is
accepted: a typo in a key must not turn into an exception nobody reviewed. An
entry that breaks a rule is reported as a problem and excepts nothing. Whether an entry is still in force
depends on the day, which the gate decides (``gate.py``).

    [[exceptions]]
    id = "GHSA-xxxx-xxxx-xxxx"            # the advisory id pip-audit reports, or an alias the report gives it
    ecosystem = "pypi"                    # "pypi", or "debian" for a Debian package of the image
    package = "starlette"                 # the distribution (PyPI: as PEP 503 compares names; Debian: the source
                                          # package, exactly as the tracker spells it)
    reason = "why it does not affect this product, or what mitigates it"
    expires = 2027-01-31                  # a TOML date, at most 90 days ahead
    approved_by = "name of the reviewer"
    covers_fixable = true                 # optional, Debian only (default false): see below

An entry covers its ``id`` alone: the ids it is matched against come from
the report (the reported id and the aliases pip-audit gives it), never from
the file, so one reviewed entry cannot stretch to another advisory. The
former ``aliases`` key did exactly that and is refused with that reason, so
an old file fails loudly instead of quietly changing what it excepts.

A Debian exception covers an issue while Debian has no fix for it in the
image's release (``unfixed``): what was reviewed is "nothing to install yet".
Once the release has a fix (``fixable``) the exception no longer applies and
the gate says so, unless it says ``covers_fixable = true``: a reviewer who
accepts not taking an available fix has to write that down.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from mcp_orchestration.audit.dpkg import PACKAGE_NAME
from mcp_orchestration.audit.errors import ExceptionsUnreadableError
from mcp_orchestration.audit.report import Vulnerability, canonical_name

_TEXT_KEYS = ("id", "package", "reason", "approved_by")
_KEYS = frozenset({*_TEXT_KEYS, "ecosystem", "expires", "covers_fixable"})
_RETIRED = {
    "aliases": "`aliases` is no longer accepted: an exception covers its `id` alone, matched against the id the "
    "report gives and that id's aliases in the report. Write one exception per advisory.",
}
# Which audit an entry belongs to: a PyPI project and a Debian source package may share a name and a CVE.
ECOSYSTEMS = ("pypi", "debian")


@dataclass(frozen=True)
class ExceptionEntry:
    """One accepted vulnerability of one package (an entry of the file, not a Python exception)."""

    id: str
    ecosystem: str
    package: str
    reason: str
    expires: date
    approved_by: str
    covers_fixable: bool  # Debian only: still in force once the release has a fix (debian_gate.py)

    def covers(self, ecosystem: str, package: str, vuln: Vulnerability) -> bool:
        """True if this entry names the ecosystem, the package, and the advisory by an id the report gives it."""
        return (
            self.ecosystem == ecosystem
            and _same_name(ecosystem, self.package, package)
            and self.id.upper() in vuln.ids()
        )

    def label(self) -> str:
        """How messages name the entry."""
        return f"exception {self.id} for {self.ecosystem} {self.package}"


def _same_name(ecosystem: str, mine: str, theirs: str) -> bool:
    """PyPI names compare as PEP 503 normalises them, Debian's exactly: ``python3.13`` and ``python3-13`` are two."""
    if ecosystem == "pypi":
        return canonical_name(mine) == canonical_name(theirs)
    return mine == theirs


@dataclass(frozen=True)
class ExceptionsFile:
    """The entries that are well formed, and one message per rule an entry (or the file) breaks."""

    entries: tuple[ExceptionEntry, ...]
    problems: tuple[str, ...]


def load_exceptions(path: Path) -> ExceptionsFile:
    """Read the file; only unreadable or non-TOML text is an error, broken entries are problems."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise ExceptionsUnreadableError(f"Cannot read the exceptions file {path}: {reason}.") from None
    except tomllib.TOMLDecodeError as error:
        raise ExceptionsUnreadableError(f"{path} is not valid TOML ({error}).") from None
    return parse_exceptions(document, str(path))


def parse_exceptions(document: dict[str, object], source: str) -> ExceptionsFile:
    """Check a parsed file: an ``exceptions`` array of tables and nothing else."""
    unknown = sorted(set(document) - {"exceptions"})
    if unknown:
        return ExceptionsFile((), (f"{source}: unknown top-level key(s) {', '.join(unknown)}.",))
    tables = document.get("exceptions")
    if not isinstance(tables, list):
        return ExceptionsFile((), (f"{source}: `exceptions` must be an array of tables (`exceptions = []` for none).",))
    entries: list[ExceptionEntry] = []
    problems: list[str] = []
    for number, table in enumerate(tables, start=1):
        entry, broken = _entry(table, f"{source}: exception {number}")
        problems.extend(broken)
        if entry is not None:
            entries.append(entry)
    return ExceptionsFile(tuple(entries), tuple(problems))


def _entry(table: object, where: str) -> tuple[ExceptionEntry | None, list[str]]:
    if not isinstance(table, dict):
        return None, [f"{where} is not a table."]
    if isinstance(table.get("id"), str):
        where = f"{where} ({table['id']})"
    problems = _problems(table, where)
    if problems:
        return None, problems
    return ExceptionEntry(
        id=table["id"],
        ecosystem=table["ecosystem"],
        package=table["package"],
        reason=table["reason"],
        expires=table["expires"],
        approved_by=table["approved_by"],
        covers_fixable=table.get("covers_fixable", False),
    ), []


def _problems(table: dict[str, object], where: str) -> list[str]:
    """One message per rule the entry breaks; none means every field has the type ``ExceptionEntry`` declares."""
    problems = [f"{where}: {_RETIRED.get(key, f'unknown key `{key}`.')}" for key in sorted(set(table) - _KEYS)]
    for key in _TEXT_KEYS:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: `{key}` is missing or empty.")
    ecosystem, package = table.get("ecosystem"), table.get("package")
    if ecosystem not in ECOSYSTEMS:
        problems.append(f"{where}: `ecosystem` must be one of {', '.join(map(repr, ECOSYSTEMS))}.")
    if ecosystem == "debian" and isinstance(package, str) and not PACKAGE_NAME.fullmatch(package):
        problems.append(
            f"{where}: `package` {package} is not a Debian package name "
            "(lower-case letters, digits, `+`, `-` and `.`: the source package as the tracker spells it)."
        )
    covers_fixable = table.get("covers_fixable", False)
    if not isinstance(covers_fixable, bool):
        problems.append(f"{where}: `covers_fixable` must be true or false.")
    elif covers_fixable and ecosystem != "debian":
        problems.append(f'{where}: `covers_fixable` is for Debian issues only (`ecosystem = "debian"`).')
    expires = table.get("expires")
    if isinstance(expires, datetime) or not isinstance(expires, date):  # tomllib's datetime is a date too
        problems.append(f"{where}: `expires` must be a TOML date such as 2027-01-31 (unquoted, no time).")
    return problems
