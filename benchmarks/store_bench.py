"""Store benchmarks, each measured beside a baseline on the same disk in the same run.

1. Publish with fsync: single-profile ``Repository.publish`` calls against a raw loop of
   write + fsync + rename + directory fsync of a file of the same payload size.
   Target: library / raw >= 0.5.
2. ``verify --deep``: ``Repository.verify(deep=True)`` against ``sha256sum`` (one process
   per ``xargs`` batch) over the same object files. Target: library / sha256sum >= 0.5.
3. Key rotation on a store of 10,000 profiles and ~100,000 objects, with the verify
   checkpoint warm (as after an operator's earlier runs) and cold. Target: <= 1 s.
   Baseline: re-hashing every object, which rotation must not do.

Usage::

    .venv/bin/python benchmarks/store_bench.py            # full run
    .venv/bin/python benchmarks/store_bench.py --quick    # small sizes: a smoke test
    .venv/bin/python benchmarks/store_bench.py --dir /srv/scratch --keep

Exit status is 1 if any target fails. Nothing here changes the library.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_orchestration.app import rotation
from mcp_orchestration.core import fsutil
from mcp_orchestration.core.canonical import canonical_bytes
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust.keys import SigningKey, generate
from report import heading, line, print_machine, scratch_dir, summary, verdict

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

PUBLISH_TARGET = 0.5
VERIFY_TARGET = 0.5
ROTATE_TARGET_S = 1.0


# -- reporting ---------------------------------------------------------------------------


def fmt_rate(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}"


# -- environment -------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The mount holding ``path``: type, device, mount point and options (from /proc/mounts)."""
    target = str(path.resolve())
    best: tuple[str, str, str, str] | None = None
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown (no /proc/mounts)"
    for row in mounts:
        fields = row.split()
        if len(fields) < 4:
            continue
        device, mount, fstype, options = (f.replace("\\040", " ") for f in fields[:4])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) >= len(best[1])):
            best = (device, mount, fstype, options)
    if best is None:
        return "unknown"
    device, mount, fstype, options = best
    return f"{fstype} on {device}, mounted at {mount} ({options})"


def print_environment(work: Path) -> None:
    print_machine()
    line("storage", str(work))
    line("filesystem", filesystem_of(work))
    sha = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True, check=False)
    line("sha256sum", sha.stdout.splitlines()[0] if sha.returncode == 0 and sha.stdout else "not available")


# -- helpers -----------------------------------------------------------------------------


def _syncfs_hook() -> tuple[Any, str] | None:
    """The library's syncfs barrier, if this version has one (a private detail, used only to count or skip it)."""
    if getattr(fsutil, "_SYNCFS", None) is None:
        return None
    return fsutil, "_SYNCFS"


@contextlib.contextmanager
def fsync_disabled() -> Iterator[None]:
    """Skip fsync/syncfs while building a fixture store (not a measurement); ``os.sync()`` afterwards."""
    real = os.fsync
    hook = _syncfs_hook()
    real_syncfs = getattr(*hook) if hook else None
    os.fsync = lambda fd: None
    if hook:
        setattr(*hook, lambda fd: 0)
    try:
        yield
    finally:
        os.fsync = real
        if hook:
            setattr(*hook, real_syncfs)
        os.sync()


@contextlib.contextmanager
def flush_counter() -> Iterator[dict[str, int]]:
    """Count the fsync and syncfs calls made inside the block."""
    real = os.fsync
    hook = _syncfs_hook()
    real_syncfs = getattr(*hook) if hook else None
    count = {"fsync": 0, "syncfs": 0}

    def counting_fsync(fd: FileDescriptorLike) -> None:
        count["fsync"] += 1
        real(fd)

    def counting_syncfs(fd: int) -> int:
        count["syncfs"] += 1
        return int(real_syncfs(fd))  # type: ignore[misc]

    os.fsync = counting_fsync
    if hook:
        setattr(*hook, counting_syncfs)
    try:
        yield count
    finally:
        os.fsync = real
        if hook:
            setattr(*hook, real_syncfs)


def object_files(index: Repository) -> list[tuple[str, int]]:
    """Every object file under the store, as (path relative to objects/sha256, size)."""
    files: list[tuple[str, int]] = []
    for object_id in index.objects.iter_ids():
        rel = f"{object_id[:2]}/{object_id[2:]}"
        files.append((rel, os.stat(index.objects.root / rel).st_size))
    return files


def rehash_all(root: Path, files: list[tuple[str, int]]) -> float:
    """Seconds to read and SHA-256 every object file (the cheapest full re-hash)."""
    started = time.perf_counter()
    for rel, _size in files:
        with open(root / rel, "rb") as handle:
            hashlib.sha256(handle.read()).digest()
    return time.perf_counter() - started


def mcp_payload(client: str, profile: str, revision: int, size: int) -> dict[str, Any]:
    """A realistic MCP client config, padded so its canonical form is exactly ``size`` bytes."""
    payload: dict[str, Any] = {
        "mcpServers": {
            "github": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN_FILE": "/run/secrets/github_token"},
            },
            "filesystem": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem", f"/home/{client}/{profile}"],
            },
        },
        "revision": f"{revision:010d}",
        "notes": "",
    }
    missing = size - len(canonical_bytes(payload))
    payload["notes"] = "n" * max(0, missing)
    return payload


def time_once(func: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = func()
    return time.perf_counter() - started, value


def top_of_profile(func: Callable[[], Any], limit: int) -> str:
    """cProfile ``func`` once; the top ``limit`` functions by internal time."""
    profiler = cProfile.Profile()
    profiler.enable()
    func()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    rows = [r for r in out.getvalue().splitlines() if r.strip()]
    start = next((i for i, r in enumerate(rows) if r.lstrip().startswith("ncalls")), 0)
    return "\n".join("      " + r for r in rows[start:])


# -- 1. publish with fsync ---------------------------------------------------------------


def raw_write(directory: Path, name: str, data: bytes) -> None:
    """One durable file write: temp file, write, fsync, rename, fsync the directory."""
    temp = directory / f".tmp-{name}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, directory / name)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def bench_publish(
    work: Path, key: SigningKey, *, count: int, payload_size: int, rounds: int, dirty_mb: int, profile: bool
) -> Repository:
    heading("1. Publish with fsync")
    index = Repository(work / "publish-store")
    index.initialize(key)
    raw_dir = work / "publish-raw"
    raw_dir.mkdir()
    targets = [(f"client-{c}", f"profile-{p}") for c in range(4) for p in range(5)]
    revision = 0

    def publish_one() -> None:
        nonlocal revision
        revision += 1
        client, prof = targets[revision % len(targets)]
        payload = mcp_payload(client, prof, revision, payload_size)
        result = index.publish(key, [ProfileUpdate(client, prof, payload, "bench")])
        assert not result.unchanged

    raw_count = 0
    raw_data = os.urandom(payload_size)

    def raw_one() -> None:
        nonlocal raw_count
        raw_count += 1
        raw_write(raw_dir, f"{raw_count:010d}", raw_data)

    actual_size = len(canonical_bytes(mcp_payload(*targets[0], 1, payload_size)))
    with flush_counter() as flushes:
        publish_one()
    flush_text = f"{flushes['fsync']} fsync + {flushes['syncfs']} syncfs calls per publish"
    for _ in range(5):  # warm-up, not timed
        publish_one()
        raw_one()

    lib_s = raw_s = 0.0
    per_round = [count // rounds + (1 if r < count % rounds else 0) for r in range(rounds)]
    for r, n in enumerate(per_round):
        order = ("lib", "raw") if r % 2 == 0 else ("raw", "lib")
        for which in order:
            func = publish_one if which == "lib" else raw_one
            started = time.perf_counter()
            for _ in range(n):
                func()
            elapsed = time.perf_counter() - started
            if which == "lib":
                lib_s += elapsed
            else:
                raw_s += elapsed
    lib_rate = count / lib_s
    raw_rate = count / raw_s
    ratio = lib_rate / raw_rate

    line(
        "ran",
        f"{count} single-profile Repository.publish() calls, each a changed {actual_size} B payload ({flush_text})",
    )
    line("baseline", f"{count} x (write {payload_size} B + fsync + rename + fsync dir), same disk, 2 fsyncs per op")
    line("method", f"{rounds} alternating rounds (library/raw, raw/library, ...) after 5 warm-up ops each")
    line("library", f"{fmt_rate(lib_rate, 'publishes/s')}  ({lib_s / count * 1000:.2f} ms each)")
    line("baseline", f"{fmt_rate(raw_rate, 'writes/s')}  ({raw_s / count * 1000:.2f} ms each)")
    line("ratio", f"{ratio:.3f}  (library / baseline)")
    verdict("publish with fsync", ratio >= PUBLISH_TARGET, f"ratio >= {PUBLISH_TARGET}", f"ratio {ratio:.3f}")
    if dirty_mb > 0:
        dirty = dirty_data_probe(work, {"publish": publish_one, "raw write": raw_one}, dirty_mb)
        line(
            "info",
            f"with {dirty_mb} MB of unrelated unsynced data on the same filesystem (written just before, "
            f"not part of the ratio): one publish {dirty['publish'] * 1000:.1f} ms, "
            f"one raw write {dirty['raw write'] * 1000:.1f} ms",
        )
    if profile:
        print("  profile of 50 publishes (cProfile, by internal time):")

        def fifty_publishes() -> None:
            for _ in range(50):
                publish_one()

        print(top_of_profile(fifty_publishes, 12))
    return index


def dirty_data_probe(work: Path, ops: dict[str, Callable[[], None]], megabytes: int) -> dict[str, float]:
    """Time one call of each op while ``megabytes`` of someone else's writes sit unsynced on the filesystem.

    A filesystem-wide barrier (syncfs) pays for those; a per-file fsync does not.
    """
    blob = os.urandom(1 << 20)
    other = work / "unrelated-unsynced-data"
    seconds: dict[str, float] = {}
    for name, func in ops.items():
        os.sync()
        with open(other, "wb") as handle:
            for _ in range(megabytes):
                handle.write(blob)
        seconds[name], _ = time_once(func)
        other.unlink()
    os.sync()
    return seconds


# -- 3 (setup). the large store -----------------------------------------------------------


def build_large_store(work: Path, key: SigningKey, clients: int, profiles: int, batches: int) -> Repository:
    heading("Building the large store (fixture, not a measurement)")
    index = Repository(work / "large-store")
    started = time.perf_counter()
    with fsync_disabled():
        index.initialize(key)
        for batch in range(1, batches + 1):
            updates = [
                ProfileUpdate(f"client-{c:03d}", f"profile-{p:03d}", mcp_payload(f"c{c}", f"p{p}", batch, 300))
                for c in range(clients)
                for p in range(profiles)
            ]
            result = index.publish(key, updates)
            assert not result.unchanged
    elapsed = time.perf_counter() - started
    line(
        "built",
        f"{clients} clients x {profiles} profiles = {clients * profiles:,} profiles, {batches} batch publishes "
        f"that each update every profile, in {elapsed:.1f} s (fsync/syncfs skipped while building, then os.sync())",
    )
    return index


# -- 2. verify --deep -------------------------------------------------------------------------


def run_sha256sum(root: Path, list_file: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["xargs", "-0", "-a", str(list_file), "sha256sum", "--"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def bench_verify(
    work: Path, index: Repository, files: list[tuple[str, int]], repeats: int, profile: bool
) -> tuple[float, int]:
    heading("2. verify --deep")
    total_bytes = sum(size for _rel, size in files)
    list_file = work / "object-list"
    list_file.write_bytes(b"".join(rel.encode() + b"\0" for rel, _size in files))
    rehash_all(index.objects.root, files)  # warm the page cache for both sides
    verify_times: list[float] = []
    sha_times: list[float] = []
    checked = unreachable = 0
    for _ in range(repeats):
        elapsed, report = time_once(lambda: index.verify(deep=True))
        verify_times.append(elapsed)
        checked = report.objects_checked
        unreachable = getattr(report, "unreachable_objects", 0)
        sha_times.append(run_sha256sum(index.objects.root, list_file))
    v_s, s_s = min(verify_times), min(sha_times)
    v_rate, s_rate = checked / v_s, len(files) / s_s
    ratio = v_rate / s_rate
    mb = total_bytes / 1e6
    line(
        "ran",
        f"Repository.verify(deep=True): {checked:,} objects checked ({unreachable:,} unreachable), best of {repeats}",
    )
    line(
        "baseline",
        f"xargs -0 sha256sum over the same {len(files):,} object files ({mb:.1f} MB), best of {repeats}, "
        "single process per batch, output discarded",
    )
    line("cache", "page cache warm for both (every object read once first); runs alternate verify/sha256sum")
    line(
        "library",
        f"{fmt_rate(v_rate, 'objects/s')}, {mb / v_s:,.1f} MB/s  ({v_s:.3f} s; all runs: "
        + ", ".join(f"{t:.3f}" for t in verify_times)
        + ")",
    )
    line(
        "baseline",
        f"{fmt_rate(s_rate, 'objects/s')}, {mb / s_s:,.1f} MB/s  ({s_s:.3f} s; all runs: "
        + ", ".join(f"{t:.3f}" for t in sha_times)
        + ")",
    )
    line("ratio", f"{ratio:.3f}  (library objects/s / sha256sum objects/s)")
    verdict("verify --deep", ratio >= VERIFY_TARGET, f"ratio >= {VERIFY_TARGET}", f"ratio {ratio:.3f}")
    if profile:
        print("  profile of one verify --deep (cProfile, by internal time; cProfile itself slows it):")
        print(top_of_profile(lambda: index.verify(deep=True), 14))
    return v_s, checked


# -- 3. rotation -------------------------------------------------------------------------


def bench_rotation(
    index: Repository, files: list[tuple[str, int]], keys: list[SigningKey], publish_index: Repository, expected: int
) -> None:
    heading("3. Key rotation on the large store")
    profiles = sum(len(p) for p in index.list_profiles().values())
    line(
        "store",
        f"{profiles:,} profiles, {len(files):,} objects counted on disk (expected {expected:,}: artifacts, entries, "
        "client trees, roots, heads)",
    )

    index.verify()  # an operator's earlier verify: the checkpoint is the current head
    guard = index.guard()
    assert guard is not None
    version_before = guard.index_version
    os.sync()  # neither rotation pays for unsynced writes made earlier in this run
    warm_s, warm = time_once(lambda: rotation.rotate(index, keys[0], keys[1]))
    assert not warm.already_done and warm.index_version == version_before + 1

    index.layout.verified_path.unlink()  # no checkpoint: the chain check walks back to version 1
    guard = index.guard()
    assert guard is not None
    cold_heads = guard.index_version
    os.sync()
    cold_s, cold = time_once(lambda: rotation.rotate(index, keys[1], keys[2]))
    assert not cold.already_done

    after = index.verify()
    assert after.keyid == keys[2].keyid

    rehash_s = rehash_all(index.objects.root, files)

    # How a cold chain check scales with chain length: the publish store has one head per publish.
    publish_index.layout.verified_path.unlink(missing_ok=True)
    chain_s, chain = time_once(publish_index.verify)

    line(
        "ran",
        f"rotation.rotate(old -> new) with the verify checkpoint warm (index version {version_before}), "
        "after os.sync()",
    )
    line("ran", f"rotation.rotate(new -> newer) cold: checkpoint removed, chain checked over {cold_heads} heads")
    line("baseline", f"read + SHA-256 of all {len(files):,} objects in Python (what rotation must NOT do)")
    line("warm", f"{warm_s * 1000:.1f} ms")
    line("cold", f"{cold_s * 1000:.1f} ms")
    line("baseline", f"{rehash_s * 1000:.1f} ms")
    line("ratio", f"warm {warm_s / rehash_s:.4f}, cold {cold_s / rehash_s:.4f}  (rotation / full re-hash)")
    line(
        "info",
        f"cold chain check alone on the publish store: {chain.heads_checked} heads in {chain_s * 1000:.1f} ms "
        f"({chain_s / chain.heads_checked * 1e6:.0f} us/head): a cold rotation grows with the head count",
    )
    verdict(
        "rotation (warm checkpoint)",
        warm_s <= ROTATE_TARGET_S,
        f"<= {ROTATE_TARGET_S} s",
        f"{warm_s:.3f} s",
        "target warm",
    )
    verdict(
        "rotation (cold checkpoint)",
        cold_s <= ROTATE_TARGET_S,
        f"<= {ROTATE_TARGET_S} s",
        f"{cold_s:.3f} s",
        "target cold",
    )


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch directory (default: $TMPDIR)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to smoke-test the script")
    parser.add_argument("--publishes", type=int, default=None, help="timed publishes (default 300, quick 30)")
    parser.add_argument("--payload-bytes", type=int, default=1024, help="publish payload size (default 1024)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating publish/raw rounds (default 6)")
    parser.add_argument("--clients", type=int, default=None, help="large store clients (default 100, quick 10)")
    parser.add_argument("--profiles", type=int, default=None, help="profiles per client (default 100, quick 10)")
    parser.add_argument("--batches", type=int, default=None, help="batch publishes (default 5, quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="verify/sha256sum repeats (default 3, quick 1)")
    parser.add_argument(
        "--dirty-mb", type=int, default=None, help="unrelated unsynced MB for the publish info line (64, quick 8)"
    )
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of publish and verify")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    quick = args.quick
    args.publishes = args.publishes or (30 if quick else 300)
    args.clients = args.clients or (10 if quick else 100)
    args.profiles = args.profiles or (10 if quick else 100)
    args.batches = args.batches or (3 if quick else 5)
    args.repeats = args.repeats or (1 if quick else 3)
    args.dirty_mb = (8 if quick else 64) if args.dirty_mb is None else args.dirty_mb
    args.rounds = max(1, min(args.rounds, args.publishes))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with scratch_dir(args.dir, "mcp-orch-bench-", args.keep) as work:
        note = " (--quick: small sizes, the figures mean little)" if args.quick else ""
        print(f"mcp-orchestration store benchmark{note}")
        print_environment(work)
        keys = [generate() for _ in range(4)]
        publish_index = bench_publish(
            work,
            keys[0],
            count=args.publishes,
            payload_size=args.payload_bytes,
            rounds=args.rounds,
            dirty_mb=args.dirty_mb,
            profile=args.profile,
        )
        large = build_large_store(work, keys[1], args.clients, args.profiles, args.batches)
        files = object_files(large)
        total_profiles = args.clients * args.profiles
        expected = 2 * total_profiles * args.batches + args.clients * args.batches + 2 * (args.batches + 1)
        line("objects", f"{len(files):,} object files on disk ({sum(s for _r, s in files) / 1e6:.1f} MB)")
        bench_verify(work, large, files, args.repeats, args.profile)
        bench_rotation(large, files, keys[1:], publish_index, expected)

    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
