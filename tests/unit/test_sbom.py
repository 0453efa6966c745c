"""The whole-image SBOM (``python -m mcp_orchestration.audit.sbom``) on a fake image tree.

The tree is built at run time: a status.d (one stanza with the .deb's SHA256, one with a
``Source: name (version)`` and none), an os-release, a site-packages with three
distributions, a wheelhouse of tiny wheels and a lock that allows their digests.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mcp_orchestration.audit import sbom
from mcp_orchestration.core.errors import ExitCode

RECORDED = Path(__file__).parent.parent / "fixtures" / "debian_tracker"  # status.d and os-release of the real image
DEB_SHA = hashlib.sha256(b"libc6_2.41-12+deb13u5_amd64.deb").hexdigest()
STANZAS = {
    "libc6": f"Package: libc6\nSource: glibc\nVersion: 2.41-12+deb13u5\nArchitecture: amd64\nSHA256: {DEB_SHA}\n",
    "libcom-err2": "Package: libcom-err2\nSource: e2fsprogs (1.47.2-3)\nVersion: 1.47.2-3+b12\nArchitecture: amd64\n",
    "zlib1g": "Package: zlib1g\nSource: zlib\nVersion: 1:1.3.dfsg+really1.3.1-1+deb13u1\nArchitecture: amd64\n",
}
DISTS = {"anyio": "4.16.0", "PyJWT": "2.15.1", "mcp_orchestration": "0.1.0"}
WHEELS = {"anyio": b"anyio wheel bytes", "PyJWT": b"pyjwt wheel bytes"}


@dataclass
class Tree:
    root: Path
    out: Path

    def argv(self, *extra: str) -> list[str]:
        return [
            "--debian-status", str(self.root / "status.d"),
            "--os-release", str(self.root / "os-release"),
            "--site-packages", str(self.root / "site-packages"),
            "--lock", str(self.root / "requirements.lock"),
            "--wheelhouse", str(self.root / "wheelhouse"),
            "--image", "mcp-orchestration:test",
            "--image-id", "sha256:" + "ab" * 32,
            "-o", str(self.out),
            *extra,
        ]  # fmt: skip

    def run(self, *extra: str) -> tuple[int, dict[str, Any], str]:
        status = sbom.main(self.argv(*extra))
        text = self.out.read_text() if self.out.exists() else "{}"
        return status, json.loads(text), text


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    root = tmp_path / "image"
    (root / "status.d").mkdir(parents=True)
    for name, stanza in STANZAS.items():
        (root / "status.d" / name).write_text(stanza)
        (root / "status.d" / f"{name}.md5sums").write_text("0" * 32 + "  usr/share/doc/x\n")
    (root / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n'
                                      "VERSION_CODENAME=trixie\n")  # fmt: skip
    for name, version in DISTS.items():
        info = root / "site-packages" / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n\nLong text.\n")
    (root / "wheelhouse").mkdir()
    lock = []
    for name, content in WHEELS.items():
        (root / "wheelhouse" / f"{name}-{DISTS[name]}-py3-none-any.whl").write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        lock.append(f"{name.lower()}=={DISTS[name]} \\\n    --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{digest}\n")
    (root / "wheelhouse" / "hatchling-1.33.0-py3-none-any.whl").write_bytes(b"a build requirement, not installed")
    (root / "requirements.lock").write_text("".join(lock))
    return Tree(root, tmp_path / "image-full.cdx.json")


def components(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {component["purl"]: component for component in bom["components"]}


def sha256(component: dict[str, Any]) -> str | None:
    hashes = component.get("hashes", [])
    assert all(entry["alg"] == "SHA-256" for entry in hashes)
    return hashes[0]["content"] if hashes else None


def test_every_package_is_a_component_with_its_purl_and_hash(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    status, bom, text = tree.run()
    assert status == ExitCode.OK, capsys.readouterr().err
    JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)  # raises on a document the schema refuses
    assert bom["specVersion"] == "1.6"
    found = components(bom)
    libc6 = found["pkg:deb/debian/libc6@2.41-12%2Bdeb13u5?arch=amd64&distro=debian-13"]
    assert sha256(libc6) == DEB_SHA
    assert [a["purl"] for a in libc6["pedigree"]["ancestors"]] == ["pkg:deb/debian/glibc@2.41-12%2Bdeb13u5?arch=source"]
    com_err = found["pkg:deb/debian/libcom-err2@1.47.2-3%2Bb12?arch=amd64&distro=debian-13"]
    assert [a["purl"] for a in com_err["pedigree"]["ancestors"]] == ["pkg:deb/debian/e2fsprogs@1.47.2-3?arch=source"]
    assert sha256(com_err) is None
    assert "pkg:deb/debian/zlib1g@1:1.3.dfsg%2Breally1.3.1-1%2Bdeb13u1?arch=amd64&distro=debian-13" in found
    assert sha256(found["pkg:pypi/anyio@4.16.0"]) == hashlib.sha256(WHEELS["anyio"]).hexdigest()
    assert sha256(found["pkg:pypi/pyjwt@2.15.1"]) == hashlib.sha256(WHEELS["PyJWT"]).hexdigest()
    assert found["pkg:pypi/pyjwt@2.15.1"]["name"] == "PyJWT"
    assert sha256(found["pkg:pypi/mcp-orchestration@0.1.0"]) is None  # built inside the image build: no locked wheel
    assert len(found) == len(STANZAS) + len(DISTS)
    assert not any("hatchling" in purl for purl in found)
    image = bom["metadata"]["component"]
    assert "hashes" not in image  # a container's hash would be taken for the manifest digest, which this is not
    assert {"name": "mcp-orchestration:image:config-digest", "value": "sha256:" + "ab" * 32} in image["properties"]
    err = capsys.readouterr().err
    assert "no hash, for 2 Debian packages: libcom-err2, zlib1g" in err
    assert "no hash, for 1 Python distributions: mcp_orchestration" in err


def bom_refs(node: Any) -> Iterator[str]:
    """Every bom-ref of a CycloneDX JSON document, nested ones (pedigree ancestors, tools) included."""
    if isinstance(node, dict):
        if "bom-ref" in node:
            yield node["bom-ref"]
        for value in node.values():
            yield from bom_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from bom_refs(item)


def test_every_bom_ref_is_unique_though_two_binaries_share_a_source(tree: Tree) -> None:
    status, bom, text = tree.run(
        "--debian-status", str(RECORDED / "status.d"), "--os-release", str(RECORDED / "os-release")
    )  # fmt: skip
    assert status == ExitCode.OK
    JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    glibc = {
        component["name"]
        for component in bom["components"]
        for ancestor in component.get("pedigree", {}).get("ancestors", [])
        if ancestor["purl"] == "pkg:deb/debian/glibc@2.41-12%2Bdeb13u5?arch=source"
    }
    assert glibc == {"libc6", "libc-bin"}  # the case under test is in the data
    refs = list(bom_refs(bom))
    assert len(refs) == len(set(refs)), sorted(ref for ref in refs if refs.count(ref) > 1)
    assert {dependency["ref"] for dependency in bom["dependencies"]} <= set(refs)


def test_two_runs_are_byte_identical_and_the_serial_follows_the_content(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tree.run()[2]
    second = tree.run()[2]
    assert first == second
    bom = json.loads(first)
    assert "timestamp" not in bom["metadata"]  # no SOURCE_DATE_EPOCH, no --created: no time at all
    assert uuid.UUID(bom["serialNumber"].removeprefix("urn:uuid:")).version == 5
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    dated = json.loads(tree.run()[2])
    assert dated["metadata"]["timestamp"].startswith("2026-01-01T00:00:00")
    assert dated["serialNumber"] != bom["serialNumber"]
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    created = json.loads(tree.run("--created", "2026-02-03T04:05:06.123456789Z")[2])
    assert created["metadata"]["timestamp"].startswith("2026-02-03T04:05:06")


def test_a_wheel_the_lock_does_not_allow_stops_the_sbom(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    (tree.root / "wheelhouse" / "anyio-4.16.0-py3-none-any.whl").write_bytes(b"another anyio")
    status, _, _ = tree.run()
    assert status == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("error [wheel_mismatch]")
    assert not tree.out.exists()


def test_an_image_tree_without_packages_writes_no_sbom(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    for path in (tree.root / "status.d").iterdir():
        if not path.name.endswith(".md5sums"):
            path.unlink()
    assert tree.run()[0] == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("error [dpkg_status_empty]")
    assert not tree.out.exists()


@pytest.mark.parametrize("image_id", ["ab" * 32, "sha256:" + "AB" * 32, "sha256:abc", "sha512:" + "ab" * 64])
def test_an_image_id_that_is_not_a_sha256_digest_writes_no_sbom(
    tree: Tree, capsys: pytest.CaptureFixture[str], image_id: str
) -> None:
    assert tree.run("--image-id", image_id)[0] == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("error [usage]: --image-id")
    assert not tree.out.exists()
