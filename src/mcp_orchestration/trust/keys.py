"""In-memory key custody: the only module that ever holds private key bytes.

These keys come from a secret file (a Docker secret, ``--key-file`` or
``*_FILE``) or, on request, from the OS keyring; never from a plain
environment variable. Every secret read is registered with the redactor in all
its encodings before anything else happens, and the private key lives inside
:class:`SigningKey`, whose ``repr`` and ``str`` show only the public
fingerprint. (A key in a PKCS#11 token never reaches this process at all: see
:mod:`mcp_orchestration.trust.hsm`.)
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mcp_orchestration.core.errors import (
    InvalidIdError,
    KeyFormatError,
    KeyUnavailableError,
    KeyUnreadableError,
    PassphraseError,
)
from mcp_orchestration.core.fsutil import UnsafeFileError, read_named_file
from mcp_orchestration.security.ids import shown
from mcp_orchestration.security.redaction import (
    MIN_SECRET_LENGTH,
    REDACTOR,
    Redactor,
    encodings_of_bytes,
    encodings_of_pem,
)
from mcp_orchestration.trust.mounts import SECRETS_DIR
from mcp_orchestration.trust.signer import PublicKey, Signer

log = logging.getLogger(__name__)

KeyFormat = Literal["pkcs8", "openssh"]
MIN_PASSPHRASE_LENGTH = MIN_SECRET_LENGTH
_PRIVATE_KEY_BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
MAX_SECRET_FILE_BYTES = 64 * 1024  # a PEM key is under 1 KiB; a bound for the read
_CONTAINER_UID = 65532
KEYRING_SERVICE = "mcp-orchestration"
KEYRING_USERNAME = "signing_key"


# Encrypted OpenSSH keys need the bcrypt KDF: one more native dependency in the image, for a
# format Docker secrets do not need (the secret file is the protection). PKCS8 covers encryption.
_ENCRYPTED_OPENSSH_UNSUPPORTED = (
    "Encrypted OpenSSH keys are not supported.",
    "Use an encrypted PKCS8 PEM key (`mcp-orchestration keys generate --out F --passphrase-file PASSPHRASE_FILE`) "
    "or an unencrypted OpenSSH key delivered as a Docker secret.",
)


class SigningKey(Signer):
    """An Ed25519 private key held in this process's memory."""

    __slots__ = ("_private",)

    def __init__(self, private: Ed25519PrivateKey, origin: str) -> None:
        raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        super().__init__(PublicKey(raw_public), origin)
        self._private = private

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def _derive_secret(self, purpose: bytes) -> bytes:
        """HKDF-SHA256 over the private key, with ``purpose`` as the info."""
        raw = self._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(raw)

    def serialize(self, fmt: KeyFormat, passphrase: bytes | None) -> bytes:
        """The private key in ``fmt``, encrypted when a passphrase is given (for ``keys generate``)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        if fmt == "openssh" and passphrase:
            raise KeyFormatError(*_ENCRYPTED_OPENSSH_UNSUPPORTED)
        private_format = serialization.PrivateFormat.OpenSSH if fmt == "openssh" else serialization.PrivateFormat.PKCS8
        data = self._private.private_bytes(serialization.Encoding.PEM, private_format, encryption)
        REDACTOR.register(encodings_of_pem(data.decode()))
        return data


def register_key_secrets(private: Ed25519PrivateKey, redactor: Redactor = REDACTOR) -> None:
    """Teach the redactor the deterministic encodings of ``private``: raw seed, DER and PKCS8 PEM.

    (An OpenSSH encoding embeds random check bytes, so it differs each time:
    the text actually read or written is registered where that happens.)
    """
    plain = serialization.NoEncryption()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, plain)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, plain)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, plain)
    redactor.register(encodings_of_bytes(raw) | encodings_of_bytes(der) | encodings_of_pem(pem.decode()))


def generate() -> SigningKey:
    """A fresh Ed25519 key from the OS random source, already known to the redactor."""
    private = Ed25519PrivateKey.generate()
    register_key_secrets(private)
    return SigningKey(private, origin="generated")


def read_secret_file(path: Path, what: str) -> bytes:
    """Read a secret file, with an error that names the fix when it cannot be read.

    The operator names the path, and a link there is followed on purpose:
    Kubernetes mounts secrets as links into ``..data/`` and operators link key
    files into place. The file reached must be a regular file of at most
    ``MAX_SECRET_FILE_BYTES``: a FIFO would hang every command, a device such
    as ``/dev/zero`` would be read until memory runs out (see
    :func:`~mcp_orchestration.core.fsutil.read_named_file`). The bytes are
    registered with the redactor before they are returned.
    """
    try:
        data = read_named_file(path, MAX_SECRET_FILE_BYTES)
    except UnsafeFileError as exc:
        if exc.errno == errno.EISDIR:
            raise KeyUnavailableError(f"The {what} path {path} is a directory, not a file.") from None
        raise KeyUnreadableError(
            f"The {what} file {path} is not a regular file of at most {MAX_SECRET_FILE_BYTES} bytes: "
            f"it {exc.strerror}.",
            hint=(
                f"Point the setting at the {what} itself: a regular file (a Docker or Kubernetes secret, "
                "or a link to one), not a FIFO, a device or a large file."
            ),
        ) from None
    except FileNotFoundError:
        raise KeyUnavailableError(f"The {what} file {path} does not exist.") from None
    except PermissionError:
        raise KeyUnreadableError(
            f"The {what} file {path} exists but cannot be read by this process (uid {os.getuid()}, gid {os.getgid()}).",
            hint=(
                f"Give the process read access: `chown {_CONTAINER_UID} {path}` on the host "
                f'(or set uid: "{_CONTAINER_UID}" on the compose secret), or `chmod 0440 {path}` '
                "with a group the process belongs to."
            ),
        ) from None
    except OSError as exc:
        raise KeyUnreadableError(f"The {what} file {path} cannot be read ({exc.strerror}).") from None
    text = data.decode("utf-8", errors="replace")
    REDACTOR.register_text(text)
    REDACTOR.register(encodings_of_pem(text))
    _warn_if_exposed(path, what)
    return data


def _warn_if_exposed(path: Path, what: str) -> None:
    """Warn about a key file outside /run/secrets that group or others may read."""
    try:
        resolved = path.resolve()
        mode = resolved.stat().st_mode
    except OSError:
        return
    if SECRETS_DIR in resolved.parents:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "The %s file %s is readable by group or others (mode %04o); restrict it with `chmod 0600 %s`.",
            what,
            path,
            stat.S_IMODE(mode),
            path,
        )


def read_passphrase(path: Path) -> bytes:
    """Read a passphrase file; trailing newlines and spaces are not part of the passphrase."""
    passphrase = read_secret_file(path, "passphrase").rstrip()
    REDACTOR.register_text(passphrase.decode("utf-8", errors="replace"))
    REDACTOR.register(encodings_of_bytes(passphrase))
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise PassphraseError(
            f"The passphrase in {path} is shorter than {MIN_PASSPHRASE_LENGTH} characters.",
            hint="Re-encrypt the key with a longer passphrase.",
        )
    return passphrase


def parse_private_key(data: bytes, passphrase: bytes | None, origin: str) -> SigningKey:
    """Parse PKCS8 PEM (plain or encrypted) or OpenSSH Ed25519 key bytes.

    A file with two private keys is refused: the loaders would silently take
    one of them (the second, for OpenSSH before PEM), and which key signs must
    never be a guess.
    """
    text = data.strip()
    if len(_PRIVATE_KEY_BEGIN.findall(text)) > 1:
        raise KeyFormatError(
            f"The key from {origin} holds more than one private key.",
            hint="Keep exactly one Ed25519 private key in the file.",
        )
    loader = (
        serialization.load_ssh_private_key if b"OPENSSH PRIVATE KEY" in text else serialization.load_pem_private_key
    )
    try:
        private = loader(text, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise PassphraseError(
                f"The key from {origin} is encrypted and no passphrase was given.",
                hint="Put the passphrase in a secret file and set MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE_FILE.",
            ) from None
        raise PassphraseError(
            f"The key from {origin} is not encrypted, but a passphrase was given.",
            hint="Remove the passphrase setting, or encrypt the key.",
        ) from None
    except UnsupportedAlgorithm:
        if b"OPENSSH" in text:
            raise KeyFormatError(*_ENCRYPTED_OPENSSH_UNSUPPORTED) from None
        raise KeyFormatError(
            f"The key from {origin} uses an unsupported algorithm; only Ed25519 is accepted."
        ) from None
    except ValueError:
        if passphrase is not None and (b"ENCRYPTED" in text or b"OPENSSH" in text):
            raise PassphraseError(
                f"The key from {origin} could not be decrypted: the passphrase is wrong.",
                hint="Check the passphrase secret file; it must hold exactly the passphrase.",
            ) from None
        raise KeyFormatError(f"The key from {origin} is not a PKCS8 PEM or OpenSSH private key.") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFormatError(f"The key from {origin} is a {type(private).__name__.removeprefix('_')}, not Ed25519.")
    register_key_secrets(private)
    return SigningKey(private, origin=origin)


def load_from_keyring(username: str = KEYRING_USERNAME) -> SigningKey:
    """Load the PEM key stored in the OS keyring under service ``mcp-orchestration``."""
    import keyring
    import keyring.errors

    try:
        stored = keyring.get_password(KEYRING_SERVICE, username)
    except keyring.errors.NoKeyringError:
        raise KeyUnavailableError(
            "No OS keyring backend is available here (as in a container).",
            hint="Use a key file instead: mount it as a Docker secret at /run/secrets/signing_key.",
        ) from None
    except keyring.errors.KeyringError as exc:
        raise KeyUnavailableError(f"The OS keyring could not be read ({type(exc).__name__}).") from None
    if not stored:
        raise KeyUnavailableError(
            f"The OS keyring holds no entry {username!r} for service {KEYRING_SERVICE!r}.",
            hint="Create one with `mcp-orchestration keys generate --keyring`.",
        )
    REDACTOR.register_text(stored)
    REDACTOR.register(encodings_of_pem(stored))
    return parse_private_key(stored.encode(), None, origin="the OS keyring")


def store_in_keyring(key: SigningKey, username: str = KEYRING_USERNAME) -> None:
    """Store ``key`` as PKCS8 PEM in the OS keyring; refuse to replace an existing entry."""
    import keyring
    import keyring.errors

    try:
        if keyring.get_password(KEYRING_SERVICE, username):
            raise KeyUnavailableError(
                f"The OS keyring already holds {username!r} for {KEYRING_SERVICE!r}; it is never overwritten.",
                hint="Delete the old entry yourself after rotating, then generate again.",
            )
        keyring.set_password(KEYRING_SERVICE, username, key.serialize("pkcs8", None).decode())
    except keyring.errors.NoKeyringError:
        raise KeyUnavailableError("No OS keyring backend is available here.") from None
    except keyring.errors.KeyringError as exc:
        raise KeyUnavailableError(f"The OS keyring could not be written ({type(exc).__name__}).") from None


def load_from_file(path: Path | None, passphrase_path: Path | None) -> SigningKey:
    """Load the key in the secret file ``path``, decrypting it with the passphrase file if one is named."""
    if path is None:
        raise KeyUnavailableError("No signing key is configured.")
    data = read_secret_file(path, "signing key")
    passphrase = read_passphrase(passphrase_path) if passphrase_path is not None else None
    return parse_private_key(data, passphrase, origin=str(path))


def parse_keyid(text: str) -> str:
    """A key id given by an operator, as ``SHA256:<hex>`` or bare hex in any case, to bare lowercase hex."""
    value = text.strip()
    value = value[len("SHA256:") :] if value.upper().startswith("SHA256:") else value
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise InvalidIdError(f"{shown(text)} is not a key fingerprint: expected SHA256: and 64 hex digits.")
    return value.lower()


def public_key_fingerprint(text: str) -> str:
    """Normalise an operator's fingerprint to ``SHA256:<lowercase hex>``."""
    return f"SHA256:{parse_keyid(text)}"
