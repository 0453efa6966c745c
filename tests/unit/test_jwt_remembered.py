"""JwtVerifier.verify_token against a real issuer on loopback: a verified token is remembered while it would verify.

Remembering spares a repeated token the worker thread and the signature
check (``make bench-http``: the auth overhead per request). It must accept
exactly what a fresh check would: these tests show a remembered token
refused once its window closes, and once the key set that verified it has
been refetched without its key; refusals are never remembered.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import jwt
import pytest
from mcp.server.auth.provider import AccessToken

from mcp_orchestration.server import auth
from mcp_orchestration.server.auth import JwtSettings, JwtVerifier, Verified, VerifiedTokens
from tests.oidc_issuer import Issuer, new_key

RESOURCE = "http://127.0.0.1:8000/mcp"


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token jwt.decode is asked to verify, in order."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def verify(verifier: JwtVerifier, token: str) -> AccessToken | None:
    return anyio.run(verifier.verify_token, token)


def test_a_token_verified_once_is_accepted_again_without_a_second_signature_check(
    issuer: Issuer, decodes: list[str]
) -> None:
    verifier = JwtVerifier(JwtSettings(issuer=issuer.url, resource=RESOURCE, key_cooldown=0.2))
    token = issuer.mint(RESOURCE, scopes="mcp-orchestration:read mcp-orchestration:draft", subject="bob@example.com")
    other = issuer.mint(RESOURCE, subject="carol@example.com")

    first, again, third = verify(verifier, token), verify(verifier, token), verify(verifier, other)

    assert first is not None and again is not None and third is not None
    assert again == first and again is not first  # the same access, a fresh object for each request
    assert (again.subject, again.client_id, again.scopes) == (
        "bob@example.com",
        "claude-code",
        ["mcp-orchestration:read", "mcp-orchestration:draft"],
    )
    assert third.subject == "carol@example.com"
    assert decodes == [token, other]
    assert issuer.jwks_fetches == 1


def test_a_remembered_token_is_refused_once_it_expires(issuer: Issuer) -> None:
    verifier = JwtVerifier(JwtSettings(issuer=issuer.url, resource=RESOURCE, key_cooldown=0.2))
    lifetime = 2 - auth.LEEWAY_SECONDS  # expired by the issuer's clock, inside the leeway for about 2 s more
    token = issuer.mint(RESOURCE, lifetime=lifetime)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"] + auth.LEEWAY_SECONDS

    assert verify(verifier, token) is not None
    assert verify(verifier, token) is not None
    time.sleep(max(0.0, expires - time.time()) + 0.1)

    assert verify(verifier, token) is None
    assert len(verifier.verified) == 0


def test_a_remembered_token_is_refused_once_a_refetched_key_set_has_retired_its_key(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "JWKS_LIFETIME_SECONDS", 0.5)  # the key set is refetched after this
    verifier = JwtVerifier(JwtSettings(issuer=issuer.url, resource=RESOURCE, key_cooldown=0.2))
    old = issuer.signing
    token = issuer.mint(RESOURCE)
    assert verify(verifier, token) is not None
    assert verify(verifier, token) is not None  # remembered
    issuer.rotate()
    issuer.retire(old.kid)
    time.sleep(0.6)

    assert verify(verifier, token) is None
    assert verify(verifier, issuer.mint(RESOURCE)) is not None  # the new key verifies
    assert issuer.jwks_fetches == 2


def test_a_remembered_token_is_verified_afresh_against_a_refetched_key_set(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch, decodes: list[str]
) -> None:
    monkeypatch.setattr(auth, "JWKS_LIFETIME_SECONDS", 0.5)
    verifier = JwtVerifier(JwtSettings(issuer=issuer.url, resource=RESOURCE, key_cooldown=0.2))
    token = issuer.mint(RESOURCE)
    assert verify(verifier, token) is not None
    time.sleep(0.6)

    assert verify(verifier, token) is not None
    assert verify(verifier, token) is not None
    assert decodes == [token, token]
    assert issuer.jwks_fetches == 2


@pytest.mark.parametrize(
    "claims",
    [{"aud": "http://127.0.0.1:9999/mcp"}, {"iss": "http://127.0.0.1:1"}, {"sub": None}, {"exp": 1}],
    ids=["other audience", "other issuer", "no subject", "expired"],
)
def test_a_refused_token_is_checked_again_each_time_and_never_remembered(
    issuer: Issuer, decodes: list[str], claims: dict[str, Any]
) -> None:
    verifier = JwtVerifier(JwtSettings(issuer=issuer.url, resource=RESOURCE, key_cooldown=0.2))
    token = issuer.mint(RESOURCE, **claims)

    assert verify(verifier, token) is None
    assert verify(verifier, token) is None
    assert decodes == [token, token]
    assert len(verifier.verified) == 0


def test_a_token_with_a_bad_signature_is_refused_each_time(issuer: Issuer) -> None:
    verifier = JwtVerifier(JwtSettings(issuer=issuer.url, resource=RESOURCE, key_cooldown=0.2))
    good = issuer.mint(RESOURCE)
    assert verify(verifier, good) is not None
    header, payload, signature = good.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b"alice@example.com", b"admin@example.com")
    ).decode()
    forged = f"{header}.{forged_payload}.{signature}"

    assert verify(verifier, forged) is None
    assert verify(verifier, forged) is None
    assert len(verifier.verified) == 1


def test_the_remembered_tokens_are_bounded_least_recently_used_first_out() -> None:
    remembered = VerifiedTokens(size=2)
    key_set = jwt.PyJWKSet([new_key("ES256").public_jwk()])
    entry = Verified(claims={}, key_set=key_set, not_before=0.0, not_after=time.time() + 60)
    remembered.put("a", entry)
    remembered.put("b", entry)
    assert remembered.get("a", key_set) is entry  # now b is the least recently used
    remembered.put("c", entry)

    assert len(remembered) == 2
    assert remembered.get("b", key_set) is None
    assert remembered.get("a", key_set) is entry
    assert remembered.get("c", jwt.PyJWKSet([new_key("ES256").public_jwk()])) is None  # another key set: gone
    assert len(remembered) == 1
