"""Every file the product reads, planted with what must never be followed, waited on or read without end.

At each path a store, key or config read touches, the test plants in turn a
link to ``/dev/zero`` (read whole, it never ends), a FIFO (opened, it blocks
until a writer comes), a link to a regular file outside the store, and a file
over the read's bound (sparse: its size is all that matters). Each command runs
in a subprocess with a time limit and an address-space limit, so a hang or an
unbounded read fails the test instead of blocking or exhausting the machine.
Store paths refuse a link outright; an operator's own path (key, passphrase,
--file, --public-key, --config-path, the catalog) follows one to a regular file.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.app.operations import MAX_PUBLIC_KEY_FILE_BYTES
from mcp_orchestration.app.telemetry import EVENTS_FILE
from mcp_orchestration.config.payload import MAX_PAYLOAD_BYTES
from mcp_orchestration.server.app import ERROR_META_KEY
from mcp_orchestration.store.cas import MAX_OBJECT_BYTES
from mcp_orchestration.store.keyhistory import MAX_VERSION_BYTES
from mcp_orchestration.trust.keys import MAX_SECRET_FILE_BYTES
from tests.conftest import PASSPHRASE, SAMPLE_CONFIG, write_key
from tests.conftest import Run as CliRun

TIMEOUT = 20.0
ADDRESS_SPACE = 2 << 30  # far above what a command needs; far below "read /dev/zero until the OOM killer comes"
MAX_RSS = 300 << 20  # a command's peak; one that read /dev/zero until the address-space limit is far above
KINDS = ("dev_zero", "fifo", "outside", "oversize")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes: the highest VmHWM seen while it ran (wait4's ru_maxrss would count the forking parent)


def _high_water(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def run_bounded(*argv: str) -> Run:
    """The command in a subprocess, killed after ``TIMEOUT`` (the test fails), with its peak memory."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_orchestration", *argv],
            stdout=out,
            stderr=err,
            preexec_fn=_limit_memory,  # noqa: PLW1509 - only setrlimit, which is async-signal-safe
        )
        deadline = time.monotonic() + TIMEOUT
        peak = 0
        while process.poll() is None:
            peak = max(peak, _high_water(process.pid))
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(f"{argv} did not finish within {TIMEOUT} s")
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return Run(process.returncode, out.read().decode(), err.read().decode(), peak)


def _cli(*argv: str) -> tuple[int, dict[str, Any] | None]:
    """Run the command; its exit status and its --json error (None on success). It must stay small."""
    result = run_bounded(*argv, "--json")
    assert result.peak_rss < MAX_RSS, result.peak_rss
    if result.status == 0:
        return 0, None
    document = json.loads(result.stderr.strip().splitlines()[-1] if not result.stdout.strip() else result.stdout)
    return result.status, document.get("error", document)


def plant(kind: str, path: Path, limit: int, outside: Path) -> None:
    """Put ``kind`` at ``path`` in place of what is there (a regular file whose bytes are kept for ``outside``)."""
    original = path.read_bytes() if path.is_file() else b""
    path.unlink(missing_ok=True)
    if kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "outside":
        outside.mkdir(exist_ok=True)
        target = outside / path.name
        target.write_bytes(original)
        target.chmod(0o600)
        path.symlink_to(target)
    else:
        with path.open("wb") as handle:
            handle.truncate(limit + 1)
        path.chmod(0o600)


@dataclass(frozen=True)
class Target:
    """A path the product reads, how to make a command read it, and what each planted kind must give."""

    path: Callable[[Path, Path], Path]  # (home, tmp_path) -> the path
    limit: int
    argv: Callable[[Path, Path, Path], tuple[str, ...]]  # (home, key_file, tmp_path) -> the command
    outcomes: dict[str, tuple[int, str | None]]


def _storage(home: Path) -> Path:
    return home / "storage"


def _artifact(home: Path) -> Path:
    artifact = str(json.loads((home.parent / "artifact.json").read_text()))
    return _storage(home) / "objects" / "sha256" / artifact[:2] / artifact[2:]


def _refused(status: int, code: str) -> dict[str, tuple[int, str | None]]:
    return dict.fromkeys(KINDS, (status, code))


def _operator(status: int, code: str) -> dict[str, tuple[int, str | None]]:
    """An operator's path: a link to a regular file is followed; a FIFO or device is refused; size is bounded."""
    return {"dev_zero": (status, code), "fifo": (status, code), "outside": (0, None), "oversize": (2, "limit")}


GET = ("get", "--client", "claude-desktop", "--profile", "default")
TARGETS: dict[str, Target] = {
    "index/HEAD": Target(
        lambda home, _: _storage(home) / "index" / "HEAD",
        MAX_OBJECT_BYTES,
        lambda *_: ("verify",),
        _refused(3, "integrity"),
    ),
    "index/verified": Target(  # the checkpoint: anything unsafe there counts as none, and verify goes on
        lambda home, _: _storage(home) / "index" / "verified",
        128,
        lambda *_: ("verify",),
        dict.fromkeys(KINDS, (0, None)),
    ),
    "keys/00000001.json": Target(
        lambda home, _: _storage(home) / "keys" / "00000001.json",
        MAX_VERSION_BYTES,
        lambda *_: ("verify",),
        _refused(3, "key_history"),
    ),
    "an object": Target(lambda home, _: _artifact(home), MAX_OBJECT_BYTES, lambda *_: GET, _refused(3, "integrity")),
    "the key file": Target(
        lambda _, tmp: tmp / "signing_key",
        MAX_SECRET_FILE_BYTES,
        lambda _, key, __: ("keys", "fingerprint", "--key-file", str(key)),
        {**_operator(4, "key_unreadable"), "oversize": (4, "key_unreadable")},
    ),
    "the passphrase file": Target(
        lambda _, tmp: tmp / "passphrase",
        MAX_SECRET_FILE_BYTES,
        lambda _, __, tmp: (
            "keys",
            "fingerprint",
            "--key-file",
            str(tmp / "encrypted_key"),
            "--passphrase-file",
            str(tmp / "passphrase"),
        ),
        {**_operator(4, "key_unreadable"), "oversize": (4, "key_unreadable")},
    ),
    "deploy --config-path": Target(
        lambda _, tmp: tmp / "client" / "claude_desktop_config.json",
        MAX_PAYLOAD_BYTES,
        lambda _, __, tmp: (
            "deploy",
            "--client",
            "claude-desktop",
            "--profile",
            "default",
            "--config-path",
            str(tmp / "client" / "claude_desktop_config.json"),
        ),
        _operator(2, "validation"),
    ),
    "publish --file": Target(
        lambda _, tmp: tmp / "input.json",
        MAX_PAYLOAD_BYTES,
        lambda _, key, tmp: (
            "publish",
            "--client",
            "cursor",
            "--profile",
            "default",
            "--file",
            str(tmp / "input.json"),
            "--key-file",
            str(key),
        ),
        _operator(2, "usage"),
    ),
    "keys fingerprint --public-key": Target(
        lambda _, tmp: tmp / "public.pem",
        MAX_PUBLIC_KEY_FILE_BYTES,
        lambda _, __, tmp: ("keys", "fingerprint", "--public-key", str(tmp / "public.pem")),
        _operator(2, "usage"),
    ),
}


@pytest.fixture
def store(run: CliRun, initialised: Path, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised store with one published profile, a verified checkpoint and every operator file in place."""
    source = _write_json(tmp_path / "input.json", SAMPLE_CONFIG)
    published = run("publish", *GET[1:], "--file", source, "--key-file", str(key_file), "--json")
    assert published.status == 0, published.stderr
    (tmp_path / "artifact.json").write_text(json.dumps(published.json()["artifact"]))
    assert run("verify", "--json").status == 0  # writes index/verified
    write_key(tmp_path / "encrypted_key", passphrase=PASSPHRASE)
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    (tmp_path / "passphrase").chmod(0o600)
    (tmp_path / "client").mkdir()
    _write_json(tmp_path / "client" / "claude_desktop_config.json", {"mcpServers": {}})
    (tmp_path / "public.pem").write_text(run("keys", "export-public").stdout)
    return initialised


def _write_json(path: Path, value: object) -> str:
    path.write_text(json.dumps(value))
    return str(path)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(TARGETS))
def test_every_read_refuses_what_is_not_a_bounded_regular_file(
    store: Path, key_file: Path, tmp_path: Path, name: str, kind: str
) -> None:
    target = TARGETS[name]
    path = target.path(store, tmp_path)
    plant(kind, path, target.limit, tmp_path / "outside")
    status, error = _cli(*target.argv(store, key_file, tmp_path))
    expected_status, expected_code = target.outcomes[kind]
    assert (status, error and error["code"]) == (expected_status, expected_code), error
    if error is not None and kind in ("fifo", "oversize"):
        assert path.name in error["message"]  # the message names the path (never content)


def test_healthcheck_fails_fast_when_head_is_a_link_to_dev_zero(store: Path) -> None:
    plant("dev_zero", _storage(store) / "index" / "HEAD", MAX_OBJECT_BYTES, store)
    started = time.monotonic()
    result = run_bounded("healthcheck")
    assert result.status == 1 and result.peak_rss < MAX_RSS
    assert time.monotonic() - started < 10


def test_deploy_follows_a_linked_config_file_and_writes_where_it_lives(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "client" / "claude_desktop_config.json"
    plant("outside", path, MAX_PAYLOAD_BYTES, tmp_path / "outside")
    assert _cli(*TARGETS["deploy --config-path"].argv(store, Path(), tmp_path)) == (0, None)
    assert path.is_symlink()
    assert "fs" in json.loads((tmp_path / "outside" / path.name).read_text())["mcpServers"]


# -- the catalog is read by serve, per tool call -------------------------------------------------------------


def _serve_call(env: dict[str, str], tool: str) -> dict[str, Any]:
    """Start ``serve``, initialise, call ``tool`` once; its result (within the time limit)."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {}}},
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_orchestration", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=_limit_memory,  # noqa: PLW1509 - only setrlimit, which is async-signal-safe
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
        process.stdin.flush()
        deadline = time.monotonic() + 10  # under the server's own 20 s tool time limit
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "serve closed stdout"
            message = json.loads(line)
            if message.get("id") == 2:
                result: dict[str, Any] = message["result"]
                return result
        raise AssertionError("no answer in time")
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("kind", "code"), [("dev_zero", "validation"), ("fifo", "validation"), ("outside", None), ("oversize", "limit")]
)
def test_the_operator_catalog_file_is_read_safely(
    store: Path, key_file: Path, tmp_path: Path, kind: str, code: str | None
) -> None:
    path = tmp_path / "catalog.json"
    _write_json(path, {"servers": []})
    plant(kind, path, MAX_PAYLOAD_BYTES, tmp_path / "outside")
    env = {
        **os.environ,
        "MCP_ORCHESTRATION_CATALOG_FILE": str(path),
        "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file),
    }
    started = time.monotonic()
    result = _serve_call(env, "list_available_servers")
    assert time.monotonic() - started < 15
    if code is None:
        assert not result.get("isError"), result
    else:
        assert result["isError"] is True and result["_meta"][ERROR_META_KEY]["code"] == code, result


def test_a_restore_from_a_fifo_or_a_device_is_refused_without_waiting(store: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "archive.tar"
    os.mkfifo(fifo, 0o600)
    device = tmp_path / "zero.tar"
    device.symlink_to("/dev/zero")
    for source in (fifo, device):
        status, error = _cli("restore", "--from", str(source), "--force")
        assert (status, error and error["code"]) == (2, "usage"), error


def test_a_fifo_at_the_telemetry_file_does_not_hang_a_command(store: Path) -> None:
    events = store / "telemetry" / EVENTS_FILE
    events.parent.mkdir(exist_ok=True)
    events.unlink(missing_ok=True)
    os.mkfifo(events, 0o600)
    assert _cli("verify") == (0, None)  # the event is not recorded (a warning says so); the command goes on
