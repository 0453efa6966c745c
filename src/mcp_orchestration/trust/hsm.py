"""Keys that live in a PKCS#11 token (an HSM, a smart card, SoftHSM2): the private key never leaves it.

The token signs with CKM_EDDSA over an Ed25519 (CKK_EC_EDWARDS) key found by
label, so this process holds only the public key and the PIN. The PIN comes
from a secret file, like a key's passphrase, and is taught to the redactor.

Each operation opens its own session and logs in under one process-wide
lock: PKCS#11 login state belongs to the whole process, so two sessions
logging in at once would refuse each other, and closing the last session logs
out, leaving nothing usable between operations.

Draft MACs need a secret only the key's holder can compute
(:meth:`Signer.derive_key`). A token will not hand out its key, and asking
operators to provision an HMAC key beside it would be a second secret to
create, back up and rotate. Ed25519 signatures are deterministic (RFC 8032),
so the token's signature over a fixed, purpose-bound label is such a secret:
it is fed through HKDF-SHA256 like the in-memory key's seed. The label starts
with ``mcp-orchestration derive-key``, never with ``DSSEv1``, so no envelope
the product signs can ever carry it. A token whose signatures are not
deterministic is refused rather than silently failing every draft.

``python-pkcs11`` is an optional extra (``mcp-orchestration[pkcs11]``),
imported only here and only when a token key is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mcp_orchestration.core.errors import (
    KeyFormatError,
    KeySourceUnavailableError,
    KeyUnavailableError,
    PinError,
    SigningKeyError,
    UsageError,
)
from mcp_orchestration.security.ids import shown
from mcp_orchestration.security.redaction import REDACTOR, encodings_of_bytes
from mcp_orchestration.trust.keys import read_secret_file
from mcp_orchestration.trust.signer import PublicKey, Signer

if TYPE_CHECKING:
    from pkcs11 import ObjectClass, Session
    from pkcs11.types import SignMixin

_DERIVE_LABEL = b"mcp-orchestration derive-key v1\x00"
_PROBE = b"mcp-orchestration pkcs11 probe v1\x00"
_ED25519_POINT_DER = b"\x04\x20"  # EC_POINT as a DER OCTET STRING of 32 bytes
_LOCK = threading.Lock()
_MODULE_HINT = (
    "Point --pkcs11-module (or MCP_ORCHESTRATION_PKCS11_MODULE) at the token's PKCS#11 library, "
    "e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2."
)


def _pkcs11() -> ModuleType:
    """The ``pkcs11`` package, or a structured error saying how to install it."""
    try:
        import pkcs11
    except ImportError:
        raise KeySourceUnavailableError(
            "The pkcs11 key source needs the python-pkcs11 package, which is not installed.",
            hint="Install it with `pip install 'mcp-orchestration[pkcs11]'` (the container image does not "
            "include it), or use --key-source file.",
        ) from None
    return pkcs11


def read_pin(path: Path) -> str:
    """Read a PIN file; trailing newlines and spaces are not part of the PIN."""
    data = read_secret_file(path, "PIN").rstrip()
    try:
        pin = data.decode()
    except UnicodeDecodeError:
        raise PinError(f"The PIN file {path} is not UTF-8 text.") from None
    REDACTOR.register_text(pin)
    if not pin:
        raise PinError(f"The PIN file {path} is empty.")
    return pin


@dataclass(frozen=True)
class TokenRef:
    """Where a token key is: the PKCS#11 library, the token, the key pair's label and/or id, the PIN's file."""

    module: Path
    token_label: str
    key_label: str | None
    key_id: bytes | None
    pin_path: Path

    @property
    def token_name(self) -> str:
        return f"PKCS#11 token {shown(self.token_label)}"

    @property
    def key_name(self) -> str:
        """How messages name the key: ``labelled 'x'``, ``with id 0a0b`` or both."""
        names = ([f"labelled {shown(self.key_label)}"] if self.key_label else []) + (
            [f"with id {self.key_id.hex()}"] if self.key_id else []
        )
        return " and ".join(names)

    def find(self, session: Session, object_class: ObjectClass, what: str) -> Any:
        """The one object of ``object_class`` with this label and id, or a typed error."""
        pkcs11 = _pkcs11()
        try:
            return session.get_key(object_class=object_class, label=self.key_label, id=self.key_id)
        except pkcs11.exceptions.NoSuchKey:
            raise KeyUnavailableError(
                f"{self.token_name} holds no {what} {self.key_name}.",
                hint="Check --key-label or --key-id (or MCP_ORCHESTRATION_PKCS11_KEY_LABEL, ..._KEY_ID) against "
                "`pkcs11-tool --module MODULE --login --list-objects`; the public key must sit beside the private "
                "one under the same label and id (tokens that generate the pair do that).",
            ) from None
        except pkcs11.exceptions.MultipleObjectsReturned:
            raise KeyFormatError(
                f"{self.token_name} holds more than one {what} {self.key_name}.",
                hint="Give the signing key pair a label or id of its own: which key signs must never be a guess.",
            ) from None


class TokenKey(Signer):
    """An Ed25519 key inside a PKCS#11 token: this object holds where it is and the PIN, never the key."""

    __slots__ = ("_pin", "_ref")

    def __init__(self, ref: TokenRef, pin: str, public_key: PublicKey) -> None:
        super().__init__(public_key, origin=f"{ref.token_name}, key {ref.key_name}")
        self._ref = ref
        self._pin = pin

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A logged-in session, closed (and so logged out) afterwards; token failures become typed errors."""
        pkcs11 = _pkcs11()
        exceptions = pkcs11.exceptions
        token_name = self._ref.token_name
        with _LOCK:
            try:
                library = pkcs11.lib(str(self._ref.module))
            except exceptions.PKCS11Error:
                raise KeyUnavailableError(
                    f"The PKCS#11 module {self._ref.module} cannot be loaded: it is missing or not a PKCS#11 library.",
                    hint=_MODULE_HINT,
                ) from None
            try:
                token = library.get_token(token_label=self._ref.token_label)
                with token.open(user_pin=self._pin) as session:
                    yield session
            except exceptions.NoSuchToken:
                raise KeyUnavailableError(
                    f"No PKCS#11 token labelled {shown(self._ref.token_label)} is present in {self._ref.module}.",
                    hint="List the tokens with `pkcs11-tool --module MODULE --list-slots` (or `softhsm2-util "
                    "--show-slots`) and set --token-label or MCP_ORCHESTRATION_PKCS11_TOKEN_LABEL.",
                ) from None
            except exceptions.MultipleTokensReturned:
                raise KeyUnavailableError(
                    f"More than one PKCS#11 token is labelled {shown(self._ref.token_label)}."
                ) from None
            except (exceptions.PinIncorrect, exceptions.PinLenRange, exceptions.PinInvalid):
                raise PinError(f"{token_name} refused the PIN in {self._ref.pin_path}.") from None
            except (exceptions.PinLocked, exceptions.PinExpired):
                raise PinError(
                    f"The user PIN of {token_name} is locked or expired.",
                    hint="Unlock or reset the PIN with the token's own tools (the security officer PIN).",
                ) from None
            except SigningKeyError:
                raise
            except exceptions.PKCS11Error as exc:
                raise KeyUnavailableError(
                    f"{token_name} failed ({type(exc).__name__}).",
                    hint="Check that the token is present and the module is the token's own library.",
                ) from None

    def _private(self, session: Session) -> SignMixin:
        from pkcs11 import KeyType, ObjectClass
        from pkcs11.types import SignMixin

        key = self._ref.find(session, ObjectClass.PRIVATE_KEY, "private key")
        if key.key_type != KeyType.EC_EDWARDS or not isinstance(key, SignMixin):
            raise KeyFormatError(f"The key {self.origin} is not an Ed25519 (CKK_EC_EDWARDS) signing key.")
        return key

    def _public_key(self, session: Session) -> PublicKey:
        """The raw Ed25519 public key stored beside the private key, from its CKA_EC_POINT."""
        from pkcs11 import Attribute, ObjectClass
        from pkcs11.exceptions import PKCS11Error

        public = self._ref.find(session, ObjectClass.PUBLIC_KEY, "public key")
        try:
            point: bytes = public[Attribute.EC_POINT]
        except PKCS11Error:
            raise KeyFormatError(f"The public key {self._ref.key_name} has no Ed25519 point.") from None
        raw = point[2:] if len(point) == 34 and point.startswith(_ED25519_POINT_DER) else point
        if len(raw) != 32:
            raise KeyFormatError(f"The key {self.origin} is not an Ed25519 key.")
        return PublicKey(raw)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message``, made inside the token (CKM_EDDSA)."""
        with self._session() as session:
            from pkcs11 import Mechanism

            signature: bytes = self._private(session).sign(message, mechanism=Mechanism.EDDSA)
        return signature

    def _derive_secret(self, purpose: bytes) -> bytes:
        """HKDF-SHA256 over the token's deterministic signature of a label bound to ``purpose``."""
        label = _DERIVE_LABEL + purpose
        signature = self.sign(label)
        REDACTOR.register(encodings_of_bytes(signature))
        if self.sign(label) != signature:
            raise KeyFormatError(
                f"The key {self.origin} makes a different signature each time, so it cannot key draft MACs.",
                hint="Use a token whose CKM_EDDSA follows RFC 8032 (deterministic Ed25519 signatures).",
            )
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(signature)


def _key_id(text: str | None) -> bytes | None:
    """A CKA_ID given as hex (``0a0b``, ``0A:0B``), as bytes."""
    if not text:
        return None
    try:
        return bytes.fromhex(text.replace(":", ""))
    except ValueError:
        raise UsageError(
            f"The PKCS#11 key id {shown(text)} is not hex.", hint="Give the CKA_ID as hex, e.g. 01."
        ) from None


def load_token_key(
    *, module: Path | None, token_label: str | None, key_label: str | None, key_id: str | None, pin_path: Path | None
) -> TokenKey:
    """Find the key, check the token can sign with it (a probe signature that must verify), and return it."""
    if module is None:
        raise KeyUnavailableError("No PKCS#11 module is configured.", hint=_MODULE_HINT)
    if not token_label or not (key_label or key_id):
        raise KeyUnavailableError(
            "The pkcs11 key source needs a token label and a key label or id.",
            hint="Set --token-label and --key-label or --key-id (or MCP_ORCHESTRATION_PKCS11_TOKEN_LABEL and "
            "MCP_ORCHESTRATION_PKCS11_KEY_LABEL or ..._KEY_ID).",
        )
    if pin_path is None:
        raise KeyUnavailableError(
            "No PIN file is configured for the PKCS#11 token.",
            hint="Put the user PIN in a secret file and pass --pin-file or set MCP_ORCHESTRATION_PKCS11_PIN_FILE "
            "(default /run/secrets/pkcs11_pin); a PIN is never read from argv or a plain variable.",
        )
    ref = TokenRef(module, token_label, key_label or None, _key_id(key_id), pin_path)
    pin = read_pin(pin_path)
    pkcs11 = _pkcs11()
    probe = TokenKey(ref, pin, PublicKey(bytes(32)))  # the public key is not known yet: it is read in the session
    with probe._session() as session:
        private = probe._private(session)
        public = probe._public_key(session)
        try:
            signature: bytes = private.sign(_PROBE, mechanism=pkcs11.Mechanism.EDDSA)
        except (pkcs11.exceptions.MechanismInvalid, pkcs11.exceptions.FunctionNotSupported):
            raise KeyFormatError(
                f"{ref.token_name} cannot sign with CKM_EDDSA.",
                hint="Use a token (or SoftHSM2 2.5 or later) that supports Ed25519 signing.",
            ) from None
    if not public.verify(signature, _PROBE):
        raise KeyFormatError(
            f"The private and public keys {ref.key_name} in {ref.token_name} are not one pair.",
            hint="Give each key pair a label or id of its own.",
        )
    return TokenKey(ref, pin, public)
