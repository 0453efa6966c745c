"""The whole-image SBOM a release attests, out of what ``cosign verify-attestation`` printed (build/verify-release.sh).

cosign prints each attestation it verified as a DSSE envelope, one JSON object a
line; the in-toto statement inside names the image digest it is about. A release
is verified only if one of them is a CycloneDX SBOM about this very digest that
lists Debian packages and Python distributions both: an SBOM of the venv alone,
or of another image, attests nothing about what runs. With ``--image-id`` the
SBOM must also record that config digest (``mcp-orchestration:image:config-digest``,
written by ``make sbom``): it was made from this image's files, not another build's.

Usage: attested_sbom.py --digest sha256:HEX [--image-id sha256:HEX] < attestations.jsonl > sbom.cdx.json
Exit status: 0 the SBOM is on stdout; 1 no attestation holds such an SBOM; 2 the input is unreadable.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
from collections.abc import Sequence
from typing import IO, Any

CYCLONEDX = "https://cyclonedx.org/bom"
IN_TOTO = "application/vnd.in-toto+json"
MAX_INPUT = 64 * 1024 * 1024  # cosign's output for one image: a few SBOMs and a provenance
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
IMAGE_ID_PROPERTY = "mcp-orchestration:image:config-digest"


class AttestationError(Exception):
    """No verdict: what cosign printed cannot be read."""

    code = "attestation_unreadable"
    hint = "run cosign verify-attestation again; its output must be one JSON envelope a line"


def statements(stream: IO[bytes]) -> list[dict[str, Any]]:
    """The in-toto statement of each envelope, in order: all of them, so a line that cannot be read is never skipped."""
    data = stream.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise AttestationError(f"more than {MAX_INPUT} bytes of attestations")
    found = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
            if envelope.get("payloadType") != IN_TOTO:
                continue
            statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as error:
            raise AttestationError(f"line {number} is not a DSSE envelope ({type(error).__name__})") from None
        if not isinstance(statement, dict):
            raise AttestationError(f"line {number} holds no in-toto statement")
        found.append(statement)
    return found


def is_about(statement: dict[str, Any], digest: str) -> bool:
    """The statement names the image by this digest among its subjects."""
    subjects = statement.get("subject")
    digests = (
        [subject.get("digest") for subject in subjects if isinstance(subject, dict)]
        if isinstance(subjects, list)
        else []
    )
    return any(isinstance(named, dict) and f"sha256:{named.get('sha256')}" == digest for named in digests)


def purl_types(sbom: dict[str, Any]) -> set[str]:
    """The package types (``deb``, ``pypi``, ...) of the SBOM's components."""
    components = sbom.get("components")
    if not isinstance(components, list):
        return set()
    purls = (component.get("purl") for component in components if isinstance(component, dict))
    return {purl[4:].split("/", 1)[0] for purl in purls if isinstance(purl, str) and purl.startswith("pkg:")}


def recorded_image_id(sbom: dict[str, Any]) -> str | None:
    """The config digest the SBOM says it was made from (its metadata component's property)."""
    metadata = sbom.get("metadata")
    component = metadata.get("component") if isinstance(metadata, dict) else None
    properties = component.get("properties") if isinstance(component, dict) else None
    if not isinstance(properties, list):
        return None
    values = [
        item.get("value") for item in properties if isinstance(item, dict) and item.get("name") == IMAGE_ID_PROPERTY
    ]
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def whole_image_sbom(stream: IO[bytes], digest: str, image_id: str | None = None) -> dict[str, Any] | None:
    """The first CycloneDX SBOM about ``digest`` with Debian and Python components (of ``image_id``), or None."""
    for statement in statements(stream):
        predicate = statement.get("predicate")
        if statement.get("predicateType") != CYCLONEDX or not isinstance(predicate, dict):
            continue
        if not is_about(statement, digest) or not {"deb", "pypi"} <= purl_types(predicate):
            continue
        if image_id is None or recorded_image_id(predicate) == image_id:
            return predicate
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digest", required=True, help="the image's manifest digest, sha256:HEX")
    parser.add_argument("--image-id", help="the image's config digest (docker image inspect .Id), sha256:HEX")
    args = parser.parse_args(argv)
    for option, value in (("--digest", args.digest), ("--image-id", args.image_id)):
        if value is not None and not DIGEST.fullmatch(value):
            parser.error(f"{option} {value!r} is not sha256:HEX")
    try:
        sbom = whole_image_sbom(sys.stdin.buffer, args.digest, args.image_id)
    except AttestationError as error:
        print(f"attested-sbom: error [{error.code}]: {error} (hint: {error.hint})", file=sys.stderr)
        return 2
    if sbom is None:
        made_from = f", made from {args.image_id}," if args.image_id else ""
        print(
            f"attested-sbom: no CycloneDX SBOM about {args.digest}{made_from} lists Debian and Python packages",
            file=sys.stderr,
        )
        return 1
    json.dump(sbom, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
