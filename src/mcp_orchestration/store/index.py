"""The signed index: publish, read and verify, with a hash chain and a rollback guard.

On disk, under ``storage/``::

    objects/sha256/ab/cdef...   every object (artifacts, entries, trees, roots, head envelopes)
    index/HEAD                  the current head, a DSSE envelope (also kept in objects/)
    index/accepted              the highest head version this store has accepted
    index/verified              the last head whose whole chain was verified
    keys/00000001.json ...      the public key history
    .lock                       held for every write

Every write holds the lock for the whole read -> version + 1 -> sign -> write
sequence. Objects are written before the head that names them, the head
before ``accepted``: a crash at any point leaves the old or the new state.
A head's own copy in ``objects/`` is written only once it is ``HEAD``, so every
signed head in the CAS was accepted once: one that is not on the current
chain is evidence of a rewound index (a fork), never a leftover of a crash.
Readers read ``accepted`` before ``HEAD``, so a concurrent write can never look
like a rollback.

The store does not vouch for itself: a :class:`TrustPolicy` given by the
host (its pinned root, the last head it accepted) sees every key history and
every new head before any reader uses them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from mcp_orchestration.core.clock import utc_now
from mcp_orchestration.core.errors import (
    ConflictError,
    ForkError,
    IntegrityError,
    InvalidIdError,
    KeyHistoryError,
    NotFoundError,
    NotInitializedError,
    RollbackError,
    SignatureError,
    VerificationError,
)
from mcp_orchestration.core.fsutil import (
    UnsafeFileError,
    WriteBatch,
    atomic_write,
    ensure_dir,
    exclusive_lock,
    read_regular,
    remove_stale_temps,
    require_real_directories,
)
from mcp_orchestration.security.ids import check_artifact_id, check_name_id
from mcp_orchestration.store.cas import MAX_OBJECT_BYTES, ContentStore, canonical_bytes, digest_of
from mcp_orchestration.store.guard import Guard, create_guard, raise_guard, read_guard
from mcp_orchestration.store.model import Entry, Head, tree_from_json, tree_to_json
from mcp_orchestration.trust import dsse
from mcp_orchestration.trust.history import KeyHistory, KeyRecord, KeyStatus
from mcp_orchestration.trust.signer import Signer

_LAYOUT = ("index", "keys", "objects", "objects/sha256")  # drafts/ is opened through no-follow descriptors


@dataclass(frozen=True)
class SignedHead:
    """A head whose signature has been checked, with its object id and signer."""

    head_id: str
    head: Head
    keyid: str
    envelope_bytes: bytes


class _AnyBase(enum.Enum):
    ANY = "any"


ANY_BASE: Final = _AnyBase.ANY
"""An update's ``expected_base`` when whatever is published now may be replaced (the operator's ``publish``)."""

ExpectedBase = str | None | Literal[_AnyBase.ANY]


@dataclass(frozen=True)
class ProfileUpdate:
    """One profile's new payload in a publish.

    ``expected_base`` is the artifact the new payload was made from (None: made
    when nothing was published): if the profile's current artifact is another,
    someone published in between and the publish is a conflict, not a silent
    overwrite. ``ANY_BASE`` skips the check.
    """

    client: str
    profile: str
    payload: dict[str, Any]
    changelog: str = ""
    expected_base: ExpectedBase = field(default=ANY_BASE, kw_only=True)


@dataclass(frozen=True)
class PublishResult:
    index_version: int
    artifacts: dict[str, str]
    unchanged: list[str]
    keyid: str


@dataclass
class VerifyReport:
    index_version: int
    head_id: str
    keyid: str
    key_history_version: int
    heads_checked: int
    objects_checked: int = 0
    heads_vouched_by_chain: int = 0
    deep: bool = False
    profiles: int = 0
    unreferenced_objects: int = 0
    damaged_unreferenced: list[str] = field(default_factory=list)


class TrustPolicy(Protocol):
    """What the host holds against the store: called before a key history or a new head is used."""

    def check_history(self, history: KeyHistory) -> None:
        """Raise unless ``history`` is rooted in what the host trusts."""

    def check_head(self, index: Index, history: KeyHistory, head: SignedHead) -> None:
        """Raise unless ``head`` may follow what the host accepted before; then remember it."""


class Index:
    """One store: its objects, its signed head chain and its key history."""

    def __init__(self, storage_dir: Path, policy: TrustPolicy | None = None) -> None:
        self.storage_dir = storage_dir
        self.policy = policy
        self.objects = ContentStore(storage_dir / "objects")
        self.index_dir = storage_dir / "index"
        self.keys_dir = storage_dir / "keys"
        self.head_path = self.index_dir / "HEAD"
        self.accepted_path = self.index_dir / "accepted"
        self.verified_path = self.index_dir / "verified"
        self.lock_path = storage_dir / ".lock"
        self._history_cache: tuple[tuple[tuple[str, int, int, int], ...], KeyHistory] | None = None
        self._head_cache: tuple[bytes, KeyHistory, SignedHead] | None = None
        self._swept = False

    # -- locking and small state files -------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """The exclusive lock every write holds from its first read to its last write."""
        ensure_dir(self.storage_dir)
        with exclusive_lock(self.lock_path):
            self._check_layout()
            yield

    def _check_layout(self) -> None:
        """The store's own directories are real directories: a link in their place would lead reads and writes
        outside the store."""
        try:
            require_real_directories(self.storage_dir, _LAYOUT)
        except UnsafeFileError as exc:
            raise IntegrityError(
                f"{exc.filename} is not a directory of the store (a link?): the store's layout was tampered with."
            ) from None

    def _sweep_stale_temps(self) -> None:
        """Remove what crashed writers left in index/ and keys/ (once per process; caller holds the lock)."""
        if not self._swept:
            remove_stale_temps(self.index_dir)
            remove_stale_temps(self.keys_dir)
            self._swept = True

    def exists(self) -> bool:
        """Whether the store was initialised (its key history begins)."""
        return KeyHistory.exists(self.keys_dir)

    def guard(self) -> Guard | None:
        """The rollback guard (None before init)."""
        return read_guard(self.accepted_path)

    # -- history and heads -------------------------------------------------------------

    def load_history(self, expect_root: str | None = None, *, fresh: bool = False) -> KeyHistory:
        """The verified key history (raises if the store is not initialised).

        The last history verified by this process is reused while its files are
        unchanged on disk (same names, sizes, inodes and times); ``fresh``
        re-verifies from the files regardless.
        """
        state = self._history_state()
        if fresh or self._history_cache is None or self._history_cache[0] != state:
            loaded = KeyHistory.load(self.keys_dir)
            if self.policy is not None:
                self.policy.check_history(loaded)
            self._history_cache = (state, loaded)
        history = self._history_cache[1]
        if expect_root is not None:
            history.require_root(expect_root)
        return history

    def _history_state(self) -> tuple[tuple[str, int, int, int], ...]:
        try:
            entries = os.scandir(self.keys_dir)
        except FileNotFoundError:
            return ()
        state = []
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # a writer's temporary file, renamed or removed at any moment
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat()
                    state.append((entry.name, st.st_size, st.st_ino, st.st_mtime_ns))
        return tuple(sorted(state))

    def _verify_envelope(self, data: bytes, history: KeyHistory, what: str) -> SignedHead:
        """Check a head envelope's signature over its exact bytes, then parse it.

        A signature counts only from a key that is not revoked and whose range
        covers the version the head claims.
        """
        envelope = dsse.Envelope.from_bytes(data, what=what)
        verifiers = {
            keyid: record.public_key.verify
            for keyid, record in history.keys.items()
            if record.status is not KeyStatus.REVOKED
        }
        valid = dsse.verified_keyids(envelope, dsse.INDEX_PAYLOAD_TYPE, verifiers, what=what)
        if not valid:
            raise SignatureError(f"{what} carries no valid signature from a trusted, unrevoked key.")
        head = _parse_head(envelope, what)
        allowed = history.signer_of(head.version)
        if allowed is None or allowed[0] not in valid:
            raise SignatureError(f"{what} (index version {head.version}) is not signed by the key active for it.")
        self._check_history_binding(head, history, what)
        head_id = digest_of(data)
        _check_last_head(head_id, head, allowed[1], what)
        return SignedHead(head_id, head, allowed[0], data)

    @staticmethod
    def _check_history_binding(head: Head, history: KeyHistory, what: str) -> None:
        """A head names the exact key-history version it was signed under; that version must be in the chain."""
        number = head.key_history_version
        if not 1 <= number <= len(history.versions) or history.versions[number - 1].digest != head.key_history_digest:
            raise KeyHistoryError(f"{what} was signed under key history version {number}, which this store lacks.")

    def snapshot(self, expect_root: str | None = None, *, fresh: bool = False) -> tuple[KeyHistory, SignedHead]:
        """The verified key history and current head, as one consistent view for readers.

        Readers hold no lock, so the order matters: ``accepted`` before ``HEAD``
        (a writer raises ``accepted`` only after ``HEAD``), and ``HEAD`` before
        the key history (a writer appends a key before any head it signs).
        """
        self._check_layout()
        guard = self.guard()
        data = self._read_head(guard)
        history = self.load_history(expect_root, fresh=fresh)
        return history, self._check_head(data, guard, history)

    def current_head(self, history: KeyHistory) -> SignedHead:
        """The verified current head, for writers that hold the lock (no one can change it meanwhile)."""
        guard = self.guard()
        return self._check_head(self._read_head(guard), guard, history)

    def _read_head(self, guard: Guard | None) -> bytes:
        """HEAD's bytes; a link, FIFO, device or oversized file there is damage, never followed or read."""
        try:
            return read_regular(self.head_path, MAX_OBJECT_BYTES)
        except FileNotFoundError:
            if guard is not None:
                raise RollbackError("The store's current index (index/HEAD) was removed.") from None
            raise NotInitializedError(f"The store at {self.storage_dir} has no index yet.") from None
        except UnsafeFileError as exc:
            raise IntegrityError(f"index/HEAD is not a regular file of the store: it {exc.strerror}.") from None

    def _check_head(self, data: bytes, guard: Guard | None, history: KeyHistory) -> SignedHead:
        """Verify ``HEAD``'s bytes, refusing anything older than the rollback guard."""
        if guard is None:
            raise RollbackError("The store has an index but no rollback guard: index/accepted was removed.")
        cached = self._head_cache
        if cached is not None and cached[0] == data and cached[1] is history:
            signed = cached[2]
            guard.check(signed.head.version, len(history.versions))
            return signed
        signed = self._verify_envelope(data, history, "The current index")
        guard.check(signed.head.version, len(history.versions))
        _check_current_signer(signed, history.keys[signed.keyid])
        if self.policy is not None:
            self.policy.check_head(self, history, signed)
        self._head_cache = (data, history, signed)
        return signed

    def head_by_id(self, head_id: str, history: KeyHistory) -> SignedHead:
        """A past head from the CAS, with its signature checked under ``history``."""
        return self._verify_envelope(self.objects.get_bytes(head_id), history, f"Index head {head_id}")

    def ancestor_id(self, head: SignedHead, version: int, history: KeyHistory) -> str:
        """The id of the head at ``version`` on the chain that ends at ``head`` (walking ``previous``)."""
        report = VerifyReport(head.head.version, head.head_id, head.keyid, len(history.versions), 0)
        signed = head
        while signed.head.version > version + 1 and signed.head.previous_head is not None:
            signed = self._previous_head(signed, signed.head.previous_head, history, report)
        if signed.head.version == version + 1 and signed.head.previous_head is not None:
            return signed.head.previous_head  # signed into its successor: no need to load it to name it
        return signed.head_id

    # -- reading the tree --------------------------------------------------------------

    def _clients(self, head: Head) -> dict[str, str]:
        return tree_from_json(self.objects.get_json(head.root), "root", "clients", "client", f"Root {head.root}")

    def _profiles(self, tree_id: str) -> dict[str, str]:
        return tree_from_json(self.objects.get_json(tree_id), "client", "profiles", "profile", f"Client tree {tree_id}")

    def entry(self, entry_id: str) -> Entry:
        return Entry.from_json(self.objects.get_json(entry_id), f"Entry {entry_id}")

    def list_profiles(self) -> dict[str, list[str]]:
        """Every client with its profiles, from the verified current head."""
        head = self.snapshot()[1].head
        return {client: sorted(self._profiles(tree)) for client, tree in self._clients(head).items()}

    def latest_entry_id(self, client: str, profile: str) -> str:
        """The id of the newest entry of ``client/profile`` under the verified head."""
        check_name_id(client, "client")
        check_name_id(profile, "profile")
        head = self.snapshot()[1].head
        tree = self._clients(head).get(client)
        entry_id = self._profiles(tree).get(profile) if tree else None
        if entry_id is None:
            raise NotFoundError(f"No config is published for client {client!r}, profile {profile!r}.")
        return entry_id

    def iter_entries(self, entry_id: str | None) -> Iterator[Entry]:
        """Walk an entry chain from newest to oldest."""
        while entry_id is not None:
            entry = self.entry(entry_id)
            yield entry
            entry_id = entry.previous_entry

    def profile_history(self, client: str, profile: str) -> list[Entry]:
        """Every published version of a profile, newest first."""
        return list(self.iter_entries(self.latest_entry_id(client, profile)))

    def get_artifact(self, client: str, profile: str, artifact: str | None = None) -> tuple[Entry, Any]:
        """A profile's payload (the latest, or ``artifact`` if it is in the profile's history)."""
        if artifact is not None:
            check_artifact_id(artifact)
        for entry in self.profile_history(client, profile):
            if artifact is None or entry.artifact == artifact:
                return entry, self.objects.get_json(entry.artifact)
        raise NotFoundError(f"Artifact {artifact} is not in the history of {client}/{profile}.")

    # -- writing -----------------------------------------------------------------------

    def _write_head(self, key: Signer, head: Head, batch: WriteBatch, history: KeyHistory) -> SignedHead:
        """Sign ``head`` and make it current, after everything written through ``batch``.

        One barrier makes the new objects and the staged ``HEAD`` durable; only
        then is ``HEAD`` renamed into place, and only then does the head get its
        copy in the CAS (without a barrier: ``HEAD`` holds the same bytes, and the
        next writer makes the copy durable before it builds on it). So no crash
        can leave a signed head in the CAS that was never ``HEAD``. ``accepted``
        follows, overwritten in place without a barrier of its own: losing it to
        a power cut only lowers the rollback guard to a version that was also signed.
        """
        envelope = dsse.sign(dsse.INDEX_PAYLOAD_TYPE, canonical_bytes(head.to_json()), {key.keyid: key.sign})
        data = envelope.to_bytes()
        batch.stage(self.head_path, data)
        batch.commit()
        head_id = self.objects.put_replacing(data, WriteBatch(self.storage_dir))
        guard = Guard(head.version, head.key_history_version)
        if head.version == 1:
            create_guard(self.accepted_path, guard)
        else:
            raise_guard(self.accepted_path, guard)
        signed = SignedHead(head_id, head, key.keyid, data)
        if self.policy is not None:
            self.policy.check_head(self, history, signed)
        self._head_cache = (data, history, signed)
        return signed

    def _keep_head(self, current: SignedHead, batch: WriteBatch) -> None:
        """Make sure the head a new one builds on has its copy in the CAS, durable with ``batch``."""
        self.objects.put_bytes(current.envelope_bytes, batch)

    def initialize(self, key: Signer) -> tuple[KeyHistory, SignedHead, bool]:
        """Create the store pinned to ``key``; re-running it finishes or confirms an earlier init."""
        with self.write_lock():
            ensure_dir(self.index_dir)
            if KeyHistory.exists(self.keys_dir):
                # Another root is a conflict (a different store lives here), said before the host's policy
                # refuses the store as untrusted.
                existing_root = KeyHistory.load(self.keys_dir).root_fingerprint
                if existing_root != key.fingerprint:
                    raise ConflictError(
                        f"The store is already initialised with root key {existing_root}.",
                        hint="Use that key, or choose another --home for a new store.",
                    )
                history = self.load_history()
                if self.head_path.exists() or self.guard() is not None or len(history.versions) > 1:
                    return history, self.current_head(history), False
                history.require_active(key)  # only an init that stopped before its first head resumes
            else:
                history = KeyHistory.create(self.keys_dir, key, utc_now())
            batch = WriteBatch(self.storage_dir)
            root = self.objects.put_json(tree_to_json("root", "clients", {}), batch)
            head = Head.next(1, root, None, history.digests, utc_now())
            return history, self._write_head(key, head, batch, history), True

    def publish(self, key: Signer, updates: Sequence[ProfileUpdate]) -> PublishResult:
        """Publish new payloads for one or more profiles as one new index version."""
        for update in updates:
            check_name_id(update.client, "client")
            check_name_id(update.profile, "profile")
        with self.write_lock():
            self._sweep_stale_temps()
            history = self.load_history()
            history.require_active(key)
            current = self.current_head(history)
            version = current.head.version + 1
            clients = self._clients(current.head)
            trees: dict[str, dict[str, str]] = {}
            artifacts: dict[str, str] = {}
            unchanged: list[str] = []
            now = utc_now()
            batch = WriteBatch(self.storage_dir)
            self._keep_head(current, batch)
            for update in updates:
                name = f"{update.client}/{update.profile}"
                if update.client not in trees:
                    tree_id = clients.get(update.client)
                    trees[update.client] = self._profiles(tree_id) if tree_id else {}
                profiles = trees[update.client]
                previous = profiles.get(update.profile)
                previous_artifact = self.entry(previous).artifact if previous is not None else None
                data = canonical_bytes(update.payload)
                _check_base(update, previous_artifact, digest_of(data))
                artifact = self.objects.put_bytes(data, batch)
                artifacts[name] = artifact
                if previous_artifact == artifact:
                    unchanged.append(name)
                    continue
                entry = Entry(update.client, update.profile, artifact, previous, update.changelog, now, version)
                profiles[update.profile] = self.objects.put_json(entry.to_json(), batch)
            if len(unchanged) == len(updates):
                return PublishResult(current.head.version, artifacts, unchanged, key.keyid)
            for client, profiles in trees.items():
                clients[client] = self.objects.put_json(tree_to_json("client", "profiles", profiles), batch)
            root = self.objects.put_json(tree_to_json("root", "clients", clients), batch)
            head = Head.next(version, root, current.head_id, history.digests, now)
            self._write_head(key, head, batch, history)
            return PublishResult(version, artifacts, unchanged, key.keyid)

    def resign(self, key: Signer, history: KeyHistory, current: SignedHead) -> SignedHead:
        """A new head version over the same root, signed by ``key`` (caller holds the lock)."""
        head = Head.next(current.head.version + 1, current.head.root, current.head_id, history.digests, utc_now())
        batch = WriteBatch(self.storage_dir)
        self._keep_head(current, batch)
        return self._write_head(key, head, batch, history)

    # -- verification ------------------------------------------------------------------

    def verify(self, *, deep: bool = False, full_chain: bool = False, expect_root: str | None = None) -> VerifyReport:
        """Verify the key history, the current head and its chain (and, if deep, every object).

        A normal check stops at the last head already verified end to end, which
        must be on the current chain (if it is not, the index was rolled back or
        replaced). ``full_chain`` walks every head; a deep check also walks
        everything reachable from each, re-hashing each object once, then
        re-hashes the objects nothing refers to: leftovers of interrupted
        publishes are counted (and reported if damaged: no index names them),
        but a validly signed head newer than the current one is a rollback.
        """
        history, current = self.snapshot(expect_root, fresh=deep)
        checkpoint = None if deep or full_chain else self._read_checkpoint()
        report = VerifyReport(
            index_version=current.head.version,
            head_id=current.head_id,
            keyid=current.keyid,
            key_history_version=len(history.versions),
            heads_checked=0,
            deep=deep,
        )
        walked: set[str] = set()
        if deep:
            self._check_head_copy(current, report)
            report.profiles = sum(len(self._profiles(tree)) for tree in self._clients(current.head).values())
        signed = current
        while True:
            report.heads_checked += 1
            if deep:
                walked.add(signed.head_id)
                self._walk_tree(signed.head, walked)
            previous_id = signed.head.previous_head
            if signed.head_id == checkpoint:
                checkpoint = None
                break
            if previous_id is None:
                break
            signed = self._previous_head(signed, previous_id, history, report)
        if checkpoint is not None:
            raise RollbackError(
                f"Index head {checkpoint}, verified earlier, is not on the current chain: the index was rolled back "
                "or replaced."
            )
        if deep:
            self._sweep_unreferenced(walked, history, current, report)
        self._save_checkpoint(current.head_id)
        return report

    def _check_head_copy(self, current: SignedHead, report: VerifyReport) -> None:
        """The current head's copy in the CAS is whole, or what a crash leaves of it (see :meth:`_write_head`).

        A crash can leave it absent, or, after a power cut, cut short (renamed in
        before its bytes were flushed): the next writer rewrites it. Any other
        difference from ``HEAD`` is damage.
        """
        try:
            self.objects.get_bytes(current.head_id)
        except IntegrityError:
            try:
                left = read_regular(self.objects.path_for(current.head_id), len(current.envelope_bytes))
            except FileNotFoundError:
                return
            except UnsafeFileError:
                raise IntegrityError(f"The copy of the current index {current.head_id} is damaged.") from None
            if not current.envelope_bytes.startswith(left):
                raise
            report.damaged_unreferenced.append(current.head_id)

    def _previous_head(
        self, signed: SignedHead, previous_id: str, history: KeyHistory, report: VerifyReport
    ) -> SignedHead:
        """The head before ``signed``, authenticated by its signature or, if its key is revoked, by the chain."""
        what = f"Index head {previous_id}"
        data = self.objects.get_bytes(previous_id)
        try:
            previous = self._verify_envelope(data, history, what)
        except SignatureError:
            previous = self._vouched_by_chain(data, history, what)
            report.heads_vouched_by_chain += 1
        if previous.head.version != signed.head.version - 1:
            raise IntegrityError(
                f"Index version {signed.head.version} links to version {previous.head.version}: the chain is broken."
            )
        return previous

    def _vouched_by_chain(self, data: bytes, history: KeyHistory, what: str) -> SignedHead:
        """Accept a head whose signer was later revoked: a trusted newer head commits to its hash."""
        envelope = dsse.Envelope.from_bytes(data, what=what)
        if envelope.payload_type != dsse.INDEX_PAYLOAD_TYPE:
            raise SignatureError(f"{what} is not an index envelope.")
        head = _parse_head(envelope, what)
        signer = history.signer_of(head.version)
        if signer is None or signer[1].status is not KeyStatus.REVOKED:
            raise SignatureError(f"{what} (index version {head.version}) has no valid signature from its key.")
        self._check_history_binding(head, history, what)
        head_id = digest_of(data)
        _check_last_head(head_id, head, signer[1], what)
        return SignedHead(head_id, head, signer[0], data)

    def _walk_tree(self, head: Head, walked: set[str]) -> None:
        """Re-hash everything reachable from ``head`` that was not walked yet; parse the tree objects."""
        if head.root in walked:
            return
        walked.add(head.root)
        for client, tree_id in self._clients(head).items():
            if tree_id in walked:
                continue
            walked.add(tree_id)
            for profile, latest in self._profiles(tree_id).items():
                entry_id: str | None = latest
                while entry_id is not None and entry_id not in walked:
                    walked.add(entry_id)
                    entry = self.entry(entry_id)
                    if (entry.client, entry.profile) != (client, profile):
                        raise IntegrityError(f"Entry {entry_id} is filed under {client}/{profile} but names another.")
                    if entry.artifact not in walked:
                        walked.add(entry.artifact)
                        self.objects.get_bytes(entry.artifact)
                    entry_id = entry.previous_entry

    def _sweep_unreferenced(
        self, walked: set[str], history: KeyHistory, current: SignedHead, report: VerifyReport
    ) -> None:
        """Re-hash the objects no index version refers to; a signed head among them is a rollback or a fork."""
        off_chain: list[SignedHead] = []
        for object_id in self.objects.iter_ids():
            if object_id in walked:
                continue
            report.unreferenced_objects += 1
            try:
                data = self.objects.get_bytes(object_id)
            except IntegrityError:
                report.damaged_unreferenced.append(object_id)
                continue
            if data.startswith(b'{"payload":') and (signed := self._off_chain_head(data, history)):
                off_chain.append(signed)
        report.objects_checked = len(walked) + report.unreferenced_objects
        if off_chain:
            raise _off_chain_error(sorted(off_chain, key=lambda s: s.head.version), current)

    def _off_chain_head(self, data: bytes, history: KeyHistory) -> SignedHead | None:
        """``data`` as a validly signed head (it is not on the current chain), or None.

        Every head in the CAS was ``HEAD`` once (see :meth:`_write_head`), so one
        off the chain was accepted and then dropped: the index was rolled back,
        and genuine publishes may since have built a second chain over it. (A
        store written by 0.1.0 could also keep the next head of a publish that
        was interrupted; SECURITY.md says how to tell and what to do.)
        """
        try:
            return self._verify_envelope(data, history, "An unreferenced object")
        except VerificationError:
            return None

    def _read_checkpoint(self) -> str | None:
        """The verified checkpoint; anything unreadable or unsafe there (a link, a FIFO) counts as none."""
        try:
            return check_artifact_id(read_regular(self.verified_path, 128).decode("ascii").strip())
        except (OSError, UnicodeDecodeError, InvalidIdError):
            return None

    def _save_checkpoint(self, head_id: str) -> None:
        # A read-only store still verifies; it just cannot remember the checkpoint.
        with contextlib.suppress(OSError):
            atomic_write(self.verified_path, f"{head_id}\n".encode())

    def export(self) -> bytes:
        """The current signed index envelope, verified first."""
        return self.snapshot()[1].envelope_bytes


def _check_base(update: ProfileUpdate, current: str | None, artifact: str) -> None:
    """Refuse an update made from another version than the one published now (the caller holds the lock).

    Publishing what is already published again loses nothing, so it passes
    (a retry after the first attempt's draft could not be dropped).
    """
    expected = update.expected_base
    if expected is ANY_BASE or current in (expected, artifact):
        return
    raise ConflictError(
        f"{update.client}/{update.profile} changed since the draft was started: it started from "
        f"{expected or 'nothing published'}, and {current or 'nothing'} is published now.",
        hint=(
            "Someone else published it meanwhile. See what the draft would replace with view_draft_config or "
            "diff_config, then clear_draft_config and redo the edit on the new published config."
        ),
    )


def _parse_head(envelope: dsse.Envelope, what: str) -> Head:
    try:
        return Head.from_json(json.loads(envelope.payload), what)
    except (ValueError, RecursionError):
        raise IntegrityError(f"{what} has a payload that is not JSON.") from None


def _check_last_head(head_id: str, head: Head, signer: KeyRecord, what: str) -> None:
    """A retired key's last version holds exactly the head its rotation recorded: anything else is forged."""
    if signer.last_head is not None and head.version == signer.last_index and head_id != signer.last_head:
        raise ForkError(
            f"{what} (index version {head.version}) is signed by a retired key at its last version, but it is not "
            "the head the key history recorded for it: it was forged with the retired key."
        )


def _check_current_signer(signed: SignedHead, signer: KeyRecord) -> None:
    """The current head is signed by the active key, or is the head an unfinished rotation left behind.

    A retired key's range stays valid for the heads it signed, so without this a
    stolen retired key could sign a different head inside its range and have it
    served as current.
    """
    if signer.status is KeyStatus.ACTIVE:
        return
    if signed.head.version == signer.last_index and signer.last_head in (None, signed.head_id):
        return  # the rotation stopped between the key history and the re-signed head
    raise SignatureError(
        f"The current index (version {signed.head.version}) is signed by a {signer.status.value} key, which "
        "can no longer sign the current index: a retired key was used to forge it.",
    )


def _off_chain_error(heads: list[SignedHead], current: SignedHead) -> RollbackError:
    shown = ", ".join(f"version {s.head.version} ({s.head_id})" for s in heads[:3])
    more = f" and {len(heads) - 3} more" if len(heads) > 3 else ""
    if heads[-1].head.version > current.head.version:
        return RollbackError(
            f"The store holds validly signed index heads newer than the current version {current.head.version} "
            f"that are not on its chain: {shown}{more}. The index was rolled back."
        )
    return ForkError(
        f"The store holds validly signed index heads that are not on the current chain: {shown}{more}. They were "
        f"accepted once and then dropped: the index was rolled back and the current chain (version "
        f"{current.head.version}) forks from it, so a published change may have been reverted."
    )
