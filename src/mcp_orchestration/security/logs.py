"""Logs go to stderr through the redactor, as plain lines or JSON lines.

Apart from :mod:`redaction` so that a command that logs nothing (a scheduled
``sync``, every few minutes) need not import ``logging``.
"""

from __future__ import annotations

import json
import logging
import re
import sys

from mcp_orchestration.security.redaction import REDACTOR, Redactor

# What a log viewer may take for the end of a line, or a terminal for a command, in a message that quotes
# a client (a Host header with NEL, U+0085): escaped, so no one can write a log line of their choosing.
# A plain newline stays: a header cannot carry one, and our own messages use it for their hint.
_FORGING = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class RedactingFormatter(logging.Formatter):
    """Plain-text log lines, redacted after formatting (arguments and tracebacks included)."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redactor = redactor

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _FORGING.sub(lambda found: ascii(found.group())[1:-1], record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.scrub(super().format(record))


class JsonRedactingFormatter(logging.Formatter):
    """JSON-lines log records, each field redacted before and after encoding."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redactor.redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self._redactor.redact(self.formatException(record.exc_info))
        return self._redactor.scrub(json.dumps(entry, ensure_ascii=False))


def configure_logging(level: int = logging.WARNING, fmt: str = "text", redactor: Redactor = REDACTOR) -> None:
    """Send all logs to stderr through a redacting formatter; stdout stays free for output and MCP."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonRedactingFormatter(redactor) if fmt == "json" else RedactingFormatter(redactor))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
