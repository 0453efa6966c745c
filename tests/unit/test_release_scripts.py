"""build/verify-release.sh and build/rebuild-compare.sh refuse what they cannot verify, before any engine or tool runs.

The signature steps need cosign and gh, which this machine cannot install, so
what is tested here is that their absence, and every malformed input, is
"no verdict" (exit 2), never a pass, and that no input becomes shell text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "a" * 64
SCRIPTS = ("verify-release.sh", "rebuild-compare.sh")


def run(script: str, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path or os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DOCKER": "/nonexistent/docker"}
    command = [str(ROOT / "build" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env, cwd=ROOT)


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/owner/repo:1.0.0",  # a tag: what it names can change
        f"ghcr.io/owner/repo:1.0.0@{DIGEST}",  # a tag beside the digest
        f"repo@{DIGEST}",  # no registry: Docker Hub by default, a name an attacker could take
        f"ghcr.io/owner/repo@{DIGEST}; echo INJECTED",
        f"ghcr.io/owner/$(echo INJECTED)@{DIGEST}",
        f"GHCR.IO/Owner/Repo@{DIGEST}",
        "ghcr.io/owner/repo@sha256:abc",
    ],
)
def test_an_image_not_named_by_registry_path_and_digest_is_refused(script: str, reference: str) -> None:
    result = run(script, reference, "v1.0.0")
    assert result.returncode == 2, result.stderr
    assert "REGISTRY/PATH@sha256:DIGEST" in result.stderr
    assert "INJECTED" not in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("tag", ["1.0.0", "v1.0", "v1.0.0-rc1", "v1.0.0;true"])
def test_a_tag_that_is_not_a_release_tag_is_refused(script: str, tag: str) -> None:
    result = run(script, f"ghcr.io/owner/repo@{DIGEST}", tag)
    assert result.returncode == 2
    assert "a release tag is vX.Y.Z" in result.stderr


def test_verify_release_without_cosign_gives_no_verdict(tmp_path: Path) -> None:
    """Signature checks are not optional: without the tool there is no verdict, never a pass."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "git", "make", "python3", "sed", "dirname"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    result = run("verify-release.sh", f"ghcr.io/owner/repo@{DIGEST}", "v1.0.0", path=str(bin_dir))
    assert result.returncode == 2
    assert "no cosign on PATH" in result.stderr


def test_make_verify_release_passes_its_arguments_as_data_not_shell_text() -> None:
    """REF reaches the script through the environment: a ``;`` in it is refused, not run."""
    reference = f"ghcr.io/owner/repo@{DIGEST}; echo INJECTED; true #"
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "verify-release", f"REF={reference}", "TAG=v1.0.0"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode != 0
    assert "INJECTED\n" not in result.stdout
    assert "REGISTRY/PATH@sha256:DIGEST" in result.stderr
