"""The store policy's rules, applied where configs are written (deploy, MDM export, sync) and published.

One function per rule, so each entry point calls the same check: a desktop
applying from a mirror refuses exactly what a deploy from the store refuses.
"""

from __future__ import annotations

from collections.abc import Callable

from mcp_orchestration.config.model import McpConfig
from mcp_orchestration.config.policy import StorePolicy
from mcp_orchestration.config.toollock import ToolLock
from mcp_orchestration.config.validation import unpinned_launches
from mcp_orchestration.core.errors import IntegrityError, LockMissingError, LockStaleError, UnpinnedPackageError
from mcp_orchestration.store.model import Entry


def require_current_lock(policy: StorePolicy, entry: Entry, read_lock: Callable[[str], ToolLock]) -> None:
    """Unless the policy says otherwise, raise if ``entry``'s config has no tool lock taken for it."""
    if not policy.require_tool_lock:
        return
    name = f"{entry.client}/{entry.profile}"
    if entry.lock is None:
        raise LockMissingError(f"The store's policy requires a tool lock, and {name} has none: nothing was written.")
    lock = read_lock(entry.lock)
    if (lock.client, lock.profile) != (entry.client, entry.profile):
        raise IntegrityError(f"Tool lock {entry.lock} is filed under {name} but names another profile.")
    if lock.artifact != entry.artifact:
        raise LockStaleError(
            f"The store's policy requires a current tool lock, and {name}'s was taken for artifact {lock.artifact}, "
            f"not for the published {entry.artifact}: nothing was written."
        )


def require_pinned(policy: StorePolicy, config: McpConfig, *, refused: str = "nothing was published") -> None:
    """Unless the policy says otherwise, raise if a launcher may run another release than the one approved.

    Checked at publish and again wherever a config is written (deploy, MDM export, sync): a profile published
    before the policy was set is refused too, not applied because it is already signed.
    """
    if not policy.require_pinned_packages:
        return
    found = unpinned_launches(config)
    if found:
        lines = "\n".join(f"- {problem.path}: {problem.message}" for problem in found)
        raise UnpinnedPackageError(f"The store's policy requires pinned packages; {refused}.\n{lines}")
