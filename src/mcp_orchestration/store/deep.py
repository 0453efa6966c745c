"""The deep check of a store: every object reachable from the chain, then every object nothing refers to.

The chain itself is walked by the verifier; this module re-hashes what hangs
off each head (roots, client trees, entries, artifacts) once, and finds the
objects no head refers to: leftovers of interrupted publishes are counted
(and reported if damaged: no index names them), but a validly signed head
among them is a rollback or a fork, since every head in the CAS was ``HEAD``
once (see :meth:`Repository._write_head`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcp_orchestration.core.errors import IntegrityError
from mcp_orchestration.core.fsutil import UnsafeFileError, read_regular
from mcp_orchestration.store.cas import ContentStore
from mcp_orchestration.store.model import read_clients, read_entry, read_lock, read_policy, read_profiles, read_root
from mcp_orchestration.trust import verifier
from mcp_orchestration.trust.history import KeyHistory
from mcp_orchestration.trust.verifier import SignedHead


@dataclass
class VerifyReport:
    index_version: int
    head_id: str
    keyid: str
    key_history_version: int
    heads_checked: int
    expires: str | None = None  # when the current head stops being fresh (None: signed before heads expired)
    objects_checked: int = 0
    heads_vouched_by_chain: int = 0
    deep: bool = False
    profiles: int = 0
    unreferenced_objects: int = 0
    damaged_unreferenced: list[str] = field(default_factory=list)


class DeepCheck:
    """One deep check: what it walked so far, and its report."""

    def __init__(self, objects: ContentStore, report: VerifyReport) -> None:
        self.objects = objects
        self.report = report
        self.walked: set[str] = set()

    def start(self, current: SignedHead) -> None:
        """Check the current head's copy in the CAS and count the profiles it serves."""
        self._check_head_copy(current)
        clients = read_clients(self.objects, current.head)
        self.report.profiles = sum(len(read_profiles(self.objects, tree)) for tree in clients.values())

    def _check_head_copy(self, current: SignedHead) -> None:
        """The current head's copy in the CAS is whole, or what a crash leaves of it.

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
            self.report.damaged_unreferenced.append(current.head_id)

    def walk(self, signed: SignedHead) -> None:
        """Re-hash everything reachable from the head that was not walked yet; parse the tree objects."""
        self.walked.add(signed.head_id)
        head = signed.head
        if head.root in self.walked:
            return
        self.walked.add(head.root)
        root = read_root(self.objects, head)
        if root.policy is not None and root.policy not in self.walked:
            self.walked.add(root.policy)
            read_policy(self.objects, root.policy)
        for client, tree_id in root.clients.items():
            if tree_id in self.walked:
                continue
            self.walked.add(tree_id)
            for profile, latest in read_profiles(self.objects, tree_id).items():
                self._walk_entries(client, profile, latest)

    def _walk_entries(self, client: str, profile: str, entry_id: str | None) -> None:
        while entry_id is not None and entry_id not in self.walked:
            self.walked.add(entry_id)
            entry = read_entry(self.objects, entry_id)
            if (entry.client, entry.profile) != (client, profile):
                raise IntegrityError(f"Entry {entry_id} is filed under {client}/{profile} but names another.")
            if entry.artifact not in self.walked:
                self.walked.add(entry.artifact)
                self.objects.get_bytes(entry.artifact)
            if entry.lock is not None and entry.lock not in self.walked:
                self.walked.add(entry.lock)
                read_lock(self.objects, entry.lock)
            entry_id = entry.previous_entry

    def sweep_unreferenced(self, history: KeyHistory, current: SignedHead) -> None:
        """Re-hash the objects no index version refers to; a signed head among them is a rollback or a fork.

        (A store written by 0.1.0 could also keep the next head of a publish that
        was interrupted; SECURITY.md says how to tell and what to do.)
        """
        dropped: list[SignedHead] = []
        for object_id in self.objects.iter_ids():
            if object_id in self.walked:
                continue
            self.report.unreferenced_objects += 1
            try:
                data = self.objects.get_bytes(object_id)
            except IntegrityError:
                self.report.damaged_unreferenced.append(object_id)
                continue
            if data.startswith(b'{"payload":') and (
                signed := verifier.signed_head_or_none(data, history, "An unreferenced object")
            ):
                dropped.append(signed)
        self.report.objects_checked = len(self.walked) + self.report.unreferenced_objects
        verifier.check_no_dropped_heads(dropped, current)
