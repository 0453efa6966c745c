"""Parsing untrusted config payloads: bounded, strict JSON objects only.

Duplicate keys are refused (two parsers could disagree on which one wins, and
the artifact id must mean one thing), as are values RFC 8785 cannot represent.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_orchestration.core.errors import LimitError, ValidationError
from mcp_orchestration.security.ids import shown

MAX_PAYLOAD_BYTES = 256 * 1024


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValidationError(f"The payload repeats the key {shown(key)} in one object.")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValidationError(f"The payload contains {name}, which JSON does not allow.")


def parse_payload(data: bytes, source: str = "the payload") -> dict[str, Any]:
    """Parse ``data`` as a JSON object of at most ``MAX_PAYLOAD_BYTES`` bytes."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise LimitError(f"{source} is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}.")
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{source} is not valid JSON ({type(exc).__name__} at {_where(exc)}).") from None
    except ValueError:  # e.g. an integer beyond Python's digit limit
        raise ValidationError(f"{source} contains a value JSON cannot carry here (such as a huge number).") from None
    except RecursionError:
        raise LimitError(f"{source} is nested too deeply.") from None
    if not isinstance(value, dict):
        raise ValidationError(f'{source} must be a JSON object such as {{"mcpServers": {{...}}}}.')
    return value


def _where(exc: ValueError) -> str:
    position = getattr(exc, "pos", None) if isinstance(exc, json.JSONDecodeError) else getattr(exc, "start", None)
    return f"byte {position}" if position is not None else "an unknown position"
