"""build/attested_sbom.py: only a CycloneDX SBOM about the verified digest, of Debian and Python packages both, counts.

Its input is what ``cosign verify-attestation`` prints: DSSE envelopes, one a line.
cosign cannot be installed here, so the envelopes are made as cosign writes them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import pytest

from mcp_orchestration.audit import sbom
from tests.build_scripts import BUILD

DIGEST = "sha256:" + "d" * 64
OTHER_DIGEST = "sha256:" + "e" * 64
DEB = {"type": "library", "name": "libc6", "purl": "pkg:deb/debian/libc6@2.41-12?arch=amd64&distro=debian-13"}
PYPI = {"type": "library", "name": "mcp", "purl": "pkg:pypi/mcp@2.3.0"}
IMAGE_ID = "sha256:" + "c" * 64
MADE_FROM = {
    "component": {"properties": [{"name": sbom.IMAGE_ID_PROPERTY, "value": IMAGE_ID}]}
}  # as make sbom names it
WHOLE = {"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": MADE_FROM, "components": [DEB, PYPI]}
PROVENANCE = "https://slsa.dev/provenance/v1"


def envelope(predicate: Any = WHOLE, *, digest: str = DIGEST, predicate_type: str = "https://cyclonedx.org/bom") -> str:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/owner/repo", "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": payload, "signatures": []})


def run(stdin: str, digest: str = DIGEST, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(BUILD / "attested_sbom.py"), "--digest", digest, *options]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_the_whole_image_sbom_about_the_digest_is_written_out() -> None:
    lines = [envelope({"buildDefinition": {}}, predicate_type=PROVENANCE), envelope()]
    result = run("\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == WHOLE


@pytest.mark.parametrize(
    "lines",
    [
        [envelope({**WHOLE, "components": [PYPI]})],  # the venv alone: the OS packages unaccounted for
        [envelope({**WHOLE, "components": [DEB]})],
        [envelope(digest=OTHER_DIGEST)],  # a true SBOM, of another image
        [envelope({"buildDefinition": {}}, predicate_type=PROVENANCE)],
        [envelope([DEB, PYPI])],  # a predicate that is not an SBOM object
        [],
    ],
    ids=["python-only", "debian-only", "other-image", "provenance-only", "not-an-object", "nothing"],
)
def test_no_whole_image_sbom_about_the_digest_fails(lines: list[str]) -> None:
    result = run("\n".join(lines))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"no CycloneDX SBOM about {DIGEST}" in result.stderr


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "%%%"}),
        json.dumps({"payloadType": "application/vnd.in-toto+json"}),
        json.dumps(["an", "array"]),
    ],
)
def test_unreadable_output_is_no_verdict(line: str) -> None:
    result = run(envelope() + "\n" + line + "\n")
    assert result.returncode == 2
    assert "error [attestation_unreadable]" in result.stderr and "hint:" in result.stderr
    assert result.stdout == ""


def test_with_an_image_id_the_sbom_must_be_made_from_that_image() -> None:
    assert run(envelope(), DIGEST, "--image-id", IMAGE_ID).returncode == 0
    other_build = run(envelope(), DIGEST, "--image-id", "sha256:" + "b" * 64)
    assert other_build.returncode == 1
    assert "made from sha256:bbbb" in other_build.stderr
    unrecorded = run(envelope({**WHOLE, "metadata": {}}), DIGEST, "--image-id", IMAGE_ID)
    assert unrecorded.returncode == 1


def test_a_digest_that_is_not_sha256_is_refused() -> None:
    result = run(envelope(), digest="sha256:abc")
    assert result.returncode == 2
    assert "is not sha256:HEX" in result.stderr
