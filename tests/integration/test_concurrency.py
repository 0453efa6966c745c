"""Concurrency: publishers in separate processes, one store, no lost update and no version twice.

Every write holds the store lock from reading the current version to writing the next, so N
concurrent publishes must come out as index versions 2..N+1 (init is version 1), each exactly
once, every acknowledged one present in its profile's history, and a reader running alongside
must never see a torn or rolled-back store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.app.operations import App, profile_history
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.core.errors import NotFoundError
from mcp_orchestration.store.repository import Repository
from tests.conftest import run_process
from tests.integration.crash_driver import (
    acknowledgements,
    child_env,
    finish,
    generate_key,
    spawn,
    start,
    wait_ready,
)

pytestmark = pytest.mark.slow


WORKERS = 4
PUBLISHES_EACH = 10
TOTAL = WORKERS * PUBLISHES_EACH

# Which CLIENT/PROFILE targets worker ``w`` publishes to, round robin (publish accepts known clients only).
OWN_CLIENTS = ("vscode", "windsurf")
LAYOUTS: dict[str, Callable[[int], list[str]]] = {
    "all_to_one_profile": lambda w: ["cursor/main"],
    "each_to_its_own_profile": lambda w: [f"{OWN_CLIENTS[w % 2]}/worker{w}"],
    "shared_and_own_profiles_interleaved": lambda w: ["cursor/main", f"{OWN_CLIENTS[w % 2]}/worker{w}"],
}


def head_chain_versions(home: Path) -> list[int]:
    """The index versions of the signed head chain, from the current head back to the first."""
    index = Repository(home / "storage")
    history = index.load_history()
    signed = index.current_head(history)
    versions = [signed.head.version]
    while signed.head.previous_head is not None:
        signed = index.head_by_id(signed.head.previous_head, history)
        versions.append(signed.head.version)
    return versions


@pytest.mark.parametrize("layout", LAYOUTS)
def test_concurrent_publishes_all_land_as_consecutive_index_versions(layout: str, tmp_path: Path) -> None:
    home, key_file = tmp_path / "home", tmp_path / "signing_key"
    env = child_env(home)
    generate_key(key_file, env)
    assert run_process("init", "--home", str(home), "--key-file", str(key_file), env=env).returncode == 0
    targets = {worker: LAYOUTS[layout](worker) for worker in range(WORKERS)}

    reader = start("read", "--home", str(home), env=env)
    workers = []
    for worker, names in targets.items():
        args = ["--home", str(home), "--key-file", str(key_file), "--count", str(PUBLISHES_EACH), "--wait"]
        args += [arg for name in names for arg in ("--target", name)]
        workers.append(spawn("publish", *args, "--tag", f"worker-{worker}", env=env))
    for child in workers:  # all are loaded and waiting: release them together
        wait_ready(child)
    for child in workers:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()

    acks: dict[int, list[dict[str, Any]]] = {}
    for worker, child in enumerate(workers):
        out, err = finish(child)
        assert child.returncode == 0, err
        acks[worker] = acknowledgements(out)
    reader_out, reader_err = finish(reader, "stop\n")

    # Every publish was acknowledged, changed its profile and got its own version; none is missing.
    assert all(len(worker_acks) == PUBLISHES_EACH for worker_acks in acks.values())
    every_ack = [ack for worker_acks in acks.values() for ack in worker_acks]
    assert all(ack["changed"] for ack in every_ack)
    assert sorted(ack["index_version"] for ack in every_ack) == list(range(2, TOTAL + 2))
    # Each process saw its own publishes in order, and the processes really did run at once.
    spans = []
    for worker_acks in acks.values():
        versions = [ack["index_version"] for ack in worker_acks]
        assert versions == sorted(versions)
        spans.append((versions[0], versions[-1]))
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a != b), f"no overlap: {spans}"

    # The signed head chain is exactly 1..N, with no gap and no fork.
    assert head_chain_versions(home) == list(range(TOTAL + 1, 0, -1))

    # Every acknowledged publish is in its profile's history, and the histories hold nothing else.
    app = App(load_settings(home=home))
    entries = []
    for name in sorted({name for names in targets.values() for name in names}):
        client, profile = name.split("/")
        try:
            versions = profile_history(app, client, profile)["versions"]
        except NotFoundError:
            versions = []
        chain = [v["index_version"] for v in versions]
        assert chain == sorted(chain, reverse=True), f"{name}'s history is out of order"
        entries += [(client, profile, v["artifact"], v["index_version"]) for v in versions]
    assert sorted(entries, key=lambda e: e[3]) == sorted(
        ((a["client"], a["profile"], a["artifact"], a["index_version"]) for a in every_ack), key=lambda e: e[3]
    )

    # A reader that verified the store the whole time never saw it torn or rolled back.
    assert reader.returncode == 0, reader_out + reader_err
    assert reader_out.startswith("ok ") and int(reader_out.split()[1]) > 0

    verified = run_process("verify", "--deep", "--json", "--home", str(home), env=env)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert (report["index_version"], report["heads_checked"]) == (TOTAL + 1, TOTAL + 1)

    # Telemetry appended by five processes at once: one intact line per publish.
    lines = (home / "telemetry" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert sum(1 for e in events if e["event"] == "publish" and e["outcome"] == "ok") == TOTAL
