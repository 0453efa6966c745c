"""What a policy decides, whichever inputs it judged: findings, table rows, and the verdict.

The pip-audit policy (``gate.py``) and the Debian one (``debian_gate.py``)
fill the same types, so one table, one list of findings and one exit status
come out of ``mcp-orchestration-audit-gate`` for the whole image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mcp_orchestration.audit.exceptions import ExceptionEntry

FindingCode = Literal[
    # pip-audit reports (gate.py)
    "vulnerable",
    "not_audited",
    "nothing_audited",
    "coverage",
    "lock_mismatch",
    # the image's Debian packages (debian_gate.py)
    "fixable",
    "unfixed",
    # the exceptions file, shared by both
    "exception_invalid",
    "exception_expired",
]


EXAMPLES = 5  # items a finding's message names; the rest are counted


def some(items: Sequence[str]) -> str:
    """The first few items, then how many more: a message stays readable when a whole venv is missing."""
    more = len(items) - EXAMPLES
    return ", ".join(items[:EXAMPLES]) + (f" and {more} more" if more > 0 else "")


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
