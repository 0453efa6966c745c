"""Where things live and where secrets come from: read once, then passed down.

Configuration comes from command-line options first, then the environment,
then defaults. Secrets are only ever named here (as file paths or a keyring
entry), never read: reading is :mod:`mcp_orchestration.trust.keys`' job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mcp_orchestration.app.host_state import STATE_FILE_NAME
from mcp_orchestration.core.errors import PlainSecretEnvError
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.trust.keys import SECRETS_DIR, KeySource, KeySpec

APP_NAME = "mcp-orchestration"
ENV_PREFIX = "MCP_ORCHESTRATION_"
ENV_HOME = "MCP_ORCHESTRATION_HOME"
ENV_KEY_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_FILE"
ENV_PASSPHRASE_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE_FILE"  # noqa: S105 (a variable name)
ENV_NEXT_KEY_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_FILE"
ENV_NEXT_PASSPHRASE_FILE = "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_PASSPHRASE_FILE"  # noqa: S105 (a variable name)
ENV_KEY_SOURCE = "MCP_ORCHESTRATION_KEY_SOURCE"
ENV_STATE_FILE = "MCP_ORCHESTRATION_HOST_STATE"
ENV_EXPECT_KEY = "MCP_ORCHESTRATION_EXPECT_KEY"  # the store's root fingerprint: public, not a secret
DEFAULT_KEY_FILE = SECRETS_DIR / "signing_key"
DEFAULT_NEXT_KEY_FILE = SECRETS_DIR / "signing_key_next"
DEFAULT_PASSPHRASE_FILE = SECRETS_DIR / "signing_key_passphrase"

# Variables that would carry secret material itself; only their *_FILE forms are allowed.
_PLAIN_SECRET_VARIABLES = (
    "MCP_ORCHESTRATION_SIGNING_KEY",
    "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE",
    "MCP_ORCHESTRATION_SIGNING_KEY_NEXT",
    "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_PASSPHRASE",
)


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to find its store, its key and what this host trusts."""

    home: Path
    signing_key: KeySpec
    host_state_file: Path = field(default_factory=lambda: _default_state_file(os.environ))
    expect_root: str | None = None  # ``SHA256:<hex>`` from --expect-key or $MCP_ORCHESTRATION_EXPECT_KEY

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


def refuse_plain_secret_variables(environ: Mapping[str, str]) -> None:
    """Refuse to run with key material in a plain environment variable.

    Environment variables leak through ``/proc``, ``docker inspect`` and crash
    reports; the value is registered with the redactor before refusing so it
    can never be echoed.
    """
    offending = [name for name in _PLAIN_SECRET_VARIABLES if environ.get(name)]
    if not offending:
        return
    for name in offending:
        REDACTOR.register_text(environ[name])
    name = offending[0]
    raise PlainSecretEnvError(
        f"{name} is set: secrets are never read from plain environment variables.",
        hint=(
            f"Unset {name}. Put the secret in a file (a Docker secret under /run/secrets) and set "
            f"{name}_FILE to its path instead."
        ),
    )


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
    """The variables and default secret files that name one key and its passphrase."""

    key_variable: str
    default_key: Path
    passphrase_variable: str
    default_passphrase: Path


SIGNING_KEY = SecretNames(ENV_KEY_FILE, DEFAULT_KEY_FILE, ENV_PASSPHRASE_FILE, DEFAULT_PASSPHRASE_FILE)
NEXT_SIGNING_KEY = SecretNames(
    ENV_NEXT_KEY_FILE, DEFAULT_NEXT_KEY_FILE, ENV_NEXT_PASSPHRASE_FILE, SECRETS_DIR / "signing_key_next_passphrase"
)


def key_spec(
    *,
    key_file: Path | None,
    passphrase_file: Path | None,
    key_source: KeySource | None,
    environ: Mapping[str, str],
    names: SecretNames = SIGNING_KEY,
) -> KeySpec:
    """Resolve one key's source: an explicit file, ``*_FILE``, ``/run/secrets``, or the keyring on request.

    The default passphrase secret pairs only with the default key secret, so a
    key named explicitly never picks up a passphrase meant for another key.
    """
    source = key_source or ("keyring" if environ.get(ENV_KEY_SOURCE) == "keyring" else "file")
    if source == "keyring":
        return KeySpec("keyring", None, None)
    key = _first_existing(key_file, names.key_variable, names.default_key, environ)
    default_passphrase = names.default_passphrase if key == names.default_key else Path("/nonexistent")
    passphrase = _first_existing(passphrase_file, names.passphrase_variable, default_passphrase, environ)
    return KeySpec("file", key, passphrase)


def load_settings(
    *,
    home: Path | None = None,
    key_file: Path | None = None,
    passphrase_file: Path | None = None,
    key_source: KeySource | None = None,
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
        signing_key=key_spec(key_file=key_file, passphrase_file=passphrase_file, key_source=key_source, environ=env),
        host_state_file=_default_state_file(env),
        expect_root=public_key_fingerprint(expected) if expected else None,
    )
