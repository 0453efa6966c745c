"""The store's policy: what every profile must satisfy, signed into the index and changed only by a publish.

The operator writes it as a small JSON file (README, "Tool lock")::

    {"require_pinned_packages": true, "require_tool_lock": true}

Every field is optional and defaults to false; an unknown field is refused, so a
misspelt rule never silently weakens the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from mcp_orchestration.core.errors import ValidationError
from mcp_orchestration.security.ids import shown

POLICY_TYPE = "policy"


@dataclass(frozen=True)
class StorePolicy:
    """The rules a store enforces beyond validation.

    ``require_pinned_packages``: a publish refuses a server launched through
    npx, uvx, pipx run or docker run without an exact version or digest.
    ``require_tool_lock``: deploy and sync refuse a profile whose tool lock is
    missing, or was taken for another version of its config.
    """

    require_pinned_packages: bool = False
    require_tool_lock: bool = False

    def rules(self) -> dict[str, bool]:
        """Each rule by name, as ``policy show`` and ``get_trust_info`` present them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> dict[str, Any]:
        return {"_type": POLICY_TYPE} | self.rules()

    @classmethod
    def from_json(cls, raw: object, what: str = "The policy") -> StorePolicy:
        """Parse a policy (``_type`` optional, so an operator's file need not carry it); ``ValidationError`` if
        it is not one."""
        if not isinstance(raw, dict) or raw.get("_type", POLICY_TYPE) != POLICY_TYPE:
            raise ValidationError(f'{what} must be a JSON object such as {{"require_tool_lock": true}}.')
        known = {f.name for f in fields(cls)}
        unknown = sorted(shown(name) for name in raw if name not in known | {"_type"})
        if unknown:
            raise ValidationError(
                f"{what} has unknown fields: {', '.join(unknown)}.", f"The fields are {', '.join(sorted(known))}."
            )
        values = {name: raw[name] for name in known if name in raw}
        wrong = sorted(name for name, value in values.items() if not isinstance(value, bool))
        if wrong:
            raise ValidationError(f"{what}: {', '.join(wrong)} must be true or false.")
        return cls(**values)
