from __future__ import annotations

import base64
import json

import pytest

from mcp_orchestration.core.errors import IntegrityError, SignatureError
from mcp_orchestration.trust import dsse, keys


def test_pae_matches_the_dsse_specification_example() -> None:
    # Test vector from the DSSE protocol documentation.
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_signed_envelope_round_trips_and_verifies() -> None:
    key = keys.generate()
    envelope = dsse.sign(dsse.INDEX_PAYLOAD_TYPE, b'{"a":1}', {key.keyid: key.sign})
    parsed = dsse.Envelope.from_bytes(envelope.to_bytes(), what="test")
    assert parsed == envelope
    verifiers = {key.keyid: key.public_key.verify}
    assert dsse.verified_keyids(parsed, dsse.INDEX_PAYLOAD_TYPE, verifiers, what="test") == {key.keyid}


def test_signature_over_another_payload_does_not_verify() -> None:
    key = keys.generate()
    envelope = dsse.sign(dsse.INDEX_PAYLOAD_TYPE, b"one", {key.keyid: key.sign})
    forged = dsse.Envelope(envelope.payload_type, b"two", envelope.signatures)
    assert dsse.verified_keyids(forged, dsse.INDEX_PAYLOAD_TYPE, {key.keyid: key.public_key.verify}, what="t") == set()


def test_payload_type_confusion_is_refused() -> None:
    key = keys.generate()
    envelope = dsse.sign(dsse.KEY_HISTORY_PAYLOAD_TYPE, b"{}", {key.keyid: key.sign})
    with pytest.raises(SignatureError):
        dsse.verified_keyids(envelope, dsse.INDEX_PAYLOAD_TYPE, {key.keyid: key.public_key.verify}, what="t")


def test_signature_from_unknown_key_is_ignored() -> None:
    signer, other = keys.generate(), keys.generate()
    envelope = dsse.sign(dsse.INDEX_PAYLOAD_TYPE, b"x", {signer.keyid: signer.sign})
    assert (
        dsse.verified_keyids(envelope, dsse.INDEX_PAYLOAD_TYPE, {other.keyid: other.public_key.verify}, what="t")
        == set()
    )


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[]",
        b'{"payloadType": "x", "signatures": []}',
        json.dumps({"payload": "!!!", "payloadType": "x", "signatures": []}).encode(),
        json.dumps({"payload": base64.b64encode(b"x").decode(), "payloadType": 1, "signatures": []}).encode(),
        json.dumps({"payload": "", "payloadType": "x", "signatures": [{"keyid": "k"}]}).encode(),
    ],
)
def test_malformed_envelopes_are_integrity_errors(document: bytes) -> None:
    with pytest.raises(IntegrityError):
        dsse.Envelope.from_bytes(document, what="test envelope")
