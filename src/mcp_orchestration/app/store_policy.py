"""The store's policy as an operator sets and reads it (``policy set FILE``, ``policy show``)."""

from __future__ import annotations

import json
from typing import Any

from mcp_orchestration.app.operations import App
from mcp_orchestration.config.policy import StorePolicy
from mcp_orchestration.core.errors import ValidationError
from mcp_orchestration.store.model import read_policy, read_root


def parse_policy_file(data: bytes) -> StorePolicy:
    """An operator's policy file, parsed strictly (an unknown field is refused)."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise ValidationError("The policy file is not JSON.") from None
    return StorePolicy.from_json(raw, "The policy file")


def set_policy(app: App, policy: StorePolicy) -> dict[str, Any]:
    """Sign ``policy`` as the store's policy in a new index version (the same policy again changes nothing)."""
    with app.telemetry.operation("policy_set") as event:
        key = app.require_writable()
        version, policy_id, changed = app.index.set_policy(key, policy.to_json())
        event.set(keyid=key.keyid, index_version=version, changed=changed)
        return {"policy": policy_id, "index_version": version, "changed": changed, "rules": policy.rules()}


def show_policy(app: App) -> dict[str, Any]:
    """The store's policy under the verified head (``policy`` None: the default, which requires nothing)."""
    signed = app.index.snapshot()[1]
    policy_id = read_root(app.index.objects, signed.head).policy
    policy = read_policy(app.index.objects, policy_id)
    return {"policy": policy_id, "index_version": signed.head.version, "rules": policy.rules()}
