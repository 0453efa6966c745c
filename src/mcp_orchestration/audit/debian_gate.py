"""The Debian policy: whether the image's Debian packages may ship, given Debian's security tracker.

Each installed binary package is looked up by its source package (what the
tracker names) at its source version, in the image's release (os-release's
VERSION_CODENAME). For every issue the tracker lists there:

- a ``fixed_version`` of ``"0"``, or one the installed version has reached
  (Debian's version order), is clean;
- ``fixable`` (FAIL): the release has a fixed version newer than the one
  installed. The fix is one rebuild of the base images away.
- ``unfixed`` (FAIL): open or undetermined, with no fix in the release, unless
  Debian itself rates it ``unimportant`` or decided no DSA is due (``nodsa``:
  minor, ``postponed`` to a point release, or ``ignored``). Those are listed in
  the table as information and do not fail: Debian's security team has judged
  them, and a gate that fails on every unimportant issue of glibc is one that
  gets switched off. "undetermined" fails: nobody knows yet, so it is open.

An exception of ``audit-exceptions.toml`` covers a ``fixable`` or ``unfixed``
issue when its ``package`` is the *source* package and its ``id`` the
issue's id: the same rules (reason, approver, 90 days) as for
pip-audit's findings. It covers an ``unfixed`` issue; a ``fixable`` one only
if it says ``covers_fixable = true``: an exception granted while Debian had
no fix stops covering the issue the day a fix reaches the release, and the
row and the finding say so. A package the tracker does not list has no known issue.
What makes the input unfit for a verdict (no package at all, a tracker that
does not cover the release) is refused before this module runs (``dpkg.py``,
``tracker.py``), as exit status 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from debian.debian_support import version_compare

from mcp_orchestration.audit.dpkg import DebPackage
from mcp_orchestration.audit.errors import TrackerMalformedError
from mcp_orchestration.audit.exceptions import ExceptionEntry
from mcp_orchestration.audit.outcome import Finding, ReportResult, Row, some
from mcp_orchestration.audit.report import Vulnerability
from mcp_orchestration.audit.tracker import Issue, Tracker

Outcome = Literal["clean", "fixable", "unfixed", "information"]


@dataclass(frozen=True)
class DebianAudit:
    """The image's Debian packages and the tracker's issues for its release; ``source`` names them in messages."""

    source: str
    packages: tuple[DebPackage, ...]
    tracker: Tracker


def classify(issue: Issue, installed: str) -> Outcome:
    """The policy for one issue of a source package installed at ``installed`` (see the module docstring)."""
    if issue.fixed_version is not None:
        if issue.fixed_version == "0" or _compare(installed, issue.fixed_version, issue) >= 0:
            return "clean"
        return "fixable"
    if issue.urgency.rstrip("*").strip() == "unimportant" or issue.nodsa_reason is not None:
        return "information"
    return "unfixed"


def judge(
    audit: DebianAudit, in_force: Sequence[ExceptionEntry], used: set[ExceptionEntry], findings: list[Finding]
) -> ReportResult:
    """The table rows of every issue that is not clean; the FAIL ones not excepted become findings."""
    sources = {(package.source, package.source_version) for package in audit.packages}
    rows: list[Row] = []
    failing: dict[Outcome, list[str]] = {"fixable": [], "unfixed": []}
    lapsed: list[str] = []  # fixable issues whose exceptions cover them only while Debian had no fix
    for source, version in sorted(sources):
        for issue in sorted(audit.tracker.issues.get(source, ()), key=lambda issue: issue.id):
            outcome = classify(issue, version)
            if outcome == "clean":
                continue
            entry, named = _exception(in_force, source, issue, outcome)
            used.update(named)
            if outcome != "information" and entry is None:
                failing[outcome].append(f"{source} {issue.id}")
                if named:
                    lapsed.append(f"{source} {issue.id}")
            fix = (issue.fixed_version,) if issue.fixed_version else ()
            rows.append(Row(source, version, issue.id, fix, _status(issue, outcome, entry, named)))
    release = audit.tracker.release
    if fixable := failing["fixable"]:
        findings.append(
            Finding(
                "fixable",
                f"{audit.source}: {_count(fixable, 'vulnerability', 'vulnerabilities')} fixed in a newer version "
                f"in Debian {release} ({some(fixable)}): rebuild the base images (make bases image) to take it."
                f"{_lapsed(lapsed)}",
            )
        )
    if unfixed := failing["unfixed"]:
        findings.append(
            Finding(
                "unfixed",
                f"{audit.source}: {_count(unfixed, 'open issue', 'open issues')} with no fix in Debian {release} that "
                f"Debian rates neither unimportant nor no-DSA ({some(unfixed)}): review each, then add an exception "
                "(id: the CVE, package: the source package) or drop the package from the image.",
            )
        )
    return ReportResult(audit.source, len(audit.packages), tuple(rows))


def _exception(
    in_force: Sequence[ExceptionEntry], source: str, issue: Issue, outcome: Outcome
) -> tuple[ExceptionEntry | None, list[ExceptionEntry]]:
    """The exception that covers a failing issue, if any, and every one that names it (all of them were matched).

    A ``fixable`` issue is covered only by an exception that says ``covers_fixable``: one granted while Debian had
    no fix accepted waiting for it, not declining it. Debian's own rating decides an ``information`` issue.
    """
    if outcome == "information":
        return None, []
    vuln = Vulnerability(issue.id, (), ())
    named = [entry for entry in in_force if entry.covers("debian", source, vuln)]
    return next((entry for entry in named if outcome == "unfixed" or entry.covers_fixable), None), named


def _lapsed(issues: Sequence[str]) -> str:
    """Why the exceptions that name these fixable issues do not cover them (nothing if there are none)."""
    if not issues:
        return ""
    return (
        f" Exceptions granted while Debian had no fix no longer apply to {some(issues)}: "
        "rebuild, or review them again and add `covers_fixable = true`."
    )


def _status(issue: Issue, outcome: Outcome, entry: ExceptionEntry | None, named: Sequence[ExceptionEntry]) -> str:
    if entry is not None:
        return f"excepted until {entry.expires}"
    if named:
        return f"{outcome} (excepted only while unfixed)"
    if outcome == "information":
        if issue.nodsa_reason is not None:
            return f"not failing: no DSA ({issue.nodsa_reason or 'minor issue'})"
        return "not failing: unimportant"
    return issue.status if outcome == "unfixed" and issue.status == "undetermined" else outcome


def _compare(installed: str, fixed: str, issue: Issue) -> int:
    try:
        return version_compare(installed, fixed)
    except ValueError:
        message = f"{issue.id}: cannot compare the Debian versions {installed!r} and {fixed!r}."
        raise TrackerMalformedError(message) from None


def _count(items: Sequence[str], one: str, many: str) -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"
