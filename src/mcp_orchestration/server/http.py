"""The streamable HTTP transport: the SDK's app, guarded, under uvicorn.

The SDK serves both protocol generations on one endpoint (``/mcp``):
2025-11-25 sessions and 2026-07-28 stateless requests. Around it:

- authorization (``server/auth.py``) with RFC 9728 metadata at
  ``/.well-known/oauth-protected-resource/mcp``, or none at all, which only a
  loopback address may serve;
- the ``Host`` and ``Origin`` of every request checked against this server's
  own addresses (DNS rebinding), with any extra origin the operator allows;
- a request body bounded in size (413) and in time (408), and request
  headers in time (``http_protocol.py``): a slow or silent client cannot
  hold a connection past its deadline;
- a bounded number of connections (503 past it), and ``/healthz`` for
  container health checks, which says nothing but ``ok``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_orchestration.config.validation import is_loopback
from mcp_orchestration.core.errors import UsageError
from mcp_orchestration.server import scopes
from mcp_orchestration.server.auth import JwtSettings, JwtVerifier, StaticTokenVerifier
from mcp_orchestration.server.http_protocol import DeadlineH11Protocol

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 4 << 20  # a JSON-RPC request; the largest tool arguments accepted are far smaller
BODY_DEADLINE_SECONDS = 30.0  # a whole request body must arrive within this
MAX_CONNECTIONS = 256  # open connections, SSE streams included; more are answered 503
MAX_SESSIONS = 1024  # 2025-11-25 sessions; each idles out after SESSION_IDLE_SECONDS
MAX_SESSIONS_PER_PRINCIPAL = 64  # so that one token, even a read-only one, cannot take every session
SESSION_IDLE_SECONDS = 15 * 60.0
KEEP_ALIVE_SECONDS = 5


@dataclass(frozen=True)
class HttpEndpoint:
    """Where the server listens, the canonical URL clients reach it by, and the browser origins it accepts."""

    host: str
    port: int
    resource: str = ""  # "" : http://HOST:PORT/mcp, which only fits a loopback address
    extra_origins: Sequence[str] = field(default=())

    @property
    def url(self) -> str:
        """The canonical URL of the MCP endpoint (the audience of its tokens, RFC 8707)."""
        if self.resource:
            return self.resource
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{MCP_PATH}"

    def check(self) -> None:
        """Refuse what would make the endpoint unsafe or unreachable by its own name."""
        if not self.resource and not is_loopback(self.host):
            raise UsageError(
                f"Listening on {self.host} needs the server's public URL, the audience of its tokens.",
                hint="Add --resource https://NAME/mcp (the URL clients use; TLS ends at your proxy).",
            )
        parts = urlsplit(self.url)
        plain = not (parts.query or parts.fragment or parts.username or parts.password)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path != MCP_PATH or not plain:
            raise UsageError(f"The resource URL must be http(s)://HOST[:PORT]{MCP_PATH}, not {self.url!r}.")

    def transport_security(self) -> TransportSecuritySettings:
        """Accept this server's own names (its loopback addresses, its public one), nothing else."""
        public = urlsplit(self.url)
        local = {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        hosts = {*local, public.netloc}
        origins = {*(f"http://{host}" for host in local), f"{public.scheme}://{public.netloc}", *self.extra_origins}
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=sorted(hosts), allowed_origins=sorted(origins)
        )


def auth_settings(endpoint: HttpEndpoint, verifier: TokenVerifier) -> AuthSettings:
    """The SDK's resource-server settings: the read scope on every request, RFC 9728 metadata for a JWT issuer.

    A static token has no authorization server to advertise, so it gets no
    metadata document: its ``WWW-Authenticate`` names no ``resource_metadata``.
    """
    issuer = verifier.settings.issuer if isinstance(verifier, JwtVerifier) else None
    return AuthSettings.model_validate(  # strings, so a path-less issuer keeps its exact form (RFC 8414 3.3)
        {
            "issuer_url": issuer or endpoint.url,  # unused without metadata
            "resource_server_url": endpoint.url if issuer else None,
            "required_scopes": [scopes.Scope.READ.value],
            "validate_token_resource": bool(issuer),
        }
    )


class BoundedBody:
    """Read each request body whole, within a size and a deadline, before the app sees it.

    An oversized body is answered 413 as soon as it is known to be (by its
    ``Content-Length`` or as it arrives), a body not complete within the
    deadline 408. The app then reads the buffered body, and the connection's
    later messages (a disconnect) as they come.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES, deadline: float = BODY_DEADLINE_SECONDS) -> None:
        self.app = app
        self.limit = limit
        self.deadline = deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await _refuse(scope, send, 413, "The request body is larger than the server accepts.")
            return
        body = bytearray()
        try:
            with anyio.fail_after(self.deadline):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    if len(body) > self.limit:
                        await _refuse(scope, send, 413, "The request body is larger than the server accepts.")
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(scope, send, 408, "The request body did not arrive in time.")
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    await JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})(
        scope, _no_receive, send
    )


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def http_app(server: MCPServer, endpoint: HttpEndpoint) -> ASGIApp:
    """The ASGI app: the SDK's streamable HTTP app with the guards above and ``/healthz``."""

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    server.custom_route(HEALTH_PATH, methods=["GET"])(health)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        max_request_body_size=MAX_BODY_BYTES,
        session_idle_timeout=SESSION_IDLE_SECONDS,
        max_sessions=MAX_SESSIONS,
        transport_security=endpoint.transport_security(),
        host=endpoint.host,
    )
    _limit_sessions_per_principal(server.session_manager, MAX_SESSIONS_PER_PRINCIPAL)
    if server.settings.auth is not None and server.settings.auth.resource_server_url is not None:
        # The SDK's metadata lists only the scope every request needs; clients choose what to ask
        # for from this list, so it names every scope this server's tools need. First match wins.
        app.router.routes[:0] = create_protected_resource_routes(
            resource_url=server.settings.auth.resource_server_url,
            authorization_servers=[server.settings.auth.issuer_url],
            scopes_supported=[scope.value for scope in scopes.SERVED_SCOPES],
            resource_name=server.name,
        )
    return BoundedBody(app)


def _limit_sessions_per_principal(manager: StreamableHTTPSessionManager, limit: int) -> None:
    """Refuse a new session (503, as past :data:`MAX_SESSIONS`) to a principal already holding ``limit``.

    The SDK bounds sessions only in total: one caller with any valid token
    (the read scope is enough) could open them all and keep every other client
    out for :data:`SESSION_IDLE_SECONDS`. Admission runs under the manager's
    session lock, so the count cannot race. Without auth there is no principal
    to count (loopback only), and the total bound alone applies.
    """
    admit = manager._admit_session  # the SDK's one admission point (private: its version is pinned)
    owners = manager._session_owners

    def admit_within_limit(requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if requestor is not None and sum(owner == requestor for owner in owners.values()) >= limit:
            log.warning("Refusing a new session: its principal already holds %d", limit)
            return None
        return admit(requestor)

    manager._admit_session = admit_within_limit  # type: ignore[method-assign]


def listen(endpoint: HttpEndpoint) -> tuple[socket.socket, HttpEndpoint]:
    """A socket listening at ``endpoint``, and the endpoint with the port it got (asked for 0, one is picked).

    Bound before the app is built, so the canonical URL (the audience of every
    token) names the real port. Created as TCP (``proto`` IPPROTO_TCP, as
    uvicorn binds its own): asyncio turns Nagle's algorithm off only on such
    sockets' connections, and with it on every response uvicorn writes in two
    parts (headers, then body) waits for the client's delayed ACK, about 40 ms.
    """
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((endpoint.host, endpoint.port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"Cannot listen on {endpoint.host}:{endpoint.port}: {exc.strerror or type(exc).__name__}."
        ) from None
    return sock, replace(endpoint, port=sock.getsockname()[1])


def serve_http(server: MCPServer, endpoint: HttpEndpoint, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGINT or SIGTERM; log the address once listening."""
    config = uvicorn.Config(
        http_app(server, endpoint),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        http=DeadlineH11Protocol,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=5,
        ws="none",
        lifespan="on",
    )
    asyncio.run(_serve(uvicorn.Server(config), endpoint, sock))


async def _serve(server: uvicorn.Server, endpoint: HttpEndpoint, sock: socket.socket) -> None:
    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        log.warning("Serving MCP over HTTP on %s:%d at %s", endpoint.host, endpoint.port, endpoint.url)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()


def access_control(
    endpoint: HttpEndpoint,
    *,
    issuer: str | None,
    jwks_url: str | None,
    token_file: Path | None,
    no_auth: bool,
) -> tuple[AuthSettings | None, TokenVerifier | None]:
    """The SDK's auth settings and token verifier for exactly one of: an issuer, a static token, none (loopback)."""
    endpoint.check()
    chosen = [
        name for name, given in (("--issuer", issuer), ("--token-file", token_file), ("--no-auth", no_auth)) if given
    ]
    if len(chosen) != 1:
        raise UsageError(
            "Serving HTTP needs exactly one of --issuer URL, --token-file FILE or --no-auth"
            + (f", not {' and '.join(chosen)}." if chosen else "."),
            hint="Use --issuer with an identity provider; --token-file for a small team; --no-auth on loopback only.",
        )
    if jwks_url is not None and issuer is None:
        raise UsageError("--jwks-url applies to --issuer only.")
    if no_auth:
        if not (is_loopback(endpoint.host) and is_loopback(urlsplit(endpoint.url).hostname or "")):
            raise UsageError(
                "--no-auth serves anyone who can reach the port, so it is refused off a loopback address.",
                hint="Give --issuer or --token-file.",
            )
        return None, None
    verifier: TokenVerifier
    if issuer is not None:
        verifier = JwtVerifier(JwtSettings(issuer=issuer, resource=endpoint.url, jwks_url=jwks_url))
    else:
        assert token_file is not None  # noqa: S101 (one of the three was chosen above)
        verifier = StaticTokenVerifier(token_file, endpoint.url)
    return auth_settings(endpoint, verifier), verifier
