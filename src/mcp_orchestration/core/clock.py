"""The one clock the product reads: RFC 3339 UTC timestamps with second precision."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """Now, as ``YYYY-MM-DDTHH:MM:SSZ``: what heads, entries, drafts and host records store."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
