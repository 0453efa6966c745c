from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mcp_orchestration.core.errors import KeyHistoryError, KeyNotTrustedError, KeyRetiredError, KeyRevokedError
from mcp_orchestration.store.keyhistory import KeyHistoryFiles
from mcp_orchestration.trust import dsse, keys
from mcp_orchestration.trust.history import KeyHistory, KeyRecord, KeyStatus


def _documents(history: KeyHistory) -> list[bytes]:
    return [version.envelope_bytes for version in history.versions]


def _rotated() -> tuple[KeyHistory, keys.SigningKey, keys.SigningKey]:
    first, second = keys.generate(), keys.generate()
    history = KeyHistory([KeyHistory.genesis(first, "2026-01-01T00:00:00Z")])
    history.append(history.rotation(first, second, 7, "ab" * 32, "2026-01-02T00:00:00Z"))
    return history, first, second


def test_version_one_pins_the_first_key() -> None:
    key = keys.generate()
    documents = [KeyHistory.genesis(key, "2026-01-01T00:00:00Z").envelope_bytes]
    loaded = KeyHistory.verify(documents, expect_root=key.fingerprint)
    assert loaded.root_fingerprint == key.fingerprint
    assert loaded.keys[key.keyid].status is KeyStatus.ACTIVE
    with pytest.raises(KeyNotTrustedError, match="root key"):
        KeyHistory.verify(documents, expect_root=keys.generate().fingerprint)


def test_rotation_retires_the_old_key_and_hands_over_the_range() -> None:
    history, first, second = _rotated()
    loaded = KeyHistory.verify(_documents(history))
    assert loaded.keys[first.keyid].status is KeyStatus.RETIRED
    assert (loaded.keys[first.keyid].first_index, loaded.keys[first.keyid].last_index) == (1, 7)
    assert (loaded.keys[second.keyid].first_index, loaded.keys[second.keyid].last_index) == (8, None)
    assert loaded.signer_of(7)[0] == first.keyid  # type: ignore[index]
    assert loaded.signer_of(8)[0] == second.keyid  # type: ignore[index]


def test_rotation_version_is_signed_by_both_keys() -> None:
    history, _, _ = _rotated()
    envelope = json.loads(history.versions[1].envelope_bytes)
    assert len(envelope["signatures"]) == 2


def test_rotation_missing_the_old_keys_signature_is_refused() -> None:
    history, first, second = _rotated()
    envelope = dsse.Envelope.from_bytes(history.versions[1].envelope_bytes, what="t")
    only_new = dsse.Envelope(
        envelope.payload_type, envelope.payload, tuple(s for s in envelope.signatures if s.keyid == second.keyid)
    )
    with pytest.raises(KeyHistoryError, match=f"SHA256:{first.keyid}"):
        KeyHistory.verify([history.versions[0].envelope_bytes, only_new.to_bytes()])


def test_an_attacker_cannot_append_a_version_without_the_active_key() -> None:
    first, attacker = keys.generate(), keys.generate()
    history = KeyHistory([KeyHistory.genesis(first, "2026-01-01T00:00:00Z")])
    forged = {
        first.keyid: KeyRecord(first.public_key, KeyStatus.RETIRED, 1, 1),
        attacker.keyid: KeyRecord(attacker.public_key, KeyStatus.ACTIVE, 2, None),
    }
    history.append(history._next(forged, "2026-01-02T00:00:00Z", [attacker]))
    with pytest.raises(KeyHistoryError, match="lacks a valid signature"):
        KeyHistory.verify(_documents(history))


def test_revoked_key_cannot_sign_and_status_never_moves_back() -> None:
    history, first, second = _rotated()
    history.append(history.revocation(second, first.keyid, "2026-01-03T00:00:00Z"))
    loaded = KeyHistory.verify(_documents(history))
    assert loaded.keys[first.keyid].status is KeyStatus.REVOKED
    with pytest.raises(KeyRevokedError):
        loaded.require_active(first)
    # Forge a version that un-revokes the key, correctly signed by the active key.
    keys_map = dict(loaded.keys)
    keys_map[first.keyid] = replace(keys_map[first.keyid], status=KeyStatus.RETIRED)
    loaded.append(loaded._next(keys_map, "2026-01-04T00:00:00Z", [second]))
    with pytest.raises(KeyHistoryError, match="back to retired"):
        KeyHistory.verify(_documents(loaded))


def test_retired_and_unknown_keys_may_not_sign() -> None:
    history, first, second = _rotated()
    with pytest.raises(KeyRetiredError):
        history.require_active(first)
    with pytest.raises(KeyNotTrustedError):
        history.require_active(keys.generate())
    assert history.require_active(second).status is KeyStatus.ACTIVE


def test_the_files_hold_the_versions_and_a_gap_in_them_is_refused(tmp_path: Path) -> None:
    first, second = keys.generate(), keys.generate()
    files = KeyHistoryFiles(tmp_path)
    history = files.create(first, "2026-01-01T00:00:00Z")
    files.append(history, history.rotation(first, second, 7, "ab" * 32, "2026-01-02T00:00:00Z"))
    assert files.load(expect_root=first.fingerprint).digests == history.digests
    (tmp_path / "00000002.json").rename(tmp_path / "00000003.json")
    with pytest.raises(KeyHistoryError, match="gap"):
        files.load()


def test_a_version_that_does_not_link_to_its_predecessor_is_refused() -> None:
    first = keys.generate()
    history = KeyHistory([KeyHistory.genesis(first, "2026-01-01T00:00:01Z")])
    rotation = history.rotation(first, keys.generate(), 3, "cd" * 32, "2026-01-02T00:00:00Z")
    other_first = KeyHistory.genesis(first, "2026-01-01T00:00:02Z")
    with pytest.raises(KeyHistoryError, match="does not link"):
        KeyHistory.verify([other_first.envelope_bytes, rotation.envelope_bytes])
