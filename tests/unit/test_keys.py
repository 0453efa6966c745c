from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.core.errors import (
    KeyFormatError,
    KeyUnavailableError,
    KeyUnreadableError,
    PassphraseError,
    PlainSecretEnvError,
)
from mcp_orchestration.trust import key_sources, keys
from mcp_orchestration.trust.key_sources import KeySpec
from tests.conftest import PASSPHRASE, write_key


def _spec(path: Path, passphrase: Path | None = None) -> KeySpec:
    return KeySpec("file", path, passphrase)


def _passphrase_file(tmp_path: Path, text: str = PASSPHRASE + "\n") -> Path:
    path = tmp_path / "passphrase"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("fmt", ["pkcs8", "openssh"])
def test_plain_keys_load_in_both_formats(tmp_path: Path, fmt: keys.KeyFormat) -> None:
    written = write_key(tmp_path / "k", fmt)
    assert key_sources.load_signing_key(_spec(tmp_path / "k")).keyid == written.keyid


def test_encrypted_pkcs8_key_loads_with_its_passphrase(tmp_path: Path) -> None:
    written = write_key(tmp_path / "k", "pkcs8", PASSPHRASE)
    loaded = key_sources.load_signing_key(_spec(tmp_path / "k", _passphrase_file(tmp_path)))
    assert loaded.keyid == written.keyid


def test_trailing_whitespace_in_secret_files_is_accepted(tmp_path: Path) -> None:
    key = keys.generate()
    (tmp_path / "k").write_bytes(key.serialize("pkcs8", None) + b"\n\n  \n")
    assert key_sources.load_signing_key(_spec(tmp_path / "k")).keyid == key.keyid


def test_encrypted_key_without_passphrase_is_a_passphrase_error(tmp_path: Path) -> None:
    write_key(tmp_path / "k", "pkcs8", PASSPHRASE)
    with pytest.raises(PassphraseError, match="no passphrase"):
        key_sources.load_signing_key(_spec(tmp_path / "k"))


def test_wrong_passphrase_is_a_passphrase_error(tmp_path: Path) -> None:
    write_key(tmp_path / "k", "pkcs8", PASSPHRASE)
    with pytest.raises(PassphraseError, match="wrong"):
        key_sources.load_signing_key(_spec(tmp_path / "k", _passphrase_file(tmp_path, "not the passphrase")))


def test_encrypted_openssh_keys_are_refused_with_the_pkcs8_alternative(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    path = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(path)], check=True)
    with pytest.raises(PassphraseError, match="no passphrase"):
        key_sources.load_signing_key(_spec(path))
    with pytest.raises(KeyFormatError, match="Encrypted OpenSSH") as caught:
        key_sources.load_signing_key(_spec(path, _passphrase_file(tmp_path)))
    assert "--passphrase-file" in caught.value.diagnostics()
    with pytest.raises(KeyFormatError, match="Encrypted OpenSSH"):
        keys.generate().serialize("openssh", PASSPHRASE.encode())


def test_passphrase_for_a_plain_key_is_refused(tmp_path: Path) -> None:
    write_key(tmp_path / "k")
    with pytest.raises(PassphraseError, match="not encrypted"):
        key_sources.load_signing_key(_spec(tmp_path / "k", _passphrase_file(tmp_path)))


def test_short_passphrase_is_refused(tmp_path: Path) -> None:
    write_key(tmp_path / "k", "pkcs8", "short")
    with pytest.raises(PassphraseError, match="shorter"):
        key_sources.load_signing_key(_spec(tmp_path / "k", _passphrase_file(tmp_path, "short")))


@pytest.mark.parametrize(
    "private",
    [
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    ],
    ids=["rsa", "ec"],
)
def test_non_ed25519_keys_are_format_errors(
    tmp_path: Path, private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> None:
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "k").write_bytes(pem)
    with pytest.raises(KeyFormatError, match="not Ed25519"):
        key_sources.load_signing_key(_spec(tmp_path / "k"))


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"-----BEGIN " + b"PRIVATE KEY-----\nAAAA\n-----END " + b"PRIVATE KEY-----\n", os.urandom(64)],
    ids=["empty", "text", "pem-without-key", "random"],  # stable ids: parallel workers must collect the same tests
)
def test_garbage_is_a_format_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "k").write_bytes(content)
    with pytest.raises(KeyFormatError):
        key_sources.load_signing_key(_spec(tmp_path / "k"))


def test_missing_key_file_is_key_unavailable(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailableError, match="does not exist"):
        key_sources.load_signing_key(_spec(tmp_path / "absent"))


def test_no_configured_key_is_key_unavailable() -> None:
    with pytest.raises(KeyUnavailableError) as caught:
        key_sources.load_signing_key(KeySpec("file", None, None))
    assert "/run/secrets/signing_key" in caught.value.diagnostics()


def test_unreadable_key_file_names_path_uid_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k"
    write_key(path)

    def refuse(path: Path, limit: int) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(keys, "read_named_file", refuse)
    with pytest.raises(KeyUnreadableError) as caught:
        key_sources.load_signing_key(_spec(path))
    text = caught.value.diagnostics()
    assert str(path) in text
    assert f"uid {os.getuid()}" in text
    assert "chown 65532" in text
    assert "chmod 0440" in text


def test_key_file_readable_by_others_outside_run_secrets_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "k"
    write_key(path)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        key_sources.load_signing_key(_spec(path))
    assert "readable by group or others" in caplog.text
    path.chmod(0o600)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        key_sources.load_signing_key(_spec(path))
    assert caplog.text == ""


@pytest.mark.parametrize(
    "variable",
    ["MCP_ORCHESTRATION_SIGNING_KEY", "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE", "MCP_ORCHESTRATION_SIGNING_KEY_NEXT"],
)
def test_plain_environment_variable_with_key_material_is_refused(variable: str) -> None:
    secret = keys.generate().serialize("pkcs8", None).decode()
    body = secret.splitlines()[1]
    with pytest.raises(PlainSecretEnvError) as caught:
        load_settings(environ={variable: secret})
    assert f"{variable}_FILE" in caught.value.diagnostics()
    assert body not in caught.value.diagnostics()


def test_file_variable_and_run_secrets_default_are_the_key_sources(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(tmp_path / "k"), "MCP_ORCHESTRATION_HOME": "/h"}
    )
    assert settings.signing_key == KeySpec("file", tmp_path / "k", None)
    explicit = load_settings(
        key_file=tmp_path / "x", environ={"MCP_ORCHESTRATION_SIGNING_KEY_FILE": "/y", "MCP_ORCHESTRATION_HOME": "/h"}
    )
    assert explicit.signing_key.path == tmp_path / "x"


def test_keyring_without_backend_is_a_clear_key_unavailable_error() -> None:
    with pytest.raises(KeyUnavailableError, match="No OS keyring backend"):
        key_sources.load_signing_key(KeySpec("keyring", None, None))


def test_keyring_round_trip_with_a_real_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1

        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.entries: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            del self.entries[(service, username)]

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        with pytest.raises(KeyUnavailableError, match="holds no entry"):
            key_sources.load_signing_key(KeySpec("keyring", None, None))
        key = keys.generate()
        keys.store_in_keyring(key)
        assert key_sources.load_signing_key(KeySpec("keyring", None, None)).keyid == key.keyid
        with pytest.raises(KeyUnavailableError, match="never overwritten"):
            keys.store_in_keyring(keys.generate())
    finally:
        keyring.set_keyring(previous)


def test_signing_key_never_shows_its_material() -> None:
    key = keys.generate()
    raw = key.serialize("pkcs8", None).decode()
    body = "".join(raw.splitlines()[1:-1])
    for shown in (repr(key), str(key), f"{key}", f"{key!r}", f"{key:>200}", "{}".format(key)):  # noqa: UP032
        assert key.fingerprint in shown
        assert body not in shown
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert not hasattr(key, "__dict__")


def test_fingerprint_is_sha256_of_the_raw_public_key() -> None:
    import hashlib

    key = keys.generate()
    assert key.keyid == hashlib.sha256(key.public_key.raw).hexdigest()
    assert keys.public_key_fingerprint(key.keyid.upper()) == key.fingerprint
    assert keys.public_key_fingerprint(f"sha256:{key.keyid}") == key.fingerprint


def test_default_passphrase_pairs_only_with_the_default_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_orchestration.app import settings

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("signing_key", "signing_key_passphrase", "signing_key_next"):
        (secrets / name).write_text("x")
    names = settings.SecretNames(
        settings.ENV_KEY_FILE, secrets / "signing_key", settings.ENV_PASSPHRASE_FILE, secrets / "signing_key_passphrase"
    )
    default = settings.key_spec(key_file=None, passphrase_file=None, key_source=None, environ={}, names=names)
    assert default == KeySpec("file", secrets / "signing_key", secrets / "signing_key_passphrase")
    explicit = settings.key_spec(
        key_file=tmp_path / "plain", passphrase_file=None, key_source=None, environ={}, names=names
    )
    assert explicit.passphrase_path is None
    next_names = settings.SecretNames(
        settings.ENV_NEXT_KEY_FILE,
        secrets / "signing_key_next",
        settings.ENV_NEXT_PASSPHRASE_FILE,
        secrets / "signing_key_next_passphrase",
    )
    rotated = settings.key_spec(key_file=None, passphrase_file=None, key_source="file", environ={}, names=next_names)
    assert rotated == KeySpec("file", secrets / "signing_key_next", None)


def test_loading_the_same_key_again_teaches_the_redactor_nothing_new(tmp_path: Path) -> None:
    from mcp_orchestration.security.redaction import REDACTOR

    write_key(tmp_path / "k", "openssh")
    key_sources.load_signing_key(_spec(tmp_path / "k"))
    known = len(REDACTOR)
    for _ in range(20):
        key_sources.load_signing_key(_spec(tmp_path / "k"))
    assert len(REDACTOR) == known


@pytest.mark.parametrize(("first", "second"), [("pkcs8", "pkcs8"), ("pkcs8", "openssh"), ("openssh", "pkcs8")])
def test_a_key_file_with_two_private_keys_is_refused(
    tmp_path: Path, first: keys.KeyFormat, second: keys.KeyFormat
) -> None:
    path = tmp_path / "k"
    path.write_bytes(keys.generate().serialize(first, None) + keys.generate().serialize(second, None))
    path.chmod(0o600)
    with pytest.raises(KeyFormatError, match="more than one private key"):
        key_sources.load_signing_key(_spec(path))


def test_a_linked_key_file_is_followed_to_a_regular_file(tmp_path: Path) -> None:
    # Kubernetes mounts a secret as a link into ..data/: the operator's path may be a link.
    target = tmp_path / "..data" / "signing_key"
    target.parent.mkdir()
    key = write_key(target)
    link = tmp_path / "signing_key"
    link.symlink_to(target)
    assert key_sources.load_signing_key(_spec(link)).keyid == key.keyid


def test_a_key_file_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "k"
    os.mkfifo(path, 0o600)
    with pytest.raises(KeyUnreadableError, match="not a regular file") as caught:
        key_sources.load_signing_key(_spec(path))
    assert str(path) in caught.value.message and caught.value.hint
