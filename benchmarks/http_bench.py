"""The MCP server over streamable HTTP on loopback: tools/call latency and a bounded load, beside a bare SDK server.

Three servers run as subprocesses on this interpreter, side by side:

- ours with auth: ``python -m mcp_orchestration serve --http 127.0.0.1:0 --issuer URL`` (an initialised
  store, a signing key file), the issuer a real one on loopback (``tests/oidc_issuer.py``: OpenID metadata,
  a JWKS, RS256 tokens with the read scope and this server's URL as audience);
- ours without auth: the same with ``--no-auth``;
- bare: the SDK's ``MCPServer`` with one tool, ``list_clients``, returning the very payload our
  ``list_clients`` returns, its ``streamable_http_app()`` under uvicorn with our uvicorn settings,
  logging warnings only as ours does (the script is written to the scratch directory at run time).

1. tools/call latency: ``list_clients`` (a read with no store I/O), one client per server and protocol
   generation (``mcp.Client`` over ``streamable_http_client``, an ``httpx2.AsyncClient`` carrying the
   bearer token): ``mode="legacy"`` (a 2025-11-25 session) and ``mode="auto"`` (2026-07-28 stateless
   requests). After a warm-up, sequential calls in blocks that rotate over the six clients, so drift
   and the shared client's cost fall on all alike; the server's CPU time per call is read from /proc.
   Targets: p50 with auth / p50 without <= 1.10; ours (without auth) / bare <= 1.5 at p50 and p99.
2. Where the auth time goes (information): the verifier in this process against the same issuer:
   the token's header, the key lookup, the signature and claims, the thread hop, a remembered token; and
   our ASGI app built twice in this process (auth, none), a 2026-07-28 tools/call through each with no
   socket and no other process: the CPU the auth layer adds per request, free of the machine's noise.
3. Load: parallel sessions and stateless clients (``tests/http_load.py``) against each server in
   alternating rounds: clients/s, tools/call/s, p50/p99, HTTP statuses, server and client CPU, resident
   memory before, after each round and at its peak. Targets: every call succeeds and no 5xx on ours, and
   our memory grows less than a bound between rounds. The ratios to bare are printed, not targeted: the one
   client process is the bottleneck, and a client's session costs more on ours (section 4).
4. Where the load's server CPU goes (information): server CPU per operation, ours (no auth) beside bare,
   sequentially: a session (connect, tools/list, close) of each protocol generation, and a tools/call.

Usage::

    .venv/bin/python benchmarks/http_bench.py            # full run, a few minutes
    .venv/bin/python benchmarks/http_bench.py --quick    # a smoke test: the figures mean little
    .venv/bin/python benchmarks/http_bench.py --calls 1000 --sessions 200 --keep

Exit status is 1 if any target fails. Nothing here changes the library.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import jwt
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the issuer and the load driver

from tests import http_load
from tests.mirror_servers import free_port
from tests.oidc_issuer import Issuer, serve_issuer

from mcp_orchestration import cli
from mcp_orchestration.server import http
from mcp_orchestration.server.app import build_server
from mcp_orchestration.server.auth import JWKS_LIFETIME_SECONDS, JwtSettings, JwtVerifier
from mcp_orchestration.server.scopes import Scope
from mcp_orchestration.server.tools import ConfigTools
from mcp_orchestration.store.repository import Repository
from mcp_orchestration.trust.keys import generate
from report import heading, line, percentile, print_machine, scratch_dir, summary, verdict

AUTH_TARGET = 1.10  # p50 with auth / p50 without
BARE_TARGET = 1.5  # ours / bare, latency (p50, p99)
MEMORY_BOUND_MIB = 32.0  # growth of our resident memory from the first load round's end to the last's
TOOL = "list_clients"
MODES = ("legacy", "auto")
TOKEN_LIFETIME = 3600

BARE_SERVER = '''\
"""A bare MCP server over streamable HTTP: the SDK's MCPServer with one tool, under uvicorn."""

import json
import logging
import sys
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

port, payload_file, limit_concurrency, keep_alive = sys.argv[1:5]
PAYLOAD = json.loads(Path(payload_file).read_text())
# Warnings only, plain text, as `serve` logs: the SDK's default (INFO through rich) costs CPU per session.
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
server = MCPServer("bare", log_level="WARNING")


@server.tool()
def list_clients() -> dict[str, Any]:
    """Return a fixed payload (the size of mcp-orchestration's list_clients)."""
    return PAYLOAD


config = uvicorn.Config(
    server.streamable_http_app(host="127.0.0.1"),
    host="127.0.0.1",
    port=int(port),
    log_config=None,
    access_log=False,
    server_header=False,
    proxy_headers=False,
    limit_concurrency=int(limit_concurrency),
    timeout_keep_alive=int(keep_alive),
    timeout_graceful_shutdown=5,
    ws="none",
    lifespan="on",
)
uvicorn.Server(config).run()
'''

# A benchmark user runs an installed package, whose bytecode pip wrote (as lock_bench.py does).
CHILD_ENV = {
    name: value
    for name, value in os.environ.items()
    if name != "PYTHONDONTWRITEBYTECODE" and not name.startswith("MCP_ORCHESTRATION_")
}


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


# -- the servers -------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    served: http_load.Served
    command: str
    issuer: Issuer | None = None  # tokens for this server come from here

    def token(self, subject: str = "bench@example.com") -> str | None:
        if self.issuer is None:
            return None
        return self.issuer.mint(self.served.url, scopes=Scope.READ.value, subject=subject, lifetime=TOKEN_LIFETIME)


@dataclass
class Fixture:
    work: Path
    issuer: Issuer
    env: dict[str, str]  # the servers' environment: the store and its key
    servers: dict[str, Server] = field(default_factory=dict)


def store_env(work: Path) -> dict[str, str]:
    """An initialised store and its signing key in a 0600 file, as the server's environment names them."""
    key = generate()
    key_file = work / "secrets" / "signing_key"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_bytes(key.serialize("pkcs8", None))
    key_file.chmod(0o600)
    Repository(work / "home" / "storage").initialize(key)
    return {
        **CHILD_ENV,
        "MCP_ORCHESTRATION_HOME": str(work / "home"),
        "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(key_file),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }


@contextlib.contextmanager
def servers(work: Path) -> Iterator[Fixture]:
    """The issuer and the three servers, stopped (their process groups) on the way out."""
    env = store_env(work)
    with contextlib.contextmanager(serve_issuer)() as issuer:
        fx = Fixture(work, issuer, env)
        try:
            ours = [sys.executable, "-m", "mcp_orchestration", "serve", "--http", "127.0.0.1:0"]
            for name, extra, by in (("ours+auth", ["--issuer", issuer.url], issuer), ("ours", ["--no-auth"], None)):
                served = http_load.start([*ours, *extra], env=env, cwd=work, log=work / f"{name}.log")
                fx.servers[name] = Server(name, served, " ".join(["python", *ours[1:], *extra]), by)
            payload = anyio.run(first_result, fx.servers["ours"])
            (work / "payload.json").write_text(json.dumps(payload))
            (work / "bare_server.py").write_text(BARE_SERVER)
            port = free_port()
            limits = [str(http.MAX_CONNECTIONS), str(http.KEEP_ALIVE_SECONDS)]
            bare = [sys.executable, str(work / "bare_server.py"), str(port), str(work / "payload.json"), *limits]
            served = http_load.start(bare, env=env, cwd=work, log=work / "bare.log", port=port)
            fx.servers["bare"] = Server("bare", served, f"python bare_server.py {port} payload.json {' '.join(limits)}")
            yield fx
        finally:
            for server in fx.servers.values():
                http_load.stop(server.served.process)


async def first_result(server: Server) -> dict[str, Any]:
    async with (
        http_load.http_client(server.token()) as client,
        Client(streamable_http_client(server.served.url, http_client=client), mode="legacy") as session,
    ):
        result = await session.call_tool(TOOL, {})
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{TOOL} failed on {server.name}: {result.content}")
    return dict(result.structured_content)


def print_environment(fx: Fixture) -> None:
    print_machine()
    line("packages", f"mcp {version('mcp')}, mcp-orchestration {version('mcp-orchestration')}, pyjwt {jwt.__version__}")
    line("packages", f"uvicorn {version('uvicorn')}, httpx2 {version('httpx2')}, starlette {version('starlette')}")
    line("scratch", str(fx.work))
    line("issuer", f"{fx.issuer.url} (tests/oidc_issuer.py: OpenID metadata, JWKS, RS256 tokens)")
    for server in fx.servers.values():
        line(server.name, f"{server.served.url}  pid {server.served.pid}  `{server.command}`")


# -- 1. latency --------------------------------------------------------------------------


@dataclass
class Samples:
    times: list[float] = field(default_factory=list)
    cpu: float = 0.0  # server CPU seconds over the timed calls
    blocks: list[float] = field(default_factory=list)  # the p50 of each block, in the order they ran

    def p(self, fraction: float) -> float:
        return percentile(self.times, fraction)


def paired(a: Samples, b: Samples) -> float:
    """The median over the rotation's turns of a's block p50 / b's: the two ran moments apart in each turn."""
    return statistics.median(x / y for x, y in zip(a.blocks, b.blocks, strict=True))


async def latency(fx: Fixture, warmup: int, calls: int, block: int) -> dict[tuple[str, str], Samples]:
    samples: dict[tuple[str, str], Samples] = {}
    async with AsyncExitStack() as stack:
        sessions: dict[tuple[str, str], tuple[Server, Client]] = {}
        for server in fx.servers.values():
            for mode in MODES:
                client = await stack.enter_async_context(http_load.http_client(server.token()))
                transport = streamable_http_client(server.served.url, http_client=client)
                session = await stack.enter_async_context(Client(transport, mode=mode))
                sessions[server.name, mode] = (server, session)
                samples[server.name, mode] = Samples()
        for _server, session in sessions.values():
            for _ in range(warmup):
                await call(session)
        order = list(sessions)
        done = 0
        turn = 0
        while done < calls:
            n = min(block, calls - done)
            rotated = order[turn % len(order) :] + order[: turn % len(order)]
            for case in rotated:
                server, session = sessions[case]
                cpu = server.served.cpu_seconds()
                block_times = []
                for _ in range(n):
                    started = time.perf_counter()
                    await call(session)
                    block_times.append(time.perf_counter() - started)
                samples[case].cpu += server.served.cpu_seconds() - cpu
                samples[case].times += block_times
                samples[case].blocks.append(percentile(block_times, 0.5))
            done += n
            turn += 1
    return samples


async def call(session: Client) -> None:
    result = await session.call_tool(TOOL, {})
    if result.is_error:
        raise RuntimeError(f"{TOOL} failed: {result.content}")


def bench_latency(fx: Fixture, warmup: int, calls: int, block: int) -> None:
    heading("1. tools/call latency over HTTP on loopback: list_clients")
    size = len(json.dumps(anyio.run(first_result, fx.servers["ours"])))
    samples = anyio.run(latency, fx, warmup, calls, block)
    line(
        "ran",
        f"{calls} x tools/call {TOOL} ({size} B of structured result) per server and protocol generation: "
        "ours with JWT auth (a read-scope token from the issuer on every request: verified on first sight, "
        "then remembered), ours --no-auth",
    )
    line(
        "baseline", f"{calls} x tools/call {TOOL} on the bare SDK server (the same payload, the same uvicorn settings)"
    )
    line(
        "method",
        f"one client per server and mode (mcp.Client over streamable_http_client, mode legacy = a 2025-11-25 "
        f"session, auto = 2026-07-28 stateless requests), {warmup} untimed calls each, then sequential calls in "
        f"blocks of {block} rotating over the six clients; each call timed from request to parsed result; server "
        "CPU (user+sys, /proc) over the timed calls",
    )
    for mode in MODES:
        print()
        line("mode", f"{mode} ({'2025-11-25 session' if mode == 'legacy' else '2026-07-28 stateless requests'})")
        for name in fx.servers:
            s = samples[name, mode]
            line(
                name,
                f"p50 {us(s.p(0.5))}, p99 {us(s.p(0.99))}, mean {us(statistics.fmean(s.times))}, "
                f"server CPU {us(s.cpu / len(s.times))} per call",
            )
        auth, ours, bare = (samples[name, mode] for name in ("ours+auth", "ours", "bare"))
        r_auth = auth.p(0.5) / ours.p(0.5)
        r50, r99 = ours.p(0.5) / bare.p(0.5), ours.p(0.99) / bare.p(0.99)
        line(
            "ratio",
            f"auth / no-auth: p50 {r_auth:.3f}, p99 {auth.p(0.99) / ours.p(0.99):.3f}, server CPU "
            f"{auth.cpu / ours.cpu:.2f} (+{us((auth.cpu - ours.cpu) / len(auth.times))} per call); median of the "
            f"{len(auth.blocks)} turns' block p50 ratios {paired(auth, ours):.3f}",
        )
        line(
            "ratio",
            f"ours / bare: p50 {r50:.3f}, p99 {r99:.3f}, server CPU {ours.cpu / bare.cpu:.2f}; median of the turns' "
            f"block p50 ratios {paired(ours, bare):.3f}",
        )
        line(
            "info",
            f"ours+auth / bare: p50 {auth.p(0.5) / bare.p(0.5):.3f}, p99 {auth.p(0.99) / bare.p(0.99):.3f}",
        )
        verdict(f"{mode} auth/no-auth p50", r_auth <= AUTH_TARGET, f"p50 ratio <= {AUTH_TARGET}", f"{r_auth:.3f}")
        verdict(f"{mode} ours/bare p50", r50 <= BARE_TARGET, f"p50 ratio <= {BARE_TARGET}", f"{r50:.3f}")
        verdict(f"{mode} ours/bare p99", r99 <= BARE_TARGET, f"p99 ratio <= {BARE_TARGET}", f"{r99:.3f}")


# -- 2. where the auth time goes ---------------------------------------------------------


def per_call(operation: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - started) / count


async def verify_tokens(verifier: JwtVerifier, fresh: list[str], token: str, count: int) -> tuple[float, float, float]:
    """Seconds per ``verify_token`` of a token not seen before, of one remembered, and per bare thread hop."""
    started = time.perf_counter()
    for each in fresh:
        if await verifier.verify_token(each) is None:
            raise RuntimeError("a token was refused")
    first_sight = (time.perf_counter() - started) / len(fresh)
    await verifier.verify_token(token)
    started = time.perf_counter()
    for _ in range(count):
        if await verifier.verify_token(token) is None:
            raise RuntimeError("the token was refused")
    remembered = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for _ in range(count):
        await anyio.to_thread.run_sync(lambda: None)
    return first_sight, remembered, (time.perf_counter() - started) / count


IN_PROCESS_PORT = 8000  # the in-process apps' canonical URL (no socket: the Host header must name it)
MODERN_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {
        "name": TOOL,
        "arguments": {},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "http_bench", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    },
}
MODERN_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": TOOL,
}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def in_process_app(fx: Fixture, issuer: str | None) -> Any:
    """Our ASGI app as ``serve --http`` builds it (with the issuer's JWT auth, or none), in this process."""
    endpoint = http.HttpEndpoint("127.0.0.1", IN_PROCESS_PORT)
    with environment({name: value for name, value in fx.env.items() if name.startswith(("MCP_", "PYTHON_KEY"))}):
        tools = ConfigTools(cli._app(cli.build_parser().parse_args(["serve"])), None)
    auth, verifier = http.access_control(
        endpoint, issuer=issuer, jwks_url=None, token_file=None, no_auth=issuer is None
    )
    return http.http_app(build_server(tools, auth=auth, token_verifier=verifier), endpoint)


async def in_process_cpu(apps: dict[str, tuple[Any, str | None]], count: int, rounds: int) -> dict[str, float]:
    """CPU seconds of this process per 2026-07-28 tools/call through each app (client side included), median round."""
    body = json.dumps(MODERN_CALL)
    blocks: dict[str, list[float]] = {name: [] for name in apps}
    async with AsyncExitStack() as stack:
        clients: dict[str, tuple[httpx2.AsyncClient, dict[str, str]]] = {}
        for name, (app, token) in apps.items():
            inner = app.app  # BoundedBody's app: the SDK's Starlette app, whose lifespan runs the session manager
            await stack.enter_async_context(inner.router.lifespan_context(inner))
            transport = httpx2.ASGITransport(app=app)
            base = f"http://127.0.0.1:{IN_PROCESS_PORT}"
            client = await stack.enter_async_context(httpx2.AsyncClient(transport=transport, base_url=base))
            headers = MODERN_HEADERS | ({"Authorization": f"Bearer {token}"} if token else {})
            clients[name] = (client, headers)
            for _ in range(20):
                response = await client.post("/mcp", content=body, headers=headers)
                if response.status_code != 200 or '"isError":true' in response.text:
                    raise RuntimeError(f"in-process {name}: {response.status_code} {response.text[:200]}")
        for turn in range(rounds):
            names = list(clients)
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                client, headers = clients[name]
                started = time.process_time()
                for _ in range(count):
                    await client.post("/mcp", content=body, headers=headers)
                blocks[name].append((time.process_time() - started) / count)
    return {name: statistics.median(values) for name, values in blocks.items()}


def bench_in_process(fx: Fixture, count: int) -> None:
    logging.basicConfig(level=logging.WARNING)  # as `serve` logs; else the SDK's INFO lines through rich
    token = fx.issuer.mint(f"http://127.0.0.1:{IN_PROCESS_PORT}/mcp", scopes=Scope.READ.value, lifetime=TOKEN_LIFETIME)
    apps = {"ours+auth": (in_process_app(fx, fx.issuer.url), token), "ours": (in_process_app(fx, None), None)}
    cpu = anyio.run(in_process_cpu, apps, count, 10)
    line(
        "in-process",
        f"our ASGI app built twice in this process (JWT auth, none), {count} x 10 rounds of a 2026-07-28 "
        f"tools/call {TOOL} through httpx2's ASGI transport, no socket: CPU per request (client side included) "
        f"{us(cpu['ours+auth'])} with auth, {us(cpu['ours'])} without: +{us(cpu['ours+auth'] - cpu['ours'])} "
        f"({cpu['ours+auth'] / cpu['ours']:.3f}); the SDK's auth middleware, the token remembered",
    )


def bench_auth_cost(fx: Fixture, count: int, fetches: int) -> None:
    """``fetches``: how often the server under test fetched the JWKS before this section."""
    heading("2. Where the auth time goes (information, no target)")
    server = fx.servers["ours+auth"]
    token = server.token()
    assert token is not None
    verifier = JwtVerifier(JwtSettings(issuer=fx.issuer.url, resource=server.served.url))
    verifier.verify(token)  # discovery and the first JWKS fetch, untimed
    keys = verifier._key_set()
    key = keys.get_signing_key_from_jwt(token)
    options: Any = {"verify_signature": False}
    header = per_call(lambda: jwt.api_jwt.decode_complete(token, options=options), count)
    lookup = per_call(lambda: keys.get_signing_key_from_jwt(token), count)
    decode = per_call(
        lambda: jwt.decode(
            token, key, algorithms=["RS256"], audience=server.served.url, issuer=fx.issuer.url, leeway=30
        ),
        count,
    )
    verify = per_call(lambda: verifier.verify(token), count)
    fresh = [minted for n in range(max(1, count // 4)) if (minted := server.token(f"fresh{n}@example.com"))]
    first_sight, remembered, hop = anyio.run(verify_tokens, verifier, fresh, token, count)
    line(
        "ran",
        f"{count} x each step of JwtVerifier (server/auth.py) in this process, against the same issuer and a "
        f"{len(token)}-char RS256 token (2048-bit key)",
    )
    line("header", f"{us(header)}  decode the token unverified (PyJWT), for its kid")
    line("key lookup", f"{us(lookup)}  PyJWKClient.get_signing_key_from_jwt: header + the cached key set")
    line("decode", f"{us(decode)}  jwt.decode: RSA signature + exp/iss/aud/sub checks")
    line("verify", f"{us(verify)}  JwtVerifier.verify: all of it, plus the SDK's AccessToken")
    line(
        "first sight",
        f"{us(first_sight)}  JwtVerifier.verify_token of a token not seen before ({len(fresh)} tokens): "
        "verify in a worker thread",
    )
    line("remembered", f"{us(remembered)}  JwtVerifier.verify_token of a token it verified before (no thread)")
    line("thread hop", f"{us(hop)}  anyio.to_thread.run_sync of nothing, for comparison")
    line(
        "jwks",
        f"the server fetched the issuer's JWKS {fetches} time(s) over all of section 1 (a token on every request); "
        f"it keeps the key set {JWKS_LIFETIME_SECONDS:.0f} s, refetching sooner only for an unknown kid",
    )
    bench_in_process(fx, max(20, count // 10))


# -- 3. load -----------------------------------------------------------------------------


@dataclass
class LoadRun:
    result: http_load.LoadResult
    rss_before: int
    rss_after: int
    peak: int
    still_answers: bool
    server_cpu: float  # seconds, over the round
    client_cpu: float  # seconds of this process (every client), over the round

    @property
    def server_cpu_per_call(self) -> float:
        return self.server_cpu / max(1, len(self.result.calls))


def load_round(server: Server, args: argparse.Namespace) -> LoadRun:
    clients = args.sessions + args.stateless
    tokens = None
    if server.issuer is not None:
        tokens = [token for n in range(clients) if (token := server.token(f"user{n}@example.com")) is not None]
    before = server.served.rss_kib()
    server_cpu, client_cpu = server.served.cpu_seconds(), time.process_time()
    result = anyio.run(
        lambda: http_load.run_load(
            server.served.url,
            tool=TOOL,
            arguments={},
            sessions=args.sessions,
            stateless=args.stateless,
            calls_per_client=args.load_calls,
            concurrency=args.concurrency,
            tokens=tokens,
        )
    )
    server_cpu, client_cpu = server.served.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    after = server.served.rss_kib()
    still = anyio.run(http_load.answers, server.served.url, TOOL, {}, server.token())
    return LoadRun(result, before, after, server.served.peak_kib(), still, server_cpu, client_cpu)


def bench_load(fx: Fixture, args: argparse.Namespace) -> None:
    heading("3. Load: parallel sessions and stateless clients")
    runs: dict[str, list[LoadRun]] = {name: [] for name in fx.servers}
    for round_number in range(args.rounds):
        names = list(fx.servers)
        for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
            runs[name].append(load_round(fx.servers[name], args))
    line(
        "ran",
        f"{args.rounds} rounds per server of {args.sessions} 2025-11-25 sessions (initialize, {args.load_calls} x "
        f"tools/call {TOOL}, DELETE) + {args.stateless} 2026-07-28 stateless clients (discover, "
        f"{args.load_calls} x tools/call), at most {args.concurrency} clients at once; with auth each client has "
        "its own token (its own subject)",
    )
    line("baseline", "the same rounds against the bare SDK server; servers alternate round by round")
    line(
        "method",
        "tests/http_load.py: one process of SDK clients (mcp.Client over streamable_http_client); every HTTP "
        "status counted; memory from /proc/PID/status (VmRSS before and after each round, VmHWM the peak)",
    )
    for name, server_runs in runs.items():
        print()
        for number, run in enumerate(server_runs, 1):
            line(f"{name} #{number}", run.result.describe())
            line(
                "",
                f"memory {mib(run.rss_before)} -> {mib(run.rss_after)} (peak {mib(run.peak)}); CPU: server "
                f"{run.server_cpu:.2f} s ({us(run.server_cpu_per_call)} per call, connects included), clients "
                f"{run.client_cpu:.2f} s; a fresh session answers after: {'yes' if run.still_answers else 'NO'}",
            )
            for failure in run.result.failures[:3]:
                line("", f"failure: {failure}")
    best = {name: max(run.result.calls_per_second for run in server_runs) for name, server_runs in runs.items()}
    cpu = {name: min(run.server_cpu_per_call for run in server_runs) for name, server_runs in runs.items()}
    print()
    line(
        "info",
        f"server CPU per tools/call under load (sessions, listings and closes included), best round: bare "
        f"{us(cpu['bare'])}, ours+auth {us(cpu['ours+auth'])}, ours {us(cpu['ours'])}; ours+auth / bare "
        f"{cpu['ours+auth'] / cpu['bare']:.3f}, ours / bare {cpu['ours'] / cpu['bare']:.3f}, ours+auth / ours "
        f"{cpu['ours+auth'] / cpu['ours']:.3f} (each client's token is new: verified once)",
    )
    line(
        "info",
        f"tools/call per second, best round: bare {best['bare']:.0f}, ours+auth {best['ours+auth']:.0f}, ours "
        f"{best['ours']:.0f} (bare / ours+auth {best['bare'] / best['ours+auth']:.3f}); the clients, one process "
        f"on {os.cpu_count()} CPUs shared with the servers, use more CPU than a server does, so throughput is "
        "theirs as much as the server's; no target",
    )
    ours = runs["ours+auth"]
    clean = all(
        len(run.result.calls) == run.result.expected_calls
        and not run.result.failures
        and run.result.server_errors == 0
        and run.still_answers
        for run in ours
    )
    growth = (ours[-1].rss_after - ours[0].rss_after) / 1024
    line(
        "memory",
        f"ours+auth resident memory after round 1 {mib(ours[0].rss_after)}, after round {len(ours)} "
        f"{mib(ours[-1].rss_after)}: {growth:+.1f} MiB (bare: {mib(runs['bare'][0].rss_after)} -> "
        f"{mib(runs['bare'][-1].rss_after)})",
    )
    calls = sum(len(run.result.calls) for run in ours)
    verdict("load: ours+auth all calls ok", clean, "every call succeeds, no 5xx", f"{calls} calls")
    if len(ours) > 1:
        verdict(
            "load: ours+auth memory growth",
            growth <= MEMORY_BOUND_MIB,
            f"<= {MEMORY_BOUND_MIB:.0f} MiB after round 1",
            f"{growth:+.1f} MiB",
        )


# -- 4. where the load's server CPU goes --------------------------------------------------


async def operation_costs(server: Server, count: int) -> dict[str, float]:
    """Server CPU seconds per operation, each repeated ``count`` times in a row after a few untimed."""
    costs: dict[str, float] = {}
    async with http_load.http_client(server.token()) as client:
        for mode in MODES:

            async def session(mode: str = mode) -> None:
                async with Client(streamable_http_client(server.served.url, http_client=client), mode=mode) as s:
                    await s.list_tools()

            async with Client(streamable_http_client(server.served.url, http_client=client), mode=mode) as s:

                async def tool_call(s: Client = s) -> None:
                    await call(s)

                async def listing(s: Client = s) -> None:
                    await s.list_tools(cache_mode="bypass")

                for name, operation in (
                    (f"{mode} session: connect, tools/list, close", session),
                    (f"{mode} tools/list", listing),
                    (f"{mode} tools/call {TOOL}", tool_call),
                ):
                    for _ in range(5):
                        await operation()
                    before = server.served.cpu_seconds()
                    for _ in range(count):
                        await operation()
                    costs[name] = (server.served.cpu_seconds() - before) / count
    return costs


def bench_operations(fx: Fixture, count: int) -> None:
    heading("4. Where the load's server CPU goes (information, no target)")
    ours, bare = (anyio.run(operation_costs, fx.servers[name], count) for name in ("ours", "bare"))
    line("ran", f"{count} x each operation in a row, on ours --no-auth and on bare; server CPU from /proc")
    for name in ours:
        line("", f"{name:<44} ours {us(ours[name]):>10}, bare {us(bare[name]):>10}  ({ours[name] / bare[name]:.2f})")
    line(
        "info",
        "ours lists 16 tools with their input and output schemas, bare 1: each client lists the tools once (the "
        "SDK's client does, to check structured results)",
    )


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch directory (default: $TMPDIR)")
    parser.add_argument("--quick", action="store_true", help="few calls and clients, to smoke-test the script")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per server and mode (default 1000)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per server and mode (default 50)")
    parser.add_argument("--block", type=int, default=50, help="calls per block of the rotation (default 50)")
    parser.add_argument("--verifies", type=int, default=None, help="repeats of each auth step (default 2000)")
    parser.add_argument("--sessions", type=int, default=None, help="load: sessions per round (default 150)")
    parser.add_argument("--stateless", type=int, default=None, help="load: stateless clients per round (default 150)")
    parser.add_argument("--load-calls", type=int, default=5, help="load: tools/call per client (default 5)")
    parser.add_argument("--concurrency", type=int, default=100, help="load: clients at once (default 100)")
    parser.add_argument("--rounds", type=int, default=None, help="load: rounds per server (default 2)")
    parser.add_argument("--operations", type=int, default=None, help="repeats of each operation (default 100)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (server logs)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.calls = args.calls or (50 if quick else 1000)
    args.warmup = (10 if quick else 50) if args.warmup is None else args.warmup
    args.verifies = args.verifies or (200 if quick else 2000)
    args.sessions = (20 if quick else 150) if args.sessions is None else args.sessions
    args.stateless = (20 if quick else 150) if args.stateless is None else args.stateless
    args.rounds = args.rounds or 2
    args.operations = args.operations or (20 if quick else 100)
    args.block = max(1, min(args.block, args.calls))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with scratch_dir(args.dir, "mcp-orch-http-bench-", args.keep) as work, servers(work) as fx:
        note = " (--quick: few calls, the figures mean little)" if args.quick else ""
        print(f"mcp-orchestration MCP server over streamable HTTP benchmark{note}")
        print_environment(fx)
        bench_latency(fx, args.warmup, args.calls, args.block)
        bench_auth_cost(fx, args.verifies, fx.issuer.jwks_fetches)
        bench_load(fx, args)
        bench_operations(fx, args.operations)
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
