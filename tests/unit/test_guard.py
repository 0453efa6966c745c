"""store/guard.py: the rollback guard refuses anything older than what a store accepted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_orchestration.core.errors import RollbackError
from mcp_orchestration.store.guard import Guard, create_guard, raise_guard, read_guard


def test_a_guard_is_two_fixed_width_numbers_and_reads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "accepted"
    create_guard(path, Guard(7, 2))
    assert path.read_bytes() == b"%020d %020d\n" % (7, 2)
    assert read_guard(path) == Guard(7, 2)


def test_raising_the_guard_rewrites_the_same_bytes_in_place(tmp_path: Path) -> None:
    path = tmp_path / "accepted"
    create_guard(path, Guard(1, 1))
    inode = path.stat().st_ino
    raise_guard(path, Guard(12345, 3))
    assert read_guard(path) == Guard(12345, 3)
    assert path.stat().st_ino == inode  # no rename: the same file, the same length
    assert path.stat().st_size == len(Guard(1, 1).encode())


def test_no_guard_file_means_a_store_never_initialised(tmp_path: Path) -> None:
    assert read_guard(tmp_path / "accepted") is None


@pytest.mark.parametrize(
    "data",
    [b"", b"7 2\n", b"%020d %020d" % (7, 2), b"%020d %020d\n\n" % (7, 2), b"%020d-%020d\n" % (7, 2), b"x" * 42],
    ids=["empty", "short numbers", "no newline", "two newlines", "wrong separator", "garbage"],
)
def test_a_damaged_guard_is_a_rollback(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "accepted"
    path.write_bytes(data)
    with pytest.raises(RollbackError, match="damaged or was reset"):
        read_guard(path)


def test_a_guard_that_is_a_link_or_a_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    create_guard(real, Guard(3, 1))
    link = tmp_path / "accepted"
    link.symlink_to(real)
    with pytest.raises(RollbackError, match="not a regular file"):
        read_guard(link)
    directory = tmp_path / "dir"
    directory.mkdir()
    with pytest.raises(RollbackError):
        read_guard(directory)


def test_raising_a_guard_through_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    create_guard(real, Guard(3, 1))
    link = tmp_path / "accepted"
    link.symlink_to(real)
    with pytest.raises(OSError):
        raise_guard(link, Guard(4, 1))
    assert read_guard(real) == Guard(3, 1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_guard_is_a_rollback(tmp_path: Path) -> None:
    path = tmp_path / "accepted"
    create_guard(path, Guard(1, 1))
    path.chmod(0)
    with pytest.raises(RollbackError, match="cannot be read"):
        read_guard(path)
