"""Operation events as JSON lines: bounded, redacted, and never a reason to fail.

One event per operation goes to ``telemetry/events.jsonl`` with its outcome,
duration, key id, index version and, for an authenticated HTTP caller, who
asked (``by``: subject, client and issuer; never the token). Payload contents and secrets are never
recorded; every line still passes through the redactor. When the file grows
past its bound it is rotated to ``events.jsonl.1`` (and so on).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_orchestration.app.attribution import current_principal
from mcp_orchestration.core.errors import OrchestrationError
from mcp_orchestration.core.fsutil import ensure_dir, exclusive_lock
from mcp_orchestration.security.redaction import REDACTOR, Redactor

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_BACKUPS = 3


@dataclass
class Event:
    """What one operation reports; the caller fills in ids as it learns them."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict)

    def set(self, **fields: Any) -> None:
        self.fields.update({k: v for k, v in fields.items() if v is not None})


class Telemetry:
    """Appends events to a size-bounded JSONL file; swallows its own failures."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.backups = backups
        self._redactor = redactor

    def record(self, name: str, outcome: str, duration_ms: float, **fields: Any) -> None:
        """Append one event; a telemetry failure is logged and never raised."""
        event = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": name,
            "outcome": outcome,
            "duration_ms": round(duration_ms, 3),
            **fields,
        }
        line = self._redactor.redact(json.dumps(event, sort_keys=True, default=str)) + "\n"
        try:
            self._append(self.directory, line.encode())
        except OSError as exc:
            log.warning("Telemetry event %s was not recorded: %s", name, exc.strerror or type(exc).__name__)

    def _append(self, directory: Path, data: bytes) -> None:
        ensure_dir(directory)
        path = directory / EVENTS_FILE
        with exclusive_lock(directory / ".lock"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_size + len(data) > self.max_bytes:
                    self._rotate(path)
            # O_NONBLOCK: a FIFO planted here fails the open (no reader) instead of hanging every command.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(path, flags, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(errno.EINVAL, "not a regular file", str(path))
                os.write(fd, data)
            finally:
                os.close(fd)

    def _rotate(self, path: Path) -> None:
        for number in range(self.backups - 1, 0, -1):
            older = path.with_name(f"{EVENTS_FILE}.{number}")
            if older.exists():
                os.replace(older, path.with_name(f"{EVENTS_FILE}.{number + 1}"))
        os.replace(path, path.with_name(f"{EVENTS_FILE}.1"))

    @contextlib.contextmanager
    def operation(self, name: str) -> Iterator[Event]:
        """Time the block and record one event: ``ok``, or the error's code on failure."""
        principal = current_principal()
        event = Event(name, {} if principal is None else {"by": principal.to_json()})
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield event
        except OrchestrationError as exc:
            outcome = exc.code
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            self.record(name, outcome, (time.perf_counter() - started) * 1000, **event.fields)
