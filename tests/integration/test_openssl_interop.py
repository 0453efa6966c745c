"""Independent verification: plain OpenSSL accepts the index signature, using SECURITY.md's own recipe.

The shell block marked ``doc-test: openssl`` in SECURITY.md is
extracted and run as-is, so the documentation cannot drift from what works.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mcp_orchestration.trust import dsse
from tests.conftest import run_process
from tests.doc_blocks import shell_blocks

VERIFIED = "Signature Verified Successfully"

pytestmark = pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("jq")), reason="needs the openssl and jq commands"
)


def recipe() -> str:
    blocks = [block for block in shell_blocks() if block.kind == "openssl"]
    assert len(blocks) == 1, "SECURITY.md must hold exactly one doc-test: openssl block"
    return blocks[0].text


def cli(*argv: str) -> str:
    result = run_process(*argv)
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_recipe(workdir: Path, envelope: Path, pubkey: Path) -> subprocess.CompletedProcess[str]:
    """Run the documented block with bash in an empty directory, strict mode on."""
    workdir.mkdir()
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe()],
        cwd=workdir,
        env={"PATH": os.environ["PATH"], "ENVELOPE": str(envelope), "PUBKEY": str(pubkey)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def published(tmp_path: Path, key_file: Path, config_file: Path) -> tuple[Path, Path]:
    """A store with one published config: its exported envelope and public key files."""
    cli("init", "--key-file", str(key_file))
    cli(
        "publish",
        "--key-file",
        str(key_file),
        "--client",
        "claude-desktop",
        "--profile",
        "main",
        "--file",
        str(config_file),
    )
    envelope = tmp_path / "envelope.json"
    envelope.write_text(cli("index", "export"))
    pubkey = tmp_path / "pub.pem"
    pubkey.write_text(cli("keys", "export-public"))
    return envelope, pubkey


def test_security_md_recipe_verifies_the_index_with_openssl(tmp_path: Path, published: tuple[Path, Path]) -> None:
    envelope, pubkey = published
    result = run_recipe(tmp_path / "work", envelope, pubkey)
    assert result.returncode == 0, result.stdout + result.stderr
    assert VERIFIED in result.stdout

    fingerprint = cli("keys", "fingerprint", "--public-key", str(pubkey)).strip()
    assert f"Public key fingerprint: {fingerprint}" in result.stdout
    # The shell-built PAE is byte for byte the one the product signs.
    raw = json.loads(envelope.read_text())
    payload = base64.b64decode(raw["payload"])
    assert (tmp_path / "work" / "pae.bin").read_bytes() == dsse.pae(raw["payloadType"], payload)
    assert json.loads(payload)["_type"] == "head"
    assert json.loads(payload)["version"] == 2


@pytest.mark.parametrize("offset", [0, 40, -2])
def test_openssl_rejects_a_payload_with_one_byte_flipped(
    tmp_path: Path, published: tuple[Path, Path], offset: int
) -> None:
    envelope, pubkey = published
    raw = json.loads(envelope.read_text())
    payload = bytearray(base64.b64decode(raw["payload"]))
    payload[offset] ^= 0x01
    raw["payload"] = base64.b64encode(bytes(payload)).decode()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(raw))

    result = run_recipe(tmp_path / "work", tampered, pubkey)
    assert result.returncode != 0
    assert VERIFIED not in result.stdout
    assert "Signature Verification Failure" in result.stdout + result.stderr


def test_after_rotation_only_the_new_public_key_verifies(
    tmp_path: Path, published: tuple[Path, Path], key_file: Path, next_key_file: Path
) -> None:
    envelope_before, old_pubkey = published
    cli("keys", "rotate", "--key-file", str(key_file), "--new-key-file", str(next_key_file))
    envelope = tmp_path / "rotated.json"
    envelope.write_text(cli("index", "export"))
    new_pubkey = tmp_path / "new.pem"
    new_pubkey.write_text(cli("keys", "export-public"))
    assert new_pubkey.read_text() != old_pubkey.read_text()

    assert VERIFIED in run_recipe(tmp_path / "new", envelope, new_pubkey).stdout
    assert run_recipe(tmp_path / "old", envelope, old_pubkey).returncode != 0
    # The head signed before the rotation still verifies under the (now retired) old key.
    assert VERIFIED in run_recipe(tmp_path / "before", envelope_before, old_pubkey).stdout
    # export-public --keyid gives the same old key back from the key history.
    old_fingerprint = cli("keys", "fingerprint", "--public-key", str(old_pubkey)).strip()
    assert cli("keys", "export-public", "--keyid", old_fingerprint) == old_pubkey.read_text()


def test_a_key_made_by_openssl_signs_what_openssl_verifies(tmp_path: Path) -> None:
    """The other direction: an Ed25519 key from `openssl genpkey` is accepted as the signing key."""
    key = tmp_path / "openssl.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True, capture_output=True)
    key.chmod(0o600)
    cli("init", "--key-file", str(key))
    pubkey = tmp_path / "pub.pem"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pubkey)], check=True)
    envelope = tmp_path / "envelope.json"
    envelope.write_text(cli("index", "export"))
    assert VERIFIED in run_recipe(tmp_path / "work", envelope, pubkey).stdout
    assert cli("keys", "export-public") == pubkey.read_text()
