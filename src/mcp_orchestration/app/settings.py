"""Where things live and where secrets come from: read once, then passed down.

Configuration comes from command-line options first, then the environment,
then defaults. Secrets are only ever named here (as file paths, a keyring
entry or a token and key label), never read: reading is the key sources' job
(:mod:`mcp_orchestration.trust.key_sources`), and their registry decides which
``--key-source`` names exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from mcp_orchestration.app.environment import APP_NAME, ENV_EXPECT_KEY, refuse_plain_secret_variables
from mcp_orchestration.app.host_state import STATE_FILE_NAME
from mcp_orchestration.core.clock import parse_duration
from mcp_orchestration.trust import key_sources
from mcp_orchestration.trust.key_sources import KeySpec
from mcp_orchestration.trust.metadata import DEFAULT_HEAD_LIFETIME
from mcp_orchestration.trust.mounts import SECRETS_DIR

ENV_HOME = "MCP_ORCHESTRATION_HOME"
ENV_KEY_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_FILE"
ENV_PASSPHRASE_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE_FILE"  # noqa: S105 (a variable name)
ENV_NEXT_KEY_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_FILE"
ENV_NEXT_PASSPHRASE_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_PASSPHRASE_FILE"  # noqa: S105 (a variable name)
ENV_KEY_SOURCE = "MCP_ORCHESTRATION_KEY_SOURCE"
ENV_PKCS11_MODULE = "MCP_ORCHESTRATION_PKCS11_MODULE"
ENV_TOKEN_LABEL = "MCP_ORCHESTRATION_PKCS11_TOKEN_LABEL"  # noqa: S105 (a variable name)
ENV_KEY_LABEL = "MCP_ORCHESTRATION_PKCS11_KEY_LABEL"
ENV_KEY_ID = "MCP_ORCHESTRATION_PKCS11_KEY_ID"
ENV_PIN_FILE = "MCP_ORCHESTRATION_PKCS11_PIN_FILE"
ENV_NEXT_PIN_FILE = "MCP_ORCHESTRATION_PKCS11_NEXT_PIN_FILE"
ENV_STATE_FILE = "MCP_ORCHESTRATION_HOST_STATE"
ENV_HEAD_LIFETIME = "MCP_ORCHESTRATION_HEAD_LIFETIME"  # how long each signed head stays fresh: 7d, 36h, 90m
DEFAULT_KEY_FILE = SECRETS_DIR / "signing_key"
DEFAULT_NEXT_KEY_FILE = SECRETS_DIR / "signing_key_next"
DEFAULT_PASSPHRASE_FILE = SECRETS_DIR / "signing_key_passphrase"
DEFAULT_PIN_FILE = SECRETS_DIR / "pkcs11_pin"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to find its store, its key and what this host trusts."""

    home: Path
    signing_key: KeySpec
    host_state_file: Path = field(default_factory=lambda: _default_state_file(os.environ))
    expect_root: str | None = None  # ``SHA256:<hex>`` from --expect-key or $MCP_ORCHESTRATION_EXPECT_KEY
    head_lifetime: timedelta = DEFAULT_HEAD_LIFETIME  # from $MCP_ORCHESTRATION_HEAD_LIFETIME

    @property
    def storage_dir(self) -> Path:
        return self.home / "storage"

    @property
    def telemetry_dir(self) -> Path:
        return self.home / "telemetry"


def _default_state_file(environ: Mapping[str, str]) -> Path:
    """``$MCP_ORCHESTRATION_HOST_STATE``, else ``host-state.json`` in the per-user state directory."""
    if environ.get(ENV_STATE_FILE):
        return Path(environ[ENV_STATE_FILE])
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)) / STATE_FILE_NAME


def default_home(environ: Mapping[str, str]) -> Path:
    """The store home: ``$MCP_ORCHESTRATION_HOME``, else the per-user data directory."""
    if environ.get(ENV_HOME):
        return Path(environ[ENV_HOME])
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _first_existing(explicit: Path | None, variable: str, default: Path, environ: Mapping[str, str]) -> Path | None:
    """An explicit path, else the variable's path, else ``default`` if that file exists."""
    if explicit is not None:
        return explicit
    if environ.get(variable):
        return Path(environ[variable])
    return default if default.exists() else None


@dataclass(frozen=True)
class SecretNames:
    """The variables and default secret files that name one key, its passphrase and a token's PIN."""

    key_variable: str
    default_key: Path
    passphrase_variable: str
    default_passphrase: Path
    pin_variable: str = ENV_PIN_FILE
    default_pin: Path = DEFAULT_PIN_FILE


SIGNING_KEY = SecretNames(ENV_KEY_FILE, DEFAULT_KEY_FILE, ENV_PASSPHRASE_FILE, DEFAULT_PASSPHRASE_FILE)
NEXT_SIGNING_KEY = SecretNames(
    ENV_NEXT_KEY_FILE,
    DEFAULT_NEXT_KEY_FILE,
    ENV_NEXT_PASSPHRASE_FILE,
    SECRETS_DIR / "signing_key_next_passphrase",
    ENV_NEXT_PIN_FILE,
    SECRETS_DIR / "pkcs11_pin_next",
)


def key_source_choices() -> dict[str, str]:
    """Each registered key source's name and what it is, for ``--key-source``."""
    return {name: source.description for name, source in key_sources.SOURCES.items()}


@dataclass(frozen=True)
class TokenOptions:
    """Where a key in a PKCS#11 token is: its library, token, key label or id, and the PIN file (options win)."""

    module: Path | None = None
    token_label: str | None = None
    key_label: str | None = None
    key_id: str | None = None
    pin_file: Path | None = None


def key_spec(
    *,
    key_file: Path | None,
    passphrase_file: Path | None,
    key_source: str | None,
    environ: Mapping[str, str],
    names: SecretNames = SIGNING_KEY,
    token: TokenOptions | None = None,
) -> KeySpec:
    """Resolve one key's source and the names it reads: a file, the keyring or a token.

    The source must be a registered one. For a file: an explicit path,
    ``*_FILE``, then ``/run/secrets``; the default passphrase secret pairs only
    with the default key secret, so a key named explicitly never picks up a
    passphrase meant for another key. For a token: options, then variables,
    and the PIN file defaults to ``/run/secrets/pkcs11_pin``.
    """
    source = key_sources.get_source(key_source or environ.get(ENV_KEY_SOURCE) or "file").name
    if source == "file":
        key = _first_existing(key_file, names.key_variable, names.default_key, environ)
        default_passphrase = names.default_passphrase if key == names.default_key else Path("/nonexistent")
        passphrase = _first_existing(passphrase_file, names.passphrase_variable, default_passphrase, environ)
        return KeySpec(source, key, passphrase)
    if source == "pkcs11":
        token = token or TokenOptions()
        module = token.module or (Path(environ[ENV_PKCS11_MODULE]) if environ.get(ENV_PKCS11_MODULE) else None)
        return KeySpec(
            source,
            token_label=token.token_label or environ.get(ENV_TOKEN_LABEL) or None,
            key_label=token.key_label or environ.get(ENV_KEY_LABEL) or None,
            key_id=token.key_id or environ.get(ENV_KEY_ID) or None,
            pin_path=_first_existing(token.pin_file, names.pin_variable, names.default_pin, environ),
            module=module,
        )
    return KeySpec(source)  # the keyring: nothing to name


def load_settings(
    *,
    home: Path | None = None,
    key_file: Path | None = None,
    passphrase_file: Path | None = None,
    key_source: str | None = None,
    token: TokenOptions | None = None,
    expect_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings for one process from options and the environment."""
    from mcp_orchestration.trust.keys import public_key_fingerprint

    env = os.environ if environ is None else environ
    refuse_plain_secret_variables(env)
    expected = expect_key or env.get(ENV_EXPECT_KEY) or None
    return Settings(
        home=(home or default_home(env)).expanduser(),
        signing_key=key_spec(
            key_file=key_file, passphrase_file=passphrase_file, key_source=key_source, environ=env, token=token
        ),
        host_state_file=_default_state_file(env),
        expect_root=public_key_fingerprint(expected) if expected else None,
        head_lifetime=(
            parse_duration(env[ENV_HEAD_LIFETIME], ENV_HEAD_LIFETIME)
            if env.get(ENV_HEAD_LIFETIME)
            else DEFAULT_HEAD_LIFETIME
        ),
    )
