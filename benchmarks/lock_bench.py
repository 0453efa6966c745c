"""``lock`` and ``check`` of a profile of five stdio servers, beside the SDK's own client listing them, in one run.

The servers are ``tests/mcp_fixtures/spec_server.py`` on this interpreter, each
serving a generated spec of a realistic size (``--tools`` tools, 15 by default,
with titles, descriptions, input and output schemas and annotations; two
prompts; two resource templates), so no network is involved. The published profile names
them as a config would (``command`` and ``args``).

- Baseline: for each server in turn, ``mcp.Client(StdioServerParameters(...))``
  (defaults: ``mode="auto"``, as ``lock``'s probe) lists tools, prompts and
  resource templates, then stops it (``benchmarks/sdk_listing.py``).
- ``lock``: the same five servers listed, each definition pinned, the lock
  signed and written to the store; every run locks a profile never locked
  before, so each one writes and signs.
- ``check``: the five listed again and compared with the signed lock.

Each is timed as a process (``python -m mcp_orchestration lock ...``, and
``python sdk_listing.py ...``: interpreter start and imports included) and
in-process (``app.locking.lock``/``check``, and ``list_servers``), so the
difference shows what start-up costs apart from the work. Runs alternate, in
an order that rotates each round, after one untimed warm-up of each; the
figures are medians. Target: each median ratio to its baseline <= 1.2. The
CPU time of each (this process and every process it ran, servers included)
is printed beside it: on a loaded machine it varies far less than wall time.

Usage::

    .venv/bin/python benchmarks/lock_bench.py [--runs 7] [--tools 15] [--keep] [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from mcp import StdioServerParameters

import mcp_orchestration
from mcp_orchestration.app import locking
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust.keys import generate
from report import heading, line, ms, print_machine, scratch_dir, summary, verdict
from sdk_listing import list_servers

TARGET = 1.2
SERVERS = 5
CLIENT = "cursor"
CHECKED = "checked"  # the profile every check runs against, locked once before the timed runs
TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parent.parent
SPEC_SERVER = ROOT / "tests" / "mcp_fixtures" / "spec_server.py"
SDK_LISTING = Path(__file__).resolve().parent / "sdk_listing.py"

# A CLI user runs an installed package, whose bytecode pip wrote: so do these processes (under
# PYTHONDONTWRITEBYTECODE a source tree would be compiled again by every one).
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


# -- fixture ----------------------------------------------------------------------------------


def tool(server: int, number: int) -> dict[str, Any]:
    """A tool as real servers define them: title, a few sentences, typed parameters, annotations."""
    name = f"action_{number:02d}"
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Path of the item, relative to the workspace root."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "description": "At most this many results."},
            "recursive": {"type": "boolean", "default": False, "description": "Descend into sub-directories."},
            "mode": {"type": "string", "enum": ["fast", "thorough", "dry-run"], "description": "How hard to try."},
            "labels": {"type": "array", "items": {"type": "string"}, "description": "Labels to filter by."},
        },
        "required": ["path"],
        "additionalProperties": False,
    }
    definition: dict[str, Any] = {
        "name": name,
        "title": f"Action {number} of service {server}",
        "description": (
            f"Runs action {number} of service {server} on the item at the given path and returns what it found. "
            "Use it when the user asks about the state of an item; it never changes anything unless mode is "
            "'thorough'. Results are capped by limit and sorted by relevance."
        ),
        "inputSchema": schema,
        "annotations": {"readOnlyHint": number % 3 != 0, "destructiveHint": False, "openWorldHint": number % 2 == 0},
    }
    if number % 2 == 0:
        definition["outputSchema"] = {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "string"}}, "total": {"type": "integer"}},
            "required": ["items", "total"],
        }
    return definition


def spec(server: int, tools: int) -> dict[str, Any]:
    """What one server serves (``spec_server.py``'s format): ``tools`` tools, two prompts, two templates."""
    prompts = [
        {
            "name": f"review_{number}",
            "title": f"Review {number}",
            "description": "Reviews an item and suggests changes.",
            "arguments": [{"name": "item", "description": "The item to review.", "required": True}],
        }
        for number in range(2)
    ]
    templates = [
        {
            "name": f"record_{number}",
            "uriTemplate": f"service{server}://records/{number}/{{id}}",
            "description": "One record, as JSON.",
            "mimeType": "application/json",
        }
        for number in range(2)
    ]
    return {
        "name": f"service-{server}",
        "version": "1.2.3",
        "tools": [tool(server, number) for number in range(tools)],
        "prompts": prompts,
        "resource_templates": templates,
    }


@dataclass(frozen=True)
class Fixture:
    """The store's environment (home, key file, host state) and the five servers as the config names them."""

    env: dict[str, str]
    servers: dict[str, dict[str, Any]]
    definitions: int

    def settings_env(self) -> dict[str, str]:
        return CHILD_ENV | self.env


def build_fixture(work: Path, tools: int, profiles: list[str]) -> Fixture:
    """A store with ``profiles`` each publishing the same five servers, and its key in a 0600 file."""
    servers: dict[str, dict[str, Any]] = {}
    for number in range(SERVERS):
        path = work / f"spec-{number}.json"
        path.write_text(json.dumps(spec(number, tools)))
        servers[f"service-{number}"] = {"command": sys.executable, "args": [str(SPEC_SERVER), str(path)]}
    key = generate()
    key_file = work / "signing_key"
    key_file.write_bytes(key.serialize("pkcs8", None))
    key_file.chmod(0o600)
    home = work / "home"
    index = Repository(home / "storage")
    index.initialize(key)
    config = {"mcpServers": servers}
    index.publish(key, [ProfileUpdate(CLIENT, profile, config, "benchmark fixture") for profile in profiles])
    env = {
        "MCP_ORCHESTRATION_HOME": str(home),
        "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file),
        "MCP_ORCHESTRATION_HOST_STATE": str(work / "host-state.json"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    return Fixture(env, servers, SERVERS * (tools + 4))


def compile_package() -> None:
    package = Path(mcp_orchestration.__file__).parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)], check=True, env=CHILD_ENV, stdout=subprocess.DEVNULL
    )


# -- what is timed ----------------------------------------------------------------------------


def app(fx: Fixture) -> App:
    """An App as the CLI builds one (settings from the environment; the key loaded at the first write)."""
    return App(load_settings(environ=fx.settings_env()))


def sdk_in_process(fx: Fixture) -> None:
    params = [StdioServerParameters(command=s["command"], args=s["args"]) for s in fx.servers.values()]
    listed = anyio.run(list_servers, params)
    assert listed == fx.definitions, listed


def sdk_process(fx: Fixture) -> None:
    argv = [sys.executable, str(SDK_LISTING), *(json.dumps(server) for server in fx.servers.values())]
    done = subprocess.run(argv, capture_output=True, text=True, env=CHILD_ENV, check=False, timeout=TIMEOUT * 2)
    if done.returncode != 0 or int(done.stdout) != fx.definitions:
        raise SystemExit(f"the SDK baseline failed ({done.returncode}): {done.stderr[-2000:]}")


def lock_in_process(fx: Fixture, profile: str) -> None:
    result = locking.lock(app(fx), CLIENT, profile, timeout=TIMEOUT, environ={})
    assert result["changed"] and len(result["servers"]) == SERVERS, result


def check_in_process(fx: Fixture) -> None:
    result = locking.check(app(fx), CLIENT, CHECKED, timeout=TIMEOUT, environ={})
    assert not result["drift"] and result["servers_checked"] == SERVERS, result


def cli(fx: Fixture, *argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_orchestration", *argv, "--client", CLIENT, "--timeout", str(TIMEOUT), "--json"],
        capture_output=True,
        text=True,
        env=fx.settings_env(),
        check=False,
        timeout=TIMEOUT * 2,
    )
    if done.returncode != 0:
        raise SystemExit(f"`{argv[0]}` failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def lock_cli(fx: Fixture, profile: str) -> None:
    result = cli(fx, "lock", "--profile", profile)
    assert result["changed"] and len(result["servers"]) == SERVERS, result


def check_cli(fx: Fixture) -> None:
    result = cli(fx, "check", "--profile", CHECKED)
    assert not result["drift"] and result["servers_checked"] == SERVERS, result


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Measured:
    """One timed thing: what it is, its wall times and its CPU times (this process and every process it ran)."""

    label: str
    run: Callable[[], None]
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def measure(fx: Fixture, runs: int) -> dict[str, Measured]:
    fresh = iter(profile_names(runs))
    measured = {
        "sdk process": Measured("SDK client, as a process", lambda: sdk_process(fx)),
        "lock process": Measured("lock, the CLI as a process", lambda: lock_cli(fx, next(fresh))),
        "check process": Measured("check, the CLI as a process", lambda: check_cli(fx)),
        "sdk in-process": Measured("SDK client, in-process", lambda: sdk_in_process(fx)),
        "lock in-process": Measured("lock, app.locking.lock in-process", lambda: lock_in_process(fx, next(fresh))),
        "check in-process": Measured("check, app.locking.check in-process", lambda: check_in_process(fx)),
    }
    order = list(measured.values())
    for item in order:  # warm-up: bytecode, page cache, the first lock of a store
        item.run()
    for round_number in range(runs):
        shift = round_number % len(order)
        for item in order[shift:] + order[:shift]:
            started, cpu = time.perf_counter(), cpu_seconds()
            item.run()
            item.times.append(time.perf_counter() - started)
            item.cpu.append(cpu_seconds() - cpu)
    return measured


def cpu_seconds() -> float:
    """User and system CPU of this process and of every child reaped so far (their children included)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def profile_names(runs: int) -> list[str]:
    """A profile for each lock (each needs one never locked before): two kinds of lock, warm-ups included."""
    return [f"bench-{number:03d}" for number in range(2 * (runs + 1))]


def compare(name: str, ours: Measured, baseline: Measured) -> None:
    mine, theirs = statistics.median(ours.times), statistics.median(baseline.times)
    ratio = mine / theirs
    line("ran", f"{len(ours.times)} x {ours.label}")
    line("baseline", f"{len(baseline.times)} x {baseline.label}")
    line("ours", f"median {ms(mine)}  (min {ms(min(ours.times))}, max {ms(max(ours.times))})")
    line("baseline", f"median {ms(theirs)}  (min {ms(min(baseline.times))}, max {ms(max(baseline.times))})")
    extra = abs(mine - theirs)
    more = "more" if mine >= theirs else "less"
    line("ratio", f"{ratio:.3f}  ({ms(extra)} {more}, {ms(extra / SERVERS)} a server)")
    cpu_mine, cpu_theirs = statistics.median(ours.cpu), statistics.median(baseline.cpu)
    line(
        "cpu",
        f"median CPU time, servers included (less sensitive to load): ours {ms(cpu_mine)}, baseline "
        f"{ms(cpu_theirs)}, ratio {cpu_mine / cpu_theirs:.3f}",
    )
    verdict(name, ratio <= TARGET, f"ratio <= {TARGET}", f"ratio {ratio:.3f}")


def start_up(measured: dict[str, Measured]) -> None:
    heading("What a process adds (information): median as a process - median in-process")
    for name in ("sdk", "lock", "check"):
        process, inside = measured[f"{name} process"], measured[f"{name} in-process"]
        wall = statistics.median(process.times) - statistics.median(inside.times)
        cpu = statistics.median(process.cpu) - statistics.median(inside.cpu)
        line(name, f"wall {ms(wall)}, CPU {ms(cpu)}  (interpreter start, imports, exit)")


def where_time_goes(fx: Fixture, show: int) -> None:
    """cProfile of one in-process lock: the calls that take longest (wall time, callees included)."""
    heading(f"Where an in-process lock's time goes (information): cProfile, top {show} by cumulative time")
    profiler = cProfile.Profile()
    profiler.enable()
    lock_in_process(fx, "profiled")
    profiler.disable()
    table = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # typeshed leaves the table out
    rows: list[tuple[float, int, str, str]] = []
    for (file, number, function), (_, calls, _, cumulative, _) in table.items():
        if "mcp_orchestration" in file or f"{os.sep}mcp{os.sep}" in file:
            rows.append((cumulative, calls, function, f"{Path(file).parent.name}/{Path(file).name}:{number}"))
    rows.sort(reverse=True)
    for cumulative, calls, function, where in rows[:show]:
        print(f"      {ms(cumulative):>10}  {calls:>5} calls  {where}({function})")
    whole = next(row[0] for row in rows if row[3].startswith("app/locking.py") and row[2] == "lock")
    probing = next(row[0] for row in rows if row[3].startswith("app/locking.py") and row[2] == "observe")
    split = f"{ms(probing)} starting and listing the servers (observe), {ms(whole - probing)} the rest"
    line("split", f"of {ms(whole)} under the profiler: {split} (pins, canonical JSON, signing, the store)")


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=None, help="timed runs of each (default 7, quick 2)")
    parser.add_argument("--tools", type=int, default=15, help="tools per server (default 15)")
    parser.add_argument("--show", type=int, default=12, help="rows of the profile (default 12)")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch directory (default: $TMPDIR)")
    parser.add_argument("--quick", action="store_true", help="few runs, to smoke-test the script")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 7)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with scratch_dir(args.dir, "mcp-orch-lock-bench-", args.keep) as work:
        note = " (--quick: few runs, the figures mean little)" if args.quick else ""
        print(f"mcp-orchestration tool lock benchmark{note}")
        print_machine()
        line("packages", f"mcp {version('mcp')}, mcp-orchestration {version('mcp-orchestration')}")
        line("scratch", str(work))
        compile_package()
        fx = build_fixture(work, args.tools, [CHECKED, "profiled", *profile_names(args.runs)])
        line(
            "profile",
            f"{CLIENT}/<profile>: {SERVERS} stdio servers (spec_server.py), each {args.tools} tools, 2 prompts, "
            f"2 resource templates ({fx.definitions} definitions in all)",
        )
        lock_in_process(fx, CHECKED)
        measured = measure(fx, args.runs)
        heading("1. lock as a process: `python -m mcp_orchestration lock` against the SDK client as a process")
        compare("lock (process)", measured["lock process"], measured["sdk process"])
        heading("2. check as a process: `python -m mcp_orchestration check` against the SDK client as a process")
        compare("check (process)", measured["check process"], measured["sdk process"])
        heading("3. lock in-process: app.locking.lock against the SDK client in-process")
        compare("lock (in-process)", measured["lock in-process"], measured["sdk in-process"])
        heading("4. check in-process: app.locking.check against the SDK client in-process")
        compare("check (in-process)", measured["check in-process"], measured["sdk in-process"])
        start_up(measured)
        where_time_goes(fx, args.show)
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
