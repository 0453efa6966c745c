"""Shared fixtures: keys and stores are made at run time, never committed."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from mcp_orchestration import cli
from mcp_orchestration.app.environment import ENV_PREFIX
from mcp_orchestration.trust import keys
from tests.oidc_issuer import Issuer, serve_issuer

PASSPHRASE = "correct horse battery staple"
SAMPLE_CONFIG = {
    "mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]}}
}


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Run(Protocol):
    """The ``run`` fixture: the CLI in-process, with its exit status and output."""

    def __call__(self, *argv: str) -> Result: ...


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's real store, keys or keyring."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MCP_ORCHESTRATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MCP_ORCHESTRATION_HOST_STATE", str(tmp_path / "host-state" / "host-state.json"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    yield


def write_key(path: Path, fmt: keys.KeyFormat = "pkcs8", passphrase: str | None = None) -> keys.SigningKey:
    """Generate a key and write it as a secret file would arrive (mode 0600)."""
    key = keys.generate()
    path.write_bytes(key.serialize(fmt, passphrase.encode() if passphrase else None))
    path.chmod(0o600)
    return key


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "signing_key"
    write_key(path)
    return path


@pytest.fixture
def next_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "signing_key_next"
    write_key(path)
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SAMPLE_CONFIG))
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI in-process and capture its exit status and output."""

    def _run(*argv: str) -> Result:
        status = cli.main(list(argv))
        captured = capsys.readouterr()
        return Result(int(status), captured.out, captured.err)

    return _run


@pytest.fixture
def initialised(run: Run, key_file: Path, home: Path) -> Path:
    """A store initialised with ``key_file``; returns the home."""
    result = run("init", "--key-file", str(key_file))
    assert result.status == 0, result.stderr
    return home


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    """A real OAuth issuer on loopback (``tests/oidc_issuer.py``): the tokens ``serve --http --issuer`` accepts."""
    yield from serve_issuer()


def run_process(*argv: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the real console command in a subprocess (for crash, concurrency and leak tests)."""
    return subprocess.run(
        [sys.executable, "-m", "mcp_orchestration", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        **kwargs,
    )


def is_locked(path: Path) -> bool:
    """Whether someone holds an exclusive lock on the file now at ``path``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
