"""The one clock the product reads: RFC 3339 UTC timestamps with second precision, and durations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mcp_orchestration.core.errors import UsageError

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_LIFETIME = timedelta(days=366)


def utc_now() -> str:
    """Now, as ``YYYY-MM-DDTHH:MM:SSZ``: what heads, entries, drafts and host records store."""
    return format_time(datetime.now(UTC))


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_time(text: str) -> datetime | None:
    """A stored ``YYYY-MM-DDTHH:MM:SSZ`` timestamp, or None if it is not one (without ``strptime``, which
    loads the locale machinery: a scheduled sync parses one timestamp)."""
    if not isinstance(text, str) or not _TIMESTAMP.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_duration(text: str, what: str) -> timedelta:
    """``90m``, ``36h`` or ``7d`` as a duration of at most a year: how long a signed head stays fresh."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"{what} {text!r} is not a duration.", hint="Write it as minutes, hours or days: 90m, 36h, 7d."
        )
    lifetime = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if lifetime > MAX_LIFETIME:
        raise UsageError(f"{what} {text!r} is longer than a year.", hint="Refresh at least yearly: use 366d or less.")
    return lifetime
