from __future__ import annotations

import base64
import io
import json
import logging
import os

import pytest
from cryptography.hazmat.primitives import serialization

from mcp_orchestration.security.redaction import (
    MASK,
    REDACTOR,
    JsonRedactingFormatter,
    RedactingFormatter,
    Redactor,
    encodings_of_bytes,
    encodings_of_pem,
)
from mcp_orchestration.trust import keys


def _canaries(key: keys.SigningKey) -> list[str]:
    """Encodings of a key built independently of the redactor's own helpers."""
    private = serialization.load_pem_private_key(key.serialize("pkcs8", None), None)
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = key.serialize("pkcs8", None).decode()
    return [
        pem,
        json.dumps(pem)[1:-1],
        base64.b64encode(der).decode(),
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        *(line for line in pem.splitlines() if not line.startswith("-----") and len(line) >= 16),
    ]


def test_every_encoding_of_a_loaded_key_is_masked() -> None:
    key = keys.generate()  # generate() registers the key with the process redactor
    from mcp_orchestration.security.redaction import REDACTOR

    for canary in _canaries(key):
        redacted = REDACTOR.redact(f"before {canary} after")
        assert canary not in redacted
        assert MASK in redacted


def test_unknown_pem_private_key_blocks_are_masked_even_when_cut_short() -> None:
    redactor = Redactor()
    pem = keys.generate().serialize("pkcs8", None).decode()
    body = pem.splitlines()[1]
    assert body not in redactor.redact(f"x {pem} y")
    truncated = pem[: len(pem) // 2]
    assert body not in redactor.redact(f"log: {truncated}")
    openssh = keys.generate().serialize("openssh", None).decode()
    assert openssh.splitlines()[1] not in redactor.redact(openssh)


def test_public_text_is_left_alone() -> None:
    redactor = Redactor()
    redactor.register(encodings_of_bytes(b"\x01" * 32))
    text = "index version 4 signed by SHA256:" + "ab" * 32
    assert redactor.redact(text) == text


def test_short_pem_fragments_are_not_registered() -> None:
    forms = encodings_of_pem("-----BEGIN X-----\nAAAAAAAAAAAAAAAAAAAAAAAA\nAB==\n-----END X-----\n")
    assert "AB==" not in forms
    assert "AAAAAAAAAAAAAAAAAAAAAAAAAB==" in forms


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("mcp_orchestration.child", logging.ERROR, __file__, 1, message, args, exc_info)


@pytest.mark.parametrize("formatter_type", [RedactingFormatter, JsonRedactingFormatter])
def test_formatters_mask_arguments_and_tracebacks(formatter_type: type[logging.Formatter]) -> None:
    redactor = Redactor()
    redactor.register_text("hunter2hunter2")
    formatter = formatter_type(redactor)  # type: ignore[call-arg]
    try:
        raise ValueError("failed with hunter2hunter2")
    except ValueError as error:
        line = formatter.format(_record("value %s", "hunter2hunter2", exc=error))
    assert "hunter2hunter2" not in line
    assert line.count(MASK) >= 2


def test_a_child_logger_through_a_configured_handler_is_redacted() -> None:
    redactor = Redactor()
    redactor.register_text("s3cr3t-passphrase")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(redactor))
    logger = logging.getLogger("mcp_orchestration.test.deep.child")
    logger.addHandler(handler)
    try:
        logger.warning("loaded %r", {"passphrase": "s3cr3t-passphrase"})
    finally:
        logger.removeHandler(handler)
    assert "s3cr3t-passphrase" not in stream.getvalue()
    assert MASK in stream.getvalue()


def test_strings_too_short_to_be_secrets_do_not_mangle_output() -> None:
    redactor = Redactor()
    redactor.register_text("e")
    redactor.register_text("\n")
    redactor.register_text("   short  ")
    text = "error [key_format]: the key\nis short"
    assert redactor.redact(text) == text


def _raw_and_der(key: keys.SigningKey) -> tuple[bytes, bytes]:
    private = serialization.load_pem_private_key(key.serialize("pkcs8", None), None)
    plain = serialization.NoEncryption()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, plain)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, plain)
    return raw, der


def _key_only_runs(secret: bytes) -> set[str]:
    """The base64 characters that depend on ``secret`` alone, at each byte offset, built here independently.

    A character encodes 6 bits; at bit position ``8 * offset`` the secret's bits start, so only the
    characters wholly inside ``[8 * offset, 8 * (offset + len))`` are the secret's own.
    """
    runs = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in (0, 1, 2):
            text = encode(b"\xff" * offset + secret + b"\xff" * 3).decode()
            first = -(-8 * offset // 6)
            last = (8 * (offset + len(secret))) // 6
            runs.add(text[first:last])
    return runs


@pytest.mark.parametrize("round_", range(4))
def test_a_key_inside_a_larger_base64_blob_is_masked_at_every_byte_offset(round_: int) -> None:
    """Seed and DER at byte offsets 0, 1 and 2 of random bytes: no 16-character piece of them survives."""
    key = keys.generate()
    raw, der = _raw_and_der(key)
    windows = {run[i : i + 16] for secret in (raw, der) for run in _key_only_runs(secret) for i in range(len(run) - 15)}
    for secret in (raw, der):
        for offset in (0, 1, 2):
            blob = os.urandom(30 + offset) + secret + os.urandom(31)
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                redacted = REDACTOR.redact(encode(blob).decode())
                assert MASK in redacted
                assert not [w for w in windows if w in redacted], (round_, offset, encode.__name__)


def test_encodings_of_bytes_drop_the_characters_that_mix_in_neighbours() -> None:
    raw = bytes(range(1, 33))  # 32 bytes: 10 whole groups and 2 bytes
    forms = encodings_of_bytes(raw)
    assert base64.b64encode(raw).decode().rstrip("=")[:42] in forms  # the last char mixes in the next byte
    assert base64.b64encode(b"\0" + raw).decode()[2:44] in forms
    assert base64.b64encode(b"\0\0" + raw).decode()[3:45] in forms
    assert all(
        "=" not in form for form in forms - {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    )


def test_scrub_masks_known_secrets_and_credential_like_words() -> None:
    token = "ghp_" + "A1b2C3d4E5" * 4
    redactor = Redactor()
    redactor.register({"a-known-secret-value"})
    scrubbed = redactor.scrub(f"bad id {token} near a-known-secret-value")
    assert token not in scrubbed and "a-known-secret-value" not in scrubbed
    assert scrubbed.startswith("bad id ***")
