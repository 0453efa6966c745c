"""Key rotation and revocation, each one resumable after a crash.

Rotation takes two durable steps under the store lock: (1) append the key
history version that retires the old key after the current head (its version
and id) and activates the new one, signed by both; (2) re-sign the index (version + 1,
same root) with the new key. After a crash between them the old head is
still inside the old key's range, so the store verifies, and running the
rotation again performs step (2) only.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_orchestration.core.clock import utc_now
from mcp_orchestration.core.errors import ConflictError, KeyRevokedError, NotFoundError, UsageError
from mcp_orchestration.store.repository import Repository
from mcp_orchestration.trust.history import KeyStatus
from mcp_orchestration.trust.signer import Signer
from mcp_orchestration.trust.verifier import SignedHead


@dataclass(frozen=True)
class RotationResult:
    old_fingerprint: str
    new_fingerprint: str
    index_version: int
    key_history_version: int
    already_done: bool


def rotate(index: Repository, current: Signer, new: Signer) -> RotationResult:
    """Hand signing over from ``current`` to ``new``, or finish a rotation a crash interrupted."""
    if new.keyid == current.keyid:
        raise UsageError("The new key is the current key.", hint="Generate a new key with `keys generate`.")
    with index.write_lock():
        index.verify(full_chain=True)
        history = index.load_history()
        head = index.current_head(history)
        new_record = history.keys.get(new.keyid)
        already_done = False
        if new_record is None:
            history.require_active(current)
            index.key_files.append(history, history.rotation(current, new, head.head.version, head.head_id, utc_now()))
        elif new_record.status is KeyStatus.REVOKED:
            raise KeyRevokedError(f"The new key {new.fingerprint} is revoked in this store and cannot become active.")
        elif new_record.status is KeyStatus.RETIRED:
            raise ConflictError(f"The new key {new.fingerprint} was already retired; a key is never re-activated.")
        elif history.keys.get(current.keyid) is None:
            raise ConflictError(
                f"The new key {new.fingerprint} is already active and {current.fingerprint} is unknown."
            )
        if head.keyid != new.keyid:
            head = index.resign(new, history, head)
        else:
            already_done = True
        return RotationResult(
            old_fingerprint=current.fingerprint,
            new_fingerprint=new.fingerprint,
            index_version=head.head.version,
            key_history_version=len(history.versions),
            already_done=already_done,
        )


def revoke(index: Repository, active: Signer, keyid: str) -> bool:
    """Mark ``keyid`` revoked (signed by the active key); False if it already was."""
    with index.write_lock():
        history = index.load_history()
        history.require_active(active)
        record = history.keys.get(keyid)
        if record is None:
            raise NotFoundError(f"Key SHA256:{keyid} is not in this store's key history.")
        if keyid == active.keyid:
            raise ConflictError(
                "The active key cannot be revoked: nothing could sign the index afterwards.",
                hint="Rotate to a new key first (`keys rotate`), then revoke this one.",
            )
        if index.current_head(history).keyid != active.keyid:
            raise ConflictError(
                "A rotation is unfinished: the index is not yet signed by the active key.",
                hint="Re-run `mcp-orchestration keys rotate` to finish it, then revoke.",
            )
        if record.status is KeyStatus.REVOKED:
            return False
        head = index.current_head(history)
        index.key_files.append(history, history.revocation(active, keyid, utc_now()))
        index.resign(active, history, head)  # the next index version commits to the revocation
        return True


def refresh(index: Repository, active: Signer) -> SignedHead:
    """Re-sign the current index, unchanged, as a new version that is fresh from now.

    A mirror can then no longer keep serving an old head past its expiry. Refused
    while a rotation is unfinished: that head must be re-signed by ``keys rotate``.
    """
    with index.write_lock():
        history = index.load_history()
        history.require_active(active)
        head = index.current_head(history)
        if head.keyid != active.keyid:
            raise ConflictError(
                "A rotation is unfinished: the index is not yet signed by the active key.",
                hint="Re-run `mcp-orchestration keys rotate` to finish it; it re-signs the index too.",
            )
        return index.resign(active, history, head)
