"""The audit policy: whether what pip-audit reported may ship.

pip-audit exits 0 when it could look nothing up (every package skipped), so
its exit status is no verdict. The rules, each failure a finding with a stable
code:

- ``vulnerable``: a known vulnerability that no exception in force covers.
- ``not_audited``: a package pip-audit skipped, for whatever reason.
- ``nothing_audited``: a report that lists no package.
- ``exception_invalid``: an exceptions-file entry that breaks a rule, or
  expires more than 90 days ahead.
- ``exception_expired``: an exception whose date has passed.

An exception is in force up to its ``expires`` date included; one that is
expired or invalid covers nothing. Packages named as
first-party (this project, which is not on PyPI) may be skipped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from mcp_orchestration.audit.exceptions import ExceptionEntry, ExceptionsFile
from mcp_orchestration.audit.report import Report, SkippedDependency, canonical_name

MAX_EXCEPTION_DAYS = 90

FindingCode = Literal["vulnerable", "not_audited", "nothing_audited", "exception_invalid", "exception_expired"]


@dataclass(frozen=True)
class Finding:
    """One reason the verdict is FAIL."""

    code: FindingCode
    message: str


@dataclass(frozen=True)
class Row:
    """One line of the table a reviewer reads: a vulnerability, or a package that was not audited."""

    package: str
    version: str
    vulnerability: str
    fix_versions: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class ReportResult:
    """The rows of one report and how many packages it covered (first-party ones left out)."""

    source: str
    packages: int
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Verdict:
    """Every report's rows, every finding, and the exceptions in force that matched nothing (stale)."""

    reports: tuple[ReportResult, ...]
    findings: tuple[Finding, ...]
    unused: tuple[ExceptionEntry, ...]

    @property
    def passed(self) -> bool:
        """The image may ship: no finding at all."""
        return not self.findings


def evaluate(
    reports: Sequence[Report], exceptions: ExceptionsFile, today: date, first_party: Collection[str] = ()
) -> Verdict:
    """Judge the reports against the exceptions in force on ``today``."""
    findings = [Finding("exception_invalid", problem) for problem in exceptions.problems]
    in_force = _in_force(exceptions.entries, today, findings)
    used: set[ExceptionEntry] = set()
    own = {canonical_name(name) for name in first_party}
    results = tuple(_judge(report, in_force, own, used, findings) for report in reports)
    return Verdict(results, tuple(findings), tuple(entry for entry in in_force if entry not in used))


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
            entry = next((entry for entry in in_force if entry.covers(dependency.name, vuln)), None)
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
