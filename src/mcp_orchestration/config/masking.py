"""The masked copy of a config that every tool output shows.

``env`` and ``headers`` values are masked whatever they look like (they are where
secrets live, and a rule can always miss one); only references such as
``${env:NAME}`` or ``Bearer ${input:token}`` and empty strings stay readable.
Every other string, ``args`` included, is masked when a secret rule flags it.
The payload is never modified.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_orchestration.config.model import NAMED_FIELDS, SERVERS_KEY
from mcp_orchestration.security.secret_rules import MASK, find_secret, is_reference, secret_arguments

# Deeper than anything valid (validation allows far less); a subtree below is masked whole,
# which keeps the walk's recursion bounded whatever it is given.
_MAX_DEPTH = 64


def mask_secrets(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``payload`` in which no credential can be read."""
    masked: dict[str, Any] = _masked(payload, None, 0)
    servers = masked.get(SERVERS_KEY)
    for server in servers.values() if isinstance(servers, dict) else ():
        if not isinstance(server, dict):
            continue
        for field in NAMED_FIELDS:
            values = server.get(field)
            if isinstance(values, dict):
                server[field] = {name: _masked_named_value(value) for name, value in values.items()}
        args = server.get("args")
        if isinstance(args, list):
            for index in secret_arguments(args):
                args[index] = MASK
    return masked


def _masked_named_value(value: Any) -> Any:
    return value if isinstance(value, str) and (value == "" or is_reference(value)) else MASK


def _masked(value: Any, name: str | None, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return MASK
    if isinstance(value, str):
        return MASK if find_secret(value, name) is not None else value
    if isinstance(value, Mapping):
        return {key: _masked(item, key if isinstance(key, str) else None, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, None, depth + 1) for item in value]
    return value
