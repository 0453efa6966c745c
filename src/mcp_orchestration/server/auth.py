"""Bearer-token verification for the HTTP server, as an OAuth 2.1 resource server (the MCP authorization spec).

Two verifiers fit the SDK's ``TokenVerifier`` protocol, whose middleware
answers every refusal with 401 and a ``WWW-Authenticate`` header naming the
RFC 9728 metadata:

- :class:`JwtVerifier`: JWT access tokens (RFC 9068) from an issuer, checked
  with PyJWT against the issuer's JWKS (discovered from its RFC 8414 or OpenID
  metadata, cached, refetched when a token names a key it has not seen, at
  most once per cooldown). The signature algorithm is the key's own and must
  be asymmetric (never ``none``, never HMAC: a public key is no secret); ``iss``
  must be the issuer, ``aud`` this resource's canonical URL (RFC 8707);
  ``exp`` is required and ``nbf`` honoured. A token accepted once is
  remembered (:class:`VerifiedTokens`) and accepted again without a second
  signature check while its time window holds and the key set that verified
  it is the one in force: the same tokens are accepted as without it.
- :class:`StaticTokenVerifier`: one long random token read from a secret file,
  for a small team without an identity provider.

A token is never passed on, logged or quoted: a refusal is logged by its
reason's name alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken

from mcp_orchestration.config.validation import is_loopback
from mcp_orchestration.core.errors import UsageError
from mcp_orchestration.core.fsutil import read_named_file
from mcp_orchestration.security.principal import OPERATOR, Principal, is_principal_field
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.server.scopes import SERVED_SCOPES, Scope

log = logging.getLogger(__name__)

# Asymmetric only: with an HMAC algorithm allowed, a token "signed" with the issuer's public key would verify.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_SECONDS = 30  # clock skew allowed between this host and the issuer
JWKS_LIFETIME_SECONDS = 300.0  # a cached key set is refetched after this
JWKS_COOLDOWN_SECONDS = 10.0  # a fetch, failed or not, waits this long for the next: garbage kids cannot flood it
FETCH_TIMEOUT_SECONDS = 5.0
MAX_METADATA_BYTES = 256 << 10
MAX_TOKEN_BYTES = 16 << 10  # a bearer token longer than this is refused unread
REMEMBERED_TOKENS = 1024  # verified tokens kept (least recently used first out): at most 16 MiB, about 1 MiB typically
MIN_STATIC_TOKEN_CHARS = 32
MAX_TOKEN_FILE_BYTES = 4096


def require_secure_url(url: str, what: str) -> str:
    """``url`` if it is https, or http to a loopback address (a test issuer); else a usage error."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return url
    raise UsageError(f"The {what} must be an https URL (http only to a loopback address), not {url!r}.")


def principal_of(token: AccessToken) -> Principal:
    """Who a verified token speaks for (both verifiers fill in a subject and an issuer)."""
    issuer = (token.claims or {}).get("iss")
    return Principal(str(token.subject), token.client_id, str(issuer))


class TokenRefused(Exception):
    """Why a token was refused, by a name safe to log."""


@dataclass(frozen=True)
class JwtSettings:
    """What a JWT access token must say to be accepted here."""

    issuer: str
    resource: str  # this server's canonical URL: the audience a token must name
    jwks_url: str | None = None  # None: discovered from the issuer's metadata
    # After a fetch, a token naming an unknown key waits this long before the set is fetched again
    # (a key the issuer just rotated in is refused until then; garbage kids cost the issuer little).
    key_cooldown: float = JWKS_COOLDOWN_SECONDS


@dataclass(frozen=True)
class Verified:
    """A token's verified claims, the key set whose key verified its signature, and when it is valid."""

    claims: Mapping[str, Any]
    key_set: jwt.PyJWKSet  # one fetch of the issuer's JWKS: a refetch or its expiry ends the entry
    not_before: float  # iat and nbf, less the leeway, as jwt.decode checks them
    not_after: float  # exp plus the leeway: valid while the clock is before it

    def holds(self, key_set: jwt.PyJWKSet | None, now: float) -> bool:
        return key_set is self.key_set and self.not_before <= now < self.not_after


class VerifiedTokens:
    """The tokens a verifier accepted, each kept while jwt.decode would accept it again.

    A token's signature, algorithm, issuer, audience and subject are facts of
    its bytes and this server's settings; what can change is the time and the
    issuer's keys. So an entry holds only while the clock is inside the
    token's window (with the same leeway) and the key set in force is the very
    one whose key verified it: after the key set's lifetime, or a refetch that
    may have retired that key, the token is verified afresh. Refusals are not
    kept. Used from the event loop only.
    """

    def __init__(self, size: int = REMEMBERED_TOKENS) -> None:
        self.size = size
        self._entries: OrderedDict[str, Verified] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, key_set: jwt.PyJWKSet | None) -> Verified | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if not entry.holds(key_set, time.time()):
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry

    def put(self, token: str, entry: Verified) -> None:
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class JwtVerifier:
    """Verifies JWT access tokens against the issuer's published keys."""

    def __init__(self, settings: JwtSettings) -> None:
        require_secure_url(settings.issuer, "issuer")
        if settings.jwks_url is not None:
            require_secure_url(settings.jwks_url, "JWKS URL")
        self.settings = settings
        self.verified = VerifiedTokens()
        self._keys: _KeySetClient | None = None
        self._discovery_failed_at = -settings.key_cooldown

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's access, or None (logged by reason); a token verified before costs no thread and no signature."""
        remembered = self.verified.get(token, self._key_set_in_force())
        if remembered is not None:
            return _access(token, remembered.claims, self.settings.resource)
        try:
            access, verified = await anyio.to_thread.run_sync(self._check, token)
        except TokenRefused as refusal:
            log.warning("Refused a bearer token: %s", refusal)
            return None
        if verified is not None:
            self.verified.put(token, verified)
        return access

    def verify(self, token: str) -> AccessToken:
        """The token's access, or :class:`TokenRefused` (blocking: it may fetch the issuer's keys)."""
        return self._check(token)[0]

    def _check(self, token: str) -> tuple[AccessToken, Verified | None]:
        """The token's access, and what to remember of it (None if its key set has changed meanwhile)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRefused("token_too_long")
        try:
            key = self._key_set().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.settings.resource,
                issuer=self.settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError:
            raise TokenRefused("issuer_keys_unavailable") from None
        except jwt.PyJWTError as error:  # its messages may quote the token's header: only the class is kept
            raise TokenRefused(type(error).__name__) from None
        access = _access(token, claims, self.settings.resource)
        key_set = self._key_set_in_force()
        if key_set is None or not any(known is key for known in key_set.keys):
            return access, None
        starts = [int(claims[name]) for name in ("iat", "nbf") if name in claims]  # decode checked they are integers
        verified = Verified(
            claims=dict(claims),
            key_set=key_set,
            not_before=max(starts, default=-float("inf")) - LEEWAY_SECONDS,
            not_after=int(claims["exp"]) + LEEWAY_SECONDS,
        )
        return access, verified

    def _key_set_in_force(self) -> jwt.PyJWKSet | None:
        """The key set as last fetched, unless its lifetime is over (then the next check fetches it again)."""
        cache = self._keys.jwk_set_cache if self._keys is not None else None
        return cache.get() if cache is not None else None

    def _key_set(self) -> _KeySetClient:
        if self._keys is None:
            if time.monotonic() - self._discovery_failed_at < self.settings.key_cooldown:
                raise TokenRefused("issuer_metadata_unavailable")  # asked moments ago: do not hammer a down issuer
            try:
                jwks_url = self.settings.jwks_url or discover_jwks_url(self.settings.issuer)
            except TokenRefused:
                self._discovery_failed_at = time.monotonic()
                raise
            self._keys = _KeySetClient(
                jwks_url,
                cache_jwk_set=True,
                lifespan=JWKS_LIFETIME_SECONDS,
                timeout=FETCH_TIMEOUT_SECONDS,
                cooldown_duration=self.settings.key_cooldown,
            )
        return self._keys


class _KeySetClient(jwt.PyJWKClient):
    """PyJWT's JWKS client, made safe against tokens an attacker mints without any key.

    - A key already in the cached set is found without waiting: PyJWT looks
      every key up under one lock, so a good token would otherwise queue behind
      each refetch that garbage kids set off (up to the fetch timeout apiece,
      each waiter holding a worker thread, while the issuer is slow or cut off).
    - A failed fetch starts the cooldown too, as a successful one does: PyJWT
      counts only successes, so while the issuer errors or stalls every token
      naming an unknown kid would fetch the set again.
    - A key set that is not JSON (an HTML error page, a cut-off body) is a
      refusal like an unreachable issuer, not an exception PyJWT lets through
      (a 500 for every request, and a fetch for each).
    """

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        self._failed_at: float | None = None

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        cached = self.jwk_set_cache.get() if self.jwk_set_cache is not None else None
        if cached is not None:
            for key in cached.keys:
                if key.key_id is not None and key.key_id == kid and key.public_key_use in ("sig", None):
                    return key
        return super().get_signing_key(kid)

    def fetch_data(self) -> Any:
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.cooldown_duration:
            raise jwt.PyJWKClientConnectionError("The key set could not be fetched moments ago.")
        try:
            data = super().fetch_data()
        except (jwt.PyJWTError, OSError, ValueError, RecursionError) as error:  # PyJWT lets a bad body through
            self._failed_at = time.monotonic()
            if isinstance(error, jwt.PyJWTError):
                raise
            raise jwt.PyJWKClientConnectionError("The key set is not a JSON object.") from None
        self._failed_at = None
        return data


def discover_jwks_url(issuer: str) -> str:
    """The issuer's ``jwks_uri``, from its RFC 8414 metadata or else its OpenID configuration.

    The metadata must name the issuer exactly (RFC 8414 section 3.3), and the
    key set must be served as securely as the issuer.
    """
    base = issuer.rstrip("/")
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        try:
            metadata = _fetch_json(base + path)
        except (OSError, ValueError):
            continue
        if metadata.get("issuer") == issuer and isinstance(metadata.get("jwks_uri"), str):
            return require_secure_url(metadata["jwks_uri"], "issuer's jwks_uri")
    raise TokenRefused("issuer_metadata_unavailable")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The issuer's metadata is read where the issuer says it is: a redirect (perhaps to plain http) is a failure."""

    def redirect_request(self, *args: Any) -> None:
        return None


_METADATA_OPENER = urllib.request.build_opener(_NoRedirects)


def _fetch_json(url: str) -> Mapping[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (https or loopback)
    with _METADATA_OPENER.open(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
        body = response.read(MAX_METADATA_BYTES + 1)
    if len(body) > MAX_METADATA_BYTES:
        raise ValueError("metadata too large")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("metadata is not an object")
    return data


def _access(token: str, claims: Mapping[str, Any], resource: str) -> AccessToken:
    """The SDK's view of a verified token; a token without a usable client or subject is refused."""
    client_id = claims.get("client_id", claims.get("azp"))
    for value, reason in ((claims.get("sub"), "token_subject"), (client_id, "token_client_id")):
        if not is_principal_field(value):
            raise TokenRefused(reason)
    if claims["sub"] == OPERATOR:  # history would show the write as the host operator's own
        raise TokenRefused("token_subject")
    if not is_principal_field(claims.get("iss")):
        raise TokenRefused("token_issuer")
    exp = claims.get("exp")
    return AccessToken(
        token=token,
        client_id=str(client_id),
        scopes=_scopes(claims),
        expires_at=int(exp) if isinstance(exp, int | float) else None,
        resource=resource,  # the audience was checked against it
        subject=str(claims["sub"]),
        claims={"iss": claims["iss"]},
    )


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    """The granted scopes: RFC 9068's space-separated ``scope``, or the ``scp`` list some issuers use."""
    granted = claims.get("scope", claims.get("scp", ""))
    words: Iterable[object] = (
        granted.split() if isinstance(granted, str) else granted if isinstance(granted, list) else ()
    )
    return [word for word in words if isinstance(word, str)]


class StaticTokenVerifier:
    """One shared bearer token from a secret file; its holder is named by the token's fingerprint, not by the token."""

    def __init__(self, token_file: Path, resource: str, scopes: Iterable[Scope] = SERVED_SCOPES) -> None:
        try:
            token = read_named_file(token_file, MAX_TOKEN_FILE_BYTES).decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            raise UsageError(f"The token file {token_file} cannot be read as ASCII text.") from None
        if len(token) < MIN_STATIC_TOKEN_CHARS or not token.isprintable() or " " in token:
            raise UsageError(
                f"The token in {token_file} must be one word of at least {MIN_STATIC_TOKEN_CHARS} characters.",
                hint="Make one with `openssl rand -base64 32 > FILE`.",
            )
        REDACTOR.register_text(token)
        self._digest = hashlib.sha256(token.encode()).digest()
        self.fingerprint = self._digest.hex()[:16]
        self.resource = resource
        self.scopes = [str(scope) for scope in scopes]

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        if not hmac.compare_digest(presented, self._digest):
            log.warning("Refused a bearer token: not the static token")
            return None
        return AccessToken(
            token=token,
            client_id="static-token",
            scopes=self.scopes,
            resource=self.resource,
            subject=f"static-token:{self.fingerprint}",
            claims={"iss": self.resource},
        )
