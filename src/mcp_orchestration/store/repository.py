"""The repository: one store's lock, publish and reads; every trust decision is the verifier's.

The files are laid out as ``store/layout.py`` says. Every write holds the
lock for the whole read -> version + 1 -> sign -> write sequence. Objects
are written before the head that names them, the head before ``accepted``:
a crash at any point leaves the old or the new state. A head's own copy in
``objects/`` is written only once it is ``HEAD``, so every signed head in
the CAS was accepted once: one that is not on the current chain is evidence
of a rewound index (a fork), never a leftover of a crash. Readers read
``accepted`` before ``HEAD``, so a concurrent write can never look
like a rollback.

The repository reads bytes and hands them to ``trust/verifier.py``, which
decides. The store does not vouch for itself: a :class:`TrustPolicy` given by
the host (its pinned root, the last head it accepted) sees every key history
and every new head before any reader uses them.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from mcp_orchestration.config.policy import StorePolicy
from mcp_orchestration.config.toollock import ToolLock
from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.clock import format_time, utc_now
from mcp_orchestration.core.errors import (
    ConflictError,
    IntegrityError,
    InvalidIdError,
    NotFoundError,
    NotInitializedError,
    RollbackError,
)
from mcp_orchestration.core.fsutil import (
    UnsafeFileError,
    WriteBatch,
    atomic_write,
    ensure_dir,
    exclusive_lock,
    read_regular,
    remove_stale_temps,
)
from mcp_orchestration.security.ids import check_artifact_id, check_name_id
from mcp_orchestration.security.principal import Principal
from mcp_orchestration.store.cas import MAX_OBJECT_BYTES, ContentStore, digest_of
from mcp_orchestration.store.deep import DeepCheck, VerifyReport
from mcp_orchestration.store.guard import Guard, create_guard, raise_guard, read_guard
from mcp_orchestration.store.keyhistory import FilesState, KeyHistoryFiles
from mcp_orchestration.store.layout import Layout
from mcp_orchestration.store.model import (
    Entry,
    Root,
    read_clients,
    read_entry,
    read_lock,
    read_policy,
    read_profiles,
    read_root,
    tree_to_json,
)
from mcp_orchestration.trust import dsse, verifier
from mcp_orchestration.trust.history import KeyHistory
from mcp_orchestration.trust.metadata import DEFAULT_HEAD_LIFETIME, Head
from mcp_orchestration.trust.signer import Signer
from mcp_orchestration.trust.verifier import FetchHead, SignedHead


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
    published_by: Principal | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class PublishResult:
    index_version: int
    artifacts: dict[str, str]
    unchanged: list[str]
    keyid: str


class TrustPolicy(Protocol):
    """What the host holds against the store: called before a key history or a new head is used."""

    def check_history(self, history: KeyHistory) -> None:
        """Raise unless ``history`` is rooted in what the host trusts."""

    def check_head(self, history: KeyHistory, head: SignedHead, fetch: FetchHead) -> None:
        """Raise unless ``head`` may follow what the host accepted before (``fetch`` reads past heads);
        then remember it."""


class Repository:
    """One store: its objects, its signed head chain and its key history."""

    def __init__(
        self, storage_dir: Path, policy: TrustPolicy | None = None, head_lifetime: timedelta = DEFAULT_HEAD_LIFETIME
    ) -> None:
        self.layout = Layout(storage_dir)
        self.policy = policy
        self.head_lifetime = head_lifetime  # how long each head this repository signs stays fresh
        self.objects = ContentStore(self.layout.objects_dir)
        self.key_files = KeyHistoryFiles(self.layout.keys_dir)
        self._history_cache: tuple[FilesState, KeyHistory] | None = None
        self._head_cache: tuple[bytes, KeyHistory, SignedHead] | None = None
        self._swept = False

    # -- locking and small state files -------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """The exclusive lock every write holds from its first read to its last write."""
        ensure_dir(self.layout.storage_dir)
        with exclusive_lock(self.layout.lock_path):
            self.layout.check()
            yield

    def _sweep_stale_temps(self) -> None:
        """Remove what crashed writers left in index/ and keys/ (once per process; caller holds the lock)."""
        if not self._swept:
            remove_stale_temps(self.layout.index_dir)
            remove_stale_temps(self.layout.keys_dir)
            self._swept = True

    def exists(self) -> bool:
        """Whether the store was initialised (its key history begins)."""
        return self.key_files.exists()

    def guard(self) -> Guard | None:
        """The rollback guard (None before init)."""
        return read_guard(self.layout.accepted_path)

    # -- history and heads -------------------------------------------------------------

    def load_history(self, expect_root: str | None = None, *, fresh: bool = False) -> KeyHistory:
        """The verified key history (raises if the store is not initialised).

        The last history verified by this process is reused while its files are
        unchanged on disk (same names, sizes, inodes and times); ``fresh``
        re-verifies from the files regardless.
        """
        state = self.key_files.state()
        if fresh or self._history_cache is None or self._history_cache[0] != state:
            loaded = self.key_files.load()
            if self.policy is not None:
                self.policy.check_history(loaded)
            self._history_cache = (state, loaded)
        history = self._history_cache[1]
        if expect_root is not None:
            history.require_root(expect_root)
        return history

    def snapshot(self, expect_root: str | None = None, *, fresh: bool = False) -> tuple[KeyHistory, SignedHead]:
        """The verified key history and current head, as one consistent view for readers.

        Readers hold no lock, so the order matters: ``accepted`` before ``HEAD``
        (a writer raises ``accepted`` only after ``HEAD``), and ``HEAD`` before
        the key history (a writer appends a key before any head it signs).
        """
        self.layout.check()
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
            return read_regular(self.layout.head_path, MAX_OBJECT_BYTES)
        except FileNotFoundError:
            if guard is not None:
                raise RollbackError("The store's current index (index/HEAD) was removed.") from None
            raise NotInitializedError(f"The store at {self.layout.storage_dir} has no index yet.") from None
        except UnsafeFileError as exc:
            raise IntegrityError(f"index/HEAD is not a regular file of the store: it {exc.strerror}.") from None

    def _check_head(self, data: bytes, guard: Guard | None, history: KeyHistory) -> SignedHead:
        """Verify ``HEAD``'s bytes, refusing anything older than the rollback guard."""
        if guard is None:
            raise RollbackError("The store has an index but no rollback guard: index/accepted was removed.")
        cached = self._head_cache
        if cached is not None and cached[0] == data and cached[1] is history:
            signed = cached[2]
            verifier.check_rollback(signed, history, guard.index_version, guard.history_version)
            return signed
        signed = verifier.verify_current(data, history, guard.index_version, guard.history_version)
        if self.policy is not None:
            self.policy.check_head(history, signed, self.objects.get_bytes)
        self._head_cache = (data, history, signed)
        return signed

    def head_by_id(self, head_id: str, history: KeyHistory) -> SignedHead:
        """A past head from the CAS, with its signature checked under ``history``."""
        return verifier.verify_head(self.objects.get_bytes(head_id), history, f"Index head {head_id}")

    # -- reading the tree --------------------------------------------------------------

    def entry(self, entry_id: str) -> Entry:
        return read_entry(self.objects, entry_id)

    def list_profiles(self) -> dict[str, list[str]]:
        """Every client with its profiles, from the verified current head."""
        head = self.snapshot()[1].head
        return {
            client: sorted(read_profiles(self.objects, tree))
            for client, tree in read_clients(self.objects, head).items()
        }

    def latest_entry_id(self, client: str, profile: str) -> str:
        """The id of the newest entry of ``client/profile`` under the verified head."""
        check_name_id(client, "client")
        check_name_id(profile, "profile")
        head = self.snapshot()[1].head
        tree = read_clients(self.objects, head).get(client)
        entry_id = read_profiles(self.objects, tree).get(profile) if tree else None
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
        batch.stage(self.layout.head_path, data)
        batch.commit()
        head_id = self.objects.put_replacing(data, WriteBatch(self.layout.storage_dir))
        guard = Guard(head.version, head.key_history_version)
        if head.version == 1:
            create_guard(self.layout.accepted_path, guard)
        else:
            raise_guard(self.layout.accepted_path, guard)
        signed = SignedHead(head_id, head, key.keyid, data)
        if self.policy is not None:
            self.policy.check_head(history, signed, self.objects.get_bytes)
        self._head_cache = (data, history, signed)
        return signed

    def _keep_head(self, current: SignedHead, batch: WriteBatch) -> None:
        """Make sure the head a new one builds on has its copy in the CAS, durable with ``batch``."""
        self.objects.put_bytes(current.envelope_bytes, batch)

    def initialize(self, key: Signer) -> tuple[KeyHistory, SignedHead, bool]:
        """Create the store pinned to ``key``; re-running it finishes or confirms an earlier init."""
        with self.write_lock():
            ensure_dir(self.layout.index_dir)
            if self.key_files.exists():
                # Another root is a conflict (a different store lives here), said before the host's policy
                # refuses the store as untrusted.
                existing_root = self.key_files.load().root_fingerprint
                if existing_root != key.fingerprint:
                    raise ConflictError(
                        f"The store is already initialised with root key {existing_root}.",
                        hint="Use that key, or choose another --home for a new store.",
                    )
                history = self.load_history()
                if self.layout.head_path.exists() or self.guard() is not None or len(history.versions) > 1:
                    return history, self.current_head(history), False
                history.require_active(key)  # only an init that stopped before its first head resumes
            else:
                history = self.key_files.create(key, utc_now())
            batch = WriteBatch(self.layout.storage_dir)
            root = self.objects.put_json(Root({}).to_json(), batch)
            head = Head.next(1, root, None, history.digests, now=datetime.now(UTC), lifetime=self.head_lifetime)
            return history, self._write_head(key, head, batch, history), True

    def publish(
        self,
        key: Signer,
        updates: Sequence[ProfileUpdate],
        check_policy: Callable[[StorePolicy], None] | None = None,
    ) -> PublishResult:
        """Publish new payloads for one or more profiles as one new index version.

        ``check_policy`` sees the store's policy under the lock, so a policy set
        meanwhile cannot be missed. A profile's new entry carries its tool lock
        forward: a lock taken for an earlier artifact is then visibly stale,
        never silently dropped.
        """
        for update in updates:
            check_name_id(update.client, "client")
            check_name_id(update.profile, "profile")
        with self.write_lock():
            history, current = self._writer_view(key)
            tree = _NextTree(self, current)
            if check_policy is not None:
                check_policy(read_policy(self.objects, tree.policy))
            artifacts: dict[str, str] = {}
            unchanged: list[str] = []
            for update in updates:
                name = f"{update.client}/{update.profile}"
                previous_id = tree.latest(update.client, update.profile)
                previous = self.entry(previous_id) if previous_id is not None else None
                previous_artifact = previous.artifact if previous is not None else None
                data = canonical_bytes(update.payload)
                _check_base(update, previous_artifact, digest_of(data))
                artifact = self.objects.put_bytes(data, tree.batch)
                artifacts[name] = artifact
                if previous_artifact == artifact:
                    unchanged.append(name)
                    continue
                lock = previous.lock if previous is not None else None
                tree.put_entry(
                    update.client, update.profile, artifact, update.changelog, lock=lock, by=update.published_by
                )
            if len(unchanged) == len(updates):
                return PublishResult(current.head.version, artifacts, unchanged, key.keyid)
            self._write_tree(key, history, current, tree)
            return PublishResult(tree.version, artifacts, unchanged, key.keyid)

    def record_lock(
        self,
        key: Signer,
        client: str,
        profile: str,
        *,
        artifact: str,
        lock: dict[str, Any],
        changelog: str,
        published_by: Principal | None = None,
    ) -> tuple[int, str, bool]:
        """Name ``lock`` (taken for ``artifact``) in a new entry of the profile: (index version, lock id, changed).

        Refused as a conflict if the profile publishes another artifact now (it
        changed while its servers were being listed); the same lock again changes nothing.
        """
        with self.write_lock():
            history, current = self._writer_view(key)
            tree = _NextTree(self, current)
            latest = tree.latest(client, profile)
            if latest is None:
                raise NotFoundError(f"No config is published for client {client!r}, profile {profile!r}.")
            entry = self.entry(latest)
            if entry.artifact != artifact:
                raise ConflictError(
                    f"{client}/{profile} was published again while its servers were being listed.",
                    hint="Lock it again: the lock must describe the config that is published now.",
                )
            lock_id = self.objects.put_json(lock, tree.batch)
            if entry.lock == lock_id:
                return current.head.version, lock_id, False
            tree.put_entry(client, profile, artifact, changelog, lock=lock_id, by=published_by)
            self._write_tree(key, history, current, tree)
            return tree.version, lock_id, True

    def set_policy(self, key: Signer, policy: dict[str, Any]) -> tuple[int, str, bool]:
        """Make ``policy`` the store's policy in a new index version: (index version, policy id, changed)."""
        with self.write_lock():
            history, current = self._writer_view(key)
            tree = _NextTree(self, current)
            policy_id = self.objects.put_json(policy, tree.batch)
            if tree.policy == policy_id:
                return current.head.version, policy_id, False
            tree.policy = policy_id
            self._write_tree(key, history, current, tree)
            return tree.version, policy_id, True

    def store_policy(self) -> StorePolicy:
        """The store's policy under the verified head."""
        return read_policy(self.objects, read_root(self.objects, self.snapshot()[1].head).policy)

    def lock(self, lock_id: str) -> ToolLock:
        """A tool lock an entry names, its pins checked."""
        return read_lock(self.objects, lock_id)

    def _writer_view(self, key: Signer) -> tuple[KeyHistory, SignedHead]:
        """The verified history and head a write builds on, once ``key`` may sign (caller holds the lock)."""
        self._sweep_stale_temps()
        history = self.load_history()
        history.require_active(key)
        return history, self.current_head(history)

    def _write_tree(self, key: Signer, history: KeyHistory, current: SignedHead, tree: _NextTree) -> None:
        """Write ``tree``'s changed client trees and root, then the head that signs them."""
        for client in tree.changed_clients:
            tree.clients[client] = self.objects.put_json(
                tree_to_json("client", "profiles", tree.profiles[client]), tree.batch
            )
        root = self.objects.put_json(Root(tree.clients, tree.policy).to_json(), tree.batch)
        head = Head.next(
            tree.version, root, current.head_id, history.digests, now=tree.moment, lifetime=self.head_lifetime
        )
        self._write_head(key, head, tree.batch, history)

    def resign(self, key: Signer, history: KeyHistory, current: SignedHead) -> SignedHead:
        """A new head version over the same root, signed by ``key`` and fresh from now (caller holds the lock)."""
        version = current.head.version + 1
        root, previous = current.head.root, current.head_id
        head = Head.next(version, root, previous, history.digests, now=datetime.now(UTC), lifetime=self.head_lifetime)
        batch = WriteBatch(self.layout.storage_dir)
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
            expires=current.head.expires,
            deep=deep,
        )
        check = DeepCheck(self.objects, report)
        if deep:
            check.start(current)
        for link in verifier.walk_chain(current, history, self.objects.get_bytes):
            report.heads_checked += 1
            report.heads_vouched_by_chain += link.vouched
            if deep:
                check.walk(link.signed)
            if link.signed.head_id == checkpoint:
                checkpoint = None
                break
        if checkpoint is not None:
            raise RollbackError(
                f"Index head {checkpoint}, verified earlier, is not on the current chain: the index was rolled back "
                "or replaced."
            )
        if deep:
            check.sweep_unreferenced(history, current)
        self._save_checkpoint(current.head_id)
        return report

    def _read_checkpoint(self) -> str | None:
        """The verified checkpoint; anything unreadable or unsafe there (a link, a FIFO) counts as none."""
        try:
            return check_artifact_id(read_regular(self.layout.verified_path, 128).decode("ascii").strip())
        except (OSError, UnicodeDecodeError, InvalidIdError):
            return None

    def _save_checkpoint(self, head_id: str) -> None:
        # A read-only store still verifies; it just cannot remember the checkpoint.
        with contextlib.suppress(OSError):
            atomic_write(self.layout.verified_path, f"{head_id}\n".encode())

    def export(self) -> bytes:
        """The current signed index envelope, verified first."""
        return self.snapshot()[1].envelope_bytes


class _NextTree:
    """The tree of the index version being written: the current one, changed profile by profile."""

    def __init__(self, repository: Repository, current: SignedHead) -> None:
        self.objects = repository.objects
        self.batch = WriteBatch(repository.layout.storage_dir)
        repository._keep_head(current, self.batch)
        self.version = current.head.version + 1
        self.moment = datetime.now(UTC)
        root = read_root(self.objects, current.head)
        self.clients = dict(root.clients)
        self.policy = root.policy
        self.profiles: dict[str, dict[str, str]] = {}
        self.changed_clients: set[str] = set()

    def _tree(self, client: str) -> dict[str, str]:
        if client not in self.profiles:
            tree_id = self.clients.get(client)
            self.profiles[client] = read_profiles(self.objects, tree_id) if tree_id else {}
        return self.profiles[client]

    def latest(self, client: str, profile: str) -> str | None:
        """The id of the profile's latest entry in this version so far."""
        return self._tree(client).get(profile)

    def put_entry(
        self, client: str, profile: str, artifact: str, changelog: str, *, lock: str | None, by: Principal | None
    ) -> None:
        """Add the profile's next entry, after its latest."""
        previous = self.latest(client, profile)
        moment = format_time(self.moment)
        entry = Entry(client, profile, artifact, previous, changelog, moment, self.version, lock, by)
        self._tree(client)[profile] = self.objects.put_json(entry.to_json(), self.batch)
        self.changed_clients.add(client)


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
