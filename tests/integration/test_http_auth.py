"""``serve --http`` as an OAuth 2.1 resource server, attacked: every token a real issuer would not vouch for is refused.

A real issuer (``tests/oidc_issuer.py``: OpenID metadata and a JWKS over HTTP,
rotating keys) signs the tokens; the server is the real process. Each refusal
is checked where a client sees it (status, ``WWW-Authenticate``) and where an
attacker would look for a leak (the server's log, telemetry, history).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from mcp_orchestration.server.http import MAX_SESSIONS_PER_PRINCIPAL
from mcp_orchestration.server.http_protocol import HEADER_DEADLINE_SECONDS
from tests.conftest import run_process
from tests.http_server import INITIALIZE, HttpServer, http_server
from tests.oidc_issuer import Issuer, new_key

READ = "mcp-orchestration:read"
DRAFT = "mcp-orchestration:draft"
PUBLISH = "mcp-orchestration:publish"
EVERYTHING = f"{READ} {DRAFT} {PUBLISH}"
CD = "claude-desktop"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(issuer: Issuer, server_env: dict[str, str], tmp_path: Path) -> Iterator[HttpServer]:
    with http_server("--issuer", issuer.url, env=server_env, log=tmp_path / "server.log") as running:
        yield running


@asynccontextmanager
async def session(url: str, token: str, mode: str = "legacy") -> AsyncIterator[Client]:
    """The SDK's own client over streamable HTTP, sending ``token``."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client


def stored_files(home: Path) -> dict[str, bytes]:
    """Every file of the store but its telemetry, by path: what a refused write must leave as it was."""
    return {
        str(path.relative_to(home)): path.read_bytes()
        for path in home.rglob("*")
        if path.is_file() and "telemetry" not in path.parts
    }


def error_code(result: CallToolResult) -> str | None:
    meta = result.meta or {}
    error = meta.get("mcp-orchestration/error")
    return error["code"] if isinstance(error, dict) else None


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs256(issuer: Issuer, audience: str) -> str:
    """The key-confusion attack: HS256 "signed" with the issuer's public key, which anyone can fetch."""
    public = issuer.signing.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.signing.kid}
    claims = jwt.decode(issuer.mint(audience, scopes=EVERYTHING), options={"verify_signature": False})
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(issuer: Issuer, audience: str) -> str:
    """``alg: none``: the claims of a good token, no signature."""
    claims = jwt.decode(issuer.mint(audience, scopes=EVERYTHING), options={"verify_signature": False})
    return jwt.encode(claims, "", algorithm="none", headers={"kid": issuer.signing.kid})


def tampered(issuer: Issuer, audience: str) -> str:
    """A good token with its claims swapped for others (a read token made a publish token): the signature breaks."""
    good = issuer.mint(audience)
    claims = jwt.decode(issuer.mint(audience, scopes=EVERYTHING), options={"verify_signature": False})
    header, _, signature = good.split(".")
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


REFUSED: dict[str, Any] = {
    "expired": lambda i, aud: i.mint(aud, lifetime=-120),
    "not yet valid": lambda i, aud: i.mint(aud, nbf=int(time.time()) + 600),
    "wrong audience": lambda i, aud: i.mint("http://127.0.0.1:1/mcp"),
    "audience of another resource on this host": lambda i, aud: i.mint(aud.removesuffix("/mcp") + "/other"),
    "wrong issuer": lambda i, aud: i.mint(aud, iss="https://evil.example"),
    "alg none": unsigned,
    "HS256 keyed with the public key": forged_hs256,
    "unknown kid": lambda i, aud: i.mint(aud, key=new_key()),
    "tampered claims": tampered,
    "no exp": lambda i, aud: i.mint(aud, exp=None),
    "no sub": lambda i, aud: i.mint(aud, sub=None),
    "no client id": lambda i, aud: i.mint(aud, client_id=None),
    "subject with a newline": lambda i, aud: i.mint(aud, subject="alice\nFORGED history line"),
    "subject history shows for the host's own operator": lambda i, aud: i.mint(aud, subject="-"),
    "garbage": lambda i, aud: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_token_the_issuer_would_not_vouch_for_is_refused_with_401(
    case: str, server: HttpServer, issuer: Issuer
) -> None:
    token = REFUSED[case](issuer, server.url)
    response = server.post(INITIALIZE, token=token)
    assert response.status_code == 401, response.text
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert token not in server.stderr()
    assert "Refused a bearer token" in server.stderr()


def test_no_token_gets_the_challenge_and_the_metadata_names_issuer_resource_and_scopes(
    server: HttpServer, issuer: Issuer
) -> None:
    response = server.post(INITIALIZE)
    assert response.status_code == 401
    assert "resource_metadata=" in response.headers["WWW-Authenticate"]

    metadata = httpx2.get(f"{server.base}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert metadata["resource"] == server.url
    assert metadata["authorization_servers"] == [issuer.url]
    assert set(metadata["scopes_supported"]) == {READ, DRAFT, PUBLISH}


def test_a_token_without_the_read_scope_is_403_insufficient_scope(server: HttpServer, issuer: Issuer) -> None:
    response = server.post(INITIALIZE, token=issuer.mint(server.url, scopes=PUBLISH))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_a_valid_token_is_accepted_in_either_scope_claim_and_with_an_audience_list(
    server: HttpServer, issuer: Issuer
) -> None:
    for token in (
        issuer.mint(server.url),
        issuer.mint(server.url, scope=None, scp=[READ]),
        issuer.mint(server.url, aud=["https://other.example", server.url]),
    ):
        assert server.post(INITIALIZE, token=token).status_code == 200


def test_the_issuer_s_keys_are_cached_and_garbage_kids_do_not_flood_it(server: HttpServer, issuer: Issuer) -> None:
    """(Following the issuer's key rotation is tested in-process, with a short cooldown: test_jwt_verifier.py.)"""
    assert server.post(INITIALIZE, token=issuer.mint(server.url)).status_code == 200
    fetches = issuer.jwks_fetches
    for _ in range(20):  # the same key: the cached key set answers
        assert server.post(INITIALIZE, token=issuer.mint(server.url)).status_code == 200
    assert issuer.jwks_fetches == fetches
    for _ in range(20):  # kids nobody published: at most one more fetch within the cooldown
        assert server.post(INITIALIZE, token=issuer.mint(server.url, key=new_key())).status_code == 401
    assert issuer.jwks_fetches <= fetches + 1
    assert issuer.authorization_headers == []  # no token is ever passed on to the issuer


def test_a_key_set_that_is_not_json_is_a_401_and_is_not_fetched_for_every_request(
    server: HttpServer, issuer: Issuer
) -> None:
    """The attack: an issuer's JWKS answering an HTML error page made every request a 500 and a fetch."""
    issuer.jwks_body = b"<html>502 Bad Gateway</html>"
    for _ in range(5):
        response = server.post(INITIALIZE, token=issuer.mint(server.url))
        assert response.status_code == 401, response.text
    assert issuer.jwks_requests == 1
    assert "issuer_keys_unavailable" in server.stderr()


@pytest.mark.anyio
async def test_a_read_token_cannot_write_and_nothing_is_stored(server: HttpServer, issuer: Issuer, home: Path) -> None:
    before = stored_files(home)
    async with session(server.url, issuer.mint(server.url, scopes=READ)) as client:
        assert len((await client.list_tools()).tools) == 16
        assert not (await client.call_tool("list_clients", {})).is_error
        for name, arguments in (
            ("add_server_to_config", {"client": CD, "profile": "default", "server_id": "filesystem"}),
            ("clear_draft_config", {"client": CD, "profile": "default"}),
            ("publish_config", {"client": CD, "profile": "default"}),
        ):
            result = await client.call_tool(name, arguments)
            assert result.is_error and error_code(result) == "insufficient_scope", name
    assert stored_files(home) == before


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_draft_token_edits_but_cannot_publish_in_either_protocol_generation(
    mode: str, server: HttpServer, issuer: Issuer
) -> None:
    async with session(server.url, issuer.mint(server.url, scopes=f"{READ} {DRAFT}"), mode=mode) as client:
        assert client.protocol_version == {"legacy": "2025-11-25", "auto": "2026-07-28"}[mode]
        added = await client.call_tool(
            "add_server_to_config",
            {"client": CD, "profile": "default", "server_id": "filesystem", "parameters": {"paths": ["/tmp"]}},
        )
        assert not added.is_error
        refused = await client.call_tool("publish_config", {"client": CD, "profile": "default"})
        assert error_code(refused) == "insufficient_scope"


@pytest.mark.anyio
async def test_every_write_names_the_token_s_principal_in_the_signed_entry_and_telemetry(
    server: HttpServer, issuer: Issuer, server_env: dict[str, str], home: Path
) -> None:
    token = issuer.mint(server.url, scopes=EVERYTHING, subject="carol@example.com", client_id="vscode")
    async with session(server.url, token) as client:
        await client.call_tool(
            "add_server_to_config",
            {"client": CD, "profile": "default", "server_id": "filesystem", "parameters": {"paths": ["/tmp"]}},
        )
        published = await client.call_tool("publish_config", {"client": CD, "profile": "default", "changelog": "c"})
        assert not published.is_error

    history = run_process("history", "--client", CD, "--profile", "default", "--json", env=server_env)
    versions = json.loads(history.stdout)["versions"]
    assert versions[0]["published_by"] == {"subject": "carol@example.com", "client_id": "vscode", "issuer": issuer.url}
    text = run_process("history", "--client", CD, "--profile", "default", env=server_env).stdout
    assert "carol@example.com" in text

    verified = run_process("verify", "--deep", env=server_env)
    assert verified.returncode == 0, verified.stderr

    events = [json.loads(line) for line in (home / "telemetry" / "events.jsonl").read_text().splitlines()]
    by_name = {event["event"]: event for event in events}
    for name in ("draft_edit", "publish"):
        assert by_name[name]["by"]["subject"] == "carol@example.com", name
    everything = "\n".join(
        [(home / "telemetry" / "events.jsonl").read_text(), server.stderr(), history.stdout, history.stderr]
    )
    assert token not in everything
    assert token.split(".")[2] not in everything  # not even the signature part


def test_a_session_answers_only_the_token_that_opened_it(server: HttpServer, issuer: Issuer) -> None:
    opened = server.post(INITIALIZE, token=issuer.mint(server.url, subject="alice@example.com"))
    session_id = opened.headers["mcp-session-id"]
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    headers = {"mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
    stolen = server.post(ping, token=issuer.mint(server.url, subject="mallory@example.com"), headers=headers)
    assert stolen.status_code == 404
    own = server.post(ping, token=issuer.mint(server.url, subject="alice@example.com"), headers=headers)
    assert own.status_code == 200


def test_one_token_cannot_take_every_session(server: HttpServer, issuer: Issuer) -> None:
    """The attack: a read-only token opened all MAX_SESSIONS sessions, and no other client could connect for 15 min."""
    hog = issuer.mint(server.url, subject="mallory@example.com", scopes=READ)
    opened = [server.post(INITIALIZE, token=hog).status_code for _ in range(MAX_SESSIONS_PER_PRINCIPAL)]
    assert opened == [200] * MAX_SESSIONS_PER_PRINCIPAL
    assert server.post(INITIALIZE, token=hog).status_code == 503
    assert server.post(INITIALIZE, token=issuer.mint(server.url, scopes=EVERYTHING)).status_code == 200


def test_a_forged_origin_or_host_is_refused(server: HttpServer, issuer: Issuer) -> None:
    token = issuer.mint(server.url)
    assert server.post(INITIALIZE, token=token, headers={"Origin": "http://evil.example"}).status_code == 403
    port = server.url.split(":")[2].split("/")[0]
    rebinding = server.post(INITIALIZE, token=token, headers={"Host": f"evil.example:{port}"})
    assert rebinding.status_code in (403, 421)
    assert server.post(INITIALIZE, token=token, headers={"Origin": f"http://localhost:{port}"}).status_code == 200


def test_an_oversized_body_is_refused_before_it_is_read(server: HttpServer, issuer: Issuer) -> None:
    token = issuer.mint(server.url)
    big = {**INITIALIZE, "padding": "x" * (5 << 20)}
    assert server.post(big, token=token).status_code == 413
    assert server.post(INITIALIZE, token=token).status_code == 200  # and it keeps serving


def test_a_slow_client_holds_no_one_else_up(server: HttpServer, issuer: Issuer) -> None:
    host, port = server.url.split("//")[1].split("/")[0].split(":")
    slow = [socket.create_connection((host, int(port)), timeout=5) for _ in range(20)]
    try:
        for sock in slow:  # a body announced, never sent
            sock.sendall(
                f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n{".encode()
            )
        started = time.monotonic()
        assert server.post(INITIALIZE, token=issuer.mint(server.url)).status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for sock in slow:
            sock.close()


def test_connections_that_never_finish_their_headers_are_closed(server: HttpServer, issuer: Issuer) -> None:
    host, port = server.url.split("//")[1].split("/")[0].split(":")
    silent = [socket.create_connection((host, int(port)), timeout=20) for _ in range(10)]
    dripping = [socket.create_connection((host, int(port)), timeout=20) for _ in range(10)]
    try:
        for sock in dripping:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: ")  # and never the rest
        started = time.monotonic()
        for sock in silent + dripping:
            assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < HEADER_DEADLINE_SECONDS + 5
        assert server.post(INITIALIZE, token=issuer.mint(server.url)).status_code == 200
    finally:
        for sock in silent + dripping:
            sock.close()


def test_a_static_token_from_a_secret_file(server_env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "http_token"
    token = base64.b64encode(os.urandom(32)).decode()
    secret.write_text(token + "\n")
    secret.chmod(0o600)
    with http_server("--token-file", str(secret), env=server_env, log=tmp_path / "static.log") as running:
        assert running.post(INITIALIZE, token=token).status_code == 200
        refused = running.post(INITIALIZE, token=token[:-1] + ("A" if token[-1] != "A" else "B"))
        assert refused.status_code == 401
        assert "resource_metadata" not in refused.headers["WWW-Authenticate"]  # no issuer to point to
        assert httpx2.get(f"{running.base}/.well-known/oauth-protected-resource/mcp").status_code == 404
        assert token not in running.stderr()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--http", "0.0.0.0:0", "--no-auth"], "--resource"),
        (["--http", "0.0.0.0:0", "--no-auth", "--resource", "https://mcp.example/mcp"], "--no-auth"),
        (["--http", "127.0.0.1:0"], "exactly one of"),
        (["--http", "127.0.0.1:0", "--no-auth", "--issuer", "https://id.example"], "exactly one of"),
        (["--http", "127.0.0.1:0", "--issuer", "http://id.example"], "https"),
        (["--http", "127.0.0.1:0", "--resource", "https://mcp.example/other", "--no-auth"], "/mcp"),
        (["--issuer", "https://id.example"], "--http"),
        (["--http", "127.0.0.1:0", "--token-file", "/nonexistent/token"], "cannot be read"),
    ],
)
def test_unsafe_or_incomplete_http_options_are_refused(
    options: list[str], says: str, server_env: dict[str, str]
) -> None:
    result = run_process("serve", *options, env=server_env, timeout=30)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr


def test_a_short_static_token_is_refused(server_env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "http_token"
    secret.write_text("password123\n")
    result = run_process("serve", "--http", "127.0.0.1:0", "--token-file", str(secret), env=server_env, timeout=30)
    assert result.returncode == 2
    assert "password123" not in result.stderr + result.stdout


def test_health_answers_without_a_token_and_says_nothing_else(server: HttpServer, server_env: dict[str, str]) -> None:
    response = httpx2.get(f"{server.base}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    healthy = run_process("healthcheck", "--http", f"{server.base}/healthz", env=server_env, timeout=30)
    assert healthy.returncode == 0, healthy.stderr
    down = run_process("healthcheck", "--http", "http://127.0.0.1:1/healthz", env=server_env, timeout=30)
    assert down.returncode == 1 and "unhealthy [unhealthy]" in down.stderr


def test_the_server_stops_on_sigterm(server: HttpServer) -> None:
    """uvicorn shuts down gracefully, then re-raises the signal: the exit status is SIGTERM's, with no traceback."""
    server.process.terminate()
    assert server.process.wait(15) == -15
    assert "Traceback" not in server.stderr()
