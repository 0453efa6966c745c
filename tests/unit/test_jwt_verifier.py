"""The token verifiers in-process, against a real issuer on loopback: key rotation, outages, discovery, refusals."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mcp_orchestration.core.errors import IntegrityError, UsageError
from mcp_orchestration.security.principal import Principal
from mcp_orchestration.server import auth
from mcp_orchestration.server.auth import (
    MAX_TOKEN_BYTES,
    JwtSettings,
    JwtVerifier,
    StaticTokenVerifier,
    TokenRefused,
    principal_of,
    require_secure_url,
)
from tests.oidc_issuer import Issuer, new_key

RESOURCE = "http://127.0.0.1:8080/mcp"


def verifier(issuer: Issuer, cooldown: float = 0.2) -> JwtVerifier:
    return JwtVerifier(JwtSettings(issuer=issuer.url, resource=RESOURCE, key_cooldown=cooldown))


def test_a_good_token_gives_its_principal_and_scopes(issuer: Issuer) -> None:
    access = verifier(issuer).verify(issuer.mint(RESOURCE, scopes="a b", subject="dana", client_id="cursor"))
    assert access.scopes == ["a", "b"]
    assert access.resource == RESOURCE
    assert principal_of(access) == Principal("dana", "cursor", issuer.url)


def test_a_key_the_issuer_rotates_in_is_followed_after_the_cooldown(issuer: Issuer) -> None:
    check = verifier(issuer)
    check.verify(issuer.mint(RESOURCE))
    new = issuer.rotate(alg="ES256")
    time.sleep(0.3)
    assert check.verify(issuer.mint(RESOURCE, key=new)).subject == "alice@example.com"
    assert issuer.jwks_fetches == 2


def test_a_key_rotated_in_within_the_cooldown_waits_for_it(issuer: Issuer) -> None:
    check = verifier(issuer, cooldown=60)
    check.verify(issuer.mint(RESOURCE))
    new = issuer.rotate()
    with pytest.raises(TokenRefused, match="PyJWKClientError"):
        check.verify(issuer.mint(RESOURCE, key=new))
    assert issuer.jwks_fetches == 1


def test_a_retired_key_is_refused_once_the_key_set_is_fetched_again(issuer: Issuer) -> None:
    old = issuer.signing
    new = issuer.rotate()
    check = verifier(issuer)
    check.verify(issuer.mint(RESOURCE, key=old))
    issuer.retire(old.kid)
    time.sleep(0.3)
    check.verify(issuer.mint(RESOURCE, key=new))  # still cached: no fetch needed
    check._keys.fetch_data()  # type: ignore[union-attr]  # the lifespan ran out (five minutes, in real life)
    with pytest.raises(TokenRefused):
        check.verify(issuer.mint(RESOURCE, key=old))


def test_an_issuer_outage_refuses_tokens_and_recovers(issuer: Issuer) -> None:
    issuer.down = True
    check = verifier(issuer)
    with pytest.raises(TokenRefused, match="issuer_metadata_unavailable"):
        check.verify(issuer.mint(RESOURCE))
    with pytest.raises(TokenRefused, match="issuer_metadata_unavailable"):  # within the cooldown: not asked again
        check.verify(issuer.mint(RESOURCE))
    issuer.down = False
    time.sleep(0.3)
    assert check.verify(issuer.mint(RESOURCE)).client_id == "claude-code"


def test_garbage_kids_do_not_refetch_the_key_set_while_the_issuer_fails(issuer: Issuer) -> None:
    """The attack: while the issuer errors, every token naming an unknown kid fetched the key set again."""
    check = verifier(issuer, cooldown=1.0)
    check.verify(issuer.mint(RESOURCE))
    garbage = [issuer.mint(RESOURCE, key=new_key("ES256")) for _ in range(20)]
    issuer.down = True
    time.sleep(1.1)  # past the cooldown of the last good fetch
    for token in garbage:
        with pytest.raises(TokenRefused, match="issuer_keys_unavailable"):
            check.verify(token)
    assert issuer.jwks_requests == 2  # the first fetch, and one failed refetch: the failure starts the cooldown
    issuer.down = False
    time.sleep(1.1)
    rotated = issuer.rotate()
    assert check.verify(issuer.mint(RESOURCE, key=rotated)).subject == "alice@example.com"  # and it recovers


def test_a_cached_key_does_not_wait_behind_refetches_of_a_stalled_issuer(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: garbage kids, each refetching from a partitioned issuer, queued every good token behind them."""
    monkeypatch.setattr(auth, "FETCH_TIMEOUT_SECONDS", 2.5)
    check = verifier(issuer)
    good = issuer.mint(RESOURCE)
    check.verify(good)
    time.sleep(0.3)
    issuer.stall = 4.0  # answers nothing within the fetch timeout

    def garbage() -> None:
        with pytest.raises(TokenRefused):
            check.verify(issuer.mint(RESOURCE, key=new_key("ES256")))

    attackers = [threading.Thread(target=garbage) for _ in range(4)]
    for thread in attackers:
        thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert check.verify(good).subject == "alice@example.com"
    assert time.monotonic() - started < 1.0  # a check queued behind the refetch would wait out its 2.5 s timeout
    for thread in attackers:
        thread.join()
    assert issuer.jwks_requests == 2  # one stalled refetch; the other attackers were turned away at once


def test_a_key_set_that_is_not_json_is_a_refusal_and_is_not_fetched_again_at_once(issuer: Issuer) -> None:
    issuer.jwks_body = b"<html>502 Bad Gateway</html>"
    check = verifier(issuer, cooldown=60)
    for _ in range(5):
        with pytest.raises(TokenRefused, match="issuer_keys_unavailable"):
            check.verify(issuer.mint(RESOURCE))
    assert issuer.jwks_requests == 1


def test_metadata_naming_another_issuer_is_not_trusted(issuer: Issuer) -> None:
    check = JwtVerifier(JwtSettings(issuer=issuer.url + "/", resource=RESOURCE))  # not the issuer it says it is
    with pytest.raises(TokenRefused, match="issuer_metadata_unavailable"):
        check.verify(issuer.mint(RESOURCE))


def test_metadata_behind_a_redirect_is_not_followed(issuer: Issuer) -> None:
    issuer.metadata_redirect = issuer.url + "/moved-metadata"  # the same document, one hop away
    with pytest.raises(TokenRefused, match="issuer_metadata_unavailable"):
        verifier(issuer).verify(issuer.mint(RESOURCE))
    issuer.metadata_redirect = None
    time.sleep(0.3)
    assert verifier(issuer).verify(issuer.mint(RESOURCE)).subject == "alice@example.com"


def test_an_oversized_token_is_refused_unread(issuer: Issuer) -> None:
    with pytest.raises(TokenRefused, match="token_too_long"):
        verifier(issuer).verify("a" * (MAX_TOKEN_BYTES + 1))
    assert issuer.jwks_fetches == 0


@pytest.mark.parametrize("url", ["http://id.example", "ftp://id.example", "https://", "http://10.0.0.1/"])
def test_an_issuer_reached_without_tls_off_loopback_is_refused(url: str) -> None:
    with pytest.raises(UsageError):
        require_secure_url(url, "issuer")


def test_loopback_and_https_issuers_are_accepted() -> None:
    for url in ("https://id.example", "http://127.0.0.1:9000", "http://[::1]:9000", "http://localhost:1"):
        assert require_secure_url(url, "issuer") == url


@pytest.mark.anyio
async def test_the_static_token_is_compared_whole_and_named_by_its_fingerprint(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    token = "s3cr3t-" * 8
    secret.write_text(token + "\n")
    check = StaticTokenVerifier(secret, RESOURCE)
    access = await check.verify_token(token)
    assert access is not None and access.subject == f"static-token:{check.fingerprint}"
    assert token not in repr(check.__dict__)
    for wrong in (token[:-1], token + "x", "", token.upper()):
        assert await check.verify_token(wrong) is None


@pytest.mark.parametrize("content", ["short", "two words " * 5, ""])
def test_a_weak_static_token_file_is_refused(content: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(content)
    with pytest.raises(UsageError):
        StaticTokenVerifier(secret, RESOURCE)


@pytest.mark.parametrize("field", ["", "a b", "a\nb", "é", "x" * 256, None])
def test_a_principal_field_is_one_short_run_of_visible_ascii(field: object) -> None:
    with pytest.raises(ValueError):
        Principal(field, "client", "issuer")  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        Principal.from_json({"subject": field, "client_id": "c", "issuer": "i"}, "entry")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
