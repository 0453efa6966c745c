"""A desktop that synced a genuine index refuses every attack a hostile mirror can make, and is not poisoned.

Each test starts from a desktop that already synced genuine index version 3
(its state directory, and a client config file holding the user's own
servers). The publisher then publishes version 4 and pushes it, so the mirror
has a new head and new objects for the desktop to fetch, and the hostile
mirror (``tests/hostile_mirror.py``, a real HTTP server on 127.0.0.1) serves
that genuine tree except where the test makes it lie. After each refused
sync: the error has its stable code, the config directory and the state
directory are byte for byte what they were (no write, no backup, no
temporary file, the accepted head did not move), the message quotes nothing
the mirror made up and nothing secret, and a slow or silent mirror held the
desktop for no longer than its timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.app import rotation
from mcp_orchestration.app.sync import ApplyRequest, SyncRequest, SyncResult, sync
from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.core.errors import ExitCode, OrchestrationError
from mcp_orchestration.store.mirror import push
from mcp_orchestration.store.mirror.transport import open_target
from mcp_orchestration.store.mirror.tree import HEAD_PATH, object_path
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import dsse, keys
from mcp_orchestration.trust.metadata import Head
from mcp_orchestration.trust.signer import Signer
from mcp_orchestration.trust.verifier import SignedHead
from tests.conftest import run_process
from tests.hostile_mirror import (
    ALIAS,
    HOSTILE_CANARY,
    Behaviour,
    Body,
    ChangingEtag,
    Drip,
    Endless,
    HostileMirror,
    Oversized,
    Redirect,
    Silence,
    Status,
    etag_of,
    serve_hostile,
)

CLIENT, PROFILE = "claude-desktop", "default"
TIMEOUT = 1.5  # seconds a hostile sync may wait on the mirror: keeps the slow attacks quick
BOUND = 10.0  # no sync, however hostile the mirror, takes longer than this
USER_SECRET = "ghp_userOwnTokenNeverQuoted0123456789abcd"  # in the user's own server entry
USER_CONTENT: dict[str, Any] = {
    "theme": "dark",
    "mcpServers": {"my-own": {"command": "my-tool", "args": ["--local"], "env": {"MY_TOKEN": USER_SECRET}}},
}


def payload(version: int, flavour: str = "genuine") -> dict[str, Any]:
    return {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "server-filesystem", f"/data/{flavour}/{version}"]}}}


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@dataclass
class Publisher:
    """A store and its signing key, publishing and pushing as the real commands do."""

    storage: Path
    key: Signer
    head_lifetime: timedelta = timedelta(days=7)

    @property
    def repo(self) -> Repository:
        return Repository(self.storage, head_lifetime=self.head_lifetime)

    @classmethod
    def create(cls, storage: Path, key: Signer | None = None) -> Publisher:
        publisher = cls(storage, key or keys.generate())
        publisher.repo.initialize(publisher.key)
        return publisher

    def publish(self, version: int, flavour: str = "genuine") -> str:
        """Publish the next index version; returns the new artifact's id."""
        result = self.repo.publish(self.key, [ProfileUpdate(CLIENT, PROFILE, payload(version, flavour))])
        assert result.index_version == version
        return result.artifacts[f"{CLIENT}/{PROFILE}"]

    def push(self, mirror_dir: Path) -> None:
        push.push(self.repo, open_target(str(mirror_dir)))

    def head(self) -> SignedHead:
        return self.repo.snapshot()[1]

    def object(self, object_id: str) -> bytes:
        return self.repo.objects.get_bytes(object_id)


@dataclass
class Desktop:
    """A machine with no key: a pinned root, its state directory and one client config file."""

    root: str
    config: Path
    state_dir: Path

    def request(self, url: str, *, timeout: float = TIMEOUT, dry_run: bool = False) -> SyncRequest:
        return SyncRequest(
            url=url,
            expect_root=self.root,
            applies=(ApplyRequest(CLIENT, PROFILE, self.config),),
            state_dir=self.state_dir,
            timeout=timeout,
            dry_run=dry_run,
        )

    def files(self) -> dict[str, bytes]:
        """Every file under the config's directory and the state directory, with its bytes."""
        found = {}
        for top in (self.config.parent, self.state_dir):
            for path in sorted(top.rglob("*")):
                if path.is_file():
                    found[str(path)] = path.read_bytes()
        return found

    def servers(self) -> dict[str, Any]:
        servers: dict[str, Any] = json.loads(self.config.read_text())["mcpServers"]
        return servers

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.state_dir / "state.json").read_text())
        return state


@dataclass
class World:
    publisher: Publisher
    mirror_dir: Path
    mirror: HostileMirror
    desktop: Desktop
    tmp: Path
    older: SignedHead  # version 2
    accepted: SignedHead  # version 3: what the desktop applied
    accepted_artifact: str
    fork_base: Path  # a copy of the store taken at version 2
    new: SignedHead  # version 4: on the mirror, not yet applied
    new_artifact: str

    def path_of(self, target: str) -> str:
        """The mirror path an attack aims at: the head, or one of version 4's objects."""
        if target == "head":
            return HEAD_PATH
        if target == "artifact":
            return object_path(self.new_artifact)
        if target == "root":
            return object_path(self.new.head.root)
        raise AssertionError(target)

    def genuine(self, target: str) -> bytes:
        return (self.mirror_dir / self.path_of(target)).read_bytes()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    publisher = Publisher.create(tmp_path / "publisher" / "storage")
    publisher.publish(2)
    older = publisher.head()
    fork_base = tmp_path / "fork-base" / "storage"
    shutil.copytree(publisher.storage, fork_base)
    accepted_artifact = publisher.publish(3)
    accepted = publisher.head()
    mirror_dir = tmp_path / "mirror"
    publisher.push(mirror_dir)
    config = tmp_path / "desktop" / "Claude" / "claude_desktop_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(USER_CONTENT, indent=2))
    desktop = Desktop(publisher.key.fingerprint, config, tmp_path / "desktop" / "sync-state")
    with serve_hostile(mirror_dir) as mirror:
        first = sync(desktop.request(mirror.url))
        assert (first.index_version, first.head_id) == (3, accepted.head_id)
        assert desktop.servers()["fs"] == payload(3)["mcpServers"]["fs"]
        assert desktop.servers()["my-own"] == USER_CONTENT["mcpServers"]["my-own"]
        new_artifact = publisher.publish(4)
        publisher.push(mirror_dir)
        yield World(
            publisher,
            mirror_dir,
            mirror,
            desktop,
            tmp_path,
            older,
            accepted,
            accepted_artifact,
            fork_base,
            publisher.head(),
            new_artifact,
        )


def assert_refused(
    world: World,
    code: str,
    *,
    url: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    mentions: str = "",
) -> OrchestrationError:
    """Sync from the mirror and prove it was refused with ``code`` and changed nothing on the desktop."""
    desktop = world.desktop
    before = desktop.files()
    state_before = (desktop.state_dir / "state.json").read_bytes()
    config_before = desktop.config.read_bytes()
    started = time.monotonic()
    with pytest.raises(OrchestrationError) as caught:
        sync(desktop.request(url or world.mirror.url, dry_run=dry_run), now=now)
    elapsed = time.monotonic() - started
    error = caught.value
    assert error.code == code, f"{type(error).__name__} [{error.code}]: {error.message}"
    assert elapsed < BOUND, f"the sync took {elapsed:.1f} s"
    assert desktop.config.read_bytes() == config_before  # the config file is untouched
    assert (desktop.state_dir / "state.json").read_bytes() == state_before  # the accepted head did not move
    after = desktop.files()
    assert not [name for name in after if os.path.basename(name).startswith(".tmp-")]
    assert sorted(after) == sorted(before)  # no new file: no backup, no temporary file, no key version
    assert after == before
    text = error.diagnostics()
    assert USER_SECRET not in text
    assert HOSTILE_CANARY not in text  # nothing the mirror made up is quoted back
    assert mentions in text
    return error


# -- one path lies: the attacks that share a shape --------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    target: str  # "head", "artifact" (version 4's config) or "root" (version 4's root tree)
    behaviour: Callable[[World], Behaviour]
    code: str
    mentions: str = ""  # what the message must name; "{path}", "{url}", "{id}" are filled in


def _unknown_key_head(world: World) -> bytes:
    """Version 4's own head, signed by a key the store's history never listed."""
    stranger = keys.generate()
    head = world.new.head
    return dsse.sign(
        dsse.INDEX_PAYLOAD_TYPE, canonical_bytes(head.to_json()), {stranger.keyid: stranger.sign}
    ).to_bytes()


ATTACKS = [
    # the head
    Attack(
        "rollback to an older genuine head", "head", lambda w: Body(w.older.envelope_bytes), "rollback", "version 2"
    ),
    Attack("head signed by a key not in the history", "head", lambda w: Body(_unknown_key_head(w)), "signature"),
    Attack("head one byte tampered", "head", lambda w: Body(flip(w.genuine("head"), 40)), "signature"),
    Attack(
        "head served as text/html",
        "head",
        lambda w: Body(w.genuine("head"), content_type="text/html"),
        "mirror_content_type",
        "text/html",
    ),
    Attack("head answers 500", "head", lambda w: Status(500), "mirror_unavailable", "HTTP 500"),
    Attack("head answers 503", "head", lambda w: Status(503), "mirror_unavailable", "HTTP 503"),
    Attack("head answers 404", "head", lambda w: Status(404), "mirror_missing", "{path}"),
    Attack("head body never ends", "head", lambda w: Endless(), "mirror_too_large"),
    Attack("head Content-Length over the limit", "head", lambda w: Oversized(), "mirror_too_large"),
    Attack("head drips a byte every 0.2 s", "head", lambda w: Drip(0.2), "mirror_timeout", "1.5 seconds"),
    Attack("head headers never sent", "head", lambda w: Silence(), "mirror_timeout", "1.5 seconds"),
    Attack(
        "head truncated, Content-Length lying",
        "head",
        lambda w: Body(w.genuine("head")[:100], content_length=len(w.genuine("head"))),
        "mirror_unavailable",
        "100 of the",
    ),
    # an object the signed tree names
    Attack("object one byte tampered", "artifact", lambda w: Body(flip(w.genuine("artifact"), 5)), "integrity", "{id}"),
    Attack(
        "object swapped for another genuine object",
        "artifact",
        lambda w: Body(w.publisher.object(w.accepted_artifact)),
        "integrity",
        "{id}",
    ),
    Attack(
        "root tree swapped for the older genuine root",
        "root",
        lambda w: Body(w.publisher.object(w.accepted.head.root)),
        "integrity",
        "{id}",
    ),
    Attack(
        "object truncated, Content-Length matching",
        "artifact",
        lambda w: Body(w.genuine("artifact")[:20]),
        "integrity",
        "{id}",
    ),
    Attack(
        "object truncated, Content-Length lying",
        "artifact",
        lambda w: Body(w.genuine("artifact")[:20], content_length=len(w.genuine("artifact"))),
        "mirror_unavailable",
        "20 of the",
    ),
    Attack("object body never ends", "artifact", lambda w: Endless(), "mirror_too_large"),
    Attack("object Content-Length over the limit", "artifact", lambda w: Oversized(), "mirror_too_large"),
    Attack("object drips a byte every 0.2 s", "artifact", lambda w: Drip(0.2), "mirror_timeout", "1.5 seconds"),
    Attack("object headers never sent", "artifact", lambda w: Silence(), "mirror_timeout", "1.5 seconds"),
    Attack(
        "object served as text/html",
        "artifact",
        lambda w: Body(f"<html>{HOSTILE_CANARY}</html>".encode(), content_type="text/html"),
        "mirror_content_type",
        "text/html",
    ),
    Attack("object the signed tree names answers 404", "artifact", lambda w: Status(404), "mirror_missing", "{path}"),
    Attack("object answers 500", "artifact", lambda w: Status(500), "mirror_unavailable", "HTTP 500"),
    Attack("object answers 503", "artifact", lambda w: Status(503), "mirror_unavailable", "HTTP 503"),
    Attack(
        "object answers 304 to a request without If-None-Match",
        "artifact",
        lambda w: Status(304),
        "mirror",
        "HTTP 304",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_a_lying_path_is_refused_and_the_desktop_keeps_its_last_good_config(world: World, attack: Attack) -> None:
    path = world.path_of(attack.target)
    world.mirror.behaviours[path] = attack.behaviour(world)
    object_id = path.replace("objects/sha256/", "").replace("/", "")
    assert_refused(world, attack.code, mentions=attack.mentions.format(path=path, url=world.mirror.url, id=object_id))
    assert path in [requested for requested, _ in world.mirror.requests]  # the lie was served, not skipped


@pytest.mark.parametrize("target", ["head", "artifact"])
def test_a_redirect_to_another_origin_is_refused_even_to_a_genuine_copy(world: World, target: str) -> None:
    path = world.path_of(target)
    with serve_hostile(world.mirror_dir) as elsewhere:  # the same genuine tree, on another port
        world.mirror.behaviours[path] = Redirect(f"{elsewhere.url}{path}")
        error = assert_refused(world, "mirror_redirect", mentions="another origin")
        assert elsewhere.requests == []  # never followed
    assert error.message.startswith(f"The mirror at {world.mirror.url} redirected")


def test_a_redirect_within_the_mirror_is_followed(world: World) -> None:
    for target in ("head", "artifact"):
        path = world.path_of(target)
        world.mirror.behaviours[path] = Redirect(f"/{ALIAS}{path}", code=301)
    result = sync(world.desktop.request(world.mirror.url))
    assert (result.index_version, result.head_id) == (4, world.new.head_id)
    assert world.desktop.servers()["fs"] == payload(4)["mcpServers"]["fs"]
    assert f"{ALIAS}{HEAD_PATH}" in [requested for requested, _ in world.mirror.requests]


# -- whole-mirror attacks ---------------------------------------------------------------------------


def test_an_expired_genuine_head_is_refused(world: World) -> None:
    """Version 5 is genuine but signed to be fresh for one second; the desktop syncs two seconds later."""
    world.publisher.head_lifetime = timedelta(seconds=1)
    world.publisher.publish(5)
    world.publisher.push(world.mirror_dir)
    error = assert_refused(world, "expired", now=datetime.now(UTC) + timedelta(seconds=2), mentions="version 5")
    assert error.exit_code == ExitCode.EXPIRED


def test_a_frozen_mirror_answering_not_modified_past_the_expiry_is_refused(world: World) -> None:
    world.mirror.behaviours[HEAD_PATH] = Body(world.accepted.envelope_bytes)  # what the desktop has, 304 forever
    later = datetime.now(UTC) + timedelta(days=8)
    assert_refused(world, "expired", now=later, mentions="version 3")
    assert world.mirror.requests[-1] == (HEAD_PATH, etag_of(world.accepted.envelope_bytes))  # one conditional GET


def test_a_re_served_head_past_its_expiry_is_refused_without_a_validator_too(world: World) -> None:
    world.mirror.behaviours[HEAD_PATH] = ChangingEtag(world.accepted.envelope_bytes)
    assert_refused(world, "expired", now=datetime.now(UTC) + timedelta(days=8), mentions="version 3")


def test_a_not_modified_head_to_a_request_without_a_validator_is_refused(world: World) -> None:
    """A dry run is another request than the last sync, so it sends no If-None-Match: 304 is a lie."""
    world.mirror.behaviours[HEAD_PATH] = Status(304)
    assert_refused(world, "mirror", dry_run=True, mentions="HTTP 304 for index/HEAD")
    assert world.mirror.requests[-1] == (HEAD_PATH, None)


def test_a_changing_etag_over_the_same_head_writes_no_config(world: World) -> None:
    world.mirror.behaviours[HEAD_PATH] = ChangingEtag(world.accepted.envelope_bytes)
    config_before = world.desktop.config.read_bytes()
    files_before = world.desktop.files()
    state_before = world.desktop.state()
    for _ in range(3):
        result = sync(world.desktop.request(world.mirror.url))
        assert (result.index_version, result.head_id, result.head_changed) == (3, world.accepted.head_id, False)
        assert (result.applied, result.requests) == ((), 1)  # the same bytes: nothing to verify or apply again
    assert world.desktop.config.read_bytes() == config_before
    after = world.desktop.files()
    assert sorted(after) == sorted(files_before)  # no backup, no temporary file
    state_after = world.desktop.state()
    assert state_after["head_id"] == world.accepted.head_id
    # The state file is re-saved with the mirror's latest validator (a genuine server whose ETag changed once
    # then answers 304 again); nothing else in it moves.
    assert {name for name in state_before if state_before[name] != state_after[name]} <= {"etag", "synced_at"}
    etags = [etag for path, etag in world.mirror.requests if path == HEAD_PATH]
    assert len(set(etags[-3:])) == 3  # each sync sent the validator the last answer carried, and none matched


def test_a_head_signed_by_a_revoked_key_is_refused(world: World) -> None:
    """A real rotation to a new key and revocation of the old one; the desktop syncs after both. Whoever
    holds the old key then signs a newer head, first under the current key history, then under the
    history of before the rotation."""
    publisher, desktop = world.publisher, world.desktop
    old_key, new_key = publisher.key, keys.generate()
    rotation.rotate(publisher.repo, old_key, new_key)  # version 5, signed by the new key
    publisher.push(world.mirror_dir)
    assert rotation.revoke(publisher.repo, new_key, old_key.keyid)  # version 6 commits to it
    publisher.key = new_key
    publisher.publish(7)
    publisher.push(world.mirror_dir)
    synced = sync(desktop.request(world.mirror.url))
    assert (synced.index_version, desktop.state()["key_history_version"]) == (7, 3)
    history, current = publisher.repo.snapshot()

    def forged(key_history: list[str]) -> bytes:
        head = Head.next(
            8, current.head.root, current.head_id, key_history, now=datetime.now(UTC), lifetime=timedelta(days=7)
        )
        return dsse.sign(
            dsse.INDEX_PAYLOAD_TYPE, canonical_bytes(head.to_json()), {old_key.keyid: old_key.sign}
        ).to_bytes()

    world.mirror.behaviours[HEAD_PATH] = Body(forged(history.digests))
    assert_refused(world, "signature", mentions="unrevoked key")
    world.mirror.behaviours[HEAD_PATH] = Body(forged(history.digests[:1]))  # "signed before the rotation"
    assert_refused(world, "signature", mentions="unrevoked key")


def test_a_head_claiming_the_history_before_a_revocation_the_mirror_holds_is_refused(world: World) -> None:
    """The desktop synced before the rotation, so it knows key history version 1 only. The old key is
    stolen, rotated out and revoked, and the genuine mirror carries that. Whoever holds the old key serves a
    newer head that claims version 1 of the history (which the desktop needs nothing new to check): the
    desktop reads the versions the mirror holds beyond the claim, and the revocation refuses the head."""
    publisher = world.publisher
    old_key, new_key = publisher.key, keys.generate()
    digests_before = publisher.repo.load_history().digests
    rotation.rotate(publisher.repo, old_key, new_key)
    assert rotation.revoke(publisher.repo, new_key, old_key.keyid)
    publisher.key = new_key
    publisher.push(world.mirror_dir)
    head = Head.next(
        5, world.new.head.root, world.new.head_id, digests_before, now=datetime.now(UTC), lifetime=timedelta(days=7)
    )
    forged = dsse.sign(dsse.INDEX_PAYLOAD_TYPE, canonical_bytes(head.to_json()), {old_key.keyid: old_key.sign})
    world.mirror.behaviours[HEAD_PATH] = Body(forged.to_bytes())
    assert_refused(world, "signature", mentions="unrevoked key")
    assert ("keys/00000003.json", None) in world.mirror.requests
    world.mirror.behaviours = {}
    result = sync(world.desktop.request(world.mirror.url))  # the genuine head, through the same history
    assert (result.index_version, world.desktop.state()["key_history_version"]) == (6, 3)


def test_a_head_still_signed_by_the_retiring_key_while_a_rotation_is_pushed_is_accepted(world: World) -> None:
    """During a push the key history's new version is on the mirror before the head signed by the new key:
    the head still there, signed by the retiring key within its range, is genuine and applies."""
    publisher = world.publisher
    rotation.rotate(publisher.repo, publisher.key, keys.generate())
    publisher.push(world.mirror_dir)
    world.mirror.behaviours[HEAD_PATH] = Body(world.new.envelope_bytes)
    result = sync(world.desktop.request(world.mirror.url))
    assert (result.index_version, result.head_id) == (4, world.new.head_id)
    assert world.desktop.state()["key_history_version"] == 2


def test_a_mirror_whose_head_was_signed_by_a_since_revoked_key_takes_the_next_push(world: World) -> None:
    """Rotate and revoke at once (the answer to a stolen key), then push: the mirror still serves version 4,
    signed by the key revoked since. The store's own chain vouches for it, so the push goes on, and the
    desktop follows the chain through the rotation and revocation."""
    publisher = world.publisher
    old_key, new_key = publisher.key, keys.generate()
    rotation.rotate(publisher.repo, old_key, new_key)
    assert rotation.revoke(publisher.repo, new_key, old_key.keyid)
    publisher.key = new_key
    publisher.push(world.mirror_dir)
    result = sync(world.desktop.request(world.mirror.url))
    assert (result.index_version, result.head_id) == (6, publisher.head().head_id)
    assert world.desktop.servers()["fs"] == payload(4)["mcpServers"]["fs"]
    assert world.desktop.state()["key_history_version"] == 3


def test_another_stores_genuine_head_is_refused(world: World) -> None:
    other = Publisher.create(world.tmp / "other" / "storage")
    for version in range(2, 7):
        other.publish(version, "other")
    other_dir = world.tmp / "other-mirror"
    other.push(other_dir)
    with serve_hostile(other_dir) as impostor:
        assert_refused(world, "signature", url=impostor.url, mentions="index")


def test_another_stores_mirror_is_refused_on_a_first_sync(world: World) -> None:
    """A new desktop pinned to this store's root, pointed at another store's mirror."""
    other = Publisher.create(world.tmp / "other" / "storage")
    other.publish(2, "other")
    other_dir = world.tmp / "other-mirror"
    other.push(other_dir)
    fresh = Desktop(world.desktop.root, world.tmp / "new-desktop" / "config.json", world.tmp / "new-desktop" / "st")
    with serve_hostile(other_dir) as impostor, pytest.raises(OrchestrationError) as caught:
        sync(fresh.request(impostor.url))
    assert caught.value.code == "key_untrusted"
    assert not fresh.config.exists()
    assert not (fresh.state_dir / "state.json").exists()


def test_a_fork_from_a_rewound_copy_of_the_store_is_refused(world: World) -> None:
    """The store was copied at version 2; the copy, with the same root key, publishes its own versions 3
    and 4. The desktop accepted the original's version 3, so the copy's version 4 cannot descend from it."""
    rewound = Publisher(world.fork_base, world.publisher.key)
    rewound.publish(3, "forked")
    rewound.publish(4, "forked")
    fork_dir = world.tmp / "fork-mirror"
    rewound.push(fork_dir)
    assert rewound.head().head.version == world.new.head.version
    with serve_hostile(fork_dir) as forked:
        assert_refused(world, "fork", url=forked.url, mentions="version 3")
        rewound.publish(5, "forked")
        rewound.push(fork_dir)
        assert_refused(world, "fork", url=forked.url, mentions="version 3")


# -- the command line says it the same way ----------------------------------------------------------


def _cli_sync(world: World, *extra: str) -> tuple[int, str, float]:
    started = time.monotonic()
    completed = run_process(
        "sync",
        "--from",
        world.mirror.url,
        "--expect-key",
        world.desktop.root,
        "--apply",
        f"{CLIENT}/{PROFILE}={world.desktop.config}",
        "--state-dir",
        str(world.desktop.state_dir),
        "--timeout",
        str(TIMEOUT),
        *extra,
        timeout=60,
    )
    return completed.returncode, completed.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    ("behaviour", "status", "code"),
    [
        (lambda w: Body(w.older.envelope_bytes), ExitCode.VERIFICATION, "rollback"),
        (lambda w: Drip(0.2), ExitCode.UNAVAILABLE, "mirror_timeout"),
        (lambda w: Status(503), ExitCode.UNAVAILABLE, "mirror_unavailable"),
        (lambda w: Body(w.genuine("head"), content_type="text/html"), ExitCode.VERIFICATION, "mirror_content_type"),
    ],
    ids=["rollback", "drip", "503", "text/html"],
)
def test_the_command_line_reports_the_attack_by_code_and_exit_status(
    world: World, behaviour: Callable[[World], Behaviour], status: ExitCode, code: str
) -> None:
    world.mirror.behaviours[HEAD_PATH] = behaviour(world)
    before = world.desktop.files()
    returncode, stderr, elapsed = _cli_sync(world)
    assert returncode == status, stderr
    assert stderr.startswith(f"error [{code}]: "), stderr
    assert elapsed < BOUND + 5  # a process start on top of the sync's own bound
    assert world.desktop.files() == before
    assert USER_SECRET not in stderr
    assert HOSTILE_CANARY not in stderr


def test_the_command_line_refuses_an_expired_head_with_exit_status_7(world: World) -> None:
    world.publisher.head_lifetime = timedelta(seconds=1)
    world.publisher.publish(5)
    world.publisher.push(world.mirror_dir)
    expires = datetime.fromisoformat(world.publisher.head().head.expires or "")
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    before = world.desktop.files()
    returncode, stderr, _ = _cli_sync(world)
    assert returncode == ExitCode.EXPIRED, stderr
    assert stderr.startswith("error [expired]: "), stderr
    assert world.desktop.files() == before


# -- nothing was poisoned -----------------------------------------------------------------------------


def test_after_the_attacks_stop_the_desktop_syncs_the_newer_genuine_index(world: World) -> None:
    mirror, desktop = world.mirror, world.desktop
    artifact_path, root_path = world.path_of("artifact"), world.path_of("root")
    attacks: list[tuple[str, Behaviour, str]] = [
        (HEAD_PATH, Body(world.older.envelope_bytes), "rollback"),
        (HEAD_PATH, Body(_unknown_key_head(world)), "signature"),
        (HEAD_PATH, Drip(0.2), "mirror_timeout"),
        (artifact_path, Body(flip(world.genuine("artifact"), 5)), "integrity"),
        (artifact_path, Body(world.genuine("artifact")[:20], content_length=999), "mirror_unavailable"),
        (root_path, Body(world.publisher.object(world.accepted.head.root)), "integrity"),
        (artifact_path, Silence(), "mirror_timeout"),
    ]
    for path, behaviour, code in attacks:
        mirror.behaviours = {path: behaviour}
        assert_refused(world, code)
    mirror.behaviours = {}
    world.publisher.publish(5)
    world.publisher.push(world.mirror_dir)
    result: SyncResult = sync(desktop.request(mirror.url))
    assert (result.index_version, result.head_id) == (5, world.publisher.head().head_id)
    assert [item.changed for item in result.applied] == [True]
    assert desktop.servers() == {**USER_CONTENT["mcpServers"], **payload(5)["mcpServers"]}
    assert desktop.state()["index_version"] == 5
    again = sync(desktop.request(mirror.url))
    assert (again.head_changed, again.applied, again.requests) == (False, (), 1)  # one conditional GET
