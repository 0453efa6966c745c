"""core/clock.py: one UTC timestamp format, to the second."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest

from mcp_orchestration.core import clock
from mcp_orchestration.core.clock import utc_now


def test_now_is_rfc3339_utc_with_second_precision() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", utc_now())


def test_now_is_the_current_utc_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = datetime.strptime(utc_now(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    after = datetime.now(UTC)
    assert before <= stamp <= after + timedelta(seconds=1)


def test_a_moment_is_written_zero_padded_in_utc_and_cut_not_rounded(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Fixed:
            asked.append(tz)
            moment = datetime(2024, 1, 2, 5, 4, 5, 999_999, tzinfo=timezone(timedelta(hours=2)))
            return cls.fromtimestamp(moment.timestamp(), tz)

    monkeypatch.setattr(clock, "datetime", Fixed)
    assert utc_now() == "2024-01-02T03:04:05Z"
    assert asked == [UTC]
