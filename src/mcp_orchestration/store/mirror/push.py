"""``mirror push``: put what a mirror lacks of a verified store on it, the head last.

The store is verified first (under the host's anchor, as every reader does).
What the mirror already has is read from its own head: that head must be one
this store signed, on the current chain, and not newer, or the push is refused
(it would overwrite another store's mirror, or roll a mirror back). Every
object is immutable and named by its hash, so only what the heads since the
mirror's one reach is sent: their roots, the client trees that changed, the
new entries and their configs, and the heads themselves (a desktop walks
them back to the last head it accepted). Key history versions follow, then
``index/HEAD``: a reader never sees a head that names a file not yet there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mcp_orchestration.core.errors import ConflictError
from mcp_orchestration.store.cas import digest_of
from mcp_orchestration.store.mirror.transport import Target
from mcp_orchestration.store.mirror.tree import HEAD_PATH, MAX_HEAD_BYTES, key_path, object_path
from mcp_orchestration.store.model import read_entry, read_profiles, read_root
from mcp_orchestration.store.repository import Repository
from mcp_orchestration.trust import verifier
from mcp_orchestration.trust.history import KeyHistory
from mcp_orchestration.trust.verifier import SignedHead


@dataclass(frozen=True)
class PushResult:
    url: str
    index_version: int
    head_id: str
    mirror_version: int | None  # the version the mirror had before (None: it was empty)
    objects: int  # objects sent, heads included
    key_versions: int  # key history versions sent
    bytes_sent: int


def push(repository: Repository, target: Target) -> PushResult:
    """Bring the mirror at ``target`` up to the store's current, verified index."""
    repository.verify()
    history, current = repository.snapshot()
    remote = _mirror_head(repository, target, history, current)
    if remote is not None and remote.head_id == current.head_id:
        return PushResult(target.url, current.head.version, current.head_id, remote.head.version, 0, 0, 0)
    new_heads = _heads_since(repository, history, current, remote)
    known = _reachable(repository, remote) if remote is not None else set()
    objects = 0
    for signed in new_heads:
        for object_id in _new_objects(repository, signed, known):
            target.put(object_path(object_id), repository.objects.get_bytes(object_id))
            objects += 1
        target.put(object_path(signed.head_id), signed.envelope_bytes)
        objects += 1
    first_key = remote.head.key_history_version + 1 if remote is not None else 1
    for version in history.versions[first_key - 1 :]:
        target.put(key_path(version.version), version.envelope_bytes)
    target.put(HEAD_PATH, current.envelope_bytes)
    target.commit()
    return PushResult(
        url=target.url,
        index_version=current.head.version,
        head_id=current.head_id,
        mirror_version=remote.head.version if remote is not None else None,
        objects=objects,
        key_versions=len(history.versions) - first_key + 1,
        bytes_sent=target.counters.bytes_sent,
    )


def _mirror_head(repository: Repository, target: Target, history: KeyHistory, current: SignedHead) -> SignedHead | None:
    """The mirror's head, if it has one, checked to be a head of this store at or before the current one."""
    data = target.read(HEAD_PATH, MAX_HEAD_BYTES)
    if data is None:
        return None
    if data == current.envelope_bytes:
        return current
    hint = "Push to an empty location, or empty this one if it is yours (a mirror serves one store)."
    remote = verifier.signed_head_or_none(data, history, "The mirror's index")
    if remote is None:
        return _vouched_by_chain(repository, history, current, data, hint=hint, url=target.url)
    if remote.head.version > current.head.version:
        raise ConflictError(
            f"The mirror at {target.url} holds index version {remote.head.version}, newer than this store's "
            f"{current.head.version}: pushing would roll it back.",
            hint="Push from the store that published it (is this a stale copy or an old backup?).",
        )
    if verifier.ancestor_id(current, remote.head.version, history, repository.objects.get_bytes) != remote.head_id:
        raise ConflictError(
            f"The mirror at {target.url} holds index version {remote.head.version}, which is not on this "
            "store's chain (the store was rewound or restored since).",
            hint=hint,
        )
    return remote


def _vouched_by_chain(
    repository: Repository, history: KeyHistory, current: SignedHead, data: bytes, *, hint: str, url: str
) -> SignedHead:
    """A mirror head no valid signature covers any more (its key was revoked since), if it is on the chain."""
    head_id = digest_of(data)
    for link in verifier.walk_chain(current, history, repository.objects.get_bytes):
        if link.signed.head_id == head_id:
            return link.signed
    raise ConflictError(f"The mirror at {url} holds an index this store did not sign.", hint=hint)


def _heads_since(
    repository: Repository, history: KeyHistory, current: SignedHead, remote: SignedHead | None
) -> list[SignedHead]:
    """The heads after the mirror's, oldest first (all of them for an empty mirror)."""
    heads = []
    for link in verifier.walk_chain(current, history, repository.objects.get_bytes):
        if remote is not None and link.signed.head_id == remote.head_id:
            break
        heads.append(link.signed)
    heads.reverse()
    return heads


def _reachable(repository: Repository, head: SignedHead) -> set[str]:
    """What a head's tree names (root, client trees, latest entries and their configs): on the mirror already."""
    root = read_root(repository.objects, head.head)
    known = {head.head.root, *([] if root.policy is None else [root.policy])}
    for tree_id in root.clients.values():
        known.add(tree_id)
        for entry_id in read_profiles(repository.objects, tree_id).values():
            known.add(entry_id)
            known.update(read_entry(repository.objects, entry_id).named_objects())
    return known


def _new_objects(repository: Repository, signed: SignedHead, known: set[str]) -> Iterator[str]:
    """The objects of ``signed``'s tree not in ``known`` (which grows). Heads are taken oldest first, so an
    entry's previous entry was sent with the head it was new in, or is the mirror's."""
    if signed.head.root in known:
        return
    known.add(signed.head.root)
    yield signed.head.root
    root = read_root(repository.objects, signed.head)
    if root.policy is not None and root.policy not in known:
        known.add(root.policy)
        yield root.policy
    for tree_id in root.clients.values():
        if tree_id in known:
            continue
        known.add(tree_id)
        yield tree_id
        for entry_id in read_profiles(repository.objects, tree_id).values():
            if entry_id in known:
                continue
            known.add(entry_id)
            yield entry_id
            for named in read_entry(repository.objects, entry_id).named_objects():
                if named not in known:
                    known.add(named)
                    yield named
