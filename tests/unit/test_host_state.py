"""app/host_state.py: what a host pinned and accepted per store, kept outside every store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.app.host_state import LEGACY_STATE_FILE_NAME, STATE_FILE_NAME, HostState, StoreRecord
from mcp_orchestration.core.errors import RollbackError
from tests.conftest import is_locked

ROOT = "SHA256:" + "a" * 64
OTHER_ROOT = "SHA256:" + "b" * 64
HEAD = "c" * 64
DIGESTS = ("d" * 64, "e" * 64)


@pytest.fixture
def state(tmp_path: Path) -> HostState:
    return HostState(tmp_path / "state" / STATE_FILE_NAME)


def _write(state: HostState, document: object) -> None:
    state.path.parent.mkdir(parents=True, exist_ok=True)
    state.path.write_text(json.dumps(document))


def _record(**fields: Any) -> dict[str, Any]:
    return {"root": ROOT, **fields}


def test_a_host_that_never_saw_a_store_has_no_record(state: HostState) -> None:
    assert state.get(Path("/srv/store")) is None
    assert not state.path.exists()


def test_a_record_reads_back_equal_and_other_stores_are_kept(state: HostState) -> None:
    accepted = StoreRecord(ROOT).accepting(HEAD, 4, DIGESTS, "2024-01-02T03:04:05Z")
    with state.locked():
        state.put(Path("/srv/a"), accepted)
        state.put(Path("/srv/b"), StoreRecord(OTHER_ROOT))
    assert state.get(Path("/srv/a")) == accepted
    assert state.get(Path("/srv/b")) == StoreRecord(OTHER_ROOT)
    assert accepted == StoreRecord(ROOT, HEAD, 4, 2, "2024-01-02T03:04:05Z", DIGESTS)
    document = json.loads(state.path.read_text())
    assert document["format"] == 2
    assert list(document["stores"]) == ["/srv/a", "/srv/b"]
    assert "head_id" not in document["stores"]["/srv/b"]  # unset fields are left out, not null


def test_forgetting_a_store_drops_only_its_record(state: HostState) -> None:
    with state.locked():
        state.put(Path("/srv/a"), StoreRecord(ROOT))
        state.put(Path("/srv/b"), StoreRecord(OTHER_ROOT))
        state.forget(Path("/srv/a"))
    assert state.get(Path("/srv/a")) is None
    assert state.get(Path("/srv/b")) == StoreRecord(OTHER_ROOT)


def test_forgetting_an_unknown_store_writes_nothing(state: HostState) -> None:
    state.forget(Path("/srv/a"))
    assert not state.path.exists()


def test_the_lock_is_held_beside_the_file_while_locked(state: HostState) -> None:
    lock = state.path.with_name(f"{STATE_FILE_NAME}.lock")
    with state.locked():
        assert is_locked(lock)  # through another open file description, as another process would try
    assert not is_locked(lock)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        [],
        {"format": 1, "stores": {}},
        {"format": 2},
        {"format": 2, "stores": []},
        {"format": 2, "stores": {"relative/home": _record()}},
        {"format": 2, "stores": {"/srv/a": _record(root="SHA256:short")}},
        {"format": 2, "stores": {"/srv/a": _record(index_version=-1)}},
        {"format": 2, "stores": {"/srv/a": _record(index_version=True)}},
        {"format": 2, "stores": {"/srv/a": _record(head_id=HEAD, index_version=0)}},
        {"format": 2, "stores": {"/srv/a": _record(head_id="C" * 64, index_version=1)}},
        {"format": 2, "stores": {"/srv/a": _record(key_history=[DIGESTS[0]], key_history_version=2)}},
        {"format": 2, "stores": {"/srv/a": _record(key_history=["not hex"], key_history_version=1)}},
        {"format": 2, "stores": {"/srv/a": _record(seen_at=5)}},
    ],
    ids=[
        "not json",
        "not an object",
        "wrong format",
        "no stores",
        "stores not an object",
        "relative home",
        "bad root",
        "negative version",
        "boolean version",
        "head at version 0",
        "upper-case head id",
        "history length disagrees",
        "history digest not hex",
        "seen_at not text",
    ],
)
def test_a_damaged_state_file_vouches_for_nothing(state: HostState, document: object) -> None:
    if document == "not json":
        state.path.parent.mkdir(parents=True)
        state.path.write_text("{")
    else:
        _write(state, document)
    with pytest.raises(RollbackError) as caught:
        state.get(Path("/srv/a"))
    assert "damaged" in caught.value.message
    assert caught.value.hint is not None and "--expect-key" in caught.value.hint


def test_a_state_file_that_is_a_link_is_refused(state: HostState, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text(json.dumps({"format": 2, "stores": {"/srv/a": _record()}}))
    state.path.parent.mkdir(parents=True)
    state.path.symlink_to(real)
    with pytest.raises(RollbackError, match="damaged"):
        state.get(Path("/srv/a"))


def test_the_legacy_deploy_state_is_read_when_no_host_state_exists(state: HostState) -> None:
    legacy = state.path.with_name(LEGACY_STATE_FILE_NAME)
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"format": 1, "stores": {f"{ROOT} /srv/a": {"head_id": HEAD, "index_version": 3}}}))
    assert state.get(Path("/srv/a")) == StoreRecord(ROOT, HEAD, 3)
    with state.locked():
        state.put(Path("/srv/b"), StoreRecord(OTHER_ROOT))
    assert state.get(Path("/srv/a")) == StoreRecord(ROOT, HEAD, 3)  # carried into the new file
    assert json.loads(state.path.read_text())["format"] == 2


def test_a_damaged_legacy_file_is_refused_too(state: HostState) -> None:
    legacy = state.path.with_name(LEGACY_STATE_FILE_NAME)
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"format": 2, "stores": {}}))
    with pytest.raises(RollbackError, match=LEGACY_STATE_FILE_NAME):
        state.get(Path("/srv/a"))


def test_a_state_file_under_another_name_has_no_legacy_neighbour(tmp_path: Path) -> None:
    state = HostState(tmp_path / "custom.json")
    (tmp_path / LEGACY_STATE_FILE_NAME).write_text(
        json.dumps({"format": 1, "stores": {f"{ROOT} /srv/a": {"head_id": HEAD, "index_version": 3}}})
    )
    assert state.get(Path("/srv/a")) is None
