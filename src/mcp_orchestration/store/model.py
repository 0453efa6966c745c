"""The index's object model: head, root, client tree and profile entry.

The index is a Merkle tree in the CAS, stored the way git stores trees. Only
the small *head* is signed; it names a *root*, which maps each client to a
*client tree*, which maps each profile to its latest *entry*. An entry names
its artifact and the entry before it, so a profile's history is its entry
chain and the audit log is the head chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_orchestration.core.errors import IntegrityError, InvalidIdError
from mcp_orchestration.security.ids import check_artifact_id, is_name_id


def _field(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise IntegrityError(f"{what} has a malformed field {name!r}.")
    return value


def _optional_id(raw: Mapping[str, Any], name: str, what: str) -> str | None:
    value = raw.get(name)
    return None if value is None else _object_id(value, what)


def _object_id(value: object, what: str) -> str:
    try:
        return check_artifact_id(value)
    except InvalidIdError:
        raise IntegrityError(f"{what} refers to a malformed object id.") from None


def _expect_type(raw: Any, type_name: str, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict) or raw.get("_type") != type_name:
        raise IntegrityError(f"{what} is not a {type_name} object.")
    return raw


@dataclass(frozen=True)
class Head:
    """The signed part of one index version."""

    version: int
    root: str
    previous_head: str | None
    key_history_version: int
    key_history_digest: str
    created_at: str

    @classmethod
    def next(cls, version: int, root: str, previous_head: str | None, history_digests: list[str], now: str) -> Head:
        """A head that commits to the key-history version (number and digest) it is signed under."""
        return cls(version, root, previous_head, len(history_digests), history_digests[-1], now)

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": "head",
            "version": self.version,
            "root": self.root,
            "previous_head": self.previous_head,
            "key_history_version": self.key_history_version,
            "key_history_digest": self.key_history_digest,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Head:
        body = _expect_type(raw, "head", what)
        head = cls(
            version=_field(body, "version", int, what),
            root=_object_id(body.get("root"), what),
            previous_head=_optional_id(body, "previous_head", what),
            key_history_version=_field(body, "key_history_version", int, what),
            key_history_digest=_object_id(body.get("key_history_digest"), what),
            created_at=_field(body, "created_at", str, what),
        )
        if head.version < 1 or (head.version == 1) != (head.previous_head is None):
            raise IntegrityError(f"{what} has an inconsistent version or previous head.")
        return head


@dataclass(frozen=True)
class Entry:
    """One published version of one profile."""

    client: str
    profile: str
    artifact: str
    previous_entry: str | None
    changelog: str
    published_at: str
    index_version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": "entry",
            "client": self.client,
            "profile": self.profile,
            "artifact": self.artifact,
            "previous_entry": self.previous_entry,
            "changelog": self.changelog,
            "published_at": self.published_at,
            "index_version": self.index_version,
        }

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Entry:
        body = _expect_type(raw, "entry", what)
        client, profile = body.get("client"), body.get("profile")
        if not (is_name_id(client) and is_name_id(profile)):
            raise IntegrityError(f"{what} names a malformed client or profile.")
        return cls(
            client=client,
            profile=profile,
            artifact=_object_id(body.get("artifact"), what),
            previous_entry=_optional_id(body, "previous_entry", what),
            changelog=_field(body, "changelog", str, what),
            published_at=_field(body, "published_at", str, what),
            index_version=_field(body, "index_version", int, what),
        )


def tree_to_json(type_name: str, key: str, children: Mapping[str, str]) -> dict[str, Any]:
    """A root (``clients``) or client tree (``profiles``) mapping names to object ids."""
    return {"_type": type_name, key: dict(sorted(children.items()))}


def tree_from_json(raw: Any, type_name: str, key: str, kind: str, what: str) -> dict[str, str]:
    """Parse a root or client tree, checking every name and id in it."""
    body = _expect_type(raw, type_name, what)
    children = body.get(key)
    if not isinstance(children, dict):
        raise IntegrityError(f"{what} has a malformed {key!r} map.")
    parsed: dict[str, str] = {}
    for name, object_id in children.items():
        try:
            if not is_name_id(name):
                raise InvalidIdError(f"malformed {kind} name")
            parsed[name] = check_artifact_id(object_id)
        except InvalidIdError:
            raise IntegrityError(f"{what} has a malformed {kind} entry.") from None
    return parsed
