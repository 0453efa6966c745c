"""store/model.py: index objects round-trip through JSON, and anything malformed read back is damage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mcp_orchestration.core.errors import IntegrityError
from mcp_orchestration.store.model import Entry, tree_from_json, tree_to_json
from mcp_orchestration.trust.metadata import Head

A, B, C = "a" * 64, "b" * 64, "c" * 64
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def _head(**changes: Any) -> dict[str, Any]:
    return {**Head.next(2, A, B, [C, C], now=NOW, lifetime=timedelta(days=7)).to_json(), **changes}


def _entry(**changes: Any) -> dict[str, Any]:
    entry = Entry("cursor", "main", A, None, "first", "2024-01-02T03:04:05Z", 2)
    return {**entry.to_json(), **changes}


def test_a_head_commits_to_the_key_history_it_is_signed_under_and_round_trips() -> None:
    head = Head.next(3, A, B, [C, B, A], now=NOW, lifetime=timedelta(hours=36))
    assert (head.key_history_version, head.key_history_digest) == (3, A)
    assert (head.created_at, head.expires) == ("2024-01-02T03:04:05Z", "2024-01-03T15:04:05Z")
    assert head.expiry() == NOW + timedelta(hours=36)
    assert Head.from_json(head.to_json(), "head") == head


def test_a_head_signed_before_heads_expired_still_parses_with_no_expiry() -> None:
    """Stores written by earlier releases have heads without ``expires``: they keep verifying."""
    old = _head()
    del old["expires"]
    head = Head.from_json(old, "head")
    assert head.expires is None and head.expiry() is None
    assert "expires" not in head.to_json()


@pytest.mark.parametrize("expires", ["tomorrow", "2024-01-02 03:04:05", 1704164645, ""])
def test_a_malformed_expiry_is_an_integrity_error(expires: object) -> None:
    with pytest.raises(IntegrityError, match="expires"):
        Head.from_json(_head(expires=expires), "head")


def test_an_entry_round_trips() -> None:
    entry = Entry("cursor", "main", A, B, "second", "2024-01-02T03:04:05Z", 3)
    assert Entry.from_json(entry.to_json(), "entry") == entry


@pytest.mark.parametrize(
    "raw",
    [
        _head(_type="entry"),
        _head(version="2"),
        _head(version=True),
        _head(key_history_version=True),
        _head(root="A" * 64),
        _head(previous_head="../x"),
        _head(key_history_digest=None),
        _head(created_at=5),
        _head(version=0),
        _head(version=1),  # the first head has no previous head
        _head(previous_head=None),  # and every later one has one
        [],
    ],
    ids=[
        "wrong type",
        "version as text",
        "version as boolean",
        "history version as boolean",
        "root not lowercase hex",
        "previous head not an id",
        "no history digest",
        "created_at not text",
        "version 0",
        "version 1 with a previous head",
        "version 2 without one",
        "not an object",
    ],
)
def test_a_malformed_head_is_an_integrity_error(raw: object) -> None:
    with pytest.raises(IntegrityError):
        Head.from_json(raw, "head 2")


@pytest.mark.parametrize(
    "raw",
    [
        _entry(_type="head"),
        _entry(client="../etc"),
        _entry(profile="Main"),
        _entry(artifact="x"),
        _entry(previous_entry=5),
        _entry(changelog=None),
        _entry(index_version=2.0),
        _entry(index_version=True),
    ],
    ids=["wrong type", "client", "profile", "artifact", "previous entry", "changelog", "index version", "boolean"],
)
def test_a_malformed_entry_is_an_integrity_error(raw: object) -> None:
    with pytest.raises(IntegrityError):
        Entry.from_json(raw, "entry")


def test_a_tree_is_written_sorted_and_read_back_equal() -> None:
    tree = tree_to_json("root", "clients", {"vscode": B, "cursor": A})
    assert list(tree["clients"]) == ["cursor", "vscode"]
    assert tree_from_json(tree, "root", "clients", "client", "root") == {"cursor": A, "vscode": B}


@pytest.mark.parametrize(
    "raw",
    [
        {"_type": "client", "clients": {"cursor": A}},
        {"_type": "root", "clients": [["cursor", A]]},
        {"_type": "root", "clients": {"../cursor": A}},
        {"_type": "root", "clients": {"cursor": "A" * 64}},
    ],
    ids=["wrong type", "map not an object", "bad name", "bad id"],
)
def test_a_malformed_tree_is_an_integrity_error(raw: object) -> None:
    with pytest.raises(IntegrityError):
        tree_from_json(raw, "root", "clients", "client", "root")
