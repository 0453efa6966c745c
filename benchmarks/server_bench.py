"""MCP server benchmarks over stdio, each measured beside a bare SDK server in the same run.

1. Cold start: spawn -> initialize -> tools/list of ``python -m mcp_orchestration serve``
   (an initialised store with a published profile, a signing key file configured) against a
   bare ``MCPServer`` with one echo tool, written to a temp dir at run time. Both run on this
   interpreter and are driven by the same client code (``mcp.Client`` over ``stdio_client``,
   initialize handshake), in alternating runs. Target: median ours / bare <= 1.0
   ("our start-up adds nothing").
2. Tool-call latency: ``get_config`` on our server against ``echo`` on the bare server (the
   echo text as long as get_config's JSON result), one session each, the same number of calls
   after a warm-up, alternating in blocks. Target: p50 and p99 ours / bare <= 1.5.
3. Where our start-up goes (information, no target): in-process phases of a fresh
   interpreter, and ``python -X importtime`` of both servers: what we import beyond the bare one.

Usage::

    .venv/bin/python benchmarks/server_bench.py            # full run
    .venv/bin/python benchmarks/server_bench.py --quick    # few runs: a smoke test
    .venv/bin/python benchmarks/server_bench.py --runs 40 --calls 1000 --keep

Exit status is 1 if any target fails. Nothing here changes the library.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust.keys import generate
from report import heading, line, ms, percentile, print_machine, scratch_dir, summary, verdict

START_TARGET = 1.0
CALL_TARGET = 1.5
CLIENT = "claude-desktop"
PROFILE = "default"
MODE = "legacy"  # the initialize handshake every shipping client uses

ECHO_SERVER = '''\
"""A bare MCP server: the SDK's MCPServer with one echo tool, nothing else."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


server.run("stdio")
'''

PHASE_PROBE = '''\
"""Time the phases of `serve` start-up in one fresh interpreter; print them as JSON."""

import json
import sys
import time
from pathlib import Path

t0 = time.perf_counter()
import mcp.server.mcpserver  # noqa: E402,F401  (the SDK, as both servers import it)

t1 = time.perf_counter()
from mcp_orchestration import cli  # noqa: E402

t2 = time.perf_counter()
from mcp_orchestration.server.app import build_server  # noqa: E402
from mcp_orchestration.server.tools import ConfigTools  # noqa: E402

t3 = time.perf_counter()
app = cli._app(cli.build_parser().parse_args(["serve"]))
tools = ConfigTools(app, None)
t4 = time.perf_counter()
server = build_server(tools)
t5 = time.perf_counter()
json.dump(
    {
        "SDK import (mcp.server.mcpserver)": t1 - t0,
        "import mcp_orchestration.cli": t2 - t1,
        "import server.app + server.tools": t3 - t2,
        "settings + App + ConfigTools": t4 - t3,
        "build_server (16 tools, 3 resources, 1 prompt)": t5 - t4,
    },
    sys.stdout,
)
'''


# -- reporting ---------------------------------------------------------------------------


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us"


# -- environment -------------------------------------------------------------------------


def print_environment(work: Path) -> None:
    print_machine()
    line("packages", f"mcp {version('mcp')}, mcp-orchestration {version('mcp-orchestration')}")
    line("scratch", str(work))


# -- fixture -----------------------------------------------------------------------------


@dataclass
class Fixture:
    work: Path
    home: Path
    key_file: Path
    echo_script: Path
    env: dict[str, str]


def sample_config() -> dict[str, Any]:
    """A realistic published config: three servers, a secret referenced by placeholder."""
    return {
        "mcpServers": {
            "filesystem": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/user/projects"],
            },
            "github": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${env:GITHUB_PERSONAL_ACCESS_TOKEN}"},
            },
            "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone", "Europe/Paris"]},
        }
    }


def build_fixture(work: Path) -> Fixture:
    """An initialised store with one published profile, its key in a 0600 file, and the echo server."""
    secrets = work / "secrets"
    secrets.mkdir(mode=0o700)
    key = generate()
    key_file = secrets / "signing_key"
    key_file.write_bytes(key.serialize("pkcs8", None))
    key_file.chmod(0o600)
    home = work / "home"
    index = Repository(home / "storage")
    index.initialize(key)
    index.publish(key, [ProfileUpdate(CLIENT, PROFILE, sample_config(), "benchmark fixture")])
    echo_script = work / "echo_server.py"
    echo_script.write_text(ECHO_SERVER)
    env = {
        "MCP_ORCHESTRATION_HOME": str(home),
        "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    return Fixture(work, home, key_file, echo_script, env)


def ours(fx: Fixture) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_orchestration", "serve"], env=fx.env, cwd=fx.work
    )


def bare(fx: Fixture) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(fx.echo_script)], env=fx.env, cwd=fx.work)


def child_env(fx: Fixture) -> dict[str, str]:
    """The environment stdio_client gives a server (its default set plus ours), for plain subprocesses."""
    keep = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **fx.env}


# -- 1. cold start -----------------------------------------------------------------------


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def cold_start(params: StdioServerParameters, errlog: TextIO) -> tuple[float, int]:
    """Seconds from spawn to the tools/list answer (shutdown not timed), and the number of tools."""
    started = time.perf_counter()
    async with Client(stdio_client(params, errlog=errlog), mode=MODE) as client:
        listed = await client.list_tools()
        elapsed = time.perf_counter() - started
    return elapsed, len(listed.tools)


def spawn_floor(fx: Fixture, code: str, repeats: int) -> float:
    """Median seconds to run ``python -c code`` to completion: what every server pays before its own code."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=child_env(fx), cwd=fx.work, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_cold_start(fx: Fixture, runs: int, floor_repeats: int) -> None:
    heading("1. Cold start: spawn -> initialize -> tools/list")
    servers = {"ours": ours(fx), "bare": bare(fx)}
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    cpu: dict[str, list[float]] = {"ours": [], "bare": []}
    tool_counts: dict[str, int] = {}
    logs = {name: fx.work / f"{name}-cold.stderr" for name in servers}
    handles = {name: path.open("w") for name, path in logs.items()}
    try:
        for name, params in servers.items():  # warm-up: bytecode caches, page cache
            _, tool_counts[name] = anyio.run(cold_start, params, handles[name])
        for run in range(runs):
            order = ("ours", "bare") if run % 2 == 0 else ("bare", "ours")
            for name in order:
                before = children_cpu()
                elapsed, _ = anyio.run(cold_start, servers[name], handles[name])
                cpu[name].append(children_cpu() - before)
                times[name].append(elapsed)
    finally:
        for handle in handles.values():
            handle.close()
    python_floor = spawn_floor(fx, "pass", floor_repeats)
    sdk_floor = spawn_floor(fx, "import mcp.server.mcpserver", floor_repeats)

    med = {name: statistics.median(values) for name, values in times.items()}
    p90 = {name: percentile(values, 0.9) for name, values in times.items()}
    ratio = med["ours"] / med["bare"]
    line(
        "ran",
        f"{runs} x `{Path(sys.executable).name} -m mcp_orchestration serve` (store with 1 profile, key file set), "
        f"{tool_counts['ours']} tools listed",
    )
    line("baseline", f"{runs} x a bare MCPServer script with one echo tool ({tool_counts['bare']} tool listed)")
    line(
        "method",
        f"same interpreter, same client code (mcp.Client over stdio_client, {MODE} initialize handshake); "
        "runs alternate ours/bare, bare/ours after one untimed warm-up each; timed from spawn to the "
        "tools/list answer",
    )
    line("ours", f"median {ms(med['ours'])}, p90 {ms(p90['ours'])}  (min {ms(min(times['ours']))})")
    line("baseline", f"median {ms(med['bare'])}, p90 {ms(p90['bare'])}  (min {ms(min(times['bare']))})")
    line("ratio", f"{ratio:.3f}  (median ours / median baseline; p90 ratio {p90['ours'] / p90['bare']:.3f})")
    line("extra", f"{ms(med['ours'] - med['bare'])} of start-up is ours (median difference)")
    cpu_ours, cpu_bare = statistics.median(cpu["ours"]), statistics.median(cpu["bare"])
    line(
        "cpu",
        f"server process CPU time (user + sys, whole life, from getrusage; less sensitive to load): median ours "
        f"{ms(cpu_ours)}, baseline {ms(cpu_bare)}, ratio {cpu_ours / cpu_bare:.3f}",
    )
    line(
        "info",
        f"floors, median of {floor_repeats}: `python -c pass` {ms(python_floor)}; "
        f"`python -c 'import mcp.server.mcpserver'` {ms(sdk_floor)} "
        f"({sdk_floor / med['bare']:.0%} of the bare server's cold start)",
    )
    for name, path in logs.items():
        size = path.stat().st_size
        if size:
            line("stderr", f"{name}: {size} bytes on stderr over all runs (see {path} with --keep)")
    verdict("cold start", ratio <= START_TARGET, f"ratio <= {START_TARGET}", f"ratio {ratio:.3f}")


# -- 2. tool-call latency ----------------------------------------------------------------


async def timed_calls(call: Callable[[], Awaitable[Any]], count: int, into: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        result = await call()
        into.append(time.perf_counter() - started)
        if result.is_error:
            raise RuntimeError(f"tool call failed: {result.structured_content or result.content}")


async def call_latency(fx: Fixture, warmup: int, calls: int, block: int) -> dict[str, Any]:
    arguments = {"client": CLIENT, "profile": PROFILE}
    with (fx.work / "ours-calls.stderr").open("w") as err_ours, (fx.work / "bare-calls.stderr").open("w") as err_bare:
        async with (
            Client(stdio_client(ours(fx), errlog=err_ours), mode=MODE) as our_client,
            Client(stdio_client(bare(fx), errlog=err_bare), mode=MODE) as bare_client,
        ):
            first = await our_client.call_tool("get_config", arguments)
            if first.is_error or not first.structured_content:
                raise RuntimeError(f"get_config failed: {first.content}")
            result_bytes = len(json.dumps(first.structured_content))
            text = "x" * result_bytes

            async def get_config() -> Any:
                return await our_client.call_tool("get_config", arguments)

            async def echo() -> Any:
                return await bare_client.call_tool("echo", {"text": text})

            await timed_calls(get_config, warmup, [])
            await timed_calls(echo, warmup, [])
            samples: dict[str, list[float]] = {"ours": [], "bare": []}
            done = 0
            turn = 0
            while done < calls:
                n = min(block, calls - done)
                pairs = [("ours", get_config), ("bare", echo)]
                for name, call in pairs if turn % 2 == 0 else reversed(pairs):
                    await timed_calls(call, n, samples[name])
                done += n
                turn += 1
    return {"samples": samples, "result_bytes": result_bytes}


def bench_calls(fx: Fixture, warmup: int, calls: int, block: int) -> None:
    heading("2. Tool-call latency over stdio: get_config against echo")
    measured = anyio.run(call_latency, fx, warmup, calls, block)
    samples: dict[str, list[float]] = measured["samples"]
    p50 = {name: percentile(values, 0.5) for name, values in samples.items()}
    p99 = {name: percentile(values, 0.99) for name, values in samples.items()}
    r50, r99 = p50["ours"] / p50["bare"], p99["ours"] / p99["bare"]
    line(
        "ran",
        f"{calls} x get_config({CLIENT}/{PROFILE}) on our server: verified read of a signed artifact, "
        f"masked, {measured['result_bytes']} B of structured result",
    )
    line("baseline", f"{calls} x echo(text of {measured['result_bytes']} chars) on the bare SDK server")
    line(
        "method",
        f"one session each ({MODE} handshake), {warmup} untimed warm-up calls each, then sequential calls in "
        f"alternating blocks of {block}; each call timed from request to parsed result",
    )
    line("ours", f"p50 {us(p50['ours'])}, p99 {us(p99['ours'])}, mean {us(statistics.fmean(samples['ours']))}")
    line("baseline", f"p50 {us(p50['bare'])}, p99 {us(p99['bare'])}, mean {us(statistics.fmean(samples['bare']))}")
    line("ratio", f"p50 {r50:.3f}, p99 {r99:.3f}  (ours / baseline)")
    verdict("get_config p50", r50 <= CALL_TARGET, f"p50 ratio <= {CALL_TARGET}", f"ratio {r50:.3f}", "target p50")
    verdict("get_config p99", r99 <= CALL_TARGET, f"p99 ratio <= {CALL_TARGET}", f"ratio {r99:.3f}", "target p99")


# -- 3. where start-up goes --------------------------------------------------------------


@dataclass
class Import:
    name: str
    self_us: int
    cumulative_us: int
    depth: int


def import_times(fx: Fixture, argv: list[str]) -> list[Import]:
    """``python -X importtime`` of a server started with stdin at EOF (it exits after start-up)."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(fx),
        cwd=fx.work,
        check=False,
        timeout=120,
    )
    rows = []
    for row in completed.stderr.splitlines():
        if not row.startswith("import time:") or "self [us]" in row:
            continue
        self_us, cumulative_us, name = row.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append(Import(name.strip(), int(self_us), int(cumulative_us), depth))
    return rows


def by_package(rows: list[Import]) -> dict[str, int]:
    """Self time summed per top-level package, largest first."""
    totals: dict[str, int] = {}
    for row in rows:
        top = row.name.split(".")[0]
        totals[top] = totals.get(top, 0) + row.self_us
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def phases(fx: Fixture, repeats: int) -> dict[str, float]:
    """Median seconds of each start-up phase over ``repeats`` fresh interpreters."""
    probe = fx.work / "phase_probe.py"
    probe.write_text(PHASE_PROBE)
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        completed = subprocess.run(
            [sys.executable, str(probe)], capture_output=True, text=True, env=child_env(fx), cwd=fx.work, check=False
        )
        if completed.returncode != 0:
            tail = completed.stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"  (phase probe failed: {tail[0]})")
            return {}
        runs.append(json.loads(completed.stdout))
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def bench_breakdown(fx: Fixture, repeats: int, show: int) -> None:
    heading("3. Where our start-up goes (information, no target)")
    measured = phases(fx, repeats)
    if measured:
        line("phases", f"in one fresh interpreter, median of {repeats} (no server I/O):")
        for name, seconds in measured.items():
            print(f"      {ms(seconds):>10}  {name}")
    our_rows = import_times(fx, ["-m", "mcp_orchestration", "serve"])
    bare_rows = import_times(fx, [str(fx.echo_script)])
    bare_names = {row.name for row in bare_rows}
    extra = [row for row in our_rows if row.name not in bare_names]
    own = [row for row in extra if row.name.split(".")[0] == "mcp_orchestration"]
    third = [row for row in extra if row.name.split(".")[0] != "mcp_orchestration"]
    total_ours, total_bare = (sum(row.self_us for row in rows) for rows in (our_rows, bare_rows))
    line(
        "importtime",
        f"ours {len(our_rows)} modules, {total_ours / 1000:.1f} ms; bare {len(bare_rows)} modules, "
        f"{total_bare / 1000:.1f} ms (self times summed; -X importtime inflates them)",
    )
    line(
        "beyond bare",
        f"{len(extra)} modules, {sum(r.self_us for r in extra) / 1000:.1f} ms: {len(own)} of ours "
        f"({sum(r.self_us for r in own) / 1000:.1f} ms), {len(third)} others "
        f"({sum(r.self_us for r in third) / 1000:.1f} ms)",
    )
    packages = ", ".join(f"{name} {value / 1000:.1f}" for name, value in list(by_package(third).items())[:show])
    line("others", f"by package, ms of self time: {packages or 'none'}")
    slowest = sorted(own, key=lambda row: -row.self_us)[:show]
    line(
        "ours",
        "slowest of our modules, ms of self time: " + ", ".join(f"{r.name} {r.self_us / 1000:.1f}" for r in slowest),
    )
    sdk = by_package(bare_rows)
    line(
        "bare",
        "by package, ms of self time: " + ", ".join(f"{n} {v / 1000:.1f}" for n, v in list(sdk.items())[:show]),
    )


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch directory (default: $TMPDIR)")
    parser.add_argument("--quick", action="store_true", help="few runs, to smoke-test the script")
    parser.add_argument("--runs", type=int, default=None, help="cold starts per server (default 20, quick 3)")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per server (default 500, quick 50)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per server (default 50, quick 10)")
    parser.add_argument("--block", type=int, default=50, help="calls per alternating block (default 50)")
    parser.add_argument("--repeats", type=int, default=None, help="floor and phase repeats (default 5, quick 1)")
    parser.add_argument("--show", type=int, default=8, help="entries in the import breakdown lists (default 8)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (3 if quick else 20)
    args.calls = args.calls or (50 if quick else 500)
    args.warmup = (10 if quick else 50) if args.warmup is None else args.warmup
    args.repeats = args.repeats or (1 if quick else 5)
    args.block = max(1, min(args.block, args.calls))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with scratch_dir(args.dir, "mcp-orch-server-bench-", args.keep) as work:
        note = " (--quick: few runs, the figures mean little)" if args.quick else ""
        print(f"mcp-orchestration MCP server benchmark{note}")
        print_environment(work)
        fx = build_fixture(work)
        bench_cold_start(fx, args.runs, args.repeats)
        bench_calls(fx, args.warmup, args.calls, args.block)
        bench_breakdown(fx, args.repeats, args.show)

    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
