"""The public key history: which key may sign which index version (TUF-root-like).

Version 1 pins the first key. Every later version is a DSSE envelope signed
by the key that was active in the version before it *and* by the key active
in it, links to the previous version by digest, and may only move keys
forward: active -> retired -> revoked, never back. Each key carries the range
of index versions it may sign; a retired key still verifies its range, a
revoked key verifies nothing.

This module reads no file: the store hands it the bytes of each version
(``store/keyhistory.py``), so a mirror's or a registry's copy verifies the same way.

The version that retires a key also records the id of the last head that key
signed (``last_head``), and both keys sign it. A retired key that is later
stolen can then forge nothing: any other head at its last version is refused,
and a chain must pass through that exact head. (Rotations made by releases
before 0.2 did not record it; their retired keys are bound by range only.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import rfc8785

from mcp_orchestration.core.errors import (
    KeyHistoryError,
    KeyNotTrustedError,
    KeyRetiredError,
    KeyRevokedError,
)
from mcp_orchestration.trust import dsse
from mcp_orchestration.trust.signer import PublicKey, Signer

_HEX_ID = re.compile(r"[0-9a-f]{64}")


class KeyStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


_ALLOWED_TRANSITIONS = {
    KeyStatus.ACTIVE: {KeyStatus.ACTIVE, KeyStatus.RETIRED, KeyStatus.REVOKED},
    KeyStatus.RETIRED: {KeyStatus.RETIRED, KeyStatus.REVOKED},
    KeyStatus.REVOKED: {KeyStatus.REVOKED},
}


@dataclass(frozen=True)
class KeyRecord:
    """One key's public half, status, the index versions it may sign (inclusive) and, once
    retired, the id of the last head it signed."""

    public_key: PublicKey
    status: KeyStatus
    first_index: int
    last_index: int | None
    last_head: str | None = None

    def covers(self, index_version: int) -> bool:
        last = self.last_index if self.last_index is not None else index_version
        return self.first_index <= index_version <= last

    def to_json(self) -> dict[str, Any]:
        record = {
            "public_key": base64.b64encode(self.public_key.raw).decode(),
            "status": self.status.value,
            "first_index": self.first_index,
            "last_index": self.last_index,
        }
        if self.last_head is not None:
            record["last_head"] = self.last_head
        return record

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> KeyRecord:
        last, last_head = raw["last_index"], raw.get("last_head")
        record = cls(
            public_key=PublicKey(base64.b64decode(raw["public_key"], validate=True)),
            status=KeyStatus(raw["status"]),
            first_index=raw["first_index"],
            last_index=last,
            last_head=last_head,
        )
        if len(record.public_key.raw) != 32 or not _is_int(record.first_index) or not (last is None or _is_int(last)):
            raise ValueError("malformed key record")
        if last_head is not None and (
            last is None or not (isinstance(last_head, str) and _HEX_ID.fullmatch(last_head))
        ):
            raise ValueError("malformed last head")
        return record


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class HistoryVersion:
    """One signed version of the key history, with the exact bytes it was stored as."""

    version: int
    created_at: str
    previous: str | None
    keys: Mapping[str, KeyRecord]
    envelope_bytes: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.envelope_bytes).hexdigest()

    @property
    def active(self) -> tuple[str, KeyRecord]:
        (active,) = [(k, r) for k, r in self.keys.items() if r.status is KeyStatus.ACTIVE]
        return active


def _payload(version: int, created_at: str, previous: str | None, keys: Mapping[str, KeyRecord]) -> bytes:
    return rfc8785.dumps(
        {
            "_type": "key_history",
            "version": version,
            "created_at": created_at,
            "previous": previous,
            "keys": {k: r.to_json() for k, r in keys.items()},
        }
    )


def _parse(envelope: dsse.Envelope, envelope_bytes: bytes, expected_version: int) -> HistoryVersion:
    what = f"key history version {expected_version}"
    try:
        raw = json.loads(envelope.payload)
        keys = {k: KeyRecord.from_json(v) for k, v in raw["keys"].items()}
        parsed = HistoryVersion(raw["version"], raw["created_at"], raw["previous"], keys, envelope_bytes)
        if raw["_type"] != "key_history" or not isinstance(parsed.created_at, str):
            raise ValueError("wrong type")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
        raise KeyHistoryError(f"{what} has a malformed payload.") from None
    if parsed.version != expected_version:
        raise KeyHistoryError(f"{what} claims to be version {parsed.version}.")
    if any(record.public_key.keyid != keyid for keyid, record in keys.items()):
        raise KeyHistoryError(f"{what} lists a key under an id that is not its SHA-256.")
    if sum(r.status is KeyStatus.ACTIVE for r in keys.values()) != 1:
        raise KeyHistoryError(f"{what} does not have exactly one active key.")
    return parsed


def _require_signed_by(envelope: dsse.Envelope, keyids: set[str], keys: Mapping[str, KeyRecord], what: str) -> None:
    verifiers = {k: keys[k].public_key.verify for k in keyids}
    valid = dsse.verified_keyids(envelope, dsse.KEY_HISTORY_PAYLOAD_TYPE, verifiers, what=what)
    missing = keyids - valid
    if missing:
        raise KeyHistoryError(f"{what} lacks a valid signature from key SHA256:{sorted(missing)[0]}.")


def _check_transition(before: HistoryVersion, after: HistoryVersion) -> None:
    """Keys only move forward, ranges never widen, and a new key starts where the old one ended."""
    what = f"key history version {after.version}"
    for keyid, old in before.keys.items():
        new = after.keys.get(keyid)
        if new is None:
            raise KeyHistoryError(f"{what} drops key SHA256:{keyid}.")
        if new.public_key != old.public_key or new.first_index != old.first_index:
            raise KeyHistoryError(f"{what} changes the identity or start of key SHA256:{keyid}.")
        if new.status not in _ALLOWED_TRANSITIONS[old.status]:
            raise KeyHistoryError(
                f"{what} moves key SHA256:{keyid} from {old.status.value} back to {new.status.value}."
            )
        if old.last_index is not None and new.last_index != old.last_index:
            raise KeyHistoryError(f"{what} changes the closed range of key SHA256:{keyid}.")
        if new.last_head != old.last_head and (
            old.last_head is not None or old.status is not KeyStatus.ACTIVE or new.status is KeyStatus.ACTIVE
        ):
            raise KeyHistoryError(f"{what} changes the last head of key SHA256:{keyid}.")
        if new.status is KeyStatus.RETIRED and new.last_index is None:
            raise KeyHistoryError(f"{what} retires key SHA256:{keyid} without closing its range.")
    old_active_id, _old_active = before.active
    new_active_id, new_active = after.active
    added = set(after.keys) - set(before.keys)
    if new_active_id == old_active_id:
        if added:
            raise KeyHistoryError(f"{what} adds a key that is not the new active key.")
        return
    if added != {new_active_id}:
        raise KeyHistoryError(f"{what} adds keys other than the new active key.")
    closed = after.keys[old_active_id].last_index
    if closed is None or new_active.first_index != closed + 1 or new_active.last_index is not None:
        raise KeyHistoryError(f"{what} does not hand over the index range from the old key to the new one.")


class KeyHistory:
    """The verified chain of key-history versions of one store."""

    def __init__(self, versions: list[HistoryVersion]) -> None:
        self.versions = versions

    @property
    def current(self) -> HistoryVersion:
        return self.versions[-1]

    @property
    def keys(self) -> Mapping[str, KeyRecord]:
        return self.current.keys

    @property
    def digests(self) -> list[str]:
        """The digest of every version, oldest first (heads commit to one of them)."""
        return [version.digest for version in self.versions]

    @property
    def root_fingerprint(self) -> str:
        return f"SHA256:{self.versions[0].active[0]}"

    @classmethod
    def verify(cls, documents: Iterable[bytes], *, expect_root: str | None = None) -> KeyHistory:
        """Verify every version, given as stored bytes, from the pinned first one to the newest.

        ``documents`` may be lazy: each is checked before the next is read.

        Version 1 must pin one key and be signed by it; every later one must be
        signed by the key active before it (checked before anything in it is
        parsed), link to it by digest, hand keys forward only, and be signed by
        its own active key too.
        """
        versions: list[HistoryVersion] = []
        for number, data in enumerate(documents, start=1):
            what = f"key history version {number}"
            envelope = dsse.Envelope.from_bytes(data, what=what)
            if versions:
                before = versions[-1]
                _require_signed_by(envelope, {before.active[0]}, before.keys, what)
            version = _parse(envelope, data, number)
            if not versions:
                keyid, record = version.active
                if version.previous is not None or len(version.keys) != 1 or record.first_index != 1:
                    raise KeyHistoryError("key history version 1 must pin exactly one key, active from index 1.")
                _require_signed_by(envelope, {keyid}, version.keys, what)
            else:
                before = versions[-1]
                if version.previous != before.digest:
                    raise KeyHistoryError(f"{what} does not link to version {number - 1}.")
                _check_transition(before, version)
                _require_signed_by(envelope, {before.active[0], version.active[0]}, version.keys, what)
            versions.append(version)
        history = cls(versions)
        if expect_root is not None:
            history.require_root(expect_root)
        return history

    def require_root(self, expected: str) -> None:
        """Refuse a store whose version 1 pins a key other than ``expected``."""
        if self.root_fingerprint != expected:
            raise KeyNotTrustedError(
                f"The store's root key is {self.root_fingerprint}, not the expected {expected}.",
                hint="Do not use this store: it was initialised with another key. Check the fingerprint you pinned "
                "against your records.",
            )

    @classmethod
    def genesis(cls, key: Signer, created_at: str) -> HistoryVersion:
        """Version 1, pinning ``key`` as the one active key from index version 1."""
        keys = {key.keyid: KeyRecord(key.public_key, KeyStatus.ACTIVE, 1, None)}
        return _signed_version(1, None, keys, created_at, [key])

    def rotation(
        self, old: Signer, new: Signer, last_index_of_old: int, last_head_of_old: str, created_at: str
    ) -> HistoryVersion:
        """The next version: ``old`` retired after the head ``last_head_of_old`` (version
        ``last_index_of_old``), ``new`` active; both sign."""
        keys = dict(self.keys)
        keys[old.keyid] = replace(
            keys[old.keyid], status=KeyStatus.RETIRED, last_index=last_index_of_old, last_head=last_head_of_old
        )
        keys[new.keyid] = KeyRecord(new.public_key, KeyStatus.ACTIVE, last_index_of_old + 1, None)
        return self._next(keys, created_at, [old, new])

    def revocation(self, active: Signer, keyid: str, created_at: str) -> HistoryVersion:
        """The next version: ``keyid`` revoked, signed by the active key."""
        keys = dict(self.keys)
        keys[keyid] = replace(keys[keyid], status=KeyStatus.REVOKED)
        return self._next(keys, created_at, [active])

    def _next(self, keys: Mapping[str, KeyRecord], created_at: str, signers: list[Signer]) -> HistoryVersion:
        return _signed_version(len(self.versions) + 1, self.current.digest, keys, created_at, signers)

    def append(self, version: HistoryVersion) -> None:
        """Take ``version``, made by :meth:`rotation` or :meth:`revocation` of this history, as the newest."""
        self.versions.append(version)

    def require_active(self, key: Signer) -> KeyRecord:
        """The record of ``key`` if it is the active key; otherwise say why it may not sign."""
        record = self.keys.get(key.keyid)
        if record is None:
            raise KeyNotTrustedError(f"Key {key.fingerprint} is not in this store's key history.")
        if record.status is KeyStatus.RETIRED:
            raise KeyRetiredError(
                f"Key {key.fingerprint} is retired: it signed index versions up to {record.last_index}."
            )
        if record.status is KeyStatus.REVOKED:
            raise KeyRevokedError(f"Key {key.fingerprint} is revoked.")
        return record

    def signer_of(self, index_version: int) -> tuple[str, KeyRecord] | None:
        """The key that was allowed to sign ``index_version`` (revoked or not)."""
        for keyid, record in self.keys.items():
            if record.covers(index_version):
                return keyid, record
        return None


def _signed_version(
    number: int, previous: str | None, keys: Mapping[str, KeyRecord], created_at: str, signers: list[Signer]
) -> HistoryVersion:
    payload = _payload(number, created_at, previous, keys)
    envelope = dsse.sign(dsse.KEY_HISTORY_PAYLOAD_TYPE, payload, {k.keyid: k.sign for k in signers})
    return HistoryVersion(number, created_at, previous, dict(keys), envelope.to_bytes())
