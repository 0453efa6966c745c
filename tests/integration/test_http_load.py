"""A bounded load on ``serve --http`` with JWT auth: parallel sessions and stateless requests, all answered.

The server is the real command on 127.0.0.1 (port 0, its URL read from its
log) with ``--issuer`` a real issuer on loopback (``tests/oidc_issuer.py``);
each client has its own read-scope token. Fifty 2025-11-25 sessions
(initialize, three ``tools/call``, DELETE) and fifty 2026-07-28 stateless
clients (discover, three ``tools/call``) run at once through the SDK's own
client (``tests/http_load.py``). Every call must succeed, every HTTP answer be
a success (no 5xx, and no 401/403: every token is accepted), the server's
resident memory (``/proc/PID/status``) grow less than a generous bound, and a
fresh session be answered afterwards. The run is limited in time and stops
the server whatever happens; ``make bench-http`` runs a larger load.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests import http_load
from tests.http_server import http_server
from tests.oidc_issuer import Issuer

pytestmark = pytest.mark.slow

SESSIONS = 50
STATELESS = 50
CALLS = 3
CONCURRENCY = SESSIONS + STATELESS  # all at once: about 150 connections, within the server's 256
TIME_LIMIT = 25.0  # the load itself; a few seconds here
MEMORY_GROWTH_BOUND_KIB = 64 << 10  # 64 MiB for 100 clients; a run grows the server by about 20 MiB
TOOL = "list_clients"  # a read without store I/O: the load falls on the transport and auth


async def bounded_load(url: str, tokens: list[str]) -> http_load.LoadResult:
    with anyio.fail_after(TIME_LIMIT):
        return await http_load.run_load(
            url,
            tool=TOOL,
            arguments={},
            sessions=SESSIONS,
            stateless=STATELESS,
            calls_per_client=CALLS,
            concurrency=CONCURRENCY,
            tokens=tokens,
        )


def test_parallel_sessions_and_stateless_requests_are_all_answered_in_bounded_memory(
    server_env: dict[str, str], issuer: Issuer, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with http_server("--issuer", issuer.url, env=server_env, log=log) as served:
        pid = served.process.pid
        tokens = [issuer.mint(served.url, subject=f"user{n}@example.com") for n in range(SESSIONS + STATELESS + 2)]
        assert anyio.run(http_load.answers, served.url, TOOL, {}, tokens[-1])  # warm: imports, the issuer's keys
        before = http_load.memory_kib(pid)

        result = anyio.run(bounded_load, served.url, tokens)

        after = http_load.memory_kib(pid)
        print(f"\n{result.describe()}")
        peak = http_load.memory_kib(pid, "VmHWM")
        print(f"server memory {before} KiB -> {after} KiB ({(after - before) / 1024:+.1f} MiB), peak {peak} KiB")
        assert result.failures == []
        assert len(result.calls) == result.expected_calls == (SESSIONS + STATELESS) * CALLS
        assert result.completed_clients == SESSIONS + STATELESS
        assert result.protocols == {"2025-11-25": SESSIONS, "2026-07-28": STATELESS}
        assert result.server_errors == 0
        assert set(result.statuses) <= {200, 202}, result.statuses
        assert after - before < MEMORY_GROWTH_BOUND_KIB
        assert anyio.run(http_load.answers, served.url, TOOL, {}, tokens[-2])
        assert served.process.poll() is None
    assert "Traceback" not in log.read_text()
