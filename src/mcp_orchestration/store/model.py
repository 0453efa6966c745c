"""The index's object model below the head: root, client tree and profile entry.

The index is a Merkle tree in the CAS, stored the way git stores trees. Only
the small *head* is signed (``trust/metadata.py``); it names a *root*, which maps each client to a
*client tree*, which maps each profile to its latest *entry*. An entry names
its artifact and the entry before it, so a profile's history is its entry
chain and the audit log is the head chain. An entry also names the profile's
latest *tool lock* (``config/toollock.py``), carried forward by later publishes
so that a lock taken for an older artifact shows as stale, and who published it
(``published_by``, an authenticated HTTP caller; absent for the host's own
operator); the root names the store's *policy* (``config/policy.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_orchestration.config.policy import POLICY_TYPE, StorePolicy
from mcp_orchestration.config.toollock import ToolLock
from mcp_orchestration.core.errors import IntegrityError, InvalidIdError, ValidationError
from mcp_orchestration.security.ids import check_artifact_id, is_name_id
from mcp_orchestration.security.principal import Principal
from mcp_orchestration.store.cas import ContentStore
from mcp_orchestration.trust.metadata import Head, json_field, object_id, optional_object_id, typed_body


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
    lock: str | None = None
    published_by: Principal | None = None

    def to_json(self) -> dict[str, Any]:
        # Entries without a lock or a publisher stay exactly as earlier releases wrote them.
        lock = {} if self.lock is None else {"lock": self.lock}
        publisher = {} if self.published_by is None else {"published_by": self.published_by.to_json()}
        return (
            lock
            | publisher
            | {
                "_type": "entry",
                "client": self.client,
                "profile": self.profile,
                "artifact": self.artifact,
                "previous_entry": self.previous_entry,
                "changelog": self.changelog,
                "published_at": self.published_at,
                "index_version": self.index_version,
            }
        )

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Entry:
        body = typed_body(raw, "entry", what)
        client, profile = body.get("client"), body.get("profile")
        if not (is_name_id(client) and is_name_id(profile)):
            raise IntegrityError(f"{what} names a malformed client or profile.")
        return cls(
            client=client,
            profile=profile,
            artifact=object_id(body.get("artifact"), what),
            previous_entry=optional_object_id(body, "previous_entry", what),
            changelog=json_field(body, "changelog", str, what),
            published_at=json_field(body, "published_at", str, what),
            index_version=json_field(body, "index_version", int, what),
            lock=optional_object_id(body, "lock", what),
            published_by=Principal.from_json(body["published_by"], what) if "published_by" in body else None,
        )

    def named_objects(self) -> tuple[str, ...]:
        """The objects this entry names besides the entry before it: its artifact and its tool lock."""
        return (self.artifact,) if self.lock is None else (self.artifact, self.lock)


def tree_to_json(type_name: str, key: str, children: Mapping[str, str]) -> dict[str, Any]:
    """A root (``clients``) or client tree (``profiles``) mapping names to object ids."""
    return {"_type": type_name, key: dict(sorted(children.items()))}


def tree_from_json(raw: Any, type_name: str, key: str, kind: str, what: str) -> dict[str, str]:
    """Parse a root or client tree, checking every name and id in it."""
    body = typed_body(raw, type_name, what)
    children = body.get(key)
    if not isinstance(children, dict):
        raise IntegrityError(f"{what} has a malformed {key!r} map.")
    parsed: dict[str, str] = {}
    for name, child_id in children.items():
        try:
            if not is_name_id(name):
                raise InvalidIdError(f"malformed {kind} name")
            parsed[name] = check_artifact_id(child_id)
        except InvalidIdError:
            raise IntegrityError(f"{what} has a malformed {kind} entry.") from None
    return parsed


@dataclass(frozen=True)
class Root:
    """The tree a head signs: each client's tree, and the store's policy (None: the default policy)."""

    clients: dict[str, str]
    policy: str | None = None

    def to_json(self) -> dict[str, Any]:
        policy = {} if self.policy is None else {"policy": self.policy}
        return tree_to_json("root", "clients", self.clients) | policy

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Root:
        clients = tree_from_json(raw, "root", "clients", "client", what)
        return cls(clients, optional_object_id(raw, "policy", what))


def read_root(objects: ContentStore, head: Head) -> Root:
    return Root.from_json(objects.get_json(head.root), f"Root {head.root}")


def read_clients(objects: ContentStore, head: Head) -> dict[str, str]:
    """The client trees of ``head``'s root, by client name."""
    return read_root(objects, head).clients


def read_profiles(objects: ContentStore, tree_id: str) -> dict[str, str]:
    """The latest entry of each profile in a client tree, by profile name."""
    return tree_from_json(objects.get_json(tree_id), "client", "profiles", "profile", f"Client tree {tree_id}")


def read_entry(objects: ContentStore, entry_id: str) -> Entry:
    return Entry.from_json(objects.get_json(entry_id), f"Entry {entry_id}")


def read_lock(objects: ContentStore, lock_id: str) -> ToolLock:
    """A tool lock, every pin in it checked against its definition."""
    return ToolLock.from_json(objects.get_json(lock_id), f"Tool lock {lock_id}")


def read_policy(objects: ContentStore, policy_id: str | None) -> StorePolicy:
    """The store's policy (the default one when the root names none)."""
    if policy_id is None:
        return StorePolicy()
    return parse_policy(objects.get_json(policy_id), f"Policy {policy_id}")


def parse_policy(raw: Any, what: str) -> StorePolicy:
    """A stored policy; one that does not parse is damage (it was checked when it was set)."""
    if not isinstance(raw, dict) or raw.get("_type") != POLICY_TYPE:
        raise IntegrityError(f"{what} is not a policy object.")
    try:
        return StorePolicy.from_json(raw, what)
    except ValidationError as exc:
        raise IntegrityError(exc.message) from None
