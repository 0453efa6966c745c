"""A fleet of keyless desktops syncing from one mirror, measured in one run on loopback.

Each desktop is its own process (``python -m mcp_orchestration sync``, as a
launchd agent, scheduled task or systemd timer runs it), with its own state
directory and Claude Desktop config file, applying one of the store's
profiles; WORKERS of them run at a time. Each mirror runs the same phases: a
real nginx (Debian's nginx-light) serving the tree ``mirror push`` wrote, then
a real OCI registry (Debian's docker-registry, CNCF distribution) holding it
as an artifact.

1. first sync: every desktop pins the root and applies its profile;
2. one profile changes in a store of PROFILES profiles: every desktop converges
   to the new version; the most bytes one desktop received against the new
   objects' size (target <= 2x), the whole store printed beside it;
3. nothing changes: one request and <= 2 KB on the wire per desktop;
4. the p50 time of a no-change sync process against the floor, a bare Python
   process making one ``http.client`` GET of what a no-change sync asks for
   (the head; the registry's manifest), run alternately beside it (target <= 1.5x).

Usage::

    .venv/bin/python benchmarks/fleet_bench.py [--desktops 1000] [--profiles 1000] [--workers 4]
        [--mirrors nginx,oci] [--floor-samples 100] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/mirror_servers.py starts the real servers

from tests import mirror_servers

import mcp_orchestration
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


def profile_name(number: int) -> str:
    return f"team-{number:04d}"


@dataclass(frozen=True)
class Sync:
    seconds: float
    requests: int
    bytes_received: int
    index_version: int


def sync_argv(url: str, root: str, desktop: Path, number: int) -> list[str]:
    return [
        sys.executable, "-m", "mcp_orchestration", "sync", "--from", url, "--expect-key", root,
        "--apply", f"{CLIENT}/{profile_name(number)}={desktop / 'claude_desktop_config.json'}",
        "--state-dir", str(desktop / "state"), "--json",
    ]  # fmt: skip


# Desktops run an installed package, whose bytecode pip wrote: so do these (a source tree under
# PYTHONDONTWRITEBYTECODE would be compiled again by every process).
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def compile_package() -> None:
    package = Path(mcp_orchestration.__file__).parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)], check=True, env=CHILD_ENV, stdout=subprocess.DEVNULL
    )


def run_sync(argv: list[str]) -> Sync:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120, env=CHILD_ENV)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sync failed ({done.returncode}): {done.stderr}")
    result = json.loads(done.stdout)
    return Sync(seconds, result["requests"], result["bytes_received"], result["index_version"])


def fleet(url: str, root: str, desktops: list[Path], args: argparse.Namespace) -> tuple[list[Sync], float]:
    """Every desktop syncs once, ``args.workers`` processes at a time."""
    started = time.perf_counter()

    def one(item: tuple[int, Path]) -> Sync:
        return run_sync(sync_argv(url, root, item[1], item[0] % args.profiles))

    with ThreadPoolExecutor(args.workers) as pool:
        syncs = list(pool.map(one, enumerate(desktops)))
    return syncs, time.perf_counter() - started


class Publisher:
    """The store every mirror is pushed from: PROFILES profiles of one client."""

    def __init__(self, work: Path, profiles: int) -> None:
        self.key = keys.generate()
        self.repository = Repository(work / "publisher" / "storage")
        self.repository.initialize(self.key)
        self.root = self.repository.load_history().root_fingerprint
        updates = [
            ProfileUpdate(CLIENT, profile_name(n), payload(n, 1), expected_base=ANY_BASE) for n in range(profiles)
        ]
        self.repository.publish(self.key, updates)
        self.measure = work / "measure"  # a directory mirror: what each push sends, in bytes
        self.push(str(self.measure))
        self.version = 1

    def push(self, url: str) -> push.PushResult:
        target = open_target(url)
        try:
            return push.push(self.repository, target)
        finally:
            target.close()

    def store_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.measure.rglob("*") if p.is_file())

    def change_one_profile(self) -> tuple[int, int, int]:
        """Publish a new version of one profile: the new objects' bytes and count, and the new index version."""
        self.version += 1
        update = ProfileUpdate(CLIENT, profile_name(0), payload(0, self.version), expected_base=ANY_BASE)
        self.repository.publish(self.key, [update])
        pushed = self.push(str(self.measure))
        head_bytes = len(self.repository.snapshot()[1].envelope_bytes)  # index/HEAD repeats the head object
        return pushed.bytes_sent - head_bytes, pushed.objects, pushed.index_version


@dataclass(frozen=True)
class Mirror:
    """One distribution point under test: where desktops sync from, and how the publisher reaches it."""

    name: str
    url: str  # what desktops sync from
    target: str  # what the publisher pushes to
    wire: Callable[[], list[int]]  # bytes each response so far put on the wire, headers too (the server's count)
    floor_code: str  # the floor process: one GET of what a no-change sync asks for, with http.client


def get_code(host: str, port: int, path: str, accept: str) -> str:
    return (
        "import http.client\n"
        f"c = http.client.HTTPConnection({host!r}, {port})\n"
        f"c.request('GET', {path!r}, headers={{'Accept': {accept!r}}})\n"
        "c.getresponse().read()\n"
    )


def report_phase(syncs: list[Sync], wall: float, wire: list[int]) -> None:
    times = [s.seconds for s in syncs]
    line("desktops", f"{len(syncs)} processes, wall {wall:.1f} s ({len(syncs) / wall:.0f} syncs/s)")
    served = f", {sum(wire) / len(syncs):.0f} bytes on the wire (server's count)" if wire else ""
    line("per desktop", f"{statistics.mean(s.requests for s in syncs):.2f} requests, "
         f"{statistics.mean(s.bytes_received for s in syncs):.0f} bytes received (headers too){served}")  # fmt: skip
    line("sync time", f"p50 {ms(percentile(times, 0.5))}, p99 {ms(percentile(times, 0.99))}, max {ms(max(times))}")
    line("converged", f"index version(s) {sorted({s.index_version for s in syncs})}")


def run_mirror(mirror: Mirror, publisher: Publisher, desktops: list[Path], args: argparse.Namespace) -> None:
    """The phases against one mirror."""
    name = mirror.name
    publisher.push(mirror.target)
    heading(f"{name} 1. First sync: {len(desktops)} desktops, {args.profiles} profiles ({publisher.store_bytes()} B)")
    before = len(mirror.wire())
    syncs, wall = fleet(mirror.url, publisher.root, desktops, args)
    report_phase(syncs, wall, mirror.wire()[before:])

    heading(f"{name} 2. One profile changes: every desktop converges")
    new_bytes, new_objects, version = publisher.change_one_profile()
    publisher.push(mirror.target)
    before = len(mirror.wire())
    syncs, wall = fleet(mirror.url, publisher.root, desktops, args)
    report_phase(syncs, wall, mirror.wire()[before:])
    worst = max(s.bytes_received for s in syncs)
    line("new objects", f"{new_objects} objects, {new_bytes} B; the whole store is {publisher.store_bytes()} B")
    ratio = worst / new_bytes
    line("worst", f"{worst} bytes received by one desktop (headers too) = {ratio:.2f}x the new objects")
    converged = {s.index_version for s in syncs} == {version}
    verdict(f"{name} converged", converged, "every desktop at the new version", f"{len(syncs)} desktops")
    target = f"<= {CHANGE_BYTES_TARGET}x new objects"
    verdict(f"{name} change bytes", ratio <= CHANGE_BYTES_TARGET, target, f"{ratio:.2f}x")

    heading(f"{name} 3. Nothing changes: one conditional request per desktop")
    before = len(mirror.wire())
    syncs, wall = fleet(mirror.url, publisher.root, desktops, args)
    wire = mirror.wire()[before:]
    report_phase(syncs, wall, wire)
    most = max(s.requests for s in syncs)
    on_wire = max(wire) if wire else max(s.bytes_received for s in syncs)
    verdict(f"{name} no-change requests", most == 1, "1 request per desktop", f"{most}")
    target = f"<= {NO_CHANGE_BYTES_TARGET} bytes"
    verdict(f"{name} no-change bytes", on_wire <= NO_CHANGE_BYTES_TARGET, target, f"{on_wire} B")

    heading(f"{name} 4. A no-change sync process against the floor ({args.floor_samples} of each, alternating)")
    floors, ours = [], []
    for n in range(args.floor_samples):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", mirror.floor_code], check=True, timeout=60, env=CHILD_ENV)
        floors.append(time.perf_counter() - begin)
        argv = sync_argv(mirror.url, publisher.root, desktops[n % len(desktops)], n % args.profiles)
        ours.append(run_sync(argv).seconds)
    floor, sync_p50 = statistics.median(floors), statistics.median(ours)
    line("floor", f"p50 {ms(floor)}: python -c, one http.client GET of what a no-change sync asks for")
    line("sync", f"p50 {ms(sync_p50)}: python -m mcp_orchestration sync, nothing changed")
    ratio = sync_p50 / floor
    line("ratio", f"{ratio:.2f}x")
    target = f"<= {NO_CHANGE_TIME_TARGET}x the floor"
    verdict(f"{name} no-change time", ratio <= NO_CHANGE_TIME_TARGET, target, f"{ratio:.2f}x")


def nginx_mirror(work: Path, url: str) -> Mirror:
    logs = work / "nginx"

    def wire() -> list[int]:
        return [int(entry.split()[4]) for entry in mirror_servers.requests_logged(logs)]

    port = int(url.rstrip("/").rsplit(":", 1)[1])
    return Mirror("nginx", url, str(work / "www"), wire, get_code("127.0.0.1", port, "/index/HEAD", "*/*"))


def oci_mirror(registry: mirror_servers.RegistryServer) -> Mirror:
    url = registry.url("fleet/mcp", "prod")
    host, port = registry.host.rsplit(":", 1)
    manifest = "application/vnd.oci.image.manifest.v1+json"
    return Mirror("oci", url, url, list, get_code(host, int(port), "/v2/fleet/mcp/manifests/prod", manifest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desktops", type=int, default=1000)
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--floor-samples", type=int, default=100)
    parser.add_argument("--mirrors", default="nginx,oci", help="which mirrors to run, comma-separated")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--scratch", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    print_machine()
    for binary in (mirror_servers.NGINX_BINARY, mirror_servers.REGISTRY_BINARY):
        if not binary.exists():
            raise SystemExit(f"{binary} is not installed (apt-get install nginx-light docker-registry)")
    compile_package()
    line("fleet", f"{args.desktops} desktop processes, {args.workers} at a time; {args.profiles} profiles")
    with scratch_dir(args.scratch, "fleet-bench-", args.keep) as work:
        publisher = Publisher(work, args.profiles)
        if "nginx" in args.mirrors:
            with mirror_servers.serve_nginx(work / "www", work / "nginx") as url:
                desktops = [work / "nginx-desktops" / f"{n:04d}" for n in range(args.desktops)]
                run_mirror(nginx_mirror(work, url), publisher, desktops, args)
        if "oci" in args.mirrors:
            with mirror_servers.registry(work / "registry") as registry:
                desktops = [work / "oci-desktops" / f"{n:04d}" for n in range(args.desktops)]
                run_mirror(oci_mirror(registry), publisher, desktops, args)
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
