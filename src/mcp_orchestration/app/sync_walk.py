"""The trust walk a desktop does over a mirror, like a TUF client's: keys, head, chain, objects.

Nothing from the mirror is used before it is checked: the key history is
verified version by version from the pinned root, up to the newest version
the mirror holds, whatever the head claims (each new version fetched only
after the one before it verified, so a forged one costs one download);
the head against that history, the versions accepted before and its signed
expiry; its descent from the head accepted before through the mirror's own
copies of the heads between; and every object against the id the signed
tree names it by.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mcp_orchestration.app.policy_rules import require_current_lock, require_pinned
from mcp_orchestration.app.sync_state import StateDir, SyncState
from mcp_orchestration.config.model import McpConfig
from mcp_orchestration.config.payload import MAX_PAYLOAD_BYTES, parse_payload
from mcp_orchestration.config.policy import StorePolicy
from mcp_orchestration.config.toollock import MAX_LOCK_BYTES, ToolLock
from mcp_orchestration.core.errors import IntegrityError, MirrorMissingError, NotFoundError
from mcp_orchestration.store.mirror.transport import Source, fetch_file
from mcp_orchestration.store.mirror.tree import (
    MAX_HEAD_BYTES,
    MAX_KEY_VERSION_BYTES,
    MAX_KEY_VERSIONS,
    MAX_OBJECT_BYTES,
    key_path,
    object_path,
)
from mcp_orchestration.store.model import Entry, Root, parse_policy, tree_from_json
from mcp_orchestration.trust import dsse, verifier
from mcp_orchestration.trust.freshness import require_fresh
from mcp_orchestration.trust.history import KeyHistory
from mcp_orchestration.trust.verifier import AcceptedHead, SignedHead

MAX_ENTRY_BYTES = 1 << 20
_DESCENT_HINT = (
    "The last good config stays in place. If the publisher re-created or restored its store on purpose, remove "
    "this desktop's sync state directory to accept the new index; otherwise the mirror serves an old or forged copy."
)


@dataclass(frozen=True)
class VerifiedIndex:
    history: KeyHistory
    head: SignedHead
    new_key_versions: list[bytes]  # verified versions the desktop did not have yet


class MirrorObjects:
    """Objects read from a mirror, each checked against its id."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def get_bytes(self, object_id: str, limit: int = MAX_OBJECT_BYTES) -> bytes:
        data = fetch_file(self.source, object_path(object_id), limit)
        if hashlib.sha256(data).hexdigest() != object_id:
            raise IntegrityError(
                f"Object {object_id} from the mirror at {self.source.url} does not hash to its id: it was "
                "tampered with, truncated or swapped for another."
            )
        return data

    def get_json(self, object_id: str, limit: int = MAX_OBJECT_BYTES) -> Any:
        try:
            return json.loads(self.get_bytes(object_id, limit))
        except (ValueError, RecursionError):
            raise IntegrityError(f"Object {object_id} from the mirror is not JSON.") from None

    def head_bytes(self, head_id: str) -> bytes:
        return self.get_bytes(head_id, MAX_HEAD_BYTES)


def verify_index(
    head_data: bytes, source: Source, *, state: SyncState | None, state_dir: StateDir, expect_root: str, now: datetime
) -> VerifiedIndex:
    """The mirror's head, verified from the pinned root, fresh, and descending from the head accepted before."""
    known = state.key_history_version if state is not None else 0
    stored = state_dir.key_versions(known)
    new: list[bytes] = []

    def documents() -> Iterator[bytes]:
        yield from stored
        claimed = _claimed_key_versions(head_data)
        for number in range(known + 1, MAX_KEY_VERSIONS + 1):
            try:
                data = fetch_file(source, key_path(number), MAX_KEY_VERSION_BYTES)
            except MirrorMissingError:
                if number <= claimed:
                    raise
                return  # the newest version the mirror holds
            new.append(data)
            yield data

    history = KeyHistory.verify(documents(), expect_root=expect_root)
    accepted_version = state.index_version if state is not None else 0
    signed = verifier.verify_current(head_data, history, accepted_version, known)
    require_fresh(signed.head.version, signed.head.expires, now)
    if state is not None:
        accepted = AcceptedHead(state.head_id, state.index_version, state.key_history_version)
        verifier.check_descent(signed, history, MirrorObjects(source).head_bytes, accepted, _DESCENT_HINT)
    return VerifiedIndex(history, signed, new)


def _claimed_key_versions(head_data: bytes) -> int:
    """How many key history versions the (not yet verified) head says it was signed under: the versions the
    mirror must hold. Those it holds beyond are read too (each verified before the next), so a head that
    claims an old history to hide a rotation or revocation the mirror carries is judged under it."""
    envelope = dsse.Envelope.from_bytes(head_data, what="The mirror's index")
    try:
        claimed = json.loads(envelope.payload).get("key_history_version")
    except (ValueError, RecursionError, AttributeError):
        raise IntegrityError("The mirror's index has a payload that is not a JSON object.") from None
    if not isinstance(claimed, int) or isinstance(claimed, bool) or not 1 <= claimed <= MAX_KEY_VERSIONS:
        raise IntegrityError("The mirror's index claims an impossible key history version.")
    return claimed


@dataclass(frozen=True)
class PublishedProfile:
    client: str
    profile: str
    entry: Entry
    payload: Any


@dataclass(frozen=True)
class PublishedTree:
    """A verified head's root and the store policy it names, read once for every profile applied."""

    root: Root
    policy: StorePolicy


def read_tree(objects: MirrorObjects, head: SignedHead) -> PublishedTree:
    root = Root.from_json(objects.get_json(head.head.root), f"Root {head.head.root}")
    policy = StorePolicy() if root.policy is None else parse_policy(objects.get_json(root.policy), "The policy")
    return PublishedTree(root, policy)


def read_profile(
    objects: MirrorObjects, head: SignedHead, tree: PublishedTree, client: str, profile: str
) -> PublishedProfile:
    """A profile's latest config under a verified head: client tree, entry, artifact (and the tool lock and
    pinned launchers the store's policy asks for), each checked."""
    tree_id = tree.root.clients.get(client)
    profiles = (
        tree_from_json(objects.get_json(tree_id), "client", "profiles", "profile", f"Client tree {tree_id}")
        if tree_id is not None
        else {}
    )
    entry_id = profiles.get(profile)
    if entry_id is None:
        raise NotFoundError(
            f"The mirror's index (version {head.head.version}) publishes no config for {client}/{profile}.",
            hint="Check the --apply names against `mcp-orchestration list` at the publisher.",
        )
    entry = Entry.from_json(objects.get_json(entry_id, MAX_ENTRY_BYTES), f"Entry {entry_id}")
    if (entry.client, entry.profile) != (client, profile):
        raise IntegrityError(
            f"Entry {entry_id} is filed under {client}/{profile} but is {entry.client}/{entry.profile}."
        )
    require_current_lock(
        tree.policy,
        entry,
        lambda lock_id: ToolLock.from_json(objects.get_json(lock_id, MAX_LOCK_BYTES), f"Tool lock {lock_id}"),
    )
    data = objects.get_bytes(entry.artifact, MAX_PAYLOAD_BYTES)
    payload = parse_payload(data, f"Artifact {entry.artifact}")
    config = McpConfig.from_payload(payload, f"Artifact {entry.artifact}")
    require_pinned(tree.policy, config, refused="nothing was written")
    return PublishedProfile(client, profile, entry, payload)
