"""store/cas.py: objects are stored once under their SHA-256 and re-hashed on every read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.errors import IntegrityError, InvalidIdError, ValidationError
from mcp_orchestration.store.cas import ContentStore, digest_of


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "objects")


def test_an_object_is_stored_under_its_sha256_and_reads_back(store: ContentStore) -> None:
    data = os.urandom(100)
    object_id = store.put_bytes(data)
    assert object_id == hashlib.sha256(data).hexdigest() == digest_of(data)
    path = store.path_for(object_id)
    assert path == store.root / object_id[:2] / object_id[2:]
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o400
    assert store.get_bytes(object_id) == data


def test_storing_the_same_bytes_twice_keeps_one_object(store: ContentStore) -> None:
    first = store.put_bytes(b"same")
    assert store.put_bytes(b"same") == first
    assert list(store.iter_ids()) == [first]


def test_equal_json_values_share_one_canonical_id(store: ContentStore) -> None:
    one = store.put_json({"b": [1, 2], "a": "x"})
    other = store.put_json({"a": "x", "b": [1, 2]})
    assert one == other
    assert store.get_bytes(one) == b'{"a":"x","b":[1,2]}'
    assert store.get_json(one) == {"a": "x", "b": [1, 2]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, {"x": object()}])
def test_values_rfc8785_cannot_represent_are_a_validation_error(value: object) -> None:
    with pytest.raises(ValidationError, match="RFC 8785"):
        canonical_bytes(value)


def test_corrupted_bytes_are_never_returned(store: ContentStore) -> None:
    object_id = store.put_bytes(b"original")
    path = store.path_for(object_id)
    path.chmod(0o600)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupted"):
        store.get_bytes(object_id)


def test_a_corrupted_copy_is_replaced_when_the_same_content_is_stored_again(store: ContentStore) -> None:
    object_id = store.put_bytes(b"original")
    path = store.path_for(object_id)
    path.chmod(0o600)
    path.write_bytes(b"torn")
    assert store.put_bytes(b"original") == object_id
    assert store.get_bytes(object_id) == b"original"


def test_a_missing_object_is_damage_not_absence(store: ContentStore) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        store.get_bytes("0" * 64)


def test_an_object_that_is_a_link_is_refused(store: ContentStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"planted")
    object_id = digest_of(b"planted")
    path = store.path_for(object_id)
    path.parent.mkdir(parents=True)
    path.symlink_to(outside)
    with pytest.raises(IntegrityError, match="not a regular file"):
        store.get_bytes(object_id)


def test_a_fanout_directory_that_is_a_link_is_refused_for_reads_and_writes(store: ContentStore, tmp_path: Path) -> None:
    object_id = digest_of(b"data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / object_id[2:]).write_bytes(b"data")
    store.root.mkdir(parents=True)
    (store.root / object_id[:2]).symlink_to(outside)
    with pytest.raises(IntegrityError):
        store.get_bytes(object_id)
    with pytest.raises(IntegrityError, match="link"):
        store.put_bytes(b"data")


def test_json_that_does_not_parse_is_an_integrity_error(store: ContentStore) -> None:
    object_id = store.put_bytes(b"{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        store.get_json(object_id)


@pytest.mark.parametrize("bad", ["", "A" * 64, "0" * 63, "../" + "0" * 61, "g" * 64])
def test_an_id_that_is_not_sha256_hex_never_touches_the_filesystem(store: ContentStore, bad: str) -> None:
    with pytest.raises(InvalidIdError):
        store.get_bytes(bad)
    with pytest.raises(InvalidIdError):
        store.path_for(bad)
    assert not store.root.exists()


def test_listing_skips_names_that_are_not_object_ids(store: ContentStore) -> None:
    object_id = store.put_bytes(b"one")
    (store.root / object_id[:2] / "stray.tmp").write_bytes(b"")
    (store.root / "notes").mkdir()
    (store.root / "zz").write_bytes(b"")
    assert list(store.iter_ids()) == [object_id]


def test_an_empty_store_lists_nothing(store: ContentStore) -> None:
    assert list(store.iter_ids()) == []
