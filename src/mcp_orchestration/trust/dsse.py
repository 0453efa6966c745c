"""DSSE envelopes: Ed25519 signatures over the pre-authentication encoding.

See https://github.com/secure-systems-lab/dsse/blob/master/protocol.md. The
signature covers ``PAE(payloadType, payload)``, so a payload can never be
re-read under a different type, and verification runs over the exact payload
bytes before anything parses them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import rfc8785

from mcp_orchestration.core.errors import IntegrityError, SignatureError

INDEX_PAYLOAD_TYPE = "application/vnd.mcp-orchestration.index+json"
KEY_HISTORY_PAYLOAD_TYPE = "application/vnd.mcp-orchestration.key-history+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding of ``payload`` under ``payload_type``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A payload, its type, and the signatures over their PAE."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_bytes(self) -> bytes:
        """Canonical JSON (RFC 8785) of the envelope: its stored and exported form."""
        return rfc8785.dumps(
            {
                "payload": base64.b64encode(self.payload).decode(),
                "payloadType": self.payload_type,
                "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, what: str) -> Envelope:
        """Parse a stored envelope; anything malformed or non-canonical is an integrity error naming ``what``."""
        try:
            raw = json.loads(data)
            envelope = cls(
                payload_type=_expect_str(raw["payloadType"]),
                payload=base64.b64decode(_expect_str(raw["payload"]), validate=True),
                signatures=tuple(
                    Signature(_expect_str(s["keyid"]), base64.b64decode(_expect_str(s["sig"]), validate=True))
                    for s in raw["signatures"]
                ),
            )
        except (ValueError, KeyError, TypeError, RecursionError, binascii.Error):
            raise IntegrityError(f"{what} is not a well-formed DSSE envelope.") from None
        if envelope.to_bytes() != data:
            # Only canonical bytes are ever written, so any other spelling (even one that
            # decodes to the same values, like spare base64 bits) is a modification.
            raise IntegrityError(f"{what} is not in its canonical form: it was modified.")
        return envelope


def _expect_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


Signer = Callable[[bytes], bytes]
"""Signs message bytes; supplied by the key holder so no private key crosses into this module."""

Verifier = Callable[[bytes, bytes], bool]
"""Returns whether ``(signature, message)`` verifies under one public key."""


def sign(payload_type: str, payload: bytes, signers: Mapping[str, Signer]) -> Envelope:
    """Sign ``payload`` with every ``keyid -> signer`` given."""
    message = pae(payload_type, payload)
    return Envelope(payload_type, payload, tuple(Signature(k, s(message)) for k, s in signers.items()))


def verified_keyids(
    envelope: Envelope, expected_type: str, verifiers: Mapping[str, Verifier], *, what: str
) -> set[str]:
    """The key ids among ``verifiers`` whose signature over the envelope is valid.

    The payload type is checked first, so a key-history payload can never pass
    as an index and the reverse.
    """
    if envelope.payload_type != expected_type:
        raise SignatureError(f"{what} has payload type {envelope.payload_type!r}, expected {expected_type!r}.")
    message = pae(envelope.payload_type, envelope.payload)
    return {s.keyid for s in envelope.signatures if s.keyid in verifiers and verifiers[s.keyid](s.sig, message)}
