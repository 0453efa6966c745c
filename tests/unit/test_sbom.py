"""The whole-image SBOM (``python -m mcp_orchestration.audit.sbom``) on a fake image tree.

The tree is built at run time: a status.d (one stanza with the .deb's SHA256, one with a
``Source: name (version)`` and none), an os-release, a site-packages with three
distributions installed as pip leaves them (files, and a RECORD with their hashes), a
wheelhouse with real wheels of two of them and a lock that allows their digests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from mcp_orchestration.audit import pydists, sbom
from mcp_orchestration.audit.dpkg import DebPackage
from mcp_orchestration.audit.osrelease import OsRelease
from mcp_orchestration.core.errors import ExitCode

RECORDED = Path(__file__).parent.parent / "fixtures" / "debian_tracker"  # status.d and os-release of the real image
DEB_SHA = hashlib.sha256(b"libc6_2.41-12+deb13u5_amd64.deb").hexdigest()
STANZAS = {
    "libc6": f"Package: libc6\nSource: glibc\nVersion: 2.41-12+deb13u5\nArchitecture: amd64\nSHA256: {DEB_SHA}\n",
    "libcom-err2": "Package: libcom-err2\nSource: e2fsprogs (1.47.2-3)\nVersion: 1.47.2-3+b12\nArchitecture: amd64\n",
    "zlib1g": "Package: zlib1g\nSource: zlib\nVersion: 1:1.3.dfsg+really1.3.1-1+deb13u1\nArchitecture: amd64\n",
}
DISTS = {"anyio": "4.16.0", "PyJWT": "2.15.1", "mcp_orchestration": "0.1.0"}
FILES = {  # each distribution's own files, as installed; this project's has no wheel in the wheelhouse
    "anyio": {"anyio/__init__.py": b"from ._core import run\n", "anyio/_core.py": b"def run(): ...\n"},
    "PyJWT": {"jwt/__init__.py": b"def decode(): ...\n"},
    "mcp_orchestration": {"mcp_orchestration/__init__.py": b""},
}
WHEELS = ("anyio", "PyJWT")
TRIXIE = OsRelease("debian", "13", "trixie")


def record_hash(content: bytes) -> str:
    """A RECORD's hash column: ``sha256=`` and the urlsafe base64 digest without padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def with_metadata(name: str, version: str, files: Mapping[str, bytes]) -> dict[str, bytes]:
    """A distribution's files with the METADATA and WHEEL of its .dist-info, as its wheel holds them."""
    info = f"{name}-{version}.dist-info"
    return {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n\nLong text.\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }


def record_of(files: Mapping[str, bytes], info: str) -> str:
    rows = [f"{path},{record_hash(content)},{len(content)}" for path, content in files.items()]
    return "\n".join([*rows, f"{info}/RECORD,,"]) + "\n"


def build_wheel(wheelhouse: Path, name: str, version: str, files: Mapping[str, bytes]) -> Path:
    """A real wheel of these files (METADATA and WHEEL added, each deflated), its RECORD listing each with its hash."""
    wheelhouse.mkdir(exist_ok=True)
    path, info = wheelhouse / f"{name}-{version}-py3-none-any.whl", f"{name}-{version}.dist-info"
    files = with_metadata(name, version, files)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, content in {**files, f"{info}/RECORD": record_of(files, info).encode()}.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=(2026, 1, 1, 0, 0, 0)), content, zipfile.ZIP_DEFLATED)
    return path


def install(site: Path, name: str, version: str, files: Mapping[str, bytes]) -> None:
    """What pip leaves in site-packages: the files, its own INSTALLER and REQUESTED, and a RECORD of all of them."""
    info = f"{name}-{version}.dist-info"
    installed = {**with_metadata(name, version, files), f"{info}/INSTALLER": b"pip\n", f"{info}/REQUESTED": b""}
    for path, content in installed.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_bytes(content)
    (site / info / "RECORD").write_text(record_of(installed, info))


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

    def wheel_sha256(self, name: str) -> str:
        return hashlib.sha256(next((self.root / "wheelhouse").glob(f"{name}-*.whl")).read_bytes()).hexdigest()

    def relock(self) -> None:
        """A lock that allows the wheels now in the wheelhouse (and another digest each, as a lock may)."""
        lock = [
            f"{name.lower()}=={DISTS[name]} \\\n    --hash=sha256:{'0' * 64} \\\n"
            f"    --hash=sha256:{self.wheel_sha256(name)}\n"
            for name in WHEELS
        ]
        (self.root / "requirements.lock").write_text("".join(lock))


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
        install(root / "site-packages", name, version, FILES[name])
    for name in WHEELS:
        build_wheel(root / "wheelhouse", name, DISTS[name], FILES[name])
    (root / "wheelhouse" / "hatchling-1.33.0-py3-none-any.whl").write_bytes(b"a build requirement, not installed")
    tree = Tree(root, tmp_path / "image-full.cdx.json")
    tree.relock()
    return tree


def components(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {component["purl"]: component for component in bom["components"]}


def sha256(component: dict[str, Any]) -> str | None:
    hashes = component.get("hashes", [])
    assert all(entry["alg"] == "SHA-256" for entry in hashes)
    return hashes[0]["content"] if hashes else None


def no_hash(component: dict[str, Any]) -> str | None:
    """Why the component has no hash, as its property says; None when it says nothing."""
    return next((p["value"] for p in component.get("properties", []) if p["name"] == "mcp-orchestration:no-hash"), None)


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
    assert no_hash(com_err) == "no SHA256: field in status.d"
    assert no_hash(libc6) is None
    assert "pkg:deb/debian/zlib1g@1:1.3.dfsg%2Breally1.3.1-1%2Bdeb13u1?arch=amd64&distro=debian-13" in found
    assert sha256(found["pkg:pypi/anyio@4.16.0"]) == tree.wheel_sha256("anyio")
    assert sha256(found["pkg:pypi/pyjwt@2.15.1"]) == tree.wheel_sha256("PyJWT")
    assert found["pkg:pypi/pyjwt@2.15.1"]["name"] == "PyJWT"
    assert sha256(found["pkg:pypi/mcp-orchestration@0.1.0"]) is None  # built inside the image build: no locked wheel
    assert no_hash(found["pkg:pypi/mcp-orchestration@0.1.0"]) == pydists.NO_LOCKED_WHEEL
    assert no_hash(found["pkg:pypi/anyio@4.16.0"]) is None
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


Files = Mapping[str, bytes]
NOT_THE_ONE_INSTALLED: dict[
    str, Callable[[Files], Files]
] = {  # the anyio wheel in the wheelhouse, same name and version, as the lock allows it
    "a file differs": lambda files: {**files, "anyio/_core.py": b"def run(): return 'other'\n"},
    "a file more": lambda files: {**files, "anyio/py.typed": b""},
    "a file fewer": lambda files: {"anyio/__init__.py": files["anyio/__init__.py"]},
}


@pytest.mark.parametrize("change", NOT_THE_ONE_INSTALLED)
def test_a_locked_wheel_that_is_not_the_one_installed_gives_no_hash(
    tree: Tree, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    build_wheel(tree.root / "wheelhouse", "anyio", DISTS["anyio"], NOT_THE_ONE_INSTALLED[change](FILES["anyio"]))
    tree.relock()
    status, bom, text = tree.run()
    assert status == ExitCode.OK
    JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    anyio, pyjwt = components(bom)["pkg:pypi/anyio@4.16.0"], components(bom)["pkg:pypi/pyjwt@2.15.1"]
    assert sha256(anyio) is None
    assert no_hash(anyio) == pydists.NOT_INSTALLED
    assert sha256(pyjwt) == tree.wheel_sha256("PyJWT")
    assert f"{pydists.NOT_INSTALLED}, so no hash, for 1 Python distributions: anyio" in capsys.readouterr().err


def test_a_wheel_that_cannot_be_read_or_an_overlong_record_proves_nothing(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree.root / "wheelhouse" / f"anyio-{DISTS['anyio']}-py3-none-any.whl").write_bytes(b"not a zip archive")
    tree.relock()
    monkeypatch.setattr(pydists, "_RECORD_LIMIT", 64)  # bytes: less than any RECORD here
    status, bom, _ = tree.run()
    assert status == ExitCode.OK
    found = components(bom)
    assert no_hash(found["pkg:pypi/anyio@4.16.0"]) == no_hash(found["pkg:pypi/pyjwt@2.15.1"]) == pydists.NOT_INSTALLED


def test_a_wheel_pip_installed_is_proven_though_pip_rewrote_its_script_and_moved_its_data(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": b"def main(): ...\n",
        "pkg-1.0.data/scripts/tool": b"#!python\nimport pkg\n",
        "pkg-1.0.data/purelib/pkg_extra.py": b"EXTRA = 1\n",
        "pkg-1.0.data/data/share/pkg/words.txt": b"words\n",
        "pkg-1.0.data/headers/pkg.h": b"int pkg;\n",
        "pkg-1.0.dist-info/entry_points.txt": b"[console_scripts]\npkg = pkg:main\n",
    }
    wheel = build_wheel(tmp_path / "wheelhouse", "pkg", "1.0", files)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--isolated",
         "--disable-pip-version-check", "--no-index", "--no-deps", str(wheel)],
        check=True,
    )  # fmt: skip
    site = next(venv.glob("lib/python3.*/site-packages"))
    installed = (site / "pkg-1.0.dist-info" / "RECORD").read_text()
    assert record_hash(files["pkg-1.0.data/scripts/tool"]) not in installed  # pip rewrote its first line
    assert "/share/pkg/words.txt," in installed and "pkg_extra.py," in installed  # moved the data
    assert "pkg/__pycache__/" in installed  # and compiled bytecode, listed beside the wheel's files
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    dists = pydists.with_wheel_hashes(pydists.load_site_packages(site), wheel.parent, {"pkg": frozenset({digest})})
    assert [dist.sha256 for dist in dists] == [digest]


def test_deb_purls_are_the_purl_specs_own_examples() -> None:
    """types/deb-definition.json of the purl spec: an epoch's colon stays as it is, a `+` is %2B."""
    attr = DebPackage("attr", "1:2.4.47-2+b1", "amd64", "attr", "1:2.4.47-2", None)
    component = sbom.debian_component(attr, TRIXIE)
    assert component.purl is not None and component.pedigree is not None
    assert str(component.purl) == "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64&distro=debian-13"
    assert PackageURL.from_string(str(component.purl)).version == "1:2.4.47-2+b1"
    assert [str(ancestor.purl) for ancestor in component.pedigree.ancestors] == [
        "pkg:deb/debian/attr@1:2.4.47-2?arch=source"
    ]
    ssl = DebPackage("libssl3t64", "3.5.9-1~deb13u1", "amd64", "openssl", "3.5.9-1~deb13u1", None)
    assert str(sbom.debian_component(ssl, TRIXIE).purl).startswith(
        "pkg:deb/debian/libssl3t64@3.5.9-1~deb13u1?"
    )  # `~` is one of the characters the spec forbids encoding


@pytest.mark.parametrize(
    ("name", "purl"),
    [("PyJWT", "pkg:pypi/pyjwt@1.0"), ("typing_extensions", "pkg:pypi/typing-extensions@1.0"),
     ("zope.interface", "pkg:pypi/zope.interface@1.0")],
)  # fmt: skip
def test_pypi_purls_name_the_package_as_the_purl_spec_does(name: str, purl: str) -> None:
    assert str(sbom.python_component(pydists.PyDist(name, "1.0", Path("unused"))).purl) == purl


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


def plant(site: Path, dist_info: str, where: str, content: bytes) -> None:
    """A file written into site-packages at ``where`` and listed, with its true hash, in the distribution's RECORD."""
    (site / where).parent.mkdir(parents=True, exist_ok=True)
    (site / where).write_bytes(content)
    with (site / dist_info / "RECORD").open("a") as record:
        record.write(f"{where},{record_hash(content)},{len(content)}\n")


def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def run_within(tree: Tree) -> tuple[int, dict[str, Any], str]:
    """``tree.run()``, failing rather than hanging: a FIFO opened for reading without O_NONBLOCK waits for a writer."""
    finished: list[tuple[int, dict[str, Any], str]] = []
    worker = threading.Thread(target=lambda: finished.append(tree.run()), daemon=True)
    worker.start()
    worker.join(30)
    assert finished, "the SBOM writer hangs"
    return finished[0]


def link_outside(path: Path) -> None:
    """The file replaced by a link to a copy of it outside site-packages: same bytes, but not the file installed."""
    copy = path.parents[2] / "outside.py"
    copy.write_bytes(path.read_bytes())
    replace_by_link(path, copy)


def replace_by_link(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


def aliased_folder(site: Path) -> None:
    """A .pth planted in site-packages and listed through a link to it from outside (as lib64 is lib in a venv)."""
    (site.parent / "alias").symlink_to(site.name)
    plant(site, "anyio-4.16.0.dist-info", "evil.pth", b"import os\n")
    record = site / "anyio-4.16.0.dist-info" / "RECORD"
    record.write_text(record.read_text().replace("\nevil.pth,", "\n../alias/evil.pth,"))


CHANGED_SINCE_INSTALLED: dict[str, Callable[[Path], object]] = {  # the venv, once pip installed the anyio wheel
    "a file edited": lambda site: (site / "anyio" / "_core.py").write_bytes(b"def run(): return 'evil'\n"),
    "a file replaced by a link out": lambda site: link_outside(site / "anyio" / "_core.py"),
    "a file replaced by a FIFO": lambda site: fifo(site / "anyio" / "_core.py"),
    "its RECORD replaced by a link out": lambda site: link_outside(site / "anyio-4.16.0.dist-info" / "RECORD"),
    "its RECORD replaced by a FIFO": lambda site: fifo(site / "anyio-4.16.0.dist-info" / "RECORD"),
    "a .pth listed as ../site-packages/": lambda site: plant(
        site, "anyio-4.16.0.dist-info", "../site-packages/evil.pth", b"import os\n"
    ),
    "a .pth listed through a linked folder": aliased_folder,
}


@pytest.mark.parametrize("change", CHANGED_SINCE_INSTALLED)
def test_a_venv_changed_since_the_wheel_was_installed_gives_no_hash(tree: Tree, change: str) -> None:
    """Review finding: the proof trusted the venv's RECORD and never hashed the files it lists."""
    CHANGED_SINCE_INSTALLED[change](tree.root / "site-packages")
    status, bom, _ = run_within(tree)
    assert status == ExitCode.OK
    anyio, pyjwt = components(bom)["pkg:pypi/anyio@4.16.0"], components(bom)["pkg:pypi/pyjwt@2.15.1"]
    assert sha256(anyio) is None
    assert no_hash(anyio) == pydists.NOT_INSTALLED
    assert sha256(pyjwt) == tree.wheel_sha256("PyJWT")


def test_a_record_path_no_file_can_have_proves_nothing_and_crashes_nothing(tree: Tree) -> None:
    """Review finding: a NUL in a ``..`` path made os.path.realpath raise ValueError, a traceback (exit 1)."""
    with (tree.root / "site-packages" / "anyio-4.16.0.dist-info" / "RECORD").open("a") as record:
        record.write(f"../a\0b/x,{record_hash(b'x')},1\n")
    status, bom, _ = tree.run()
    assert status == ExitCode.OK
    assert no_hash(components(bom)["pkg:pypi/anyio@4.16.0"]) == pydists.NOT_INSTALLED
    assert sha256(components(bom)["pkg:pypi/pyjwt@2.15.1"]) == tree.wheel_sha256("PyJWT")


def link_dist_info_outside(dist_info: Path) -> None:
    """The .dist-info replaced by a link to a copy of it outside site-packages."""
    copy = dist_info.parents[1] / dist_info.name
    shutil.copytree(dist_info, copy)
    shutil.rmtree(dist_info)
    dist_info.symlink_to(copy)


NOT_A_REGULAR_METADATA: dict[str, Callable[[Path], object]] = {  # anyio's .dist-info
    "a FIFO": lambda dist_info: fifo(dist_info / "METADATA"),
    "a link to a copy": lambda dist_info: link_outside(dist_info / "METADATA"),
    "a link to /dev/zero": lambda dist_info: replace_by_link(dist_info / "METADATA", Path("/dev/zero")),
    "in a .dist-info that is a link": link_dist_info_outside,
}


@pytest.mark.parametrize("change", NOT_A_REGULAR_METADATA)
def test_a_metadata_that_is_not_a_regular_file_writes_no_sbom(
    tree: Tree, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    """Review finding: a FIFO hung, /dev/zero was read without end. Without its name and version a distribution
    cannot be listed, and an SBOM that leaves one out is wrong: so none is written."""
    NOT_A_REGULAR_METADATA[change](tree.root / "site-packages" / "anyio-4.16.0.dist-info")
    assert run_within(tree)[0] == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error [venv_unreadable]: Cannot read "), err
    assert "anyio-4.16.0.dist-info/METADATA: " in err
    assert not tree.out.exists()


def test_entry_scripts_and_data_outside_site_packages_are_left_to_the_record(tmp_path: Path) -> None:
    """What a RECORD lists outside site-packages (../../../bin/tool) is the venv's, not read: it stays provable."""
    site = tmp_path / "venv" / "lib" / "python3.13" / "site-packages"
    files = {"pkg/__init__.py": b"", "pkg-1.0.data/scripts/tool": b"#!python\n"}
    install(site, "pkg", "1.0", {"pkg/__init__.py": b""})
    plant(site, "pkg-1.0.dist-info", "../../../bin/tool", b"#!/venv/bin/python\n")
    (site / "../../../bin/tool").write_bytes(b"edited: not judged, as pip rewrote it\n")
    wheel = build_wheel(tmp_path / "wheelhouse", "pkg", "1.0", files)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    dists = pydists.with_wheel_hashes(pydists.load_site_packages(site), wheel.parent, {"pkg": frozenset({digest})})
    assert [dist.sha256 for dist in dists] == [digest]


def corrupt_member(wheel: Path, member: str) -> None:
    """Overwrite a deflated member's data with bytes no inflater accepts (0xff: a reserved block type)."""
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo(member)
    data = bytearray(wheel.read_bytes())
    start = info.header_offset + 30 + int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    start += int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    data[start : start + info.compress_size] = b"\xff" * info.compress_size
    wheel.write_bytes(bytes(data))


def test_a_wheel_whose_deflated_record_is_corrupt_proves_nothing_and_crashes_nothing(tree: Tree) -> None:
    """Review finding: zlib.error from a corrupt RECORD escaped as a traceback."""
    wheel = next((tree.root / "wheelhouse").glob("anyio-*.whl"))
    corrupt_member(wheel, f"anyio-{DISTS['anyio']}.dist-info/RECORD")
    tree.relock()
    status, bom, _ = tree.run()
    assert status == ExitCode.OK
    assert no_hash(components(bom)["pkg:pypi/anyio@4.16.0"]) == pydists.NOT_INSTALLED


def test_a_large_wheel_is_hashed_without_holding_it_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding: the wheel was read whole to hash it."""
    monkeypatch.setattr(pydists, "_RECORD_LIMIT", 1 << 16)  # a RECORD is read with a buffer of this size: not here
    files = {"pkg/__init__.py": b"", "pkg/blob.bin": os.urandom(16 << 20)}  # random: deflate cannot shrink it
    site = tmp_path / "site-packages"
    install(site, "pkg", "1.0", files)
    wheel = build_wheel(tmp_path / "wheelhouse", "pkg", "1.0", files)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    dists = pydists.load_site_packages(site)
    tracemalloc.start()
    try:
        hashed = pydists.with_wheel_hashes(dists, wheel.parent, {"pkg": frozenset({digest})})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [dist.sha256 for dist in hashed] == [digest]
    assert peak < 4 << 20, f"{peak} bytes held for a wheel of {wheel.stat().st_size}"


def test_a_wheelhouse_that_does_not_exist_is_named_as_the_reason(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review finding: build/sbom.sh always passes --wheelhouse, so a missing one read as no wheel the lock allows."""
    shutil.rmtree(tree.root / "wheelhouse")
    status, bom, _ = tree.run()
    assert status == ExitCode.OK
    found = components(bom)
    assert no_hash(found["pkg:pypi/anyio@4.16.0"]) == no_hash(found["pkg:pypi/pyjwt@2.15.1"]) == pydists.NO_WHEELHOUSE
    assert f"{pydists.NO_WHEELHOUSE}, so no hash, for 3 Python distributions" in capsys.readouterr().err


UNREADABLE_WHEELHOUSE: dict[str, Callable[[Path], object]] = {
    "a link to itself": lambda path: path.symlink_to(path.name),  # ELOOP: unreadable even as root, who ignores modes
    "a regular file": lambda path: path.write_bytes(b"not a directory"),  # review finding: taken for none
}


@pytest.mark.parametrize("kind", UNREADABLE_WHEELHOUSE)
def test_a_wheelhouse_that_cannot_be_read_writes_no_sbom(
    tree: Tree, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """Not the same as none: the operator named it, and every hash would be missing for a reason to fix."""
    shutil.rmtree(tree.root / "wheelhouse")
    UNREADABLE_WHEELHOUSE[kind](tree.root / "wheelhouse")
    assert tree.run()[0] == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("error [wheelhouse_unreadable]: Cannot read ")
    assert not tree.out.exists()
