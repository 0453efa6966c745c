from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mcp_orchestration.security.logs import JsonRedactingFormatter, RedactingFormatter
from mcp_orchestration.security.redaction import (
    REDACTOR,
    Redactor,
    encodings_of_bytes,
    encodings_of_pem,
)
from mcp_orchestration.security.secret_rules import MASK
from mcp_orchestration.trust import key_sources, keys

# Canaries come from ``cryptography`` directly, never from the product's key objects: serialising a
# SigningKey (or calling the redactor's own encoders) would teach the redactor the very strings
# these tests look for, and they would pass whether or not loading a key registers anything.


def _fresh_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _pem(private: Ed25519PrivateKey, fmt: str = "pkcs8", passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private_format = serialization.PrivateFormat.OpenSSH if fmt == "openssh" else serialization.PrivateFormat.PKCS8
    return private.private_bytes(serialization.Encoding.PEM, private_format, encryption)


def _raw_and_der(private: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    plain = serialization.NoEncryption()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, plain)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, plain)
    return raw, der


def _byte_canaries(secret: bytes) -> list[str]:
    """Encodings a secret's bytes are likely printed in, built here (not by ``encodings_of_bytes``)."""
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]


def _key_canaries(private: Ed25519PrivateKey) -> list[str]:
    """The seed and the DER of ``private`` as a log or an error could print them: no PEM armour."""
    raw, der = _raw_and_der(private)
    return [*_byte_canaries(raw), *_byte_canaries(der)]


def _pem_body_lines(pem: bytes) -> list[str]:
    lines = pem.decode().splitlines()
    return [line for line in lines if not line.startswith("-----") and ":" not in line and len(line) >= 16]


def _assert_unknown(canaries: list[str]) -> None:
    """The canaries are fresh: the process redactor does not mask them before the product loads them.

    Only what is unique to one key or passphrase can be checked so: the process redactor keeps what earlier
    tests taught it, and some PEM lines (an OpenSSH header) are the same in every key.
    """
    for canary in canaries:
        assert REDACTOR.redact(f"before {canary} after") == f"before {canary} after", canary


def _assert_masked(canaries: list[str]) -> None:
    for canary in canaries:
        redacted = REDACTOR.redact(f"before {canary} after")
        assert canary not in redacted, canary
        assert MASK in redacted, canary


@pytest.mark.parametrize("fmt", ["pkcs8", "openssh"])
def test_loading_a_key_file_teaches_the_redactor_every_encoding_of_the_key(fmt: str, tmp_path: Path) -> None:
    private = _fresh_private_key()
    pem = _pem(private, fmt)
    path = tmp_path / "signing_key"
    path.write_bytes(pem)
    path.chmod(0o600)
    canaries = _key_canaries(private)
    _assert_unknown(canaries)

    key_sources.load_signing_key(key_sources.KeySpec("file", path, None))

    # The PEM lines are checked only once loaded: an OpenSSH body starts with a line every such key shares.
    lines = [*_pem_body_lines(pem), "".join(_pem_body_lines(pem)), pem.decode(), json.dumps(pem.decode())[1:-1]]
    _assert_masked([*canaries, *lines])


def test_loading_an_encrypted_key_teaches_the_redactor_the_passphrase_and_the_key(tmp_path: Path) -> None:
    private = _fresh_private_key()
    passphrase = secrets.token_urlsafe(18)
    encrypted = _pem(private, passphrase=passphrase.encode())
    key_path, passphrase_path = tmp_path / "signing_key", tmp_path / "passphrase"
    key_path.write_bytes(encrypted)
    passphrase_path.write_text(passphrase + "\n")
    for path in (key_path, passphrase_path):
        path.chmod(0o600)
    canaries = [passphrase, *_byte_canaries(passphrase.encode()), *_key_canaries(private)]
    _assert_unknown(canaries)

    key_sources.load_signing_key(key_sources.KeySpec("file", key_path, passphrase_path))

    _assert_masked([*canaries, *_pem_body_lines(encrypted)])


def test_key_bytes_handed_to_the_parser_are_masked_once_parsed() -> None:
    """The path the keyring and ``--key-file -`` share: parsing registers the key, whatever read it."""
    private = _fresh_private_key()
    canaries = _key_canaries(private)
    _assert_unknown(canaries)

    keys.parse_private_key(_pem(private), None, origin="test")

    _assert_masked(canaries)


def test_a_generated_key_is_masked_before_anyone_serialises_it(monkeypatch: pytest.MonkeyPatch) -> None:
    private = _fresh_private_key()
    canaries = _key_canaries(private)
    _assert_unknown(canaries)
    monkeypatch.setattr(keys, "Ed25519PrivateKey", SimpleNamespace(generate=lambda: private))

    key = keys.generate()

    monkeypatch.undo()
    assert (
        key.public_key.keyid
        == hashlib.sha256(
            private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ).hexdigest()
    )
    _assert_masked(canaries)


def test_a_secret_derived_from_the_key_is_masked_once_derived() -> None:
    private = _fresh_private_key()
    key = keys.parse_private_key(_pem(private), None, origin="test")
    purpose = b"test purpose " + os.urandom(8).hex().encode()
    raw, _ = _raw_and_der(private)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(raw)
    canaries = _byte_canaries(derived)
    _assert_unknown(canaries)

    key.derive_key(purpose)

    _assert_masked(canaries)


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
def test_formatters_mask_arguments_and_tracebacks(
    formatter_type: type[RedactingFormatter] | type[JsonRedactingFormatter],
) -> None:
    redactor = Redactor()
    redactor.register_text("hunter2hunter2")
    formatter = formatter_type(redactor)
    try:
        raise ValueError("failed with hunter2hunter2")
    except ValueError as error:
        line = formatter.format(_record("value %s", "hunter2hunter2", exc=error))
    assert "hunter2hunter2" not in line
    assert line.count(MASK) >= 2


@pytest.mark.parametrize("breaker", ["\x85", "\u2028", "\u2029", "\r", "\x1b[2J", "\x0b", "\x0c"])
def test_a_quoted_client_value_cannot_start_a_log_line_of_its_own(breaker: str) -> None:
    """The SDK logs a refused Host header as sent; NEL (U+0085) in it used to begin a forged line."""
    line = RedactingFormatter(Redactor()).format(_record("Invalid Host header: %s", f"x{breaker}ERROR forged: entry"))
    assert len(line.splitlines()) == 1
    assert "forged" in line and breaker not in line


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
    private = _fresh_private_key()
    keys.parse_private_key(_pem(private), None, origin="test")
    raw, der = _raw_and_der(private)
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
