"""Child processes for the crash and concurrency tests, and the helpers that run them.

Run as ``python crash_driver.py MODE ...``:

``publish``
    Publish distinct configs through the library, round robin over ``--target CLIENT/PROFILE``,
    forever or ``--count`` times (``--wait``: only after a line arrives on stdin). After each
    publish has returned, one JSON line (client, profile, artifact, index_version, changed) is
    printed and flushed: that line is the acknowledgement, so every acknowledged publish had
    completed before the parent could see it.
``cli ARGV...``
    Import everything and read the command's key files, print ``ready``, wait for a line on
    stdin, then run ``mcp-orchestration ARGV...`` in this process, printing ``locked`` when the
    command takes the store lock and ``done STATUS`` at the end. A kill can so be timed against
    the command's own work rather than interpreter start-up.
``batch JSON``
    Run a JSON list of command lines through ``mcp-orchestration`` one after the other in this
    one process; print a JSON list of their exit statuses and outputs.
``read``
    Verify the store and list its profiles in a loop until a line arrives on stdin; print
    ``ok ROUNDS`` (or ``error CODE MESSAGE`` and exit 1 at the first failure).

``publish``, ``cli`` and ``read`` print ``ready`` once set up. The parent-side helpers are at the
end of this module. Key files are only ever passed by path; nothing here holds key material.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp_orchestration import cli
from mcp_orchestration.app import (
    operations,
    rotation,  # noqa: F401 (rotation: imported before "ready")
)
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.core.errors import OrchestrationError
from mcp_orchestration.store.repository import Repository
from mcp_orchestration.trust import key_sources
from mcp_orchestration.trust.key_sources import KeySpec


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _publish(args: argparse.Namespace) -> int:
    app = App(load_settings(home=args.home, key_file=args.key_file))
    targets = [target.split("/", 1) for target in args.target]
    _say("ready")
    if args.wait and not sys.stdin.readline():
        return 1  # the parent went away without saying go
    number = 0
    while args.count is None or number < args.count:
        client, profile = targets[number % len(targets)]
        payload = {"mcpServers": {"worker": {"command": "serve", "args": [args.tag, str(number)]}}}
        result = operations.publish(
            app,
            client=client,
            profile=profile,
            data=json.dumps(payload).encode(),
            source="crash-driver",
            changelog=f"{args.tag} #{number}",
        )
        _say(json.dumps({k: result[k] for k in ("client", "profile", "artifact", "index_version", "changed")}))
        number += 1
    return 0


def _cli(argv: list[str]) -> int:
    # Load the command's keys once before "ready" too: the first load of a key file is slow
    # (the redactor learns it), and the kill should be timed against the command's own work.
    for flag, value in itertools.pairwise(argv):
        if flag in ("--key-file", "--new-key-file"):
            key_sources.load_signing_key(KeySpec("file", Path(value), None))
    # Say when the command takes the store lock, so the parent can time its kill from there.
    write_lock = Repository.write_lock

    @contextlib.contextmanager
    def announced_lock(index: Repository) -> Iterator[None]:
        with write_lock(index):
            _say("locked")
            yield

    Repository.write_lock = announced_lock  # type: ignore[method-assign, assignment]
    _say("ready")
    if not sys.stdin.readline():
        return 1  # the parent went away without saying go
    status = cli.main(argv)
    _say(f"done {int(status)}")
    return int(status)


def _batch(commands: list[list[str]]) -> int:
    results = []
    for argv in commands:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main(argv)
        results.append({"status": int(status), "stdout": out.getvalue(), "stderr": err.getvalue()})
    sys.stdout.write(json.dumps(results))
    return 0


def _read(args: argparse.Namespace) -> int:
    app = App(load_settings(home=args.home))
    _say("ready")
    rounds = 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        try:
            operations.verify(app, False)
            app.index.list_profiles()
        except OrchestrationError as error:
            _say(f"error {error.code} {error.message}")
            return 1
        rounds += 1
    _say(f"ok {rounds}")
    return 0


def main() -> int:
    if sys.argv[1:2] == ["cli"]:
        return _cli(sys.argv[2:])
    if sys.argv[1:2] == ["batch"]:
        return _batch(json.loads(sys.argv[2]))
    parser = argparse.ArgumentParser()
    modes = parser.add_subparsers(dest="mode", required=True)
    publish = modes.add_parser("publish")
    publish.add_argument("--home", type=Path, required=True)
    publish.add_argument("--key-file", type=Path, required=True)
    publish.add_argument("--target", action="append", required=True, help="CLIENT/PROFILE (repeatable)")
    publish.add_argument("--tag", required=True, help="makes this process's payloads distinct")
    publish.add_argument("--count", type=int)
    publish.add_argument("--wait", action="store_true", help="wait for a line on stdin before publishing")
    read = modes.add_parser("read")
    read.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    return _publish(args) if args.mode == "publish" else _read(args)


# -- parent side: used by the tests to run this module ----------------------------------------

DRIVER = Path(__file__).resolve()


def child_env(home: Path) -> dict[str, str]:
    """An explicit environment for a child: this one, pointed at ``home``, with no keyring."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MCP_ORCHESTRATION_")}
    env["MCP_ORCHESTRATION_HOME"] = str(home)
    # The host state of the test (tests/conftest.py), so the test's own reads share what the children pinned.
    env["MCP_ORCHESTRATION_HOST_STATE"] = os.environ.get(
        "MCP_ORCHESTRATION_HOST_STATE", str(home.parent / f"{home.name}-host-state.json")
    )
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return env


_children: list[subprocess.Popen[str]] = []


def spawn(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start this module with ``argv``; it is ready once :func:`wait_ready` returns."""
    child = subprocess.Popen(
        [sys.executable, str(DRIVER), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _children.append(child)
    return child


def kill_leftovers() -> None:
    """Kill and reap every child started here that still runs (a failed test leaves some behind)."""
    while _children:
        child = _children.pop()
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        for pipe in (child.stdin, child.stdout, child.stderr):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]


def wait_ready(child: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Wait until ``child`` says ``ready``."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if line != "ready\n":
        child.kill()
        _, err = child.communicate(timeout=30)
        raise AssertionError(f"the driver did not start: {line!r} {err}")
    return child


def start(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start this module with ``argv`` and wait until it says ``ready``."""
    return wait_ready(spawn(*argv, env=env))


def sigkill(child: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGKILL ``child`` (unless it already exited), reap it and return what it printed since last read."""
    child.send_signal(signal.SIGKILL)
    # Not communicate(): it reads the raw pipes and would miss lines already buffered by readline().
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout.read(), child.stderr.read()
    child.wait(timeout=30)
    return out, err


def finish(child: subprocess.Popen[str], line: str | None = None) -> tuple[str, str]:
    """Optionally send ``line``, close stdin, and wait for ``child`` to exit; return what it printed since."""
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    if line is not None:
        child.stdin.write(line)
    child.stdin.close()
    out, err = child.stdout.read(), child.stderr.read()
    child.wait(timeout=120)
    return out, err


def generate_key(path: Path, env: dict[str, str]) -> str:
    """A new key file made by ``keys generate`` in a child process; returns its key id.

    Keys are made (and stores initialised) in children: every key the test process itself
    loads makes the process-wide redactor, and so every later key load, slower.
    """
    (made,) = run_cli_batch([["keys", "generate", "--json", "--out", str(path)]], env)
    assert made["status"] == 0, made["stderr"]
    fingerprint: str = json.loads(made["stdout"])["fingerprint"]
    return fingerprint.removeprefix("SHA256:")


def run_cli_batch(commands: list[list[str]], env: dict[str, str]) -> list[dict[str, Any]]:
    """Run several ``mcp-orchestration`` commands in one fresh process: status, stdout, stderr of each."""
    done = subprocess.run(
        [sys.executable, str(DRIVER), "batch", json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def acknowledgements(stdout: str) -> list[dict[str, Any]]:
    """The complete acknowledgement lines a publisher printed (a line cut by a kill is no ack)."""
    return [
        json.loads(line) for line in stdout.splitlines(keepends=True) if line.startswith("{") and line.endswith("\n")
    ]


if __name__ == "__main__":
    sys.exit(main())
