"""``mcp-orchestration-audit-gate``: the verdict on pip-audit JSON reports, as a table and an exit status.

    mcp-orchestration-audit-gate [--exceptions FILE] [--first-party NAME] REPORT...

Exit status (stable: `make audit` and CI decide on it):
  0  PASS: every package of every report was audited, and every known
     vulnerability is covered by an exception in force.
  1  FAIL: the policy says no; each finding is printed with its code:
     vulnerable, not_audited, nothing_audited, exception_invalid, exception_expired.
  2  no verdict: bad arguments (usage), a report that cannot be read
     (report_unreadable) or is not pip-audit's JSON (report_malformed), an
     exceptions file that cannot be read or is not TOML (exceptions_unreadable),
     or an unexpected error (internal). Treat it as FAIL.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from mcp_orchestration.audit.exceptions import load_exceptions
from mcp_orchestration.audit.gate import Row, Verdict, evaluate
from mcp_orchestration.audit.report import load_report
from mcp_orchestration.errors import ExitCode, InternalError, OrchestrationError

_SUMMARY, _, _EXIT_STATUS = (__doc__ or "").split("\n\n", 2)
_HEADER = Row("package", "version", "vulnerability", ("fix versions",), "status")


def build_parser() -> argparse.ArgumentParser:
    """The gate's options; --help ends with the exit statuses of the module docstring."""
    parser = argparse.ArgumentParser(
        prog="mcp-orchestration-audit-gate",
        description=_SUMMARY.replace("``", ""),
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT", help="pip-audit report (-f json)")
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
        help="a distribution of this project, not on PyPI: it may be skipped (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, today: date | None = None) -> int:
    """Judge the reports and return the exit status; ``today`` is fixed only by tests."""
    args = build_parser().parse_args(argv)
    try:
        exceptions = load_exceptions(args.exceptions)
        reports = [load_report(path) for path in args.reports]
        verdict = evaluate(reports, exceptions, today or datetime.now(UTC).date(), args.first_party)
    except OrchestrationError as error:
        return _fail(error)
    except Exception as error:  # a bug: still a verdict-less exit, never a traceback
        return _fail(InternalError(f"Unexpected internal error ({type(error).__name__}).", hint="Report the issue."))
    sys.stdout.write(render(verdict))
    return ExitCode.OK if verdict.passed else ExitCode.FAILURE


def render(verdict: Verdict) -> str:
    """The reviewer's view: per report a summary line and a table, then the findings and the verdict."""
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
