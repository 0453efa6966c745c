"""What the host trust anchor costs, each figure beside the same work without it, in the same run.

1. Publish: ``Repository.publish`` under the host anchor (root pin, descent, the
   head accepted recorded durably in the host state) against ``Repository.publish``
   without a policy on a twin store. Target: <= 1.75x: the anchor adds one
   fsync'd file (and its directory) to the handful a publish writes. The whole
   gate (``operations.publish_payload``: validation, secret rules) is printed
   beside it.
2. Verify: ``Repository.verify`` under the host anchor against ``Repository.verify``
   without a policy, a new ``Repository`` (no caches) each call. Target: <= 1.25x.
3. Cold start of a read: ``mcp-orchestration get`` in a new process against
   ``mcp-orchestration --version`` (the interpreter and imports alone). Printed
   beside the figures of the release before the anchor, when ``--before`` names
   its source tree. Target: the anchor adds <= 15 ms.
4. Descent: a host whose last accepted head is N versions back walks N heads
   once; printed per head.

Usage::

    .venv/bin/python benchmarks/trust_bench.py [--quick] [--before /path/to/old/src]
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
from pathlib import Path

from mcp_orchestration.app import operations
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import verifier
from mcp_orchestration.trust.keys import generate
from report import heading, line, print_machine, scratch_dir, summary, verdict

PUBLISH_RATIO_TARGET = 1.75
VERIFY_RATIO_TARGET = 1.25
COLD_START_TARGET_MS = 15.0


def payload(number: int) -> dict[str, object]:
    return {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "server-filesystem@1.0.0", f"/data/{number}"]}}}


def timed(action: Callable[[], object], repeats: int) -> float:
    """The median seconds of ``repeats`` calls."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def app_for(home: Path, key_file: Path) -> App:
    os.environ["MCP_ORCHESTRATION_HOST_STATE"] = str(home.parent / "host-state.json")
    return App(load_settings(home=home, key_file=key_file))


def bench_publish_and_verify(work: Path, publishes: int) -> tuple[float, float]:
    key = generate()
    key_file = work / "key"
    key_file.write_bytes(key.serialize("pkcs8", None))
    key_file.chmod(0o600)
    anchored, plain = work / "anchored", work / "plain"
    app = app_for(anchored, key_file)
    operations.init(app)
    index = Repository(plain / "storage")
    index.initialize(key)
    counter = iter(range(10**9))

    def with_anchor() -> None:
        app.index.publish(key, [ProfileUpdate("claude-desktop", "default", payload(next(counter)))])

    def whole_gate() -> None:
        operations.publish_payload(app, "claude-desktop", "default", payload(next(counter)), "")

    def without() -> None:
        index.publish(key, [ProfileUpdate("claude-desktop", "default", payload(next(counter)))])

    heading("1. publish (fsync), median of alternating rounds")
    rounds = [(timed(with_anchor, publishes // 4), timed(without, publishes // 4)) for _ in range(4)]
    anchored_s, plain_s = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
    line("with the host anchor", f"{anchored_s * 1000:.2f} ms")
    line("Repository.publish alone", f"{plain_s * 1000:.2f} ms")
    line("operations.publish_payload", f"{timed(whole_gate, publishes // 4) * 1000:.2f} ms (anchor and every rule)")
    publish_ratio = anchored_s / plain_s
    verdict(
        "publish ratio", publish_ratio <= PUBLISH_RATIO_TARGET, f"<= {PUBLISH_RATIO_TARGET}x", f"{publish_ratio:.2f}x"
    )

    heading("2. verify (incremental), fresh objects each call")
    verify_anchor = timed(lambda: Repository(anchored / "storage", policy=app.anchor).verify(), 30)
    verify_plain = timed(lambda: Repository(plain / "storage").verify(), 30)
    line("with the host anchor", f"{verify_anchor * 1000:.2f} ms")
    line("Repository.verify alone", f"{verify_plain * 1000:.2f} ms")
    verify_ratio = verify_anchor / verify_plain
    verdict("verify ratio", verify_ratio <= VERIFY_RATIO_TARGET, f"<= {VERIFY_RATIO_TARGET}x", f"{verify_ratio:.2f}x")

    heading("4. descent from a head accepted long ago")
    state = json.loads((work / "host-state.json").read_text())
    record = state["stores"][str(anchored.resolve())]
    version = record["index_version"]
    first = Repository(anchored / "storage")
    history = first.load_history()
    current = first.current_head(history)
    started = time.perf_counter()
    verifier.ancestor_id(current, 1, history, first.objects.get_bytes)
    walk = time.perf_counter() - started
    line("heads walked", f"{version - 1}")
    line("per head", f"{walk / max(version - 1, 1) * 1e6:.1f} us")
    return publish_ratio, verify_ratio


def cold_start(work: Path, source: Path | None, runs: int) -> tuple[float, float]:
    """Median ms of a ``get`` process and of a ``--version`` process, with ``source`` on PYTHONPATH if given."""
    env = {**os.environ, "MCP_ORCHESTRATION_HOME": str(work / "anchored")}
    if source is not None:
        env["PYTHONPATH"] = str(source)
        env["MCP_ORCHESTRATION_DEPLOY_STATE"] = str(work / "old-deploy-state.json")
    get = [sys.executable, "-m", "mcp_orchestration", "get", "--client", "claude-desktop", "--profile", "default"]
    version = [sys.executable, "-m", "mcp_orchestration", "--version"]
    samples: dict[str, list[float]] = {"get": [], "version": []}
    for _ in range(runs):
        for name, argv in (("get", get), ("version", version)):
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True, capture_output=True)
            samples[name].append(time.perf_counter() - started)
    return statistics.median(samples["get"]) * 1000, statistics.median(samples["version"]) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, to smoke-test the script")
    parser.add_argument("--before", type=Path, help="src/ of the release before the anchor, for cold start")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print_machine()
    with scratch_dir(None, "trust-bench-", keep=False) as work:
        bench_publish_and_verify(work, 40 if args.quick else 200)
        heading("3. cold start of `get` (new process), median")
        runs = 5 if args.quick else 15
        get_ms, version_ms = cold_start(work, None, runs)
        line("get, this tree", f"{get_ms:.1f} ms (--version: {version_ms:.1f} ms)")
        added = get_ms - version_ms
        if args.before is not None:
            old_get, old_version = cold_start(work, args.before, runs)
            line("get, --before tree", f"{old_get:.1f} ms (--version: {old_version:.1f} ms)")
            added = (get_ms - version_ms) - (old_get - old_version)
            verdict(
                "anchor's cold-start cost",
                added <= COLD_START_TARGET_MS,
                f"<= {COLD_START_TARGET_MS} ms",
                f"{added:.1f} ms",
            )
        else:
            line("get beyond --version", f"{added:.1f} ms (pass --before to compare with the earlier release)")
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
