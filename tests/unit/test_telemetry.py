from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mcp_orchestration.app.telemetry import EVENTS_FILE, Telemetry
from mcp_orchestration.core.errors import NotFoundError
from mcp_orchestration.security.redaction import Redactor


def _events(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / EVENTS_FILE).read_text().splitlines()]


def test_an_operation_records_one_event_with_outcome_duration_and_ids(tmp_path: Path) -> None:
    telemetry = Telemetry(tmp_path)
    with telemetry.operation("publish") as event:
        event.set(keyid="ab" * 32, index_version=3)
    (recorded,) = _events(tmp_path)
    assert recorded["event"] == "publish"
    assert recorded["outcome"] == "ok"
    assert recorded["keyid"] == "ab" * 32
    assert recorded["index_version"] == 3
    assert isinstance(recorded["duration_ms"], float)
    assert stat.S_IMODE((tmp_path / EVENTS_FILE).stat().st_mode) == 0o600


def test_a_failed_operation_records_the_error_code_and_still_raises(tmp_path: Path) -> None:
    telemetry = Telemetry(tmp_path)
    with pytest.raises(NotFoundError), telemetry.operation("verify"):
        raise NotFoundError("gone")
    assert _events(tmp_path)[0]["outcome"] == "not_found"


def test_events_are_redacted(tmp_path: Path) -> None:
    redactor = Redactor()
    redactor.register_text("top-secret-value")
    Telemetry(tmp_path, redactor=redactor).record("publish", "ok", 1.0, note="top-secret-value")
    assert "top-secret-value" not in (tmp_path / EVENTS_FILE).read_text()


def test_the_file_is_rotated_when_it_reaches_its_bound(tmp_path: Path) -> None:
    telemetry = Telemetry(tmp_path, max_bytes=2000, backups=2)
    for number in range(100):
        telemetry.record("publish", "ok", 1.0, n=number)
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith(EVENTS_FILE)}
    assert set(sizes) == {EVENTS_FILE, f"{EVENTS_FILE}.1", f"{EVENTS_FILE}.2"}
    assert all(size <= 2000 for size in sizes.values())
    assert _events(tmp_path)[-1]["n"] == 99


def test_a_telemetry_failure_never_fails_the_operation(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    telemetry = Telemetry(blocker / "telemetry")
    with telemetry.operation("publish") as event:
        event.set(index_version=1)
    telemetry.record("verify", "ok", 1.0)
