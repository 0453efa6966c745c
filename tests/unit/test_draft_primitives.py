"""The primitives behind authenticated, link-proof drafts: derived keys, dir-fd file operations, publish CAS."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration.core import fsutil
from mcp_orchestration.core.errors import ConflictError
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.security.secret_rules import MASK
from mcp_orchestration.store.repository import ANY_BASE, ExpectedBase, ProfileUpdate, Repository
from mcp_orchestration.trust import keys

CONFIG_A = {"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}}
CONFIG_B = {"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}
PURPOSE = b"mcp-orchestration test v1"


@pytest.fixture(scope="module")
def key() -> keys.SigningKey:
    return keys.generate()


# -- derived keys ----------------------------------------------------------------------------


def test_a_derived_key_is_bound_to_its_key_and_purpose(key: keys.SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "signing_key"
    path.write_bytes(key.serialize("pkcs8", None))
    reloaded = keys.parse_private_key(path.read_bytes(), None, origin="test")
    tag = key.derive_key(PURPOSE).mac(b"message")
    assert reloaded.derive_key(PURPOSE).verify(b"message", tag)  # derived, not stored: the same after a restart
    assert not key.derive_key(PURPOSE).verify(b"messagE", tag)
    assert not key.derive_key(b"another purpose").verify(b"message", tag)
    assert not keys.generate().derive_key(PURPOSE).verify(b"message", tag)


def test_a_derived_key_never_shows_itself(key: keys.SigningKey) -> None:
    derived = key.derive_key(PURPOSE)
    secret: bytes = derived._secret
    for text in (repr(derived), str(derived), f"{derived}", repr(key)):
        assert secret.hex() not in text
    assert REDACTOR.redact(f"x {secret.hex()} y") == f"x {MASK} y"
    with pytest.raises(TypeError):
        pickle.dumps(derived)
    with pytest.raises(AttributeError):
        derived.__dict__  # noqa: B018 (slots: nothing to dump)


# -- directory descriptors ---------------------------------------------------------------------


def test_open_directory_creates_private_directories_and_refuses_links(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    fd = fsutil.open_directory(base, ["a", "b"], create=True)
    try:
        fsutil.atomic_write_at(fd, "f.json", b"data")
    finally:
        os.close(fd)
    assert (base / "a" / "b" / "f.json").read_bytes() == b"data"
    assert stat.S_IMODE((base / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((base / "a" / "b" / "f.json").stat().st_mode) == 0o600
    assert [p.name for p in (base / "a" / "b").iterdir()] == ["f.json"]  # no temporary file left

    outside = tmp_path / "outside"
    outside.mkdir()
    (base / "link").symlink_to(outside)
    (base / "a" / "link").symlink_to(outside)
    (base / "file").write_text("x")
    for parts in (["link"], ["link", "c"], ["a", "link"], ["file"]):
        for create in (True, False):
            with pytest.raises(fsutil.UnsafeFileError):
                os.close(fsutil.open_directory(base, parts, create=create))
    assert list(outside.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        fsutil.open_directory(base, ["missing"], create=False)
    for bad in ("..", ".", "", "a/b"):
        with pytest.raises(ValueError, match="single path component"):
            fsutil.open_directory(base, [bad], create=True)


def test_atomic_write_at_replaces_a_link_instead_of_following_it(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "name").symlink_to(target)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsutil.atomic_write_at(fd, "name", b"new")
    finally:
        os.close(fd)
    assert target.read_text() == "keep"
    assert not (tmp_path / "name").is_symlink()
    assert (tmp_path / "name").read_bytes() == b"new"


def test_exclusive_lock_in_refuses_a_linked_lock_file(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    with fsutil.exclusive_lock_in(base, ["d"], ".lock"):
        assert (base / "d" / ".lock").is_file()
    (base / "d" / ".lock").unlink()
    (base / "d" / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(fsutil.UnsafeFileError), fsutil.exclusive_lock_in(base, ["d"], ".lock"):
        pass
    assert not (tmp_path / "elsewhere").exists()


# -- the publish compare-and-swap ------------------------------------------------------------


def test_publish_checks_the_expected_base_under_the_lock(tmp_path: Path, key: keys.SigningKey) -> None:
    index = Repository(tmp_path / "storage")
    index.initialize(key)

    def publish(payload: dict[str, Any], base: ExpectedBase) -> str:
        update = ProfileUpdate("claude-desktop", "default", payload, expected_base=base)
        return index.publish(key, [update]).artifacts["claude-desktop/default"]

    first = publish(CONFIG_A, None)
    objects = set(index.objects.iter_ids())
    with pytest.raises(ConflictError, match="changed since"):
        publish(CONFIG_B, None)
    with pytest.raises(ConflictError):
        publish(CONFIG_B, "0" * 64)
    assert set(index.objects.iter_ids()) == objects  # a refused publish writes nothing
    assert index.snapshot()[1].head.version == 2
    assert publish(CONFIG_A, None) == first  # already published: nothing to lose, so no conflict
    second = publish(CONFIG_B, first)
    assert publish(CONFIG_A, ANY_BASE) != second  # no base: the operator's publish replaces anything
    assert index.snapshot()[1].head.version == 4
