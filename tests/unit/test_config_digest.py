"""build/config_digest.py: the config blob's digest, on any image store, from the image as saved."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.build_scripts import BUILD
from tests.unit.test_repro_check import BASE, VENV, docker_saving, saved_image


def config_digest(tmp_path: Path, image: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(BUILD / "config_digest.py"), "--docker", docker_saving(tmp_path), image]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_it_prints_the_digest_of_the_config_bytes(tmp_path: Path) -> None:
    with tarfile.open(saved_image(tmp_path / "base", [BASE, VENV])) as saved:
        handle = saved.extractfile("config.json")
        assert handle is not None
        expected = "sha256:" + hashlib.sha256(handle.read()).hexdigest()
    result = config_digest(tmp_path, "base")
    assert (result.returncode, result.stdout) == (0, expected + "\n")


def test_another_config_over_the_same_layers_has_another_digest(tmp_path: Path) -> None:
    """What a chain id cannot see: same layers, other settings (here the creation time)."""
    saved_image(tmp_path / "base", [BASE, VENV])
    saved_image(tmp_path / "served", [BASE, VENV], created="2026-12-04T00:00:00Z")
    assert config_digest(tmp_path, "base").stdout != config_digest(tmp_path, "served").stdout


def test_an_image_that_cannot_be_saved_or_read_is_exit_2(tmp_path: Path) -> None:
    missing = config_digest(tmp_path, "missing")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("config-digest: error [image_save]: missing: docker image save failed")
    (tmp_path / "junk").write_bytes(b"not an archive")
    junk = config_digest(tmp_path, "junk")
    assert junk.returncode == 2 and "error [image_archive]" in junk.stderr
