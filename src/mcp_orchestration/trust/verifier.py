"""The trust walk over a chain of signed heads: bytes in, a verdict out.

Nothing here opens a file or knows where a store keeps anything. The caller
hands over a verified :class:`KeyHistory` (see :meth:`KeyHistory.verify`), a
head's envelope bytes, the versions it accepted before (as numbers), and a
:data:`FetchHead` that returns the bytes of a head by id from wherever the
chain lives: the local CAS, an HTTP mirror or an OCI registry. Each check
raises the typed error that names what is wrong (signature, integrity,
rollback, fork), like the client's trust walk in python-tuf's ``ngclient``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from mcp_orchestration.core.errors import (
    ForkError,
    IntegrityError,
    KeyHistoryError,
    RollbackError,
    SignatureError,
    VerificationError,
)
from mcp_orchestration.trust import dsse
from mcp_orchestration.trust.history import KeyHistory, KeyRecord, KeyStatus
from mcp_orchestration.trust.metadata import Head

FetchHead = Callable[[str], bytes]
"""The bytes of the head object with this id, from any source (the verifier checks they hash to it)."""


@dataclass(frozen=True)
class SignedHead:
    """A head whose signature has been checked, with its object id and signer."""

    head_id: str
    head: Head
    keyid: str
    envelope_bytes: bytes


@dataclass(frozen=True)
class AcceptedHead:
    """The last head a host accepted from a store: what every later head must descend from."""

    head_id: str
    index_version: int
    key_history_version: int


@dataclass(frozen=True)
class Link:
    """One head of a chain walk; ``vouched``: its signer was revoked since, and its successor's hash vouches."""

    signed: SignedHead
    vouched: bool


def verify_head(data: bytes, history: KeyHistory, what: str) -> SignedHead:
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
    return _bound(data, head, allowed, history, what)


def signed_head_or_none(data: bytes, history: KeyHistory, what: str) -> SignedHead | None:
    """``data`` as a validly signed head, or None if it is anything else."""
    try:
        return verify_head(data, history, what)
    except VerificationError:
        return None


def check_rollback(signed: SignedHead, history: KeyHistory, index_version: int, history_version: int) -> None:
    """Refuse a head or key history older than the versions accepted before (the store's rollback guard)."""
    if signed.head.version < index_version:
        raise RollbackError(
            f"The current index is version {signed.head.version}, older than version {index_version} "
            "which this store already accepted: an old index was replayed."
        )
    if len(history.versions) < history_version:
        raise RollbackError(
            f"The key history has {len(history.versions)} version(s), fewer than the {history_version} "
            "this store already accepted: key history versions were removed (a revocation undone?)."
        )


def verify_current(data: bytes, history: KeyHistory, index_version: int, history_version: int) -> SignedHead:
    """The current head: validly signed, not older than what was accepted, and by a key that may still sign it."""
    signed = verify_head(data, history, "The current index")
    check_rollback(signed, history, index_version, history_version)
    _check_current_signer(signed, history.keys[signed.keyid])
    return signed


def walk_chain(head: SignedHead, history: KeyHistory, fetch: FetchHead) -> Iterator[Link]:
    """``head``, then each head before it (following ``previous``), each authenticated before it is yielded."""
    link = Link(head, vouched=False)
    while True:
        yield link
        previous_id = link.signed.head.previous_head
        if previous_id is None:
            return
        link = _previous(link.signed, previous_id, history, fetch)


def ancestor_id(head: SignedHead, version: int, history: KeyHistory, fetch: FetchHead) -> str:
    """The id of the head at ``version`` on the chain that ends at ``head``."""
    signed = head
    for link in walk_chain(head, history, fetch):
        signed = link.signed
        if signed.head.version <= version + 1:
            break
    if signed.head.version == version + 1 and signed.head.previous_head is not None:
        return signed.head.previous_head  # signed into its successor: no need to fetch it to name it
    return signed.head_id


def check_descent(head: SignedHead, history: KeyHistory, fetch: FetchHead, accepted: AcceptedHead, hint: str) -> None:
    """Refuse ``head`` unless it descends from the head a host accepted: an older one (or a shorter key
    history) is a rollback, one that does not pass through it a fork. ``hint`` says what the host can do."""
    version, before = head.head.version, accepted.index_version
    if version < before:
        raise RollbackError(
            f"The store's index is version {version}, older than version {before} that this host "
            "already accepted: an old index was replayed.",
            hint,
        )
    if len(history.versions) < accepted.key_history_version:
        raise RollbackError(
            f"The store's key history has {len(history.versions)} version(s), fewer than the "
            f"{accepted.key_history_version} this host already accepted: key history versions were removed.",
            hint,
        )
    if ancestor_id(head, before, history, fetch) != accepted.head_id:
        raise ForkError(
            f"The store's index (version {version}) does not descend from version {before} that this "
            "host accepted: the index was rewound and rebuilt, so a published change may have been reverted.",
            hint,
        )


def check_no_dropped_heads(dropped: Sequence[SignedHead], current: SignedHead) -> None:
    """Refuse a store holding validly signed heads off the current chain: heads accepted once, then dropped."""
    if not dropped:
        return
    heads = sorted(dropped, key=lambda s: s.head.version)
    shown = ", ".join(f"version {s.head.version} ({s.head_id})" for s in heads[:3])
    more = f" and {len(heads) - 3} more" if len(heads) > 3 else ""
    if heads[-1].head.version > current.head.version:
        raise RollbackError(
            f"The store holds validly signed index heads newer than the current version {current.head.version} "
            f"that are not on its chain: {shown}{more}. The index was rolled back."
        )
    raise ForkError(
        f"The store holds validly signed index heads that are not on the current chain: {shown}{more}. They were "
        f"accepted once and then dropped: the index was rolled back and the current chain (version "
        f"{current.head.version}) forks from it, so a published change may have been reverted."
    )


def _previous(signed: SignedHead, previous_id: str, history: KeyHistory, fetch: FetchHead) -> Link:
    """The head before ``signed``, authenticated by its signature or, if its key is revoked, by the chain."""
    what = f"Index head {previous_id}"
    data = fetch(previous_id)
    if hashlib.sha256(data).hexdigest() != previous_id:
        raise IntegrityError(f"Object {previous_id} is corrupted: its bytes no longer hash to its id.")
    try:
        link = Link(verify_head(data, history, what), vouched=False)
    except SignatureError:
        link = Link(_vouched_by_chain(data, history, what), vouched=True)
    if link.signed.head.version != signed.head.version - 1:
        raise IntegrityError(
            f"Index version {signed.head.version} links to version {link.signed.head.version}: the chain is broken."
        )
    return link


def _vouched_by_chain(data: bytes, history: KeyHistory, what: str) -> SignedHead:
    """Accept a head whose signer was later revoked: a trusted newer head commits to its hash."""
    envelope = dsse.Envelope.from_bytes(data, what=what)
    if envelope.payload_type != dsse.INDEX_PAYLOAD_TYPE:
        raise SignatureError(f"{what} is not an index envelope.")
    head = _parse_head(envelope, what)
    signer = history.signer_of(head.version)
    if signer is None or signer[1].status is not KeyStatus.REVOKED:
        raise SignatureError(f"{what} (index version {head.version}) has no valid signature from its key.")
    return _bound(data, head, signer, history, what)


def _bound(data: bytes, head: Head, signer: tuple[str, KeyRecord], history: KeyHistory, what: str) -> SignedHead:
    """``head`` as signed by ``signer``, once bound to the key history and to its signer's last head."""
    number = head.key_history_version
    if not 1 <= number <= len(history.versions) or history.versions[number - 1].digest != head.key_history_digest:
        raise KeyHistoryError(f"{what} was signed under key history version {number}, which this store lacks.")
    head_id = hashlib.sha256(data).hexdigest()
    record = signer[1]
    if record.last_head is not None and head.version == record.last_index and head_id != record.last_head:
        raise ForkError(
            f"{what} (index version {head.version}) is signed by a retired key at its last version, but it is not "
            "the head the key history recorded for it: it was forged with the retired key."
        )
    return SignedHead(head_id, head, signer[0], data)


def _parse_head(envelope: dsse.Envelope, what: str) -> Head:
    try:
        return Head.from_json(json.loads(envelope.payload), what)
    except (ValueError, RecursionError):
        raise IntegrityError(f"{what} has a payload that is not JSON.") from None


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
