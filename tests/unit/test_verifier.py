"""The verifier over bytes alone: no store, no file; chains are built in memory and fetched from a dict."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

import pytest
import rfc8785

from mcp_orchestration.core.errors import OrchestrationError
from mcp_orchestration.trust import dsse, keys, verifier
from mcp_orchestration.trust.history import KeyHistory
from mcp_orchestration.trust.metadata import Head
from mcp_orchestration.trust.verifier import AcceptedHead, SignedHead

ROOT = "ab" * 32  # heads name a root tree; the verifier never reads it
NOW = "2026-01-01T00:00:00Z"


@dataclass
class Chain:
    """Heads by id, as a mirror would serve them, and the key history they are signed under."""

    history: KeyHistory
    objects: dict[str, bytes] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def sign(
        self,
        key: keys.SigningKey,
        *,
        version: int | None = None,
        previous: str | None = None,
        root: str = ROOT,
        binding: tuple[int, str] | None = None,
    ) -> bytes:
        """A head after the last one (or at ``version`` after ``previous``), signed by ``key``; not appended.

        ``binding``: the key-history version and digest it claims (default: the newest).
        """
        number = version if version is not None else len(self.ids) + 1
        link = previous if version is not None else (self.ids[-1] if self.ids else None)
        history_version, digest = binding or (len(self.history.versions), self.history.digests[-1])
        head = Head(number, root, link, history_version, digest, NOW)
        payload = rfc8785.dumps(head.to_json())
        return dsse.sign(dsse.INDEX_PAYLOAD_TYPE, payload, {key.keyid: key.sign}).to_bytes()

    def append(self, data: bytes) -> str:
        head_id = hashlib.sha256(data).hexdigest()
        self.objects[head_id] = data
        self.ids.append(head_id)
        return head_id

    def publish(self, key: keys.SigningKey, count: int = 1) -> None:
        for _ in range(count):
            self.append(self.sign(key))

    def fetch(self, head_id: str) -> bytes:
        return self.objects[head_id]

    def current(self) -> SignedHead:
        return verifier.verify_current(self.objects[self.ids[-1]], self.history, 0, 0)


def _code(excinfo: pytest.ExceptionInfo[OrchestrationError]) -> str:
    return excinfo.value.code


@pytest.fixture
def key() -> keys.SigningKey:
    return keys.generate()


@pytest.fixture
def chain(key: keys.SigningKey) -> Chain:
    documents = [KeyHistory.genesis(key, NOW).envelope_bytes]  # as a mirror serves them
    chain = Chain(KeyHistory.verify(documents, expect_root=key.fingerprint))
    chain.publish(key, 3)
    return chain


def _rotate(chain: Chain, old: keys.SigningKey, new: keys.SigningKey) -> None:
    """Retire ``old`` after the last head and re-sign with ``new``, as ``keys rotate`` does."""
    version = chain.history.rotation(old, new, len(chain.ids), chain.ids[-1], NOW)
    chain.history = KeyHistory.verify([*(v.envelope_bytes for v in chain.history.versions), version.envelope_bytes])
    chain.publish(new)


def test_a_valid_chain_verifies_from_the_current_head_back_to_version_one(chain: Chain) -> None:
    current = chain.current()
    links = list(verifier.walk_chain(current, chain.history, chain.fetch))
    assert [link.signed.head_id for link in links] == chain.ids[::-1]
    assert [link.signed.head.version for link in links] == [3, 2, 1]
    assert not any(link.vouched for link in links)
    assert verifier.ancestor_id(current, 1, chain.history, chain.fetch) == chain.ids[0]
    verifier.check_descent(current, chain.history, chain.fetch, AcceptedHead(chain.ids[0], 1, 1), "hint")


def test_a_tampered_payload_is_refused(chain: Chain) -> None:
    envelope = json.loads(chain.objects[chain.ids[-1]])
    head = json.loads(base64.b64decode(envelope["payload"]))
    head["root"] = "cd" * 32
    envelope["payload"] = base64.b64encode(rfc8785.dumps(head)).decode()
    with pytest.raises(OrchestrationError) as excinfo:
        verifier.verify_current(rfc8785.dumps(envelope), chain.history, 0, 0)
    assert _code(excinfo) == "signature"


def test_a_head_signed_by_a_key_outside_the_history_is_refused(chain: Chain) -> None:
    with pytest.raises(OrchestrationError, match="no valid signature from a trusted") as excinfo:
        verifier.verify_current(chain.sign(keys.generate()), chain.history, 0, 0)
    assert _code(excinfo) == "signature"


def test_a_head_signed_by_a_key_after_its_retirement_is_refused(chain: Chain, key: keys.SigningKey) -> None:
    _rotate(chain, key, keys.generate())
    with pytest.raises(OrchestrationError, match="not signed by the key active for it") as excinfo:
        verifier.verify_head(chain.sign(key), chain.history, "A head")
    assert _code(excinfo) == "signature"


def test_another_head_at_a_retired_keys_last_version_is_a_fork(chain: Chain, key: keys.SigningKey) -> None:
    _rotate(chain, key, keys.generate())
    forged = chain.sign(key, version=3, previous=chain.ids[1], root="cd" * 32, binding=(1, chain.history.digests[0]))
    with pytest.raises(OrchestrationError, match="forged with the retired key") as excinfo:
        verifier.verify_head(forged, chain.history, "A head")
    assert _code(excinfo) == "fork"


def test_a_head_older_than_the_accepted_version_is_a_rollback(chain: Chain) -> None:
    with pytest.raises(OrchestrationError, match="an old index was replayed") as excinfo:
        verifier.verify_current(chain.objects[chain.ids[-1]], chain.history, 4, 1)
    assert _code(excinfo) == "rollback"
    with pytest.raises(OrchestrationError, match="key history versions were removed") as excinfo:
        verifier.verify_current(chain.objects[chain.ids[-1]], chain.history, 3, 2)
    assert _code(excinfo) == "rollback"


def test_descent_refuses_an_older_head_as_a_rollback(chain: Chain) -> None:
    with pytest.raises(OrchestrationError, match="already accepted") as excinfo:
        verifier.check_descent(chain.current(), chain.history, chain.fetch, AcceptedHead("ef" * 32, 5, 1), "hint")
    assert _code(excinfo) == "rollback"


def test_descent_refuses_a_chain_that_does_not_pass_through_the_accepted_head(
    chain: Chain, key: keys.SigningKey
) -> None:
    accepted = verifier.verify_head(chain.objects[chain.ids[1]], chain.history, "t")
    rebuilt = Chain(chain.history, dict(chain.objects), chain.ids[:1])
    rebuilt.append(rebuilt.sign(key, root="cd" * 32))  # another version 2, then a version 3 on it
    rebuilt.publish(key)
    assert rebuilt.ids[1] != accepted.head_id
    with pytest.raises(OrchestrationError, match="does not descend") as excinfo:
        verifier.check_descent(
            rebuilt.current(), chain.history, rebuilt.fetch, AcceptedHead(accepted.head_id, 2, 1), "hint"
        )
    assert _code(excinfo) == "fork"
    with pytest.raises(OrchestrationError, match="does not descend") as excinfo:  # the same version, another head
        verifier.check_descent(
            verifier.verify_head(rebuilt.objects[rebuilt.ids[1]], chain.history, "t"),
            chain.history,
            rebuilt.fetch,
            AcceptedHead(accepted.head_id, 2, 1),
            "hint",
        )
    assert _code(excinfo) == "fork"


def test_a_previous_link_to_the_wrong_version_breaks_the_chain(chain: Chain, key: keys.SigningKey) -> None:
    skipping = verifier.verify_current(chain.sign(key, version=4, previous=chain.ids[1]), chain.history, 0, 0)
    with pytest.raises(OrchestrationError, match="the chain is broken") as excinfo:
        list(verifier.walk_chain(skipping, chain.history, chain.fetch))
    assert _code(excinfo) == "integrity"


def test_a_source_serving_other_bytes_for_a_previous_id_is_refused(chain: Chain, key: keys.SigningKey) -> None:
    lying = {**chain.objects, chain.ids[1]: chain.sign(key, version=2, previous=chain.ids[0]) + b" "}
    with pytest.raises(OrchestrationError, match="no longer hash to its id") as excinfo:
        list(verifier.walk_chain(chain.current(), chain.history, lying.__getitem__))
    assert _code(excinfo) == "integrity"


def test_a_head_whose_key_was_revoked_is_vouched_for_by_its_successor(chain: Chain, key: keys.SigningKey) -> None:
    new = keys.generate()
    _rotate(chain, key, new)
    revocation = chain.history.revocation(new, key.keyid, NOW)
    chain.history = KeyHistory.verify([*(v.envelope_bytes for v in chain.history.versions), revocation.envelope_bytes])
    chain.publish(new)
    links = list(verifier.walk_chain(chain.current(), chain.history, chain.fetch))
    assert [link.vouched for link in links] == [False, False, True, True, True]
    with pytest.raises(OrchestrationError) as excinfo:  # on its own, it no longer verifies
        verifier.verify_head(chain.objects[chain.ids[0]], chain.history, "t")
    assert _code(excinfo) == "signature"


def test_a_head_bound_to_a_key_history_version_the_source_lacks_is_refused(chain: Chain, key: keys.SigningKey) -> None:
    unknown = chain.sign(key, binding=(2, "ef" * 32))
    with pytest.raises(OrchestrationError, match="which this store lacks") as excinfo:
        verifier.verify_head(unknown, chain.history, "t")
    assert _code(excinfo) == "key_history"
