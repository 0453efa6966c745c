from __future__ import annotations

import multiprocessing
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mcp_orchestration.core import fsutil
from tests.conftest import is_locked


def test_atomic_write_creates_the_file_with_its_final_mode(tmp_path: Path) -> None:
    target = tmp_path / "file"
    old_umask = os.umask(0)
    try:
        fsutil.atomic_write(target, b"data", mode=0o600)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_atomic_write_replaces_existing_content(tmp_path: Path) -> None:
    target = tmp_path / "file"
    fsutil.atomic_write(target, b"old")
    fsutil.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"


def test_create_exclusive_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "key"
    fsutil.create_exclusive(target, b"first")
    with pytest.raises(FileExistsError):
        fsutil.create_exclusive(target, b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".tmp-deadbeef").write_bytes(b"partial")
    (tmp_path / "keep").write_bytes(b"x")
    assert fsutil.remove_stale_temps(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]


def _hold_lock(path: str, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    with fsutil.exclusive_lock(Path(path)):
        ready.set()
        time.sleep(seconds)


def test_exclusive_lock_blocks_another_process(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    ready = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(str(lock), 0.5, ready))
    holder.start()
    assert ready.wait(5)
    started = time.monotonic()
    with fsutil.exclusive_lock(lock):
        waited = time.monotonic() - started
    holder.join()
    assert waited >= 0.3


def _eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see a blocked waiter")
def test_a_lock_file_moved_while_someone_waits_is_locked_again_at_its_path(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    held: list[bool] = []

    def waiter() -> None:
        with fsutil.exclusive_lock(lock):
            held.append(is_locked(lock))

    with fsutil.exclusive_lock(lock):
        blocked = re.compile(rf"->\s+FLOCK\s.*:{lock.stat().st_ino}\s")
        thread = threading.Thread(target=waiter)
        thread.start()
        _eventually(lambda: blocked.search(Path("/proc/locks").read_text()) is not None)
        lock.rename(tmp_path / "moved.lock")  # as a restore moves a store, lock file and all, aside
    thread.join(10)
    assert held == [True]


def test_read_regular_reads_a_file_within_its_limit(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"x" * 10)
    assert fsutil.read_regular(target, 10) == b"x" * 10
    with pytest.raises(fsutil.UnsafeFileError, match="larger than 9 bytes"):
        fsutil.read_regular(target, 9)


@pytest.mark.parametrize("kind", ["link", "fifo", "device", "directory", "dangling"])
def test_read_regular_refuses_anything_but_a_regular_file_and_never_blocks(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "planted"
    real = tmp_path / "real"
    real.write_bytes(b"data")
    if kind == "link":
        target.symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        target.symlink_to("/dev/zero")
    elif kind == "directory":
        target.mkdir()
    else:
        target.symlink_to(tmp_path / "missing")
    with pytest.raises(fsutil.UnsafeFileError):
        fsutil.read_regular(target, 1 << 20)


@pytest.mark.parametrize("kind", ["link", "fifo", "directory"])
def test_a_stream_at_a_directory_refuses_anything_but_a_regular_file_and_never_blocks(
    tmp_path: Path, kind: str
) -> None:
    (tmp_path / "real").write_bytes(b"data")
    planted = tmp_path / "planted"
    if kind == "link":
        planted.symlink_to("real")
    elif kind == "fifo":
        os.mkfifo(planted)
    else:
        planted.mkdir()
    directory = fsutil.open_directory(tmp_path, [], create=False)
    try:
        with fsutil.open_regular_stream_at(directory, "real") as stream:
            assert stream.read() == b"data"
        with pytest.raises(fsutil.UnsafeFileError):
            fsutil.open_regular_stream_at(directory, "planted")
    finally:
        os.close(directory)


def test_read_regular_refuses_a_device_opened_directly(tmp_path: Path) -> None:
    with pytest.raises(fsutil.UnsafeFileError, match="not a regular file"):
        fsutil.read_regular("/dev/zero", 1 << 20)


def test_read_regular_passes_a_missing_file_through(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsutil.read_regular(tmp_path / "missing", 10)


@pytest.mark.parametrize("name", ["alias/file", "../real/file", "..", ".", ""])
def test_a_stream_at_a_directory_takes_one_path_component_only(tmp_path: Path, name: str) -> None:
    """Review finding: O_NOFOLLOW guards only a path's last component, so a linked folder in it was followed."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "file").write_bytes(b"outside")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "alias").symlink_to("../real")
    directory = fsutil.open_directory(tmp_path / "dir", [], create=False)
    try:
        with pytest.raises(ValueError, match="not a single path component"):
            fsutil.open_regular_stream_at(directory, name)
    finally:
        os.close(directory)
