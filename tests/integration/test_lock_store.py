"""Tool locks and the store policy in the signed index: written, carried forward, mirrored, enforced.

The locks here are built from fixed definitions (the servers that produce real
ones are in ``test_tool_lock.py``); what is under test is where a lock lives and
who refuses a profile without a current one: deploy, MDM export and sync alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.config.policy import StorePolicy
from mcp_orchestration.config.toollock import ServerSurface, ToolLock
from mcp_orchestration.core.errors import ConflictError, ExitCode, IntegrityError, LockMissingError, LockStaleError
from mcp_orchestration.store.model import read_root
from mcp_orchestration.store.repository import Repository
from tests.conftest import Run
from tests.fleet import Desktop, Publisher, servers

CLIENT, PROFILE = "claude-desktop", "default"
TOOL = {"name": "echo", "description": "Echo the text back.", "inputSchema": {"type": "object"}}


def lock_for(repository: Repository, artifact: str, description: str = "Echo the text back.") -> dict[str, Any]:
    surface = ServerSurface("2025-11-25", "echo", "1.0", None, tools={"echo": TOOL | {"description": description}})
    return ToolLock(CLIENT, PROFILE, artifact, "2026-12-03T00:00:00Z", {"fs": surface}).to_json()


def record_lock(publisher: Publisher, description: str = "Echo the text back.") -> str:
    repository = publisher.repository
    entry = repository.entry(repository.latest_entry_id(CLIENT, PROFILE))
    lock = lock_for(repository, entry.artifact, description)
    _, lock_id, _ = repository.record_lock(
        publisher.key, CLIENT, PROFILE, artifact=entry.artifact, lock=lock, changelog="tool lock"
    )
    return lock_id


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    publisher = Publisher(tmp_path / "publisher")
    publisher.publish(CLIENT, PROFILE, servers("fs", "server-filesystem@1.0.0", "/data"))
    return publisher


def require_locks(publisher: Publisher) -> None:
    publisher.repository.set_policy(publisher.key, StorePolicy(require_tool_lock=True).to_json())


def test_a_lock_is_a_new_index_version_over_the_same_artifact(publisher: Publisher) -> None:
    repository = publisher.repository
    before_id = repository.latest_entry_id(CLIENT, PROFILE)
    before = repository.entry(before_id)
    lock_id = record_lock(publisher)
    after = repository.entry(repository.latest_entry_id(CLIENT, PROFILE))
    assert (after.artifact, after.lock, after.previous_entry) == (before.artifact, lock_id, before_id)
    assert after.index_version == before.index_version + 1
    assert record_lock(publisher) == lock_id  # the same lock again: no new version
    assert repository.snapshot()[1].head.version == after.index_version
    assert repository.lock(lock_id).servers["fs"].tools["echo"]["description"] == "Echo the text back."


def test_a_lock_for_another_artifact_is_a_conflict(publisher: Publisher) -> None:
    repository = publisher.repository
    old = repository.entry(repository.latest_entry_id(CLIENT, PROFILE)).artifact
    publisher.publish(CLIENT, PROFILE, servers("fs", "server-filesystem@2.0.0", "/data"))
    with pytest.raises(ConflictError, match="published again"):
        repository.record_lock(
            publisher.key, CLIENT, PROFILE, artifact=old, lock=lock_for(repository, old), changelog="late lock"
        )


def test_a_publish_carries_the_lock_forward_and_it_shows_as_stale(publisher: Publisher) -> None:
    lock_id = record_lock(publisher)
    publisher.publish(CLIENT, PROFILE, servers("fs", "server-filesystem@2.0.0", "/data"))
    repository = publisher.repository
    entry = repository.entry(repository.latest_entry_id(CLIENT, PROFILE))
    assert entry.lock == lock_id and repository.lock(lock_id).artifact != entry.artifact


def test_the_policy_is_signed_in_the_root_and_changed_only_by_a_new_version(publisher: Publisher) -> None:
    repository = publisher.repository
    assert repository.store_policy() == StorePolicy()
    version, policy_id, changed = repository.set_policy(publisher.key, StorePolicy(require_tool_lock=True).to_json())
    assert changed and read_root(repository.objects, repository.snapshot()[1].head).policy == policy_id
    assert repository.set_policy(publisher.key, StorePolicy(require_tool_lock=True).to_json()) == (
        version,
        policy_id,
        False,
    )
    publisher.publish(CLIENT, "other", servers("x", "pkg@1.0.0"))  # a publish keeps the policy
    assert repository.store_policy() == StorePolicy(require_tool_lock=True)


def test_deep_verify_checks_every_lock_pin(publisher: Publisher) -> None:
    lock_id = record_lock(publisher)
    repository = publisher.repository
    assert repository.verify(deep=True).objects_checked > 0
    path = repository.objects.path_for(lock_id)
    raw = json.loads(path.read_bytes())
    raw["servers"]["fs"]["tools"]["echo"]["definition"]["description"] = "Changed after approval."
    path.chmod(0o600)
    path.write_bytes(json.dumps(raw).encode())
    with pytest.raises(IntegrityError):
        repository.verify(deep=True)


def test_sync_applies_a_locked_profile_and_refuses_a_missing_or_stale_lock(
    tmp_path: Path, publisher: Publisher
) -> None:
    url = (tmp_path / "mirror").as_uri()
    require_locks(publisher)
    publisher.push(url)
    desktop = Desktop(tmp_path / "desktop", publisher.root, url)
    before = desktop.files()
    with pytest.raises(LockMissingError) as missing:
        desktop.sync()
    assert missing.value.exit_code == ExitCode.POLICY and desktop.files() == before

    record_lock(publisher)
    publisher.push(url)
    desktop.sync()
    assert desktop.servers()["fs"]["args"][1] == "server-filesystem@1.0.0"

    publisher.publish(CLIENT, PROFILE, servers("fs", "server-filesystem@2.0.0", "/data"))
    publisher.push(url)
    applied = desktop.files()
    with pytest.raises(LockStaleError, match="taken for artifact"):
        desktop.sync()
    assert desktop.files() == applied

    record_lock(publisher)
    publisher.push(url)
    desktop.sync()
    assert desktop.servers()["fs"]["args"][1] == "server-filesystem@2.0.0"


def test_without_the_policy_an_unlocked_profile_applies(tmp_path: Path, publisher: Publisher) -> None:
    url = (tmp_path / "mirror").as_uri()
    publisher.push(url)
    Desktop(tmp_path / "desktop", publisher.root, url).sync()


def test_a_mirror_that_swaps_the_lock_is_caught(tmp_path: Path, publisher: Publisher) -> None:
    """The lock is named by the signed entry: a mirror cannot serve another one in its place."""
    url = (tmp_path / "mirror").as_uri()
    require_locks(publisher)
    lock_id = record_lock(publisher)
    publisher.push(url)
    stored = tmp_path / "mirror" / "objects" / "sha256" / lock_id[:2] / lock_id[2:]
    swapped = lock_for(publisher.repository, "b" * 64)
    stored.chmod(0o644)
    stored.write_text(json.dumps(swapped))
    with pytest.raises(IntegrityError, match="does not hash to its id"):
        Desktop(tmp_path / "desktop", publisher.root, url).sync()


def test_the_cli_sets_shows_and_enforces_the_policy(
    run: Run, initialised: Path, key_file: Path, config_file: Path, tmp_path: Path
) -> None:
    assert run("publish", "--key-file", str(key_file), "--client", CLIENT, "--profile", PROFILE,
               "--file", str(config_file)).status == 0  # fmt: skip
    policy = tmp_path / "policy.json"
    policy.write_text('{"require_tool_lock": true, "require_tool_locks": false}')
    refused = run("policy", "set", "--key-file", str(key_file), "--file", str(policy))
    assert refused.status == ExitCode.USAGE and "require_tool_locks" in refused.stderr
    policy.write_text('{"require_tool_lock": true}')
    assert run("policy", "set", "--key-file", str(key_file), "--file", str(policy)).status == 0
    shown = json.loads(run("policy", "show", "--json").stdout)
    assert shown["rules"] == {"require_pinned_packages": False, "require_tool_lock": True}

    client_file = tmp_path / "claude_desktop_config.json"
    deployed = run("deploy", "--client", CLIENT, "--profile", PROFILE, "--config-path", str(client_file))
    assert deployed.status == ExitCode.POLICY and "lock_missing" in deployed.stderr
    assert not client_file.exists()
    exported = run("export", "--client", CLIENT, "--profile", PROFILE, "--format", "mobileconfig")
    assert exported.status == ExitCode.POLICY
    got = json.loads(run("get", "--client", CLIENT, "--profile", PROFILE, "--json").stdout)
    assert got["tool_lock"] is None
    checked = run("check", "--client", CLIENT, "--profile", PROFILE)
    assert checked.status == ExitCode.POLICY and "lock_missing" in checked.stderr
