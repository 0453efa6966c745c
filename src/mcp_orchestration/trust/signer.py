"""The signing interface: what the store, DSSE and drafts need from a key, wherever its private half lives.

A :class:`Signer` is an Ed25519 key that signs and derives purpose-bound
secrets but never shows itself: an in-memory key read from a file or the OS
keyring (:mod:`mcp_orchestration.trust.keys`) and a key inside a PKCS#11 token
(:mod:`mcp_orchestration.trust.hsm`) are interchangeable behind it. The public
half, :class:`PublicKey`, is plain data anyone may hold.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mcp_orchestration.core.errors import KeyFormatError
from mcp_orchestration.security.redaction import REDACTOR, encodings_of_bytes


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key and its identity: ``keyid`` is hex SHA-256 of the raw 32 bytes."""

    raw: bytes

    @property
    def keyid(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def fingerprint(self) -> str:
        """The form operators compare and pin: ``SHA256:<keyid>``."""
        return f"SHA256:{self.keyid}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def to_pem(self) -> str:
        """SubjectPublicKeyInfo PEM, as ``openssl pkeyutl -pubin`` reads it."""
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        """Read a PEM public key; anything but Ed25519 is a format error."""
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFormatError("The public key is not a valid PEM public key.") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFormatError("The public key is not an Ed25519 key.")
        return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


class DerivedKey:
    """A secret derived from a signing key for one purpose: it keys HMAC-SHA256 and never shows itself.

    Anyone who can write the store but lacks the signing key cannot compute it,
    so a MAC under it proves the signing key's holder wrote the data.
    """

    __slots__ = ("_secret", "purpose")

    def __init__(self, secret: bytes, purpose: bytes) -> None:
        self._secret = secret
        self.purpose = purpose

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message``."""
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def verify(self, message: bytes, tag: bytes) -> bool:
        """Whether ``tag`` is the MAC of ``message`` (in constant time)."""
        return hmac.compare_digest(self.mac(message), tag)

    def __repr__(self) -> str:
        return f"DerivedKey(purpose={self.purpose!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("DerivedKey cannot be pickled")


class Signer(ABC):
    """An Ed25519 private key that signs but never shows itself.

    Implementations set ``public_key`` and ``origin`` (where the key came
    from, for messages) and provide :meth:`sign` and :meth:`_derive_secret`;
    identity, caching of derived keys and the secret-free ``repr`` live here so
    every source behaves alike.
    """

    __slots__ = ("_derived", "origin", "public_key")

    def __init__(self, public_key: PublicKey, origin: str) -> None:
        self.public_key = public_key
        self.origin = origin
        self._derived: dict[bytes, DerivedKey] = {}

    @property
    def keyid(self) -> str:
        return self.public_key.keyid

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint

    @abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message`` (RFC 8032: deterministic)."""

    @abstractmethod
    def _derive_secret(self, purpose: bytes) -> bytes:
        """32 secret bytes bound to ``purpose`` that only this key's holder can compute, the same every time."""

    def derive_key(self, purpose: bytes) -> DerivedKey:
        """A secret bound to ``purpose``, never stored anywhere, taught to the redactor like the key.

        Different purposes give unrelated secrets, so a MAC made for one use is
        worthless for another.
        """
        derived = self._derived.get(purpose)
        if derived is None:
            secret = self._derive_secret(purpose)
            REDACTOR.register(encodings_of_bytes(secret))
            derived = self._derived.setdefault(purpose, DerivedKey(secret, purpose))
        return derived

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint}, origin={self.origin!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError(f"{type(self).__name__} cannot be pickled")
