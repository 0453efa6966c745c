"""The audit policy: whether what pip-audit reported may ship (and, through ``debian_gate``, the Debian packages).

pip-audit exits 0 when it could look nothing up (every package skipped), and
lists only what it found where it was pointed, so neither its exit status nor
its report alone is a verdict. The rules, each failure a finding with a stable
code:

- ``vulnerable``: a known vulnerability that no exception in force covers.
- ``not_audited``: a package pip-audit skipped, for whatever reason.
- ``nothing_audited``: a report that lists no package.
- ``coverage``: a report that misses a package it must list: every pin of the
  lock, and for the report of a venv (``--venv``) every first-party
  distribution too. A partial report (wrong ``-r`` or ``--path``, unreadable
  ``*.dist-info``) would otherwise pass on what it did see.
- ``lock_mismatch``: a report that lists a package at another version than
  the lock pins, or one that is neither locked nor (in a venv) first-party:
  what was audited is not what ships.
- ``exception_invalid``: an exceptions-file entry that breaks a rule, or
  expires more than 90 days ahead.
- ``exception_expired``: an exception whose date has passed.

An exception is in force up to its ``expires`` date included; one that is
expired or invalid covers nothing. Packages named as first-party (this
project, which is not on PyPI) may be skipped. pip-audit's JSON gives no
version for a skipped package, so only its name is compared with the lock.

The image's Debian packages are judged by ``debian_gate.py`` (codes
``fixable`` and ``unfixed``) with the same exceptions, in the same verdict.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from mcp_orchestration.audit.debian_gate import DebianAudit
from mcp_orchestration.audit.debian_gate import judge as judge_debian
from mcp_orchestration.audit.exceptions import ExceptionEntry, ExceptionsFile
from mcp_orchestration.audit.lock import Lock
from mcp_orchestration.audit.outcome import Finding, ReportResult, Row, Verdict, some

__all__ = ["Audit", "DebianAudit", "Finding", "ReportResult", "Row", "Verdict", "evaluate"]
from mcp_orchestration.audit.report import AuditedDependency, Dependency, Report, SkippedDependency, canonical_name

MAX_EXCEPTION_DAYS = 90

Kind = Literal["lock", "venv"]


@dataclass(frozen=True)
class Audit:
    """A report and what pip-audit was run on: the lock itself (``-r``), or a venv installed from it (``--path``).

    The gate cannot tell from the JSON which one it is, and they must list
    different sets: only the venv holds this project's own distribution.
    """

    report: Report
    kind: Kind


def evaluate(
    audits: Sequence[Audit],
    exceptions: ExceptionsFile,
    today: date,
    lock: Lock | None,
    first_party: Collection[str] = (),
    *,
    debian: DebianAudit | None = None,
) -> Verdict:
    """Judge the reports against the lock they must cover, and the image's Debian packages against
    Debian's tracker (``debian_gate.py``), with the exceptions in force on ``today``.

    The exceptions file is one for both, so an exception is stale only if neither matched it.
    """
    findings = [Finding("exception_invalid", problem) for problem in exceptions.problems]
    in_force = _in_force(exceptions.entries, today, findings)
    used: set[ExceptionEntry] = set()
    own = {canonical_name(name) for name in first_party}
    results = []
    for audit in audits:
        if lock is None:
            raise ValueError("pip-audit reports are judged against the lock they were made from")
        results.append(_judge(audit.report, in_force, own, used, findings))
        findings.extend(_coverage(audit, lock, own))
    if debian is not None:
        results.append(judge_debian(debian, in_force, used, findings))
    return Verdict(tuple(results), tuple(findings), tuple(entry for entry in in_force if entry not in used))


def _in_force(entries: Sequence[ExceptionEntry], today: date, findings: list[Finding]) -> list[ExceptionEntry]:
    latest = today + timedelta(days=MAX_EXCEPTION_DAYS)
    in_force = []
    for entry in entries:
        if entry.expires < today:
            findings.append(
                Finding(
                    "exception_expired",
                    f"{entry.label()} expired on {entry.expires}: upgrade the package, "
                    "or have the exception reviewed again and give it a new date.",
                )
            )
        elif entry.expires > latest:
            findings.append(
                Finding(
                    "exception_invalid",
                    f"{entry.label()} expires on {entry.expires}, more than {MAX_EXCEPTION_DAYS} days "
                    f"after {today} (at most {latest}).",
                )
            )
        else:
            in_force.append(entry)
    return in_force


def _judge(
    report: Report,
    in_force: Sequence[ExceptionEntry],
    own: set[str],
    used: set[ExceptionEntry],
    findings: list[Finding],
) -> ReportResult:
    rows: list[Row] = []
    skipped: list[SkippedDependency] = []
    uncovered = 0
    packages = 0
    for dependency in report.dependencies:
        if isinstance(dependency, SkippedDependency):
            first_party = canonical_name(dependency.name) in own
            rows.append(Row(dependency.name, "-", "-", (), "first-party" if first_party else "not audited"))
            if not first_party:
                skipped.append(dependency)
                packages += 1
            continue
        packages += 1
        for vuln in dependency.vulns:
            entry = next((entry for entry in in_force if entry.covers("pypi", dependency.name, vuln)), None)
            if entry is None:
                uncovered += 1
            else:
                used.add(entry)
            status = "vulnerable" if entry is None else f"excepted until {entry.expires}"
            rows.append(Row(dependency.name, dependency.version, vuln.id, vuln.fix_versions, status))
    if packages == 0:
        findings.append(
            Finding("nothing_audited", f"{report.source}: the report lists no package: nothing was audited.")
        )
    if skipped:
        example = skipped[0]
        findings.append(
            Finding(
                "not_audited",
                f"{report.source}: {len(skipped)} of {packages} packages could not be audited "
                f"({example.name}: {example.skip_reason}).",
            )
        )
    if uncovered:
        findings.append(
            Finding(
                "vulnerable",
                f"{report.source}: {uncovered} known {'vulnerability' if uncovered == 1 else 'vulnerabilities'} "
                "not covered by an exception: upgrade the package (see fix versions) or add a reviewed exception.",
            )
        )
    return ReportResult(report.source, packages, tuple(rows))


def _coverage(audit: Audit, lock: Lock, own: set[str]) -> list[Finding]:
    """Compare the packages a report lists with those it must list: a missing one, then a stray one, is a finding."""
    expected, what = _expected(audit.kind, lock, own)
    listed = {canonical_name(dependency.name) for dependency in audit.report.dependencies}
    missing = [
        name if version is None else f"{name}=={version}" for name, version in expected.items() if name not in listed
    ]
    strays = [stray for dependency in audit.report.dependencies if (stray := _stray(dependency, expected))]
    source, findings = audit.report.source, []
    if missing:
        findings.append(
            Finding(
                "coverage",
                f"{source}: {len(missing)} of the {len(expected)} packages of {what} are missing from the report "
                f"({some(missing)}): pip-audit did not see them. Audit the whole lock (-r) or venv (--path), "
                "and check that every *.dist-info in it is readable.",
            )
        )
    if strays:
        findings.append(
            Finding(
                "lock_mismatch",
                f"{source}: {len(strays)} package{'s' if len(strays) > 1 else ''} not as {lock.source} pins "
                f"({some(strays)}): what was audited is not what ships. Audit what was built from this lock, "
                "or regenerate the lock (build/lock.sh).",
            )
        )
    return findings


def _expected(kind: Kind, lock: Lock, own: set[str]) -> tuple[dict[str, str | None], str]:
    """What a report must list, name to version (None: any version), and how messages name that set.

    ``pip-audit -r`` lists the lock and nothing else; a venv installed from it
    holds the first-party distributions too, at whatever version was built.
    """
    expected: dict[str, str | None] = dict(lock.pins)
    if kind == "lock" or not own:
        return expected, lock.source
    expected.update((name, None) for name in sorted(own - set(lock.pins)))
    return expected, f"{lock.source} and the first-party {', '.join(sorted(own))}"


def _stray(dependency: Dependency, expected: Mapping[str, str | None]) -> str | None:
    """How a listed package departs from what is expected, or None: not expected at all, or at another version.

    A skipped package carries no version in pip-audit's JSON, so only its name can be compared.
    """
    version = dependency.version if isinstance(dependency, AuditedDependency) else None
    key = canonical_name(dependency.name)
    if key not in expected:
        return f"{dependency.name} {version or '(skipped)'}: not locked"
    locked = expected[key]
    if version is not None and locked is not None and version != locked:
        return f"{dependency.name} {version}, locked {locked}"
    return None
