"""Identifier checks that run before any untrusted id touches a path or an index.

Only plain ASCII passes: no separators, no ``..``, no NUL, no look-alike
unicode, no leading dot or dash. The error never echoes more than a short,
escaped prefix of what was given, and never a word of it that looks like a
credential.

This module holds the product's naming rules, each defined once:

- client and profile ids: ``[a-z0-9][a-z0-9._-]{0,63}``, no ``..``, never credential-like;
- server names (keys of ``mcpServers``): ``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``, no ``..``.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from mcp_orchestration.core.errors import InvalidIdError
from mcp_orchestration.security.secret_rules import find_secret, scrub_text

_ARTIFACT_ID = re.compile(r"[0-9a-f]{64}")
_NAME_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
SERVER_NAME_RULE = "1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit, without '..'"
_SHOWN_CHARS = 80
# Scrubbed before it is cut short, so a credential cut at the edge is still recognised whole.
_SCRUBBED_CHARS = 4 * _SHOWN_CHARS


def shown(value: object) -> str:
    """A short, escaped form of an untrusted value, safe to quote in a message: credential-like words are ``***``."""
    text = value if isinstance(value, str) else repr(value)
    return ascii(scrub_text(text[:_SCRUBBED_CHARS])[:_SHOWN_CHARS])


def check_artifact_id(value: object) -> str:
    """Return ``value`` if it is 64 lowercase hex digits (a SHA-256), else raise."""
    if isinstance(value, str) and _ARTIFACT_ID.fullmatch(value):
        return value
    raise InvalidIdError(f"Invalid artifact id {shown(value)}: expected 64 lowercase hex digits.")


def is_name_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` has the shape of a client or profile id (for ids read back from signed, hashed objects,
    which were fully checked when they were written)."""
    return isinstance(value, str) and _NAME_ID.fullmatch(value) is not None and ".." not in value


def check_name_id(value: object, kind: str) -> str:
    """Return a client or profile id if it matches ``[a-z0-9][a-z0-9._-]{0,63}``, else raise.

    An id that looks like a credential is refused too: ids are echoed in every
    listing and error, so a token pasted as an id would leak everywhere.
    """
    if is_name_id(value):
        if find_secret(value) is None:
            return value
        raise InvalidIdError(f"Invalid {kind} id: it looks like a credential, which must never be an id.")
    raise InvalidIdError(
        f"Invalid {kind} id {shown(value)}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
        "starting with a letter or digit."
    )


def is_server_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` follows the one server-name rule (:data:`SERVER_NAME_RULE`).

    Every place that accepts or writes a server name asks this: validation,
    the draft tools, and rendering a client's file (deploy, export).
    """
    return isinstance(value, str) and SERVER_NAME.fullmatch(value) is not None and ".." not in value


def check_server_name(value: object) -> str:
    """Return a server name given as an argument if :func:`is_server_name`, else raise ``invalid_id``.

    Server names are keys inside a config, never paths, so case is kept as clients allow it.
    """
    if is_server_name(value):
        return value
    raise InvalidIdError(f"Invalid server name {shown(value)}: use {SERVER_NAME_RULE}.")
