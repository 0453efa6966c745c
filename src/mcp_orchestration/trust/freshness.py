"""Whether a signed head may still be used: its signed expiry, checked against the clock.

Apart from :mod:`metadata` so that a scheduled sync that finds its head
unchanged checks the expiry it remembered without loading the head model.
"""

from __future__ import annotations

from datetime import datetime

from mcp_orchestration.core.clock import format_time, parse_time
from mcp_orchestration.core.errors import ExpiredError


def require_fresh(version: int, expires: str | None, now: datetime) -> None:
    """Refuse index ``version`` once its signed expiry passed, or if it has none (a frozen mirror could
    then serve it for ever); ``now`` is an aware UTC time."""
    if expires is None:
        raise ExpiredError(
            f"The index (version {version}) carries no expiry: it was signed by a release before heads expired, "
            "so a mirror could serve it for ever."
        )
    expiry = parse_time(expires)
    if expiry is None or now >= expiry:
        raise ExpiredError(f"The index (version {version}) expired at {expires}; it is now {format_time(now)}.")
