"""The environment the product reads that every command needs, cheap to import.

A scheduled ``sync`` runs every few minutes on every desktop, so what its
command line needs lives here, apart from the settings of a store and its
signing key (``settings.py``), which load the key sources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mcp_orchestration.core.errors import PlainSecretEnvError
from mcp_orchestration.security.redaction import REDACTOR

APP_NAME = "mcp-orchestration"
ENV_PREFIX = "MCP_ORCHESTRATION_"
ENV_EXPECT_KEY = "MCP_ORCHESTRATION_EXPECT_KEY"  # the store's root fingerprint: public, not a secret
ENV_SYNC_STATE = "MCP_ORCHESTRATION_SYNC_STATE"  # a desktop's sync state directory
_FINGERPRINT = re.compile(r"SHA256:[0-9a-f]{64}")

# Variables that would carry secret material itself; only their *_FILE forms are allowed.
_PLAIN_SECRET_VARIABLES = (
    "MCP_ORCHESTRATION_SIGNING_KEY",
    "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE",
    "MCP_ORCHESTRATION_SIGNING_KEY_NEXT",
    "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_PASSPHRASE",
    "MCP_ORCHESTRATION_PKCS11_PIN",
    "MCP_ORCHESTRATION_PKCS11_NEXT_PIN",
)


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


def default_sync_state_dir(environ: Mapping[str, str]) -> Path:
    """``$MCP_ORCHESTRATION_SYNC_STATE``, else ``sync/`` in the per-user state directory."""
    if environ.get(ENV_SYNC_STATE):
        return Path(environ[ENV_SYNC_STATE])
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)) / "sync"


def root_fingerprint(expected: str) -> str:
    """A root fingerprint as given (``SHA256:<hex>``), or computed from a public key file (which loads the
    crypto library: a scheduled sync given the fingerprint never does)."""
    if _FINGERPRINT.fullmatch(expected):
        return expected
    from mcp_orchestration.trust.keys import public_key_fingerprint

    return public_key_fingerprint(expected)
