"""Where signing keys come from: a registry of named sources, each loading a :class:`Signer` from a spec.

The command line's ``--key-source`` choices and the settings' validation are
this registry's names, so a new source (another token, a cloud KMS) is one
class here and nothing in the layers above. Sources are cheap to list: each
imports what it needs (cryptography, the OS keyring, python-pkcs11) only when
it loads a key, so parsing a command line loads none of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_orchestration.core.errors import UsageError
from mcp_orchestration.security.ids import shown

if TYPE_CHECKING:
    from mcp_orchestration.trust.signer import Signer


@dataclass(frozen=True)
class KeySpec:
    """Where one private key is to be found; each source reads only the fields it needs."""

    source: str
    path: Path | None = None  # file: the key file
    passphrase_path: Path | None = None  # file: the file holding the key's passphrase
    token_label: str | None = None  # pkcs11: the token
    key_label: str | None = None  # pkcs11: the key pair's label in the token
    key_id: str | None = None  # pkcs11: or its CKA_ID, in hex
    pin_path: Path | None = None  # pkcs11: the file holding the token's user PIN
    module: Path | None = None  # pkcs11: the token's PKCS#11 library


class KeySource(ABC):
    """One place keys can live."""

    name: str
    description: str

    @abstractmethod
    def configured(self, spec: KeySpec) -> bool:
        """Whether ``spec`` names a key at all (a process without one still serves reads)."""

    @abstractmethod
    def load(self, spec: KeySpec) -> Signer:
        """The key ``spec`` names, or a typed error saying why it cannot be used."""


class FileSource(KeySource):
    name = "file"
    description = "a PKCS8 PEM or OpenSSH key file (a Docker secret), optionally encrypted"

    def configured(self, spec: KeySpec) -> bool:
        return spec.path is not None

    def load(self, spec: KeySpec) -> Signer:
        from mcp_orchestration.trust import keys

        return keys.load_from_file(spec.path, spec.passphrase_path)


class KeyringSource(KeySource):
    name = "keyring"
    description = "the OS keyring (desktops)"

    def configured(self, spec: KeySpec) -> bool:
        return True  # chosen explicitly: a missing entry is an error, not "no key"

    def load(self, spec: KeySpec) -> Signer:
        from mcp_orchestration.trust import keys

        return keys.load_from_keyring()


class Pkcs11Source(KeySource):
    name = "pkcs11"
    description = "a PKCS#11 token or HSM (needs the pkcs11 extra)"

    def configured(self, spec: KeySpec) -> bool:
        return True  # chosen explicitly, like the keyring

    def load(self, spec: KeySpec) -> Signer:
        from mcp_orchestration.trust import hsm

        return hsm.load_token_key(
            module=spec.module,
            token_label=spec.token_label,
            key_label=spec.key_label,
            key_id=spec.key_id,
            pin_path=spec.pin_path,
        )


SOURCES: Mapping[str, KeySource] = {source.name: source for source in (FileSource(), KeyringSource(), Pkcs11Source())}


def get_source(name: str) -> KeySource:
    """The source called ``name``, or a usage error listing the choices."""
    source = SOURCES.get(name)
    if source is None:
        raise UsageError(
            f"Unknown key source {shown(name)}; choose one of: {', '.join(SOURCES)}.",
            hint="Set --key-source or MCP_ORCHESTRATION_KEY_SOURCE to one of them.",
        )
    return source


def is_configured(spec: KeySpec) -> bool:
    """Whether ``spec`` names a key this process should load."""
    return get_source(spec.source).configured(spec)


def load_signing_key(spec: KeySpec) -> Signer:
    """Load the key ``spec`` names from its source."""
    return get_source(spec.source).load(spec)
