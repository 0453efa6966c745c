"""The host as the trust anchor: every reader checks the store against what this host holds.

A store vouches for nothing about itself. Before any key history or head of a
store is used, :class:`HostAnchor` (the index's trust policy) checks it
against, in order:

1. the root the operator states: ``--expect-key`` or ``$MCP_ORCHESTRATION_EXPECT_KEY``
   (the container's way: a public fingerprint, not a secret);
2. the root this host pinned for the store's home (``init`` pins it; so does
   the first command given ``--expect-key``), in the host state file;
3. failing both, the signing key this process was given: a store whose key
   history does not hold it is not this key's store.

With none of them, reads are refused: a store nobody vouches for is not read.
And a process holding a signing key refuses to read a store whose key history
does not hold that key, whatever else vouches for it.

Every new head must also descend from the last head this host accepted from
the store (walking ``previous``): an older one is a rollback, another one at the
same version or a newer one that does not pass through it is a fork. Each head
accepted is remembered (best effort: a container's state file is read-only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mcp_orchestration.app.host_state import HostState, StoreRecord
from mcp_orchestration.core.clock import utc_now
from mcp_orchestration.core.errors import ForkError, KeyNotTrustedError
from mcp_orchestration.trust.history import KeyHistory
from mcp_orchestration.trust.signer import Signer
from mcp_orchestration.trust.verifier import AcceptedHead, FetchHead, SignedHead, check_descent

log = logging.getLogger(__name__)

_PIN_HINT = (
    "Pin the store's root key on this host once: run any command with --expect-key SHA256:<root fingerprint> "
    "(the fingerprint `keys fingerprint` printed for the first key), or set MCP_ORCHESTRATION_EXPECT_KEY "
    "(containers). Get the fingerprint from a trusted source, never from the store itself."
)


class HostAnchor:
    """The index's trust policy for one store home on this host."""

    def __init__(
        self,
        state: HostState,
        home: Path,
        expect_root: str | None,
        signing_key: Callable[[], Signer | None],
        loaded_key: Callable[[], Signer | None],
    ) -> None:
        self.state = state
        self.home = home
        self.expect_root = expect_root
        self._signing_key = signing_key  # loads the configured key, if one is configured
        self._loaded_key = loaded_key  # the key this process already holds, if any

    def pinned_root(self) -> str | None:
        """The root stated by the operator, else the one this host pinned for the store (None if neither)."""
        return self._pinned_root(self.state.get(self.home))

    def _pinned_root(self, record: StoreRecord | None) -> str | None:
        if self.expect_root is not None:
            if record is not None and record.root != self.expect_root:
                raise KeyNotTrustedError(
                    f"--expect-key names {self.expect_root}, but this host pinned {record.root} for the store at "
                    f"{self.home}.",
                    hint=f"If the store there was re-created on purpose, run `mcp-orchestration trust forget` for it "
                    f"(or remove its entry from {self.state.path}); otherwise do not use it.",
                )
            return self.expect_root
        return record.root if record is not None else None

    def check_history(self, history: KeyHistory) -> None:
        """Refuse a key history rooted anywhere but where the host's anchor says."""
        record = self.state.get(self.home)
        root = self._pinned_root(record)
        if root is not None:
            if history.root_fingerprint != root:
                raise KeyNotTrustedError(
                    f"The store at {self.home} is rooted in key {history.root_fingerprint}, not in the pinned "
                    f"{root}: it was replaced by a store someone else initialised.",
                    hint="Do not use it. Restore the store from a verified backup (see SECURITY.md, "
                    "'Tamper response').",
                )
        else:
            key = self._signing_key()
            if key is None:
                raise KeyNotTrustedError(f"No root key is pinned for the store at {self.home} on this host.", _PIN_HINT)
            root = history.root_fingerprint
        self._require_own_key(history)
        if record is None:
            self._remember(StoreRecord(root))
        elif record.root == history.root_fingerprint:
            _require_same_key_history(history, record)

    def check_restorable(self, history: KeyHistory) -> None:
        """Refuse to restore a store whose key history differs from the one this host accepted.

        An older backup may hold fewer versions (taken before a rotation), and
        its index may be older: the operator restores it on purpose. Other
        versions, though, mean a history rewritten with a stolen retired key.
        """
        record = self.state.get(self.home)
        if record is not None and record.root == history.root_fingerprint:
            _require_same_key_history(history, record)

    def _require_own_key(self, history: KeyHistory) -> None:
        key = self._loaded_key()
        if key is not None and key.keyid not in history.keys:
            raise KeyNotTrustedError(
                f"This process's signing key {key.fingerprint} is not in the key history of the store at "
                f"{self.home}: the store is not this key's, so nothing in it is served as verified.",
                hint="Check which store volume and which signing key secret this process was given.",
            )

    def check_head(self, history: KeyHistory, head: SignedHead, fetch: FetchHead) -> None:
        """Refuse a head that does not descend from the last one this host accepted; then remember it."""
        record = self.state.get(self.home)
        if record is not None and record.root == history.root_fingerprint and record.head_id is not None:
            hint = (
                "Do not use this store. If it was restored or rewound on purpose, run `mcp-orchestration trust "
                f"forget` and pin it again (or remove its entry from {self.state.path})."
            )
            last = AcceptedHead(record.head_id, record.index_version, record.key_history_version)
            check_descent(head, history, fetch, last, hint)
        if record is None or record.head_id != head.head_id:
            base = record if record is not None and record.root == history.root_fingerprint else None
            accepted = (base or StoreRecord(history.root_fingerprint)).accepting(
                head.head_id, head.head.version, history.digests, utc_now()
            )
            self._remember(accepted)

    def _remember(self, record: StoreRecord) -> None:
        """Write ``record`` unless a newer head was recorded meanwhile."""

        def write() -> None:
            stored = self.state.get(self.home)
            if stored is not None and stored.root == record.root and stored.index_version > record.index_version:
                return
            self.state.put(self.home, record)

        self._best_effort(write)

    def repin(self, root: str) -> None:
        """Pin ``root`` afresh, forgetting the last head accepted (after a restore the operator asked for).

        The key history accepted is kept: a restored store may hold fewer of
        its versions (a backup from before a rotation), never other ones.
        """

        def write() -> None:
            stored = self.state.get(self.home)
            kept = stored.key_history if stored is not None and stored.root == root else ()
            self.state.put(self.home, StoreRecord(root, key_history=kept, key_history_version=len(kept)))

        self._best_effort(write)

    def forget(self, *, strict: bool = False) -> None:
        """Drop what this host holds about the store (``init`` does, before it creates a new store there)."""
        if strict:
            with self.state.locked():
                self.state.forget(self.home)
        else:
            self._best_effort(lambda: self.state.forget(self.home))

    def _best_effort(self, change: Callable[[], None]) -> None:
        """Apply ``change`` under the state's lock; a state file that cannot be written (a container's read-only
        root) is no error: the checks still run against what it holds."""
        try:
            with self.state.locked():
                change()
        except OSError as exc:
            log.debug("Host state %s not updated: %s", self.state.path, exc.strerror or type(exc).__name__)


def _require_same_key_history(history: KeyHistory, record: StoreRecord) -> None:
    """The store's key history and the one this host accepted agree on every version both have.

    Each version is signed by the key active before it, so whoever holds a
    retired key can write a different continuation from the version that key
    was active in (a rotation to a key of their own). A host that accepted the
    genuine one refuses any other. (Fewer versions is :func:`check_descent`'s
    rollback; a restore may bring fewer on purpose.)
    """
    for number, (seen, stored) in enumerate(zip(record.key_history, history.digests, strict=False), start=1):
        if seen != stored:
            raise ForkError(
                f"The store's key history differs from the one this host accepted at version {number}: it was "
                "rewritten (with a stolen retired key?).",
                hint="Do not use this store. Restore it from a verified backup (see SECURITY.md, 'Tamper response').",
            )
