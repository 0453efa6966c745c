from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.app import rotation
from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.errors import (
    ConflictError,
    IntegrityError,
    KeyRetiredError,
    NotFoundError,
    NotInitializedError,
    RollbackError,
    ValidationError,
    VerificationError,
)
from mcp_orchestration.store.cas import digest_of
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import keys, verifier

CONFIG_A = {"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}}
CONFIG_B = {"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}


@pytest.fixture
def key() -> keys.SigningKey:
    return keys.generate()


@pytest.fixture
def index(tmp_path: Path, key: keys.SigningKey) -> Repository:
    store = Repository(tmp_path / "storage")
    store.initialize(key)
    return store


def _publish(index: Repository, key: keys.SigningKey, payload: dict[str, Any], profile: str = "default") -> str:
    result = index.publish(key, [ProfileUpdate("claude-desktop", profile, payload, "test")])
    return result.artifacts[f"claude-desktop/{profile}"]


def test_artifact_id_is_sha256_of_the_rfc8785_bytes(index: Repository, key: keys.SigningKey) -> None:
    artifact = _publish(index, key, {"mcpServers": {}, "b": 1.0, "a": "\u00e9"})
    expected = canonical_bytes({"a": "\u00e9", "b": 1, "mcpServers": {}})
    assert expected == b'{"a":"\xc3\xa9","b":1,"mcpServers":{}}'
    assert artifact == digest_of(expected)
    assert index.objects.path_for(artifact).read_bytes() == expected
    assert (
        index.objects.path_for(artifact)
        == index.layout.storage_dir / "objects" / "sha256" / artifact[:2] / artifact[2:]
    )


def test_publish_get_and_history_round_trip(index: Repository, key: keys.SigningKey) -> None:
    first = _publish(index, key, CONFIG_A)
    second = _publish(index, key, CONFIG_B)
    entry, payload = index.get_artifact("claude-desktop", "default")
    assert (entry.artifact, payload) == (second, CONFIG_B)
    assert index.get_artifact("claude-desktop", "default", first)[1] == CONFIG_A
    versions = index.profile_history("claude-desktop", "default")
    assert [v.artifact for v in versions] == [second, first]
    assert [v.index_version for v in versions] == [3, 2]


def test_publishing_the_same_payload_again_changes_nothing(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    result = index.publish(key, [ProfileUpdate("claude-desktop", "default", CONFIG_A)])
    assert result.unchanged == ["claude-desktop/default"]
    assert result.index_version == 2


def test_artifact_outside_the_profiles_history_is_not_served(index: Repository, key: keys.SigningKey) -> None:
    other = _publish(index, key, CONFIG_B, profile="other")
    _publish(index, key, CONFIG_A)
    with pytest.raises(NotFoundError):
        index.get_artifact("claude-desktop", "default", other)


def test_unknown_profile_is_not_found(index: Repository) -> None:
    with pytest.raises(NotFoundError):
        index.get_artifact("cursor", "default")


def test_values_outside_the_jcs_domain_are_validation_errors(index: Repository, key: keys.SigningKey) -> None:
    with pytest.raises(ValidationError):
        _publish(index, key, {"mcpServers": {}, "n": 2**60})


def test_uninitialised_store_says_how_to_initialise(tmp_path: Path) -> None:
    with pytest.raises(NotInitializedError) as caught:
        Repository(tmp_path / "none").verify()
    assert "init" in caught.value.diagnostics()


def test_init_is_idempotent_for_the_same_key_and_refuses_another(index: Repository, key: keys.SigningKey) -> None:
    _, head, created = index.initialize(key)
    assert not created and head.head.version == 1
    with pytest.raises(ConflictError):
        index.initialize(keys.generate())


def test_init_interrupted_after_key_history_write_finishes_on_rerun(tmp_path: Path, key: keys.SigningKey) -> None:
    store = Repository(tmp_path / "storage")
    store.initialize(key)
    store.layout.head_path.unlink()
    store.layout.accepted_path.unlink()
    _, head, created = store.initialize(key)
    assert created and head.head.version == 1
    store.verify(deep=True)


def test_replayed_older_index_is_refused_as_rollback(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    old_head = index.layout.head_path.read_bytes()
    _publish(index, key, CONFIG_B)
    os.chmod(index.layout.head_path, 0o600)
    index.layout.head_path.write_bytes(old_head)
    with pytest.raises(RollbackError) as caught:
        index.verify()
    assert caught.value.code == "rollback"
    with pytest.raises(RollbackError):
        index.get_artifact("claude-desktop", "default")


def test_write_with_a_retired_key_is_refused_but_reads_keep_working(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    new = keys.generate()
    rotation.rotate(index, key, new)
    with pytest.raises(KeyRetiredError):
        _publish(index, key, CONFIG_B)
    assert index.get_artifact("claude-desktop", "default")[1] == CONFIG_A
    assert index.verify(deep=True).keyid == new.keyid


def test_revoked_key_verifies_nothing_yet_the_chain_still_vouches_for_old_versions(
    index: Repository, key: keys.SigningKey
) -> None:
    first = _publish(index, key, CONFIG_A)
    old_head = index.layout.head_path.read_bytes()
    new = keys.generate()
    rotation.rotate(index, key, new)
    assert rotation.revoke(index, new, key.keyid)
    report = index.verify(deep=True)
    assert report.heads_vouched_by_chain == 2
    assert index.get_artifact("claude-desktop", "default", first)[1] == CONFIG_A
    # The old head, signed by the revoked key, no longer verifies on its own.
    with pytest.raises(VerificationError):
        verifier.verify_head(old_head, index.load_history(), "old head")


def test_active_key_cannot_be_revoked(index: Repository, key: keys.SigningKey) -> None:
    with pytest.raises(ConflictError, match="active key cannot be revoked"):
        rotation.revoke(index, key, key.keyid)


def test_rotation_rerun_reports_already_done(index: Repository, key: keys.SigningKey) -> None:
    new = keys.generate()
    assert not rotation.rotate(index, key, new).already_done
    assert rotation.rotate(index, key, new).already_done
    assert index.verify(deep=True).index_version == 2


def test_rotation_refuses_a_store_that_does_not_verify(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    previous_head = index.snapshot()[1].head.previous_head
    assert previous_head is not None
    path = index.objects.path_for(previous_head)
    os.chmod(path, 0o600)
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(IntegrityError):
        rotation.rotate(index, key, keys.generate())
    assert len(index.load_history().versions) == 1


def test_deep_verify_finds_a_missing_artifact(index: Repository, key: keys.SigningKey) -> None:
    artifact = _publish(index, key, CONFIG_A)
    index.objects.path_for(artifact).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        index.verify(deep=True)


def test_corrupted_object_is_never_returned(index: Repository, key: keys.SigningKey) -> None:
    artifact = _publish(index, key, CONFIG_A)
    path = index.objects.path_for(artifact)
    os.chmod(path, 0o600)
    path.write_bytes(path.read_bytes().replace(b"uvx", b"evil"))
    with pytest.raises(IntegrityError) as caught:
        index.get_artifact("claude-desktop", "default")
    assert artifact in caught.value.message


def test_corrupted_object_is_repaired_by_publishing_it_again(index: Repository, key: keys.SigningKey) -> None:
    artifact = _publish(index, key, CONFIG_A)
    path = index.objects.path_for(artifact)
    os.chmod(path, 0o600)
    path.write_bytes(b"garbage")
    assert index.objects.put_json(CONFIG_A) == artifact
    assert index.objects.get_json(artifact) == CONFIG_A


def _tamper_targets(storage: Path) -> list[Path]:
    files = sorted(p for p in (storage / "objects").rglob("*") if p.is_file())
    return [*files, storage / "index" / "HEAD", *sorted((storage / "keys").glob("*.json"))]


def _flip(path: Path, position: int) -> bytes:
    original = path.read_bytes()
    os.chmod(path, 0o600)
    changed = bytearray(original)
    changed[position] ^= 0x01
    path.write_bytes(bytes(changed))
    return original


def test_flipping_any_byte_of_any_index_or_key_history_file_is_detected(
    index: Repository, key: keys.SigningKey, tmp_path: Path
) -> None:
    _publish(index, key, CONFIG_A)
    rotation.rotate(index, key, new := keys.generate())
    _publish(index, key=new, payload=CONFIG_B)
    pristine = tmp_path / "pristine"
    shutil.copytree(index.layout.storage_dir, pristine)
    flips = 0
    for target in _tamper_targets(index.layout.storage_dir):
        size = target.stat().st_size
        # Signed metadata is swept byte by byte; CAS objects at their start, middle and end.
        positions = range(size) if "objects" not in target.parts else sorted({0, size // 2, size - 1})
        for position in positions:
            original = _flip(target, position)
            with pytest.raises(VerificationError):
                index.verify(deep=True)
            target.write_bytes(original)
            flips += 1
    assert flips > 1000
    assert index.verify(deep=True).index_version == 4


def test_reader_racing_a_rotation_sees_a_consistent_store(
    index: Repository, key: keys.SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(index, key, CONFIG_A)
    reader = Repository(index.layout.storage_dir)
    reader.snapshot()  # warm the reader's caches with the old key history
    real_load = Repository.load_history
    new = keys.generate()

    def rotate_in_between(self: Repository, *args: Any, **kwargs: Any) -> object:
        # The reader has read HEAD; a writer rotates before it reads the key history.
        if self is reader and not getattr(self, "_rotated", False):
            self._rotated = True  # type: ignore[attr-defined]
            rotation.rotate(Repository(index.layout.storage_dir), key, new)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "load_history", rotate_in_between)
    _, payload = reader.get_artifact("claude-desktop", "default")
    assert payload == CONFIG_A
    assert reader.snapshot()[1].keyid == new.keyid


def test_damaged_object_that_nothing_refers_to_is_reported_not_fatal(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    leftover = index.objects.path_for("ab" + "c" * 62)
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"")  # what a power cut during an unfinished publish can leave
    report = index.verify(deep=True)
    assert report.damaged_unreferenced == ["ab" + "c" * 62]
    assert report.unreferenced_objects == 1


def _rotated_and_revoked(index: Repository, key: keys.SigningKey) -> keys.SigningKey:
    _publish(index, key, CONFIG_A)
    new = keys.generate()
    rotation.rotate(index, key, new)
    _publish(index, new, CONFIG_B)
    rotation.revoke(index, new, key.keyid)
    return new


def test_removing_the_rollback_guard_is_itself_a_rollback(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    index.layout.accepted_path.unlink()
    with pytest.raises(RollbackError, match="no rollback guard"):
        index.verify()
    index.layout.accepted_path.write_bytes(b"")
    with pytest.raises(RollbackError, match="damaged or was reset"):
        index.get_artifact("claude-desktop", "default")


def test_undoing_a_revocation_by_deleting_its_key_history_version_is_refused(
    index: Repository, key: keys.SigningKey
) -> None:
    _rotated_and_revoked(index, key)
    newest = sorted(index.layout.keys_dir.glob("*.json"))[-1]
    newest.unlink()
    with pytest.raises((RollbackError, VerificationError)):
        index.verify(deep=True)


def test_revocation_is_committed_to_by_a_new_index_version(index: Repository, key: keys.SigningKey) -> None:
    new = _rotated_and_revoked(index, key)
    history, current = index.snapshot()
    assert current.keyid == new.keyid
    assert current.head.key_history_version == len(history.versions) == 3
    assert current.head.key_history_digest == history.current.digest


def test_replaying_an_old_head_and_deleting_the_guard_is_still_caught_by_the_checkpoint(
    index: Repository, key: keys.SigningKey
) -> None:
    _publish(index, key, CONFIG_A)
    old_head = index.layout.head_path.read_bytes()
    old_guard = index.layout.accepted_path.read_bytes()
    _publish(index, key, CONFIG_B)
    index.verify()  # remembers the newest head as verified
    index.layout.head_path.write_bytes(old_head)
    index.layout.accepted_path.write_bytes(old_guard)
    with pytest.raises(RollbackError, match="not on the current chain"):
        index.verify()


def test_deep_verify_finds_newer_signed_heads_left_in_the_objects(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    old_head = index.layout.head_path.read_bytes()
    old_guard = index.layout.accepted_path.read_bytes()
    _publish(index, key, CONFIG_B)
    _publish(index, key, {"mcpServers": {}})
    index.layout.head_path.write_bytes(old_head)
    index.layout.accepted_path.write_bytes(old_guard)
    index.layout.verified_path.unlink(missing_ok=True)
    with pytest.raises(RollbackError, match="newer than the current version"):
        index.verify(deep=True)


def test_init_never_resumes_with_a_retired_key_or_over_a_removed_head(index: Repository, key: keys.SigningKey) -> None:
    rotation.rotate(index, key, keys.generate())
    index.layout.head_path.unlink()
    with pytest.raises(RollbackError, match="HEAD"):
        index.initialize(key)


def test_rotation_checks_the_whole_chain_not_just_since_the_checkpoint(index: Repository, key: keys.SigningKey) -> None:
    _publish(index, key, CONFIG_A)
    _publish(index, key, CONFIG_B)
    index.verify()
    first_published = index.snapshot()[1].head.previous_head
    assert first_published is not None
    path = index.objects.path_for(first_published)
    os.chmod(path, 0o600)
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(IntegrityError):
        rotation.rotate(index, key, keys.generate())


def test_a_link_planted_as_an_object_is_never_followed(index: Repository, key: keys.SigningKey, tmp_path: Path) -> None:
    artifact = _publish(index, key, CONFIG_A)
    path = index.objects.path_for(artifact)
    outside = tmp_path / "outside.json"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(IntegrityError, match="not a regular file"):
        index.get_artifact("claude-desktop", "default")


def test_deeply_nested_garbage_in_signed_files_is_an_integrity_error(index: Repository) -> None:
    os.chmod(index.layout.head_path, 0o600)
    index.layout.head_path.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(IntegrityError):
        index.verify()


def test_the_head_of_an_interrupted_publish_is_a_harmless_leftover(
    index: Repository, key: keys.SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_orchestration.core import fsutil

    _publish(index, key, CONFIG_A)

    def crash(batch: fsutil.WriteBatch) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(fsutil.WriteBatch, "commit", crash)
    with pytest.raises(OSError, match="power cut"):
        _publish(index, key, CONFIG_B)
    monkeypatch.undo()
    report = index.verify(deep=True)
    assert report.index_version == 2
    assert report.unreferenced_objects >= 4  # artifact, entry, tree, root and the unrenamed head
