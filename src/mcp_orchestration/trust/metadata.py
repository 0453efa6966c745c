"""The signed metadata of the index: the head, and the checks every parsed object field passes.

A head is the only object the verifier reads (it is what a signature covers);
the rest of the tree (see ``store/model.py``) is parsed with the same field
checks, so a malformed id is the same integrity error wherever it appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mcp_orchestration.core.clock import format_time, parse_time
from mcp_orchestration.core.errors import IntegrityError, InvalidIdError
from mcp_orchestration.security.ids import check_artifact_id


def json_field(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise IntegrityError(f"{what} has a malformed field {name!r}.")
    return value


def optional_object_id(raw: Mapping[str, Any], name: str, what: str) -> str | None:
    value = raw.get(name)
    return None if value is None else object_id(value, what)


def object_id(value: object, what: str) -> str:
    try:
        return check_artifact_id(value)
    except InvalidIdError:
        raise IntegrityError(f"{what} refers to a malformed object id.") from None


def typed_body(raw: Any, type_name: str, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict) or raw.get("_type") != type_name:
        raise IntegrityError(f"{what} is not a {type_name} object.")
    return raw


DEFAULT_HEAD_LIFETIME = timedelta(days=7)
"""How long a head stays fresh unless the publisher says otherwise (``refresh`` re-signs it before then)."""


@dataclass(frozen=True)
class Head:
    """The signed part of one index version.

    ``expires`` bounds how long a mirror may keep serving this head: a desktop
    refuses it afterwards. Heads signed by releases before 0.3 have none (None).
    """

    version: int
    root: str
    previous_head: str | None
    key_history_version: int
    key_history_digest: str
    created_at: str
    expires: str | None = None

    @classmethod
    def next(
        cls,
        version: int,
        root: str,
        previous_head: str | None,
        history_digests: list[str],
        *,
        now: datetime,
        lifetime: timedelta,
    ) -> Head:
        """A head that commits to the key-history version (number and digest) it is signed under,
        fresh for ``lifetime`` from ``now``."""
        created, expires = format_time(now), format_time(now + lifetime)
        return cls(version, root, previous_head, len(history_digests), history_digests[-1], created, expires)

    def expiry(self) -> datetime | None:
        """When this head stops being fresh (None: signed before heads expired)."""
        return None if self.expires is None else parse_time(self.expires)

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": "head",
            "version": self.version,
            "root": self.root,
            "previous_head": self.previous_head,
            "key_history_version": self.key_history_version,
            "key_history_digest": self.key_history_digest,
            "created_at": self.created_at,
        } | ({} if self.expires is None else {"expires": self.expires})

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Head:
        body = typed_body(raw, "head", what)
        head = cls(
            version=json_field(body, "version", int, what),
            root=object_id(body.get("root"), what),
            previous_head=optional_object_id(body, "previous_head", what),
            key_history_version=json_field(body, "key_history_version", int, what),
            key_history_digest=object_id(body.get("key_history_digest"), what),
            created_at=json_field(body, "created_at", str, what),
            expires=None if body.get("expires") is None else json_field(body, "expires", str, what),
        )
        if head.expires is not None and head.expiry() is None:
            raise IntegrityError(f"{what} has a malformed field 'expires'.")
        if head.version < 1 or (head.version == 1) != (head.previous_head is None):
            raise IntegrityError(f"{what} has an inconsistent version or previous head.")
        return head
