"""``mcp-orchestration-audit-gate``: the verdict on pip-audit JSON reports and the image's Debian packages.

    mcp-orchestration-audit-gate [--lock FILE] [--exceptions FILE] [--first-party NAME] [REPORT...] [--venv REPORT]
        [--debian-status DIR --debian-tracker FILE --os-release FILE]

A REPORT is pip-audit's report of the lock itself (`pip-audit -r LOCK`): it
must list every package the lock pins, at its version, and nothing else. A
--venv REPORT is that of a venv installed from the lock (`pip-audit --path`,
e.g. the image's): it must list the same, plus every --first-party one.
--debian-status is the image's /var/lib/dpkg/status.d, --os-release its
/etc/os-release, --debian-tracker the Debian security tracker's JSON: every
package is checked against the tracker's issues for the image's release.

Exit status (stable: `make audit` and CI decide on it):
  0  PASS: every report lists exactly what it must, every package was audited,
     and every known vulnerability is covered by an exception in force.
  1  FAIL: the policy says no; each finding is printed with its code:
     vulnerable, not_audited, nothing_audited, coverage (a report misses a
     package of the lock), lock_mismatch (a report lists a package at another
     version than the lock, or one the lock does not pin), fixable (a Debian
     package has a fixed version in its release: rebuild the base), unfixed
     (an open Debian issue with no fix that Debian does not rate unimportant
     or no-DSA), exception_invalid, exception_expired.
  2  no verdict: bad arguments (usage), a report that cannot be read
     (report_unreadable) or is not pip-audit's JSON (report_malformed), a lock
     that cannot be read (lock_unreadable) or pins anything but name==version
     (lock_malformed), an exceptions file that cannot be read or is not TOML
     (exceptions_unreadable), a status.d that cannot be read, is malformed or
     lists no package (dpkg_status_unreadable, dpkg_status_malformed,
     dpkg_status_empty), an os-release that is not Debian's (os_release_invalid),
     a tracker file that is missing (tracker_unreadable), not the tracker's JSON
     or cut short (tracker_malformed), silent on the image's release
     (tracker_release_missing), a fragment (tracker_incomplete), more than
     48 hours old (tracker_stale) or dated ahead of the clock
     (tracker_future), or an unexpected error (internal). The other inputs are
     still judged and printed. Treat it as FAIL.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mcp_orchestration.audit.debian_gate import DebianAudit
from mcp_orchestration.audit.dpkg import load_status_dir
from mcp_orchestration.audit.exceptions import load_exceptions
from mcp_orchestration.audit.gate import Audit, Row, Verdict, evaluate
from mcp_orchestration.audit.lock import load_lock
from mcp_orchestration.audit.osrelease import load_os_release
from mcp_orchestration.audit.report import load_report
from mcp_orchestration.audit.tracker import MIN_PACKAGES, load_tracker
from mcp_orchestration.core.errors import ExitCode, InternalError, OrchestrationError

_SUMMARY, _, _ROLES, _EXIT_STATUS = (__doc__ or "").split("\n\n", 3)
_DEBIAN = ("debian_status", "debian_tracker", "os_release")
_HEADER = Row("package", "version", "vulnerability", ("fix versions",), "status")


def build_parser() -> argparse.ArgumentParser:
    """The gate's options; --help ends with the exit statuses of the module docstring."""
    parser = argparse.ArgumentParser(
        prog="mcp-orchestration-audit-gate",
        description=f"{_SUMMARY.replace('``', '')}\n\n{_ROLES}",
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "reports", nargs="*", type=Path, metavar="REPORT", help="pip-audit report (-f json) of the lock (-r LOCK)"
    )
    parser.add_argument(
        "--venv",
        action="append",
        default=[],
        type=Path,
        metavar="REPORT",
        help="pip-audit report (-f json) of a venv installed from the lock (--path): repeatable",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=Path("build/requirements.lock"),
        metavar="FILE",
        help="the hash-pinned lock every report must cover (default: %(default)s)",
    )
    parser.add_argument(
        "--exceptions",
        type=Path,
        default=Path("audit-exceptions.toml"),
        metavar="FILE",
        help="the reviewed exceptions (default: %(default)s)",
    )
    parser.add_argument(
        "--first-party",
        action="append",
        default=[],
        metavar="NAME",
        help="a distribution of this project, not on PyPI: it may be skipped, and every --venv report "
        "must list it (repeatable)",
    )
    debian = parser.add_argument_group("the image's Debian packages (all three, or none)")
    debian.add_argument("--debian-status", type=Path, metavar="DIR", help="the image's /var/lib/dpkg/status.d")
    debian.add_argument(
        "--debian-tracker", type=Path, metavar="FILE", help="the Debian security tracker's JSON (tracker/data/json)"
    )
    debian.add_argument("--os-release", type=Path, metavar="FILE", help="the image's /etc/os-release")
    return parser


def main(
    argv: Sequence[str] | None = None, *, now: datetime | None = None, tracker_min_packages: int = MIN_PACKAGES
) -> int:
    """Judge the inputs and return the exit status; ``now`` (timezone-aware) and ``tracker_min_packages`` are set
    only by tests, whose recorded tracker files are small."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = [getattr(args, name) is not None for name in _DEBIAN]
    if any(given) and not all(given):
        parser.error("--debian-status, --debian-tracker and --os-release go together")
    if not args.reports and not args.venv and not any(given):
        parser.error("give at least one REPORT, --venv REPORT or --debian-status")
    try:
        exceptions = load_exceptions(args.exceptions)
        lock = load_lock(args.lock) if args.reports or args.venv else None
        audits = [Audit(load_report(path), "lock") for path in args.reports]
        audits += [Audit(load_report(path), "venv") for path in args.venv]
        now = now or datetime.now(UTC)
        debian, missing = _debian(args, now, tracker_min_packages) if all(given) else (None, None)
        verdict = evaluate(audits, exceptions, now.date(), lock, args.first_party, debian=debian)
    except OrchestrationError as error:
        return _fail(error)
    except Exception as error:  # a bug: still a verdict-less exit, never a traceback
        return _fail(InternalError(f"Unexpected internal error ({type(error).__name__}).", hint="Report the issue."))
    sys.stdout.write(render(verdict, missing))
    if missing is not None:
        return _fail(missing)
    return ExitCode.OK if verdict.passed else ExitCode.FAILURE


def _debian(
    args: argparse.Namespace, now: datetime, min_packages: int
) -> tuple[DebianAudit | None, OrchestrationError | None]:
    """The Debian inputs, or why there are none: the pip-audit verdict is printed either way."""
    try:
        release = load_os_release(args.os_release)
        packages = load_status_dir(args.debian_status)
        tracker = load_tracker(args.debian_tracker, release.codename, now, min_packages=min_packages)
    except OrchestrationError as error:
        return None, error
    return DebianAudit(f"{args.debian_status} (Debian {release.codename})", packages, tracker), None


def render(verdict: Verdict, missing: OrchestrationError | None = None) -> str:
    """The reviewer's view: per report a summary line and a table, then the findings and the verdict.

    ``missing`` is why an input could not be judged: then there is no verdict, whatever the rest says.
    """
    lines: list[str] = []
    for result in verdict.reports:
        lines.append(f"{result.source}: {result.packages} packages")
        if result.rows:
            lines.extend("  " + line for line in _table([_HEADER, *result.rows]))
        else:
            lines.append("  no known vulnerability")
    lines.extend(f"note: {entry.label()} matched no vulnerability: remove it." for entry in verdict.unused)
    lines.extend(f"FAIL [{finding.code}] {finding.message}" for finding in verdict.findings)
    count = len(verdict.findings)
    if missing is not None:
        lines.append(f"verdict: NONE [{missing.code}] (exit status 2, treat as FAIL)")
        return "\n".join(lines) + "\n"
    lines.append("verdict: PASS" if verdict.passed else f"verdict: FAIL ({count} finding{'s' if count > 1 else ''})")
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[Row]) -> list[str]:
    cells = [(r.package, r.version, r.vulnerability, ", ".join(r.fix_versions) or "-", r.status) for r in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(4)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=True)) for row in cells]


def _fail(error: OrchestrationError) -> int:
    """Print why there is no verdict; the status is 2 whatever the error, internal ones included."""
    sys.stderr.write(f"error [{error.code}]: {error.diagnostics()}\n")
    return ExitCode.USAGE


if __name__ == "__main__":
    sys.exit(main())
