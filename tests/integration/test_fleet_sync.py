"""Fleet rollout end to end: a publisher pushes its store to a mirror, keyless desktops sync from it.

Real keys, a real store, real mirrors (a directory, and nginx on 127.0.0.1);
the attacks a hostile mirror can make are in ``test_hostile_mirror.py``.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import shlex
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mcp_orchestration.app.sync import ApplyRequest
from mcp_orchestration.core.errors import (
    ConflictError,
    ExitCode,
    ExpiredError,
    ForkError,
    KeyNotTrustedError,
    MirrorError,
    MirrorUnavailableError,
    NotFoundError,
    RollbackError,
)
from mcp_orchestration.store.repository import Repository
from tests import mirror_servers
from tests.conftest import run_process
from tests.fleet import Desktop, Publisher, later, servers

FIXTURE_0_1 = Path(__file__).parent.parent / "fixtures" / "store-0.1.0"


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    publisher = Publisher(tmp_path / "publisher")
    publisher.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/data"))
    return publisher


@pytest.fixture
def mirror(tmp_path: Path, publisher: Publisher) -> str:
    url = (tmp_path / "mirror").as_uri()
    publisher.push(url)
    return url


def desktop(tmp_path: Path, publisher: Publisher, url: str, name: str = "desktop") -> Desktop:
    return Desktop(tmp_path / name, publisher.root, url)


def test_a_desktop_applies_the_published_servers_beside_its_own_and_then_a_sync_is_one_request(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    first = laptop.sync()
    assert first.head_changed and [a.changed for a in first.applied] == [True]
    assert set(laptop.servers()) == {"mine", "fs"}
    assert json.loads(laptop.config.read_text())["theme"] == "dark"
    before = laptop.files()

    again = laptop.sync()
    assert (again.head_changed, again.applied, again.requests) == (False, (), 1)
    assert laptop.files() == before  # nothing written, not even the state


def test_a_new_version_reaches_the_desktop_and_only_new_objects_travel(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    for number in range(20):
        publisher.publish("cursor", f"team-{number}", servers("git", f"team-{number}"))
    publisher.push(mirror)
    laptop = desktop(tmp_path, publisher, mirror)
    laptop.sync()

    publisher.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/srv"))
    pushed = publisher.push(mirror)
    assert (pushed.objects, pushed.key_versions) == (5, 0)  # head, root, client tree, entry, config
    result = laptop.sync()
    # head, the key version after the last (none: 404), root, client tree, entry, config; no other profile's
    assert result.requests == 6
    assert laptop.servers()["fs"]["args"][-1] == "/srv"
    assert result.applied[0].backup is not None


def test_a_desktop_follows_a_rotation_and_a_revocation_published_since_its_last_sync(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    laptop.sync()
    old_keyid = publisher.key.keyid
    publisher.rotate()
    publisher.revoke(old_keyid)
    publisher.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/rotated"))
    publisher.push(mirror)

    result = laptop.sync()
    assert laptop.servers()["fs"]["args"][-1] == "/rotated"
    assert result.index_version == publisher.repository.snapshot()[1].head.version
    state = json.loads((laptop.state_dir / "state.json").read_text())
    assert state["key_history_version"] == 3


def test_a_refreshed_index_is_accepted_without_rewriting_the_config(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    laptop.sync()
    before = laptop.files()
    publisher.refresh()
    publisher.push(mirror)

    result = laptop.sync()
    assert result.head_changed and [a.changed for a in result.applied] == [False]
    after = laptop.files()
    assert after.pop("state/state.json") != before.pop("state/state.json")  # the new head is accepted
    assert after == before  # the config is not rewritten, and no backup is made


def test_a_frozen_mirror_expires_and_the_last_good_config_stays(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    laptop.sync()
    before = laptop.files()
    with pytest.raises(ExpiredError, match="expired at"):
        laptop.sync(now=later(8))  # the mirror still answers "not modified" a week later
    assert laptop.files() == before


def test_an_expired_head_is_refused_on_first_sight(tmp_path: Path, publisher: Publisher, mirror: str) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    before = laptop.files()
    with pytest.raises(ExpiredError):
        laptop.sync(now=later(7.01))
    assert laptop.files() == before


def test_a_head_from_a_release_without_expiry_is_refused_until_the_publisher_refreshes(tmp_path: Path) -> None:
    home = tmp_path / "old"
    shutil.copytree(FIXTURE_0_1, home)
    root = (FIXTURE_0_1 / "ROOT").read_text().strip()
    url = (tmp_path / "mirror").as_uri()
    from mcp_orchestration.store.mirror import push
    from mcp_orchestration.store.mirror.transport import open_target

    push.push(Repository(home / "storage"), open_target(url))
    laptop = Desktop(tmp_path / "desktop", root, url, client="cursor", profile="work")
    with pytest.raises(ExpiredError, match="carries no expiry"):
        laptop.sync()
    assert not (laptop.state_dir / "state.json").exists()


def test_an_older_copy_of_the_store_on_the_mirror_is_a_rollback(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    old_copy = tmp_path / "old-copy"
    shutil.copytree(publisher.home, old_copy)
    publisher.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/new"))
    publisher.push(mirror)
    laptop = desktop(tmp_path, publisher, mirror)
    laptop.sync()
    before = laptop.files()

    stale = (tmp_path / "stale-mirror").as_uri()
    from mcp_orchestration.store.mirror import push
    from mcp_orchestration.store.mirror.transport import open_target

    push.push(Repository(old_copy / "storage"), open_target(stale))
    with pytest.raises(RollbackError):
        laptop.sync(url=stale)
    assert laptop.files() == before


def test_a_rewound_and_rebuilt_store_is_a_fork(tmp_path: Path, publisher: Publisher, mirror: str) -> None:
    rewound = tmp_path / "rewound"
    shutil.copytree(publisher.home, rewound)
    publisher.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/accepted"))
    publisher.push(mirror)
    laptop = desktop(tmp_path, publisher, mirror)
    laptop.sync()
    before = laptop.files()

    twin = Publisher.__new__(Publisher)
    twin.home, twin.key, twin.lifetime = rewound, publisher.key, publisher.lifetime
    twin.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/other"))
    twin.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/newer"))
    forked = (tmp_path / "forked-mirror").as_uri()
    twin.push(forked)
    with pytest.raises(ForkError):
        laptop.sync(url=forked)
    assert laptop.files() == before


def test_the_pinned_root_is_required_and_kept(tmp_path: Path, publisher: Publisher, mirror: str) -> None:
    other = Publisher(tmp_path / "other")
    laptop = desktop(tmp_path, publisher, mirror)
    with pytest.raises(KeyNotTrustedError):
        laptop.sync(expect_root=other.root)
    laptop.sync()
    with pytest.raises(KeyNotTrustedError, match="pinned root"):
        laptop.sync(expect_root=other.root)


def test_a_profile_the_index_does_not_publish_writes_nothing(tmp_path: Path, publisher: Publisher, mirror: str) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    before = laptop.files()
    applies = (ApplyRequest("claude-desktop", "default", laptop.config), ApplyRequest("cursor", "missing"))
    with pytest.raises(NotFoundError, match="cursor/missing"):
        laptop.sync(applies=applies)
    assert laptop.files() == before  # the first profile was not written either


def test_a_dry_run_verifies_and_shows_the_diff_but_writes_nothing(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    before = laptop.files()
    result = laptop.sync(dry_run=True)
    assert result.applied[0].changed and '"fs"' in result.applied[0].diff
    assert laptop.files() == before


def test_push_refuses_to_overwrite_another_stores_mirror_or_roll_one_back(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    other = Publisher(tmp_path / "other")
    with pytest.raises(ConflictError, match="did not sign"):
        other.push(mirror)
    old_copy = tmp_path / "old-copy"
    shutil.copytree(publisher.home, old_copy)
    publisher.publish("cursor", "work", servers("git", "work"))
    publisher.push(mirror)
    from mcp_orchestration.store.mirror import push
    from mcp_orchestration.store.mirror.transport import open_target

    with pytest.raises(ConflictError, match="roll it back"):
        push.push(Repository(old_copy / "storage"), open_target(mirror))


def test_an_unreachable_mirror_is_a_temporary_failure_with_its_own_exit_status(
    tmp_path: Path, publisher: Publisher, mirror: str
) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    laptop.sync()
    before = laptop.files()
    closed = f"http://127.0.0.1:{mirror_servers.free_port()}/"
    with pytest.raises(MirrorUnavailableError):
        laptop.sync(url=closed)
    done = run_process(
        "sync", "--from", closed, "--expect-key", publisher.root,
        "--apply", f"claude-desktop/default={laptop.config}", "--state-dir", str(laptop.state_dir),
    )  # fmt: skip
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    assert "error [mirror_unavailable]" in done.stderr and "last good config stays" in done.stderr
    assert laptop.files() == before


def test_sync_from_the_command_line_reports_what_it_applied(tmp_path: Path, publisher: Publisher, mirror: str) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    argv = (
        "sync", "--from", mirror, "--expect-key", publisher.root,
        "--apply", f"claude-desktop/default={laptop.config}", "--state-dir", str(laptop.state_dir),
    )  # fmt: skip
    first = run_process(*argv)
    assert first.returncode == 0, first.stderr
    assert f"Applied claude-desktop/default -> {laptop.config}" in first.stdout
    second = run_process(*argv, "--json")
    assert second.returncode == 0 and json.loads(second.stdout)["requests"] == 1
    refused = run_process(*argv[:-2], "--state-dir", str(laptop.state_dir), "--apply", "claude-desktop/../x")
    assert refused.returncode == ExitCode.USAGE


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    work = tmp_path / "nginx"
    with mirror_servers.serve_nginx(tmp_path / "www", work, put_token="push-token-f00") as url:
        yield url, work


def test_nginx_mirror_by_put_then_no_change_sync_is_one_small_conditional_get(
    tmp_path: Path, publisher: Publisher, nginx: tuple[str, Path]
) -> None:
    url, work = nginx
    token = _token(tmp_path)
    with pytest.raises(MirrorError, match="HTTP 401") as refused:
        publisher.push(url)
    assert "push-token-f00" not in str(refused.value) + repr(refused.value)
    publisher.push(url, token_file=token)
    laptop = desktop(tmp_path, publisher, url)
    laptop.sync()
    served = len(mirror_servers.requests_logged(work))

    result = laptop.sync()
    new = mirror_servers.requests_logged(work)[served:]
    assert result.requests == 1 and len(new) == 1
    method, uri, status, _, sent = new[0].split()
    assert (method, uri, status) == ("GET", "/index/HEAD", "304")
    assert int(sent) + result.bytes_received <= 2048


class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy: takes absolute-form requests and relays them; remembers what it relayed."""

    relayed: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        target = urllib.parse.urlsplit(self.path)
        self.relayed.append((self.path, self.headers.get("Proxy-Authorization")))
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=5)
        headers = {name: value for name, value in self.headers.items() if name.lower().startswith("if-")}
        upstream.request("GET", target.path, headers=headers)
        response = upstream.getresponse()
        body = response.read()
        self.send_response(response.status)
        for name in ("Content-Type", "ETag"):
            if response.getheader(name):
                self.send_header(name, response.getheader(name) or "")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_a_proxy_from_the_environment_carries_the_sync_and_no_proxy_bypasses_it(
    tmp_path: Path, publisher: Publisher, nginx: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = nginx
    publisher.push(url, token_file=_token(tmp_path))
    _ForwardProxy.relayed.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("http_proxy", f"http://fleet:proxy-pass@127.0.0.1:{server.server_address[1]}")
        monkeypatch.delenv("no_proxy", raising=False)
        laptop = desktop(tmp_path, publisher, url)
        laptop.sync()
        assert "fs" in laptop.servers()
        relayed = [path for path, _ in _ForwardProxy.relayed]
        assert relayed[0] == url + "index/HEAD" and len(relayed) == 7  # head, 2 key versions, 4 objects
        assert all(
            auth == "Basic " + base64.b64encode(b"fleet:proxy-pass").decode() for _, auth in _ForwardProxy.relayed
        )

        monkeypatch.setenv("no_proxy", "127.0.0.1")
        assert laptop.sync().requests == 1 and len(_ForwardProxy.relayed) == 7
    finally:
        server.shutdown()
        server.server_close()


def _token(tmp_path: Path) -> Path:
    token = tmp_path / "token"
    token.write_text("push-token-f00\n")
    return token


def test_the_printed_schedule_runs_this_same_sync(tmp_path: Path, publisher: Publisher, mirror: str) -> None:
    laptop = desktop(tmp_path, publisher, mirror)
    argv = (
        "sync", "--from", mirror, "--expect-key", publisher.root, "--apply", f"claude-desktop/default={laptop.config}",
        "--state-dir", str(laptop.state_dir), "--print-schedule", "linux", "--every", "10m",
    )  # fmt: skip
    printed = run_process(*argv, "--json")
    assert printed.returncode == 0, printed.stderr
    files = json.loads(printed.stdout)
    assert "OnUnitActiveSec=10min" in files["mcp-orchestration-sync.timer"]
    (exec_start,) = [
        line.removeprefix("ExecStart=")
        for line in files["mcp-orchestration-sync.service"].splitlines()
        if line.startswith("ExecStart=")
    ]
    command = [word.replace("%%", "%") for word in shlex.split(exec_start)]
    assert "fs" not in laptop.servers()
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)  # what systemd would run
    assert done.returncode == 0, done.stderr
    assert "fs" in laptop.servers()

    out = tmp_path / "schedule"
    assert run_process(*argv, "--schedule-out", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    again = run_process(*argv, "--schedule-out", str(out))
    assert again.returncode == ExitCode.USAGE and "never overwritten" in again.stderr


def test_an_oci_registry_mirror_serves_a_fleet_like_a_static_tree(tmp_path: Path, publisher: Publisher) -> None:
    with mirror_servers.registry(tmp_path / "registry") as registry:
        url = registry.url("fleet/mcp", "prod")
        publisher.push(url)
        laptop = desktop(tmp_path, publisher, url)
        first = laptop.sync()
        assert "fs" in laptop.servers() and first.head_changed
        assert laptop.sync().requests == 1  # the tag's manifest, answered 304

        publisher.publish("claude-desktop", "default", servers("fs", "server-filesystem", "/oci"))
        publisher.push(url)
        result = laptop.sync()
        assert laptop.servers()["fs"]["args"][-1] == "/oci"
        assert result.requests == 6  # the manifest, the head, then root, client tree, entry and config by digest
