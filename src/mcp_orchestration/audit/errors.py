"""Why the gate could reach no verdict: typed errors with stable codes, all exit status 2.

A report, lock or exceptions file that cannot be read or parsed is not a pass
and not a policy finding either: the gate stops and says which file to fix.
"""

from __future__ import annotations

from mcp_orchestration.core.errors import UsageError


class ReportUnreadableError(UsageError):
    code = "report_unreadable"
    hint = "Run pip-audit again with `-f json -o FILE` (build/audit.sh does) and pass that file."


class ReportMalformedError(UsageError):
    code = "report_malformed"
    hint = "The file is not pip-audit's JSON report (`-f json`); regenerate it with build/audit.sh."


class ExceptionsUnreadableError(UsageError):
    code = "exceptions_unreadable"
    hint = "Pass the reviewed exceptions file with --exceptions (audit-exceptions.toml at the repository root)."


class LockUnreadableError(UsageError):
    code = "lock_unreadable"
    hint = "Pass the hash-pinned lock the reports were made from with --lock (build/requirements.lock)."


class LockMalformedError(UsageError):
    code = "lock_malformed"
    hint = "The lock must pin every package as `name==version` (build/lock.sh writes it so); regenerate it."
