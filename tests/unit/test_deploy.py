from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from mcp_orchestration.app.deploy import deploy
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.core.errors import ExitCode, ValidationError
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import keys
from tests.conftest import Result, Run

PLACEHOLDER = "${env:GITHUB_TOKEN}"
PROFILE = {
    "mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]},
        "github": {
            "command": "docker",
            "args": ["run", "-i", "ghcr.io/github/github-mcp-server"],
            "env": {"T": PLACEHOLDER},
        },
    }
}
PROFILE_B = {"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}}
# Built at run time so that no credential-shaped literal sits in the source.
SECRET = "ghp_" + "A1b2C3d4E5" * 4
TOKEN = "ghp_" + "Z9y8X7w6V5" * 4  # GITHUB_TOKEN in deploy's environment
# What Claude Desktop, which expands no placeholder, gets with --resolve-env.
RESOLVED_SERVERS = json.loads(json.dumps(PROFILE["mcpServers"]).replace(PLACEHOLDER, TOKEN))
EXISTING: dict[str, Any] = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {"mine": {"command": "my-server", "env": {"TOKEN": SECRET}}, "fs": {"command": "old-fs"}},
    "theme": {"dark": True},
}


@pytest.fixture(autouse=True)
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host state (tests/conftest.py puts it in the test's directory, never the real per-user one)."""
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return tmp_path / "host-state" / "host-state.json"


class Publish(Protocol):
    """The ``published`` fixture: publish one more version of a profile."""

    def __call__(self, payload: dict[str, Any], client: str = ...) -> Result: ...


@pytest.fixture
def published(run: Run, initialised: Path, key_file: Path, tmp_path: Path) -> Publish:
    """A store with PROFILE published as claude-desktop/default; returns a publisher for more versions."""

    def publish(payload: dict[str, Any], client: str = "claude-desktop") -> Result:
        source = tmp_path / "profile.json"
        source.write_text(json.dumps(payload))
        argv = ("publish", "--client", client, "--profile", "default", "--file", str(source))
        result: Result = run(*argv, "--key-file", str(key_file), "--json")
        assert result.status == 0, result.stderr
        return result

    publish(PROFILE)
    return publish


@pytest.fixture
def client_file(tmp_path: Path) -> Path:
    path = tmp_path / "client" / "claude_desktop_config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(EXISTING, indent=4))
    path.chmod(0o600)
    return path


def _deploy(run: Run, path: Path, *extra: str, client: str = "claude-desktop") -> Result:
    """Deploy the default profile to ``client``; to Claude Desktop with ``--resolve-env`` (it expands nothing)."""
    resolve = ("--resolve-env",) if client == "claude-desktop" else ()
    argv = ("deploy", "--client", client, "--profile", "default", "--config-path", str(path), *resolve, *extra)
    result: Result = run(*argv)
    assert TOKEN not in result.stdout + result.stderr
    return result


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.bak-*"))


def test_merge_sets_the_profiles_servers_and_keeps_everything_else(
    run: Run, published: Publish, client_file: Path
) -> None:
    result = _deploy(run, client_file, "--json")
    assert result.status == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["changed"] and not report["created"] and report["servers"] == ["fs", "github"]
    assert report["resolved_env"] == ["GITHUB_TOKEN"]
    written = json.loads(client_file.read_text())
    assert list(written) == ["globalShortcut", "mcpServers", "theme"]
    assert written["globalShortcut"] == "Ctrl+Space" and written["theme"] == {"dark": True}
    assert written["mcpServers"] == {"mine": EXISTING["mcpServers"]["mine"], **RESOLVED_SERVERS}
    assert written["mcpServers"]["github"]["env"]["T"] == TOKEN
    # Deploying the same index again is a no-op: no rewrite, no second backup.
    before = client_file.read_bytes()
    again = _deploy(run, client_file, "--json")
    assert again.status == 0 and json.loads(again.stdout)["changed"] is False
    assert client_file.read_bytes() == before and len(_backups(client_file)) == 1


def test_servers_are_written_in_the_clients_shape(run: Run, published: Publish, tmp_path: Path) -> None:
    published(PROFILE_B, client="vscode")
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"inputs": [], "servers": {"other": {"type": "http", "url": "https://x.test"}}}))
    assert _deploy(run, path, client="vscode").status == 0
    written = json.loads(path.read_text())
    assert written["inputs"] == [] and "mcpServers" not in written
    assert written["servers"]["time"] == {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}
    assert written["servers"]["other"]["url"] == "https://x.test"


def test_backup_holds_the_old_bytes_and_mode_and_the_mode_is_kept(published: Publish, client_file: Path) -> None:
    published(PROFILE_B)  # no placeholder to resolve, so nothing narrows the mode
    client_file.chmod(0o640)
    old = client_file.read_bytes()
    app = App(load_settings())
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    result = deploy(app, "claude-desktop", "default", config_path=client_file, now=when)
    backup = client_file.with_name("claude_desktop_config.json.bak-20240102T030405Z")
    assert result.backup == str(backup) and _backups(client_file) == [backup]
    assert backup.read_bytes() == old
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o640
    assert client_file.read_bytes() != old
    # A second deploy in the same second gets a backup of its own; the first is never clobbered.
    client_file.write_bytes(b'{"other": 1}')
    again = deploy(app, "claude-desktop", "default", config_path=client_file, now=when)
    second = client_file.with_name("claude_desktop_config.json.bak-20240102T030405Z-1")
    assert again.backup == str(second) and _backups(client_file) == [backup, second]
    assert backup.read_bytes() == old and second.read_bytes() == b'{"other": 1}'


def test_a_missing_config_file_is_created_with_mode_0600(run: Run, published: Publish, tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "config.json"
    result = _deploy(run, path, "--json")
    assert result.status == 0, result.stderr
    assert json.loads(result.stdout)["created"] is True
    assert json.loads(path.read_text()) == {"mcpServers": RESOLVED_SERVERS}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _backups(path) == []


@pytest.mark.skipif(sys.platform != "linux", reason="checks the Linux default path")
def test_the_default_path_is_the_clients_place_on_this_platform(
    run: Run, published: Publish, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    result = run("deploy", "--client", "claude-desktop", "--profile", "default", "--resolve-env")
    assert result.status == 0, result.stderr
    path = tmp_path / "user" / ".config" / "Claude" / "claude_desktop_config.json"
    assert json.loads(path.read_text())["mcpServers"] == RESOLVED_SERVERS


def test_dry_run_prints_a_masked_diff_and_writes_nothing(
    run: Run, published: Publish, client_file: Path, state_file: Path
) -> None:
    old = client_file.read_bytes()
    result = _deploy(run, client_file, "--dry-run")
    assert result.status == 0, result.stderr
    assert f"--- {client_file} (current)" in result.stdout
    assert '-      "command": "old-fs"' in result.stdout
    assert '+      "command": "npx"' in result.stdout
    assert '+        "T": "${env:GITHUB_TOKEN}"' in result.stdout  # the resolved value is shown as its placeholder
    assert "nothing was written" in result.stdout
    assert SECRET not in result.stdout
    assert client_file.read_bytes() == old
    assert _backups(client_file) == []


@pytest.mark.parametrize(
    "content",
    [b"[1, 2]", b'"text"', b"{not json", b'{"mcpServers": ["fs"]}', b'{"a": 1, "a": 2}'],
)
def test_an_existing_file_that_is_not_a_config_object_is_refused(
    run: Run, published: Publish, client_file: Path, content: bytes
) -> None:
    client_file.write_bytes(content)
    result = _deploy(run, client_file, "--json")
    assert result.status == ExitCode.USAGE
    assert json.loads(result.stderr)["error"]["code"] == "validation"
    assert client_file.read_bytes() == content and _backups(client_file) == []


def _flip_byte(path: Path) -> None:
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("target", ["HEAD", "artifact"])
def test_a_tampered_index_is_refused_and_nothing_is_written(
    run: Run, published: Publish, initialised: Path, client_file: Path, state_file: Path, target: str
) -> None:
    artifact = json.loads(published(PROFILE_B).stdout)["artifact"]
    index = Repository(initialised / "storage")
    _flip_byte(index.layout.head_path if target == "HEAD" else index.objects.path_for(artifact))
    old = client_file.read_bytes()
    for extra in ((), ("--dry-run",)):
        result = _deploy(run, client_file, "--json", *extra)
        assert result.status == ExitCode.VERIFICATION, result.stderr
        assert json.loads(result.stderr)["error"]["code"] in {"integrity", "signature"}
    assert client_file.read_bytes() == old and _backups(client_file) == []


def test_a_replayed_store_is_refused_by_the_host_state(
    run: Run, published: Publish, initialised: Path, client_file: Path, state_file: Path
) -> None:
    storage = initialised / "storage"
    saved = initialised.parent / "saved-storage"
    shutil.copytree(storage, saved)  # index version 2, its guard and its checkpoint
    published(PROFILE_B)
    assert _deploy(run, client_file).status == 0
    state = json.loads(state_file.read_text())["stores"]
    assert [record["index_version"] for record in state.values()] == [3]
    deployed = client_file.read_bytes()

    shutil.rmtree(storage)
    shutil.copytree(saved, storage)  # the whole store rewound, rollback guard included
    assert json.loads(run("verify", "--json").stderr)["error"]["code"] == "rollback"  # the host remembers
    for extra in ((), ("--dry-run",)):
        result = _deploy(run, client_file, "--json", *extra)
        assert result.status == ExitCode.VERIFICATION, result.stderr
        error = json.loads(result.stderr)["error"]
        assert error["code"] == "rollback" and "version 2" in error["message"]
    assert client_file.read_bytes() == deployed and len(_backups(client_file)) == 1


def test_a_damaged_host_state_is_refused(run: Run, published: Publish, client_file: Path, state_file: Path) -> None:
    state_file.write_text('{"format": 1, "stores": {"x": {"index_version": "9"}}}')
    old = client_file.read_bytes()
    result = _deploy(run, client_file, "--json")
    assert result.status == ExitCode.VERIFICATION
    assert json.loads(result.stderr)["error"]["code"] == "rollback"
    assert client_file.read_bytes() == old


def test_expect_key_refuses_another_root(run: Run, published: Publish, client_file: Path) -> None:
    old = client_file.read_bytes()
    result = _deploy(run, client_file, "--expect-key", "SHA256:" + "0" * 64, "--json")
    assert result.status == ExitCode.KEY
    assert json.loads(result.stderr)["error"]["code"] == "key_untrusted"
    assert client_file.read_bytes() == old


def test_claude_desktop_gets_no_placeholder_it_would_pass_on_literally(
    run: Run, published: Publish, client_file: Path, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = client_file.read_bytes()
    argv = ("deploy", "--client", "claude-desktop", "--profile", "default", "--config-path", str(client_file))
    refused = run(*argv, "--json")
    assert refused.status == ExitCode.USAGE
    error = json.loads(refused.stderr)["error"]
    assert error["code"] == "validation" and "GITHUB_TOKEN" in error["message"] and "--resolve-env" in error["hint"]
    monkeypatch.delenv("GITHUB_TOKEN")
    missing = run(*argv, "--resolve-env", "--json")
    assert missing.status == ExitCode.USAGE
    assert "GITHUB_TOKEN not set" in json.loads(missing.stderr)["error"]["message"]
    assert client_file.read_bytes() == old and _backups(client_file) == []


def test_a_file_that_receives_resolved_values_is_narrowed_to_0600(
    run: Run, published: Publish, client_file: Path
) -> None:
    client_file.chmod(0o644)
    result = _deploy(run, client_file, "--json")
    assert result.status == 0, result.stderr
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
    (backup,) = _backups(client_file)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # the old file held EXISTING's token too


def test_a_client_that_expands_placeholders_keeps_them(run: Run, published: Publish, tmp_path: Path) -> None:
    published(PROFILE, client="cursor")
    path = tmp_path / "mcp.json"
    result = _deploy(run, path, "--json", "--resolve-env", client="cursor")
    assert result.status == 0, result.stderr
    assert json.loads(result.stdout)["resolved_env"] == []
    assert json.loads(path.read_text())["mcpServers"]["github"]["env"]["T"] == PLACEHOLDER


def test_an_input_placeholder_only_vscode_can_ask_for_is_refused_elsewhere(
    run: Run, published: Publish, tmp_path: Path
) -> None:
    asks = {"mcpServers": {"db": {"command": "db-mcp", "env": {"PASSWORD": "${input:db-password}"}}}}
    published(asks, client="cursor")
    path = tmp_path / "mcp.json"
    result = _deploy(run, path, "--json", "--resolve-env", client="cursor")
    assert result.status == ExitCode.USAGE
    assert "${input:" in json.loads(result.stderr)["error"]["message"]
    assert not path.exists()
    published(asks, client="vscode")
    assert _deploy(run, path, client="vscode").status == 0
    assert json.loads(path.read_text())["servers"]["db"]["env"]["PASSWORD"] == "${input:db-password}"


@pytest.mark.parametrize("value", ["12345", 'abc"defghijklmn', "pässwörd-geheim", "x"])
def test_resolved_values_never_reach_any_output(
    run: Run, published: Publish, client_file: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Short values, quotes and non-ASCII text, in args as in env: the diff shows the placeholder instead."""
    in_args = {"mcpServers": {"pin": {"command": "pin-mcp", "args": ["--pin=${env:PIN}"], "env": {"P": "${env:PIN}"}}}}
    published(in_args)
    monkeypatch.setenv("PIN", value)
    encodings = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    assert '"--pin=${env:PIN}"' in _deploy(run, client_file, "--dry-run").stdout
    for extra in (("--dry-run",), ("--dry-run", "--json"), ("--json",), ("--json",)):
        result = _deploy(run, client_file, *extra)
        assert result.status == 0, result.stderr
        shown = result.stdout + result.stderr
        assert not [e for e in encodings if f"--pin={e}" in shown or f'"{e}"' in shown], shown
    assert json.loads(client_file.read_text())["mcpServers"]["pin"]["args"] == [f"--pin={value}"]


def test_a_placeholder_in_a_name_is_refused(
    run: Run, published: Publish, client_file: Path, home: Path, key_file: Path
) -> None:
    """Publish refuses it; deploy refuses it too in a store an earlier release wrote unchecked."""
    payload = {"mcpServers": {"k": {"command": "k-mcp", "env": {"${env:KEYNAME}": "v"}}}}
    with pytest.raises(AssertionError, match="validation"):
        published(payload)
    key = keys.parse_private_key(key_file.read_bytes(), None, origin="test")
    Repository(home / "storage").publish(key, [ProfileUpdate("claude-desktop", "default", payload)])
    old = client_file.read_bytes()
    result = _deploy(run, client_file, "--json")
    assert result.status == ExitCode.USAGE
    assert "placeholders belong in values" in json.loads(result.stderr)["error"]["message"]
    assert client_file.read_bytes() == old


def test_an_unchanged_file_holding_resolved_values_is_still_narrowed(
    run: Run, published: Publish, client_file: Path
) -> None:
    assert _deploy(run, client_file).status == 0
    client_file.chmod(0o644)
    again = _deploy(run, client_file, "--json")
    assert again.status == 0 and json.loads(again.stdout)["changed"] is False
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600


def test_setid_sticky_and_world_write_bits_are_never_carried_over(published: Publish, client_file: Path) -> None:
    published(PROFILE_B)
    client_file.chmod(0o4777)
    result = deploy(App(load_settings()), "claude-desktop", "default", config_path=client_file)
    assert result.backup is not None
    for path in (client_file, Path(result.backup)):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o775, oct(mode)  # group-write kept; no S_ISUID, S_ISGID, S_ISVTX or o+w


def test_deploys_in_the_same_second_each_get_a_backup(published: Publish, client_file: Path) -> None:
    published(PROFILE_B)
    app = App(load_settings())
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    contents = [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    backups = []
    for content in contents:
        client_file.write_bytes(content)
        result = deploy(app, "claude-desktop", "default", config_path=client_file, now=when)
        assert result.backup is not None
        backups.append(Path(result.backup))
    assert len(set(backups)) == 3 and _backups(client_file) == sorted(backups)
    assert [backup.read_bytes() for backup in backups] == contents


def test_a_fifo_at_the_config_path_is_refused_and_nothing_is_written(published: Publish, tmp_path: Path) -> None:
    path = tmp_path / "client.json"
    os.mkfifo(path, 0o600)
    with pytest.raises(ValidationError, match="not a regular file"):
        deploy(App(load_settings()), "claude-desktop", "default", config_path=path, resolve_env=True)
    assert stat.S_ISFIFO(path.lstat().st_mode) and _backups(path) == []
