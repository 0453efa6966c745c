"""A fleet of keyless desktops syncing from one mirror, measured in one run on loopback.

Each desktop is its own process (``python -m mcp_orchestration sync``, as a
launchd agent, scheduled task or systemd timer runs it), with its own state
directory and Claude Desktop config file, applying one of the store's profiles;
WORKERS of them run at a time. The mirror is a real nginx (Debian's
nginx-light) serving the tree ``mirror push`` wrote. Phases, in order:

1. first sync: every desktop pins the root and applies its profile;
2. one profile changes in a store of PROFILES profiles: every desktop converges
   to the new version; bytes per desktop against the new objects' size (target
   <= 2x) and against the whole store (printed beside it);
3. nothing changes: one request and <= 2 KB per desktop; the p50 time of a
   no-change sync process against the floor, a bare Python process that makes one
   HTTP GET of the head with ``http.client``, measured alternately beside it
   (target <= 1.5x).

Usage::

    .venv/bin/python benchmarks/fleet_bench.py [--desktops 1000] [--profiles 1000] [--workers 4] [--keep]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/mirror_servers.py starts the real nginx

from tests import mirror_servers

from mcp_orchestration.store.mirror import push
from mcp_orchestration.store.mirror.transport import open_target
from mcp_orchestration.store.repository import ANY_BASE, ProfileUpdate, Repository
from mcp_orchestration.trust import keys
from report import heading, line, ms, percentile, print_machine, scratch_dir, summary, verdict

CHANGE_BYTES_TARGET = 2.0
NO_CHANGE_BYTES_TARGET = 2048
NO_CHANGE_TIME_TARGET = 1.5
CLIENT = "claude-desktop"


def payload(number: int, version: int) -> dict[str, Any]:
    return {
        "mcpServers": {
            "fs": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem@1.0.0", f"/data/{number}"],
            },
            "git": {"command": "uvx", "args": ["mcp-server-git", "--repository", f"/srv/repo-{number}-v{version}"]},
        }
    }


@dataclass(frozen=True)
class Sync:
    seconds: float
    requests: int
    bytes_received: int
    index_version: int


def profile_name(number: int) -> str:
    return f"team-{number:04d}"


def sync_argv(url: str, root: str, desktop: Path, number: int) -> list[str]:
    return [
        sys.executable, "-m", "mcp_orchestration", "sync", "--from", url, "--expect-key", root,
        "--apply", f"{CLIENT}/{profile_name(number)}={desktop / 'claude_desktop_config.json'}",
        "--state-dir", str(desktop / "state"), "--json",
    ]  # fmt: skip


def run_sync(argv: list[str]) -> Sync:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sync failed ({done.returncode}): {done.stderr}")
    result = json.loads(done.stdout)
    return Sync(seconds, result["requests"], result["bytes_received"], result["index_version"])


def fleet(url: str, root: str, desktops: list[Path], profiles: int, workers: int) -> tuple[list[Sync], float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        syncs = list(
            pool.map(lambda item: run_sync(sync_argv(url, root, item[1], item[0] % profiles)), enumerate(desktops))
        )
    return syncs, time.perf_counter() - started


def report_phase(name: str, syncs: list[Sync], wall: float, served: list[str]) -> None:
    times = [s.seconds for s in syncs]
    line("desktops", f"{len(syncs)} processes, wall {wall:.1f} s ({len(syncs) / wall:.0f} syncs/s)")
    line("per desktop", f"{statistics.mean(s.requests for s in syncs):.2f} requests, "
         f"{statistics.mean(s.bytes_received for s in syncs):.0f} body bytes received, "
         f"{sum(int(entry.split()[4]) for entry in served) / len(syncs):.0f} bytes sent by nginx"  # with headers
         )  # fmt: skip
    line("sync time", f"p50 {ms(percentile(times, 0.5))}, p99 {ms(percentile(times, 0.99))}, max {ms(max(times))}")
    versions = {s.index_version for s in syncs}
    line("converged", f"index version(s) {sorted(versions)}")


def floor_argv(url: str) -> list[str]:
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    code = (
        "import http.client\n"
        f"c = http.client.HTTPConnection({host!r}, {port})\n"
        "c.request('GET', '/index/HEAD')\n"
        "c.getresponse().read()\n"
    )
    return [sys.executable, "-c", code]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desktops", type=int, default=1000)
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--floor-samples", type=int, default=100)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--scratch", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    print_machine()
    for binary in (mirror_servers.NGINX_BINARY, mirror_servers.REGISTRY_BINARY):
        if not binary.exists():
            raise SystemExit(f"{binary} is not installed (apt-get install nginx-light docker-registry)")
    with scratch_dir(args.scratch, "fleet-bench-", args.keep) as work:
        key = keys.generate()
        repository = Repository(work / "publisher" / "storage")
        repository.initialize(key)
        root = repository.load_history().root_fingerprint
        updates = [
            ProfileUpdate(CLIENT, profile_name(n), payload(n, 1), expected_base=ANY_BASE) for n in range(args.profiles)
        ]
        repository.publish(key, updates)
        www = work / "www"
        push.push(repository, open_target(str(www)))
        desktops = [work / "desktops" / f"{n:04d}" for n in range(args.desktops)]
        store_bytes = sum(p.stat().st_size for p in www.rglob("*") if p.is_file())
        with mirror_servers.serve_nginx(www, work / "nginx") as url:
            heading(
                f"1. First sync: {args.desktops} desktops, a store of {args.profiles} profiles ({store_bytes} bytes)"
            )
            syncs, wall = fleet(url, root, desktops, args.profiles, args.workers)
            report_phase("first", syncs, wall, mirror_servers.requests_logged(work / "nginx"))

            heading("2. One profile changes: every desktop converges")
            repository.publish(key, [ProfileUpdate(CLIENT, profile_name(0), payload(0, 2), expected_base=ANY_BASE)])
            pushed = push.push(repository, open_target(str(www)))
            head_bytes = len(repository.snapshot()[1].envelope_bytes)
            new_bytes = pushed.bytes_sent - head_bytes  # index/HEAD repeats the head object
            logged = len(mirror_servers.requests_logged(work / "nginx"))
            syncs, wall = fleet(url, root, desktops, args.profiles, args.workers)
            report_phase("change", syncs, wall, mirror_servers.requests_logged(work / "nginx")[logged:])
            worst = max(s.bytes_received for s in syncs)
            line("new objects", f"{pushed.objects} objects, {new_bytes} bytes; the whole store is now "
                 f"{sum(p.stat().st_size for p in www.rglob('*') if p.is_file())} bytes")  # fmt: skip
            ratio = worst / new_bytes
            line("worst", f"{worst} bytes received by one desktop = {ratio:.2f}x the new objects")
            converged = {s.index_version for s in syncs} == {pushed.index_version}
            verdict("converged", converged, "every desktop at the new version", f"{len(syncs)} desktops")
            verdict(
                "change bytes", ratio <= CHANGE_BYTES_TARGET, f"<= {CHANGE_BYTES_TARGET}x new objects", f"{ratio:.2f}x"
            )

            heading("3. Nothing changes: one conditional request per desktop")
            logged = len(mirror_servers.requests_logged(work / "nginx"))
            syncs, wall = fleet(url, root, desktops, args.profiles, args.workers)
            served = mirror_servers.requests_logged(work / "nginx")[logged:]
            report_phase("no change", syncs, wall, served)
            most = max(s.requests for s in syncs)
            wire = max(s.bytes_received for s in syncs) + max(int(e.split()[4]) for e in served)
            verdict("no-change requests", most == 1, "1 request per desktop", f"{most}")
            verdict(
                "no-change bytes", wire <= NO_CHANGE_BYTES_TARGET, f"<= {NO_CHANGE_BYTES_TARGET} bytes", f"{wire} B"
            )

            heading(f"4. A no-change sync process against the floor ({args.floor_samples} of each, alternating)")
            floors, ours = [], []
            for n in range(args.floor_samples):
                begin = time.perf_counter()
                subprocess.run(floor_argv(url), check=True, timeout=60)
                floors.append(time.perf_counter() - begin)
                ours.append(run_sync(sync_argv(url, root, desktops[n % len(desktops)], n % args.profiles)).seconds)
            floor, sync_p50 = statistics.median(floors), statistics.median(ours)
            line("floor", f"p50 {ms(floor)}: python -c (http.client GET of index/HEAD)")
            line("sync", f"p50 {ms(sync_p50)}: python -m mcp_orchestration sync (no change)")
            ratio = sync_p50 / floor
            line("ratio", f"{ratio:.2f}x")
            verdict(
                "no-change time",
                ratio <= NO_CHANGE_TIME_TARGET,
                f"<= {NO_CHANGE_TIME_TARGET}x the floor",
                f"{ratio:.2f}x",
            )
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
