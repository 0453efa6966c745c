"""Property tests: what holds for every payload and every id, not just the examples."""

from __future__ import annotations

import hashlib
from pathlib import Path

import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_orchestration.core.errors import InvalidIdError
from mcp_orchestration.security.ids import check_name_id
from mcp_orchestration.store.cas import ContentStore
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import keys

_SAFE_INT = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_JSON = st.recursive(
    st.none() | st.booleans() | _SAFE_INT | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)
_PAYLOADS = st.dictionaries(_TEXT, _JSON, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=_PAYLOADS)
def test_any_published_payload_reads_back_equal_under_its_jcs_digest(tmp_path_factory, payload) -> None:  # type: ignore[no-untyped-def]
    index = Repository(tmp_path_factory.mktemp("store") / "storage")
    key = keys.generate()
    index.initialize(key)
    result = index.publish(key, [ProfileUpdate("claude-desktop", "default", payload)])
    artifact = result.artifacts["claude-desktop/default"]
    assert artifact == hashlib.sha256(rfc8785.dumps(payload)).hexdigest()
    entry, read_back = index.get_artifact("claude-desktop", "default")
    assert (entry.artifact, read_back) == (artifact, payload)


@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=80))
def test_an_accepted_name_id_can_never_leave_its_directory(value: str) -> None:
    try:
        checked = check_name_id(value, "client")
    except InvalidIdError:
        return
    base = Path("/store/clients")
    assert (base / checked).resolve().parent == base
    assert checked.isascii() and "/" not in checked and "\\" not in checked and "\x00" not in checked


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=80))
def test_only_sha256_hex_ids_map_to_object_paths(value: str) -> None:
    store = ContentStore(Path("/store/objects"))
    try:
        path = store.path_for(value)
    except InvalidIdError:
        return
    assert path.parent.parent == Path("/store/objects/sha256")
    assert len(value) == 64
