"""A real OAuth issuer for tests: OpenID metadata and a JWKS over HTTP on loopback, tokens signed with its keys.

Keys rotate as an identity provider rotates them: :meth:`Issuer.rotate` adds a
new signing key (published at once, old tokens still verify) and
:meth:`Issuer.retire` drops one from the key set. Every JWKS fetch is
counted, so a test can see the resource server's cache at work.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass
class IssuerKey:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, Any]:
        if isinstance(self.private, rsa.RSAPrivateKey):
            text = RSAAlgorithm.to_jwk(self.private.public_key())
        else:
            text = ECAlgorithm.to_jwk(self.private.public_key())
        jwk: dict[str, Any] = json.loads(text)
        return jwk | {"kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(alg: str = "RS256") -> IssuerKey:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg.startswith(("RS", "PS"))
        else ec.generate_private_key(ec.SECP256R1())
    )
    return IssuerKey(uuid.uuid4().hex[:12], alg, private)


@dataclass
class Issuer:
    """An issuer at ``url`` whose published keys are ``keys`` and which signs with the last of them."""

    url: str = ""
    keys: list[IssuerKey] = field(default_factory=lambda: [new_key()])
    jwks_fetches: int = 0
    down: bool = False  # answer 503 to everything (an outage)
    stall: float = 0.0  # seconds to wait before answering anything (a slow or partitioned issuer)
    jwks_requests: int = 0  # every request for the key set, answered or not
    jwks_body: bytes | None = None  # served as the key set instead of the keys (a broken or hijacked endpoint)
    metadata_redirect: str | None = None  # answer the metadata request with a redirect there
    authorization_headers: list[str] = field(default_factory=list)  # any a resource server sent (it must send none)

    @property
    def signing(self) -> IssuerKey:
        return self.keys[-1]

    def rotate(self, alg: str = "RS256") -> IssuerKey:
        key = new_key(alg)
        self.keys.append(key)
        return key

    def retire(self, kid: str) -> None:
        self.keys = [key for key in self.keys if key.kid != kid]

    def mint(
        self,
        audience: str,
        *,
        scopes: str = "mcp-orchestration:read",
        subject: str = "alice@example.com",
        client_id: str = "claude-code",
        lifetime: int = 300,
        key: IssuerKey | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token (RFC 9068 claims); ``claims`` override or add (None removes one)."""
        now = int(time.time())
        signer = key or self.signing
        body = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "client_id": client_id,
            "scope": scopes,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        } | claims
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, signer.private, algorithm=signer.alg, headers={"kid": signer.kid} | (headers or {}))

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks.json",
            "token_endpoint": f"{self.url}/token",
            "authorization_endpoint": f"{self.url}/authorize",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "Authorization" in self.headers:
                issuer.authorization_headers.append(self.headers["Authorization"])
            if self.path == "/jwks.json":
                issuer.jwks_requests += 1
            if issuer.stall:
                time.sleep(issuer.stall)
            if issuer.down:
                self._send(503, {"error": "down"})
            elif self.path == "/.well-known/openid-configuration" and issuer.metadata_redirect:
                self.send_response(302)
                self.send_header("Location", issuer.metadata_redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path in ("/.well-known/openid-configuration", "/moved-metadata"):
                self._send(200, issuer.metadata())
            elif self.path == "/jwks.json" and issuer.jwks_body is not None:
                self._send_bytes(200, issuer.jwks_body)
            elif self.path == "/jwks.json":
                issuer.jwks_fetches += 1
                self._send(200, {"keys": [key.public_jwk() for key in issuer.keys]})
            else:
                self._send(404, {"error": "not_found"})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            self._send_bytes(status, json.dumps(body).encode())

        def _send_bytes(self, status: int, data: bytes) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up (a stall test)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve_issuer() -> Iterator[Issuer]:
    """Run an issuer on a free loopback port for the duration of the generator (a fixture body)."""
    issuer = Issuer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
