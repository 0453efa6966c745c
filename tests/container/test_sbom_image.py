"""The whole-image SBOM on the real image: every status.d package and every venv distribution is in it."""

from __future__ import annotations

import json
from email.parser import HeaderParser
from pathlib import Path

import pytest

from mcp_orchestration.audit import sbom
from mcp_orchestration.audit.dpkg import load_status_dir
from tests.container.conftest import IMAGE, docker

pytestmark = pytest.mark.container


def test_the_sbom_lists_every_debian_package_and_python_distribution_of_the_image(tmp_path: Path) -> None:
    cid = docker("create", IMAGE).stdout.strip()
    try:  # copied out of a container that is never started, as build/sbom.sh does
        docker("cp", f"{cid}:/var/lib/dpkg/status.d", str(tmp_path / "status.d"))
        docker("cp", "-L", f"{cid}:/etc/os-release", str(tmp_path / "os-release"))
        docker("cp", f"{cid}:/venv", str(tmp_path / "venv"))
    finally:
        docker("rm", cid)
    [site] = (tmp_path / "venv" / "lib").glob("python3.*/site-packages")
    out = tmp_path / "image-full.cdx.json"
    argv = ["--debian-status", str(tmp_path / "status.d"), "--os-release", str(tmp_path / "os-release")]
    assert sbom.main([*argv, "--site-packages", str(site), "--image", IMAGE, "-o", str(out)]) == 0
    listed = {(c["name"], c["version"], c["purl"].split("/")[0]) for c in json.loads(out.read_text())["components"]}

    stanzas = [path for path in (tmp_path / "status.d").iterdir() if not path.name.endswith(".md5sums")]
    packages = load_status_dir(tmp_path / "status.d")
    assert len(packages) == len(stanzas) > 0
    for package in packages:
        assert (package.name, package.version, "pkg:deb") in listed, package
    dists = list(site.glob("*.dist-info/METADATA"))
    assert any("mcp_orchestration" in str(path) or "mcp-orchestration" in str(path) for path in dists)
    for path in dists:
        headers = HeaderParser().parsestr(path.read_text(), headersonly=True)
        assert (headers["Name"], headers["Version"], "pkg:pypi") in listed, path
    assert len(listed) == len(packages) + len(dists)
