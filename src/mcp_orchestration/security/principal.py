"""Who asked: the authenticated principal behind a request, as it is signed into the index and logged.

A principal is what an access token says about its bearer (``sub``, the
OAuth client and the issuer), never the token itself. Its fields come from a
token an issuer signed, yet they end up in every ``history`` listing and
telemetry line, so each must be one short run of visible ASCII: a field
that is not is refused with the token, rather than escaped and stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mcp_orchestration.core.errors import IntegrityError

_FIELD = re.compile(r"[\x21-\x7e]{1,255}")
OPERATOR = "-"  # what ``history`` shows for the host's own operator, so no token may name it as its subject


def is_principal_field(value: object) -> bool:
    """Whether ``value`` may be a principal's subject, client id or issuer: 1-255 visible ASCII characters."""
    return isinstance(value, str) and _FIELD.fullmatch(value) is not None


@dataclass(frozen=True)
class Principal:
    """The subject of a token, the client it was issued to, and its issuer."""

    subject: str
    client_id: str
    issuer: str

    def __post_init__(self) -> None:
        if not all(is_principal_field(value) for value in (self.subject, self.client_id, self.issuer)):
            raise ValueError("A principal's fields are 1-255 visible ASCII characters.")

    def to_json(self) -> dict[str, str]:
        return {"subject": self.subject, "client_id": self.client_id, "issuer": self.issuer}

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Principal:
        """A principal read back from a signed object; a malformed one is an integrity failure."""
        if isinstance(raw, dict) and set(raw) == {"subject", "client_id", "issuer"}:
            try:
                return cls(raw["subject"], raw["client_id"], raw["issuer"])
            except ValueError:
                pass
        raise IntegrityError(f"{what} names a malformed publisher.")

    def __str__(self) -> str:
        return f"{self.subject} (client {self.client_id}, issuer {self.issuer})"
