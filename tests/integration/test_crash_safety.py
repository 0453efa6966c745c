"""Crash safety: a writer killed at any point leaves a store that verifies and keeps every acknowledged write.

Random SIGKILLs hit real child processes (a publisher looping through the library, and
``keys rotate``); deterministic crash points raise inside the process at a chosen step. After
every crash the store must pass ``verify --deep`` and the interrupted operation must be able to
finish. Keys are generated per run, by ``keys generate``.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.app.operations import App, profile_history
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.core import fsutil
from mcp_orchestration.core.errors import NotFoundError
from mcp_orchestration.store import keyhistory as keyhistory_module
from mcp_orchestration.store import repository as repository_module
from mcp_orchestration.store.repository import Repository
from tests.conftest import Result, run_process
from tests.integration.crash_driver import (
    acknowledgements,
    child_env,
    generate_key,
    run_cli_batch,
    sigkill,
    spawn,
    wait_ready,
)

pytestmark = pytest.mark.slow


TARGETS = ("cursor/main", "cursor/canary", "vscode/main")  # publish accepts known clients only
PUBLISH_KILLS = 50
# A publish takes a few milliseconds (the first one in a process, which also loads the key, a few
# more). Most kills come after the first acknowledgement, some during the first publish; a random
# delay of up to this many seconds spreads them over every phase of the next publishes.
PUBLISH_KILL_WINDOW = 0.05
STEADY_STATE_SHARE = 0.8
WARM_ROTATION_KILLS = 24
COLD_ROTATION_KILLS = 6
VERSION_BEFORE_ROTATION = 3  # init, then two publishes


class SimulatedCrash(BaseException):
    """Stands for the process dying at this point: nothing in the product catches it."""


def accepted_version(index: Repository) -> int:
    """The index version the rollback guard has accepted (the store is initialised)."""
    guard = index.guard()
    assert guard is not None, "no rollback guard: the store is not initialised"
    return guard.index_version


def storage_temps(home: Path) -> set[Path]:
    return set((home / "storage").rglob(f"{fsutil._TEMP_PREFIX}*"))


def verify_deep(run: Any, home: Path) -> dict[str, Any]:
    # These tests check what a crash leaves, not whose store it is: the pin is the store's own root.
    root = Repository(home / "storage").load_history().root_fingerprint
    result: Result = run("verify", "--deep", "--json", "--home", str(home), "--expect-key", root)
    assert result.status == 0, result.stderr
    report = result.json()
    assert isinstance(report, dict)
    return report


def published_entries(home: Path) -> list[tuple[str, str, str, int]]:
    """(client, profile, artifact, index version) of every entry of every target profile."""
    app = App(load_settings(home=home))
    entries = []
    for target in TARGETS:
        client, profile = target.split("/")
        try:
            versions = profile_history(app, client, profile)["versions"]
        except NotFoundError:
            continue
        entries += [(client, profile, v["artifact"], v["index_version"]) for v in versions]
    return entries


# -- random SIGKILLs of a publisher ------------------------------------------------------


def test_sigkill_during_publish_keeps_every_acknowledged_publish_and_a_verifiable_store(
    tmp_path: Path, run: Any
) -> None:
    home, key_file = tmp_path / "home", tmp_path / "signing_key"
    env = child_env(home)
    generate_key(key_file, env)
    assert run_process("init", "--home", str(home), "--key-file", str(key_file), env=env).returncode == 0
    rng = random.Random(20240917)  # noqa: S311 (seeded kill timing, not cryptography)
    acknowledged: list[dict[str, Any]] = []
    landed: Counter[str] = Counter()
    head_version = verify_deep(run, home)["index_version"]

    targets = [arg for target in TARGETS for arg in ("--target", target)]

    def publisher(number: int) -> subprocess.Popen[str]:
        """A publisher that starts up now and publishes once told to."""
        args = ["--home", str(home), "--key-file", str(key_file), *targets, "--tag", f"run-{number}", "--wait"]
        return spawn("publish", *args, env=env)

    upcoming = publisher(0)
    for kill in range(PUBLISH_KILLS):
        child = wait_ready(upcoming)
        assert child.stdin is not None
        temps_before = storage_temps(home)
        child.stdin.write("go\n")
        child.stdin.flush()
        first = ""
        if rng.random() < STEADY_STATE_SHARE:
            assert child.stdout is not None
            first = child.stdout.readline()  # the first acknowledgement: the key is loaded, publishing runs
        time.sleep(rng.uniform(0, PUBLISH_KILL_WINDOW))
        out, err = sigkill(child)
        out = first + out
        assert child.returncode == -9, f"the publisher failed on its own: {err}"
        if kill + 1 < PUBLISH_KILLS:  # its start-up overlaps the checks below; it waits to publish
            upcoming = publisher(kill + 1)
        acks = acknowledgements(out)
        assert all(ack["changed"] for ack in acks)
        acknowledged += acks

        report = verify_deep(run, home)
        entries = published_entries(home)
        present = set(entries)
        missing = [
            ack
            for ack in acknowledged
            if (ack["client"], ack["profile"], ack["artifact"], ack["index_version"]) not in present
        ]
        assert missing == [], f"kill {kill} lost acknowledged publishes"
        # Every version after init changed exactly one profile: versions 2..N, each once, none lost.
        assert sorted(e[3] for e in entries) == list(range(2, report["index_version"] + 1))

        last_acked = max([head_version, *(ack["index_version"] for ack in acks)])
        committed = report["index_version"] > last_acked
        mid_write = bool(storage_temps(home) - temps_before)
        if committed:
            landed["after the new head, before the acknowledgement"] += 1
        if mid_write:
            landed["inside a file write (a temporary file was left)"] += 1
        if not committed and not mid_write:
            landed["elsewhere (signing, hashing, between writes)"] += 1
        head_version = report["index_version"]

    assert len(acknowledged) >= PUBLISH_KILLS // 2, "too few publishes completed to mean anything"
    assert len(landed) >= 2, f"every kill landed in the same phase: {landed}"
    final = run_process("verify", "--deep", "--json", "--home", str(home), env=env)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["index_version"] == head_version


# -- random SIGKILLs of `keys rotate` -----------------------------------------------------

NOT_STARTED = "not started"
HISTORY_ONLY = "key history written, index not re-signed"
HEAD_NOT_ACCEPTED = "index re-signed, accepted version not written"
COMPLETE = "complete"


@dataclass
class RotationSetup:
    """A pair of keys and a small store signed by the first, copied afresh for every crash."""

    old_path: Path
    new_path: Path
    old: str  # key ids
    new: str
    config: Path
    template: Path

    def fresh_store(self, home: Path) -> Path:
        shutil.copytree(self.template, home)
        return home

    def rotate_argv(self, home: Path) -> list[str]:
        keys = ["--key-file", str(self.old_path), "--new-key-file", str(self.new_path)]
        return ["keys", "rotate", "--json", "--home", str(home), *keys]

    def publish_argv(self, home: Path, key: Path) -> list[str]:
        where = ["--client", "cursor", "--profile", "main", "--file", str(self.config)]
        return ["publish", "--json", "--home", str(home), "--key-file", str(key), *where]

    def state(self, home: Path) -> str:
        """How far the rotation got, read from the store itself."""
        index = Repository(home / "storage")
        history = index.load_history()
        head = index.current_head(history)
        if self.new not in history.keys:
            return NOT_STARTED
        if head.keyid == self.old:
            return HISTORY_ONLY
        if accepted_version(index) < head.head.version:
            return HEAD_NOT_ACCEPTED
        return COMPLETE

    def assert_rotation_finishes(self, run: Any, home: Path, state: str) -> None:
        """The interrupted store verifies; re-running `keys rotate` completes the rotation for good."""
        signed_by_new = state in (HEAD_NOT_ACCEPTED, COMPLETE)
        assert verify_deep(run, home)["keyid"] == (self.new if signed_by_new else self.old)

        # Re-run the rotation, then check the result, in one fresh process (start-up is the slow part).
        home_arg = ["--home", str(home), "--expect-key", f"SHA256:{self.old}"]
        rerun, verified, listed, refused, accepted, verified_again = run_cli_batch(
            [
                self.rotate_argv(home),
                ["verify", "--deep", "--json", *home_arg],
                ["keys", "list", "--json", *home_arg],
                self.publish_argv(home, self.old_path),
                self.publish_argv(home, self.new_path),
                ["verify", "--deep", "--json", *home_arg],
            ],
            child_env(home),
        )
        assert rerun["status"] == 0, rerun["stderr"]
        assert json.loads(rerun["stdout"])["already_done"] is signed_by_new
        assert verified["status"] == 0, verified["stderr"]
        report = json.loads(verified["stdout"])
        assert (report["keyid"], report["index_version"]) == (self.new, VERSION_BEFORE_ROTATION + 1)
        assert listed["status"] == 0, listed["stderr"]
        keys = {k["fingerprint"].removeprefix("SHA256:"): k for k in json.loads(listed["stdout"])["keys"]}
        assert (keys[self.old]["status"], keys[self.old]["last_index"]) == ("retired", VERSION_BEFORE_ROTATION)
        assert (keys[self.new]["status"], keys[self.new]["first_index"]) == ("active", VERSION_BEFORE_ROTATION + 1)
        assert refused["status"] == 4, refused["stderr"]
        assert json.loads(refused["stderr"])["error"]["code"] == "key_retired"
        assert accepted["status"] == 0, accepted["stderr"]
        assert json.loads(accepted["stdout"])["index_version"] == VERSION_BEFORE_ROTATION + 2
        assert verified_again["status"] == 0, verified_again["stderr"]
        assert json.loads(verified_again["stdout"])["keyid"] == self.new


@pytest.fixture(scope="module")
def rotation(tmp_path_factory: pytest.TempPathFactory) -> RotationSetup:
    root = tmp_path_factory.mktemp("rotation")
    template = root / "template"
    env = child_env(template)
    old, new = generate_key(root / "signing_key", env), generate_key(root / "signing_key_next", env)
    commands = [["init", "--home", str(template), "--key-file", str(root / "signing_key")]]
    for number in range(VERSION_BEFORE_ROTATION - 1):
        config = root / f"config-{number}.json"
        config.write_text(json.dumps({"mcpServers": {"fs": {"command": "serve", "args": [str(number)]}}}))
        commands.append(["publish", "--home", str(template), "--key-file", str(root / "signing_key")])
        commands[-1] += ["--client", "cursor", "--profile", "main", "--file", str(config)]
    assert [result["status"] for result in run_cli_batch(commands, env)] == [0] * VERSION_BEFORE_ROTATION
    config = root / "config.json"
    config.write_text(json.dumps({"mcpServers": {"fs": {"command": "serve", "args": ["next"]}}}))
    return RotationSetup(root / "signing_key", root / "signing_key_next", old, new, config, template)


def _spawn_rotation(rotation: RotationSetup, home: Path) -> subprocess.Popen[str]:
    """A child that will run `keys rotate` on ``home`` (see :func:`_run_until_locked`)."""
    return spawn("cli", *rotation.rotate_argv(home), env=child_env(home))


def _run_until_locked(child: subprocess.Popen[str]) -> None:
    """Let the rotation run; return as soon as it holds the store lock."""
    wait_ready(child)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline() == "locked\n"


def _time_warm_rotation(rotation: RotationSetup, home: Path) -> float:
    """Seconds from taking the lock to the end of the command."""
    child = _spawn_rotation(rotation, rotation.fresh_store(home))
    _run_until_locked(child)
    assert child.stdout is not None
    started = time.perf_counter()
    line = child.stdout.readline()
    while line and not line.startswith("done "):  # the command's own output comes first
        line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    sigkill(child)
    assert line == "done 0\n", line
    return elapsed


def _time_cold_rotation(rotation: RotationSetup, home: Path) -> float:
    started = time.perf_counter()
    result = run_process(*rotation.rotate_argv(rotation.fresh_store(home)), env=child_env(home))
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - started


def test_sigkill_during_key_rotation_leaves_a_verifiable_store_that_a_rerun_completes(
    rotation: RotationSetup, tmp_path: Path, run: Any
) -> None:
    rng = random.Random(7311)  # noqa: S311 (seeded kill timing, not cryptography)
    landed: Counter[str] = Counter()
    homes = (tmp_path / f"store-{number:03d}" for number in itertools.count())

    # A child that has already imported everything and read the keys runs the command when told
    # to and says when it holds the store lock: the kill is timed against the rotation itself (a
    # few milliseconds from there), not against start-up.
    window = 1.2 * statistics.median(_time_warm_rotation(rotation, next(homes)) for _ in range(3))
    upcoming = rotation.fresh_store(next(homes))
    upcoming_child = _spawn_rotation(rotation, upcoming)
    for kill in range(WARM_ROTATION_KILLS):
        home, child = upcoming, upcoming_child
        _run_until_locked(child)
        time.sleep(rng.uniform(0, window))
        out, err = sigkill(child)
        assert child.returncode == -9 or (child.returncode == 0 and out.endswith("done 0\n")), err
        if kill + 1 < WARM_ROTATION_KILLS:  # its start-up overlaps the checks below, not a kill
            upcoming = rotation.fresh_store(next(homes))
            upcoming_child = _spawn_rotation(rotation, upcoming)
        state = rotation.state(home)
        landed[state] += 1
        rotation.assert_rotation_finishes(run, home, state)

    # The plain console command too, killed late in its life, where the rotation happens.
    lifetime = statistics.median(_time_cold_rotation(rotation, next(homes)) for _ in range(2))
    for _ in range(COLD_ROTATION_KILLS):
        home = rotation.fresh_store(next(homes))
        with subprocess.Popen(
            [sys.executable, "-m", "mcp_orchestration", *rotation.rotate_argv(home)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(home),
        ) as child:
            time.sleep(rng.uniform(0.6 * lifetime, 1.1 * lifetime))
            _, err = sigkill(child)
        assert child.returncode in (-9, 0), err
        state = rotation.state(home)
        landed[state] += 1
        rotation.assert_rotation_finishes(run, home, state)

    assert len(landed) >= 2, f"every kill left the same state: {landed}"


# -- deterministic crash points ----------------------------------------------------------


def crash_on_write(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, *, partial: bool = False) -> None:
    """Make ``module``'s atomic write of the file called ``name`` die before the rename.

    With ``partial``, the crash leaves a half-written temporary file behind, as a kill would.
    """
    real = module.atomic_write

    def atomic_write(path: Path, data: bytes, *args: Any, **kwargs: Any) -> None:
        if path.name == name:
            if partial:
                (path.parent / f"{fsutil._TEMP_PREFIX}crashed").write_bytes(data[: len(data) // 2])
            raise SimulatedCrash(f"died while writing {name}")
        real(path, data, *args, **kwargs)

    monkeypatch.setattr(module, "atomic_write", atomic_write)


def crash_on_accepted_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Die after ``HEAD`` is renamed in, before the rollback guard's counter is raised."""

    def raise_guard(path: Path, guard: object) -> None:
        raise SimulatedCrash(f"died before raising {path.name} to {guard}")

    monkeypatch.setattr(repository_module, "raise_guard", raise_guard)


def crash_before_head_is_renamed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Die after the new objects and the staged ``HEAD`` are written, before ``HEAD`` replaces the old one."""

    def commit(batch: fsutil.WriteBatch) -> None:
        raise SimulatedCrash("died before committing the write batch")

    monkeypatch.setattr(fsutil.WriteBatch, "commit", commit)


def crash_before_resigning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Die after the new key history is written, before the index is re-signed by the new key."""

    def resign(*args: object) -> None:
        raise SimulatedCrash("died before re-signing the index")

    monkeypatch.setattr(Repository, "resign", resign)


def crash_while_writing_key_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Die half-way through writing the key history entry that names the new key."""
    crash_on_write(monkeypatch, keyhistory_module, "00000002.json", partial=True)


@pytest.mark.parametrize(
    ("crash", "left"),
    [
        pytest.param(crash_while_writing_key_history, NOT_STARTED, id="while-writing-key-history"),
        pytest.param(crash_before_resigning, HISTORY_ONLY, id="after-history-before-resign"),
        pytest.param(crash_before_head_is_renamed_in, HISTORY_ONLY, id="before-new-head-is-current"),
        pytest.param(crash_on_accepted_counter, HEAD_NOT_ACCEPTED, id="after-new-head-before-accepted-version"),
    ],
)
def test_rotation_interrupted_at_a_crash_point_verifies_and_a_rerun_completes_it(
    crash: Callable[[pytest.MonkeyPatch], None],
    left: str,
    rotation: RotationSetup,
    run: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wherever ``keys rotate`` dies, the store is in one named state, verifies, and a rerun finishes the job."""
    home = rotation.fresh_store(tmp_path / "store")
    crash(monkeypatch)
    with pytest.raises(SimulatedCrash):
        run(*rotation.rotate_argv(home))
    monkeypatch.undo()

    assert rotation.state(home) == left
    rotation.assert_rotation_finishes(run, home, left)
    assert accepted_version(Repository(home / "storage")) == VERSION_BEFORE_ROTATION + 2


def test_publish_interrupted_before_head_write_keeps_the_previous_version_and_leaves_no_gap(
    rotation: RotationSetup, run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = rotation.fresh_store(tmp_path / "store")
    crash_before_head_is_renamed_in(monkeypatch)
    with pytest.raises(SimulatedCrash):
        run(*rotation.publish_argv(home, rotation.old_path))
    monkeypatch.undo()

    assert verify_deep(run, home)["index_version"] == VERSION_BEFORE_ROTATION
    history = run("history", "--json", "--home", str(home), "--client", "cursor", "--profile", "main").json()
    assert [v["index_version"] for v in history["versions"]] == list(range(VERSION_BEFORE_ROTATION, 1, -1))

    assert list((home / "storage" / "index").glob(f"{fsutil._TEMP_PREFIX}*")), "the new head was staged"
    again = run_process(*rotation.publish_argv(home, rotation.old_path), env=child_env(home))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["index_version"] == VERSION_BEFORE_ROTATION + 1
    assert not list((home / "storage" / "index").glob(f"{fsutil._TEMP_PREFIX}*")), "the next writer cleans up"
    assert verify_deep(run, home)["heads_checked"] == VERSION_BEFORE_ROTATION + 1


def test_publish_interrupted_after_head_write_is_durable_and_the_next_version_follows_it(
    rotation: RotationSetup, run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = rotation.fresh_store(tmp_path / "store")
    crash_on_accepted_counter(monkeypatch)
    with pytest.raises(SimulatedCrash):
        run(*rotation.publish_argv(home, rotation.old_path))
    monkeypatch.undo()

    assert verify_deep(run, home)["index_version"] == VERSION_BEFORE_ROTATION + 1
    latest = run("get", "--json", "--home", str(home), "--client", "cursor", "--profile", "main").json()
    assert latest["config"] == json.loads(rotation.config.read_text())

    following = rotation.publish_argv(home, rotation.old_path)
    following[following.index("--file") + 1] = str(tmp_path / "next.json")
    (tmp_path / "next.json").write_text(json.dumps({"mcpServers": {}}))
    result = run_process(*following, env=child_env(home))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["index_version"] == VERSION_BEFORE_ROTATION + 2
    assert accepted_version(Repository(home / "storage")) == VERSION_BEFORE_ROTATION + 2
    assert verify_deep(run, home)["heads_checked"] == VERSION_BEFORE_ROTATION + 2
