"""What a caller may ask about the store's trust: is this profile's config intact, and who signs the index.

Both answers are public data, typed as the results the server publishes; the
checks themselves are :func:`~mcp_orchestration.app.operations.verify` and the
index's own, run here as they run for the command line.
"""

from __future__ import annotations

from mcp_orchestration.app import operations, results
from mcp_orchestration.app.operations import App


def verify_profile(app: App, client: str, profile: str) -> results.VerifyResult:
    """Verify the key history, the signed chain and the profile's artifact bytes."""
    report = operations.verify(app, deep=False)
    entry, _ = operations.read_published(app, client, profile)  # re-hashes the artifact
    return {
        "client": client,
        "profile": profile,
        "artifact": entry.artifact,
        "verified": True,
        "index_version": report["index_version"],
        "head_id": report["head_id"],
        "keyid": report["keyid"],
        "key_history_version": report["key_history_version"],
        "heads_checked": report["heads_checked"],
        "objects_checked": report["objects_checked"],
        "heads_vouched_by_chain": report["heads_vouched_by_chain"],
        "deep": report["deep"],
        "profiles": report["profiles"],
        "unreferenced_objects": report["unreferenced_objects"],
        "damaged_unreferenced": report["damaged_unreferenced"],
    }


def trust_info(app: App) -> results.TrustInfo:
    """Fingerprints, the key history and the current index version."""
    keys = operations.list_keys(app)
    _, head = app.index.snapshot()
    policy = app.index.store_policy()
    return {
        "policy": {
            "require_pinned_packages": policy.require_pinned_packages,
            "require_tool_lock": policy.require_tool_lock,
        },
        "key_history_version": keys["key_history_version"],
        "root": keys["root"],
        "keys": keys["keys"],
        "index_version": head.head.version,
        "signed_by": f"SHA256:{head.keyid}",
    }
