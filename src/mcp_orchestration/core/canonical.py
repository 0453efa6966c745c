"""The one canonical JSON form (RFC 8785) that everything hashed or signed is written in."""

from __future__ import annotations

from typing import Any

import rfc8785

from mcp_orchestration.core.errors import ValidationError


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; values JCS cannot represent are a validation error."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError):
        raise ValidationError(
            "The value cannot be canonicalised as JSON (RFC 8785): integers must lie within +/-2**53 "
            "and NaN or Infinity are not allowed."
        ) from None
