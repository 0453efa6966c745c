"""Property tests: what holds for every payload and every id, not just the examples."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mcp_orchestration.core.errors import InvalidIdError
from mcp_orchestration.security.ids import check_name_id
from mcp_orchestration.security.secret_rules import find_secret
from mcp_orchestration.store.cas import ContentStore
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import keys

_SAFE_INT = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
_JSON = st.recursive(
    st.none() | st.booleans() | _SAFE_INT | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)
_PAYLOADS = st.dictionaries(_TEXT, _JSON, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=_PAYLOADS)
def test_any_published_payload_reads_back_equal_under_its_jcs_digest(
    tmp_path_factory: pytest.TempPathFactory, payload: dict[str, Any]
) -> None:
    index = Repository(tmp_path_factory.mktemp("store") / "storage")
    key = keys.generate()
    index.initialize(key)
    result = index.publish(key, [ProfileUpdate("claude-desktop", "default", payload)])
    artifact = result.artifacts["claude-desktop/default"]
    assert artifact == hashlib.sha256(rfc8785.dumps(payload)).hexdigest()
    entry, read_back = index.get_artifact("claude-desktop", "default")
    assert (entry.artifact, read_back) == (artifact, payload)


_NAME_SHAPE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_WELL_FORMED_NAMES = st.from_regex(_NAME_SHAPE, fullmatch=True).filter(lambda value: ".." not in value)
# Near misses: a well-formed id with one character that breaks it, at either end.
_NEAR_MISS_NAMES = st.builds(
    lambda name, bad, at_end: name + bad if at_end else bad + name,
    _WELL_FORMED_NAMES,
    st.sampled_from(["/", "\\", "\x00", "..", "A", " ", "\u0430", "-", "."]),
    st.booleans(),
)
# Around the length limit (64): 63 to 66 characters of the allowed alphabet.
_NAMES_AT_THE_LIMIT = st.builds(
    lambda head, tail: head + tail, st.sampled_from("a0"), st.text("abxyz0189._-", min_size=62, max_size=65)
)
_HEX_IDS = st.text("0123456789abcdef", min_size=64, max_size=64)
_NEAR_MISS_HEX = st.one_of(
    st.text("0123456789abcdef", min_size=63, max_size=65).filter(lambda value: len(value) != 64),
    _HEX_IDS.map(str.upper).filter(lambda value: value != value.lower()),
    st.builds(lambda hex_id, bad: hex_id[:-1] + bad, _HEX_IDS, st.sampled_from(["g", "/", "\n", "\u0661", " "])),
)


def test_a_name_id_is_accepted_exactly_when_well_formed_and_never_leaves_its_directory() -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=500, deadline=None)
    @given(value=st.one_of(_WELL_FORMED_NAMES, _NEAR_MISS_NAMES, _NAMES_AT_THE_LIMIT, st.text(max_size=80)))
    def accepted_iff_well_formed(value: str) -> None:
        well_formed = _NAME_SHAPE.fullmatch(value) is not None and ".." not in value
        credential_like = well_formed and find_secret(value) is not None
        try:
            checked = check_name_id(value, "client")
        except InvalidIdError:
            event("refused")
            outcomes["refused"] += 1
            assert not well_formed or credential_like, f"a well-formed id was refused: {value!r}"
            return
        event("accepted")
        outcomes["accepted"] += 1
        assert well_formed and not credential_like, f"a malformed or credential-like id was accepted: {value!r}"
        assert checked == value
        base = Path("/store/clients")
        assert (base / checked).resolve().parent == base
        assert checked.isascii() and "/" not in checked and "\\" not in checked and "\x00" not in checked

    accepted_iff_well_formed()
    assert outcomes["accepted"] > 0 and outcomes["refused"] > 0, outcomes


def test_an_object_id_maps_to_a_path_exactly_when_it_is_sha256_hex() -> None:
    outcomes: Counter[str] = Counter()
    store = ContentStore(Path("/store/objects"))

    @settings(max_examples=300, deadline=None)
    @given(value=st.one_of(_HEX_IDS, _NEAR_MISS_HEX, st.text(max_size=80)))
    def maps_iff_hex(value: str) -> None:
        is_hex = len(value) == 64 and all(char in "0123456789abcdef" for char in value)
        try:
            path = store.path_for(value)
        except InvalidIdError:
            event("refused")
            outcomes["refused"] += 1
            assert not is_hex, f"a SHA-256 hex id was refused: {value!r}"
            return
        event("accepted")
        outcomes["accepted"] += 1
        assert is_hex, f"a non-hex id mapped to a path: {value!r}"
        assert path == Path("/store/objects/sha256") / value[:2] / value[2:]

    maps_iff_hex()
    assert outcomes["accepted"] > 0 and outcomes["refused"] > 0, outcomes
