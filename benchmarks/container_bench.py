"""Container benchmarks of the shipped image, each measured beside a baseline in the same run.

1. Cold start: ``docker run -i --rm`` of ``mcp-orchestration:latest`` with the hardened flags
   (the store volume initialised with a published profile, the signing key mounted read-only)
   -> initialize -> tools/list, driven by the same client code as server_bench (``mcp.Client``
   over ``stdio_client``, command ``/usr/bin/docker``). Beside it, in alternating runs, with the
   same flags and mounts: the bare one-tool ``MCPServer`` script of server_bench run in the same
   image (``--entrypoint /venv/bin/python``, the script bind-mounted read-only), and both servers
   with the shipped stdlib bytecode masked (an empty read-only directory mounted over each
   stdlib ``__pycache__``) and with all bytecode ignored (``PYTHONPYCACHEPREFIX=/nonexistent``,
   which hides the venv's bytecode too). ``python -v`` in each variant checks which bytecode it
   really used; the container's cgroup CPU time at the answer is shown beside the wall time.
   Targets: median ours / bare <= 1.25; ours / ours without stdlib bytecode <= 0.8.
2. Image size: the image against its runtime base, the layers it adds, and where the bytes go
   (by Debian package, Python distribution and directory: image_sizes.py). Target: <= 100 MB.
3. Healthcheck latency: ``docker exec`` of ``mcp-orchestration healthcheck`` in a running
   container against ``docker exec`` of ``python -c pass``, alternating. Target: median
   difference < 1 s.
4. Where the container's start-up goes (information): time to first output of a container
   running ``python -c`` (the floor), and ``python -X importtime`` inside the container.

Usage::

    .venv/bin/python benchmarks/container_bench.py            # full run
    .venv/bin/python benchmarks/container_bench.py --quick    # few runs: a smoke test
    .venv/bin/python benchmarks/container_bench.py --runs 20 --execs 30 --keep

Needs a running Docker engine and the image (``make image``); runs as root (the key file is
chowned to the container's uid 65532). Exit status is 1 if any target fails. It never builds,
removes or changes an image; it removes only the containers and the volume it created.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

import image_sizes
from mcp_orchestration.trust.keys import generate
from report import heading, line, ms, percentile, print_machine, scratch_dir, summary, verdict
from server_bench import CLIENT, ECHO_SERVER, MODE, PROFILE, sample_config

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
IMAGE = os.environ.get("MCP_ORCHESTRATION_IMAGE", "mcp-orchestration:latest")
BASE_IMAGE = "mcp-orchestration/distroless-python3-debian13:nonroot"
START_TARGET = 1.25
BYTECODE_TARGET = 0.8
HEALTH_TARGET_S = 1.0
SIZE_TARGET = 100_000_000  # bytes, as docker image inspect counts them
REFERENCE = "issue's reference for a bare server: 1.11 s without stdlib bytecode, 0.72 s with it"

NONROOT = 65532
PYTHON = "/venv/bin/python"
ENTRY = "/venv/bin/mcp-orchestration"
ECHO_PATH = "/opt/bench/echo_server.py"
STORE = "/var/lib/mcp-orchestration"
KEY_PATH = "/run/secrets/signing_key"
HARDENED = ("--init", "--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
LIST_PYCACHE = (
    "import glob, os, sysconfig; pattern = sysconfig.get_paths()['stdlib'] + '/**/__pycache__/*.pyc'; "
    "print('\\n'.join(sorted({os.path.dirname(p) for p in glob.glob(pattern, recursive=True)})))"
)


@dataclass(frozen=True)
class Variant:
    name: str
    ours: bool
    bytecode: str  # "shipped", "no stdlib" (stdlib __pycache__ masked) or "none" (PYTHONPYCACHEPREFIX)


VARIANTS = [
    Variant(f"{server}{suffix}", server == "ours", bytecode)
    for bytecode, suffix in (("shipped", ""), ("no stdlib", " -stdpyc"), ("none", " -allpyc"))
    for server in ("ours", "bare")
]


@dataclass
class Fixture:
    work: Path
    label: str
    volume: str
    key_file: Path
    echo_script: Path
    empty_dir: Path
    pycache_dirs: list[str]


def docker(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER, *args], input=stdin, capture_output=True, text=True, timeout=300, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... exited {result.returncode}: {result.stderr.strip()}")
    return result


def run_args(fx: Fixture, variant: Variant, python_flags: Sequence[str] = (), interactive: bool = True) -> list[str]:
    """``docker run`` arguments for a variant; with ``python_flags``, the entrypoint is python itself."""
    args = ["run", *(["-i"] if interactive else []), "--rm", *HARDENED, "--label", fx.label]
    args += ["-v", f"{fx.volume}:{STORE}", "-v", f"{fx.key_file}:{KEY_PATH}:ro"]
    if variant.bytecode == "no stdlib":
        for directory in fx.pycache_dirs:
            args += ["-v", f"{fx.empty_dir}:{directory}:ro"]
    elif variant.bytecode == "none":
        args += ["-e", "PYTHONPYCACHEPREFIX=/nonexistent"]
    if not variant.ours:
        script = ["-v", f"{fx.echo_script}:{ECHO_PATH}:ro", "--entrypoint", PYTHON]
        return [*args, *script, IMAGE, *python_flags, ECHO_PATH]
    if python_flags:
        return [*args, "--entrypoint", PYTHON, IMAGE, *python_flags, ENTRY, "serve"]
    return [*args, IMAGE]  # the image's own entrypoint and CMD: `mcp-orchestration serve`


# -- environment and fixture ---------------------------------------------------------------


def print_environment(work: Path) -> None:
    print_machine()
    engine = docker("version", "--format", "{{.Server.Version}} (client {{.Client.Version}})").stdout.strip()
    line("engine", f"Docker {engine}, {DOCKER}")
    image_id = docker("image", "inspect", "-f", "{{.Id}} created {{.Created}}", IMAGE).stdout.strip()
    line("image", f"{IMAGE} {image_id[7:19]} {image_id.split(' ', 1)[1]}")
    line("scratch", str(work))


def build_fixture(work: Path) -> Fixture:
    """A fresh volume holding an initialised store with one published profile, its key, the echo script."""
    run = uuid.uuid4().hex[:12]
    secrets = work / "secrets"
    secrets.mkdir(mode=0o700)
    key_file = secrets / "signing_key"
    key_file.write_bytes(generate().serialize("pkcs8", None))
    os.chown(key_file, NONROOT, NONROOT)
    key_file.chmod(0o400)
    echo_script = work / "echo_server.py"
    echo_script.write_text(ECHO_SERVER)
    echo_script.chmod(0o444)
    empty_dir = work / "empty"
    empty_dir.mkdir(mode=0o755)
    fx = Fixture(work, f"mcpo-container-bench={run}", f"mcpo-bench-{run}", key_file, echo_script, empty_dir, [])
    docker("volume", "create", "--label", fx.label, fx.volume)
    try:
        docker(*run_args(fx, VARIANTS[0], interactive=False), "init")
        publish = ["publish", "--client", CLIENT, "--profile", PROFILE, "--file", "-", "--changelog", "benchmark"]
        docker(*run_args(fx, VARIANTS[0]), *publish, stdin=json.dumps(sample_config()))
        listing = docker("run", "--rm", "--network", "none", "--entrypoint", PYTHON, IMAGE, "-c", LIST_PYCACHE)
    except BaseException:
        cleanup(fx)
        raise
    fx.pycache_dirs = listing.stdout.split()
    return fx


def cleanup(fx: Fixture) -> None:
    """Remove the containers (by this run's label) and the volume this run created."""
    leftover = docker("ps", "-aq", "--filter", f"label={fx.label}", check=False).stdout.split()
    if leftover:
        docker("rm", "-f", *leftover, check=False)
    docker("volume", "rm", "-f", fx.volume, check=False)


# -- 1. cold start -------------------------------------------------------------------------


def bytecode_use(fx: Fixture, variant: Variant) -> dict[str, tuple[int, int]]:
    """``python -v`` in the container (stdin at EOF, so the server exits after start-up):
    modules loaded from a .pyc and compiled from source, for the stdlib and the venv."""
    stderr = docker(*run_args(fx, variant, ["-v"], interactive=False), check=False).stderr
    counts = {"stdlib": [0, 0], "venv": [0, 0]}
    for row in stderr.splitlines():
        if row.startswith("# code object from "):
            path = row.removeprefix("# code object from ").strip("'")
            where = "venv" if path.startswith("/venv/") else "stdlib"
            counts[where][0 if path.endswith(".pyc") else 1] += 1
    return {where: (pyc, source) for where, (pyc, source) in counts.items()}


def container_cpu(cidfile: Path) -> float | None:
    """CPU seconds (user + sys) used so far by every process in the container, from its cgroup."""
    cid = cidfile.read_text().strip()
    for path, scale in (
        (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),  # cgroup v1, cgroupfs driver
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),  # cgroup v2, systemd driver
    ):
        with contextlib.suppress(OSError):
            text = Path(path).read_text()
            return int(text.split()[1] if text.startswith("usage_usec") else text) * scale
    return None


async def cold_start(fx: Fixture, variant: Variant, errlog: TextIO) -> tuple[float, float | None, int]:
    """Seconds from spawning ``docker run`` to the tools/list answer, the container's CPU seconds by
    then, and the number of tools (shutdown not timed)."""
    cidfile = fx.work / f"cid-{uuid.uuid4().hex}"
    args = run_args(fx, variant)
    params = StdioServerParameters(command=DOCKER, args=[args[0], "--cidfile", str(cidfile), *args[1:]])
    started = time.perf_counter()
    async with Client(stdio_client(params, errlog=errlog), mode=MODE) as client:
        listed = await client.list_tools()
        elapsed = time.perf_counter() - started
        cpu = container_cpu(cidfile)
    cidfile.unlink()
    return elapsed, cpu, len(listed.tools)


def bench_cold_start(fx: Fixture, runs: int) -> None:
    heading("1. Cold start: docker run -> initialize -> tools/list")
    times: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    tools: dict[str, int] = {}
    logs = {v.name: fx.work / f"{v.name.replace(' ', '')}-cold.stderr" for v in VARIANTS}
    handles = {name: path.open("w") for name, path in logs.items()}
    try:
        for variant in VARIANTS:  # warm-up: page cache, the engine's image and volume metadata
            *_, tools[variant.name] = anyio.run(cold_start, fx, variant, handles[variant.name])
        for run in range(runs):
            shift = run % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                elapsed, used, _ = anyio.run(cold_start, fx, variant, handles[variant.name])
                times[variant.name].append(elapsed)
                if used is not None:
                    cpu[variant.name].append(used)
    finally:
        for handle in handles.values():
            handle.close()

    line("ran", f"{runs} x `docker run -i --rm {' '.join(HARDENED)} -v VOLUME:{STORE} -v KEY:{KEY_PATH}:ro {IMAGE}`")
    line("", f"(serve; store with 1 profile, key mounted), {tools['ours']} tools listed")
    line("baseline", "bare: server_bench's one-tool MCPServer script in the same image, same flags and mounts,")
    line("", f"`--entrypoint {PYTHON}`, script bind-mounted read-only at {ECHO_PATH} ({tools['bare']} tool listed)")
    line("", f"-stdpyc: an empty read-only dir mounted over each of the {len(fx.pycache_dirs)} stdlib __pycache__")
    line("", "-allpyc: -e PYTHONPYCACHEPREFIX=/nonexistent (Python then reads bytecode only under that prefix)")
    line(
        "method",
        f"same client code as server_bench (mcp.Client over stdio_client, command {DOCKER}, {MODE} handshake); "
        f"one untimed warm-up each, then {runs} rounds over the {len(VARIANTS)} variants, the order rotated "
        "each round; timed from spawning the docker client to the tools/list answer (shutdown not timed); "
        "cpu: the container's cgroup CPU time (user + sys) at the answer, less sensitive to load",
    )
    line("verified", "python -v in each variant (server started, stdin at EOF): modules from .pyc / compiled:")
    for variant in VARIANTS:
        (std_pyc, std_src), (venv_pyc, venv_src) = bytecode_use(fx, variant).values()
        print(f"      {variant.name:<12} stdlib {std_pyc:>3} / {std_src:<3}  venv {venv_pyc:>3} / {venv_src}")
    med = {name: statistics.median(values) for name, values in times.items()}
    med_cpu = {name: statistics.median(values) if values else math.nan for name, values in cpu.items()}
    for variant in VARIANTS:
        values = times[variant.name]
        line(
            "median/p90" if variant is VARIANTS[0] else "",
            f"{variant.name:<12} {ms(med[variant.name]):>10}  p90 {ms(percentile(values, 0.9)):>10}  "
            f"min {ms(min(values)):>10}   cpu median {ms(med_cpu[variant.name]):>9}",
        )
    line("reference", REFERENCE)

    def ratios(ours: str, base: str) -> str:
        paired = statistics.median(a / b for a, b in zip(times[ours], times[base], strict=True))
        return (
            f"{ours} / {base} {med[ours] / med[base]:.3f}  (median of per-round ratios {paired:.3f}; "
            f"cpu {med_cpu[ours] / med_cpu[base]:.3f}; difference of medians {ms(med[ours] - med[base])})"
        )

    ours_bare = med["ours"] / med["bare"]
    ours_std = med["ours"] / med["ours -stdpyc"]
    line("ratio", ratios("ours", "bare"))
    verdict("cold start vs bare", ours_bare <= START_TARGET, f"ours / bare <= {START_TARGET}", f"ratio {ours_bare:.3f}")
    line("ratio", ratios("ours", "ours -stdpyc"))
    verdict(
        "stdlib bytecode pays",
        ours_std <= BYTECODE_TARGET,
        f"ours / ours -stdpyc <= {BYTECODE_TARGET}",
        f"ratio {ours_std:.3f}",
    )
    for ours, base in (("ours", "ours -allpyc"), ("bare", "bare -stdpyc"), ("bare", "bare -allpyc")):
        line("info", ratios(ours, base))
    for name, path in logs.items():
        if size := path.stat().st_size:
            line("stderr", f"{name}: {size} bytes on stderr over all runs (see {path} with --keep)")


# -- 2. image size -------------------------------------------------------------------------


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def bench_image_size(show: int) -> None:
    heading(f"2. Image size (target: at most {mb(SIZE_TARGET)})")
    ours, base = (int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout) for image in (IMAGE, BASE_IMAGE))
    history = docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", IMAGE)
    layers = [row.split("\t", 1) for row in history.stdout.splitlines()]
    line("ran", f"docker image inspect / docker history / docker export of {IMAGE}")
    line("baseline", f"the runtime base {BASE_IMAGE}")
    line("ours", mb(ours))
    line("baseline", mb(base))
    line("added", f"{mb(ours - base)} ({ours / base - 1:+.0%} on the base); ratio {ours / base:.2f}")
    for layer_size, created_by in layers:
        if int(layer_size) > 0:
            line("layer", f"{mb(int(layer_size)):>9}  {created_by.strip()[:90]}")
    sizes = image_sizes.measure(DOCKER, IMAGE)
    kinds = {"deb": "Debian packages", "py": "Python distributions"}
    for kind, title in kinds.items():
        owned = [(name, size) for name, size in sizes.packages.most_common() if name.startswith(kind + ":")]
        line(title, f"{mb(sum(size for _, size in owned))} in {len(owned)}; the largest {show}:")
        for name, size in owned[:show]:
            line("", f"{mb(size):>9}  {name.split(':', 1)[1]}")
    line("unowned", f"{mb(sizes.packages['unowned'])} (stdlib bytecode, ld.so.cache, CA bundle, passwd...)")
    line("directories", f"the largest {show} of {len(sizes.directories)}:")
    for directory, size in sizes.directories.most_common(show):
        line("", f"{mb(size):>9}  {directory}")
    verdict("image size", ours <= SIZE_TARGET, f"<= {mb(SIZE_TARGET)}", mb(ours))


# -- 3. healthcheck latency ----------------------------------------------------------------


def timed(args: Sequence[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=60, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} exited {completed.returncode}: {completed.stderr.strip()}")
    return elapsed


def bench_healthcheck(fx: Fixture, execs: int) -> None:
    heading("3. Healthcheck latency: docker exec in a running container")
    name = f"mcpo-bench-health-{uuid.uuid4().hex[:8]}"
    args = run_args(fx, VARIANTS[0])
    docker(args[0], "-d", "--name", name, *args[1:])  # -i with nothing attached: serve waits on stdin
    commands = {"ours": [ENTRY, "healthcheck"], "baseline": [PYTHON, "-c", "pass"]}
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    try:
        for command in commands.values():  # warm-up
            timed(["exec", name, *command])
        for run in range(execs):
            for which in ("ours", "baseline") if run % 2 == 0 else ("baseline", "ours"):
                times[which].append(timed(["exec", name, *commands[which]]))
    finally:
        docker("rm", "-f", name, check=False)
    med = {which: statistics.median(values) for which, values in times.items()}
    line("ran", f"{execs} x `docker exec CONTAINER {' '.join(commands['ours'])}` (exit 0 checked)")
    line("baseline", f"{execs} x `docker exec CONTAINER {' '.join(commands['baseline'])}`")
    line("method", "one container running serve (hardened flags, store and key mounted); alternating, one warm-up each")
    for which, values in times.items():
        line(which, f"median {ms(med[which])}, p90 {ms(percentile(values, 0.9))}, min {ms(min(values))}")
    extra = med["ours"] - med["baseline"]
    line("difference", f"{ms(extra)} (median ours - median baseline); ratio {med['ours'] / med['baseline']:.2f}")
    verdict("healthcheck", extra < HEALTH_TARGET_S, f"ours - baseline < {HEALTH_TARGET_S:.0f} s", ms(extra))


# -- 4. where start-up goes ----------------------------------------------------------------


def first_output(args: Sequence[str]) -> float:
    """Seconds from spawning ``docker run`` to the container's first line on stdout."""
    started = time.perf_counter()
    with subprocess.Popen([DOCKER, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        assert process.stdout is not None
        process.stdout.readline()
        elapsed = time.perf_counter() - started
        process.stdout.read()
    return elapsed


def import_self_times(fx: Fixture, variant: Variant) -> dict[str, int]:
    """``python -X importtime`` of a server in the container: self microseconds per module."""
    stderr = docker(*run_args(fx, variant, ["-X", "importtime"], interactive=False), check=False).stderr
    rows = {}
    for row in stderr.splitlines():
        if row.startswith("import time:") and "self [us]" not in row:
            self_us, _, name = row.removeprefix("import time:").split("|")
            rows[name.strip()] = int(self_us)
    return rows


def median_import_times(fx: Fixture, variant: Variant, repeats: int) -> dict[str, int]:
    """Each module's median self time over ``repeats`` containers (modules seen in every one)."""
    runs = [import_self_times(fx, variant) for _ in range(repeats)]
    return {name: int(statistics.median(run[name] for run in runs)) for name in runs[0] if all(name in r for r in runs)}


def bench_breakdown(fx: Fixture, repeats: int, show: int) -> None:
    heading("4. Where the container's start-up goes (information, no target)")
    floors = {
        "python -c print": "print('up', flush=True)",
        "import mcp.server.mcpserver": "import mcp.server.mcpserver; print('up', flush=True)",
    }
    base = run_args(fx, VARIANTS[0], interactive=False)[:-1]
    samples: dict[str, list[float]] = {name: [] for name in floors}
    for _ in range(repeats):
        for name, code in floors.items():
            samples[name].append(first_output([*base, "--entrypoint", PYTHON, IMAGE, "-c", code]))
    line("floors", f"docker run (same flags and mounts) to the first line on stdout, median of {repeats}: ")
    line("", ", ".join(f"`{name}` {ms(statistics.median(values))}" for name, values in samples.items()))
    rows = {v.name: median_import_times(fx, v, repeats) for v in VARIANTS[:4]}
    totals = ", ".join(f"{name} {len(r)} modules {sum(r.values()) / 1000:.0f} ms" for name, r in rows.items())
    line("importtime", f"-X importtime in the container, per-module median of {repeats}, self times summed: {totals}")
    for name in ("ours", "bare"):
        packages = by_package_names(rows[name])
        line("", f"{name} by package, ms: " + ", ".join(f"{p} {v / 1000:.1f}" for p, v in packages[:show]))
    extra = {name: us for name, us in rows["ours"].items() if name not in rows["bare"]}
    packages = by_package_names(extra)
    line(
        "beyond bare",
        f"{len(extra)} modules, {sum(extra.values()) / 1000:.1f} ms: "
        + ", ".join(f"{p} {v / 1000:.1f}" for p, v in packages[:show]),
    )


def by_package_names(rows: dict[str, int]) -> list[tuple[str, int]]:
    """Self microseconds summed per top-level package, largest first."""
    totals: dict[str, int] = {}
    for name, self_us in rows.items():
        totals[name.split(".")[0]] = totals.get(name.split(".")[0], 0) + self_us
    return sorted(totals.items(), key=lambda item: -item[1])


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch directory (default: $TMPDIR)")
    parser.add_argument("--quick", action="store_true", help="few runs, to smoke-test the script")
    parser.add_argument("--runs", type=int, default=None, help="cold starts per variant (default 15, quick 2)")
    parser.add_argument("--execs", type=int, default=None, help="docker execs per command (default 15, quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="floor repeats (default 5, quick 1)")
    parser.add_argument(
        "--show", type=int, default=8, help="entries in the size and import breakdown lists (default 8)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 15)
    args.execs = args.execs or (3 if args.quick else 15)
    args.repeats = args.repeats or (1 if args.quick else 5)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with scratch_dir(args.dir, "mcp-orch-container-bench-", args.keep) as work:
        note = " (--quick: few runs, the figures mean little)" if args.quick else ""
        print(f"mcp-orchestration container benchmark{note}")
        print_environment(work)
        fx = build_fixture(work)
        try:
            bench_cold_start(fx, args.runs)
            bench_image_size(args.show)
            bench_healthcheck(fx, args.execs)
            bench_breakdown(fx, args.repeats, args.show)
        finally:
            cleanup(fx)
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
